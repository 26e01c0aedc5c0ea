"""Analyse: evidence redacted and budgeted, then the RCA: from the LLM gateway, or the
heuristic analyzer."""
