"""Pods the scheduler cannot place: Pending pods whose PodScheduled condition (or FailedScheduling
events) says why (``0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated
taint``, ``didn't match Pod's node affinity/selector``, ``pod has unbound immediate
PersistentVolumeClaims``). The pending workload is the cause, through its requests, selectors,
affinity, tolerations or its PersistentVolumeClaim, not the callers that time out on it: one
``unschedulable`` item per workload, with what the pods ask for and, for an unbound claim, the
claim and its StorageClass. Pods that wait only for their volumes are a storage fault.

Only pods still listed and Pending count (a pod that is gone is no longer waiting), and trouble
that began well after the onset explains little of it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import Objects, meta, pod_services, pod_subject, recency, ts, when
from collectors.kubernetes.events import event_span

# How decisive a workload whose pods cannot be placed is.
SCORE = 0.9
# Trouble that began this long after the onset is more likely its consequence.
AFTER_ONSET = timedelta(minutes=5)
_WHY = (
    (re.compile(r"Insufficient (\S+?)[.,]?(?:\s|$)"), "not enough {0} on any node"),
    (re.compile(r"untolerated taint"), "node taints it does not tolerate"),
    (re.compile(r"didn't match Pod's node affinity/selector"), "no node matches its affinity"),
    (re.compile(r"unbound immediate PersistentVolumeClaims"), "an unbound PersistentVolumeClaim"),
    (re.compile(r"didn't find available persistent volumes"), "no PersistentVolume to bind"),
    (re.compile(r"volume node affinity conflict"), "its volume's zone has no free node"),
)
# Reasons that are about the pods' volumes rather than the nodes: a storage fault.
_VOLUME = {words for _, words in _WHY[3:]}


def _why(message: str) -> list[str]:
    out: list[str] = []
    for rx, words in _WHY:
        for m in rx.finditer(message):
            said = words.format(*m.groups())
            if said not in out:
                out.append(said)
    return out


def _asks(pod: dict[str, Any]) -> str:
    """What the pod asks of a node: its containers' requests, node selector and tolerations."""
    spec = pod.get("spec") or {}
    requests: dict[str, str] = {}
    for c in spec.get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            requests.setdefault(k, str(v))
    parts = []
    if requests:
        parts.append("requests " + ", ".join(f"{k}={v}" for k, v in sorted(requests.items())))
    if sel := spec.get("nodeSelector"):
        parts.append("nodeSelector " + ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    if (spec.get("affinity") or {}).get("nodeAffinity"):
        parts.append("node affinity")
    return "; ".join(parts)


def _claims(pod: dict[str, Any], pvcs: dict[str, dict[str, Any]]) -> list[str]:
    """``PersistentVolumeClaim data-db-0 is Pending (StorageClass fast-ssd)`` for each claim
    of the pod that is not Bound."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            continue
        pvc = pvcs.get(claim)
        if pvc is None:
            out.append(f"PersistentVolumeClaim {claim} (not found)")
            continue
        phase = (pvc.get("status") or {}).get("phase", "Pending")
        if phase == "Bound":
            continue
        sc = (pvc.get("spec") or {}).get("storageClassName") or "the default StorageClass"
        sc = sc if sc == "the default StorageClass" else f"StorageClass {sc}"
        out.append(f"PersistentVolumeClaim {claim} is {phase} ({sc})")
    return out


def unschedulable(
    ns: str, objs: Objects, pvcs: list[dict[str, Any]], window: TimeWindow
) -> list[EvidenceItem]:
    owners = pod_services(objs)
    claims = {str(meta(p).get("name")): p for p in pvcs}
    # Pod name -> (when its FailedScheduling series began, the latest message)
    events: dict[str, tuple[datetime, str]] = {}
    for ev in objs["events"]:
        obj = ev.get("involvedObject") or {}
        first, last = event_span(ev)
        if ev.get("reason") != "FailedScheduling" or first is None or last is None:
            continue
        if last < window.start or obj.get("kind") not in ("Pod", None):
            continue
        name = str(obj.get("name", ""))
        seen = events.get(name)
        events[name] = (min(first, seen[0]) if seen else first, str(ev.get("message", "")))
    # workload -> (began, pods, message, asks, claims)
    found: dict[str, tuple[datetime | None, list[str], str, str, list[str]]] = {}
    for pod in objs["pods"]:
        name = str(meta(pod).get("name", ""))
        status = pod.get("status") or {}
        if status.get("phase", "Pending") != "Pending" or (pod.get("spec") or {}).get("nodeName"):
            continue
        cond = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled" and c.get("status") == "False"
            ),
            None,
        )
        if cond is None and name not in events:
            continue
        began = ts((cond or {}).get("lastTransitionTime"))
        message = str((cond or {}).get("message") or "")
        if name in events:
            began = min(began, events[name][0]) if began else events[name][0]
            message = message or events[name][1]
        svc = pod_subject(pod, owners)
        prior = found.get(svc)
        pvc = _claims(pod, claims)
        if prior is None:
            found[svc] = (began, [name], message, _asks(pod), pvc)
        else:
            first = min((t for t in (prior[0], began) if t is not None), default=None)
            found[svc] = (first, [*prior[1], name], prior[2] or message, prior[3], prior[4] or pvc)
    items = []
    for svc, (began, pods, message, asks, pvc) in sorted(found.items()):
        why = _why(message)
        weight = recency(began, window)
        if began is not None and began > window.onset + AFTER_ONSET:
            weight *= 0.3  # pending since well after the alert fired: a consequence
        since = f" since {when(began, window)}" if began else ""
        said = "; ".join(why) or "the scheduler found no node"
        summary = f"{len(pods)} pod(s) of {svc} cannot be scheduled{since}: {said}"
        if pvc:
            summary += "; " + "; ".join(pvc)
        if asks:
            summary += f" (pods ask {asks})"
        volume = set(why) <= _VOLUME if why else bool(pvc)
        items.append(
            EvidenceItem(
                id=f"unschedulable-{ns}-{svc}",
                kind="unschedulable",
                summary=summary,
                detail=f"{', '.join(sorted(pods)[:3])}: {message[:300]}",
                subject=svc,
                timestamp=began or window.onset,
                score=round(SCORE * weight, 4),
                fault_hint="storage" if volume else "scheduling",
            )
        )
    return items
