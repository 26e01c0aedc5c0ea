"""Pod objects: owner, scheduling, conditions and container statuses."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from triage_lab.corpus.kube import object_meta, owner_refs, uid
from triage_lab.corpus.kube_templates import labels, pod_template
from triage_lab.corpus.model import Pod, Workload
from triage_lab.fakes.kubernetes_objects import Obj, ts


def pod(w: Workload, p: Pod, now: datetime, seed: str) -> Obj:
    rev = w.revision(p.revision)
    tmpl = pod_template(w, rev)
    if w.kind == "Deployment":
        owner = owner_refs("ReplicaSet", f"{w.name}-{rev.hash}", w.namespace, seed)
        lbl = labels(w, rev) | {"pod-template-hash": rev.hash}
    else:
        owner = owner_refs("StatefulSet", w.name, w.namespace, seed)
        lbl = labels(w, rev) | {
            "controller-revision-hash": f"{w.name}-{rev.hash}",
            "statefulset.kubernetes.io/pod-name": p.name,
        }
    spec = tmpl["spec"]
    if p.node:
        spec["nodeName"] = p.node
    spec["tolerations"] = [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]
    status: Obj = {"phase": p.phase, "qosClass": "Burstable"}
    scheduled_at = p.created + timedelta(seconds=1)
    conds: list[Obj] = []
    if p.unschedulable:
        conds.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": p.unschedulable,
                "lastProbeTime": None,
                "lastTransitionTime": ts(p.created),
            }
        )
    else:
        status["hostIP"] = _node_ip(p.node, seed)
        status["podIP"] = p.ip
        status["podIPs"] = [{"ip": p.ip}]
        status["startTime"] = ts(scheduled_at)
        ready_at = ts(p.ready_changed or p.created + timedelta(seconds=8))
        ready = "True" if p.ready else "False"
        not_ready = None if p.ready else f"containers with unready status: [{w.name}]"
        conds += [
            {
                "type": "Initialized",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": ts(scheduled_at),
            },
            {
                "type": "Ready",
                "status": ready,
                "lastProbeTime": None,
                "lastTransitionTime": ready_at,
            }
            | ({"reason": "ContainersNotReady", "message": not_ready} if not_ready else {}),
            {
                "type": "ContainersReady",
                "status": ready,
                "lastProbeTime": None,
                "lastTransitionTime": ready_at,
            }
            | ({"reason": "ContainersNotReady", "message": not_ready} if not_ready else {}),
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": ts(scheduled_at),
            },
        ]
        digest = hashlib.sha256(rev.tag.encode() + w.repo.encode()).hexdigest()
        cs: Obj = {
            "name": w.name,
            "image": f"{w.repo}:{rev.tag}",
            "imageID": ""
            if p.waiting and p.waiting[0] in ("ImagePullBackOff", "ErrImagePull")
            else f"{w.repo}@sha256:{digest}",
            "ready": p.ready,
            "restartCount": len(p.restarts),
            "started": p.waiting is None and p.started is not None,
            "lastState": {"terminated": _terminated(p.last, p, seed)} if p.last else {},
        }
        if p.phase == "Failed" and p.last:
            cs["state"] = {"terminated": cs.pop("lastState")["terminated"]}
            cs["lastState"] = {}
        elif p.waiting:
            cs["state"] = {"waiting": {"reason": p.waiting[0], "message": p.waiting[1]}}
        elif p.started is not None:
            cs["state"] = {"running": {"startedAt": ts(p.started)}}
        if p.started is not None or p.last:
            cs["containerID"] = (
                "containerd://" + hashlib.sha256(f"{p.name}{p.started}".encode()).hexdigest()
            )
        status["containerStatuses"] = [cs]
    if p.reason:
        status["reason"] = p.reason
        status["message"] = p.message
    status["conditions"] = conds
    meta = object_meta(
        "Pod",
        p.name,
        w.namespace,
        p.created,
        seed,
        labels=lbl,
        annotations=tmpl["metadata"]["annotations"],
        ownerReferences=owner,
        generateName=p.name.rsplit("-", 1)[0] + "-" if w.kind == "Deployment" else p.name[:-1],
    )
    if p.terminating:
        meta["deletionTimestamp"] = ts(p.terminating + timedelta(seconds=30))
        meta["deletionGracePeriodSeconds"] = 30
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def _terminated(last: dict[str, Any], p: Pod, seed: str) -> Obj:
    out: Obj = {
        "exitCode": last["exitCode"],
        "reason": last["reason"],
        "startedAt": ts(last["startedAt"]),
        "finishedAt": ts(last["finishedAt"]),
        "containerID": "containerd://" + uid(seed, p.name, ts(last["startedAt"])).replace("-", ""),
    }
    if last.get("message"):
        out["message"] = last["message"]
    return out


def _node_ip(node_name: str | None, seed: str) -> str:
    h = hashlib.sha256(f"{seed}{node_name}".encode()).digest()
    return f"10.0.{16 + h[0] % 200}.{2 + h[1] % 250}"
