"""The Kubernetes collector: lists each namespace in scope once and hands the objects to every
evidence family; node trouble is read cluster-wide first, since pods and events point at it."""

from __future__ import annotations

import asyncio
import time

from collectors.contracts import Evidence, EvidenceItem, IncidentView, TimeWindow
from collectors.kubernetes.autoscalers import autoscalers_at_max
from collectors.kubernetes.common import scope_namespaces
from collectors.kubernetes.config import config_changes, policy_changes
from collectors.kubernetes.events import warning_events
from collectors.kubernetes.nodes import node_conditions, on_bad_nodes
from collectors.kubernetes.pods import pod_states
from collectors.kubernetes.rollouts import rollouts
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


class KubernetesCollector:
    name = "kubernetes"

    def __init__(self, source: KubeSource) -> None:
        self._source = source

    async def collect(self, incident: IncidentView, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        namespaces = scope_namespaces(incident)
        if not namespaces:
            return Evidence(collector=self.name, status="no_data", error="alert has no namespace")
        items: list[EvidenceItem] = []
        errors: list[str] = []
        try:
            nodes = await node_conditions(self._source, window)
        except CollectorError as exc:
            nodes, errors = [], [str(exc)]
        items += nodes
        bad_nodes = {i.subject: i for i in nodes}
        results = await asyncio.gather(
            *(self._namespace(ns, window, bad_nodes) for ns in namespaces),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, CollectorError):
                errors.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                items += result
        items.sort(key=lambda i: i.id)
        status = "ok" if items else ("error" if errors else "no_data")
        quiet = f"no changes, unhealthy pods or warning events in {', '.join(sorted(namespaces))}"
        return Evidence(
            collector=self.name,
            status=status,
            items=items,
            error="; ".join(errors) or (quiet if not items else None),
            duration_s=time.monotonic() - started,
        )

    async def _namespace(
        self, ns: str, window: TimeWindow, bad_nodes: dict[str, EvidenceItem]
    ) -> list[EvidenceItem]:
        listed = await asyncio.gather(*(self._source.list(k, ns) for k in _KINDS))
        objs = dict(zip(_KINDS, listed, strict=True))
        items = rollouts(ns, objs, window)
        items += config_changes(ns, objs, window)
        try:
            policies = await self._source.list("networkpolicies", ns)
            items += policy_changes(ns, objs, policies, window)
        except CollectorError:
            pass  # older RBAC without networkpolicies: the rest still stands
        items += pod_states(ns, objs, window)
        items += warning_events(ns, objs, window, sorted(bad_nodes))
        items += autoscalers_at_max(ns, objs["horizontalpodautoscalers"])
        items += on_bad_nodes(ns, objs, bad_nodes)
        return items
