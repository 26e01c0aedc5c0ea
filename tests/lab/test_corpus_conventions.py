"""The corpus's real-world half: the same worlds as real stacks label them (Istio, OpenTelemetry,
kube-state-metrics, Helm), so that the score on it says what carries over beyond our labels."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from triage_lab.corpus import generate_corpus
from triage_lab.scenarios import find_scenarios, load_scenario, load_truth

from collectors.golden import derive
from collectors.metrics import RULE_LABELS_DROPPED
from collectors.prometheus import expr_from_generator_url, rule_selectors
from collectors.sources import FileMetricSource

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "scenarios" / "k8s-faults-real-world"
# The label that names the alerting workload in each stack's alert rules.
WORKLOAD_LABEL = {
    "istio": "destination_workload",
    "otel": "service_name",
    "kube-state-metrics": None,  # deployment / statefulset / daemonset
    "helm": "app_kubernetes_io_name",
}


@pytest.fixture(scope="module")
def real_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("real-world")
    generate_corpus(dest, conventions="real-world")
    return dest


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_committed_real_world_half_is_the_generation(real_world: Path) -> None:
    assert _files(COMMITTED) == _files(real_world)


def test_every_style_is_used_and_the_truth_and_timing_are_those_of_our_half(
    real_world: Path,
) -> None:
    styles = set()
    for d in find_scenarios(real_world):
        source = load_scenario(d).meta.source
        styles.add(source.rsplit("/", 1)[1])
        ours = REPO / "scenarios" / "k8s-faults" / d.name.replace("k8s-rw-", "k8s-")
        assert load_truth(d) == load_truth(ours)
        # Same points at the same times: only label names differ, but for the request families
        # an exporter publishes as counters and histograms (checked below).
        assert _points(d, skip=EXPORTED) == _points(ours, skip=EXPORTED)
    assert styles == set(WORKLOAD_LABEL)


# Ours, and what Istio, OpenTelemetry, Spring, cAdvisor and kube-state-metrics publish instead.
EXPORTED = (
    "service_request_rate",
    "service_error_ratio",
    "service_p99_seconds",
    "edge_error",
    "edge_request_duration",
    "istio_request",
    "http_server_request",
    "service_cpu_cores",
    "service_memory_bytes",
    "service_throttled_ratio",
    "service_restarts",
    "container_",
    "kube_pod_container_",
)


def _points(d: Path, skip: tuple[str, ...]) -> list[str]:
    lines = (d / "metrics.om").read_text().splitlines()
    return sorted(
        line.rsplit("}", 1)[-1] for line in lines if "{" in line and not line.startswith(skip)
    )


async def test_exporters_series_give_back_the_worlds_golden_signals(real_world: Path) -> None:
    """Istio, OpenTelemetry and Spring count requests by status and bucket their latency; read
    as Prometheus reads them, they say what the world's gauges said, and the SLO alert's rule is
    PromQL over them."""
    seen = set()
    for d in find_scenarios(real_world):
        scenario = load_scenario(d)
        style = scenario.meta.source.rsplit("/", 1)[1]
        if style == "kube-state-metrics" or style in seen:
            continue
        seen.add(style)
        ours = load_scenario(REPO / "scenarios" / "k8s-faults" / d.name.replace("k8s-rw-", "k8s-"))
        alert = scenario.meta.webhooks[0].alerts[0]
        rule = expr_from_generator_url(alert.generatorURL) or ""
        assert "rate(" in rule and "service_error_ratio" not in rule, rule
        assert "service_p99_seconds" not in rule
        svc = ours.meta.webhooks[0].alerts[0].labels["service"]
        start, end = alert.startsAt - timedelta(hours=2), alert.startsAt + timedelta(hours=1)
        theirs = derive(
            [
                s
                for q in rule_selectors(rule, RULE_LABELS_DROPPED)
                for s in await FileMetricSource(scenario.metrics).query_range(q, start, end, 60)
            ]
        )
        gauges = {
            s.labels["__name__"]: dict(s.points)
            for s in await FileMetricSource(ours.metrics).query_range(
                f'{{service="{svc}"}}', start, end, 60
            )
        }
        derived = {s.labels["__name__"].split("(")[0]: dict(s.points) for s in theirs}
        metric = "error_ratio" if "_bucket" not in rule else "p99"
        world = gauges["service_error_ratio" if metric == "error_ratio" else "service_p99_seconds"]
        got = derived[metric]
        assert len(got) > 30
        unit = 1000.0 if style == "istio" and metric == "p99" else 1.0
        for t, v in got.items():
            if metric == "error_ratio":
                assert v == pytest.approx(world[t], abs=1e-3)
            else:  # known within its bucket
                assert world[t] * 0.5 < v / unit < world[t] * 2
    assert seen == {"istio", "otel", "helm"}


def test_alerts_name_their_workload_only_in_their_stacks_vocabulary(real_world: Path) -> None:
    for d in find_scenarios(real_world):
        scenario = load_scenario(d)
        style = scenario.meta.source.rsplit("/", 1)[1]
        ours = load_scenario(REPO / "scenarios" / "k8s-faults" / d.name.replace("k8s-rw-", "k8s-"))
        pairs = zip(scenario.meta.webhooks, ours.meta.webhooks, strict=True)
        for hook, our_hook in pairs:
            for alert, our_alert in zip(hook.alerts, our_hook.alerts, strict=True):
                svc = our_alert.labels.get("service")
                if not svc:
                    assert alert.labels == our_alert.labels
                    continue
                label = WORKLOAD_LABEL[style]
                if label is None:
                    assert svc in {alert.labels.get(k) for k in ("deployment", "statefulset")}
                    assert alert.labels["service"] == "kube-state-metrics"
                else:
                    assert alert.labels[label] == svc and "service" not in alert.labels
                    assert f"service%3D%22{svc}" not in alert.generatorURL


def test_helm_styled_objects_carry_the_chart_labels(real_world: Path) -> None:
    helm = [
        d
        for d in find_scenarios(real_world)
        if load_scenario(d).meta.source.endswith("real-world/helm")
    ]
    assert helm
    objects = json.loads((helm[0] / "kubernetes.json").read_text())
    for deployment in objects["deployments"]:
        labels = deployment["metadata"]["labels"]
        if "app" in labels:
            assert labels["app.kubernetes.io/instance"] == labels["app"]
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
