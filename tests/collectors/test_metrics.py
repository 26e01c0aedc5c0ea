"""The metrics collector over a real Prometheus: configured PromQL per namespace, golden
signals before saturation, and the version split of a rolling update."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from triage_lab.fakes.prometheus import Prometheus

from collectors.contracts import TimeWindow
from collectors.metrics import MetricsCollector
from collectors.sources import FileMetricSource, PrometheusSource
from tests.support.incidents import firing
from triage.models import IncidentState
from triage.settings import Settings

pytestmark = pytest.mark.slow

ONSET = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=40), onset=ONSET, end=ONSET + timedelta(minutes=10)
)


def series_text() -> str:
    """Each series' samples together, as OpenMetrics requires."""
    minutes = range(-40, 11)
    lines = ["# TYPE http_errors_ratio gauge"]
    for pod, version in (("cart-v1-a", "v1"), ("cart-v2-b", "v2")):
        for m in minutes:
            bad = m >= -5 and version == "v2"  # departs before the alert fires, as it does
            err = 0.3 if bad else 0.01 + 0.001 * (m % 3)
            lines.append(
                f'http_errors_ratio{{namespace="shop",service="cart",pod="{pod}",'
                f'version="{version}"}} {err} {_ts(m)}'
            )
    lines.append("# TYPE container_memory_ratio gauge")
    for m in minutes:
        mem = 0.4 + (0.3 if m >= -5 else 0.0) + 0.001 * (m % 2)
        lines.append(f'container_memory_ratio{{namespace="shop",service="search"}} {mem} {_ts(m)}')
    # Service-mesh call edges (Istio's labels): two callers fail calling cart, one is fine.
    lines.append("# TYPE mesh_error_ratio gauge")
    for caller, callee, fails in (
        ("web", "cart", True),
        ("checkout", "cart", True),
        ("web", "search", False),
    ):
        for m in minutes:
            err = 0.4 if fails and m >= -5 else 0.01 + 0.001 * (m % 3)
            lines.append(
                f'mesh_error_ratio{{namespace="shop",source_workload="{caller}",'
                f'destination_workload="{callee}"}} {err} {_ts(m)}'
            )
    lines.append("# TYPE service_request_rate gauge")
    for m in minutes:
        rate = (200 if m >= -5 else 100) + m % 3
        lines.append(f'service_request_rate{{namespace="shop",service="web"}} {rate} {_ts(m)}')
    return "\n".join(lines) + "\n# EOF\n"


def _ts(minute: int) -> int:
    return int((ONSET + timedelta(minutes=minute)).timestamp())


@pytest.fixture(scope="module")
def prom() -> Iterator[Prometheus]:
    with Prometheus(series_text()) as server:
        yield server


def incident() -> IncidentState:
    labels = {"alertname": "CartErrors", "namespace": "shop", "service": "cart"}
    return firing(labels, ONSET, fingerprint="f")


async def test_configured_promql_is_run_per_namespace(prom: Prometheus, monkeypatch):
    monkeypatch.setenv(
        "TRIAGE_PROMETHEUS_QUERIES",
        '["max by (namespace, service) (http_errors_ratio{namespace=\\"$namespace\\"})"]',
    )
    queries = tuple(Settings().prometheus.queries)
    async with httpx.AsyncClient() as client:
        collector = MetricsCollector(PrometheusSource(prom.url, client), selectors=queries)
        evidence = await collector.collect(incident(), WINDOW)
    assert evidence.status == "ok", evidence.error
    shifts = [i for i in evidence.items if i.kind == "metric_shift"]
    assert [i.subject for i in shifts] == ["cart"]  # only what the query asked for
    assert shifts[0].score > 0.6 and shifts[0].points


async def test_workload_templates_run_for_the_alerting_workload(prom: Prometheus, monkeypatch):
    # An aggregation keeps no labels at all: the template said whose series it is.
    monkeypatch.setenv(
        "TRIAGE_PROMETHEUS_QUERIES",
        '["max(http_errors_ratio{namespace=\\"$namespace\\",service=\\"$workload\\"})",'
        ' "max(container_memory_ratio{namespace=\\"$namespace\\",service=\\"$workload\\"})"]',
    )
    queries = tuple(Settings().prometheus.queries)
    async with httpx.AsyncClient() as client:
        collector = MetricsCollector(PrometheusSource(prom.url, client), selectors=queries)
        evidence = await collector.collect(incident(), WINDOW)
    assert evidence.status == "ok", evidence.error
    shifts = [i for i in evidence.items if i.kind == "metric_shift"]
    # The memory series belongs to search, which the alert does not name: never asked for.
    assert [(i.subject, i.summary.split(" of ")[0]) for i in shifts] == [("cart", "query result")]


async def test_golden_signals_outweigh_saturation_and_new_version_is_blamed(prom: Prometheus):
    async with httpx.AsyncClient() as client:
        live = await MetricsCollector(PrometheusSource(prom.url, client)).collect(
            incident(), WINDOW
        )
    by_subject = {(i.subject, i.kind): i for i in live.items}
    errors = by_subject[("cart", "metric_shift")]
    memory = by_subject[("search", "metric_shift")]
    assert errors.score > memory.score  # an error ratio says more than a busy container
    split = by_subject[("cart", "version_split")]
    assert "v2 pods are worse than v1" in split.summary and split.fault_hint == "bad_rollout"
    # The file backend answers the same selectors the same way.
    files = await MetricsCollector(FileMetricSource(series_text())).collect(incident(), WINDOW)
    assert [(i.id, round(i.score, 4)) for i in files.items] == [
        (i.id, round(i.score, 4)) for i in live.items
    ]


async def test_call_edges_speak_for_the_callee_and_traffic_is_only_load(prom: Prometheus):
    async with httpx.AsyncClient() as client:
        evidence = await MetricsCollector(PrometheusSource(prom.url, client)).collect(
            incident(), WINDOW
        )
    assert evidence.edges == [("checkout", "cart"), ("web", "cart"), ("web", "search")]
    by_subject = {(i.subject, i.kind): i for i in evidence.items}
    calls = by_subject[("cart", "edge_shift")]
    assert calls.related == ["checkout", "web"] and calls.score > 0.9
    assert ("search", "edge_shift") not in by_subject
    traffic = by_subject[("web", "traffic_shift")]
    assert "service_request_rate of web moved up" in traffic.summary
    assert ("web", "metric_shift") not in by_subject


async def test_a_node_alert_rule_reads_as_evidence_about_the_node():
    """kube-state-metrics' node condition and node-exporter's series name the node, not the
    exporter's scrape job."""
    from urllib.parse import urlencode

    from collectors.sources import FileMetricSource
    from tests.support.series import WINDOW, incident, openmetrics, ts

    def gauge(name: str, labels: str, value: Callable[[int], float]) -> list[str]:
        return [f"{name}{{{labels}}} {value(m)} {ts(m)}" for m in range(-40, 11)]

    ready = 'node="ip-10-0-3-7",condition="Ready",status="true",job="kube-state-metrics"'
    memory = 'node="ip-10-0-3-7",job="node-exporter",instance="10.0.3.7:9100"'
    text = openmetrics(
        (
            "kube_node_status_condition",
            "gauge",
            gauge("kube_node_status_condition", ready, lambda m: 0.0 if m >= -3 else 1.0),
        ),
        (
            "node_memory_MemAvailable_bytes",
            "gauge",
            gauge("node_memory_MemAvailable_bytes", memory, lambda m: 8e9),
        ),
    )
    rule = (
        'kube_node_status_condition{job="kube-state-metrics",condition="Ready",status="true"} == 0'
    )
    labels = {"alertname": "KubeNodeNotReady", "node": "ip-10-0-3-7", "severity": "warning"}
    state = incident(labels)
    url = "http://prometheus:9090/graph?" + urlencode({"g0.expr": rule})
    state.alerts["f"] = state.alerts["f"].model_copy(update={"generator_url": url})
    evidence = await MetricsCollector(FileMetricSource(text), selectors=()).collect(state, WINDOW)
    [item] = evidence.items
    assert item.subject == "ip-10-0-3-7" and "moved down" in item.summary
