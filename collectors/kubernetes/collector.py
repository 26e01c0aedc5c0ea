"""The Kubernetes collector: lists each namespace in scope once (the alerts', the cluster's and
their call-graph neighbours') and hands the objects to every evidence family; node trouble is
read cluster-wide first, since pods and events point at it."""

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
    alerting_workloads,
    cluster_pods,
    in_scope,
    nodes_in_question,
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
        if not namespaces:
            return Evidence(collector=self.name, status="no_data", error="alert has no namespace")
        items: list[EvidenceItem] = []
        errors: list[str] = []
        try:
            nodes = await node_conditions(self._source, window)
        except CollectorError as exc:
            nodes = []
            errors.append(str(exc))
        items += nodes
        bad_nodes = {i.subject: i for i in nodes}
        seen: dict[str, dict[str, list[dict[str, Any]]]] = {}  # namespace -> what it listed
        apps = [ns for ns in namespaces if ns not in CLUSTER_NAMESPACES]
        results = await asyncio.gather(
            *(self._namespace(ns, window, bad_nodes, seen) for ns in apps),
            return_exceptions=True,
        )
        # The cluster's namespaces after: their per-node agents are read on the apps' nodes.
        near = nodes_in_question(seen.values(), alerting_workloads(incident), bad_nodes)
        results += await asyncio.gather(
            *(
                self._namespace(ns, window, bad_nodes, seen, near)
                for ns in namespaces
                if ns in CLUSTER_NAMESPACES
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, CollectorError):
                errors.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                items += result
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

    async def _namespace(
        self,
        ns: str,
        window: TimeWindow,
        bad_nodes: dict[str, EvidenceItem],
        seen: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
        nodes: list[str] | None = None,
    ) -> list[EvidenceItem]:
        """One namespace's evidence; ``nodes`` set: a cluster namespace, whose DaemonSets' pods
        are read on those nodes only."""
        listed = await asyncio.gather(
            *(
                cluster_pods(self._source, ns, nodes)
                if k == "pods" and nodes is not None
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
        if seen is not None:
            seen[ns] = objs | {"leases": extra["leases"] or []}
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
