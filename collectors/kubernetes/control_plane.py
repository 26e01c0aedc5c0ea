"""The cluster's own components as suspects: the scheduler, the controller-manager and the node
agents (the CNI, kube-proxy). Each is judged by its health where the cluster shows it (kubeadm's
static pods in kube-system, the agents' DaemonSet pods, the leader-election Lease the scheduler
and the controller-manager renew every few seconds) and by what its absence leaves behind:

* no scheduler: Pending pods that no scheduler ever looked at (no node, no PodScheduled
  condition, no Scheduled or FailedScheduling event) for over a minute;
* no controller-manager: ReplicaSets whose status still counts pods that are gone, Deployments
  whose spec changed but were never observed (``generation`` ahead of ``observedGeneration``);
* a CNI agent down on a node: FailedCreatePodSandBox events there naming its plugin
  (``plugin type="calico"``, ``type="cilium-cni"``).

One ``control_plane`` item per component, naming in ``related`` the workloads that merely wait
on it: the ranking lets them point at it rather than outrank it."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    CLUSTER_NAMESPACES,
    Objects,
    meta,
    pod_services,
    pod_subject,
    recency,
    service_of,
    ts,
    when,
)
from collectors.kubernetes.events import event_span

# Leader Leases of the components whose only footprint is what stops happening.
LEADERS = ("kube-scheduler", "kube-controller-manager")
# A Lease not renewed for this long (or four lease durations, if longer) has no live leader.
STALE_LEASE = timedelta(seconds=60)
# A pod no scheduler has looked at for this long is not merely waiting its turn.
UNSEEN = timedelta(seconds=60)
# Evidence strength: the component seen down and its footprint, either alone, or both.
BOTH, DOWN, FOOTPRINT = 0.97, 0.8, 0.6
_PLUGIN = re.compile(r'plugin type="([^"]+)"')
_SCHEDULER_SAYS = ("Scheduled", "FailedScheduling")
_CREATES = ("SuccessfulCreate", "FailedCreate")
_NEVER = datetime.min.replace(tzinfo=UTC)


def control_plane(listed: dict[str, Objects], window: TimeWindow) -> list[EvidenceItem]:
    """``listed``: what each namespace in scope listed (kube-system among them)."""
    system: Objects = defaultdict(list)
    for ns in CLUSTER_NAMESPACES:
        system.update(listed.get(ns) or {})
    down = _leaders_down(system, window) | _static_down(system)
    waiting: dict[str, dict[str, list[str]]] = defaultdict(dict)  # component -> svc -> why
    for _, objs in sorted(listed.items()):
        for svc, pods in _unscheduled(objs, window).items():
            waiting["kube-scheduler"][svc] = [f"{len(pods)} pod(s) never scheduled: {pods[0]}"]
        for svc, why in _uncontrolled(objs).items():
            waiting["kube-controller-manager"].setdefault(svc, []).extend(why)
    items = []
    for comp in sorted(set(down) | set(waiting)):
        items.append(_item(comp, down.get(comp), waiting.get(comp, {}), window))
    items += _cni(listed, system, window)
    return items


def _item(
    comp: str,
    down: tuple[datetime | None, str] | None,
    waiters: dict[str, list[str]],
    window: TimeWindow,
    *,
    node: str = "",
) -> EvidenceItem:
    score = BOTH if down and waiters else DOWN if down else FOOTPRINT
    since = down[0] if down else None
    said = [down[1]] if down else [f"{comp} shows no sign of running"]
    if waiters:
        said.append(
            "waiting on it: " + "; ".join(f"{s} ({w[0]})" for s, w in sorted(waiters.items()))
        )
    where = f" on {node}" if node else ""
    return EvidenceItem(
        id=f"control-plane-{comp}" + (f"-{node}" if node else ""),
        kind="control_plane",
        summary=f"{comp}{where} is down"
        + (f" since {when(since, window)}" if since else "")
        + ": "
        + "; ".join(said)[:300],
        detail="\n".join(w for ws in waiters.values() for w in ws)[:1000],
        subject=comp,
        timestamp=since or window.onset,
        score=round(score * recency(since, window), 4),
        fault_hint="control_plane",
        related=sorted(waiters),
    )


# -- health -----------------------------------------------------------------------------------


def _leaders_down(system: Objects, window: TimeWindow) -> dict[str, tuple[datetime | None, str]]:
    out: dict[str, tuple[datetime | None, str]] = {}
    for lease in system.get("leases") or []:
        name = str(meta(lease).get("name", ""))
        spec = lease.get("spec") or {}
        renewed = ts(spec.get("renewTime"))
        if name not in LEADERS or renewed is None:
            continue
        limit = max(STALE_LEASE, timedelta(seconds=4 * int(spec.get("leaseDurationSeconds") or 15)))
        if window.end - renewed > limit:
            holder = spec.get("holderIdentity") or "no holder"
            out[name] = (
                renewed,
                f"its leader Lease (held by {holder}) was last renewed at {renewed:%H:%M:%S}",
            )
    return out


def _static_down(system: Objects) -> dict[str, tuple[datetime | None, str]]:
    """kubeadm's control-plane static pods (labels component, tier=control-plane) not ready."""
    out: dict[str, tuple[datetime | None, str]] = {}
    for pod in system.get("pods") or []:
        labels = meta(pod).get("labels") or {}
        comp = labels.get("component")
        if labels.get("tier") != "control-plane" or comp not in LEADERS:
            continue
        state = _unready(pod)
        if state is not None:
            since, why = state
            prior = out.get(comp)
            text = f"its pod {meta(pod).get('name')} is {why}"
            out[comp] = (since, text if prior is None else f"{prior[1]}; {text}")
    return out


def _unready(pod: dict[str, Any]) -> tuple[datetime | None, str] | None:
    """(since when, how) a pod is not ready, or None if it is."""
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "True":
        return None
    why = "not ready"
    for cs in status.get("containerStatuses") or []:
        waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if waiting:
            why = f"{waiting} (restarts={cs.get('restartCount', 0)})"
    return ts(ready.get("lastTransitionTime")), why


# -- footprints -------------------------------------------------------------------------------


def _events_by_object(objs: Objects) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for ev in objs.get("events") or []:
        obj = ev.get("involvedObject") or {}
        out[(str(obj.get("kind", "")), str(obj.get("name", "")))].append(ev)
    return out


def _unscheduled(objs: Objects, window: TimeWindow) -> dict[str, list[str]]:
    """Workload -> its Pending pods that no scheduler has said a word about."""
    events = _events_by_object(objs)
    owners = pod_services(objs)
    out: dict[str, list[str]] = defaultdict(list)
    for pod in objs.get("pods") or []:
        name = str(meta(pod).get("name", ""))
        status = pod.get("status") or {}
        created = ts(meta(pod).get("creationTimestamp"))
        if (
            status.get("phase") != "Pending"
            or (pod.get("spec") or {}).get("nodeName")
            or any(c.get("type") == "PodScheduled" for c in status.get("conditions") or [])
            or any(e.get("reason") in _SCHEDULER_SAYS for e in events.get(("Pod", name), []))
            or created is None
            or window.end - created < UNSEEN
            or meta(pod).get("deletionTimestamp")
        ):
            continue
        out[pod_subject(pod, owners)].append(name)
    return out


def _uncontrolled(objs: Objects) -> dict[str, list[str]]:
    """Workload -> what its controllers left undone: a ReplicaSet whose status counts pods that
    are gone (and that created or failed to create none since), a Deployment spec unobserved."""
    events = _events_by_object(objs)
    pods_of: dict[str, int] = defaultdict(int)
    for pod in objs.get("pods") or []:
        if meta(pod).get("deletionTimestamp"):
            continue
        for ref in meta(pod).get("ownerReferences") or []:
            pods_of[str(ref.get("name"))] += 1
    out: dict[str, list[str]] = defaultdict(list)
    for rs in objs.get("replicasets") or []:
        name = str(meta(rs).get("name", ""))
        want = int((rs.get("spec") or {}).get("replicas") or 0)
        counted = int((rs.get("status") or {}).get("replicas") or 0)
        have = pods_of[name]
        if (
            want > have
            and counted > have
            and not any(
                e.get("reason") in _CREATES
                for e in events.get(("ReplicaSet", name), [])
                if (event_span(e)[1] or _NEVER) >= _newest(events, name)
            )
        ):
            svc = service_of(rs)
            out[svc].append(
                f"ReplicaSet {name} wants {want} pods, {have} exist, "
                f"its status still counts {counted}"
            )
    for deploy in objs.get("deployments") or []:
        generation = int(meta(deploy).get("generation") or 0)
        seen = int((deploy.get("status") or {}).get("observedGeneration") or generation)
        if generation > seen:
            out[service_of(deploy)].append(
                f"Deployment {meta(deploy).get('name')} generation {generation} never observed "
                f"(observedGeneration {seen})"
            )
    return out


def _newest(events: dict[tuple[str, str], list[dict[str, Any]]], rs: str) -> datetime:
    """When a pod of the ReplicaSet was last stopped: creates before that do not count."""
    prefix = f"{rs}-"
    stops = [
        event_span(e)[1]
        for (kind, name), evs in events.items()
        if kind == "Pod" and name.startswith(prefix)
        for e in evs
        if e.get("reason") == "Killing"
    ]
    return max((t for t in stops if t is not None), default=_NEVER)


def _cni(listed: dict[str, Objects], system: Objects, window: TimeWindow) -> list[EvidenceItem]:
    """FailedCreatePodSandBox naming a CNI plugin on a node: that node's agent of the plugin."""
    agents = {str(meta(ds).get("name", "")): ds for ds in system.get("daemonsets") or []}
    failing: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(dict)
    for objs in listed.values():
        owners = pod_services(objs)
        pods = {str(meta(p).get("name", "")): p for p in objs.get("pods") or []}
        for ev in objs.get("events") or []:
            found = _PLUGIN.search(str(ev.get("message", "")))
            _, last = event_span(ev)
            if ev.get("reason") != "FailedCreatePodSandBox" or not found or last is None:
                continue
            if last < window.start:
                continue
            name = str((ev.get("involvedObject") or {}).get("name", ""))
            pod = pods.get(name)
            node = ((pod or {}).get("spec") or {}).get("nodeName") or (ev.get("source") or {}).get(
                "host", ""
            )
            agent = _agent_of(found.group(1), agents)
            svc = pod_subject(pod, owners) if pod else name
            failing[(agent, str(node))].setdefault(svc, []).append(
                f'pod {name} has no network: plugin type="{found.group(1)}" failed'
            )
    items = []
    for (agent, node), waiters in sorted(failing.items()):
        ds = agents.get(agent)
        down = None
        if ds is not None:
            for pod in system.get("pods") or []:
                owned = any(r.get("name") == agent for r in meta(pod).get("ownerReferences") or [])
                if owned and (pod.get("spec") or {}).get("nodeName") == node:
                    state = _unready(pod)
                    if state is not None:
                        down = (state[0], f"its pod {meta(pod).get('name')} is {state[1]}")
        comp = service_of(ds) if ds is not None else agent
        items.append(_item(comp, down, waiters, window, node=node))
    return items


def _agent_of(plugin: str, agents: dict[str, dict[str, Any]]) -> str:
    """The DaemonSet that runs a CNI plugin's node agent: ``calico`` -> calico-node,
    ``cilium-cni`` -> cilium, ``aws-cni`` -> aws-node; the plugin's own name if none matches."""
    stem = plugin.split("-")[0]
    matches = sorted(name for name in agents if stem in name)
    return matches[0] if matches else plugin
