"""Golden signals from what real exporters publish: counters read as rates (resets counted as
Prometheus counts them), histograms as quantiles, request counters split by status as error
ratios, and a counter that merely keeps counting is no shift."""

from __future__ import annotations

import math
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from collectors.golden import derive, histogram_quantile, increase, rate
from collectors.metrics import MetricsCollector
from collectors.sources import FileMetricSource, Series
from tests.support.series import ONSET, WINDOW, counter, incident, openmetrics


def test_counter_rate_counts_a_reset_as_prometheus_does():
    points = [(0.0, 100.0), (60.0, 160.0), (120.0, 30.0), (180.0, 90.0)]
    # The drop at 120 s is a restart: the counter counted 30 from zero, not -130.
    assert rate(points) == [(60.0, 1.0), (120.0, 0.5), (180.0, 1.0)]
    assert increase(points) == [(0.0, 0.0), (60.0, 60.0), (120.0, 90.0), (180.0, 150.0)]


def test_histogram_quantile_interpolates_as_prometheus():
    # Cumulative counts per upper bound; rank 990 of 1000 falls in (0.5, 1] with 95 in it,
    # 90 of them below the rank: 0.5 + 0.5 * 90/95. The median lies in the first bucket.
    buckets = [(0.1, 600.0), (0.5, 900.0), (1.0, 995.0), (math.inf, 1000.0)]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 90 / 95)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 * 500 / 600)
    # A rank in +Inf answers the highest finite bound; no +Inf bucket, no answer.
    assert histogram_quantile(0.999, [(0.1, 10.0), (math.inf, 20.0)]) == 0.1
    assert math.isnan(histogram_quantile(0.99, [(0.1, 10.0), (1.0, 20.0)]))


def test_buckets_become_quantiles_of_their_rates():
    labels = {"namespace": "shop", "service": "cart"}
    per_step = {"0.1": 600, "0.5": 900, "1": 995, "+Inf": 1000}
    series = [
        Series(
            labels={"__name__": "rpc_seconds_bucket", **labels, "le": le},
            points=[(60.0 * i, 7.0 + n * i) for i in range(4)],  # counters, not from zero
        )
        for le, n in per_step.items()
    ]
    series.append(
        Series(labels={"__name__": "rpc_seconds_sum", **labels}, points=[(0, 1), (60, 2)])
    )
    derived = {s.labels["__name__"]: s for s in derive(series)}
    assert sorted(derived) == ["p50(rpc_seconds)", "p99(rpc_seconds)"]  # raw buckets gone
    p99 = derived["p99(rpc_seconds)"]
    assert p99.labels == {"__name__": "p99(rpc_seconds)", **labels}
    assert [t for t, _ in p99.points] == [60.0, 120.0, 180.0]
    assert all(v == pytest.approx(0.5 + 0.5 * 90 / 95) for _, v in p99.points)


def test_summaries_sums_and_counts_and_cadvisor_series():
    who = {"namespace": "shop", "pod": "cart-1", "container": "cart"}
    steps = [(60.0 * i, float(i)) for i in range(3)]
    series = [
        Series(labels={"__name__": "rpc_seconds", **who, "quantile": "0.99"}, points=steps),
        Series(labels={"__name__": "rpc_seconds_sum", **who}, points=[(0, 0), (60, 3)]),
        Series(labels={"__name__": "rpc_seconds_count", **who}, points=[(0, 0), (60, 6)]),
        Series(
            labels={"__name__": "container_cpu_cfs_periods_total", **who},
            points=[(0, 0), (60, 600)],
        ),
        Series(
            labels={"__name__": "container_cpu_cfs_throttled_periods_total", **who},
            points=[(0, 0), (60, 150)],
        ),
        Series(
            labels={"__name__": "container_memory_working_set_bytes", **who},
            points=[(0, 256.0), (60, 512.0)],
        ),
        Series(
            labels={"__name__": "kube_pod_container_resource_limits", **who}
            | {"resource": "memory", "unit": "byte"},
            points=[(0, 1024.0), (60, 1024.0)],
        ),
    ]
    derived = {s.labels["__name__"]: s.points for s in derive(series)}
    assert derived["p99(rpc_seconds)"] == steps
    assert derived["mean(rpc_seconds)"] == [(60, 0.5)]
    assert derived["rate(rpc_seconds_count)"] == [(60, 0.1)]
    assert derived["throttled_ratio(container_cpu_cfs)"] == [(60, 0.25)]
    assert derived["limit_ratio(container_memory_working_set_bytes)"] == [(0, 0.25), (60, 0.5)]
    assert derived["container_memory_working_set_bytes"] == [(0, 256.0), (60, 512.0)]
    assert "container_cpu_cfs_periods_total" not in derived
    assert "rpc_seconds_sum" not in derived and "rpc_seconds_count" not in derived


def istio_world() -> str:
    """Two callers of cart and one of search, as Istio's sidecars count them: cart starts
    failing (503) five minutes before the alert and gets slower, search stays fine."""
    requests, buckets = [], []
    for caller, callee in (("web", "cart"), ("checkout", "cart"), ("web", "search")):
        edge = {
            "namespace": "shop",
            "reporter": "destination",
            "source_workload": caller,
            "destination_workload": callee,
            "destination_workload_namespace": "shop",
        }
        failing = callee == "cart"

        def ok(m: int) -> float:
            return 6000 + 60 * (m % 3)

        def bad(m: int, failing: bool = failing) -> float:
            return 1800 if failing and m >= -5 else 6 + m % 3

        requests += counter("istio_requests_total", edge | {"response_code": "200"}, ok)
        requests += counter("istio_requests_total", edge | {"response_code": "503"}, bad)
        for le, share in (("10", 0.9), ("50", 0.99), ("250", 1.0), ("+Inf", 1.0)):

            def under(m: int, share: float = share, failing: bool = failing) -> float:
                # Slow: most requests now take between 50 and 250 ms.
                slow = failing and m >= -5
                return 6000 * ((0.3 if share < 1 else 1.0) if slow else share)

            buckets += counter(
                "istio_request_duration_milliseconds_bucket", edge | {"le": le}, under
            )
    return openmetrics(
        ("istio_requests", "counter", requests),
        ("istio_request_duration_milliseconds", "histogram", buckets),
    )


async def test_istio_errors_and_latency_speak_for_the_callee():
    labels = {"alertname": "CartErrors", "destination_workload": "cart", "namespace": "shop"}
    evidence = await MetricsCollector(FileMetricSource(istio_world())).collect(
        incident(labels), WINDOW
    )
    assert evidence.status == "ok", evidence.error
    by_metric = {(i.subject, i.summary.split(" of ")[0]): i for i in evidence.items}
    errors = by_metric[("cart", "error_ratio(istio_requests_total)")]
    assert errors.kind == "edge_shift" and errors.related == ["checkout", "web"]
    assert errors.score > 0.9 and "moved up" in errors.summary
    assert errors.timestamp == ONSET - timedelta(minutes=5)  # departed at the fault, not later
    latency = by_metric[("cart", "p99(istio_request_duration_milliseconds)")]
    assert latency.kind == "edge_shift" and latency.score > 0.9
    assert not [i for i in evidence.items if i.subject == "search" and i.score > 0.3]
    # Raw counters and buckets are not evidence of their own.
    assert not [i for i in evidence.items if "(" not in i.summary.split(" of ")[0]]
    assert evidence.edges == [("checkout", "cart"), ("web", "cart"), ("web", "search")]


def steady_world() -> str:
    """Nothing happens: a request counter keeps counting, a restart counter stays put."""
    who = {"namespace": "shop", "service": "cart"}
    return openmetrics(
        ("app_requests", "counter", counter("app_requests_total", who, lambda m: 600 + m % 4)),
        ("app_errors", "counter", counter("app_errors_total", who, lambda m: m % 2)),
    )


async def test_a_counter_that_keeps_counting_is_no_shift():
    labels = {"alertname": "CartErrors", "service": "cart", "namespace": "shop"}
    world = FileMetricSource(steady_world())
    evidence = await MetricsCollector(world).collect(incident(labels), WINDOW)
    assert not [i for i in evidence.items if i.score >= 0.3], evidence.items
    # Read raw, as before: the error counter "moved up after the onset", strongly.
    raw = await MetricsCollector(world, golden=False).collect(incident(labels), WINDOW)
    [misread] = raw.items
    assert misread.summary.startswith("app_errors_total of cart moved up")


async def test_one_restart_is_a_shift_of_its_workload():
    who = {"namespace": "shop", "pod": "cart-5d8f7c9b4-x2x7k", "container": "cart"}
    text = openmetrics(
        (
            "kube_pod_container_status_restarts",
            "counter",
            counter("kube_pod_container_status_restarts_total", who, lambda m: m == -4),
        )
    )
    labels = {"alertname": "CartDown", "namespace": "shop", "pod": who["pod"]}
    evidence = await MetricsCollector(FileMetricSource(text)).collect(incident(labels), WINDOW)
    [item] = evidence.items
    assert item.subject == "cart" and item.kind == "metric_shift"
    assert item.summary.startswith("increase(kube_pod_container_status_restarts_total) of cart")
    assert item.timestamp == ONSET - timedelta(minutes=4)


def test_gauges_and_misnamed_gauges_pass_through():
    wobbly = [(60.0 * i, float(i % 3)) for i in range(30)]  # goes up and down: no counter
    series = [
        Series(labels={"__name__": "service_error_ratio", "service": "a"}, points=wobbly),
        Series(labels={"__name__": "queue_depth_total", "service": "a"}, points=wobbly),
    ]
    assert sorted(derive(series), key=repr) == sorted(series, key=repr)


async def test_an_alert_rule_in_promql_reads_the_series_its_rule_reads():
    """A real rule computes its ratio in PromQL; a recording can't evaluate it, so both
    backends are asked for the raw series inside it, every status of them."""
    rule = (
        'sum(rate(istio_requests_total{reporter="destination",destination_workload="cart",'
        'response_code=~"5.."}[5m])) / sum(rate(istio_requests_total{reporter="destination",'
        'destination_workload="cart"}[5m])) > 0.05'
    )
    url = "http://prometheus:9090/graph?" + urlencode({"g0.expr": rule, "g0.tab": "1"})
    labels = {"alertname": "CartErrors", "destination_workload": "cart"}  # no namespace label
    state = incident(labels)
    state.alerts["f"] = state.alerts["f"].model_copy(update={"generator_url": url})
    evidence = await MetricsCollector(FileMetricSource(istio_world()), selectors=()).collect(
        state, WINDOW
    )
    assert evidence.status == "ok", evidence.error
    errors = [
        i for i in evidence.items if i.summary.startswith("error_ratio(istio_requests_total)")
    ]
    assert errors and {i.subject for i in errors} == {"cart"}
    assert max(i.score for i in errors) > 0.9
