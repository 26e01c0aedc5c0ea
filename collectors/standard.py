"""The collectors an investigation runs, over whichever sources are configured."""

from __future__ import annotations

from collections.abc import Callable

from collectors.contracts import Collector, Neighbours
from collectors.kubernetes import KubernetesCollector
from collectors.metrics import MetricsCollector
from collectors.pod_logs import LogsCollector
from collectors.sources import KubeSource, MetricSource
from collectors.topology import CallGraphNeighbours


def standard_collectors(
    kube: KubeSource | None,
    metrics: MetricSource | None,
    *,
    step_s: float = 60,
    logs: Callable[[Neighbours | None], Collector] | None = None,
    queries: tuple[str, ...] | None = None,
    neighbour_namespaces: int = 4,
) -> list[Collector]:
    """``logs`` builds what replaces reading pod logs through the Kubernetes API (Loki).
    With metrics, every collector also reads the alerts' call-graph neighbours' namespaces
    (collectors.topology), at most ``neighbour_namespaces`` of them (0: none)."""
    near = (
        CallGraphNeighbours(metrics, most=neighbour_namespaces)
        if metrics is not None and neighbour_namespaces > 0
        else None
    )
    found: list[Collector] = []
    if kube is not None:
        found.append(KubernetesCollector(kube, near))
    if logs is not None:
        found.append(logs(near))
    elif kube is not None:
        found.append(LogsCollector(kube, neighbours=near))
    if metrics is not None:
        found.append(
            MetricsCollector(metrics, step_s=step_s, selectors=queries, neighbours=near)
            if queries
            else MetricsCollector(metrics, step_s=step_s, neighbours=near)
        )
    return found
