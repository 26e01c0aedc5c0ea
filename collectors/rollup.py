"""Per-pod golden signals rolled up to their workload.

cAdvisor, kube-state-metrics and a mesh's sidecars publish a series per pod. Pods come and go:
a rollout replaces every one, so a new pod's series has no baseline before it started and the
old pods' series end at the change. Compared only with itself, no pod series shows what the
workload went through. The workload's series spans them all, as ``sum by (namespace,
container)`` or ``max by (...)`` does in PromQL: rates and increases add up over the pods,
shares and latencies take the worst pod at each moment.
"""

from __future__ import annotations

import re
from collections import defaultdict

from collectors.identity import identify
from collectors.sources import Series

_SUMMED = re.compile(r"^(rate|increase)\(")
_WORST = re.compile(
    r"^((error|throttled|limit)_ratio|p\d+(\.\d+)?|mean)\(|^container_memory_working_set_bytes$"
)
# Labels that name one pod (or its container instance) rather than the workload.
_POD_LABELS = frozenset(
    {"pod", "pod_name", "k8s_pod_name", "instance", "id", "name", "uid", "container_id", "image"}
)


def rollup(series: list[Series]) -> list[Series]:
    """One series per workload and metric for the per-pod ones among ``series``."""
    groups: dict[tuple[tuple[str, str], ...], list[Series]] = defaultdict(list)
    for s in series:
        name = s.labels.get("__name__", "")
        if "pod" not in s.labels or not (_SUMMED.match(name) or _WORST.match(name)):
            continue
        workload = identify(s.labels)
        if workload is None:
            continue
        rest = {k: v for k, v in s.labels.items() if k not in _POD_LABELS}
        named = identify(rest)
        if named is None or named.name != workload.name:
            # Without the pod, a scrape job (kubelet) would pass for the workload.
            rest[(workload.kind or "Deployment").lower()] = workload.name
        groups[tuple(sorted(rest.items()))].append(s)
    out = []
    for key, members in sorted(groups.items()):
        summed = _SUMMED.match(dict(key)["__name__"]) is not None
        at: dict[float, float] = {}
        for s in members:
            for t, v in s.points:
                if t not in at:
                    at[t] = v
                elif summed:
                    at[t] += v
                else:
                    at[t] = max(at[t], v)
        out.append(Series(labels=dict(key), points=sorted(at.items())))
    return out
