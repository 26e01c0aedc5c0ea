"""The README documents every setting with its current default."""

from pathlib import Path

from triage.settings import settings_reference


def test_every_setting_is_documented_with_its_default():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for var, default, _ in settings_reference():
        assert f"| `{var}` | `{default}` |" in readme, f"README lacks {var} (default {default})"
