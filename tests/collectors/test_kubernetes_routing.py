"""Traffic that goes nowhere, through the Kubernetes API fake and the real client: an Ingress or
HTTPRoute whose backend Service is missing or lacks the port, a Service whose selector or
targetPort reaches no serving pod. Each names the object that sends traffic nowhere, as a
routing fault, above the entry service and the callers that suffer."""

from __future__ import annotations

from functools import partial
from typing import Any

import kubernetes.client
import pytest
from triage_lab.fakes.kubernetes import KubeApi
from triage_lab.scenarios import KubeObjects

from collectors.contracts import Evidence, EvidenceItem
from collectors.sources import ApiKubeSource
from tests.support import kube_collect
from tests.support.incidents import firing
from tests.support.kube_collect import NS, ONSET, Obj, collect_kube, of_kind, stamp
from triage.errors import CollectorError
from triage.models import IncidentState

HTTPROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes"


def meta(name: str, changed: float | None = None, **more: Any) -> Obj:
    """Created by Argo CD long ago; ``changed``: a later kubectl write, minutes from the onset."""
    writes = [{"manager": "argocd-controller", "operation": "Apply", "time": stamp(-90_000)}]
    if changed is not None:
        writes.append({"manager": "kubectl-edit", "operation": "Update", "time": stamp(changed)})
    return {
        "name": name,
        "namespace": NS,
        "creationTimestamp": stamp(-90_000),
        "managedFields": writes,
        **more,
    }


def deployment(name: str) -> Obj:
    labels = {"app": name}
    container = {
        "name": name,
        "image": f"{name}:1",
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, labels=labels),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def pod(name: str, app: str) -> Obj:
    container = {"name": app, "image": f"{app}:1", "ports": [{"containerPort": 8080}]}
    ready = [{"type": "Ready", "status": "True"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, labels={"app": app}),
        "spec": {"containers": [container]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "conditions": ready},
    }


def service(name: str, selector: Obj, target: int = 8080, changed: float | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, changed),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": target}],
        },
    }


def endpoint_slice(svc: str, ready: int) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta(f"{svc}-x7k2p", labels={"kubernetes.io/service-name": svc}),
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.0.0.{i}"], "conditions": {"ready": True}} for i in range(ready)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def ingress(name: str, backend: str, port: int = 80, changed: float | None = None) -> Obj:
    path = {
        "path": "/",
        "pathType": "Prefix",
        "backend": {"service": {"name": backend, "port": {"number": port}}},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(name, changed),
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "shop.example.com", "http": {"paths": [path]}}],
        },
    }


def httproute(name: str, backend: str, port: int, changed: float | None = None) -> Obj:
    refused = {
        "type": "ResolvedRefs",
        "status": "False",
        "reason": "BackendNotFound",
        "message": f"port {port} not found on service {NS}/{backend}",
    }
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta(name, changed),
        "spec": {
            "parentRefs": [{"name": "eg", "namespace": "envoy-gateway-system"}],
            "rules": [{"backendRefs": [{"name": backend, "port": port}]}],
        },
        "status": {
            "parents": [
                {
                    "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
                    "conditions": [refused],
                }
            ]
        },
    }


def shop(**extra: list[Obj]) -> KubeObjects:
    """web (the entry) calls search; both run and their Services have ready endpoints."""
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search")],
        pods=[pod("web-7d9f-a", "web"), pod("search-5c8b-a", "search")],
        services=[service("web", {"app": "web"}), service("search", {"app": "search"})],
        endpointslices=[endpoint_slice("web", 1), endpoint_slice("search", 1)],
    )
    for kind, objs in extra.items():
        mine = {o["metadata"]["name"] for o in objs}
        setattr(objects, kind, [o for o in objects.of(kind) if o["metadata"]["name"] not in mine])
        objects.of(kind).extend(objs)
    return objects


def incident() -> IncidentState:
    return firing({"alertname": "HighErrorRate", "namespace": NS, "service": "web"}, ONSET)


# What the metrics collector says of a service whose error ratio jumped.
suffers = partial(kube_collect.suffers, ratio=0.62, score=0.95)


async def api(objects: KubeObjects, *, failing: dict[str, int] | None = None) -> Evidence:
    """Serves the objects and collects through the real client."""
    evidence = await collect_kube(objects, incident(), failing=failing)
    assert evidence.status != "error", evidence.error
    return evidence


async def top(evidence: Evidence, *extra: EvidenceItem) -> Any:
    return await kube_collect.top_suspect(
        incident(), evidence, *extra, call_graph=[("web", "search")]
    )


async def test_an_ingress_changed_to_a_missing_service_is_the_cause_not_the_entry():
    evidence = await api(shop(ingresses=[ingress("shop-public", "web-v2", changed=-2)]))
    (item,) = of_kind(evidence, "route_backend")
    assert item.subject == "shop-public" and item.fault_hint == "routing"
    assert item.summary.startswith("Ingress shop-public sends traffic nowhere: ")
    assert "Service web-v2 does not exist; changed by kubectl-edit 2 min before" in item.summary
    assert item.change == "ingress/shop-public"
    suspect = await top(evidence, suffers("web"))
    assert (suspect.component, suspect.kind) == ("shop-public", "routing")
    assert "dead_route" in suspect.breakdown and "change" in suspect.breakdown


async def test_an_httproute_to_a_port_the_service_lacks_is_named_with_its_status():
    evidence = await api(shop(httproutes=[httproute("web-route", "web", 8443, changed=-4)]))
    (item,) = of_kind(evidence, "route_backend")
    assert item.subject == "web-route"
    assert "Service web exposes no port 8443 (ports: 80)" in item.summary
    assert "BackendNotFound: port 8443 not found on service shop/web" in item.detail
    suspect = await top(evidence, suffers("web"))
    assert (suspect.component, suspect.kind) == ("web-route", "routing")


async def test_routes_that_reach_serving_pods_say_nothing():
    objects = shop(ingresses=[ingress("shop-public", "web")])
    objects.httproutes = [httproute("search-route", "search", 80)]
    objects.httproutes[0]["status"] = {}
    evidence = await api(objects)
    assert evidence.items == []


async def test_a_route_long_broken_fades_to_background():
    evidence = await api(shop(ingresses=[ingress("legacy", "old-web")]))
    (item,) = of_kind(evidence, "route_backend")
    assert item.change is None and item.score < 0.2


async def test_a_cluster_without_the_gateway_api_has_no_routes_rather_than_an_error():
    objects = shop(ingresses=[ingress("shop-public", "web-v2", changed=-2)])
    objects.httproutes = [httproute("web-route", "web", 8443, changed=-4)]
    with KubeApi(objects) as fake, kubernetes.client.ApiClient(fake.configuration()) as client:
        source = ApiKubeSource(client)
        assert [r["metadata"]["name"] for r in await source.list("httproutes", NS)] == ["web-route"]
        fake.failing[HTTPROUTES] = 404  # no HTTPRoute CRD: the API server knows no such path
        assert await source.list("httproutes", NS) == []
        fake.failing[HTTPROUTES] = 403  # forbidden is still an error the collector reports
        with pytest.raises(CollectorError, match="403"):
            await source.list("httproutes", NS)
    evidence = await api(objects, failing={HTTPROUTES: 404})
    assert [i.subject for i in of_kind(evidence, "route_backend")] == ["shop-public"]


async def test_a_target_port_no_container_declares_names_the_service_edit():
    evidence = await api(shop(services=[service("search", {"app": "search"}, 9090, -3)]))
    (item,) = of_kind(evidence, "no_endpoints")
    assert item.subject == "search" and item.fault_hint == "routing"
    assert "targetPort 9090 is no port its 1 pod(s) declare" in item.summary
    assert "Service changed by kubectl-edit 3 min before the onset" in item.summary
    (change,) = of_kind(evidence, "config_change")
    assert change.change == "service/search" and change.subject == "search"
    suspect = await top(evidence, suffers("web", "search"), suffers("search"))
    assert (suspect.component, suspect.kind) == ("search", "routing")


async def test_a_selector_edited_away_from_the_pods_names_their_workload():
    moved = service("search", {"app": "search", "track": "stable"}, changed=-1)
    evidence = await api(shop(services=[moved], endpointslices=[endpoint_slice("search", 0)]))
    (item,) = of_kind(evidence, "no_endpoints")
    assert item.subject == "search" and item.change == "service/search"
    assert "selector app=search,track=stable matches no pod" in item.summary
    assert "(the pods of search carry app=search)" in item.summary
    suspect = await top(evidence, suffers("web", "search"))
    assert (suspect.component, suspect.kind) == ("search", "routing")
