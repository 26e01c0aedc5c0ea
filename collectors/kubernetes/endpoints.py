"""Traffic that goes nowhere: a Service whose selector matches no pod (the workload scaled to 0,
or the selector or the pods' labels changed), whose targetPort is no port its pods declare, or
whose EndpointSlices (discovery.k8s.io/v1) list no ready address. Callers then fail on
connection refused / no healthy upstream; the cause is the workload the Service is meant to
select, named as collectors.identity names it (the Deployment it selects, else the one its
selector or name points at, else the selector's ``app`` value, else the Service's name).

A Service (or a Deployment's replicas) written shortly before the onset also counts as a change.
Without EndpointSlices (no RBAC, or a recording without them) a selector that matches no pod and
a port no pod serves still count: pods that are not ready already speak for themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.identity import helm_name
from collectors.kubernetes.common import (
    CHANGE_LOOKBACK,
    WORKLOAD_RESOURCES,
    Objects,
    changed_by,
    meta,
    pod_services,
    pod_subject,
    recency,
    selector_matches_labels,
    service_of,
    ts,
    when,
    written_change,
)

# How decisive a Service with nowhere to send traffic is, when a workload is meant to serve it;
# a Service that selects no workload at all may be a leftover nobody calls.
SCORE = 0.85
ORPHAN = 0.4
# The hint when the Service itself sends traffic nowhere; pods that exist but are not ready
# are some other trouble (probes, crashes) that the pods' own evidence names.
ROUTING = "routing"


def _template_labels(wl: dict[str, Any]) -> dict[str, Any]:
    tmpl = ((wl.get("spec") or {}).get("template") or {}).get("metadata") or {}
    labels: dict[str, Any] = tmpl.get("labels") or {}
    return labels


def _meant_for(svc: dict[str, Any], selector: dict[str, str], objs: Objects) -> tuple[str, Any]:
    """The workload a Service is meant to select, and its object when it is listed: the one it
    selects, else one named like the Service that carries part of the selector (a selector
    edited away from its pods), else what the selector's own values name."""
    name = str(meta(svc).get("name", "?"))
    for resource in WORKLOAD_RESOURCES:
        for wl in objs[resource]:
            if selector_matches_labels(selector, _template_labels(wl)):
                return service_of(wl), wl
    for resource in WORKLOAD_RESOURCES:
        for wl in objs[resource]:
            labels = _template_labels(wl)
            shared = any(labels.get(k) == v for k, v in selector.items())
            if shared and name in (meta(wl).get("name"), service_of(wl)):
                return service_of(wl), wl
    if chart := selector.get("app.kubernetes.io/name"):
        return helm_name(chart, selector.get("app.kubernetes.io/instance")), None
    for key in ("app", "k8s-app", "service"):
        if selector.get(key):
            return selector[key], None
    return name, None


def _ports(svc: dict[str, Any]) -> str:
    ports = [
        str(p.get("targetPort", p.get("port"))) for p in (svc.get("spec") or {}).get("ports") or []
    ]
    return f" / targetPort {', '.join(ports)}" if ports else ""


def slice_addresses(slices: list[dict[str, Any]], service: str) -> tuple[int, int] | None:
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


def unserved_ports(svc: dict[str, Any], pods: list[dict[str, Any]]) -> list[str]:
    """The Service's targetPorts that none of its pods declares (by number or by name): its
    traffic reaches the pods on a port nothing listens on. Pods that declare no port at all
    say nothing either way."""
    declared: set[str] = set()
    for pod in pods:
        for c in (pod.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                declared |= {str(p.get("containerPort")), str(p.get("name", ""))}
    if not declared:
        return []
    out = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        target = str(port.get("targetPort", port.get("port")))
        if target not in declared:
            out.append(target)
    return out


def _recent(obj: dict[str, Any], window: TimeWindow) -> tuple[datetime, str] | None:
    """The last write to an object, when it falls in the change lookback before the onset."""
    found = changed_by(obj)
    if found is None or not window.start - CHANGE_LOOKBACK <= found[0] <= window.end:
        return None
    if found[0] == ts(meta(obj).get("creationTimestamp")):
        return None  # created, not changed
    return found


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
        edited = _recent(svc, window)
        began: datetime | None = edited[0] if edited else None
        hint, change = ROUTING, f"service/{name}" if edited else None
        if not pods:
            why = f"selector {sel} matches no pod"
            desired = (obj.get("spec") or {}).get("replicas", 1) if obj is not None else 1
            if obj is not None and desired == 0:
                scaled = changed_by(obj)
                began = scaled[0] if scaled else began
                at = f" {when(began, window)}" if began else ""
                by = f" by {scaled[1]}" if scaled else ""
                kind = str(obj.get("kind", "Deployment"))
                why += f"; {kind} {meta(obj).get('name')} is scaled to 0 replicas{at}{by}"
                change = f"{kind.lower()}/{meta(obj).get('name')}" if began else change
                edited = (began, scaled[1]) if began and scaled and _recent(obj, window) else None
            elif obj is not None:
                labels = ",".join(f"{k}={v}" for k, v in sorted(_template_labels(obj).items()))
                why += f" (the pods of {meta(obj).get('name')} carry {labels})"
        elif missing := unserved_ports(svc, pods):
            why = (
                f"targetPort {', '.join(missing)} is no port its {len(pods)} pod(s) declare: "
                "connections reach them on a port nothing listens on"
            )
        else:
            counted = slice_addresses(slices or [], name) if slices is not None else None
            if counted is None or counted[0] > 0:
                continue
            why = f"selector {sel} matches {len(pods)} pod(s), none ready ({counted[1]} not ready)"
            hint, began = "dependency_failure", None
        score = SCORE if (obj is not None or pods) else ORPHAN
        if edited and hint == ROUTING:
            why += f"; Service changed by {edited[1]} {when(edited[0], window)}"
        items.append(
            EvidenceItem(
                id=f"endpoints-{ns}-{name}",
                kind="no_endpoints",
                summary=f"Service {name} has no ready endpoints ({why}{_ports(svc)}): "
                f"traffic to {workload} goes nowhere",
                subject=workload,
                timestamp=began or window.onset,
                score=round(score * recency(began, window), 4),
                fault_hint=hint,
                change=change,
            )
        )
        if edited and hint == ROUTING:
            what = change or f"service/{name}"
            after = ", after which it reaches no pod"
            items.append(
                written_change(
                    f"endpoints-change-{ns}-{name}",
                    what,
                    workload,
                    edited,
                    window,
                    hint=ROUTING,
                    change=what,
                    after=after,
                )
            )
    return items
