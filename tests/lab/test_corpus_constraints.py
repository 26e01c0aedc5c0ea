"""The quota, storage and scheduling families render the objects their faults live in, as a
cluster with that fault would show them: the ResourceQuota or LimitRange the controller names,
the claims the pods mount, the taints the new pods no longer tolerate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from triage_lab.corpus.conventions import Conventions
from triage_lab.corpus.generate import build_scenario
from triage_lab.scenarios import GroundTruth, Scenario, load_scenario, load_truth

from collectors.kubernetes.quotas import _quantity

Case = tuple[Scenario, GroundTruth]
CONVENTIONS: tuple[Conventions, ...] = ("ours", "real-world")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int, str], Case]:
    root = tmp_path_factory.mktemp("constraints")
    out = {}
    for category in ("quota", "storage", "scheduling"):
        for variant in range(3):
            for conventions in CONVENTIONS:
                d = Path(root, f"{category}-{variant}-{conventions}")
                build_scenario(d, d.name, 7, category, variant, conventions)
                out[(category, variant, conventions)] = (load_scenario(d), load_truth(d))
    return out


def _events(s: Scenario, reason: str) -> list[dict]:
    return [e for e in s.kubernetes.events if e["reason"] == reason]


@pytest.mark.parametrize("conventions", ["ours", "real-world"])
def test_a_used_up_quota_refuses_what_the_rollout_asks(built, conventions):
    s, truth = built[("quota", 0, conventions)]
    (quota,) = [q for q in s.kubernetes.resourcequotas if q["metadata"]["name"] == truth.name]
    assert truth.kind == "ResourceQuota" and truth.service == truth.name
    hard, used = quota["status"]["hard"], quota["status"]["used"]
    assert quota["spec"]["hard"] == hard
    refused = _events(s, "FailedCreate")
    assert refused and all(e["type"] == "Warning" for e in refused)
    m = re.search(
        rf"exceeded quota: {truth.name}, requested: (\S+)=(\S+), used: \1=(\S+), limited: \1=(\S+)$",
        refused[0]["message"],
    )
    assert m is not None, refused[0]["message"]
    key, asked, was, limit = m.groups()
    # What the quota object says is what the controller printed, and it does not fit.
    assert (used[key], hard[key]) == (was, limit)
    assert _quantity(was) + _quantity(asked) > _quantity(limit) >= _quantity(was)
    # The blocked workload is in the propagation, not among the names that count as right.
    assert truth.propagation[1] not in truth.names()


@pytest.mark.parametrize("conventions", ["ours", "real-world"])
def test_a_limit_range_max_below_the_new_limit(built, conventions):
    s, truth = built[("quota", 1, conventions)]
    (lr,) = [x for x in s.kubernetes.limitranges if x["metadata"]["name"] == truth.name]
    ceiling = next(x["max"]["memory"] for x in lr["spec"]["limits"] if x["type"] == "Container")
    m = re.search(
        r"maximum memory usage per Container is (\S+), but limit is (\S+)$",
        _events(s, "FailedCreate")[0]["message"],
    )
    assert m is not None and m.group(1) == ceiling
    assert _quantity(m.group(2)) > _quantity(ceiling)
    # Every pod that runs fits under it: the LimitRange was there before them.
    for pod in s.kubernetes.pods:
        for c in pod["spec"]["containers"]:
            assert _quantity(c["resources"]["limits"]["memory"]) <= _quantity(ceiling)


def test_a_pod_count_quota_holds_the_autoscaler_back(built):
    s, truth = built[("quota", 2, "ours")]
    (quota,) = s.kubernetes.resourcequotas
    assert quota["status"]["used"]["pods"] == quota["status"]["hard"]["pods"]
    running = [p for p in s.kubernetes.pods if p["metadata"]["namespace"] == truth.namespace]
    assert int(quota["status"]["used"]["pods"]) == len(running)
    blocked = truth.propagation[1]
    (hpa,) = [h for h in s.kubernetes.horizontalpodautoscalers if h["metadata"]["name"] == blocked]
    assert hpa["status"]["desiredReplicas"] > hpa["status"]["currentReplicas"]
    assert hpa["status"]["desiredReplicas"] < hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_storage_faults_render_the_claims_the_pods_mount(built, variant):
    s, truth = built[("storage", variant, "real-world")]
    claims = {c["metadata"]["name"]: c for c in s.kubernetes.persistentvolumeclaims}
    (claim,) = [a for a in truth.aliases if a in claims]
    mounted = [
        p
        for p in s.kubernetes.pods
        if any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
            for v in p["spec"].get("volumes", [])
        )
    ]
    assert mounted and all(p["status"]["phase"] == "Pending" for p in mounted)
    phase = claims[claim]["status"]["phase"]
    if variant == 0:  # never bound: the StorageClass is missing or cannot make the volume
        assert phase == "Pending" and "volumeName" not in claims[claim]["spec"]
        assert _events(s, "ProvisioningFailed")
    else:  # bound, but the pod's new node cannot use it
        pv = claims[claim]["spec"]["volumeName"]
        assert phase == "Bound"
        selected = claims[claim]["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
        assert mounted[0]["spec"]["nodeName"] != selected
        reason = "FailedAttachVolume" if variant == 1 else "FailedMount"
        assert any(pv in e["message"] for e in _events(s, reason))


def test_the_taints_mode_drops_the_toleration_every_running_pod_has(built):
    s, truth = built[("scheduling", 0, "ours")]
    taints = [n["spec"]["taints"] for n in s.kubernetes.nodes]
    assert all(any(t["key"] == "dedicated" for t in ts) for ts in taints)
    for pod in s.kubernetes.pods:
        tolerations = pod["spec"]["tolerations"]
        tolerated = any(t.get("key") == "dedicated" or "key" not in t for t in tolerations)
        assert tolerated == (pod["status"]["phase"] == "Running"), pod["metadata"]["name"]
        if not tolerated:
            assert pod["metadata"]["labels"]["app"] == truth.name
    said = [e["message"] for e in _events(s, "FailedScheduling")]
    assert any("had untolerated taint {dedicated: " in m for m in said)
