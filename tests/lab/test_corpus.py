"""The Kubernetes fault corpus: deterministic, complete, loadable, and free of giveaways."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes.client import ApiClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from triage_lab.corpus import generate_corpus
from triage_lab.scenarios import KUBE_KINDS, Scenario, find_scenarios, load_scenario, load_truth

from triage.models import FaultKind

COMMITTED = Path(__file__).resolve().parents[2] / "scenarios" / "k8s-faults"
FORBIDDEN_WORDS = {"root", "cause", "culprit", "fault", "faults"}
SELECTOR = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_]+="[^"]*",?)*)\}$')


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("corpus")
    generate_corpus(dest)
    return dest


@pytest.fixture(scope="module")
def scenarios(corpus: Path) -> list[Scenario]:
    return [load_scenario(d) for d in find_scenarios(corpus)]


Sample = tuple[str, dict[str, str], float, float]  # name, labels, timestamp, value


@pytest.fixture(scope="module")
def samples(scenarios: list[Scenario]) -> dict[str, list[Sample]]:
    """Parsed once: the OpenMetrics parser is the slow part of these tests."""
    out: dict[str, list[Sample]] = {}
    for s in scenarios:
        rows = out.setdefault(s.name, [])
        for family in text_string_to_metric_families(s.metrics):
            for x in family.samples:
                assert x.timestamp is not None, (s.name, x.name)
                rows.append((x.name, x.labels, float(x.timestamp), x.value))
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(corpus: Path, tmp_path: Path) -> None:
    again = generate_corpus(tmp_path)
    assert [p.name for p in again] == [p.name for p in find_scenarios(corpus)]
    assert _files(tmp_path) == _files(corpus)


def test_another_seed_gives_other_scenarios(corpus: Path, tmp_path: Path) -> None:
    generate_corpus(tmp_path, seed=8, variants=1)
    first = json.loads((tmp_path / "k8s-001" / "truth.json").read_text())
    assert (tmp_path / "k8s-001" / "metrics.om").read_bytes() != (
        corpus / "k8s-001" / "metrics.om"
    ).read_bytes()
    assert first["category"] in get_args(FaultKind)


def test_committed_corpus_is_the_default_generation(corpus: Path) -> None:
    """Nobody hand-edits scenarios/k8s-faults: regenerate it with generate_corpus instead."""
    assert COMMITTED.is_dir(), "scenarios/k8s-faults is missing: run triage eval generate-corpus"
    assert _files(COMMITTED) == _files(corpus)


def test_every_category_has_three_variants(corpus: Path) -> None:
    dirs = find_scenarios(corpus)
    categories = Counter(load_truth(d).category for d in dirs)
    assert len(dirs) >= 36
    assert len(categories) >= 12
    assert all(n >= 3 for n in categories.values()), categories
    assert set(categories) <= set(get_args(FaultKind))


def test_scenarios_load_and_truth_points_at_real_objects(scenarios: list[Scenario]) -> None:
    for s in scenarios:
        truth = load_truth(s.path)
        kube = s.kubernetes
        assert kube.pods and kube.deployments and kube.replicasets and kube.events, s.name
        assert s.logs and s.meta.call_graph, s.name
        services = {n for edge in s.meta.call_graph for n in edge}
        assert truth.propagation[0] == truth.service, s.name
        assert set(truth.propagation[1:]) <= services, s.name
        firing = [a for h in s.meta.webhooks for a in h.alerts if a.status == "firing"]
        # the incident's own alert is on a service the fault reaches, after the onset
        symptom = s.meta.webhooks[0].alerts[0]
        assert symptom.labels["service"] in truth.propagation, s.name
        assert symptom.startsAt > truth.onset, s.name
        assert firing, s.name
        names = {
            o["metadata"]["name"]
            for kind in (
                "deployments",
                "statefulsets",
                "configmaps",
                "secrets",
                "horizontalpodautoscalers",
                "nodes",
                "services",
                "ingresses",
                "httproutes",
                "resourcequotas",
                "limitranges",
                "daemonsets",
                "pods",
                "leases",
            )
            for o in kube.of(kind)
        }
        if truth.kind not in ("NetworkPolicy",) and not (
            truth.kind == "Secret" and truth.detail == "missing"
        ):
            assert truth.name in names, (s.name, truth.kind, truth.name)


def test_metrics_parse_and_hold_every_alert_expression(
    scenarios: list[Scenario], samples: dict[str, list[Sample]]
) -> None:
    for s in scenarios:
        series = {(name, frozenset(labels.items())) for name, labels, _, _ in samples[s.name]}
        for hook in s.meta.webhooks:
            for alert in hook.alerts:
                expr = parse_qs(urlsplit(alert.generatorURL).query)["g0.expr"][0]
                m = SELECTOR.match(expr)
                assert m, (s.name, expr)
                wanted = set(re.findall(r'([a-zA-Z_]+)="([^"]*)"', m.group(2)))
                assert any(name == m.group(1) and wanted <= labels for name, labels in series), (
                    s.name,
                    expr,
                )


def test_the_symptom_departs_after_the_onset(
    scenarios: list[Scenario], samples: dict[str, list[Sample]]
) -> None:
    """The alerted series (error ratio or latency) leaves its baseline after the onset."""
    for s in scenarios:
        truth = load_truth(s.path)
        alert = s.meta.webhooks[0].alerts[0]
        expr = parse_qs(urlsplit(alert.generatorURL).query)["g0.expr"][0]
        name = expr.split("{")[0]
        want = {"service": alert.labels["service"]}
        values = [
            (t, v)
            for n, labels, t, v in samples[s.name]
            if n == name and want.items() <= labels.items() and "pod" not in labels
        ]
        onset = truth.onset.timestamp()
        before = sorted(v for t, v in values if t < onset - 120)
        after = [v for t, v in values if t > alert.startsAt.timestamp()]
        assert before and after, s.name
        assert max(after) > 1.5 * before[len(before) // 2], (s.name, name)


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)] if value is not None else []


def _names_and_labels(s: Scenario, rows: list[Sample]) -> list[str]:
    out = [s.name, s.meta.description, *(n for edge in s.meta.call_graph for n in edge)]
    for hook in s.meta.webhooks:
        out += [*hook.groupKey.split(), *hook.groupLabels.values(), *hook.commonLabels.values()]
        for a in hook.alerts:
            out += [*a.labels.values(), *a.annotations.values()]
    for kind in type(s.kubernetes).model_fields:
        for obj in s.kubernetes.of(kind):
            meta = obj.get("metadata", {})
            out += [
                meta.get("name", ""),
                *_strings(meta.get("labels", {})),
                *_strings(meta.get("annotations", {})),
            ]
    for name, labels, _, _ in rows:
        out += [name, *labels.values()]
    out += [f"{x.namespace}/{x.pod}/{x.container}" for x in s.logs]
    return out


def test_nothing_but_truth_gives_the_answer_away(
    scenarios: list[Scenario], samples: dict[str, list[Sample]]
) -> None:
    categories = set(get_args(FaultKind))
    for s in scenarios:
        d = s.path
        text = "\n".join(p.read_text() for p in sorted(d.iterdir()) if p.name != "truth.json")
        words = set(re.split(r"[^a-z0-9]+", text.lower()))
        assert not words & FORBIDDEN_WORDS, (d.name, words & FORBIDDEN_WORDS)
        for category in categories:
            if "_" in category:
                assert category not in text.lower(), (d.name, category)
        for value in _names_and_labels(s, samples[s.name]):
            low = value.lower()
            assert not any(c in low for c in categories), (d.name, value)


def test_variants_differ_in_names_and_timing(scenarios: list[Scenario]) -> None:
    by_category: dict[str, list[tuple[str, str, str]]] = {}
    for s in scenarios:
        truth = load_truth(s.path)
        ns = s.meta.webhooks[0].alerts[0].labels["namespace"]
        by_category.setdefault(truth.category, []).append(
            (truth.service, ns, truth.onset.isoformat())
        )
    for category, seen in by_category.items():
        assert len({onset for *_, onset in seen}) == len(seen), category
        assert len({ns for _, ns, _ in seen}) > 1, category


LIST_TYPES = {
    "namespaces": "V1NamespaceList",
    "nodes": "V1NodeList",
    "pods": "V1PodList",
    "deployments": "V1DeploymentList",
    "replicasets": "V1ReplicaSetList",
    "statefulsets": "V1StatefulSetList",
    "daemonsets": "V1DaemonSetList",
    "controllerrevisions": "V1ControllerRevisionList",
    "configmaps": "V1ConfigMapList",
    "secrets": "V1SecretList",
    "horizontalpodautoscalers": "V2HorizontalPodAutoscalerList",
    "events": "CoreV1EventList",
    "services": "V1ServiceList",
    "networkpolicies": "V1NetworkPolicyList",
}


def test_the_kubernetes_client_reads_every_object(scenarios: list[Scenario]) -> None:
    """The fixture server hands these to the real client: its typed models must accept them."""
    api = ApiClient()
    assert set(LIST_TYPES) == set(KUBE_KINDS)
    for s in scenarios:
        for kind, type_name in LIST_TYPES.items():
            text = json.dumps({"metadata": {}, "items": s.kubernetes.of(kind)})
            try:
                parsed = api.deserialize(text, type_name, "application/json")
            except TypeError:  # kubernetes < 35 deserializes a response object
                parsed = api.deserialize(SimpleNamespace(data=text), type_name)
            assert len(parsed.items) == len(s.kubernetes.of(kind)), (s.name, kind)
