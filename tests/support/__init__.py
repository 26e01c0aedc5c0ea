"""Helpers shared by tests (never imported from test_ modules)."""
