"""`triage eval` as a user runs it: the same inputs give the same report; a malformed scenario
stops the run with the file and field named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from triage_lab.evaluation import incident_of, investigated_at, sources
from triage_lab.scenarios import load_scenario

from collectors.standard import standard_collectors
from triage.investigate.investigation import Investigator
from triage.settings import InvestigationSettings
from triage.telemetry import Metrics

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


async def test_a_later_look_reads_later_data_and_never_past_its_moment():
    scenario = load_scenario(CORPUS / "k8s-004")
    last_point = {}
    for delay in (60, 300):
        at = investigated_at(scenario, timedelta(seconds=delay))
        async with sources(scenario, "files") as (kube, metrics):
            investigator = Investigator(
                standard_collectors(kube, metrics), InvestigationSettings(), Metrics()
            )
            evidence = await investigator.collect(incident_of(scenario), now=at)
        points = [t for e in evidence for i in e.items for t, _ in i.points]
        assert points and max(points) <= at.timestamp()
        last_point[delay] = max(points)
    assert last_point[300] - last_point[60] >= 180


def test_the_report_says_when_the_investigation_looked(three_scenarios: Path, tmp_path: Path):
    out = tmp_path / "out"
    proc = eval_cli(str(three_scenarios), "--delay", "300", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Investigated 300 s after the first alert's start" in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["delay_s"] == 300
    proc = eval_cli(str(three_scenarios), "--delay", "-1", cwd=tmp_path)
    assert proc.returncode != 0 and "--delay must be 0 or more seconds" in proc.stderr
