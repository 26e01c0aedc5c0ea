"""The slow-link and whole-app-release families: what their files carry, and what the engine
reads from them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from triage_lab.corpus.conventions import Conventions
from triage_lab.corpus.generate import build_scenario
from triage_lab.evaluation import incident_of, investigated_at, sources
from triage_lab.scenarios import Scenario, load_scenario, load_truth

from collectors.contracts import Evidence
from collectors.standard import standard_collectors
from triage.investigate.investigation import Investigator
from triage.investigate.ranking import rank
from triage.settings import InvestigationSettings
from triage.telemetry import Metrics

EDGE = "edge_request_duration_p99_seconds"


def _build(tmp_path: Path, family: str, variant: int, conventions: Conventions) -> Path:
    path = tmp_path / f"{family}-{variant}-{conventions}"
    build_scenario(path, path.name, 7, family, variant, conventions)
    return path


async def _evidence(s: Scenario) -> list[Evidence]:
    incident = incident_of(s)
    async with sources(s, "files") as (kube, metrics):
        investigator = Investigator(
            standard_collectors(kube, metrics), InvestigationSettings(), Metrics()
        )
        return await investigator.collect(incident, now=investigated_at(s))


@pytest.mark.parametrize("conventions", ["ours", "real-world"])
def test_slow_link_shows_on_every_edge_into_the_service(tmp_path: Path, conventions: str) -> None:
    path = _build(tmp_path, "network", 1, conventions)  # type: ignore[arg-type]
    truth = load_truth(path)
    text = (path / "metrics.om").read_text()
    edges = [line for line in text.splitlines() if line.startswith(EDGE + "{")]
    into = {
        re.search(r'(?:caller|source_workload)="([^"]+)"', line).group(1)  # type: ignore[union-attr]
        for line in edges
        if re.search(rf'(?:callee|destination_workload)="{truth.name}"', line)
    }
    assert len(into) >= 2
    scenario = load_scenario(path)
    callers = {a for a, b in scenario.meta.call_graph if b == truth.name}
    assert into == callers


@pytest.mark.parametrize("conventions", ["ours", "real-world"])
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_the_slowed_service_ranks_first_and_is_named_network(
    tmp_path: Path, conventions: str, variant: int
) -> None:
    path = _build(tmp_path, "network", variant, conventions)  # type: ignore[arg-type]
    s = load_scenario(path)
    evidence = asyncio.run(_evidence(s))
    suspects = rank(incident_of(s), evidence, s.meta.call_graph)
    truth = load_truth(path)
    assert suspects[0].component in {truth.name, truth.service, *truth.aliases}
    assert suspects[0].kind == "network"


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_a_whole_app_release_does_not_hide_the_oom_killed_workload(
    tmp_path: Path, variant: int
) -> None:
    path = _build(tmp_path, "mass_redeploy_oom", variant, "ours")
    s = load_scenario(path)
    evidence = asyncio.run(_evidence(s))
    items = [i for e in evidence for i in e.items]
    rollouts = [i for i in items if i.kind == "rollout"]
    assert len(rollouts) >= 4
    assert all("one release of the app" in i.summary for i in rollouts)
    truth = load_truth(path)
    suspects = rank(incident_of(s), evidence, s.meta.call_graph)
    assert suspects[0].component == truth.name
    assert suspects[0].kind == "resource_exhaustion"
