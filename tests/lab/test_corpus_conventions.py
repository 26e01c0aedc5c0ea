"""The corpus's real-world half: the same worlds as real stacks label them (Istio, OpenTelemetry,
kube-state-metrics, Helm), so that the score on it says what carries over beyond our labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from triage_lab.corpus import generate_corpus
from triage_lab.scenarios import find_scenarios, load_scenario, load_truth

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
        # Same points at the same times: only label names differ.
        values = [line.rsplit("}", 1)[-1] for line in (d / "metrics.om").read_text().splitlines()]
        theirs = [
            line.rsplit("}", 1)[-1] for line in (ours / "metrics.om").read_text().splitlines()
        ]
        assert values == theirs
    assert styles == set(WORKLOAD_LABEL)


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
