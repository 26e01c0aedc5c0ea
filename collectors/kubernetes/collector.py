"""The Kubernetes collector: lists each namespace in scope once (the alerts', the cluster's and
their call-graph neighbours'), then reads the nodes those objects point at and the cluster's
per-node agents on them, and hands it all to every evidence family. Nothing it reads grows with
the number of nodes or of namespaces out of scope."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from collectors.contracts import (
    Evidence,
    EvidenceItem,
    IncidentView,
    Neighbours,
    TimeWindow,
)
from collectors.kubernetes.autoscalers import autoscalers_at_max
from collectors.kubernetes.common import (
    CLUSTER_NAMESPACES,
    Objects,
    alerting_workloads,
    cluster_pods,
    daemon_pods,
    in_scope,
    nodes_in_question,
    nodes_named,
)
from collectors.kubernetes.config import config_changes, policy_changes
from collectors.kubernetes.control_plane import control_plane
from collectors.kubernetes.endpoints import endpointless
from collectors.kubernetes.events import warning_events
from collectors.kubernetes.nodes import node_conditions, on_bad_nodes
from collectors.kubernetes.pods import pod_states
from collectors.kubernetes.quotas import quota_blocks
from collectors.kubernetes.rollouts import rollouts
from collectors.kubernetes.routes import dead_routes
from collectors.kubernetes.scheduling import unschedulable
from collectors.kubernetes.storage import volume_trouble
from collectors.sources import KubeSource
from triage.errors import CollectorError

# A namespace's objects: required kinds, then optional ones (None: not allowed to list them).
Listed = tuple[Objects, dict[str, list[dict[str, Any]] | None]]
# Listed in every namespace in scope, at once.
_KINDS = (
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "controllerrevisions",
    "pods",
    "events",
    "configmaps",
    "horizontalpodautoscalers",
)
# Listed too, but RBAC granted before they were collected may lack them: the rest still stands.
_OPTIONAL_KINDS = (
    "networkpolicies",
    "services",
    "resourcequotas",
    "limitranges",
    "persistentvolumeclaims",
    "endpointslices",
    "ingresses",
    "httproutes",
    "leases",
)


class KubernetesCollector:
    name = "kubernetes"

    def __init__(self, source: KubeSource, neighbours: Neighbours | None = None) -> None:
        self._source = source
        self._neighbours = neighbours

    async def collect(self, incident: IncidentView, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        namespaces, _, scope_error = await in_scope(incident, window, self._neighbours)
        named = sorted(nodes_named(incident))
        if not namespaces and named:  # a node's own alert: the node, and its agents
            namespaces = list(CLUSTER_NAMESPACES)
        if not namespaces:
            return Evidence(
                collector=self.name, status="no_data", error="alert names no namespace or node"
            )
        errors: list[str] = []
        listed: dict[str, Listed] = {}
        results = await asyncio.gather(
            *(self._list(ns) for ns in namespaces), return_exceptions=True
        )
        for ns, result in zip(namespaces, results, strict=True):
            if isinstance(result, CollectorError):
                errors.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                listed[ns] = result
        # Then the nodes those objects point at, and the cluster's per-node agents on them.
        near = nodes_in_question(
            (objs for objs, _ in listed.values()),
            alerting_workloads(incident),
            named,
        )
        agents = [ns for ns in listed if ns in CLUSTER_NAMESPACES]
        found = await asyncio.gather(
            node_conditions(self._source, window, near),
            *(daemon_pods(self._source, ns, near) for ns in agents),
            return_exceptions=True,
        )
        for ns, result in zip(agents, found[1:], strict=True):
            if isinstance(result, CollectorError):
                errors.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                listed[ns][0]["pods"] += result
        items: list[EvidenceItem] = []
        if isinstance(found[0], CollectorError):
            errors.append(str(found[0]))
        elif isinstance(found[0], BaseException):
            raise found[0]
        else:
            items += found[0]
        bad_nodes = {i.subject: i for i in items}
        for ns, (objs, extra) in listed.items():
            items += _evidence(ns, objs, extra, window, bad_nodes)
        seen = {
            ns: objs | {"leases": extra["leases"] or []} for ns, (objs, extra) in listed.items()
        }
        items += control_plane(seen, window)  # the cluster's components: across namespaces
        items.sort(key=lambda i: i.id)
        status = "ok" if items else ("error" if errors else "no_data")
        if status == "no_data":
            quiet = "no changes, unhealthy pods or warning events in "
            errors.append(quiet + ", ".join(sorted(namespaces)))
        errors += [scope_error] if scope_error else []  # a narrower look, still a look
        return Evidence(
            collector=self.name,
            status=status,
            items=items,
            error="; ".join(errors) or None,
            duration_s=time.monotonic() - started,
        )

    async def _list(self, ns: str) -> Listed:
        """What one namespace holds; a cluster namespace's DaemonSet pods come later, per node."""
        listed = await asyncio.gather(
            *(
                cluster_pods(self._source, ns)
                if k == "pods" and ns in CLUSTER_NAMESPACES
                else self._source.list(k, ns)
                for k in _KINDS
            )
        )
        objs = dict(zip(_KINDS, listed, strict=True))
        optional = await asyncio.gather(
            *(self._source.list(k, ns) for k in _OPTIONAL_KINDS), return_exceptions=True
        )
        extra: dict[str, list[dict[str, Any]] | None] = {}
        for kind, result in zip(_OPTIONAL_KINDS, optional, strict=True):
            if isinstance(result, CollectorError):
                extra[kind] = None  # older RBAC without it: the rest still stands
            elif isinstance(result, BaseException):
                raise result
            else:
                extra[kind] = result
        return objs, extra


def _evidence(
    ns: str,
    objs: Objects,
    extra: dict[str, list[dict[str, Any]] | None],
    window: TimeWindow,
    bad_nodes: dict[str, EvidenceItem],
) -> list[EvidenceItem]:
    items = rollouts(ns, objs, window)
    items += config_changes(ns, objs, window)
    if extra["networkpolicies"] is not None:
        items += policy_changes(ns, objs, extra["networkpolicies"], window)
    items += pod_states(ns, objs, window)
    items += unschedulable(ns, objs, extra["persistentvolumeclaims"] or [], window)
    items += volume_trouble(ns, objs, extra["persistentvolumeclaims"] or [], window)
    items += quota_blocks(
        ns, objs, extra["resourcequotas"] or [], extra["limitranges"] or [], window
    )
    items += endpointless(ns, objs, extra["services"] or [], extra["endpointslices"], window)
    if extra["services"] is not None:  # without Services, every backend would look missing
        items += dead_routes(
            ns,
            extra["ingresses"] or [],
            extra["httproutes"] or [],
            extra["services"],
            extra["endpointslices"],
            window,
        )
    items += warning_events(ns, objs, window, sorted(bad_nodes))
    items += autoscalers_at_max(ns, objs["horizontalpodautoscalers"])
    items += on_bad_nodes(ns, objs, bad_nodes)
    return items
