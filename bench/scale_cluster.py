"""Synthetic clusters for bench/scale.py: one corpus scenario's incident (its namespace, alerts,
logs and series) inside a cluster of a given size, shaped as real clusters are.

Filler is cloned from the scenario's own healthy objects, so objects are as large as real ones:
~20 workloads per namespace, ``pods_per_workload`` replicas each, a ReplicaSet and a Service per
workload, a few Normal events per pod; one node per ~30 pods, and per node one pod of each
kube-system DaemonSet (kube-proxy, CNI, node-exporter). The incident's namespace is filled up to
the same ~20 workloads. Every pod gets cAdvisor-, kube-state-metrics- and request-like series
(``SERIES_PER_POD``) at a 60 s scrape interval over the scenario's own time range.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from triage_lab.scenarios import KubeObjects, LogStream, Scenario

WORKLOADS_PER_NAMESPACE = 20
PODS_PER_NODE = 30
DAEMONSETS = ("kube-proxy", "calico-node", "node-exporter")
SCRAPE_S = 60
THIN_S = 600
# 10 cAdvisor series x 2 containers + 9 kube-state + 20 request counters + 4 x 13 histogram.
SERIES_PER_POD = 101
_CADVISOR = (
    ("container_cpu_usage_seconds_total", "counter", 0.2),
    ("container_cpu_cfs_periods_total", "counter", 10.0),
    ("container_cpu_cfs_throttled_periods_total", "counter", 0.1),
    ("container_network_receive_bytes_total", "counter", 5e4),
    ("container_network_transmit_bytes_total", "counter", 4e4),
    ("container_memory_working_set_bytes", "gauge", 2.1e8),
    ("container_memory_rss", "gauge", 1.9e8),
    ("container_fs_usage_bytes", "gauge", 3.0e7),
    ("container_spec_memory_limit_bytes", "gauge", 5.4e8),
    ("container_spec_cpu_quota", "gauge", 1e5),
)
_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
_CODES = ("200", "201", "404", "500", "503")
_ROUTES = ("/api/v1/items", "/api/v1/orders")
_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf")


@dataclass
class Cluster:
    objects: KubeObjects
    logs: list[LogStream]
    openmetrics: str
    stats: dict[str, int]


_TEMPLATE: dict[int, dict[str, Any]] = {}


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    m: dict[str, Any] = obj["metadata"]
    return m


def _healthy_pod(scenario: Scenario) -> dict[str, Any]:
    """A running Deployment pod of the scenario without restarts: the template for filler."""
    for pod in scenario.kubernetes.pods:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        refs = _meta(pod).get("ownerReferences") or []
        if (
            pod.get("status", {}).get("phase") == "Running"
            and statuses
            and all(s.get("ready") and not s.get("restartCount") for s in statuses)
            and any(r.get("kind") == "ReplicaSet" for r in refs)
        ):
            found: dict[str, Any] = pod
            return found
    raise SystemExit(f"{scenario.name}: no healthy Deployment pod to clone filler from")


def _pod(tmpl: dict[str, Any], ns: str, wl: str, rs: str, i: int, node: str) -> dict[str, Any]:
    pod = copy.deepcopy(tmpl)
    m = _meta(pod)
    name = f"{rs}-{i:05x}"
    m.update(name=name, namespace=ns, generateName=f"{rs}-", uid=f"uid-{ns}-{name}")
    m["labels"] = {"app": wl, "pod-template-hash": rs.rsplit("-", 1)[1]}
    m["ownerReferences"] = [{**m["ownerReferences"][0], "name": rs, "uid": f"uid-{ns}-{rs}"}]
    pod["spec"]["nodeName"] = node
    for c in pod["spec"]["containers"]:
        c.update(name=wl, image=f"registry.example.com/{ns}/{wl}:1.0.0")
        c.pop("env", None)  # the template's env names the scenario's own dependencies
    pod["spec"]["containers"] = pod["spec"]["containers"][:1]
    statuses = pod["status"].get("containerStatuses") or []
    pod["status"]["containerStatuses"] = [
        {**statuses[0], "name": wl, "image": f"registry.example.com/{ns}/{wl}:1.0.0"}
    ]
    return pod


def _named(tmpl: dict[str, Any], ns: str, name: str, **labels: str) -> dict[str, Any]:
    obj = copy.deepcopy(tmpl)
    m = _meta(obj)
    m.update(name=name, namespace=ns, uid=f"uid-{ns}-{name}")
    m.pop("managedFields", None)  # filler has not changed recently: no suspects among it
    m["labels"] = {"app": labels.get("app", name)}
    return obj


def _workload(
    out: KubeObjects, scenario: Scenario, ns: str, wl: str, pods: int, nodes: list[str], n: int
) -> list[str]:
    """A Deployment with its ReplicaSet, pods, Service and events; returns its pods' names."""
    k = scenario.kubernetes
    tmpl_pod = _TEMPLATE.get(id(scenario)) or _TEMPLATE.setdefault(
        id(scenario), _healthy_pod(scenario)
    )
    rs_name = f"{wl}-{zlib.crc32((ns + '/' + wl).encode()):010x}"
    dep = _named(k.deployments[0], ns, wl)
    dep["spec"].update(replicas=pods, selector={"matchLabels": {"app": wl}})
    dep["spec"]["template"]["metadata"]["labels"] = {"app": wl}
    dep["status"] = {"replicas": pods, "readyReplicas": pods, "availableReplicas": pods,
                     "updatedReplicas": pods, "observedGeneration": 1}  # fmt: skip
    rs = _named(k.replicasets[0], ns, rs_name, app=wl)
    _meta(rs)["ownerReferences"] = [{**(_meta(rs).get("ownerReferences") or [{}])[0],
                                    "kind": "Deployment", "name": wl, "uid": f"uid-{ns}-{wl}"}]  # fmt: skip
    rs["spec"].update(replicas=pods, selector={"matchLabels": {"app": wl}})
    rs["status"] = {"replicas": pods, "readyReplicas": pods, "availableReplicas": pods}
    svc = _named(k.services[0], ns, wl)
    svc["spec"]["selector"] = {"app": wl}
    svc["spec"].pop("clusterIP", None), svc["spec"].pop("clusterIPs", None)
    out.deployments.append(dep)
    out.replicasets.append(rs)
    out.services.append(svc)
    names = []
    for i in range(pods):
        pod = _pod(tmpl_pod, ns, wl, rs_name, i, nodes[(n + i) % len(nodes)])
        out.pods.append(pod)
        names.append(_meta(pod)["name"])
        for reason in ("Scheduled", "Pulled"):
            out.events.append(_event(ns, _meta(pod)["name"], reason, _meta(pod)))
    return names


def _event(ns: str, pod: str, reason: str, pod_meta: dict[str, Any]) -> dict[str, Any]:
    at = pod_meta.get("creationTimestamp", "2026-01-01T00:00:00Z")
    return {"apiVersion": "v1", "kind": "Event", "type": "Normal", "reason": reason, "count": 1,
            "message": f"{reason} {pod}", "firstTimestamp": at, "lastTimestamp": at,
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns},
            "source": {"component": "kubelet"},
            "metadata": {"name": f"{pod}.{reason.lower()}", "namespace": ns,
                         "uid": f"uid-ev-{ns}-{pod}-{reason}", "creationTimestamp": at}}  # fmt: skip


def _node(tmpl: dict[str, Any], name: str) -> dict[str, Any]:
    node = copy.deepcopy(tmpl)
    m = _meta(node)
    m.update(name=name, uid=f"uid-node-{name}")
    m["labels"] = {**(m.get("labels") or {}), "kubernetes.io/hostname": name}
    node["status"]["addresses"] = [{"address": name, "type": "Hostname"}]
    return node


def build(
    scenario: Scenario,
    pods_total: int,
    pods_per_workload: int,
    max_series: int,
    span: tuple[int, int],
) -> Cluster:
    """The scenario's objects, logs and series plus filler up to ``pods_total`` pods. Past
    ``max_series``, pods outside the incident's namespace and kube-system get one sample per
    THIN_S (what a 2-core machine can backfill in minutes; the incident's queries read the
    same series either way). ``span``: the Unix seconds an investigation reads."""
    k = scenario.kubernetes
    out = KubeObjects.model_validate(k.model_dump())
    incident_ns = str(_meta(_healthy_pod(scenario))["namespace"])
    nodes = [_meta(n)["name"] for n in k.nodes]
    tmpl_node = next(n for n in k.nodes if _node_ready(n))
    want_nodes = max(len(nodes), math.ceil(pods_total / PODS_PER_NODE))
    for i in range(len(nodes), want_nodes):
        nodes.append(f"node-{i:05d}")
        out.nodes.append(_node(tmpl_node, nodes[-1]))
    logs = list(scenario.logs)
    pods_by_ns: dict[str, list[tuple[str, str]]] = {}
    # kube-system: one pod of each DaemonSet per node.
    for ds in DAEMONSETS:
        obj = _named(k.deployments[0], "kube-system", ds)
        obj["kind"] = "DaemonSet"
        obj["status"] = {"desiredNumberScheduled": len(nodes), "numberReady": len(nodes)}
        out.daemonsets.append(obj)
        rs = f"{ds}-{zlib.crc32(ds.encode()):010x}"
        tmpl = _healthy_pod(scenario)
        for i, node in enumerate(nodes):
            pod = _pod(tmpl, "kube-system", ds, rs, i, node)
            _meta(pod)["ownerReferences"][0].update(kind="DaemonSet", name=ds)
            # What the DaemonSet controller labels its pods with (no pod-template-hash).
            _meta(pod)["labels"] = {
                "app": ds,
                "controller-revision-hash": rs.rsplit("-", 1)[1],
                "pod-template-generation": "1",
            }
            out.pods.append(pod)
            pods_by_ns.setdefault("kube-system", []).append((ds, _meta(pod)["name"]))
    # The incident's namespace up to ~20 workloads, then whole namespaces of filler.
    own = {service_name for service_name in _workload_names(k, incident_ns)}
    n = 0
    for i in range(max(0, WORKLOADS_PER_NAMESPACE - len(own))):
        wl = f"filler-{i:02d}"
        names = _workload(out, scenario, incident_ns, wl, pods_per_workload, nodes, n)
        pods_by_ns.setdefault(incident_ns, []).extend((wl, p) for p in names)
        n += len(names)
    room = pods_total - len(out.pods)
    for w in range(max(0, room // pods_per_workload)):
        ns = f"team-{w // WORKLOADS_PER_NAMESPACE:04d}"
        wl = f"svc-{w % WORKLOADS_PER_NAMESPACE:02d}"
        names = _workload(out, scenario, ns, wl, pods_per_workload, nodes, n)
        pods_by_ns.setdefault(ns, []).extend((wl, p) for p in names)
        n += len(names)
    start, end = span
    # Logs the logs collector reads: a few quiet lines for every pod in scope of the incident.
    for ns in (incident_ns, "kube-system"):
        for wl, pod_name in pods_by_ns.get(ns, []):
            lines = [f"{_rfc3339(t)} level=info msg=\"served\" workload={wl}"
                     for t in range(start, end, 300)]  # fmt: skip
            logs.append(LogStream(namespace=ns, pod=pod_name, container=wl, lines=lines))
    text = scenario.metrics.rstrip().removesuffix("# EOF").rstrip("\n")
    series = 0
    sparse: set[str] = set()
    if len(out.pods) * SERIES_PER_POD > max_series:
        sparse = set(pods_by_ns) - {incident_ns, "kube-system"}
    chunks = [text + "\n"] if text else []
    for chunk, count in _filler_series(pods_by_ns, start, end, sparse):
        chunks.append(chunk)
        series += count
    chunks.append("# EOF\n")
    stats = {
        "pods": len(out.pods),
        "workloads": len(out.deployments) + len(out.statefulsets) + len(out.daemonsets),
        "namespaces": len({_meta(p)["namespace"] for p in out.pods}),
        "nodes": len(out.nodes),
        "events": len(out.events),
        "filler_series": series,
        "sparse_namespaces": len(sparse),
        "incident_namespace_pods": sum(1 for p in out.pods if _meta(p)["namespace"] == incident_ns),
    }
    return Cluster(out, logs, "".join(chunks), stats)


def _workload_names(k: KubeObjects, ns: str) -> list[str]:
    return [
        _meta(o)["name"]
        for kind in ("deployments", "statefulsets", "daemonsets")
        for o in k.of(kind)
        if _meta(o).get("namespace") == ns
    ]


def _node_ready(node: dict[str, Any]) -> bool:
    conds = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _rfc3339(t: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


def _filler_series(
    pods_by_ns: dict[str, list[tuple[str, str]]], start: int, end: int, sparse: set[str]
) -> Iterator[tuple[str, int]]:
    """OpenMetrics families for every filler pod: steady values, one metric family at a time
    (OpenMetrics wants a family's samples together). Pods in ``sparse`` namespaces get every
    series at one sample per THIN_S."""
    times = list(range(start - start % SCRAPE_S, end + 1, SCRAPE_S))
    # Sparse namespaces keep every series, one sample per THIN_S: a 2-core machine backfills
    # a million series in minutes that way, and Prometheus' index is as large as with them all.
    thin = set(times[:: THIN_S // SCRAPE_S]) | {times[-1]}
    wiggle = [1 + 0.01 * ((i * 7919) % 11 - 5) / 5 for i in range(len(times))]
    pods = [(ns, wl, pod) for ns, members in sorted(pods_by_ns.items()) for wl, pod in members]

    def family(
        name: str, kind: str, rows: Iterator[tuple[str, float, bool, bool]]
    ) -> tuple[str, int]:
        out, count = [f"# TYPE {name} {kind}\n"], 0
        for sample, base, counter, sparse_row in rows:
            count += 1
            for i, (w, t) in enumerate(zip(wiggle, times, strict=True)):
                if sparse_row and t not in thin:
                    continue
                value = base * (i + 1) * SCRAPE_S if counter else base * w
                out.append(f"{sample} {value:.6g} {t}\n")
        return "".join(out), count

    for name, kind, base in _CADVISOR:
        yield family(name.removesuffix("_total"), kind, (
            (f'{name}{{namespace="{ns}",pod="{pod}",container="{c}"}}', base, kind == "counter", ns in sparse)
            for ns, wl, pod in pods for c in (wl, "istio-proxy")))  # fmt: skip
    yield family("kube_pod_container_status_restarts", "counter", (
        (f'kube_pod_container_status_restarts_total{{namespace="{ns}",pod="{pod}",container="{c}"}}', 0.0, True, ns in sparse)
        for ns, wl, pod in pods for c in (wl, "istio-proxy")))  # fmt: skip
    yield family("kube_pod_container_status_ready", "gauge", (
        (f'kube_pod_container_status_ready{{namespace="{ns}",pod="{pod}",container="{c}"}}', 1.0, False, ns in sparse)
        for ns, wl, pod in pods for c in (wl, "istio-proxy")))  # fmt: skip
    yield family("kube_pod_status_phase", "gauge", (
        (f'kube_pod_status_phase{{namespace="{ns}",pod="{pod}",phase="{ph}"}}', float(ph == "Running"), False, ns in sparse)
        for ns, wl, pod in pods for ph in _PHASES))  # fmt: skip
    yield family("http_requests", "counter", (
        (f'http_requests_total{{namespace="{ns}",service="{wl}",pod="{pod}",code="{code}",method="{m}",route="{r}"}}',
         5.0 if code == "200" else 0.05, True, ns in sparse)
        for ns, wl, pod in pods for code in _CODES for m in ("GET", "POST") for r in _ROUTES))  # fmt: skip
    yield family("http_request_duration_seconds", "histogram", (
        (*row, ns in sparse) for ns, wl, pod in pods for m in ("GET", "POST") for r in _ROUTES
        for row in _histogram(f'namespace="{ns}",service="{wl}",pod="{pod}",method="{m}",route="{r}"')))  # fmt: skip


def _histogram(labels: str) -> Iterator[tuple[str, float, bool]]:
    for i, le in enumerate(_BUCKETS):
        share = min(1.0, 0.1 * (i + 1) ** 1.2)
        yield f'http_request_duration_seconds_bucket{{{labels},le="{le}"}}', 5.0 * share, True
    yield f"http_request_duration_seconds_count{{{labels}}}", 5.0, True
    yield f"http_request_duration_seconds_sum{{{labels}}}", 0.4, True
