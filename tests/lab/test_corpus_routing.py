"""The routing family of the corpus: Services, EndpointSlices, Ingresses and HTTPRoutes as the
API server returns them, consistent with the pods, and the broken object visible only as a
real cluster would show it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client import ApiClient
from triage_lab.corpus.generate import build_scenario
from triage_lab.fakes.kubernetes import KubeApi
from triage_lab.scenarios import Scenario, load_scenario, load_truth


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Scenario]:
    root = tmp_path_factory.mktemp("routing")
    for conventions in ("ours", "real-world"):
        for v in range(3):
            name = f"{conventions}-{v}"
            build_scenario(root / name, name, 7, "routing", v, conventions)  # type: ignore[arg-type]
    return [load_scenario(root / f"{c}-{v}") for c in ("ours", "real-world") for v in range(3)]


def _typed(kind: str, items: list[dict[str, Any]]) -> Any:
    text = json.dumps({"metadata": {}, "items": items})
    try:
        return ApiClient().deserialize(text, kind, "application/json")
    except TypeError:  # kubernetes < 35 deserializes a response object
        return ApiClient().deserialize(SimpleNamespace(data=text), kind)


def test_the_typed_client_reads_slices_and_ingresses(cases: list[Scenario]) -> None:
    for s in cases:
        k = s.kubernetes
        assert len(_typed("V1EndpointSliceList", k.endpointslices).items) == len(k.services)
        assert len(_typed("V1IngressList", k.ingresses).items) == len(k.ingresses)
        assert len(k.ingresses) + len(k.httproutes) == 1, s.name  # the entry's route


def test_each_slice_lists_exactly_the_running_pods_its_service_selects(cases: list[Scenario]):
    for s in cases:
        pods = {p["metadata"]["name"]: p for p in s.kubernetes.pods}
        for svc, sl in zip(s.kubernetes.services, _slices_by_service(s), strict=True):
            selector = svc["spec"]["selector"]
            chosen = {
                n
                for n, p in pods.items()
                if p["metadata"]["namespace"] == svc["metadata"]["namespace"]
                and p["status"].get("podIP")
                and p["status"]["phase"] == "Running"
                and all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
            }
            assert {e["targetRef"]["name"] for e in sl["endpoints"]} == chosen, s.name
            assert sl["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
            assert sl["ports"][0]["port"] == svc["spec"]["ports"][0]["targetPort"]
            for e in sl["endpoints"]:
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in pods[e["targetRef"]["name"]]["status"]["conditions"]
                )
                assert e["conditions"]["ready"] == ready


def _slices_by_service(s: Scenario) -> list[dict[str, Any]]:
    by = {
        x["metadata"]["labels"]["kubernetes.io/service-name"]: x
        for x in s.kubernetes.endpointslices
    }
    return [by[svc["metadata"]["name"]] for svc in s.kubernetes.services]


def _written_at_onset(obj: dict[str, Any], onset: str) -> bool:
    return any(f["time"][:16] == onset[:16] for f in obj["metadata"]["managedFields"])


def test_the_broken_object_shows_what_a_cluster_would(cases: list[Scenario]) -> None:
    for s in cases:
        truth = load_truth(s.path)
        onset = truth.onset.strftime("%Y-%m-%dT%H:%M:%SZ")
        k = s.kubernetes
        if truth.kind == "Service":
            svc = next(x for x in k.services if x["metadata"]["name"] == truth.name)
            assert _written_at_onset(svc, onset)
            (sl,) = [
                x for x in _slices_by_service(s) if x["metadata"]["name"].startswith(truth.name)
            ]
            # a selector no pod carries leaves the slice empty; a wrong targetPort keeps
            # ready endpoints on a port the containers do not declare
            ports = {
                str(x["spec"]["containers"][0]["ports"][0]["containerPort"])
                for x in k.pods
                if x["metadata"]["labels"].get("app") == truth.name
            }
            assert not sl["endpoints"] or str(sl["ports"][0]["port"]) not in ports
        elif truth.kind == "Deployment":
            d = next(x for x in k.deployments if x["metadata"]["name"] == truth.name)
            assert d["spec"]["replicas"] == 0 and _written_at_onset(d, onset)
            assert not [p for p in k.pods if p["metadata"]["labels"].get("app") == truth.name]
            scaled = [
                e["message"]
                for e in k.events
                if e["reason"] == "ScalingReplicaSet" and e["involvedObject"]["name"] == truth.name
            ]
            assert scaled and scaled[0].startswith(f"Scaled down replica set {truth.name}-")
            assert scaled[0].split(" to 0 from ")[1].isdigit()
        else:
            (route,) = k.ingresses or k.httproutes
            assert route["kind"] == truth.kind and route["metadata"]["name"] == truth.name
            assert _written_at_onset(route, onset)
            services = {x["metadata"]["name"]: x for x in k.services}
            if truth.kind == "Ingress":
                backend = route["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
                name, port = backend["name"], backend["port"]["number"]
            else:
                ref = route["spec"]["rules"][0]["backendRefs"][0]
                name, port = ref["name"], ref["port"]
                (cond,) = [
                    c
                    for c in route["status"]["parents"][0]["conditions"]
                    if c["type"] == "ResolvedRefs"
                ]
                assert (cond["status"], cond["reason"]) == ("False", "BackendNotFound")
            exposed = (
                [p["port"] for p in services[name]["spec"]["ports"]] if name in services else []
            )
            assert port not in exposed, s.name


def test_the_fake_serves_ingresses_and_httproutes_to_the_real_client(cases: list[Scenario]):
    for s in cases[:3]:
        ns = s.meta.webhooks[0].alerts[0].labels["namespace"]
        with KubeApi(s.kubernetes) as fake, ApiClient(fake.configuration()) as api:
            ingresses = kubernetes.client.NetworkingV1Api(api).list_namespaced_ingress(ns)
            routes = kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", ns, "httproutes"
            )
        assert [i.metadata.name for i in ingresses.items] == [
            i["metadata"]["name"] for i in s.kubernetes.ingresses
        ]
        assert routes["items"] == s.kubernetes.httproutes


def test_only_the_truth_names_the_category(cases: list[Scenario]) -> None:
    for s in cases:
        for f in Path(s.path).iterdir():
            if f.name != "truth.json":
                assert "routing" not in f.read_text().lower(), (s.name, f.name)
