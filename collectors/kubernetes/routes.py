"""Routes into a namespace that lead nowhere: an Ingress (networking.k8s.io/v1) or a Gateway API
HTTPRoute (gateway.networking.k8s.io/v1) whose backend Service does not exist or exposes no
such port, or, right after the route was changed, has no ready endpoint. Outside traffic then
ends at the edge (ingress-nginx answers 503, Envoy "no healthy upstream") while the workloads
behind it sit idle: the route is the suspect, named by its own name. A route written shortly
before the onset counts as a change too; one broken long ago fades to background."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    CHANGE_LOOKBACK,
    changed_by,
    meta,
    recency,
    ts,
    when,
    written_change,
)
from collectors.kubernetes.endpoints import slice_addresses

# As decisive as a Service with no endpoints: nothing the route sends traffic to can answer.
SCORE = 0.85

# (Service name, port number or name or None, namespace)
Backend = tuple[str, int | str | None, str]


def _ingress_backends(route: dict[str, Any], ns: str) -> list[Backend]:
    spec = route.get("spec") or {}
    found = [spec.get("defaultBackend") or {}]
    for rule in spec.get("rules") or []:
        found += [p.get("backend") or {} for p in (rule.get("http") or {}).get("paths") or []]
    out: list[Backend] = []
    for backend in found:
        svc = backend.get("service")
        if svc and svc.get("name"):
            port = svc.get("port") or {}
            out.append((str(svc["name"]), port.get("number") or port.get("name"), ns))
    return out


def _httproute_backends(route: dict[str, Any], ns: str) -> list[Backend]:
    out: list[Backend] = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
                continue  # another kind of backend: nothing here to check it against
            out.append((str(ref.get("name", "")), ref.get("port"), ref.get("namespace") or ns))
    return out


def _unresolved(route: dict[str, Any]) -> list[str]:
    """What the Gateway controllers wrote in the route's status about references they could not
    resolve (ResolvedRefs False), e.g. BackendNotFound."""
    out = []
    for parent in (route.get("status") or {}).get("parents") or []:
        for c in parent.get("conditions") or []:
            if c.get("type") == "ResolvedRefs" and c.get("status") == "False":
                out.append(f"{c.get('reason', '')}: {c.get('message', '')}".strip(": "))
    return out


def _problem(
    backend: Backend,
    services: dict[str, dict[str, Any]],
    slices: list[dict[str, Any]] | None,
    ns: str,
) -> tuple[str, bool] | None:
    """What is wrong with one backend, and whether it is wrong by itself (missing Service, no
    such port) rather than only for now (no ready endpoint)."""
    name, port, where = backend
    if where != ns:
        return None  # another namespace's Service: the route's status speaks for it
    svc = services.get(name)
    if svc is None:
        return f"Service {name} does not exist", True
    ports = (svc.get("spec") or {}).get("ports") or []
    if port is not None and not any(port in (p.get("port"), p.get("name")) for p in ports):
        exposed = ", ".join(str(p.get("port")) for p in ports) or "none"
        return f"Service {name} exposes no port {port} (ports: {exposed})", True
    counted = slice_addresses(slices, name) if slices is not None else None
    if counted is not None and counted[0] == 0:
        return f"Service {name} has no ready endpoint ({counted[1]} not ready)", False
    return None


def _recent_write(route: dict[str, Any], window: TimeWindow) -> tuple[datetime, str] | None:
    found = changed_by(route)
    if found is None or not window.start - CHANGE_LOOKBACK <= found[0] <= window.end:
        return None
    if found[0] == ts(meta(route).get("creationTimestamp")) and found[0] < window.start:
        return None  # created long ago and never changed since
    return found


def dead_routes(
    ns: str,
    ingresses: list[dict[str, Any]],
    httproutes: list[dict[str, Any]],
    services: list[dict[str, Any]],
    slices: list[dict[str, Any]] | None,
    window: TimeWindow,
) -> list[EvidenceItem]:
    by_name = {str(meta(s).get("name")): s for s in services}
    items: list[EvidenceItem] = []
    routes = [("Ingress", r, _ingress_backends(r, ns)) for r in ingresses]
    routes += [("HTTPRoute", r, _httproute_backends(r, ns)) for r in httproutes]
    for kind, route, backends in routes:
        name = str(meta(route).get("name", "?"))
        written = _recent_write(route, window)
        found = [p for b in backends if (p := _problem(b, by_name, slices, ns)) is not None]
        # A backend with no ready endpoint is the backend's trouble, unless the route was just
        # pointed at it.
        problems = [why for why, lasting in found if lasting or written]
        if not problems and kind == "HTTPRoute":
            problems = _unresolved(route)
        if not problems:
            continue
        last = changed_by(route)
        began = written[0] if written else (last[0] if last else None)
        change = f"{kind.lower()}/{name}"
        by = f"; changed by {written[1]} {when(written[0], window)}" if written else ""
        items.append(
            EvidenceItem(
                id=f"route-{ns}-{kind.lower()}-{name}",
                kind="route_backend",
                summary=f"{kind} {name} sends traffic nowhere: {'; '.join(problems)}{by}",
                detail="; ".join(_unresolved(route)),
                subject=name,
                timestamp=began or window.onset,
                score=round(SCORE * recency(began, window), 4),
                fault_hint="routing",
                change=change if written else None,
            )
        )
        if written:
            item_id = f"route-change-{ns}-{kind.lower()}-{name}"
            what = f"{kind} {ns}/{name}"
            items.append(
                written_change(item_id, what, name, written, window, hint="routing", change=change)
            )
    return items
