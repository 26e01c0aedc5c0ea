"""Which Kubernetes workload an alert (or a series) is about, from its labels, whatever
vocabulary the cluster speaks: kube-state-metrics, Istio, Linkerd, OpenTelemetry, Helm's
recommended labels, or plain ``app`` / ``service`` labels.

``identify(labels)`` answers a ``Workload`` (namespace, kind, name) or None. The first row of
this table that has a value wins; docs/identity.md explains each row.

====  ==============================================================  ===========================
rank  labels (first present wins within a row)                       kind
====  ==============================================================  ===========================
1     Istio ``destination_workload`` (the callee)                     unknown (None)
2     Linkerd ``dst_deployment``, ``dst_statefulset``,                the label's
      ``dst_daemonset`` (the callee)
3     kube-state-metrics ``deployment``, ``statefulset``,             the label's; a ``job_name``
      ``daemonset``, ``cronjob``, ``job_name`` (Linkerd's own         ``<cj>-<8+ digits>`` is
      ``deployment`` too)                                             CronJob ``<cj>``
4     OpenTelemetry ``k8s_deployment_name`` / ``k8s.deployment.name``  the label's
      (and the statefulset, daemonset, cronjob, job variants)
5     OpenTelemetry ``service_name`` / ``service.name``               unknown
6     Prometheus ``job`` shaped ``<namespace>/<name>``               unknown
7     Istio ``source_workload`` (only when there is no destination)   unknown
8     Helm ``app.kubernetes.io/name`` (+ ``/instance``), or the       unknown
      sanitised ``app_kubernetes_io_name`` (+ ``_instance``)
9     ``app``, ``k8s-app``, ``k8s_app``                               unknown
10    ``pod``, ``k8s_pod_name``, ``k8s.pod.name``: its owner          from the Kubernetes objects,
                                                                      else the pod name's shape
11    ``service``                                                     unknown
12    a plain Prometheus ``job`` (a scrape job, rarely a workload)    unknown
====  ==============================================================  ===========================

Labels that describe the metric itself (a callee, a Kubernetes object, an OTel resource) come
before the labels Prometheus adds for the target it scraped (``pod``, ``service``, ``job``):
when a relay (kube-state-metrics, an OTel collector, an Istio proxy) is scraped, those name the
relay or the reporting proxy, not the workload. Among target labels, the pod template's own
``app`` labels come first because collectors name components by them (``service_of``).

Ambiguity: a higher row always beats a lower one and, within a row, the label listed first
wins. Every other workload name the labels spell is kept in ``alternatives``, most likely
first, so a caller that can afford to ask about several (metric queries) still can; a caller
that needs one name takes ``name``. A kind that the labels do not state is None ("some
workload"), never a guess dressed as a fact. For an incident (``identify_incident``), one
workload per alert; the shared labels lead only when an alert agrees, since they may have lost
what tells two workloads apart.

Namespace: the row's own namespace label (``destination_workload_namespace``,
``dst_namespace``, ``k8s_namespace_name``, ``service_namespace``, ``source_workload_namespace``,
the ``<namespace>/`` part of ``job`` or ``service_name``), else ``namespace``, then
``exported_namespace``, ``kubernetes_namespace``, ``k8s_namespace_name`` /
``k8s.namespace.name``, ``destination_workload_namespace``, ``service_namespace`` /
``service.namespace``, then the ``<namespace>/`` part of ``job`` or ``service_name``.

Pods are never suspects, their workloads are: ownerReferences (pod -> ReplicaSet ->
Deployment, pod -> Job -> CronJob, pod -> StatefulSet / DaemonSet) win when the objects are at
hand (``owners_from_objects``); otherwise the name's shape says it: ``<deploy>-<hash>-<xxxxx>``
is a Deployment, ``<cronjob>-<minutes>-<xxxxx>`` a CronJob, ``<sts>-<ordinal>`` a StatefulSet,
and ``<owner>-<xxxxx>`` names its owner without saying whether that is a DaemonSet, a Job or a
bare ReplicaSet (kind None). A name of no known shape is a bare Pod, its own workload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "Pod"]

# Kubernetes' random suffixes (pod names, pod-template-hash) use this alphabet: no vowels, no
# 0/1/3, so ordinary words rarely look like one.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$")
_CRONJOB_JOB = re.compile(r"^(?P<name>.+)-\d{8,}$")
_CRONJOB_POD = re.compile(rf"^(?P<name>.+)-\d{{8,}}-{_SAFE}{{5}}$")
_STATEFULSET_POD = re.compile(r"^(?P<name>.+)-\d{1,4}$")
_OWNED_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{5}}$")

# Values meaning "no value": Istio and Linkerd say "unknown" when they could not tell.
_BLANK = ("", "unknown")

_GENERAL_NAMESPACE = (
    "namespace",
    "exported_namespace",
    "kubernetes_namespace",
    "k8s_namespace_name",
    "k8s.namespace.name",
    "destination_workload_namespace",
    "service_namespace",
    "service.namespace",
)
_KIND_OF_RESOURCE: dict[str, WorkloadKind] = {
    "Deployment": "Deployment",
    "StatefulSet": "StatefulSet",
    "DaemonSet": "DaemonSet",
    "CronJob": "CronJob",
    "Job": "Job",
}


@dataclass(frozen=True)
class Workload:
    """A Kubernetes workload: ``name`` is what collectors call the component."""

    name: str
    namespace: str | None = None
    kind: WorkloadKind | None = None  # None: a workload whose kind the labels do not say
    source: str = ""  # the label that named it
    pod: str | None = None  # the pod the labels named, when the workload came from one
    container: str | None = None
    alternatives: tuple[str, ...] = ()  # other names the labels spell, most likely first

    @property
    def ambiguous(self) -> bool:
        return bool(self.alternatives)

    @property
    def names(self) -> tuple[str, ...]:
        """``name`` then the alternatives: every workload the labels may mean."""
        return (self.name, *self.alternatives)


def _get(labels: Mapping[str, str], key: str) -> str | None:
    value = labels.get(key)
    return value if value and value not in _BLANK else None


def _split(value: str) -> tuple[str | None, str]:
    """``ns/name`` -> (ns, name); anything else -> (None, value)."""
    ns, sep, name = value.rpartition("/")
    return (ns, name) if sep and ns and name else (None, value)


def helm_name(name: str, instance: str | None) -> str:
    """The object name Helm's ``fullname`` helper gives a chart's workload: ``<instance>``
    when the release name already contains the chart name, else ``<instance>-<name>``,
    trimmed to 63 characters."""
    if not instance:
        return name
    full = instance if name in instance else f"{instance}-{name}"
    return full[:63].rstrip("-")


def pod_owner(pod: str) -> tuple[WorkloadKind | None, str]:
    """The workload a pod belongs to, from the shape of its name alone."""
    if m := _CRONJOB_POD.match(pod):
        return "CronJob", m["name"]
    if m := _DEPLOYMENT_POD.match(pod):
        return "Deployment", m["name"]
    if m := _STATEFULSET_POD.match(pod):
        return "StatefulSet", m["name"]
    if m := _OWNED_POD.match(pod):
        return None, m["name"]  # DaemonSet, Job or bare ReplicaSet: the API would know
    return "Pod", pod


def _job(name: str) -> tuple[WorkloadKind, str]:
    if m := _CRONJOB_JOB.match(name):
        return "CronJob", m["name"]
    return "Job", name


_OTEL_RESOURCES: tuple[tuple[str, WorkloadKind], ...] = (
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("cronjob", "CronJob"),
    ("job", "Job"),
)
# A row: (label, kind, the row's own namespace labels)
_Row = tuple[tuple[tuple[str, WorkloadKind | None], ...], tuple[str, ...]]
_ROWS: tuple[_Row, ...] = (
    ((("destination_workload", None),), ("destination_workload_namespace",)),
    (
        (
            ("dst_deployment", "Deployment"),
            ("dst_statefulset", "StatefulSet"),
            ("dst_daemonset", "DaemonSet"),
        ),
        ("dst_namespace",),
    ),
    (
        (
            ("deployment", "Deployment"),
            ("statefulset", "StatefulSet"),
            ("daemonset", "DaemonSet"),
            ("cronjob", "CronJob"),
            ("job_name", "Job"),
            # KubeHpaMaxedOut and its kin: an autoscaler is named after what it scales, as a rule.
            ("horizontalpodautoscaler", None),
        ),
        (),
    ),
    (
        tuple(
            (f"k8s{sep}{res}{sep}name", kind) for res, kind in _OTEL_RESOURCES for sep in ("_", ".")
        ),
        ("k8s_namespace_name", "k8s.namespace.name"),
    ),
    ((("service_name", None), ("service.name", None)), ("service_namespace", "service.namespace")),
)
_APP_LABELS = ("app", "k8s-app", "k8s_app")
_POD_LABELS = ("pod", "k8s_pod_name", "k8s.pod.name")
_HELM = (
    ("app.kubernetes.io/name", "app.kubernetes.io/instance"),
    ("app_kubernetes_io_name", "app_kubernetes_io_instance"),
)


def namespace_of(labels: Mapping[str, str]) -> str | None:
    """The namespace the labels name, by the general order (no row's own label first)."""
    for key in _GENERAL_NAMESPACE:
        if value := _get(labels, key):
            return value
    for key in ("job", "service_name", "service.name"):
        if (value := _get(labels, key)) and (ns := _split(value)[0]):
            return ns
    return None


def _candidates(
    labels: Mapping[str, str], owners: Mapping[str, Workload]
) -> list[tuple[str, WorkloadKind | None, str | None, str, str | None]]:
    """Every (name, kind, own namespace, label, pod) the labels spell, best first."""
    out: list[tuple[str, WorkloadKind | None, str | None, str, str | None]] = []
    for keys, ns_keys in _ROWS:
        own_ns = next((v for k in ns_keys if (v := _get(labels, k))), None)
        for key, kind in keys:
            if not (value := _get(labels, key)):
                continue
            name_ns, name = _split(value) if key.startswith("service") else (None, value)
            if kind == "Job":
                kind, name = _job(name)
            out.append((name, kind, own_ns or name_ns, key, None))
    if (job := _get(labels, "job")) and (split := _split(job))[0]:
        out.append((split[1], None, split[0], "job", None))
    source = _get(labels, "source_workload")
    if source and not any(c[3] == "destination_workload" for c in out):
        out.append(
            (source, None, _get(labels, "source_workload_namespace"), "source_workload", None)
        )
    for name_key, instance_key in _HELM:
        if chart := _get(labels, name_key):
            out.append((helm_name(chart, _get(labels, instance_key)), None, None, name_key, None))
    out += [(v, None, None, k, None) for k in _APP_LABELS if (v := _get(labels, k))]
    for key in _POD_LABELS:
        if pod := _get(labels, key):
            known = owners.get(pod)
            kind, name = (known.kind, known.name) if known else pod_owner(pod)
            out.append((name, kind, known.namespace if known else None, key, pod))
    if service := _get(labels, "service"):
        out.append((service, None, None, "service", None))
    if (job := _get(labels, "job")) and not _split(job)[0]:
        out.append((job, None, None, "job", None))
    return out


def identify(
    labels: Mapping[str, str], *, owners: Mapping[str, Workload] | None = None
) -> Workload | None:
    """The workload the labels are about, or None when nothing names one. ``owners`` (pod name
    -> workload, see ``owners_from_objects``) beats the shape of a pod's name."""
    found = _candidates(labels, owners or {})
    if not found:
        return None
    name, kind, own_ns, source, pod = found[0]
    alternatives: list[str] = []
    for other, *_ in found[1:]:
        if other != name and other not in alternatives:
            alternatives.append(other)
    return Workload(
        name=name,
        namespace=own_ns or namespace_of(labels),
        kind=kind,
        source=source,
        pod=pod or next((p for n, *_, p in found if p and n == name), None),
        container=_get(labels, "container") or _get(labels, "k8s_container_name"),
        alternatives=tuple(alternatives),
    )


def namespaces_of(labels: Mapping[str, str]) -> set[str]:
    """Every namespace worth reading for these labels: the workload's and the general one,
    and ``exported_namespace`` (the metric's own when a relay's ``namespace`` shadowed it)."""
    found = {ns for key in ("namespace", "exported_namespace") if (ns := _get(labels, key))}
    if general := namespace_of(labels):
        found.add(general)
    if (workload := identify(labels)) and workload.namespace:
        found.add(workload.namespace)
    return found


def identify_all(label_sets: Iterable[Mapping[str, str]]) -> list[Workload]:
    """One workload per label set that names one, in order, without repeats."""
    out: list[Workload] = []
    for labels in label_sets:
        if (w := identify(labels)) is not None and w not in out:
            out.append(w)
    return out


def identify_incident(
    common_labels: Mapping[str, str], alert_labels: Iterable[Mapping[str, str]]
) -> list[Workload]:
    """The workloads an incident's alerts are about, one per alert, without repeats. Shared
    labels are a subset of every alert's and may lose what tells workloads apart (two Helm
    releases of one chart share ``app.kubernetes.io/name``, not ``/instance``): they come first
    only when an alert agrees, and speak alone only when no alert names a workload."""
    found = identify_all(alert_labels)
    shared = identify(common_labels)
    if shared is None:
        return found
    agreeing = [w for w in found if w.name == shared.name]
    if agreeing:
        return [agreeing[0], *(w for w in found if w is not agreeing[0])]
    return found or [shared]


def owners_from_objects(
    pods: Iterable[Mapping[str, Any]],
    owners: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Workload]:
    """Pod name -> its workload, following ownerReferences through ``owners`` (ReplicaSets,
    Jobs): pod -> ReplicaSet -> Deployment, pod -> Job -> CronJob. ``pods`` and ``owners`` are
    API objects as dicts (``metadata.name``, ``metadata.namespace``,
    ``metadata.ownerReferences``)."""
    parent: dict[str, tuple[str, str]] = {}
    for obj in owners:
        md = obj.get("metadata") or {}
        ref = _controller(md)
        if ref is not None:
            parent[str(md.get("name", ""))] = ref
    out: dict[str, Workload] = {}
    for pod in pods:
        md = pod.get("metadata") or {}
        ref = _controller(md)
        if ref is None:
            continue
        kind, name = ref
        if kind in ("ReplicaSet", "Job") and name in parent:
            kind, name = parent[name]
        known = _KIND_OF_RESOURCE.get(kind)
        out[str(md.get("name", ""))] = Workload(
            name=name,
            namespace=md.get("namespace"),
            kind=known,
            source="ownerReferences",
            pod=str(md.get("name", "")),
        )
    return out


def _controller(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    refs = metadata.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref or not ref.get("name"):
        return None
    return str(ref.get("kind", "")), str(ref["name"])
