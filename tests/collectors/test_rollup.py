"""Per-pod series read for their workload: a rollout replaces every pod, so no pod's own series
has a baseline; the workload's, summed or worst-of over its pods, does."""

from __future__ import annotations

from collectors.metrics import MetricsCollector
from collectors.rollup import rollup
from collectors.sources import FileMetricSource, Series
from tests.support.series import WINDOW, counter, incident, openmetrics

CADVISOR = {"job": "kubelet", "metrics_path": "/metrics/cadvisor", "namespace": "shop"}
OLD, NEW = range(-40, -2), range(-2, 11)  # the old pods end, the new ones start at -2 min


def _pods(throttled_new: float) -> str:
    periods, throttled = [], []
    for pod, minutes, share in (
        ("cart-5d8f7c9b4-x2x7k", OLD, 0.02),
        ("cart-5d8f7c9b4-q9w2p", OLD, 0.03),
        ("cart-7f6b9c8d5-h4k2m", NEW, throttled_new),
        ("cart-7f6b9c8d5-z8n5r", NEW, throttled_new),
    ):
        who = CADVISOR | {"pod": pod, "container": "cart"}
        periods += counter("container_cpu_cfs_periods_total", who, lambda m: 600, minutes)
        throttled += counter(
            "container_cpu_cfs_throttled_periods_total",
            who,
            lambda m, s=share: 600 * s,
            minutes,
        )
    return openmetrics(
        ("container_cpu_cfs_periods", "counter", periods),
        ("container_cpu_cfs_throttled_periods", "counter", throttled),
    )


async def test_throttling_after_a_rollout_shows_on_the_workload():
    labels = {"alertname": "CartLatency", "namespace": "shop", "deployment": "cart"}
    evidence = await MetricsCollector(FileMetricSource(_pods(0.6))).collect(
        incident(labels), WINDOW
    )
    throttled = [i for i in evidence.items if i.summary.startswith("throttled_ratio(")]
    assert [i.subject for i in throttled] == ["cart"]  # not "kubelet", the scrape job
    assert throttled[0].score >= 0.5 and throttled[0].fault_hint == "cpu_throttling"
    assert "deployment=cart" in throttled[0].detail


async def test_new_pods_that_throttle_as_the_old_ones_did_are_no_shift():
    labels = {"alertname": "CartLatency", "namespace": "shop", "deployment": "cart"}
    evidence = await MetricsCollector(FileMetricSource(_pods(0.025))).collect(
        incident(labels), WINDOW
    )
    assert not [i for i in evidence.items if i.summary.startswith("throttled_ratio(")]


def test_rates_add_up_and_shares_take_the_worst_pod():
    def pod(name: str, metric: str, points: list[tuple[float, float]]) -> Series:
        labels = {"__name__": metric, "namespace": "shop", "pod": name, "container": "cart"}
        return Series(labels=labels, points=points)

    a, b = "cart-5d8f7c9b4-x2x7k", "cart-5d8f7c9b4-q9w2p"
    rolled = rollup(
        [
            pod(a, "rate(container_cpu_usage_seconds_total)", [(0, 0.5), (60, 0.6)]),
            pod(b, "rate(container_cpu_usage_seconds_total)", [(60, 0.4)]),
            pod(a, "error_ratio(istio_requests_total)", [(0, 0.01), (60, 0.3)]),
            pod(b, "error_ratio(istio_requests_total)", [(0, 0.02), (60, 0.0)]),
            pod(b, "pod_error_ratio", [(0, 0.5)]),  # a gauge of ours: read per pod only
        ]
    )
    by_name = {s.labels["__name__"]: s for s in rolled}
    assert set(by_name) == {
        "rate(container_cpu_usage_seconds_total)",
        "error_ratio(istio_requests_total)",
    }
    assert by_name["rate(container_cpu_usage_seconds_total)"].points == [(0, 0.5), (60, 1.0)]
    assert by_name["error_ratio(istio_requests_total)"].points == [(0, 0.02), (60, 0.3)]
    assert all(s.labels["deployment"] == "cart" and "pod" not in s.labels for s in rolled)
