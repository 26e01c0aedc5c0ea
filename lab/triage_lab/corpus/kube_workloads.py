"""Deployments, ReplicaSets, StatefulSets, ControllerRevisions and HorizontalPodAutoscalers."""

from __future__ import annotations

from datetime import datetime, timedelta

from triage_lab.corpus.kube import identity, object_meta, owner_refs
from triage_lab.corpus.kube_templates import labels, pod_template
from triage_lab.corpus.model import Hpa, Revision, Workload
from triage_lab.fakes import kubernetes_objects as api
from triage_lab.fakes.kubernetes_objects import Obj, ts


def deployment(w: Workload, now: datetime, seed: str) -> Obj:
    rev = w.current
    alive = [p for p in w.pods if p.deleted is None]
    updated = [p for p in alive if p.revision == rev.number]
    ready = [p for p in alive if p.ready]
    status: Obj = {
        "observedGeneration": rev.number + 1,
        "replicas": len(alive),
        "updatedReplicas": len(updated),
        "readyReplicas": len(ready),
        "availableReplicas": len(ready),
    }
    if len(ready) < len(alive):
        status["unavailableReplicas"] = len(alive) - len(ready)
    rs_name = f"{w.name}-{rev.hash}"
    min_ok = w.replicas - replicas_of(w.max_unavailable, w.replicas, up=False)
    available = (
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        if len(ready) >= min_ok
        else (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    )
    if w.stalled_since and now - w.stalled_since > timedelta(seconds=600):
        progressing = (
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
        )
        prog_since = w.stalled_since + timedelta(seconds=600)
    elif w.stalled_since:
        progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        prog_since = w.stalled_since
    else:
        progressing = (
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
        )
        prog_since = rev.created
    avail_since = max([p.ready_changed or p.created for p in alive] or [rev.created])
    status["conditions"] = [
        {
            "type": "Available",
            "status": available[0],
            "reason": available[1],
            "message": available[2],
            "lastUpdateTime": ts(avail_since),
            "lastTransitionTime": ts(avail_since),
        },
        {
            "type": "Progressing",
            "status": progressing[0],
            "reason": progressing[1],
            "message": progressing[2],
            "lastUpdateTime": ts(prog_since),
            "lastTransitionTime": ts(prog_since),
        },
    ]
    return api.deployment(
        w.namespace,
        w.name,
        labels=w.extra_labels | ({"team": w.team} if w.team else {}),
        revision=rev.number,
        replicas=w.replicas,
        template=pod_template(w, rev),
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": w.max_surge, "maxUnavailable": w.max_unavailable},
        },
        status=status,
        generation=rev.number + 1,
        revisionHistoryLimit=10,
        progressDeadlineSeconds=600,
        **identity("Deployment", w.name, w.namespace, w.created, seed),
    )


def replicas_of(spec: str, replicas: int, *, up: bool) -> int:
    """maxSurge / maxUnavailable as a pod count: percentages round up for surge, down otherwise."""
    if spec.endswith("%"):
        frac = replicas * int(spec[:-1]) / 100
        return int(-(-frac // 1)) if up else int(frac)
    return int(spec)


def replicaset(w: Workload, rev: Revision, seed: str) -> Obj:
    alive = [p for p in w.pods if p.deleted is None and p.revision == rev.number]
    ready = [p for p in alive if p.ready]
    name = f"{w.name}-{rev.hash}"
    lbl = labels(w, rev) | {"pod-template-hash": rev.hash}
    tmpl = pod_template(w, rev)
    tmpl["metadata"]["labels"] = lbl
    return api.replicaset(
        w.namespace,
        name,
        owner=owner_refs("Deployment", w.name, w.namespace, seed)[0],
        revision=rev.number,
        labels=lbl,
        selector={"app": w.name, "pod-template-hash": rev.hash},
        template=tmpl,
        replicas=len(alive),
        ready=len(ready),
        desired=rev.desired,
        generation=1 if alive else 2,
        annotations={
            "deployment.kubernetes.io/desired-replicas": str(w.replicas),
            "deployment.kubernetes.io/max-replicas": str(
                w.replicas + replicas_of(w.max_surge, w.replicas, up=True)
            ),
        },
        **identity("ReplicaSet", name, w.namespace, rev.created, seed),
    )


def statefulset(w: Workload, now: datetime, seed: str) -> Obj:
    rev = w.current
    alive = [p for p in w.pods if p.deleted is None]
    ready = [p for p in alive if p.ready]
    name_hash = f"{w.name}-{rev.hash}"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(
            "StatefulSet",
            w.name,
            w.namespace,
            w.created,
            seed,
            generation=rev.number,
            labels=labels(w),
        ),
        "spec": {
            "replicas": w.replicas,
            "serviceName": w.name,
            "selector": {"matchLabels": {"app": w.name}},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": pod_template(w, rev),
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "50Gi"}},
                    },
                }
            ],
        },
        "status": {
            "observedGeneration": rev.number,
            "replicas": len(alive),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),
            "currentReplicas": len(alive),
            "updatedReplicas": len(alive),
            "currentRevision": name_hash,
            "updateRevision": name_hash,
            "collisionCount": 0,
        },
    }


def controllerrevision(w: Workload, rev: Revision, seed: str) -> Obj:
    name = f"{w.name}-{rev.hash}"
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": object_meta(
            "ControllerRevision",
            name,
            w.namespace,
            rev.created,
            seed,
            labels=labels(w) | {"controller.kubernetes.io/hash": rev.hash},
            ownerReferences=owner_refs("StatefulSet", w.name, w.namespace, seed),
        ),
        "revision": rev.number,
        "data": {"spec": {"template": pod_template(w, rev)}},
    }


def hpa(w: Workload, h: Hpa, now: datetime, seed: str) -> Obj:
    if h.limited:
        limited = (
            "True",
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    else:
        limited = (
            "False",
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    since = h.history[-1][0]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(
            "HorizontalPodAutoscaler", w.name, w.namespace, w.created, seed, labels=labels(w)
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": w.kind, "name": w.name},
            "minReplicas": h.min_replicas,
            "maxReplicas": h.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": h.target_cpu},
                    },
                }
            ],
        },
        "status": {
            "currentReplicas": h.current,
            "desiredReplicas": h.current,
            "lastScaleTime": ts(h.last_scale),
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {
                            "averageUtilization": h.utilization,
                            "averageValue": f"{h.utilization * 5}m",
                        },
                    },
                }
            ],
            "conditions": [
                {
                    "type": "AbleToScale",
                    "status": "True",
                    "reason": "ReadyForNewScale",
                    "message": "recommended size matches current size",
                    "lastTransitionTime": ts(h.last_scale),
                },
                {
                    "type": "ScalingActive",
                    "status": "True",
                    "reason": "ValidMetricFound",
                    "message": "the HPA was able to successfully calculate a replica count from "
                    "cpu resource utilization (percentage of request)",
                    "lastTransitionTime": ts(w.created),
                },
                {
                    "type": "ScalingLimited",
                    "status": limited[0],
                    "reason": limited[1],
                    "message": limited[2],
                    "lastTransitionTime": ts(since),
                },
            ],
        },
    }
