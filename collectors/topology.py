"""The namespaces one call away from the alerts' own: a database, a gateway or a platform service
in another namespace is as likely a cause as a neighbour next door, and an investigation that
reads only the alerts' namespaces would never see its rollout. The call graph comes from the
request series a service mesh or a tracing pipeline already publishes, one query per convention,
shared by a storm's incidents through the metrics cache."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from collectors.contracts import TimeWindow
from collectors.kubernetes.common import CLUSTER_NAMESPACES
from collectors.sources import MetricSource
from triage.errors import CollectorError

# (metric, caller's namespace label, callee's namespace label), as each convention writes them.
EDGE_NAMESPACE_LABELS: tuple[tuple[str, str, str], ...] = (
    ("istio_requests_total", "source_workload_namespace", "destination_workload_namespace"),
    ("request_total", "namespace", "dst_namespace"),  # Linkerd's proxies
    # OpenTelemetry's servicegraph connector with k8s.namespace.name among its dimensions.
    (
        "traces_service_graph_request_total",
        "client_k8s_namespace_name",
        "server_k8s_namespace_name",
    ),
)
# Namespace names are DNS labels: anything else cannot be one, and must not reach a regex.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class CallGraphNeighbours:
    """Namespaces whose workloads call, or are called by, workloads of the given ones up to the
    onset; the ``most`` with the most edges, so a hub that talks to everyone cannot widen one
    investigation to the whole cluster."""

    def __init__(
        self,
        source: MetricSource,
        *,
        conventions: tuple[tuple[str, str, str], ...] = EDGE_NAMESPACE_LABELS,
        most: int = 4,
    ) -> None:
        self._source = source
        self._conventions = conventions
        self._most = most

    async def of(self, namespaces: list[str], window: TimeWindow) -> list[str]:
        own = {ns for ns in namespaces if _NAMESPACE.match(ns)}
        if not own or self._most <= 0:
            return []
        pattern = "|".join(sorted(own))
        step = max((window.onset - window.start).total_seconds(), 1.0)
        asked = [
            (f'{metric}{{{side}=~"{pattern}"}}', other)
            for metric, caller, callee in self._conventions
            for side, other in ((caller, callee), (callee, caller))
        ]
        answers = await asyncio.gather(
            *(self._source.query_range(q, window.start, window.onset, step) for q, _ in asked),
            return_exceptions=True,
        )
        edges: Counter[str] = Counter()
        failed: list[str] = []
        for (_, other), found in zip(asked, answers, strict=True):
            if isinstance(found, CollectorError):
                failed.append(str(found))
                continue
            if isinstance(found, BaseException):
                raise found
            for s in found:
                ns = s.labels.get(other, "")
                if ns and ns not in own and ns not in CLUSTER_NAMESPACES:
                    edges[ns] += 1
        if failed and not edges and len(failed) == len(asked):
            raise CollectorError(f"call graph unavailable: {failed[0]}", collector="topology")
        return [ns for ns, _ in sorted(edges.items(), key=lambda e: (-e[1], e[0]))[: self._most]]
