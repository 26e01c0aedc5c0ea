"""Namespace limits and volumes as the API server returns them: ResourceQuotas, LimitRanges and
PersistentVolumeClaims, and what they leave on the objects around them: a claim's volume and
mount in the pods and templates that use it, tolerations of tainted nodes, an autoscaler's wish
its pods could not meet. Uses no randomness: every other object stays as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from triage_lab.corpus.kube import object_meta, uid
from triage_lab.corpus.model import ClaimObj, LimitRangeObj, QuotaObj, Revision, Workload
from triage_lab.fakes.kubernetes_objects import Obj, ts
from triage_lab.scenarios import KubeObjects

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def volume_name(w: World, c: ClaimObj) -> str:
    """The PersistentVolume dynamic provisioning makes for a claim: ``pvc-<claim uid>``."""
    return "pvc-" + uid(w.key, "PersistentVolumeClaim", c.namespace, c.name)


def _managed(manager: str, at: Any, fields: Obj) -> list[Obj]:
    return [
        {
            "manager": manager,
            "operation": "Apply" if "argocd" in manager or "controller" in manager else "Update",
            "apiVersion": "v1",
            "time": ts(at),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
    ]


def resource_quota(q: QuotaObj, seed: str) -> Obj:
    spec: Obj = {"f:spec": {"f:hard": {f"f:{k}": {} for k in sorted(q.hard)}}}
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": object_meta(
            "ResourceQuota",
            q.name,
            q.namespace,
            q.created,
            seed,
            managedFields=_managed(q.manager, q.created, spec),
        ),
        "spec": {"hard": dict(q.hard)},
        "status": {"hard": dict(q.hard), "used": dict(q.used)},
    }


def limit_range(lr: LimitRangeObj, seed: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": object_meta(
            "LimitRange",
            lr.name,
            lr.namespace,
            lr.created,
            seed,
            managedFields=_managed(lr.manager, lr.created, {"f:spec": {"f:limits": {}}}),
        ),
        "spec": {"limits": [dict(limit) for limit in lr.limits]},
    }


def claim(w: World, c: ClaimObj, seed: str) -> Obj:
    bound = c.phase == "Bound"
    annotations = (
        {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}
        if bound
        else {}
    )
    if c.selected_node:
        annotations["volume.kubernetes.io/selected-node"] = c.selected_node
    owner = w.workloads[c.workload]
    spec: Obj = {
        "accessModes": [c.access],
        "resources": {"requests": {"storage": c.size}},
        "storageClassName": c.storage_class,
        "volumeMode": "Filesystem",
    }
    status: Obj = {"phase": c.phase}
    if bound:
        spec["volumeName"] = volume_name(w, c)
        status |= {"accessModes": [c.access], "capacity": {"storage": c.size}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(
            "PersistentVolumeClaim",
            c.name,
            c.namespace,
            c.created,
            seed,
            labels={"app": owner.name} if owner.kind == "StatefulSet" else {},
            annotations=annotations,
            finalizers=["kubernetes.io/pvc-protection"],
            managedFields=_managed(
                c.manager or "kube-controller-manager", c.created, {"f:spec": {}}
            ),
        ),
        "spec": spec,
        "status": status,
    }


def add_constraint_objects(w: World, k: KubeObjects) -> None:
    seed = w.key
    k.resourcequotas = [resource_quota(q, seed) for q in w.quotas]
    k.limitranges = [limit_range(lr, seed) for lr in w.limit_ranges]
    k.persistentvolumeclaims = sorted(
        (claim(w, c, seed) for c in w.claims), key=lambda o: o["metadata"]["name"]
    )
    for wl, rev, spec, pod in _pod_specs(w, k):
        _mount(w, wl, rev, spec, pod)
        if rev.tolerations:
            # A pod's own tolerations come first; admission appends the defaults after them.
            defaults = spec.get("tolerations", []) if pod else []
            spec["tolerations"] = [dict(t) for t in rev.tolerations] + defaults
    for wl in w.workloads.values():
        h = wl.hpa
        if h is None or h.desired is None:
            continue
        for obj in k.horizontalpodautoscalers:
            if obj["metadata"]["name"] != wl.name:
                continue
            status = obj["status"]
            status["desiredReplicas"] = h.desired
            for cond in status["conditions"]:
                if cond["type"] == "AbleToScale":
                    cond["reason"] = "SucceededRescale"
                    cond["message"] = (
                        f"the HPA controller was able to update the target scale to {h.desired}"
                    )


def _mount(w: World, wl: Workload, rev: Revision, spec: Obj, pod: str | None) -> None:
    """A claim's volume in the pod spec and its mount in the container. A StatefulSet's own
    template names the claim through volumeClaimTemplates: there, only the mount."""
    for c in w.claims:
        if c.workload != wl.name or rev.number < c.since or (pod and c.pods and pod not in c.pods):
            continue
        if pod or wl.kind != "StatefulSet":
            vol = {"name": c.volume, "persistentVolumeClaim": {"claimName": c.name}}
            spec["volumes"] = [*spec.get("volumes", []), vol]
        container = spec["containers"][0]
        mount = {"name": c.volume, "mountPath": c.mount}
        container["volumeMounts"] = [*container.get("volumeMounts", []), mount]


def _pod_specs(w: World, k: KubeObjects) -> Iterator[tuple[Workload, Revision, Obj, str | None]]:
    """(workload, revision, pod spec, pod name or None for a template) for every pod and pod
    template of the workloads that need more than their template says."""
    needs = {c.workload for c in w.claims} | {
        wl.name for wl in w.workloads.values() if any(r.tolerations for r in wl.revisions)
    }
    if not needs:
        return
    wls = {name: w.workloads[name] for name in needs}
    by_hash = {(wl.name, r.hash): r for wl in wls.values() for r in wl.revisions}
    for plural in ("deployments", "statefulsets"):
        for obj in k.of(plural):
            if (wl := wls.get(obj["metadata"]["name"])) is not None:
                yield wl, wl.current, obj["spec"]["template"]["spec"], None
    for plural, label in (
        ("replicasets", "pod-template-hash"),
        ("controllerrevisions", "controller.kubernetes.io/hash"),
    ):
        for obj in k.of(plural):
            meta = obj["metadata"]
            owner = meta["ownerReferences"][0]["name"]
            rev = by_hash.get((owner, meta["labels"].get(label, "")))
            if owner in wls and rev is not None:
                template = obj["spec"]["template"] if plural == "replicasets" else None
                template = template or obj["data"]["spec"]["template"]
                yield wls[owner], rev, template["spec"], None
    for obj in k.pods:
        meta = obj["metadata"]
        wl = wls.get(meta["labels"].get("app", ""))
        if wl is None:
            continue
        tag = meta["labels"].get("pod-template-hash") or meta["labels"].get(
            "controller-revision-hash", ""
        ).removeprefix(f"{wl.name}-")
        if (rev := by_hash.get((wl.name, tag))) is not None:
            yield wl, rev, obj["spec"], meta["name"]
