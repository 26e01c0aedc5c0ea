"""The shop namespace the Kubernetes constraints and storage tests build: API objects as the
server returns them, the alert on web, and the collector and analyzer run over them."""

from __future__ import annotations

from typing import Any

from triage_lab.scenarios import KubeObjects

from collectors.contracts import Evidence, EvidenceItem
from tests.support.incidents import firing
from tests.support.kube_collect import NS, ONSET, Obj, analysed, collect_kube, stamp
from triage.models import RCA, IncidentState


def meta(name: str, created: float = -10_000, **more: Any) -> Obj:
    return {"name": name, "namespace": NS, "creationTimestamp": stamp(created), **more}


def deployment(name: str, replicas: int = 2, available: int = 2, changed: float = -10_000) -> Obj:
    fields = [{"manager": "kubectl", "operation": "Update", "time": stamp(changed)}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, labels={"app": name}, managedFields=fields),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
            },
        },
        "status": {"replicas": replicas, "availableReplicas": available},
    }


def pod(name: str, app: str, status: Obj | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, -60, labels={"app": app}),
        "spec": {"containers": [{"name": app, "image": f"{app}:1"}], **spec},
        "status": status or {"phase": "Running"},
    }


def pending(message: str, since: float = 0) -> Obj:
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": stamp(since),
            }
        ],
    }


def event(reason: str, kind: str, name: str, message: str, first: float = 0) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta(f"{name}.{reason.lower()}", first),
        "involvedObject": {"kind": kind, "name": name, "namespace": NS},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "firstTimestamp": stamp(first),
        "lastTimestamp": stamp(first + 5),
        "count": 12,
    }


def pvc(name: str, storage_class: str, phase: str = "Pending") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(name),
        "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"]},
        "status": {"phase": phase},
    }


def incident(**labels: str) -> IncidentState:
    """HighErrorRate in the namespace, on web unless ``labels`` say otherwise."""
    labels = {"alertname": "HighErrorRate", "namespace": NS, **(labels or {"service": "web"})}
    return firing(labels, ONSET)


async def collect(objects: KubeObjects, alert: IncidentState | None = None) -> Evidence:
    """The collector's evidence over the objects, through the real client."""
    evidence = await collect_kube(objects, alert or incident())
    assert evidence.status == "ok", evidence.error
    return evidence


async def ranked(
    evidence: Evidence, *extra: EvidenceItem, alert: IncidentState | None = None
) -> RCA:
    """The analyzer's RCA of the evidence and the metrics collector's ``extra`` items; web calls
    search and cart."""
    call_graph = [("web", "search"), ("web", "cart")]
    return await analysed(alert or incident(), evidence, *extra, call_graph=call_graph)
