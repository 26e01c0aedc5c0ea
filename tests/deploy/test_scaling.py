"""The autoscaling numbers agree with each other and with triage's settings: what the
ScaledObjects assume about worker concurrency, vLLM concurrency, start-up time, stream and
consumer names is what the processes are configured to do."""

from __future__ import annotations

import math
import re

import pytest

from tests.deploy.manifests import (
    GPU_OVERLAYS,
    OVERLAYS,
    arg_value,
    find,
    gateway_config,
    one,
    render,
    settings_env,
)
from triage.bus.jetstream import CONSUMERS
from triage.settings import InvestigationSettings, NatsSettings

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow


def trigger(so: dict, name: str) -> dict:
    found = [t for t in so["spec"]["triggers"] if t.get("name") == name]
    assert len(found) == 1, name
    return found[0]


def vllm_container(objs: list[dict], name: str = "vllm") -> dict:
    deployment = one(objs, "Deployment", name)
    container: dict = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_target_is_the_per_worker_llm_concurrency(overlay: str):
    objs = render(overlay)
    env = settings_env(objs)
    so = one(objs, "ScaledObject", "triage-worker")
    per_worker = int(env["TRIAGE_NATS_MAX_WORKERS"])
    assert int(env["TRIAGE_LLM_MAX_CONCURRENCY"]) == per_worker
    # Prefetching no more than it runs keeps KEDA's pending + ack-pending an honest backlog.
    assert int(env["TRIAGE_NATS_FETCH_BATCH"]) <= per_worker
    assert float(trigger(so, "lag")["metadata"]["lagThreshold"]) == per_worker
    if overlay in GPU_OVERLAYS:
        modifiers = so["spec"]["advanced"]["scalingModifiers"]
        assert float(modifiers["target"]) == per_worker
        assert modifiers["formula"] == "min(lag, gpu_capacity)"
    else:
        # No GPUs to cap them: the backlog alone (the provider's rate limits are the gateway's).
        assert "scalingModifiers" not in so["spec"]["advanced"]
        assert [t["name"] for t in so["spec"]["triggers"]] == ["lag"]
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_lag_trigger_reads_the_investigation_consumer_of_triages_stream(overlay: str):
    objs = render(overlay)
    meta = trigger(one(objs, "ScaledObject", "triage-worker"), "lag")["metadata"]
    assert meta["stream"] == NatsSettings().stream
    assert meta["consumer"] == "investigations" and meta["consumer"] in CONSUMERS
    # KEDA asks the consumer's leader at <server_name>.<endpoint>: the headless service.
    host = meta["natsServerMonitoringEndpoint"].split(":")[0]
    headless = one(objs, "Service", "nats-headless")
    assert host == f"nats-headless.{headless['metadata']['namespace']}.svc.cluster.local"
    assert meta["natsServerMonitoringEndpoint"].endswith(":8222")


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_gpu_cap_counts_vllm_replicas_times_their_concurrency(overlay: str):
    objs = render(overlay)
    query = trigger(one(objs, "ScaledObject", "triage-worker"), "gpu_capacity")["metadata"]["query"]
    per_replica = int(arg_value(vllm_container(objs), "--max-num-seqs"))
    # No primary ready: the gateway sends everything to the fallback model, which counts then.
    assert int(arg_value(vllm_container(objs, "vllm-small"), "--max-num-seqs")) == per_replica
    m = re.fullmatch(
        r'\(count\(up\{namespace="triage",service="vllm"\} == 1\)'
        r' or count\(up\{namespace="triage",service="vllm-small"\} == 1\) or vector\(0\)\)'
        r" \* (\d+)",
        query,
    )
    assert m and int(m.group(1)) == per_replica


def test_production_worker_ceiling_is_what_the_gpus_can_absorb():
    objs = render("production")
    workers = one(objs, "ScaledObject", "triage-worker")["spec"]
    vllm = one(objs, "ScaledObject", "vllm")["spec"]
    per_replica = int(arg_value(vllm_container(objs), "--max-num-seqs"))
    target = float(workers["advanced"]["scalingModifiers"]["target"])
    assert workers["maxReplicaCount"] == math.ceil(vllm["maxReplicaCount"] * per_replica / target)


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_vllm_scales_from_zero_and_cools_down_slower_than_a_gpu_starts(overlay: str):
    objs = render(overlay)
    so = one(objs, "ScaledObject", "vllm")["spec"]
    assert so["minReplicaCount"] == 0
    waiting = trigger({"spec": so}, "waiting")["metadata"]
    assert waiting["query"].startswith("sum(vllm:num_requests_waiting{")  # one series
    assert float(waiting["activationThreshold"]) == 0
    # With no replica there is no vLLM metric: the backlog is what wakes it.
    backlog = trigger({"spec": so}, "backlog")["metadata"]
    assert 'consumer="investigations"' in backlog["query"]
    assert float(backlog["activationThreshold"]) == 0
    # GPU utilisation is secondary: it alone must not hold an idle replica.
    gpu = trigger({"spec": so}, "gpu_utilization")["metadata"]
    assert float(gpu["activationThreshold"]) >= 50
    startup = vllm_container(objs)["startupProbe"]
    start_budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert so["cooldownPeriod"] >= start_budget
    down = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= start_budget
    assert 1 <= so["fallback"]["replicas"] <= so["maxReplicaCount"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_prometheus_trigger_returns_one_series(overlay: str):
    scaled = {so["metadata"]["name"] for so in find(render(overlay), "ScaledObject")}
    assert scaled == ({"triage-worker", "vllm"} if overlay in GPU_OVERLAYS else {"triage-worker"})
    for so in find(render(overlay), "ScaledObject"):
        for t in so["spec"]["triggers"]:
            if t["type"] == "prometheus":
                query = t["metadata"]["query"]
                # An aggregation without `by`, or a count of one, has exactly one element.
                assert re.match(r"^\(?(sum|max|count)\(", query), query
                assert " by " not in query and "or vector(0)" in query, query


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stream_replicas_match_the_nats_servers(overlay: str):
    objs = render(overlay)
    servers = one(objs, "StatefulSet", "nats")["spec"]["replicas"]
    assert int(settings_env(objs)["TRIAGE_NATS_REPLICAS"]) == servers
    conf = next(
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("nats-config-")
    )["data"]["nats.conf"]
    routes = re.findall(r"nats://nats-(\d+)\.nats-headless:6222", conf)
    assert len(routes) == (servers if servers > 1 else 0)
    assert servers in ((3,) if overlay.startswith("production") else (1,))


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_model_servers_load_weights_from_the_volume_only(overlay: str):
    objs = render(overlay)
    for name in ("vllm", "vllm-small"):
        c = vllm_container(objs, name)
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
        assert arg_value(c, "--model").startswith("/models/")
        pod = one(objs, "Deployment", name)["spec"]["template"]["spec"]
        models = next(v for v in pod["volumes"] if v["name"] == "models")
        assert models["persistentVolumeClaim"]["readOnly"] is True
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # minutes of load


def test_dra_variant_claims_gpus_instead_of_the_device_plugin_resource():
    plain = render("production")
    dra = render("production-dra")
    for name in ("vllm", "vllm-small"):
        assert vllm_container(plain, name)["resources"]["limits"]["nvidia.com/gpu"] == "1"
        c = vllm_container(dra, name)
        assert "nvidia.com/gpu" not in c["resources"]["limits"]
        assert "nvidia.com/gpu" not in c["resources"]["requests"]
        pod = one(dra, "Deployment", name)["spec"]["template"]["spec"]
        (claim,) = pod["resourceClaims"]
        assert c["resources"]["claims"] == [{"name": claim["name"]}]
        template = one(dra, "ResourceClaimTemplate", claim["resourceClaimTemplateName"])
        (request,) = template["spec"]["spec"]["devices"]["requests"]
        assert request["exactly"]["deviceClassName"] == "gpu.nvidia.com"
        assert request["exactly"]["count"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_timeouts_nest_from_the_gateway_out_to_pod_termination(overlay: str):
    objs = render(overlay)
    env = settings_env(objs)
    gateway = gateway_config(objs)
    per_call = max(m["litellm_params"]["timeout"] for m in gateway["model_list"])
    llm_timeout = float(env["TRIAGE_LLM_TIMEOUT_S"])
    llm_deadline = float(env["TRIAGE_LLM_DEADLINE_S"])
    # The gateway gives up first (and can fall back), then triage, then the pod's grace period.
    assert per_call < llm_timeout <= llm_deadline
    investigation = float(
        env.get("TRIAGE_INVESTIGATION_TOTAL_DEADLINE_S", InvestigationSettings().total_deadline_s)
    )
    worker = one(objs, "Deployment", "triage-worker")["spec"]["template"]["spec"]
    # An investigation is cut at its total deadline + 5 s, LLM analysis included; the LLM must
    # give up before that so the heuristic draft still goes out.
    assert llm_deadline + 1 < investigation + 5
    assert worker["terminationGracePeriodSeconds"] >= investigation + 5
    # The route triage asks for is the one the gateway serves, with a fallback route.
    routes = {m["model_name"] for m in gateway["model_list"]}
    assert env["TRIAGE_LLM_MODEL"] in routes
    (fallback,) = gateway["router_settings"]["fallbacks"]
    assert set(fallback) == {env["TRIAGE_LLM_MODEL"]}
    assert set(fallback[env["TRIAGE_LLM_MODEL"]]) <= routes
