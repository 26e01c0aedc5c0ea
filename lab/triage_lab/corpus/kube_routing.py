"""Where traffic is sent: the Services' own writes (managedFields, edits after creation), the
EndpointSlices the EndpointSlice controller keeps for them, and the Ingress or Gateway API
HTTPRoute that brings outside traffic to the entry service. Built from the rendered Services and
pods, so a slice lists exactly the pods the API shows; choices come from the scenario's key,
never from its random stream, so adding these left every other object as it was."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from triage_lab.corpus.kube import object_meta, safe_hash, uid
from triage_lab.corpus.model import RouteObj
from triage_lab.fakes.kubernetes_objects import Obj, ts
from triage_lab.scenarios import KubeObjects

if TYPE_CHECKING:
    from triage_lab.corpus.world import World

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SERVICE_NAME = "kubernetes.io/service-name"
# (namespace, name) of the Gateway an HTTPRoute attaches to, with its controller's name.
GATEWAYS = (
    ("envoy-gateway-system", "eg", "gateway.envoyproxy.io/gatewayclass-controller"),
    ("gateway-system", "public", "istio.io/gateway-controller"),
)


def _pick(w: World, what: str, n: int) -> int:
    return hashlib.sha256(f"{w.key}/{what}".encode()).digest()[0] % n


def entry_route(w: World) -> RouteObj:
    """The route that brings outside traffic to the entry service (made on first use)."""
    if w.routes:
        return w.routes[0]
    entry = w.workloads[w.entry]
    kind = ("Ingress", "HTTPRoute")[_pick(w, "route-kind", 2)]
    name = (f"{w.entry}-public", f"{w.ns}-web", f"{w.entry}-external")[_pick(w, "route", 3)]
    host = (f"{w.ns}.example.com", f"api.{w.ns}.example.com", f"{w.entry}.example.com")[
        _pick(w, "host", 3)
    ]
    gw = GATEWAYS[_pick(w, "gateway", len(GATEWAYS))]
    created = entry.created + timedelta(hours=2)
    route = RouteObj(
        kind=kind,
        name=name,
        namespace=w.ns,
        host=host,
        backend=w.entry,
        port=entry.port,
        created=created,
        changed=created,
        manager=w.gitops_manager,
        parent=f"{gw[0]}/{gw[1]}" if kind == "HTTPRoute" else "",
    )
    w.routes.append(route)
    return route


def add_traffic_objects(w: World, k: KubeObjects) -> None:
    """Services' writes and edits, their EndpointSlices, the routes, scale-subresource writes."""
    seed = w.key
    by_name = {wl.name: wl for wl in w.workloads.values()}
    for svc in k.services:
        meta = svc["metadata"]
        wl = by_name.get(meta["name"]) or by_name.get("coredns")
        created = wl.created if wl else w.start
        fields: Obj = {"f:spec": {"f:ports": {}, "f:selector": {}, "f:type": {}}}
        meta["managedFields"] = [_managed(w.gitops_manager, "Apply", created, fields)]
        edit = w.service_edits.get(meta["name"])
        if edit is None:
            continue
        spec = svc["spec"]
        changed: Obj = {"f:spec": {}}
        if edit.selector is not None:
            spec["selector"] = dict(edit.selector)
            changed["f:spec"]["f:selector"] = {f"f:{key}": {} for key in sorted(edit.selector)}
        if edit.target_port is not None:
            spec["ports"][0]["targetPort"] = edit.target_port
            changed["f:spec"]["f:ports"] = {"f:targetPort": {}}
        meta["managedFields"].append(_managed(edit.manager, "Update", edit.changed, changed))
    slices = [_slice(w, svc, k.pods, seed) for svc in k.services]
    k.endpointslices = sorted(
        slices, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])
    )
    entry_route(w)
    services = {s["metadata"]["name"]: s for s in k.services}
    for r in w.routes:
        target = k.ingresses if r.kind == "Ingress" else k.httproutes
        target.append(
            ingress(r, seed, w) if r.kind == "Ingress" else httproute(r, services, seed, w)
        )
    for d in k.deployments:
        scaled = w.scaled.get(d["metadata"]["name"])
        if scaled is not None:
            created = by_name[d["metadata"]["name"]].created
            spec_fields: Obj = {"f:spec": {"f:replicas": {}, "f:template": {}}}
            at, manager = scaled
            if manager == w.gitops_manager:  # replicas: 0 committed and synced
                writes = [_managed(manager, "Apply", at, spec_fields, "apps/v1")]
            else:  # kubectl scale writes through the scale subresource; a downscaler updates
                scale = _managed(manager, "Update", at, {"f:spec": {"f:replicas": {}}}, "apps/v1")
                writes = [
                    _managed(w.gitops_manager, "Apply", created, spec_fields, "apps/v1"),
                    scale | ({"subresource": "scale"} if manager == "kubectl" else {}),
                ]
            d["metadata"]["managedFields"] = writes


def _managed(manager: str, operation: str, at: datetime, fields: Obj, api: str = "v1") -> Obj:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": api,
        "time": ts(at),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }


def _ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _slice(w: World, svc: Obj, pods: list[Obj], seed: str) -> Obj:
    """One EndpointSlice per Service, as the controller writes it: every selected pod with an
    IP, ready or not, at the Service's targetPort."""
    meta, spec = svc["metadata"], svc["spec"]
    ns, name = meta["namespace"], meta["name"]
    selector = spec.get("selector") or {}
    zones = {n.name: n.zone for n in w.nodes}
    endpoints: list[Obj] = []
    for p in sorted(pods, key=lambda p: p["status"].get("podIP") or ""):
        pm, status = p["metadata"], p["status"]
        labels = pm.get("labels") or {}
        if pm.get("namespace") != ns or not selector or status.get("phase") != "Running":
            continue
        if not status.get("podIP") or any(labels.get(k) != v for k, v in selector.items()):
            continue
        terminating = "deletionTimestamp" in pm
        ready = _ready(p) and not terminating
        node = p["spec"].get("nodeName", "")
        ep: Obj = {
            "addresses": [status["podIP"]],
            "conditions": {"ready": ready, "serving": _ready(p), "terminating": terminating},
            "nodeName": node,
            "targetRef": {"kind": "Pod", "name": pm["name"], "namespace": ns, "uid": pm["uid"]},
        }
        if node in zones:
            ep["zone"] = zones[node]
        endpoints.append(ep)
    port = spec["ports"][0]
    changes = [ts(w.now - timedelta(days=1))]
    changes += [f["time"] for f in meta.get("managedFields") or []]
    slice_name = f"{name}-{safe_hash(seed + ns + name, 5)}"
    created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": object_meta(
            "EndpointSlice",
            slice_name,
            ns,
            created,
            seed,
            generateName=f"{name}-",
            generation=len(endpoints) + 1,
            labels=(meta.get("labels") or {})
            | {MANAGED_BY: "endpointslice-controller.k8s.io", SERVICE_NAME: name},
            annotations={"endpoints.kubernetes.io/last-change-trigger-time": max(changes)},
            ownerReferences=[
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": name,
                    "uid": uid(seed, "Service", ns, name),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        ),
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {
                "name": port.get("name", ""),
                "port": port["targetPort"],
                "protocol": port.get("protocol", "TCP"),
            }
        ],
    }


def _route_fields(w: World, r: RouteObj, spec: Obj) -> list[Obj]:
    """Created by the GitOps controller; a later write by whoever changed it."""
    api = "networking.k8s.io/v1" if r.kind == "Ingress" else "gateway.networking.k8s.io/v1"
    if r.changed <= r.created + timedelta(minutes=1) or r.manager == w.gitops_manager:
        return [_managed(w.gitops_manager, "Apply", r.changed, {"f:spec": spec}, api)]
    return [
        _managed(w.gitops_manager, "Apply", r.created, {"f:spec": spec}, api),
        _managed(r.manager, "Update", r.changed, {"f:spec": spec}, api),
    ]


def ingress(r: RouteObj, seed: str, w: World) -> Obj:
    generation = 2 if r.changed > r.created + timedelta(minutes=1) else 1
    lb: Obj = (
        {"hostname": f"k8s-ingressn-ingressn-{safe_hash(seed, 10)}.elb.amazonaws.com"}
        if w.cluster.flavor == "eks"
        else {"ip": f"34.{_pick(w, 'lb1', 200) + 20}.{_pick(w, 'lb2', 250) + 2}.17"}
    )
    backend = {"service": {"name": r.backend, "port": {"number": r.port}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_meta(
            "Ingress",
            r.name,
            r.namespace,
            r.created,
            seed,
            generation=generation,
            annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "30"},
            managedFields=_route_fields(w, r, {"f:rules": {}}),
        ),
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": r.host,
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
        "status": {"loadBalancer": {"ingress": [lb]}},
    }


def httproute(r: RouteObj, services: dict[str, Obj], seed: str, w: World) -> Obj:
    """An HTTPRoute with the status its Gateway controller writes: ResolvedRefs says whether
    each backendRef names a Service (and port) that exists."""
    generation = 2 if r.changed > r.created + timedelta(minutes=1) else 1
    gw_ns, gw_name = r.parent.split("/", 1)
    controller = next(c for n, g, c in GATEWAYS if (n, g) == (gw_ns, gw_name))
    svc = services.get(r.backend)
    ports = [p["port"] for p in (svc or {}).get("spec", {}).get("ports", [])]
    resolved = ("True", "ResolvedRefs", "Resolved all the Object references for the Route")
    if svc is None:
        why = f"service {r.namespace}/{r.backend} not found"
        resolved = (
            "False",
            "BackendNotFound",
            f"Failed to process route rule 0 backendRef 0: {why}.",
        )
    elif r.port not in ports:
        why = f"port {r.port} not found on service {r.namespace}/{r.backend}"
        resolved = (
            "False",
            "BackendNotFound",
            f"Failed to process route rule 0 backendRef 0: {why}.",
        )
    parent = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": gw_name,
        "namespace": gw_ns,
    }
    at = ts(r.changed)
    conditions = [
        {
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "Route is accepted",
            "observedGeneration": generation,
            "lastTransitionTime": ts(r.created),
        },
        {
            "type": "ResolvedRefs",
            "status": resolved[0],
            "reason": resolved[1],
            "message": resolved[2],
            "observedGeneration": generation,
            "lastTransitionTime": at,
        },
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": object_meta(
            "HTTPRoute",
            r.name,
            r.namespace,
            r.created,
            seed,
            generation=generation,
            managedFields=_route_fields(w, r, {"f:rules": {}, "f:hostnames": {}}),
        ),
        "spec": {
            "parentRefs": [parent],
            "hostnames": [r.host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {
                            "group": "",
                            "kind": "Service",
                            "name": r.backend,
                            "port": r.port,
                            "weight": 1,
                        }
                    ],
                }
            ],
        },
        "status": {
            "parents": [
                {"parentRef": parent, "controllerName": controller, "conditions": conditions}
            ]
        },
    }
