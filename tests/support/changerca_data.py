"""Helpers to import one real ChangeRCA dev case for tests that need realistic data."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    found = Path(os.environ.get("TRIAGE_SHARED_DIR", REPO.parent / "shared"))
    if not (found / "datasets" / "changerca-dev").is_dir():
        raise RuntimeError(f"ChangeRCA dev split not found under {found}: set TRIAGE_SHARED_DIR")
    return found / "datasets" / "changerca-dev"


def imported_case(dest: Path, case: str = "2023-09-22_1") -> Path:
    from triage_lab.importers.changerca import import_changerca

    made = import_changerca(shared_dir() / case, dest / "imported")
    return made[0]
