"""collectors.identity: any alert's labels -> the Kubernetes workload it is about."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.contracts import Evidence, EvidenceItem
from collectors.identity import (
    Workload,
    helm_name,
    identify,
    namespace_of,
    namespaces_of,
    owners_from_objects,
    pod_owner,
)
from collectors.kubernetes.common import scope_namespaces, service_of
from collectors.metrics import expand
from triage.analyse.heuristic import HeuristicAnalyzer, alert_component
from triage.investigate.ranking import alerting_components, rank
from triage.models import AlertSnapshot, IncidentState

ONSET = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def incident(*label_sets: dict[str, str]) -> IncidentState:
    common = dict(set.intersection(*(set(ls.items()) for ls in label_sets))) if label_sets else {}
    return IncidentState(
        incident_id="inc-id",
        group_key="{}:{}",
        status="firing",
        first_seen=ONSET,
        updated_at=ONSET,
        common_labels=common,
        alerts={
            f"fp{i}": AlertSnapshot(status="firing", labels=ls, starts_at=ONSET)
            for i, ls in enumerate(label_sets)
        },
    )


def ident(labels: dict[str, str]) -> tuple[str | None, str | None, str]:
    w = identify(labels)
    assert w is not None
    return w.namespace, w.kind, w.name


# --- one vocabulary each, as clusters send the labels ---


def test_kube_state_metrics_deployment_beats_the_relays_own_target_labels():
    # KubeDeploymentReplicasMismatch from kube-prometheus: job/service/pod are kube-state-metrics'.
    labels = {
        "alertname": "KubeDeploymentReplicasMismatch",
        "deployment": "checkout",
        "namespace": "shop",
        "job": "kube-state-metrics",
        "service": "prometheus-kube-state-metrics",
        "pod": "prometheus-kube-state-metrics-6c7d9b9f8d-x2x9k",
        "container": "kube-state-metrics",
        "instance": "10.0.3.7:8080",
    }
    w = identify(labels)
    assert w is not None
    assert (w.namespace, w.kind, w.name) == ("shop", "Deployment", "checkout")
    assert w.source == "deployment"
    assert "prometheus-kube-state-metrics" in w.alternatives  # ambiguity is kept, ranked lower


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"statefulset": "orders-db", "namespace": "shop"}, ("shop", "StatefulSet", "orders-db")),
        ({"daemonset": "node-exporter", "namespace": "mon"}, ("mon", "DaemonSet", "node-exporter")),
        ({"cronjob": "nightly", "namespace": "ops"}, ("ops", "CronJob", "nightly")),
        # KubeJobFailed: a CronJob's Job is named <cronjob>-<scheduled minute>.
        (
            {"job_name": "profiles-cleanup-29518144", "namespace": "community"},
            ("community", "CronJob", "profiles-cleanup"),
        ),
        ({"job_name": "db-migrate", "namespace": "shop"}, ("shop", "Job", "db-migrate")),
        # KubeHpaMaxedOut: the autoscaler, not kube-state-metrics that reports it.
        (
            {
                "horizontalpodautoscaler": "checkout",
                "namespace": "shop",
                "job": "kube-state-metrics",
            },
            ("shop", None, "checkout"),
        ),
    ],
)
def test_kube_state_metrics_kinds(labels, expected):
    assert ident(labels) == expected


def test_kube_state_metrics_pod_and_container_name_the_pods_workload():
    # KubePodCrashLooping: the pod is the subject, the scrape labels are the exporter's.
    labels = {
        "alertname": "KubePodCrashLooping",
        "pod": "payments-7d9f8b6c5d-qx7zt",
        "container": "payments",
        "namespace": "shop",
        "job": "kube-state-metrics",
        "service": "kube-state-metrics",
    }
    w = identify(labels)
    assert w is not None
    assert (w.namespace, w.kind, w.name) == ("shop", "Deployment", "payments")
    assert (w.pod, w.container) == ("payments-7d9f8b6c5d-qx7zt", "payments")


def test_istio_names_the_callee_in_its_own_namespace():
    # istio_requests_total as reported by the caller's sidecar: pod/namespace are the caller's.
    labels = {
        "alertname": "IstioHigh5xxRate",
        "reporter": "source",
        "source_workload": "productpage-v1",
        "source_workload_namespace": "frontend",
        "destination_workload": "reviews-v2",
        "destination_workload_namespace": "bookinfo",
        "destination_service_name": "reviews",
        "namespace": "frontend",
        "pod": "productpage-v1-6b746f74dc-9stvs",
    }
    w = identify(labels)
    assert w is not None
    assert (w.namespace, w.name) == ("bookinfo", "reviews-v2")
    assert w.pod is None  # the pod label was the reporter's, not the callee's


def test_istio_source_only_without_a_destination():
    labels = {
        "source_workload": "productpage-v1",
        "source_workload_namespace": "bookinfo",
        "destination_workload": "unknown",  # Istio's word for "could not tell"
    }
    assert ident(labels) == ("bookinfo", None, "productpage-v1")


def test_linkerd_names_the_callee_of_an_outbound_call():
    labels = {
        "direction": "outbound",
        "deployment": "web",
        "namespace": "emojivoto",
        "dst_deployment": "voting",
        "dst_namespace": "emojivoto-backend",
    }
    w = identify(labels)
    assert w is not None
    assert (w.namespace, w.kind, w.name) == ("emojivoto-backend", "Deployment", "voting")
    assert w.alternatives == ("web",)


def test_linkerd_inbound_names_its_own_deployment():
    labels = {"direction": "inbound", "deployment": "voting", "namespace": "emojivoto"}
    assert ident(labels) == ("emojivoto", "Deployment", "voting")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # Prometheus-translated resource attributes
        (
            {"service_name": "cart", "service_namespace": "shop", "job": "shop/cart"},
            ("shop", None, "cart"),
        ),
        # dotted names, as the OTLP receiver keeps them with UTF-8 names
        ({"service.name": "cart", "k8s.namespace.name": "shop"}, ("shop", None, "cart")),
        # the k8sattributes processor names the Deployment itself: the more specific wins
        (
            {
                "service_name": "cart",
                "k8s_deployment_name": "cart-v2",
                "k8s_namespace_name": "shop",
                "k8s_pod_name": "cart-v2-5d9f8b6c5d-x2x9k",
            },
            ("shop", "Deployment", "cart-v2"),
        ),
        ({"job": "shop/cart"}, ("shop", None, "cart")),
        # behind an OTel collector, namespace/pod/job are the collector's own
        (
            {
                "service_name": "cart",
                "k8s_namespace_name": "shop",
                "namespace": "observability",
                "pod": "otel-collector-7c9b5d6f4d-q2w4z",
                "job": "otel-collector",
            },
            ("observability", None, "cart"),
        ),
    ],
)
def test_opentelemetry(labels, expected):
    assert ident(labels) == expected


def test_a_plain_job_is_a_scrape_job_unless_nothing_else_names_a_workload():
    w = identify({"job": "node-exporter", "service": "checkout", "namespace": "shop"})
    assert w is not None and w.name == "checkout" and w.alternatives == ("node-exporter",)
    assert ident({"job": "checkout", "namespace": "shop"}) == ("shop", None, "checkout")


def test_helm_recommended_labels_name_the_release_workload():
    assert helm_name("postgresql", None) == "postgresql"
    assert helm_name("postgresql", "orders") == "orders-postgresql"
    assert helm_name("postgresql", "billing-postgresql") == "billing-postgresql"
    labels = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "cache"}
    assert ident({**labels, "namespace": "shop"}) == ("shop", None, "cache-redis")


def test_helm_two_releases_of_one_chart_are_told_apart_by_instance():
    a = {"app_kubernetes_io_name": "postgresql", "app_kubernetes_io_instance": "orders"}
    b = {"app_kubernetes_io_name": "postgresql", "app_kubernetes_io_instance": "billing"}
    assert ident({**a, "namespace": "db"}) == ("db", None, "orders-postgresql")
    assert ident({**b, "namespace": "db"}) == ("db", None, "billing-postgresql")
    assert alerting_components(incident({**a, "namespace": "db"}, {**b, "namespace": "db"})) == {
        "orders-postgresql",
        "billing-postgresql",
    }


def test_helm_names_match_what_collectors_call_the_objects():
    obj = {
        "metadata": {
            "name": "orders-postgresql",
            "labels": {
                "app.kubernetes.io/name": "postgresql",
                "app.kubernetes.io/instance": "orders",
            },
        }
    }
    alert = {"app_kubernetes_io_name": "postgresql", "app_kubernetes_io_instance": "orders"}
    w = identify(alert)
    assert w is not None and w.name == service_of(obj) == "orders-postgresql"


@pytest.mark.parametrize("key", ["k8s-app", "k8s_app", "app", "service"])
def test_app_and_service_labels(key):
    assert ident({key: "kube-dns", "namespace": "kube-system"}) == ("kube-system", None, "kube-dns")


def test_app_labels_beat_service_as_collectors_name_components_by_them():
    w = identify({"app": "checkout", "service": "checkout-svc", "namespace": "shop"})
    assert w is not None and w.name == "checkout" and w.alternatives == ("checkout-svc",)


# --- precedence and ambiguity ---


def test_within_a_row_the_first_listed_label_wins_and_the_rest_are_alternatives():
    w = identify({"deployment": "api", "statefulset": "api-db", "namespace": "x"})
    assert w is not None
    assert (w.kind, w.name, w.alternatives, w.ambiguous) == (
        "Deployment",
        "api",
        ("api-db",),
        True,
    )


def test_labels_that_agree_are_not_ambiguous():
    w = identify({"service": "cart", "app": "cart", "pod": "cart-5d9f8b6c5d-x2x9k"})
    assert w is not None and w.name == "cart" and not w.ambiguous
    assert w.pod == "cart-5d9f8b6c5d-x2x9k"


def test_nothing_named_is_no_workload():
    assert identify({"alertname": "Watchdog", "severity": "none"}) is None
    assert identify({"destination_workload": "unknown", "namespace": "x"}) is None


# --- pods resolve to their workloads ---


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ("frontend-7d9f8b6c5d-x2x9k", ("Deployment", "frontend")),
        ("orders-db-0", ("StatefulSet", "orders-db")),
        ("kafka-12", ("StatefulSet", "kafka")),
        ("node-exporter-q2w4z", (None, "node-exporter")),  # DaemonSet? Job? says the API
        ("backup-29518144-b7kzq", ("CronJob", "backup")),
        ("debug", ("Pod", "debug")),
    ],
)
def test_a_pod_name_says_its_workload(pod, expected):
    assert pod_owner(pod) == expected


def test_a_statefulset_pod_is_never_a_suspect_its_statefulset_is():
    labels = {"alertname": "PodNotReady", "pod": "orders-db-0", "namespace": "shop"}
    w = identify(labels)
    assert w is not None
    assert (w.namespace, w.kind, w.name, w.pod) == (
        "shop",
        "StatefulSet",
        "orders-db",
        "orders-db-0",
    )
    assert alert_component(incident(labels)) == "orders-db"
    assert alerting_components(incident(labels)) == {"orders-db"}


def test_owner_references_beat_the_shape_of_a_pod_name():
    pods = [
        {
            "metadata": {
                "name": "web-6f7b8c9d4-x2x9k",
                "namespace": "shop",
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": "storefront-6f7b8c9d4", "controller": True}
                ],
            }
        },
        {
            "metadata": {
                "name": "agent-q2w4z",
                "namespace": "kube-system",
                "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "controller": True}],
            }
        },
    ]
    replicasets = [
        {
            "metadata": {
                "name": "storefront-6f7b8c9d4",
                "ownerReferences": [{"kind": "Deployment", "name": "storefront"}],
            }
        }
    ]
    owners = owners_from_objects(pods, replicasets)
    assert owners["agent-q2w4z"] == Workload(
        name="agent",
        namespace="kube-system",
        kind="DaemonSet",
        source="ownerReferences",
        pod="agent-q2w4z",
    )
    w = identify({"pod": "web-6f7b8c9d4-x2x9k"}, owners=owners)
    assert w is not None and (w.namespace, w.kind, w.name) == ("shop", "Deployment", "storefront")
    # without the objects, the name's shape is the best guess
    assert ident({"pod": "web-6f7b8c9d4-x2x9k"})[1:] == ("Deployment", "web")


# --- namespaces ---


@pytest.mark.parametrize(
    ("labels", "ns"),
    [
        ({"namespace": "a", "exported_namespace": "b"}, "a"),
        ({"exported_namespace": "b", "kubernetes_namespace": "c"}, "b"),
        ({"kubernetes_namespace": "c", "service": "x"}, "c"),
        ({"k8s_namespace_name": "d"}, "d"),
        ({"destination_workload_namespace": "e"}, "e"),
        ({"service_namespace": "f"}, "f"),
        ({"job": "g/api"}, "g"),
        ({"service_name": "h/api"}, "h"),
        ({"job": "api"}, None),
    ],
)
def test_namespace_without_a_namespace_label(labels, ns):
    assert namespace_of(labels) == ns


def test_a_workload_without_a_namespace_label_still_gets_one():
    assert ident({"exported_namespace": "shop", "deployment": "cart"}) == (
        "shop",
        "Deployment",
        "cart",
    )
    assert ident({"kubernetes_namespace": "shop", "app": "cart"}) == ("shop", None, "cart")
    assert ident({"service_name": "shop/cart"}) == ("shop", None, "cart")


def test_scope_reads_every_namespace_the_alerts_name():
    inc = incident(
        {"destination_workload": "reviews", "destination_workload_namespace": "bookinfo"},
        {"namespace": "monitoring", "exported_namespace": "shop", "deployment": "cart"},
    )
    assert scope_namespaces(inc) == ["bookinfo", "kube-system", "monitoring", "shop"]
    assert namespaces_of({"alertname": "x"}) == set()
    assert scope_namespaces(incident({"alertname": "Watchdog"})) == []


def test_metric_templates_expand_per_workload_the_alerts_name():
    inc = incident({"destination_workload": "reviews", "destination_workload_namespace": "bi"})
    assert expand('rate(errors{namespace="$namespace",workload="$workload"}[5m])', inc) == [
        ('rate(errors{namespace="bi",workload="reviews"}[5m])', "reviews")
    ]
    assert expand('{namespace="$namespace"}', inc) == [('{namespace="bi"}', "")]


# --- through the analyzer ---

NO_SUBJECT = EvidenceItem(
    id="alert-expr", kind="metric_shift", summary="the alert's own query moved", score=0.8
)


@pytest.mark.parametrize(
    ("labels", "component"),
    [
        (
            {
                "alertname": "IstioHigh5xxRate",
                "destination_workload": "reviews-v2",
                "destination_workload_namespace": "bookinfo",
                "reporter": "destination",
            },
            "reviews-v2",
        ),
        (
            {"alertname": "HighErrorRate", "service_name": "cart", "service_namespace": "shop"},
            "cart",
        ),
    ],
)
async def test_the_analyzer_names_an_istio_or_otel_workload_instead_of_unknown(labels, component):
    inc = incident(labels)
    assert alert_component(inc) == component
    rca = await HeuristicAnalyzer().analyze(
        inc, [Evidence(collector="metrics", status="ok", items=[NO_SUBJECT])]
    )
    assert rca.root_cause.component == component


async def test_an_otel_only_alert_ranks_its_own_workload_first_on_a_tie():
    # Two components with the same evidence: the one the alert is about leads.
    items = [
        EvidenceItem(id=f"m-{c}", kind="metric_shift", summary=f"{c} errors", subject=c, score=0.6)
        for c in ("cart", "aaa-other")
    ]
    inc = incident(
        {"alertname": "HighErrorRate", "service.name": "cart", "k8s.namespace.name": "s"}
    )
    evidence = [Evidence(collector="metrics", status="ok", items=items)]
    assert rank(inc, evidence)[0].component == "cart"
    rca = await HeuristicAnalyzer().analyze(inc, evidence)
    assert rca.root_cause.component == "cart"
