"""Namespace limits that block new pods: a ResourceQuota that is used up or a LimitRange that
forbids the pods' requests. The controllers say so in FailedCreate events on the ReplicaSet,
Job or StatefulSet (``exceeded quota: compute-quota, requested: ..., used: ..., limited: ...``,
``forbidden: maximum cpu usage per Container is 2, but limit is 4``).

The cause is the namespace's limit, not the workload it blocks nor the callers that time out:
the item is about the ResourceQuota / LimitRange, named by its own object name (what a
scenario's truth names), with the quota's used vs hard and the blocked workloads' desired vs
available replicas as evidence. Only a listed object is named: without it (no RBAC, or a
recording without it) the workload's own FailedCreate event stands for the finding."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import Objects, meta, recency, service_of, when
from collectors.kubernetes.events import event_count, event_span

_EXCEEDED = re.compile(r"exceeded quota: ([\w.-]+)")
_LIMIT = re.compile(
    r"forbidden: (maximum|minimum) (\S+) usage per (Container|Pod|PersistentVolumeClaim) is"
    r" (\S+?),? but (?:limit|request) is (\S+?)\.?(?:$|[,\s])"
)
# How decisive a blocked namespace limit is: the controller names it as what refused the pods.
SCORE = 0.9


def _blocked_workload(obj: dict[str, Any], objs: Objects) -> str:
    """The workload an event's ReplicaSet / Job / StatefulSet belongs to."""
    name = str(obj.get("name", ""))
    kind = obj.get("kind", "")
    if kind == "ReplicaSet":
        for rs in objs["replicasets"]:
            if meta(rs).get("name") == name:
                for ref in meta(rs).get("ownerReferences") or []:
                    for dep in objs["deployments"]:
                        if meta(dep).get("name") == ref.get("name"):
                            return service_of(dep)
                return service_of(rs)
        return name.rsplit("-", 1)[0] if "-" in name else name
    for resource in ("deployments", "statefulsets", "daemonsets"):
        for wl in objs[resource]:
            if meta(wl).get("name") == name:
                return service_of(wl)
    return name


def replicas(workload: str, objs: Objects) -> str:
    """``desired N, available M`` of a workload, as its Deployment / StatefulSet says."""
    for resource in ("deployments", "statefulsets"):
        for wl in objs[resource]:
            if workload in (meta(wl).get("name"), service_of(wl)):
                spec, status = wl.get("spec") or {}, wl.get("status") or {}
                desired = spec.get("replicas", 1)
                available = status.get("availableReplicas") or status.get("readyReplicas") or 0
                return f"{workload}: {available}/{desired} replicas available"
    return ""


def _quota_usage(quota: dict[str, Any]) -> list[str]:
    """``requests.cpu used 19500m of hard 20`` for each resource at (or past) its hard limit,
    else for every resource the status lists."""
    status = quota.get("status") or {}
    hard, used = (
        status.get("hard") or (quota.get("spec") or {}).get("hard") or {},
        status.get("used") or {},
    )
    full = [
        f"{k} used {used[k]} of hard {hard[k]}"
        for k in sorted(hard)
        if k in used and _quantity(used[k]) >= _quantity(hard[k])
    ]
    return full or [f"{k} used {used.get(k, '?')} of hard {hard[k]}" for k in sorted(hard)]


_SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20,
           "Gi": 2**30, "Ti": 2**40}  # fmt: skip


def _quantity(value: Any) -> float:
    """A Kubernetes quantity (``500m``, ``48Gi``, ``3``) as a number, for comparison only."""
    text = str(value)
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", text)
    if not m:
        return 0.0
    try:
        return float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)
    except ValueError:
        return 0.0


def _limit_range_for(
    limitranges: list[dict[str, Any]], bound: str, resource: str, kind: str
) -> dict[str, Any] | None:
    """The LimitRange whose ``max`` / ``min`` for that resource and kind refused the pod."""
    key = "max" if bound == "maximum" else "min"
    for lr in limitranges:
        for limit in (lr.get("spec") or {}).get("limits") or []:
            if limit.get("type", "Container") == kind and resource in (limit.get(key) or {}):
                return lr
    return limitranges[0] if len(limitranges) == 1 else None


def quota_blocks(
    ns: str,
    objs: Objects,
    quotas: list[dict[str, Any]],
    limitranges: list[dict[str, Any]],
    window: TimeWindow,
) -> list[EvidenceItem]:
    by_name = {str(meta(q).get("name")): q for q in quotas}
    # (limit kind, object name) -> (first seen, count, blocked workloads, a message, detail)
    found: dict[tuple[str, str], tuple[datetime, int, set[str], str, str]] = {}
    for ev in objs["events"]:
        if ev.get("type") != "Warning" or ev.get("reason") != "FailedCreate":
            continue
        first, last = event_span(ev)
        if first is None or last is None or not (first <= window.end and last >= window.start):
            continue
        message = str(ev.get("message", ""))
        key: tuple[str, str] | None = None
        detail = ""
        if (m := _EXCEEDED.search(message)) and m.group(1) in by_name:
            key = ("ResourceQuota", m.group(1))
            detail = "; ".join(_quota_usage(by_name[m.group(1)]))
        elif m2 := _LIMIT.search(message):
            bound, resource, kind, allowed, asked = m2.groups()
            lr = _limit_range_for(limitranges, bound, resource, kind)
            if lr is not None:
                key = ("LimitRange", str(meta(lr).get("name")))
                detail = f"{bound} {resource} per {kind} is {allowed}, the pods ask for {asked}"
        if key is None:
            continue
        workload = _blocked_workload(ev.get("involvedObject") or {}, objs)
        prior = found.get(key)
        if prior is None:
            found[key] = (first, event_count(ev), {workload}, message, detail)
        else:
            found[key] = (
                min(prior[0], first),
                prior[1] + event_count(ev),
                prior[2] | {workload},
                prior[3],
                prior[4],
            )
    items = []
    for (kind, name), (first, count, workloads, message, detail) in sorted(found.items()):
        blocked = sorted(workloads)
        scale = "; ".join(r for w in blocked if (r := replicas(w, objs)))
        weight = recency(first, window)
        items.append(
            EvidenceItem(
                id=f"quota-{ns}-{kind.lower()}-{name}",
                kind="quota",
                summary=f"{kind} {name} blocks new pods of {', '.join(blocked)} "
                f"({count}x FailedCreate since {when(first, window)}): {detail}"
                + (f"; {scale}" if scale else ""),
                detail=message[:300],
                subject=name,
                timestamp=first,
                score=round(SCORE * weight, 4),
                fault_hint="quota",
                related=blocked,
            )
        )
    return items
