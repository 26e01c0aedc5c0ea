"""Fault families. Each function takes a fresh world and a variant number, breaks one thing at
``world.onset`` with its consequences, and records the ground truth."""

from __future__ import annotations

from collections.abc import Callable

from triage_lab.corpus.faults import (
    config,
    constraints,
    control_plane,
    degraded,
    infra,
    network,
    rollout,
    routing,
    volumes,
)
from triage_lab.corpus.world import World

# family -> builder (each records a triage.models.FaultKind as its truth's category); the
# order is part of the corpus' seed contract
FAULTS: dict[str, Callable[[World, int], None]] = {
    "bad_rollout": rollout.bad_rollout,
    "config_change": config.config_change,
    "secret_change": config.secret_change,
    "resource_exhaustion": rollout.resource_exhaustion,
    "cpu_throttling": rollout.cpu_throttling,
    "probe_misconfiguration": rollout.probe_misconfiguration,
    "dependency_failure": network.dependency_failure,
    "node_failure": infra.node_failure,
    "scheduling": infra.scheduling,
    "capacity": infra.capacity,
    "certificate_expiry": config.certificate_expiry,
    "dns_failure": network.dns_failure,
    "network_policy": network.network_policy,
    "network": degraded.network,
    "mass_redeploy_oom": degraded.mass_redeploy_oom,
    "routing": routing.routing,
    "control_plane": control_plane.control_plane,
    "quota": constraints.quota,
    "storage": volumes.storage,
}
