"""The collectors an investigation runs, over whichever sources are configured."""

from __future__ import annotations

from collectors.contracts import Collector
from collectors.kubernetes import KubernetesCollector
from collectors.metrics import MetricsCollector
from collectors.pod_logs import LogsCollector
from collectors.sources import KubeSource, MetricSource


def standard_collectors(
    kube: KubeSource | None,
    metrics: MetricSource | None,
    *,
    step_s: float = 60,
    logs: Collector | None = None,
    queries: tuple[str, ...] | None = None,
) -> list[Collector]:
    """``logs`` replaces reading pod logs through the Kubernetes API (Loki, when configured)."""
    found: list[Collector] = []
    if kube is not None:
        found.append(KubernetesCollector(kube))
    if logs is not None:
        found.append(logs)
    elif kube is not None:
        found.append(LogsCollector(kube))
    if metrics is not None:
        found.append(
            MetricsCollector(metrics, step_s=step_s, selectors=queries)
            if queries
            else MetricsCollector(metrics, step_s=step_s)
        )
    return found
