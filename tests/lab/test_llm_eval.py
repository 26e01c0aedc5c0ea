"""`triage eval --analyzer llm`: the real investigation path over corpus scenarios, the LLM
analyzer talking to the configured gateway (the scripted one), tokens in the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from triage_lab.corpus import generate_corpus
from triage_lab.fakes.gateway import ScriptedLLM

pytestmark = pytest.mark.slow

TRIAGE = Path(sys.executable).parent / "triage"


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = generate_corpus(tmp_path_factory.mktemp("corpus"), variants=1)
    chosen = tmp_path_factory.mktemp("cases")
    for case in corpus[:3]:
        shutil.copytree(case, chosen / case.name)
    return chosen


def run_eval(cases: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    return subprocess.run(
        [str(TRIAGE), "eval", str(cases), "--analyzer", "llm", "--out", str(out)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_eval_with_the_llm_analyzer_uses_the_configured_gateway(cases: Path, tmp_path: Path):
    with ScriptedLLM() as gateway:
        done = run_eval(cases, tmp_path, TRIAGE_LLM_BASE_URL=gateway.url, TRIAGE_LLM_MODEL="m1")
        assert done.returncode == 0, done.stderr
        assert gateway.models() == ["m1"] * 3

    report = json.loads((tmp_path / "report.json").read_text())
    summary = report["summary"]
    assert report["analyzer"] == "llm" and summary["errors"] == 0
    assert summary["llm_calls_per_case"] == 1 and summary["prompt_tokens_per_case"] > 100
    assert summary["schema_valid_rate"] == 1
    assert "LLM calls/case: 1.0" in (tmp_path / "report.md").read_text()


def test_eval_with_the_llm_analyzer_and_no_gateway_says_what_to_set(cases: Path, tmp_path: Path):
    done = run_eval(cases, tmp_path)
    assert done.returncode != 0
    assert "set TRIAGE_LLM_BASE_URL" in done.stderr


def test_eval_with_an_unreachable_gateway_marks_every_case_instead_of_scoring_the_fallback(
    cases: Path, tmp_path: Path
):
    from triage_lab.fakes.process import free_port

    nobody = f"http://127.0.0.1:{free_port()}/v1"
    done = run_eval(cases, tmp_path, TRIAGE_LLM_BASE_URL=nobody, TRIAGE_LLM_MAX_RETRIES="0")
    assert done.returncode == 1
    assert "3 case(s) failed" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["errors"] == 3
    assert report["summary"]["overall"]["ac@1"] == 0  # nothing scored under the LLM's name
    assert all(c["error"].startswith("LLM not used") for c in report["cases"])
