"""A workload's resource series as cAdvisor and kube-state-metrics publish them: one series per
pod and container, CPU and CFS periods as counters, restarts as kube-state-metrics counts them,
the memory limit beside the working set. The real-world half carries these instead of our
per-service gauges; the values are the same pods' (render.openmetrics computes them once)."""

from __future__ import annotations

from triage_lab.corpus.model import Workload
from triage_lab.corpus.units import mib

Family = list[tuple[dict[str, str], list[float | None]]]

POD_FAMILIES = {
    "container_cpu_usage_seconds": ("counter", "Cumulative cpu time consumed in seconds."),
    "container_memory_working_set_bytes": ("gauge", "Current working set in bytes."),
    "container_cpu_cfs_periods": ("counter", "Number of elapsed enforcement period intervals."),
    "container_cpu_cfs_throttled_periods": ("counter", "Number of throttled period intervals."),
    "kube_pod_container_status_restarts": (
        "counter",
        "The number of container restarts per container.",
    ),
    "kube_pod_container_resource_limits": (
        "gauge",
        "The number of requested limit resource by a container.",
    ),
}
_CADVISOR = {"job": "kubelet", "metrics_path": "/metrics/cadvisor"}
_KSM = {"job": "kube-state-metrics"}
# CFS enforcement periods of 100 ms, counted per one-minute step.
_PERIODS = 600.0


def _cumulative(values: list[float | None], per_step: float) -> list[float | None]:
    total, out = 0.0, list[float | None]()
    for v in values:
        if v is None:
            out.append(None)
            continue
        total += v * per_step
        out.append(round(total, 3))
    return out


def pod_series(
    fam: dict[str, Family],
    wl: Workload,
    per_pod: dict[str, list[list[float | None]]],
    restarts: list[list[float | None]],
) -> None:
    """Add ``wl``'s per-pod resource series to ``fam`` (series of the world's time steps)."""
    limited = any(r.cpu_limit for r in wl.revisions)
    for k, p in enumerate(wl.pods):
        who = {"namespace": wl.namespace, "pod": p.name, "container": wl.name}
        if wl.role not in ("db", "cache", "dns"):
            fam["container_cpu_usage_seconds"].append(
                (_CADVISOR | who, _cumulative(per_pod["cpu"][k], 60.0))
            )
        if wl.role != "dns":
            fam["container_memory_working_set_bytes"].append((_CADVISOR | who, per_pod["mem"][k]))
            limit = mib(wl.revision(p.revision).mem_limit)
            alive = [None if v is None else limit for v in per_pod["mem"][k]]
            labels = _KSM | who | {"resource": "memory", "unit": "byte"}
            fam["kube_pod_container_resource_limits"].append((labels, alive))
        if limited:
            thr = per_pod["thr"][k]
            periods = [None if v is None else 1.0 for v in thr]
            fam["container_cpu_cfs_periods"].append(
                (_CADVISOR | who, _cumulative(periods, _PERIODS))
            )
            fam["container_cpu_cfs_throttled_periods"].append(
                (_CADVISOR | who, _cumulative(thr, _PERIODS))
            )
        fam["kube_pod_container_status_restarts"].append((_KSM | who, restarts[k]))
