"""The cluster after a ChangeRCA case's rollouts, as Kubernetes objects: ReplicaSets implied by
the pod names, their Deployments and the live pods."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage_lab.fakes import kubernetes_objects as api
from triage_lab.fakes.kubernetes_objects import ts
from triage_lab.importers.changerca.dataset import NAMESPACE, Case, Pod, Rollout, Step, parse_pod
from triage_lab.scenarios import KubeObjects, ScenarioError


@dataclass
class ReplicaSet:
    name: str
    service: str
    version: str
    template_hash: str
    created: int
    revision: int
    pods: dict[str, int] = field(default_factory=dict)  # live pod -> creation time


def _steps(case: Case) -> Iterable[Step]:
    return (step for rollout in case.plan.values() for step in rollout.process.values())


def _new_replicaset(service: str, rollout: Rollout, path: Path) -> str:
    where = f"plan.{service}.process"
    pods = [parse_pod(n, path, where) for s in rollout.process.values() for n in s.release_pod]
    names = {p.replicaset for p in pods}
    if len(names) != 1 or any(p.service != service for p in pods):
        raise ScenarioError(path, where, f"release_pod must name new pods of {service}")
    return names.pop()


def named_pods(case: Case, path: Path) -> set[Pod]:
    """Pods the case file names: before the change, and released or deleted by the plan."""
    named = [(n, "before_change_list") for n in case.before_change_list]
    for service, rollout in case.plan.items():
        for step in rollout.process.values():
            named += [(n, f"plan.{service}.process") for n in (*step.release_pod, *step.delete_pod)]
    return {parse_pod(n, path, where) for n, where in named}


def replicasets(case: Case, seen: Iterable[Pod], predates: int, path: Path) -> list[ReplicaSet]:
    """Every ReplicaSet the pod names imply, in revision order per service, sorted by service."""
    released = {
        pod: step.release_complete_timestamp for step in _steps(case) for pod in step.release_pod
    }
    deleted = {pod for step in _steps(case) for pod in step.delete_pod}
    groups: dict[str, dict[str, list[Pod]]] = {}
    for pod in seen:
        groups.setdefault(pod.service, {}).setdefault(pod.replicaset, []).append(pod)
    out: list[ReplicaSet] = []
    for service in sorted(groups):
        rollout = case.plan.get(service)
        new = _new_replicaset(service, rollout, path) if rollout else None
        order = [*sorted(n for n in groups[service] if n != new), *([new] if new else [])]
        for revision, name in enumerate(order, 1):
            first = groups[service][name][0]
            created = rollout.release_time if rollout and name == new else predates
            rs = ReplicaSet(name, service, first.version, first.template_hash, created, revision)
            rs.pods = {
                p.name: released.get(p.name, created)
                for p in groups[service][name]
                if p.name not in deleted
            }
            out.append(rs)
    return out


def _uid(case: str, kind: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"changerca:{case}:{kind}:{name}"))


def _labels(rs: ReplicaSet, *, with_hash: bool = True) -> dict[str, str]:
    labels = {"app": rs.service}
    if rs.version:
        labels["version"] = rs.version
    if with_hash:
        labels["pod-template-hash"] = rs.template_hash
    return labels


def _container(rs: ReplicaSet) -> dict[str, str]:
    image = f"{rs.service}:{rs.version}" if rs.version else rs.service
    return {"name": rs.service, "image": image}


def _owner(case: str, kind: str, name: str) -> dict[str, Any]:
    return api.owner_reference(kind, name, _uid(case, kind, name))


def _identity(case: str, kind: str, name: str, created: int) -> dict[str, Any]:
    # The dataset records no resourceVersion: none is made up.
    return {"uid": _uid(case, kind, name), "created": created, "resource_version": None}


def _deployment(case: str, rss: Sequence[ReplicaSet], created: int) -> dict[str, Any]:
    current = rss[-1]
    replicas = sum(len(rs.pods) for rs in rss)
    return api.deployment(
        NAMESPACE,
        current.service,
        revision=current.revision,
        replicas=replicas,
        template=api.pod_template(_labels(current, with_hash=False), [_container(current)]),
        strategy={"type": "RollingUpdate"},
        status={
            "observedGeneration": current.revision,
            "replicas": replicas,
            "updatedReplicas": len(current.pods),
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
        generation=current.revision,
        **_identity(case, "Deployment", current.service, created),
    )


def _replicaset(case: str, rs: ReplicaSet) -> dict[str, Any]:
    n = len(rs.pods)
    return api.replicaset(
        NAMESPACE,
        rs.name,
        owner=_owner(case, "Deployment", rs.service),
        revision=rs.revision,
        labels=_labels(rs),
        selector=_labels(rs),
        template=api.pod_template(_labels(rs), [_container(rs)]),
        replicas=n,
        ready=n,
        **_identity(case, "ReplicaSet", rs.name, rs.created),
    )


def _pod_object(case: str, rs: ReplicaSet, name: str, created: int) -> dict[str, Any]:
    at = ts(created)
    container = _container(rs)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": api.metadata(
            name,
            namespace=NAMESPACE,
            **_identity(case, "Pod", name, created),
            labels=_labels(rs),
            ownerReferences=[_owner(case, "ReplicaSet", rs.name)],
        ),
        "spec": {"containers": [container]},
        "status": {
            "phase": "Running",
            "startTime": at,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}],
            "containerStatuses": [
                {
                    **container,
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": at}},
                },
            ],
        },
    }


def cluster_objects(case: str, rss: Sequence[ReplicaSet], predates: int) -> KubeObjects:
    by_service: dict[str, list[ReplicaSet]] = {}
    for rs in rss:
        by_service.setdefault(rs.service, []).append(rs)
    pods = [(rs, name, created) for rs in rss for name, created in rs.pods.items()]
    return KubeObjects(
        namespaces=[
            api.namespace(
                NAMESPACE,
                uid=_uid(case, "Namespace", NAMESPACE),
                created=predates,
                resource_version=None,
                server_defaults=False,
            )
        ],
        deployments=[_deployment(case, by_service[s], predates) for s in sorted(by_service)],
        replicasets=[_replicaset(case, rs) for rs in sorted(rss, key=lambda r: r.name)],
        pods=[_pod_object(case, *p) for p in sorted(pods, key=lambda p: p[1])],
    )
