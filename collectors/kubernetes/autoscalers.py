"""Autoscalers that cannot scale further: an HPA at its maximum (or limited) leaves the load
with nowhere to go, a capacity fault."""

from __future__ import annotations

from typing import Any

from collectors.contracts import EvidenceItem
from collectors.kubernetes.common import meta


def autoscalers_at_max(ns: str, hpas: list[dict[str, Any]]) -> list[EvidenceItem]:
    items = []
    for hpa in hpas:
        status, spec = hpa.get("status") or {}, hpa.get("spec") or {}
        current, maximum = status.get("currentReplicas"), spec.get("maxReplicas")
        limited = any(
            c.get("type") == "ScalingLimited" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if maximum and current is not None and (current >= maximum or limited):
            target = (spec.get("scaleTargetRef") or {}).get("name", meta(hpa).get("name"))
            items.append(
                EvidenceItem(
                    id=f"hpa-{ns}-{target}",
                    kind="hpa",
                    summary=f"HPA for {target} is at its maximum ({current}/{maximum} replicas)",
                    subject=str(target),
                    score=0.7,
                    fault_hint="capacity",
                )
            )
    return items
