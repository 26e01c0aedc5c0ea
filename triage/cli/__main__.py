"""``python -m triage.cli``: the same as the ``triage`` command."""

from triage.cli.main import main

if __name__ == "__main__":
    main()
