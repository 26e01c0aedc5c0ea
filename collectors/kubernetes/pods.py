"""Pod states: containers waiting in a failure (crash loops, image pulls, bad config), the last
termination (OOMKilled, Error), and pods the scheduler cannot place, worst per workload.

Each state knows when it began: a restart counts as a current failure only when its
termination falls in the window (one from weeks ago is history), and a crash loop that began
long before the window is ongoing background, weighed down beside what began at the onset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    MISSING_SECRET,
    Objects,
    meta,
    pod_services,
    pod_subject,
    recency,
    ts,
    when,
)
from collectors.kubernetes.events import event_span

_WAITING = {
    "CrashLoopBackOff": (0.8, "crash_loop"),
    "ImagePullBackOff": (0.85, "bad_rollout"),
    "ErrImagePull": (0.85, "bad_rollout"),
    "CreateContainerConfigError": (0.85, "config_change"),
    "CreateContainerError": (0.7, "config_change"),
    "RunContainerError": (0.7, "bad_rollout"),
}
_UNSCHEDULABLE = (0.75, "scheduling")
_TERMINATED = {"OOMKilled": (0.85, "resource_exhaustion"), "Error": (0.6, "crash_loop")}
# The kubelet's restart back-off: 10 s, doubling, at most 5 min between restarts.
_BACKOFF_S, _BACKOFF_MAX_S = 10.0, 300.0


@dataclass
class _Found:
    reason: str
    restarts: int
    base: float
    hint: str
    began: datetime | None


def backoff_span(restarts: int) -> timedelta:
    """The least time a container needs to restart ``restarts`` times under the back-off."""
    return timedelta(
        seconds=sum(min(_BACKOFF_S * 2**i, _BACKOFF_MAX_S) for i in range(max(restarts, 0)))
    )


def _pod_started(pod: dict[str, Any]) -> datetime | None:
    return ts((pod.get("status") or {}).get("startTime") or meta(pod).get("creationTimestamp"))


def _events_began(objs: Objects, window: TimeWindow) -> dict[str, datetime]:
    """Pod name -> when its oldest warning series still going in the window began."""
    out: dict[str, datetime] = {}
    for ev in objs["events"]:
        obj = ev.get("involvedObject") or {}
        first, last = event_span(ev)
        if (
            ev.get("type") == "Warning"
            and obj.get("kind") in ("Pod", None)
            and first is not None
            and last is not None
            and last >= window.start
        ):
            name = str(obj.get("name", ""))
            out[name] = min(first, out.get(name, first))
    return out


def _container_failures(
    pod: dict[str, Any], cs: dict[str, Any], window: TimeWindow, events_began: datetime | None
) -> list[_Found]:
    waiting_state = (cs.get("state") or {}).get("waiting") or {}
    waiting = waiting_state.get("reason")
    term = (cs.get("lastState") or {}).get("terminated") or {}
    restarts = int(cs.get("restartCount") or 0)
    finished = ts(term.get("finishedAt"))
    found = []
    if waiting in _WAITING:
        base, hint = _WAITING[waiting]
        if MISSING_SECRET.search(waiting_state.get("message", "")):
            hint = "secret_change"
        # When the trouble began: its restarts under the back-off before the last one, or
        # since the pod started if it never ran; its own warning series may say earlier.
        began = None
        if finished is not None and restarts > 0:
            began = finished - backoff_span(restarts - 1)
        elif restarts == 0:
            began = _pod_started(pod)
        started = _pod_started(pod)
        if began is not None and started is not None:
            began = max(began, started)
        if events_began is not None:
            began = min(began, events_began) if began is not None else events_began
        found.append(_Found(waiting, restarts, base, hint, began))
    # Only a termination in the window is a current failure; an older one is history.
    if term.get("reason") in _TERMINATED and (finished is None or finished >= window.start):
        base, hint = _TERMINATED[term["reason"]]
        began = finished - backoff_span(restarts - 1) if finished else None
        started = _pod_started(pod)
        if began is not None and started is not None:
            began = max(began, started)
        found.append(_Found(term["reason"], restarts, base, hint, began))
    return found


def pod_states(ns: str, objs: Objects, window: TimeWindow) -> list[EvidenceItem]:
    owners = pod_services(objs)
    by_events = _events_began(objs, window)
    # (workload, reason) -> (score, found, pod names)
    worst: dict[tuple[str, str], tuple[float, _Found, list[str]]] = {}
    for pod in objs["pods"]:
        name = str(meta(pod).get("name", ""))
        svc = pod_subject(pod, owners)
        status = pod.get("status") or {}
        found = [
            _Found(
                "Unschedulable",
                0,
                *_UNSCHEDULABLE,
                ts(c.get("lastTransitionTime")) or _pod_started(pod),
            )
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ]
        for cs in status.get("containerStatuses") or []:
            found += _container_failures(pod, cs, window, by_events.get(name))
        for f in found:
            score = min(1.0, f.base + 0.02 * min(f.restarts, 5)) * recency(f.began, window)
            key = (svc, f.reason)
            prior = worst.get(key)
            pods = (prior[2] if prior else []) + [name]
            if prior is None or score >= prior[0]:
                worst[key] = (score, f, pods)
            else:
                worst[key] = (prior[0], prior[1], pods)
    items = []
    for (svc, reason), (score, f, pods) in sorted(worst.items()):
        since = ""
        if f.began is not None:
            since = f", since {when(f.began, window)}"
            if recency(f.began, window) < 1.0:
                since += ", before the window: ongoing background"
        items.append(
            EvidenceItem(
                id=f"podstate-{ns}-{svc}-{reason}",
                kind="pod_state",
                summary=f"{len(pods)} pod(s) of {svc} in {reason} "
                f"(restarts={f.restarts}{since}): " + ", ".join(sorted(pods)[:3]),
                subject=svc,
                score=round(score, 4),
                fault_hint=f.hint,
                timestamp=f.began or window.onset,
            )
        )
    return items
