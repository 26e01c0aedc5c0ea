"""Ownership from the cluster: the real kubernetes client against recorded API objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from triage_lab.fakes.kubernetes import KubeApi, path_of
from triage_lab.fakes.kubernetes_objects import deployment, namespace

from triage.deliver.ownership import KubernetesOwnership, api_client
from triage.deliver.routing import Ownership, Router, parse_routing
from triage.errors import CollectorError, ConfigError

ROUTING = """\
default: {team: sre, channels: ["#incidents"]}
routes:
  - {team: cart, channels: ["#cart-oncall"], matchers: ['service=~"cart.*"']}
  - {team: payments, channels: ["#payments"], mention: S0PAY0001, matchers: [team=payments]}
"""
ALERT = {"namespace": "shop", "service": "cartservice", "severity": "critical"}


@pytest.fixture
def kube() -> Iterator[KubeApi]:
    with KubeApi() as api:
        yield api


def lookup(kube: KubeApi, cache_s: float = 0) -> KubernetesOwnership:
    return KubernetesOwnership(k8s.ApiClient(kube.configuration()), cache_s=cache_s)


async def test_deployment_annotations_name_the_owner(kube: KubeApi):
    kube.paths.update(
        {
            "/apis/apps/v1/namespaces/shop/deployments/cartservice": deployment(
                "shop",
                "cartservice",
                annotations={"triage.io/owner": "payments", "triage.io/slack-channel": "#pay"},
            )
        }
    )
    found = await lookup(kube).lookup(ALERT)
    assert found == Ownership("payments", ("#pay",), "deployment shop/cartservice")
    # Both fields came from the workload: the namespace was not needed.
    assert kube.requests == ["/apis/apps/v1/namespaces/shop/deployments/cartservice"]


async def test_the_namespace_fills_in_what_the_workload_does_not_say(kube: KubeApi):
    for obj in (
        deployment("shop", "cartservice", labels={"team": "cart-team"}),
        namespace("shop", labels={"triage.io/slack-channel": "shop-alerts"}),
    ):
        kube.paths[path_of(obj)] = obj
    found = await lookup(kube).lookup(ALERT)
    # Labels cannot hold "#": a bare channel label means that channel.
    assert found == Ownership(
        "cart-team", ("#shop-alerts",), "deployment shop/cartservice, namespace shop"
    )


async def test_annotation_beats_label_and_explicit_workload_label_beats_service(kube: KubeApi):
    for obj in (
        deployment(
            "shop",
            "cart-v2",
            labels={"team": "from-label"},
            annotations={"triage.io/owner": "from-annotation"},
        ),
        deployment("shop", "cartservice", labels={"team": "wrong-workload"}),
    ):
        kube.paths[path_of(obj)] = obj
    found = await lookup(kube).lookup({**ALERT, "deployment": "cart-v2"})
    assert found is not None and found.team == "from-annotation"


async def test_no_workload_and_no_namespace_owner_means_no_override(kube: KubeApi):
    kube.paths["/api/v1/namespaces/shop"] = namespace("shop")
    assert await lookup(kube).lookup(ALERT) is None
    assert await lookup(kube).lookup({"service": "no-namespace-label"}) is None


async def test_answers_are_cached(kube: KubeApi):
    kube.paths["/api/v1/namespaces/shop"] = namespace("shop", labels={"team": "shop"})
    owners = lookup(kube, cache_s=60)
    first = await owners.lookup(ALERT)
    asked = len(kube.requests)
    assert await owners.lookup(ALERT) == first
    assert len(kube.requests) == asked


async def test_api_failure_is_a_collector_error_and_routing_falls_back_to_the_rules(
    kube: KubeApi,
):
    kube.failing["/apis/apps/v1/namespaces/shop/deployments/cartservice"] = 500
    with pytest.raises(CollectorError, match="500"):
        await lookup(kube).lookup(ALERT)
    rules, default = parse_routing(ROUTING)
    assert default is not None
    router = Router(rules, default, owners=lookup(kube))
    decision = await router.decide(ALERT)
    assert (decision.team, decision.channels) == ("cart", ("#cart-oncall",))


async def test_router_applies_the_workload_owner(kube: KubeApi, tmp_path: Path):
    kube.paths["/apis/apps/v1/namespaces/shop/deployments/cartservice"] = deployment(
        "shop", "cartservice", labels={"team": "payments"}
    )
    # Configured as a user would: a kubeconfig file pointing at the cluster.
    api = api_client(
        kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
        context=None,
        in_cluster=False,
    )
    assert api is not None
    rules, default = parse_routing(ROUTING)
    assert default is not None
    router = Router(rules, default, owners=KubernetesOwnership(api, cache_s=0))
    decision = await router.decide(ALERT)
    assert (decision.team, decision.channels) == ("payments", ("#payments",))
    assert decision.mentions("#payments", "critical") == ["S0PAY0001"]
    assert decision.reason == "ownership: deployment shop/cartservice"


def test_no_kubernetes_configured_means_no_client_and_a_broken_one_stops_start(tmp_path: Path):
    assert api_client(kubeconfig=None, context=None, in_cluster=False) is None
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(ConfigError, match="TRIAGE_KUBERNETES_KUBECONFIG="):
        api_client(kubeconfig=str(broken), context=None, in_cluster=False)
