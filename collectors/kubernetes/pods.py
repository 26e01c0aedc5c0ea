"""Pod states: containers waiting in a failure (crash loops, image pulls, bad config), the last
termination (OOMKilled, Error), and pods the scheduler cannot place, worst per service."""

from __future__ import annotations

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import MISSING_SECRET, Objects, meta, pod_services, service_of

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


def pod_states(ns: str, objs: Objects, window: TimeWindow) -> list[EvidenceItem]:
    owners = pod_services(objs)
    worst: dict[tuple[str, str], tuple[float, str, str, list[str]]] = {}
    for pod in objs["pods"]:
        svc = owners.get(meta(pod).get("name", ""), service_of(pod))
        status = pod.get("status") or {}
        found = [
            ("Unschedulable", 0, _UNSCHEDULABLE)
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ]
        for cs in status.get("containerStatuses") or []:
            state = (cs.get("state") or {}).get("waiting") or {}
            waiting = state.get("reason")
            term = (cs.get("lastState") or {}).get("terminated") or {}
            restarts = int(cs.get("restartCount") or 0)
            for reason, table in ((waiting, _WAITING), (term.get("reason"), _TERMINATED)):
                if reason in table:
                    score, hint = table[reason]
                    if reason == waiting and MISSING_SECRET.search(state.get("message", "")):
                        hint = "secret_change"
                    found.append((reason, restarts, (score, hint)))
        for reason, restarts, (base, hint) in found:
            score = min(1.0, base + 0.02 * min(restarts, 5))
            key = (svc, reason)
            pods = worst.get(key, (0, "", "", []))[3] + [meta(pod).get("name", "")]
            if score >= worst.get(key, (0.0, "", "", []))[0]:
                worst[key] = (score, hint, f"restarts={restarts}", pods)
            else:
                worst[key] = (*worst[key][:3], pods)
    return [
        EvidenceItem(
            id=f"podstate-{ns}-{svc}-{reason}",
            kind="pod_state",
            summary=f"{len(pods)} pod(s) of {svc} in {reason} ({extra}): "
            + ", ".join(sorted(pods)[:3]),
            subject=svc,
            score=score,
            fault_hint=hint,
            timestamp=window.onset,
        )
        for (svc, reason), (score, hint, extra, pods) in sorted(worst.items())
    ]
