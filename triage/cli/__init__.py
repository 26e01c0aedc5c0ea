"""The ``triage`` command, one module per command family."""
