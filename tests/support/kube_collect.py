"""The Kubernetes collector run as it runs in the cluster: objects served by the Kubernetes API
fake to the real ``kubernetes`` client, then what the heuristic analyzer makes of the evidence.
The clock the Kubernetes collector tests share, and what the metrics collector says of a service
that suffers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client
from triage_lab.fakes.kubernetes import KubeApi
from triage_lab.scenarios import KubeObjects

from collectors.contracts import Evidence, EvidenceItem, Neighbours, TimeWindow
from collectors.kubernetes import KubernetesCollector
from collectors.sources import ApiKubeSource
from triage.analyse.heuristic import HeuristicAnalyzer
from triage.models import RCA, IncidentState, Suspect

NS = "shop"
ONSET = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=30), onset=ONSET, end=ONSET + timedelta(minutes=10)
)
Obj = dict[str, Any]


def stamp(minutes: float) -> str:
    """A time relative to the onset, as the API server writes it."""
    return (ONSET + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def collect_kube(
    objects: KubeObjects | Iterable[Obj],
    incident: IncidentState,
    window: TimeWindow = WINDOW,
    *,
    failing: dict[str, int] | None = None,
    neighbours: Neighbours | None = None,
) -> Evidence:
    """Serves ``objects`` (recorded, or a list sorted by kind) through the API fake, with the
    paths in ``failing`` answering that HTTP status, and runs the collector over them through
    the real client."""
    fake = KubeApi(objects)
    fake.failing.update(failing or {})
    with fake, kubernetes.client.ApiClient(fake.configuration()) as api:
        return await KubernetesCollector(ApiKubeSource(api), neighbours).collect(incident, window)


def of_kind(evidence: Evidence, kind: str) -> list[EvidenceItem]:
    return [i for i in evidence.items if i.kind == kind]


def suffers(
    svc: str, callee: str | None = None, *, ratio: float = 0.42, score: float = 0.9
) -> EvidenceItem:
    """What the metrics collector says of a service whose error ratio rose at the onset (calling
    ``callee``, when it names one)."""
    return EvidenceItem(
        id=f"metric-{svc}-errors",
        kind="metric_shift",
        summary=f"{svc} 5xx ratio 0.00 -> {ratio:.2f}",
        subject=svc,
        timestamp=ONSET,
        score=score,
        related=[callee] if callee else [],
    )


async def analysed(
    incident: IncidentState,
    kube: Evidence,
    *metrics: EvidenceItem,
    call_graph: list[tuple[str, str]] | None = None,
) -> RCA:
    """The heuristic analyzer's RCA of the Kubernetes evidence and, when there are any, the
    metrics collector's ``metrics`` items."""
    evidence = [kube]
    if metrics:
        evidence.append(Evidence(collector="metrics", status="ok", items=list(metrics)))
    return await HeuristicAnalyzer(call_graph=call_graph).analyze(incident, evidence)


async def top_suspect(
    incident: IncidentState,
    kube: Evidence,
    *metrics: EvidenceItem,
    call_graph: list[tuple[str, str]] | None = None,
) -> Suspect:
    """The analyzer's first suspect (see :func:`analysed`)."""
    rca = await analysed(incident, kube, *metrics, call_graph=call_graph)
    return rca.suspects[0]
