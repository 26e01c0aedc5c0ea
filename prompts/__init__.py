"""Prompt templates, one folder per version (``v1/system.j2``, ``v1/user.j2``).

Installed as the data package ``triage_prompts`` (pyproject.toml maps it to this folder), so a
wheel carries them and ``triage.prompts`` finds them without TRIAGE_LLM_PROMPT_DIR."""
