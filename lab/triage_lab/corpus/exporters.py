"""The real-world half's request metrics as the exporters publish them, not as a person reads
them: Istio's and Spring's and OpenTelemetry's counters split by status and latency
histograms, with alert rules written in PromQL over them.

A world's golden signals are gauges (requests per second, error share, p99 latency); an
exporter counts. Each step adds ``rate * step`` requests to a status-labelled counter (the
error share of them as server errors) and spreads them over the histogram's buckets as a
log-normal whose 99th percentile is the world's p99, so ``rate()``, an error ratio and
``histogram_quantile()`` give back the world's values, within the buckets' resolution. The
kube-state-metrics style keeps the recording-rule gauges that many clusters run.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from statistics import NormalDist

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+) (\d+)$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# p99 / p50 of the request latency: a long tail, as services have.
_TAIL = 4.0
_SIGMA = math.log(_TAIL) / NormalDist().inv_cdf(0.99)
# The families replaced; everything else stays as the world wrote it.
_REPLACED = ("service_request_rate", "service_error_ratio", "service_p99_seconds")
_EDGES = "edge_error_ratio"
_EDGE_LATENCY = "edge_request_duration_p99_seconds"


@dataclass(frozen=True)
class Exporter:
    """One stack's request metrics: names, labels, status values and bucket bounds."""

    counter: str  # status-labelled request counter (without _total), or the histogram's _count
    histogram: str
    status: str
    ok: str
    failed: str
    unit: float  # histogram unit per second
    buckets: tuple[float, ...]
    extra: tuple[tuple[str, str], ...] = ()  # labels every request series carries
    separate_counter: bool = True  # a _total counter beside the histogram (Istio)

    def who(self, labels: dict[str, str]) -> dict[str, str]:
        out = {k: v for k, v in labels.items() if k not in ("caller", "callee")}
        if "callee" in labels:  # a call edge as the caller's proxy reports it
            out |= {"source_workload": labels["caller"], "service": labels["callee"]}
            out["reporter"] = "source"
        return dict(self.extra) | out


EXPORTERS: dict[str, Exporter] = {
    "istio": Exporter(
        counter="istio_requests",
        histogram="istio_request_duration_milliseconds",
        status="response_code",
        ok="200",
        failed="503",
        unit=1000.0,
        buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000),
        extra=(("reporter", "destination"),),
    ),
    "otel": Exporter(
        counter="http_server_request_duration_seconds",
        histogram="http_server_request_duration_seconds",
        status="http_response_status_code",
        ok="200",
        failed="500",
        unit=1.0,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10),
        extra=(("http_request_method", "GET"),),
        separate_counter=False,
    ),
    "helm": Exporter(  # Spring Boot / Micrometer behind a Helm chart
        counter="http_server_requests_seconds",
        histogram="http_server_requests_seconds",
        status="status",
        ok="200",
        failed="500",
        unit=1.0,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        extra=(("uri", "/api/{id}"), ("method", "GET")),
        separate_counter=False,
    ),
}

Samples = dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]


def _read(block: str) -> Samples:
    out: Samples = defaultdict(list)
    for line in block.splitlines():
        if m := _SAMPLE.match(line):
            key = tuple(_PAIR.findall(m.group(2)))
            out[key].append((int(m.group(4)), float(m.group(3))))
    return out


def _blocks(text: str) -> tuple[dict[str, str], list[str]]:
    """Family name -> its lines, and the families in order."""
    blocks: dict[str, str] = {}
    order: list[str] = []
    for chunk in re.split(r"(?m)^(?=# TYPE )", text.removesuffix("# EOF\n")):
        if chunk.startswith("# TYPE "):
            name = chunk.split()[2]
            blocks[name] = chunk
            order.append(name)
    return blocks, order


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else f"{v:.10g}"


def _line(name: str, labels: dict[str, str], value: float, t: int) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{body}}} {_num(value)} {t}\n"


def _share_under(bound_s: float, p99_s: float) -> float:
    median = max(p99_s, 1e-6) / _TAIL
    return NormalDist().cdf((math.log(bound_s) - math.log(median)) / _SIGMA)


Lines = dict[tuple[str, tuple[tuple[str, str], ...]], list[str]]


def _add(out: Lines, name: str, labels: dict[str, str], value: float, t: int) -> None:
    # One series' samples stay together, in time order, as OpenMetrics wants them.
    out.setdefault((name, tuple(labels.items())), []).append(_line(name, labels, value, t))


def _series(
    ex: Exporter,
    who: dict[str, str],
    rps: list[tuple[int, float]],
    err: dict[int, float],
    p99: dict[int, float],
    out: Lines,
) -> None:
    """Cumulative counters and buckets from a world's per-step gauges."""
    total = {ex.ok: 0.0, ex.failed: 0.0}
    buckets = dict.fromkeys(ex.buckets, 0.0)
    seconds = 0.0
    prev: int | None = None
    count = ex.counter + "_total" if ex.separate_counter else ex.histogram + "_count"
    for t, rate in rps:
        step = t - prev if prev is not None else 60
        prev = t
        n = max(rate, 0.0) * step
        share = min(max(err.get(t, 0.0), 0.0), 1.0)
        total[ex.failed] += n * share
        total[ex.ok] += n - n * share
        for status, value in total.items():
            # Whole requests: OpenMetrics wants a histogram's counts as integers.
            _add(out, count, who | {ex.status: status}, round(value), t)
        latency = p99.get(t)
        if latency is None:
            continue
        for b in ex.buckets:
            buckets[b] += n * _share_under(b / ex.unit, latency)
        seconds += n * latency / _TAIL * math.exp(_SIGMA**2 / 2)
        bucket = ex.histogram + "_bucket"
        everything = sum(round(v) for v in total.values())
        for b in ex.buckets:
            _add(out, bucket, who | {"le": _num(float(b))}, min(round(buckets[b]), everything), t)
        _add(out, bucket, who | {"le": "+Inf"}, everything, t)
        _add(out, ex.histogram + "_sum", who, round(seconds * ex.unit, 3), t)


def _family(kind: str, name: str, out: Lines, samples: tuple[str, ...]) -> str:
    lines = [f"# TYPE {name} {kind}\n"]
    for sample in samples:
        for (series, _), values in out.items():
            if series == sample:
                lines += values
    return "".join(lines)


def exporter_metrics(text: str, style: str) -> str:
    """``text`` (our convention's OpenMetrics) with the request families as ``style``'s
    exporter publishes them; labels are renamed afterwards as for every other series."""
    ex = EXPORTERS.get(style)
    if ex is None:
        return text
    blocks, order = _blocks(text)
    if not all(name in blocks for name in _REPLACED):
        return text
    rps, err, p99 = (_read(blocks[name]) for name in _REPLACED)
    out: Lines = {}
    for key, points in sorted(rps.items()):
        _series(ex, ex.who(dict(key)), points, dict(err.get(key, [])), dict(p99.get(key, [])), out)
    mesh = ex.separate_counter and _EDGES in blocks  # only a mesh sees every call edge
    if mesh:
        by_callee = {dict(k).get("service"): v for k, v in rps.items()}
        edge_p99 = _read(blocks[_EDGE_LATENCY]) if _EDGE_LATENCY in blocks else {}
        for key, points in sorted(_read(blocks[_EDGES]).items()):
            labels = dict(key)
            share = dict(points)
            callee = by_callee.get(labels.get("callee"), [(t, 1.0) for t, _ in points])
            calls = [(t, r / 2) for t, r in callee if t in share]
            _series(ex, ex.who(labels), calls, share, dict(edge_p99.get(key, [])), out)
    gone = (*_REPLACED, _EDGES, _EDGE_LATENCY) if mesh else _REPLACED
    kept = [blocks[n] for n in order if n not in gone]
    h = ex.histogram
    if ex.separate_counter:
        families = [
            _family("counter", ex.counter, out, (ex.counter + "_total",)),
            _family("histogram", h, out, (h + "_bucket", h + "_sum")),
        ]
    else:
        families = [_family("histogram", h, out, (h + "_bucket", h + "_count", h + "_sum"))]
    return "".join(kept + families) + "# EOF\n"


_OUR_RULE = re.compile(r'^(service_error_ratio|service_p99_seconds)\{service="([^"]+)"\}$')


def rule(expr: str, style: str, namespace: str) -> str | None:
    """The alerting rule a stack would write for one of our SLO alerts, in PromQL over its
    exporter's series, or None when the style keeps our recording rules."""
    ex = EXPORTERS.get(style)
    m = _OUR_RULE.match(expr)
    if ex is None or m is None:
        return None
    who = _who_selector(style, m.group(2), namespace)
    counter = ex.counter + "_total" if ex.separate_counter else ex.histogram + "_count"
    if m.group(1) == "service_error_ratio":
        failed = f'sum(rate({counter}{{{who},{ex.status}=~"5.."}}[5m]))'
        return f"{failed} / sum(rate({counter}{{{who}}}[5m])) > 0.05"
    threshold = _num(ex.unit)  # one second, in the histogram's unit
    buckets = f"sum by (le) (rate({ex.histogram}_bucket{{{who}}}[5m]))"
    return f"histogram_quantile(0.99, {buckets}) > {threshold}"


def _who_selector(style: str, workload: str, namespace: str) -> str:
    if style == "istio":
        return (
            f'reporter="destination",destination_workload="{workload}",'
            f'destination_workload_namespace="{namespace}"'
        )
    if style == "otel":
        return f'service_name="{workload}",job="{namespace}/{workload}"'
    return f'app_kubernetes_io_name="{workload}",namespace="{namespace}"'
