"""New pods against old pods of the same service at the same moment: what separates a defective
rollout from a benign one that happened next to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collectors.contracts import Evidence, EvidenceItem
from collectors.sources import Series
from collectors.version_diff import version_items
from triage.investigate.ranking import rank
from triage.models import AlertSnapshot, IncidentState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp()
ROLLED = T - 600  # both services rolled out ten minutes before the alert


def incident() -> IncidentState:
    labels = {"alertname": "SLOBurn", "namespace": "shop", "service": "web"}
    return IncidentState(
        incident_id="inc-1",
        group_key="g",
        status="firing",
        first_seen=NOW,
        updated_at=NOW,
        common_labels=labels,
        alerts={"f": AlertSnapshot(status="firing", labels=labels, starts_at=NOW)},
    )


def pod_series(
    service: str, version: str, pod: str, metric: str, level: float, since: float, spike: float = 0
) -> Series:
    """One pod's samples each minute up to the alert, a little jitter, an optional spike in
    its first minute (a cold start)."""
    points = []
    for i, t in enumerate(range(int(since), int(T) + 1, 60)):
        jitter = (-1, 0, 1)[i % 3] * level * 0.03
        points.append((float(t), level + jitter + (spike if i == 0 else 0)))
    labels = {"__name__": metric, "service": service, "version": version, "pod": pod}
    return Series(labels=labels, points=points)


def service(
    name: str, old: float, new: float, *, success_new: float = 100.0, spike: float = 0
) -> list[Series]:
    start = T - 1800
    return [
        pod_series(name, "v1", f"{name}-v1-a", "latency_ms", old, start),
        pod_series(name, "v1", f"{name}-v1-b", "latency_ms", old, start),
        pod_series(name, "v2", f"{name}-v2-a", "latency_ms", new, ROLLED, spike),
        pod_series(name, "v1", f"{name}-v1-a", "success_rate", 100.0, start),
        pod_series(name, "v1", f"{name}-v1-b", "success_rate", 100.0, start),
        pod_series(name, "v2", f"{name}-v2-a", "success_rate", success_new, ROLLED),
    ]


def rollout(name: str) -> EvidenceItem:
    return EvidenceItem(
        id=f"rollout-{name}",
        kind="rollout",
        summary=f"{name} rolled out v2",
        subject=name,
        score=0.9,
        timestamp=datetime.fromtimestamp(ROLLED, UTC),
        change=f"{name} v1 -> v2",
        fault_hint="bad_rollout",
    )


def ranked(series: list[Series]) -> list[str]:
    evidence = [
        Evidence(collector="kubernetes", status="ok", items=[rollout("api"), rollout("search")]),
        Evidence(collector="metrics", status="ok", items=version_items(series, T - 600)),
    ]
    return [s.component for s in rank(incident(), evidence)]


def test_the_rollout_whose_new_pods_are_worse_than_its_old_ones_ranks_first():
    # search's new pods are slower in absolute terms (41 ms against api's 20 ms), but no
    # slower than search's own old pods at the same moments; api's new pods doubled.
    series = service("api", old=10, new=20) + service("search", old=40, new=41)
    items = {(i.subject, i.kind) for i in version_items(series, T - 600)}
    assert ("api", "version_split") in items
    assert ("search", "version_split") not in items and ("search", "version_same") in items
    assert ranked(series)[0] == "api"


def test_failing_requests_outweigh_a_slightly_slower_new_version():
    # Errors before latency: api's new pods fail one request in five at the same latency.
    series = service("api", old=10, new=10, success_new=80) + service("search", old=10, new=16)
    splits = {
        i.subject: i.score for i in version_items(series, T - 600) if i.kind == "version_split"
    }
    assert splits["api"] > splits.get("search", 0.0)
    assert ranked(series)[0] == "api"


def test_a_cold_start_spike_alone_does_not_make_a_rollout_the_cause():
    # search's new pod took 300 ms in its first minute (cold start), then served like the old
    # ones; api's rollout hides nothing either, but nothing clears it.
    series = service("search", old=10, new=10, spike=300)
    items = version_items(series, T - 600)
    assert [i.kind for i in items] == ["version_same"]
    assert ranked(series)[0] == "api"


def test_too_few_minutes_of_the_new_version_prove_nothing_either_way():
    # A new pod that served for only one minute after its cold start: no verdict on latency.
    start = T - 1800
    series = [
        pod_series("api", "v1", "api-v1-a", "latency_ms", 10, start),
        pod_series("api", "v2", "api-v2-a", "latency_ms", 50, T - 120),
    ]
    assert version_items(series, T - 600) == []
    assert timedelta(seconds=T - (T - 120)) < timedelta(minutes=3)
