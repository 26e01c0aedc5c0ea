"""Investigator: collectors run at once, each under a deadline; one failing never sinks the rest."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
from triage_lab.fakes.process import free_port

from collectors.contracts import Collector, Evidence, EvidenceItem, TimeWindow
from collectors.metrics import MetricsCollector
from collectors.recorded import ScenarioCollector, ScenarioFile
from collectors.sources import PrometheusSource
from triage.analyse.heuristic import HeuristicAnalyzer
from triage.investigate.investigation import Investigator
from triage.models import AlertSnapshot, IncidentState
from triage.settings import InvestigationSettings
from triage.telemetry import Metrics

ONSET = datetime.now(UTC) - timedelta(minutes=5)
LABELS = {"alertname": "HighErrorRate", "service": "checkoutservice"}
GRAPH_URL = "http://prometheus:9090/graph?g0.expr=checkout_error_ratio+%3E+0.05&g0.tab=1"


def incident() -> IncidentState:
    return IncidentState(
        incident_id="inc-test",
        group_key='{}:{alertname="HighErrorRate"}',
        status="firing",
        first_seen=ONSET,
        updated_at=ONSET,
        common_labels=LABELS,
        alerts={
            "fp1": AlertSnapshot(
                status="firing", labels=LABELS, starts_at=ONSET, generator_url=GRAPH_URL
            )
        },
    )


def scenario(item_id: str, delay_s: float = 0) -> ScenarioCollector:
    item = EvidenceItem(
        id=item_id, kind="rollout", summary="rolled out", subject="checkoutservice", score=0.9
    )
    return ScenarioCollector(
        [ScenarioFile(name=item_id, match={"service": "checkoutservice"}, delay_s=delay_s,
                      evidence=[item])]
    )  # fmt: skip


def investigator(*collectors: Collector, deadline: float = 5, total: float = 10) -> Investigator:
    settings = InvestigationSettings(collector_deadline_s=deadline, total_deadline_s=total)
    return Investigator(list(collectors), settings, Metrics())


class Exploding:
    """Fault injector: a collector that breaks the never-raise contract."""

    name = "exploding"

    async def collect(self, incident: IncidentState, window: TimeWindow) -> Evidence:
        raise RuntimeError("kubeconfig not found")


class Recording:
    """Fault injector: a slow collector that records when it started and finished."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self._log = log

    async def collect(self, incident: IncidentState, window: TimeWindow) -> Evidence:
        self._log.append(("start", self.name))
        await asyncio.sleep(0.2)
        self._log.append(("end", self.name))
        return Evidence(collector=self.name, status="ok")


async def test_a_slow_collector_is_cut_at_its_deadline_and_the_fast_ones_still_count():
    inv = investigator(scenario("slow-item", delay_s=30), scenario("fast-item"), deadline=0.5)

    started = time.monotonic()
    slow, fast = await inv.collect(incident())
    elapsed = time.monotonic() - started

    assert slow.status == "error"
    assert slow.error is not None and "deadline" in slow.error
    assert slow.items == []
    assert 0.45 <= slow.duration_s < 3
    assert elapsed < 3  # nowhere near the 30 s the slow source would have taken
    assert fast.status == "ok"
    assert [i.id for i in fast.items] == ["fast-item"]


async def test_the_total_deadline_caps_a_longer_collector_deadline():
    inv = investigator(scenario("slow-item", delay_s=30), deadline=10, total=0.5)

    [slow] = await inv.collect(incident())

    assert slow.status == "error"
    assert slow.error is not None and "deadline" in slow.error
    assert slow.duration_s < 3


async def test_unreachable_prometheus_is_an_error_and_the_investigation_completes():
    async with httpx.AsyncClient() as client:
        prom = MetricsCollector(PrometheusSource(f"http://127.0.0.1:{free_port()}", client))
        inv = investigator(prom, scenario("rollout-14"))
        state = incident()
        evidence = await inv.collect(state)
        rca = await HeuristicAnalyzer().analyze(state, evidence)

    assert [(e.collector, e.status) for e in evidence] == [
        ("metrics", "error"),
        ("scenario", "ok"),
    ]
    assert evidence[0].error
    assert rca.evidence_ids == ["rollout-14"]
    assert rca.root_cause.component == "checkoutservice"
    assert any("metrics" in q for q in rca.open_questions)


async def test_a_collector_that_raises_becomes_an_error_and_the_others_are_unaffected():
    [broken, ok] = await investigator(Exploding(), scenario("rollout-14")).collect(incident())

    assert broken.collector == "exploding"
    assert broken.status == "error"
    assert broken.error is not None and "kubeconfig not found" in broken.error
    assert ok.status == "ok"
    assert [i.id for i in ok.items] == ["rollout-14"]


async def test_every_collector_is_timed_with_its_status():
    metrics = Metrics()
    async with httpx.AsyncClient() as client:
        prom = MetricsCollector(PrometheusSource(f"http://127.0.0.1:{free_port()}", client))
        collectors: list[Collector] = [prom, Exploding(), scenario("rollout-14")]
        settings = InvestigationSettings(collector_deadline_s=5, total_deadline_s=10)
        await Investigator(collectors, settings, metrics).collect(incident())

    def count(collector: str, status: str) -> float | None:
        return metrics.registry.get_sample_value(
            "triage_collector_seconds_count", {"collector": collector, "status": status}
        )

    assert count("metrics", "error") == 1
    assert count("exploding", "error") == 1
    assert count("scenario", "ok") == 1
    assert count("scenario", "error") is None


async def test_collectors_run_concurrently():
    log: list[tuple[str, str]] = []
    inv = investigator(*(Recording(f"c{n}", log) for n in range(3)))

    evidence = await inv.collect(incident())

    assert [e.status for e in evidence] == ["ok", "ok", "ok"]
    # Run one after another, c0 would end before c1 starts; run together, all start first.
    assert [event for event, _ in log] == ["start"] * 3 + ["end"] * 3
