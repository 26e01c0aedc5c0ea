"""One scenario, three backends: the files, a real Prometheus with the series backfilled plus
the Kubernetes fixture server behind the real client. The evidence must be the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from triage_lab.evaluation import incident_of, investigated_at, sources
from triage_lab.scenarios import load_scenario

from collectors.standard import standard_collectors
from tests.support.changerca_data import imported_case
from triage.investigate.investigation import Investigator
from triage.settings import InvestigationSettings
from triage.telemetry import Metrics

pytestmark = pytest.mark.slow


def evidence_via(path: Path, backend: str) -> dict[str, list[tuple[str, str, float]]]:
    scenario = load_scenario(path)

    async def run() -> dict[str, list[tuple[str, str, float]]]:
        async with sources(scenario, backend) as (kube, metrics):  # type: ignore[arg-type]
            investigator = Investigator(
                standard_collectors(kube, metrics), InvestigationSettings(), Metrics()
            )
            found = await investigator.collect(incident_of(scenario), now=investigated_at(scenario))
        return {e.collector: [(i.id, i.summary, round(i.score, 6)) for i in e.items] for e in found}

    return asyncio.run(run())


def test_files_and_live_backends_give_the_same_evidence(tmp_path: Path):
    case = imported_case(tmp_path)
    files = evidence_via(case, "files")
    live = evidence_via(case, "live")
    assert files["kubernetes"], "the rollout history should produce evidence"
    assert files["metrics"], "the backfilled series should produce evidence"
    assert live == files
