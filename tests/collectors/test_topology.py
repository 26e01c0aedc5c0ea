"""Call-graph neighbours: the namespaces one call away from the alerts' own, read from the
mesh's request series, and what reading them lets an investigation see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from triage_lab.fakes.prometheus import Prometheus

from collectors.contracts import Evidence, TimeWindow
from collectors.metrics import MetricsCollector
from collectors.sources import FileMetricSource, PrometheusSource, Series
from collectors.topology import CallGraphNeighbours
from tests.support.incidents import firing
from tests.support.kube_collect import NS, ONSET, WINDOW, Obj, analysed, collect_kube, stamp
from tests.support.kube_collect import suffers as metrics_say
from triage.errors import CollectorError

MINUTES = range(-40, 1)


def istio(
    caller: tuple[str, str],
    callee: tuple[str, str],
    minutes: range = MINUTES,
    onset: datetime = ONSET,
) -> list[str]:
    """One request counter of Istio's, caller (namespace, workload) -> callee, every minute."""
    labels = (
        f'source_workload="{caller[1]}",source_workload_namespace="{caller[0]}",'
        f'destination_workload="{callee[1]}",destination_workload_namespace="{callee[0]}",'
        'response_code="200",reporter="source"'
    )
    at = int(onset.timestamp())
    return [f"istio_requests_total{{{labels}}} {10 * (m + 41)} {at + 60 * m}" for m in minutes]


def mesh(*edges: tuple[tuple[str, str], tuple[str, str]]) -> FileMetricSource:
    lines = ["# TYPE istio_requests_total counter"]
    for caller, callee in edges:
        lines += istio(caller, callee)
    return FileMetricSource("\n".join(lines) + "\n# EOF\n")


SHOP_MESH = mesh(
    ((NS, "web"), ("payments", "ledger")),
    ((NS, "web"), ("payments", "fraud")),
    ((NS, "cart"), ("catalog", "items")),
    (("edge", "gateway"), (NS, "web")),
    ((NS, "web"), ("kube-system", "kube-dns")),
)


async def test_neighbours_are_the_namespaces_called_and_calling_most_linked_first():
    found = await CallGraphNeighbours(SHOP_MESH).of([NS], WINDOW)
    assert found == ["payments", "catalog", "edge"]  # two edges to payments, one to the others
    assert await CallGraphNeighbours(SHOP_MESH, most=1).of([NS], WINDOW) == ["payments"]
    assert await CallGraphNeighbours(SHOP_MESH, most=0).of([NS], WINDOW) == []


async def test_a_namespace_that_is_no_dns_label_never_reaches_the_query():
    seen: list[str] = []

    class Recording:
        async def query_range(
            self, query: str, start: datetime, end: datetime, step: float
        ) -> list[Series]:
            seen.append(query)
            return []

    assert await CallGraphNeighbours(Recording()).of(['a"}|x', ".*"], WINDOW) == []
    assert seen == []


class Down:
    async def query_range(
        self, query: str, start: datetime, end: datetime, step: float
    ) -> list[Series]:
        raise CollectorError("connection refused", collector="metrics")


async def test_without_prometheus_the_call_graph_says_it_is_unavailable():
    with pytest.raises(CollectorError, match="call graph unavailable: connection refused"):
        await CallGraphNeighbours(Down()).of([NS], WINDOW)


def ledger_rollout() -> list[Obj]:
    """ledger in the payments namespace, rolled out to a new image four minutes before the
    onset, and web in shop unchanged for days."""

    def meta(name: str, ns: str, created: float, **more: object) -> Obj:
        return {"name": name, "namespace": ns, "creationTimestamp": stamp(created), **more}

    def deploy(name: str, ns: str) -> Obj:
        template = {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(name, ns, -10_000, labels={"app": name}),
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": template},
        }

    def rs(name: str, ns: str, revision: int, created: float, image: str) -> Obj:
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta(
                f"{name}-{revision}",
                ns,
                created,
                annotations={"deployment.kubernetes.io/revision": str(revision)},
                ownerReferences=[{"kind": "Deployment", "name": name, "apiVersion": "apps/v1"}],
            ),
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": image}]},
                }
            },
        }

    return [
        deploy("web", NS),
        deploy("ledger", "payments"),
        rs("web", NS, 1, -10_000, "web:1"),
        rs("ledger", "payments", 1, -10_000, "ledger:1"),
        rs("ledger", "payments", 2, -4, "ledger:2"),
    ]


async def test_a_rollout_one_call_away_in_another_namespace_is_found_and_blamed():
    incident = firing({"alertname": "WebErrors", "namespace": NS, "service": "web"}, ONSET)
    near = CallGraphNeighbours(SHOP_MESH)

    alone = await collect_kube(ledger_rollout(), incident)
    assert not [i for i in alone.items if i.subject == "ledger"]
    assert "payments" not in (alone.error or "")

    wide = await collect_kube(ledger_rollout(), incident, neighbours=near)
    (rollout,) = [i for i in wide.items if i.kind == "rollout" and i.subject == "ledger"]
    assert "ledger:1 -> ledger:2" in rollout.summary
    rca = await analysed(incident, wide, metrics_say("web", "ledger"))
    assert rca.root_cause.component == "ledger"


async def test_a_call_graph_that_cannot_be_read_narrows_the_look_and_says_so():
    incident = firing({"alertname": "WebErrors", "namespace": NS, "service": "web"}, ONSET)
    evidence: Evidence = await collect_kube(
        ledger_rollout(), incident, neighbours=CallGraphNeighbours(Down())
    )
    assert evidence.status != "error"  # the alerts' own namespaces were read all the same
    assert "call graph unavailable" in (evidence.error or "")


async def test_calls_that_began_after_the_onset_are_no_neighbours():
    # The call graph as it was when trouble began: a failover to another region's namespace
    # after the onset is a reaction, and reading it would widen every later look.
    lines = istio((NS, "web"), ("payments", "ledger"))
    lines += istio((NS, "web"), ("payments-dr", "ledger"), range(6, 11))
    source = FileMetricSource(
        "# TYPE istio_requests_total counter\n" + "\n".join(lines) + "\n# EOF\n"
    )
    assert await CallGraphNeighbours(source).of([NS], WINDOW) == ["payments"]


@pytest.mark.slow
async def test_a_real_prometheus_names_the_neighbours_and_their_series_are_read():
    onset = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    window = TimeWindow(start=onset - timedelta(minutes=30), onset=onset, end=onset)
    lines = ["# TYPE istio_requests_total counter"]
    lines += istio((NS, "web"), ("payments", "ledger"), onset=onset)
    lines += istio(("edge", "gateway"), (NS, "web"), onset=onset)
    lines.append("# TYPE ledger_errors_ratio gauge")
    at = int(onset.timestamp())
    for m in MINUTES:
        ratio = 0.35 if m >= -5 else 0.01 + 0.001 * (m % 3)
        lines.append(
            f'ledger_errors_ratio{{namespace="payments",service="ledger"}} {ratio} {at + 60 * m}'
        )
    incident = firing({"alertname": "WebErrors", "namespace": NS, "service": "web"}, onset)
    with Prometheus("\n".join(lines) + "\n# EOF\n") as prom:
        async with httpx.AsyncClient() as client:
            source = PrometheusSource(prom.url, client)
            near = CallGraphNeighbours(source)
            assert await near.of([NS], window) == ["edge", "payments"]
            evidence = await MetricsCollector(source, neighbours=near).collect(incident, window)
            alone = await MetricsCollector(source).collect(incident, window)
    assert [i.subject for i in evidence.items if i.kind == "metric_shift"] == ["ledger"]
    assert not [i for i in alone.items if i.subject == "ledger"]
