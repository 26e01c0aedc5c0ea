"""Traffic that goes nowhere: a Service whose selector matches no pod (the workload scaled to 0,
or its labels changed), or whose EndpointSlices (discovery.k8s.io/v1) list no ready address.
Callers then fail on connection refused / no healthy upstream; the cause is the workload the
Service is meant to select, named as collectors.identity names it (the Deployment it selects,
else the selector's ``app`` value, else the Service's name).

Without EndpointSlices (no RBAC, or a recording without them) only a selector that matches no
pod counts: pods that are not ready already speak for themselves (pod states, events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.identity import helm_name
from collectors.kubernetes.common import (
    WORKLOAD_RESOURCES,
    Objects,
    last_change,
    meta,
    pod_services,
    pod_subject,
    recency,
    selector_matches_labels,
    service_of,
    when,
)

# How decisive a Service with nowhere to send traffic is, when a workload is meant to serve it;
# a Service that selects no workload at all may be a leftover nobody calls.
SCORE = 0.85
ORPHAN = 0.4


def _meant_for(svc: dict[str, Any], selector: dict[str, str], objs: Objects) -> tuple[str, Any]:
    """The workload a Service is meant to select, and its object when it is listed."""
    for resource in WORKLOAD_RESOURCES:
        for wl in objs[resource]:
            labels = ((wl.get("spec") or {}).get("template") or {}).get("metadata") or {}
            if selector_matches_labels(selector, labels.get("labels") or {}):
                return service_of(wl), wl
    if chart := selector.get("app.kubernetes.io/name"):
        return helm_name(chart, selector.get("app.kubernetes.io/instance")), None
    for key in ("app", "k8s-app", "service"):
        if selector.get(key):
            return selector[key], None
    return str(meta(svc).get("name", "?")), None


def _ports(svc: dict[str, Any]) -> str:
    ports = [
        str(p.get("targetPort", p.get("port"))) for p in (svc.get("spec") or {}).get("ports") or []
    ]
    return f" / targetPort {', '.join(ports)}" if ports else ""


def _slice_addresses(slices: list[dict[str, Any]], service: str) -> tuple[int, int] | None:
    """(ready, not ready) endpoints of a Service's EndpointSlices; None when none is listed."""
    mine = [
        s
        for s in slices
        if (meta(s).get("labels") or {}).get("kubernetes.io/service-name") == service
    ]
    if not mine:
        return None
    ready = unready = 0
    for s in mine:
        for ep in s.get("endpoints") or []:
            # The API treats a missing ready condition as ready.
            if (ep.get("conditions") or {}).get("ready", True) is False:
                unready += 1
            else:
                ready += 1
    return ready, unready


def endpointless(
    ns: str,
    objs: Objects,
    services: list[dict[str, Any]],
    slices: list[dict[str, Any]] | None,
    window: TimeWindow,
) -> list[EvidenceItem]:
    owners = pod_services(objs)
    items = []
    for svc in services:
        spec = svc.get("spec") or {}
        selector = {str(k): str(v) for k, v in (spec.get("selector") or {}).items()}
        if not selector or spec.get("type") == "ExternalName":
            continue  # endpoints managed by hand, or a DNS alias
        name = str(meta(svc).get("name", "?"))
        pods = [
            p
            for p in objs["pods"]
            if selector_matches_labels(selector, meta(p).get("labels") or {})
        ]
        workload, obj = _meant_for(svc, selector, objs)
        if pods:
            workload = pod_subject(pods[0], owners)
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        began: datetime | None = None
        if not pods:
            why = f"selector {sel} matches no pod"
            if obj is not None:
                desired = (obj.get("spec") or {}).get("replicas", 1)
                if desired == 0:
                    began = last_change(obj)
                    at = f" {when(began, window)}" if began else ""
                    why += f"; {obj.get('kind', 'Deployment')} {meta(obj).get('name')} is "
                    why += f"scaled to 0 replicas{at}"
        else:
            counted = _slice_addresses(slices or [], name) if slices is not None else None
            if counted is None or counted[0] > 0:
                continue
            why = f"selector {sel} matches {len(pods)} pod(s), none ready ({counted[1]} not ready)"
        score = SCORE if (obj is not None or pods) else ORPHAN
        items.append(
            EvidenceItem(
                id=f"endpoints-{ns}-{name}",
                kind="no_endpoints",
                summary=f"Service {name} has no ready endpoints ({why}{_ports(svc)}): "
                f"traffic to {workload} goes nowhere",
                subject=workload,
                timestamp=began or window.onset,
                score=round(score * recency(began, window), 4),
                fault_hint="dependency_failure",
                change=f"deployment/{meta(obj).get('name')}"
                if obj is not None and began is not None and obj.get("kind") == "Deployment"
                else None,
            )
        )
    return items
