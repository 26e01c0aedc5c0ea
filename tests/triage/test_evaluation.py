"""`triage eval` as a user runs it: the same inputs give the same report; a malformed scenario
stops the run with the file and field named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "scenarios" / "k8s-faults"

pytestmark = pytest.mark.slow


def eval_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triage.cli", "eval", *args],
        cwd=cwd,
        env={**os.environ, "TRIAGE_LOG_LEVEL": "error"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def three_scenarios(tmp_path: Path) -> Path:
    picked = tmp_path / "scenarios"
    for d in sorted(CORPUS.iterdir())[:3]:
        shutil.copytree(d, picked / d.name)
    return picked


def test_report_is_deterministic_and_complete(three_scenarios: Path, tmp_path: Path):
    runs = []
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        proc = eval_cli(str(three_scenarios), "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "AC@1" in proc.stdout
        runs.append(out)
    for name in ("report.md", "report.json", "report.png"):
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    report = json.loads((runs[0] / "report.json").read_text())
    overall = report["summary"]["overall"]
    assert overall["cases"] == 3
    assert set(overall) >= {"ac@1", "ac@3", "avg@5", "mean_rank"}
    assert report["summary"]["by_category"]
    assert all("wall_s" not in c for c in report["cases"])  # wall times vary: timing.json
    assert json.loads((runs[0] / "timing.json").read_text())["per_case_s"]


def test_malformed_scenario_exits_non_zero_naming_file_and_field(
    three_scenarios: Path, tmp_path: Path
):
    broken = sorted(three_scenarios.iterdir())[1] / "scenario.json"
    data = json.loads(broken.read_text())
    del data["webhooks"][0]["alerts"][0]["startsAt"]
    broken.write_text(json.dumps(data))
    proc = eval_cli(str(three_scenarios), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode != 0
    assert str(broken) in proc.stderr
    assert "webhooks.0.alerts.0.startsAt" in proc.stderr
    assert not (tmp_path / "out" / "report.md").exists()  # nothing half-written


def test_generate_corpus_matches_the_committed_one(tmp_path: Path):
    proc = eval_cli("generate-corpus", str(tmp_path / "c"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    made = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert made == sorted(p.name for p in CORPUS.iterdir())
