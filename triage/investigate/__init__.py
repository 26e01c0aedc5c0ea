"""Investigate: collectors run under deadlines, evidence ranked into suspects."""
