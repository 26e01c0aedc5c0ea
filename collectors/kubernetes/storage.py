"""Volumes a workload's pods cannot use: a PersistentVolumeClaim that stays Pending (its
StorageClass is missing, the provisioner refuses: ``ProvisioningFailed``), a ReadWriteOnce
volume still attached to another node (``FailedAttachVolume``: ``Multi-Attach error``), a volume
that will not mount (``FailedMount``: ``MountVolume.MountDevice failed``, ``unmounted
volumes=[data]``).

The workload whose pods mount the claim is the cause, not the callers that lose it: one
``volume`` item per workload, naming the claims, their phase and StorageClass, and what the
controllers and the kubelet said. A mount failure counts only when it names a volume the pod
takes from a claim (a missing Secret or ConfigMap is another story), and trouble that began
well after the onset explains little of it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    Objects,
    meta,
    pod_services,
    pod_subject,
    recency,
    service_of,
    ts,
    when,
)
from collectors.kubernetes.events import event_count, event_span

# How decisive a workload whose pods cannot get their volumes is.
SCORE = 0.9
# Trouble that began this long after the onset is more likely its consequence.
AFTER_ONSET = timedelta(minutes=5)
# Warning events about claims (the PersistentVolume controller, CSI provisioners) and about
# pods' volumes (the attach/detach controller, the kubelet).
_CLAIM_REASONS = ("ProvisioningFailed", "FailedBinding", "VolumeResizeFailed")
_POD_REASONS = ("FailedAttachVolume", "FailedMount", "FailedMapVolume")


@dataclass
class _Trouble:
    first: datetime
    claims: set[str] = field(default_factory=set)
    said: dict[str, tuple[int, str]] = field(default_factory=dict)  # reason -> (count, message)

    def add(self, first: datetime, claim: str, reason: str, count: int, message: str) -> None:
        self.first = min(self.first, first)
        self.claims.add(claim)
        prior = self.said.get(reason)
        self.said[reason] = (count + (prior[0] if prior else 0), prior[1] if prior else message)


def _pod_claims(pod: dict[str, Any]) -> dict[str, str]:
    """The pod's volume name -> the claim it takes the volume from."""
    out = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            out[str(vol.get("name", ""))] = str(claim)
    return out


def _named_claim(message: str, volumes: dict[str, str], pv_claim: dict[str, str]) -> str | None:
    """The claim an event about a pod's volumes names: by the pod's volume name (``volume
    "data"``, ``unmounted volumes=[data]``) or by the claim's PersistentVolume."""
    for pv, claim in pv_claim.items():
        if claim in volumes.values() and pv in message:
            return claim
    for vol, claim in volumes.items():
        listed = re.search(rf"volumes=\[[^\]]*(?<![\w-]){re.escape(vol)}(?![\w-])", message)
        if f'volume "{vol}"' in message or listed:
            return claim
    return None


def _claim_owner(claim: str, objs: Objects) -> str | None:
    """A StatefulSet's claim is named ``<template>-<statefulset>-<ordinal>``."""
    for sts in objs["statefulsets"]:
        name = str(meta(sts).get("name", ""))
        for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            prefix = f"{meta(tmpl).get('name')}-{name}-"
            if claim.startswith(prefix) and claim.removeprefix(prefix).isdigit():
                return service_of(sts)
    return None


def volume_trouble(
    ns: str, objs: Objects, pvcs: list[dict[str, Any]], window: TimeWindow
) -> list[EvidenceItem]:
    owners = pod_services(objs)
    claims = {str(meta(c).get("name")): c for c in pvcs}
    pv_claim = {
        str((c.get("spec") or {}).get("volumeName")): name
        for name, c in claims.items()
        if (c.get("spec") or {}).get("volumeName")
    }
    pods = {str(meta(p).get("name")): p for p in objs["pods"]}
    users: dict[str, str] = {}  # claim -> the workload whose pods mount it
    for pod in objs["pods"]:
        for claim in _pod_claims(pod).values():
            users.setdefault(claim, pod_subject(pod, owners))
    found: dict[str, _Trouble] = {}

    def note(svc: str, first: datetime, claim: str, reason: str, count: int, text: str) -> None:
        found.setdefault(svc, _Trouble(first)).add(first, claim, reason, count, text)

    for ev in objs["events"]:
        reason = str(ev.get("reason", ""))
        if ev.get("type") != "Warning" or reason not in (*_CLAIM_REASONS, *_POD_REASONS):
            continue
        first, last = event_span(ev)
        if first is None or last is None or not (first <= window.end and last >= window.start):
            continue
        obj = ev.get("involvedObject") or {}
        name, message = str(obj.get("name", "")), str(ev.get("message", ""))
        if obj.get("kind") == "PersistentVolumeClaim" and reason in _CLAIM_REASONS:
            svc = users.get(name) or _claim_owner(name, objs) or name
            note(svc, first, name, reason, event_count(ev), message)
        elif obj.get("kind") == "Pod" and reason in _POD_REASONS and name in pods:
            pod = pods[name]
            named = _named_claim(message, _pod_claims(pod), pv_claim)
            if named is not None:  # not a Secret, ConfigMap or projected volume
                note(pod_subject(pod, owners), first, named, reason, event_count(ev), message)
    for name, c in claims.items():
        created = ts(meta(c).get("creationTimestamp"))
        pending = (c.get("status") or {}).get("phase") == "Pending" and name in users
        # A claim that has waited since long before the window is background.
        if pending and created and recency(created, window) >= 1.0:
            note(users[name], created, name, "Pending", 0, "")
    items = []
    for svc, t in sorted(found.items()):
        weight = recency(t.first, window)
        if t.first > window.onset + AFTER_ONSET:
            weight *= 0.3  # began well after the alert fired: a consequence
        states = []
        for claim in sorted(t.claims):
            found_claim = claims.get(claim)
            if found_claim is None:
                states.append(f"PersistentVolumeClaim {claim}")
                continue
            spec, status = found_claim.get("spec") or {}, found_claim.get("status") or {}
            sc = spec.get("storageClassName") or "the default StorageClass"
            sc = sc if sc == "the default StorageClass" else f"StorageClass {sc}"
            bound = f", volume {spec['volumeName']}" if spec.get("volumeName") else ""
            phase = status.get("phase", "?")
            states.append(f"PersistentVolumeClaim {claim} is {phase} ({sc}{bound})")
        said = [f"{n}x {r}: {m[:200]}" for r, (n, m) in sorted(t.said.items()) if r != "Pending"]
        items.append(
            EvidenceItem(
                id=f"volume-{ns}-{svc}",
                kind="volume",
                summary=f"pods of {svc} cannot use their volumes since {when(t.first, window)}: "
                + "; ".join(states + said),
                detail="\n".join(m[:400] for _, m in t.said.values() if m),
                subject=svc,
                timestamp=t.first,
                score=round(SCORE * weight, 4),
                fault_hint="storage",
                related=sorted(t.claims),
            )
        )
    return items
