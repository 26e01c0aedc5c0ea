"""Golden signals from the series real exporters publish, before any shift is looked for.

Exporters publish counters and histograms, not the gauges a person reads: a request counter
only ever rises, a histogram's ``_bucket`` series are cumulative counters too. Read raw, every
counter "moved up after the onset". :func:`derive` turns the fetched series into what
PromQL would have been asked for (docs/metrics.md has the table):

- a counter (``_total``, ``_count``, ``_sum``, a few known Envoy names; non-decreasing but
  for resets) becomes its per-second rate, resets counted as Prometheus' ``rate()`` counts
  them: ``rate(x_total)``;
- a counter whose series carry a response status (``code``, ``response_code``, ``status``,
  ``grpc_code``...) is summed over the status and the other per-request labels (method, route,
  outcome...) into the rate of the workload or call edge, plus the share of server errors
  (5xx, gRPC server-side codes): ``error_ratio(x_total)``;
- histogram buckets of one family and label set become p99 and p50 by linear interpolation,
  as ``histogram_quantile`` computes them over the buckets' rates: ``p99(x)``; the raw
  buckets, ``_sum`` and ``_count`` leave (``_count`` still gives traffic and errors);
  ``_sum``/``_count`` without buckets (a summary, or a histogram scraped without them) give
  the mean: ``mean(x)``; a summary's ``{quantile="0.99"}`` is its latency as it is: ``p99(x)``;
- cAdvisor's CFS periods become the share of throttled periods, the working set beside a
  memory limit (kube-state-metrics) the share of the limit in use;
- a restart counter becomes restarts since the window began (``increase(x)``): a single
  restart is a step that a per-second rate would lose in the median.

Gauges and precomputed ratios pass through untouched. Derived series keep the labels that
name their subject (namespace, workload, pod, version, the two ends of a call) and get
``__name__`` ``fn(source)``, so an evidence summary reads ``error_ratio(istio_requests_total)
of cart moved up``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise

from collectors.sources import Series

Points = list[tuple[float, float]]
LabelKey = tuple[tuple[str, str], ...]

# Label names that carry a response status, the first one present decides (Istio, Prometheus
# client libraries, Spring/Micrometer, OpenTelemetry semantic conventions, Envoy, gRPC).
STATUS_LABELS = (
    "response_code",
    "code",
    "status",
    "status_code",
    "http_status_code",
    "http_response_status_code",
    "envoy_response_code",
    "envoy_response_code_class",
    "grpc_code",
    "grpc_status",
    "grpc_response_status",
    "rpc_grpc_status_code",
    "outcome",
)
# Per-request labels summed away so a ratio is the workload's or the call edge's, not one
# route's (whose share would be all or nothing).
REQUEST_LABELS = frozenset(
    {
        *STATUS_LABELS,
        "exception",
        "error",
        "error_type",
        "response_flags",
        "response_code_class",
        "method",
        "http_method",
        "http_request_method",
        "uri",
        "route",
        "http_route",
        "path",
        "handler",
        "operation",
        "grpc_method",
        "grpc_service",
        "grpc_type",
        "rpc_method",
        "rpc_service",
        "request_protocol",
        "connection_security_policy",
    }
)
# gRPC codes that say the server failed (Unknown, DeadlineExceeded, Unimplemented, Internal,
# Unavailable, DataLoss); the rest are the caller's doing or OK.
_GRPC_SERVER_ERRORS = frozenset(
    {"2", "4", "12", "13", "14", "15"}
    | {"unknown", "deadlineexceeded", "deadline_exceeded", "unimplemented", "internal"}
    | {"unavailable", "dataloss", "data_loss"}
)
# Counters whose names carry no counter suffix.
_KNOWN_COUNTERS = frozenset(
    {
        "envoy_cluster_upstream_rq",
        "envoy_cluster_upstream_rq_xx",
        "envoy_cluster_upstream_rq_timeout",
        "envoy_cluster_upstream_rq_retry",
        "envoy_cluster_upstream_rq_pending_overflow",
        "envoy_cluster_upstream_cx_connect_fail",
        "envoy_cluster_upstream_cx_connect_timeout",
    }
)
_COUNTER_SUFFIXES = ("_total", "_count", "_sum")
_RESTARTS = re.compile(r"restart", re.IGNORECASE)
QUANTILES = ((0.99, "p99"), (0.5, "p50"))
_THROTTLED = "container_cpu_cfs_throttled_periods_total"
_PERIODS = "container_cpu_cfs_periods_total"
_WORKING_SET = "container_memory_working_set_bytes"
_LIMITS = "kube_pod_container_resource_limits"


def is_counter_name(name: str) -> bool:
    return name.endswith(_COUNTER_SUFFIXES) or name in _KNOWN_COUNTERS


def monotonic(points: Points) -> bool:
    """Non-decreasing but for a few resets (a restart sets a counter back): a gauge that
    happens to carry a counter's suffix goes up and down all the time."""
    values = [v for _, v in points if math.isfinite(v)]
    drops = sum(b < a for a, b in pairwise(values))
    return drops <= max(2, len(values) // 10)


def rate(points: Points) -> Points:
    """Per-second increase between consecutive samples; a drop is a reset, after which the
    counter counted up from zero (Prometheus adds the value before the reset back)."""
    out: Points = []
    for (t0, v0), (t1, v1) in pairwise(points):
        if t1 <= t0 or not (math.isfinite(v0) and math.isfinite(v1)):
            continue
        out.append((t1, (v1 - v0 if v1 >= v0 else v1) / (t1 - t0)))
    return out


def increase(points: Points) -> Points:
    """Counted since the first sample of the window, resets included."""
    out: Points = []
    total, prev = 0.0, None
    for t, v in points:
        if not math.isfinite(v):
            continue
        if prev is not None:
            total += v - prev if v >= prev else v
        prev = v
        out.append((t, total))
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs: linear
    interpolation inside the bucket the rank falls in, the lower bound of the first bucket 0,
    a rank in the +Inf bucket answered with the highest finite bound."""
    if not buckets or not 0 <= q <= 1:
        return math.nan
    ordered = sorted(buckets)
    if not math.isinf(ordered[-1][0]) or len(ordered) < 2:
        return math.nan
    # Counts scraped at slightly different moments may not be cumulative: made so, as there.
    counts: list[float] = []
    for _, c in ordered:
        counts.append(max(c, counts[-1]) if counts else c)
    total = counts[-1]
    if total <= 0 or math.isnan(total):
        return math.nan
    rank = q * total
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    if b == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start = 0.0 if b == 0 else ordered[b - 1][0]
    end = ordered[b][0]
    count = counts[b] - (counts[b - 1] if b > 0 else 0.0)
    rank -= counts[b - 1] if b > 0 else 0.0
    return start + (end - start) * (rank / count) if count > 0 else end


def status_of(labels: dict[str, str]) -> tuple[str, str] | None:
    for name in STATUS_LABELS:
        if name in labels:
            return name, labels[name]
    return None


def is_server_error(label: str, value: str) -> bool:
    v = value.strip().lower()
    if label in ("grpc_code", "grpc_status", "grpc_response_status", "rpc_grpc_status_code"):
        return v in _GRPC_SERVER_ERRORS
    if label == "outcome":
        return v == "server_error"
    if label == "envoy_response_code_class":
        return v in ("5", "5xx")
    return v.startswith("5")


def _key(labels: dict[str, str], drop: Iterable[str] = ()) -> LabelKey:
    gone = {"__name__", *drop}
    return tuple(sorted((k, v) for k, v in labels.items() if k not in gone))


def _named(name: str, key: LabelKey, points: Points) -> Series:
    return Series(labels={**dict(key), "__name__": name}, points=points)


def _sum_at(parts: Iterable[Points]) -> dict[float, float]:
    total: dict[float, float] = defaultdict(float)
    for points in parts:
        for t, v in points:
            total[t] += v
    return total


def _ratio(num: dict[float, float], den: dict[float, float]) -> Points:
    return [(t, num.get(t, 0.0) / d) for t, d in sorted(den.items()) if d > 0]


def _family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def derive(series: list[Series]) -> list[Series]:
    """The series shift detection should read: golden signals in place of raw counters."""
    by_name: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        by_name[s.labels.get("__name__", "")].append(s)
    out: list[Series] = []
    used: set[str] = set()
    histograms = {
        _family(n)
        for n, group in by_name.items()
        if n.endswith("_bucket") and any("le" in s.labels for s in group)
    }
    for fam in sorted(histograms):
        out += _quantiles(fam, by_name[f"{fam}_bucket"])
        used |= {f"{fam}_bucket", f"{fam}_sum"}
    out += _saturation(by_name, used)
    for name, group in sorted(by_name.items()):
        if name in used or name.endswith("_created"):
            continue
        if "quantile" in group[0].labels and not name.endswith(_COUNTER_SUFFIXES):
            out += _summary(name, group)
        elif name.endswith("_sum") and f"{name[:-4]}_count" in by_name:
            out += _mean(name[:-4], group, by_name[f"{name[:-4]}_count"])
        elif is_counter_name(name) and all(monotonic(s.points) for s in group):
            out += _counter(name, group)
        else:
            out += group
    return [s for s in out if s.points]


def _counter(name: str, group: list[Series]) -> list[Series]:
    if _RESTARTS.search(name):
        return [_named(f"increase({name})", _key(s.labels), increase(s.points)) for s in group]
    if not any(status_of(s.labels) for s in group):
        return [_named(f"rate({name})", _key(s.labels), rate(s.points)) for s in group]
    # Requests by status: the workload's (or the call edge's) traffic and its error share.
    rates: dict[LabelKey, list[Points]] = defaultdict(list)
    errors: dict[LabelKey, list[Points]] = defaultdict(list)
    for s in group:
        key = _key(s.labels, REQUEST_LABELS)
        r = rate(s.points)
        rates[key].append(r)
        status = status_of(s.labels)
        if status and is_server_error(*status):
            errors[key].append(r)
    out = []
    for key, parts in sorted(rates.items()):
        total = _sum_at(parts)
        out.append(_named(f"rate({name})", key, sorted(total.items())))
        out.append(_named(f"error_ratio({name})", key, _ratio(_sum_at(errors[key]), total)))
    return out


def _quantiles(fam: str, buckets: list[Series]) -> list[Series]:
    # histogram_quantile(q, sum by (le, <the rest>) (rate(fam_bucket[step])))
    grouped: dict[LabelKey, dict[float, dict[float, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float))
    )
    for s in buckets:
        try:
            le = float(s.labels.get("le", "nan"))
        except ValueError:
            continue
        if math.isnan(le):
            continue
        at = grouped[_key(s.labels, {"le", *REQUEST_LABELS})]
        for t, v in rate(s.points):
            at[t][le] += v
    out = []
    for key, at in sorted(grouped.items()):
        for q, prefix in QUANTILES:
            points = [(t, histogram_quantile(q, list(at[t].items()))) for t in sorted(at)]
            out.append(_named(f"{prefix}({fam})", key, [p for p in points if math.isfinite(p[1])]))
    return out


def _summary(name: str, group: list[Series]) -> list[Series]:
    out = []
    for s in group:
        try:
            q = float(s.labels["quantile"])
        except ValueError:
            continue
        out.append(_named(f"p{q * 100:g}({name})", _key(s.labels, {"quantile"}), s.points))
    return out


def _mean(fam: str, sums: list[Series], counts: list[Series]) -> list[Series]:
    # rate(fam_sum) / rate(fam_count), per label set (summed over the per-request labels)
    num = _grouped_rates(sums)
    den = _grouped_rates(counts)
    return [_named(f"mean({fam})", key, _ratio(num[key], den[key])) for key in sorted(num)]


def _grouped_rates(group: list[Series]) -> dict[LabelKey, dict[float, float]]:
    parts: dict[LabelKey, list[Points]] = defaultdict(list)
    for s in group:
        parts[_key(s.labels, REQUEST_LABELS)].append(rate(s.points))
    return {key: _sum_at(p) for key, p in parts.items()}


def _saturation(by_name: dict[str, list[Series]], used: set[str]) -> list[Series]:
    out: list[Series] = []
    if by_name.get(_THROTTLED) and by_name.get(_PERIODS):
        periods = {_key(s.labels): rate(s.points) for s in by_name[_PERIODS]}
        for s in by_name[_THROTTLED]:
            key = _key(s.labels)
            if key in periods:
                den = dict(periods[key])
                num = dict(rate(s.points))
                out.append(_named("throttled_ratio(container_cpu_cfs)", key, _ratio(num, den)))
        used |= {_THROTTLED, _PERIODS}
    limits = {
        _join(s.labels): s.points
        for s in by_name.get(_LIMITS, [])
        if s.labels.get("resource") == "memory"
    }
    for s in by_name.get(_WORKING_SET, []) if limits else []:
        limit = limits.get(_join(s.labels))
        if limit:
            den = dict(limit)
            ratio = [(t, v / den[t]) for t, v in s.points if den.get(t, 0) > 0]
            out.append(_named(f"limit_ratio({_WORKING_SET})", _key(s.labels), ratio))
    return out


def _join(labels: dict[str, str]) -> tuple[str, str, str]:
    return labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", "")
