"""Rollouts: new revisions of Deployments (with what their pod template changed), StatefulSets
and DaemonSets shortly before the onset."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    CHANGE_LOOKBACK,
    Objects,
    change_score,
    changed_by,
    meta,
    service_of,
    ts,
)

NO_CHANGE = "no pod template change"
# A workload write this long before a new revision may be what made it.
ACTOR_WINDOW = timedelta(minutes=10)
# A restart or a scale runs the same code and configuration: a weaker suspect than a change.
RESTART_FACTOR = 0.5
# A release of the whole app (a Helm upgrade, an Argo CD sync): at least MASS_MIN workloads,
# most of those in the namespace, rolled out within MASS_SPAN. It is one change of the app,
# not of each workload: each one's rollout says this much of what it would alone.
MASS_MIN, MASS_SPAN, MASS_FACTOR = 4, timedelta(seconds=120), 0.35
_SECRETISH = re.compile(r"secret|password|token|credential", re.IGNORECASE)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers: list[dict[str, Any]] = spec.get("containers") or []
    return containers


def template_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What a revision changed in the pod template, in words an engineer scans quickly."""
    if old is None:
        return ["first revision"]
    out = []
    before = {c.get("name"): c for c in _containers(old)}
    for c in _containers(new):
        prev = before.get(c.get("name"), {})
        name = c.get("name")
        if c.get("image") != prev.get("image"):
            out.append(f"{name}: image {prev.get('image')} -> {c.get('image')}")
        env_old = {e.get("name"): e for e in prev.get("env") or []}
        for e in c.get("env") or []:
            if env_old.get(e.get("name")) != e:
                shown = e.get("value", "(from reference)")
                out.append(f"{name}: env {e.get('name')}={shown}")
        if (c.get("resources") or {}) != (prev.get("resources") or {}):
            out.append(f"{name}: resources {prev.get('resources')} -> {c.get('resources')}")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if c.get(probe) != prev.get(probe):
                out.append(f"{name}: {probe} changed")
        if (c.get("envFrom") or []) != (prev.get("envFrom") or []):
            out.append(f"{name}: envFrom changed")
    old_vols = ((old.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes")
    new_vols = ((new.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes")
    if old_vols != new_vols:
        out.append("volumes changed")
    return out or [NO_CHANGE]


def rollout_hint(diff: list[str]) -> str:
    """What kind of change a revision was, from what it changed."""
    text = "\n".join(diff)
    if "Probe changed" in text:
        return "probe_misconfiguration"
    if ": env " in text or "envFrom" in text or "volumes changed" in text:
        return "secret_change" if _SECRETISH.search(text) else "config_change"
    return "bad_rollout"


def _actor(workload: dict[str, Any], at: datetime) -> str:
    """Who changed the workload to cause the revision created ``at``: the manager of its
    last write at that time (kubectl, Helm, Argo CD, Flux...), from its managedFields."""
    found = changed_by(workload, at)
    if found is None or found[0] < at - ACTOR_WINDOW:
        return ""
    return f" (changed by {found[1]} at {found[0]:%H:%M:%S})"


def rollouts(ns: str, objs: Objects, window: TimeWindow) -> list[EvidenceItem]:
    items = _deployment_rollouts(ns, objs, window) + _revision_rollouts(ns, objs, window)
    workloads = sum(len(objs[k]) for k in ("deployments", "statefulsets", "daemonsets"))
    return _mass_release(items, workloads)


def _mass_release(items: list[EvidenceItem], workloads: int) -> list[EvidenceItem]:
    """Rollouts that came together with most of the namespace's others weigh as one release."""
    stamped = sorted((i for i in items if i.timestamp), key=lambda i: i.timestamp or 0)
    best: list[EvidenceItem] = []
    for k, first in enumerate(stamped):
        assert first.timestamp is not None
        group = [
            i for i in stamped[k:] if i.timestamp and i.timestamp - first.timestamp <= MASS_SPAN
        ]
        if len({i.subject for i in group}) > len({i.subject for i in best}):
            best = group
    subjects = {i.subject for i in best}
    if len(subjects) < MASS_MIN or len(subjects) * 2 <= workloads:
        return items
    times = [i.timestamp for i in best if i.timestamp]
    span = (max(times) - min(times)).total_seconds()
    note = f" (rolled out with {len(subjects) - 1} others in {span:.0f} s: one release of the app)"
    ids = {i.id for i in best}
    return [
        i.model_copy(update={"score": i.score * MASS_FACTOR, "summary": i.summary + note})
        if i.id in ids
        else i
        for i in items
    ]


def _deployment_rollouts(ns: str, objs: Objects, window: TimeWindow) -> list[EvidenceItem]:
    """A Deployment's revisions are its ReplicaSets; each is compared with the one before."""
    since = window.start - CHANGE_LOOKBACK
    items = []
    for deploy in objs["deployments"]:
        name = meta(deploy).get("name")
        owned = [
            rs
            for rs in objs["replicasets"]
            if any(o.get("name") == name for o in meta(rs).get("ownerReferences") or [])
        ]
        owned.sort(
            key=lambda rs: int(
                (meta(rs).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0)
            )
        )
        previous = None
        for rs in owned:
            created = ts(meta(rs).get("creationTimestamp"))
            rev = (meta(rs).get("annotations") or {}).get("deployment.kubernetes.io/revision")
            if created and since <= created <= window.end and previous is not None:
                diff = template_diff(previous, rs)
                minutes = (window.onset - created).total_seconds() / 60
                when = (
                    f"{minutes:.0f} min before the onset"
                    if minutes >= 0
                    else f"{-minutes:.0f} min after the onset"
                )
                by = _actor(deploy, created)
                items.append(
                    EvidenceItem(
                        id=f"rollout-{ns}-{name}-rev{rev}",
                        kind="rollout",
                        summary=f"Deployment {ns}/{name} rolled out revision {rev} {when}"
                        f"{by}: " + "; ".join(diff[:3]),
                        detail="\n".join([*diff, *([by.strip()] if by else [])]),
                        subject=service_of(deploy),
                        timestamp=created,
                        score=change_score(created, window.onset)
                        * (RESTART_FACTOR if diff == [NO_CHANGE] else 1.0),
                        fault_hint=rollout_hint(diff),
                        change=f"deployment/{name} revision {rev}",
                    )
                )
            previous = rs
    return items


def _revision_rollouts(ns: str, objs: Objects, window: TimeWindow) -> list[EvidenceItem]:
    """StatefulSets and DaemonSets keep their revisions as ControllerRevisions."""
    since = window.start - CHANGE_LOOKBACK
    items = []
    for kind in ("statefulsets", "daemonsets"):
        for wl in objs[kind]:
            wl_name = meta(wl).get("name")
            revs = sorted(
                (
                    cr
                    for cr in objs["controllerrevisions"]
                    if any(o.get("name") == wl_name for o in meta(cr).get("ownerReferences") or [])
                ),
                key=lambda cr: int(cr.get("revision", 0)),
            )
            for cr in revs[1:]:
                created = ts(meta(cr).get("creationTimestamp"))
                if created and since <= created <= window.end:
                    items.append(
                        EvidenceItem(
                            id=f"rollout-{ns}-{wl_name}-rev{cr.get('revision')}",
                            kind="rollout",
                            summary=f"{kind[:-1].capitalize()} {ns}/{wl_name} rolled out "
                            f"revision {cr.get('revision')} at {created:%H:%M:%S}"
                            + _actor(wl, created),
                            subject=service_of(wl),
                            timestamp=created,
                            score=change_score(created, window.onset),
                            fault_hint="bad_rollout",
                            change=f"{kind[:-1]}/{wl_name} revision {cr.get('revision')}",
                        )
                    )
    return items
