"""Metric series around the onset: which services moved, when each one first departed from its
baseline (who went wrong first), and whether new-version pods do worse than old-version pods
of the same service during a rollout."""

from __future__ import annotations

import hashlib
import math
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from collectors.contracts import (
    Evidence,
    EvidenceItem,
    IncidentView,
    Neighbours,
    TimeWindow,
)
from collectors.golden import REQUEST_LABELS, derive
from collectors.identity import identify, namespace_of
from collectors.kubernetes.common import NODE_LABELS, in_scope
from collectors.links import wire_hints
from collectors.prometheus import expr_from_generator_url, rule_selectors, shift_score
from collectors.rollup import rollup
from collectors.sources import MetricSource, Series
from collectors.version_diff import version_items
from triage.errors import CollectorError

# A rule selects one status, bucket or quantile; the derivation needs the whole family.
RULE_LABELS_DROPPED = REQUEST_LABELS | {"le", "quantile"}
DEFAULT_SELECTORS = ('{namespace="$namespace"}',)
MAX_SERIES = 5000
# Samples at the end of the window a call edge's shift is also measured on.
LATEST = 4
# Metrics where a drop is the bad direction; for the rest a rise is.
_LOWER_IS_WORSE = ("success", "availability", "throughput", "ready", "up")
# Golden signals say a service is hurting; saturation only that it is busy; node-level series
# are shared by every pod on the node and say little about any one service.
_SIGNAL_WEIGHT = (
    (("node_", "_node"), 0.3),
    (("success", "error", "fail", "5xx", "latency", "duration", "availability"), 1.0),
    (("restart", "oom"), 0.8),
    (("cpu", "memory", "throttl", "saturation"), 0.5),
)


_EXPIRY = re.compile(r"not_after|cert.*expir|expir.*cert", re.IGNORECASE)


# Latency derived from histograms and summaries (collectors.golden): p99(x), p50(x), mean(x).
_DERIVED_LATENCY = re.compile(r"(p\d+(\.\d+)?|mean)\(")


# How many requests a latency histogram counted is load, whatever "duration" its name says.
_REQUEST_COUNT = re.compile(r"^rate\(.*_count\)$")


def signal_weight(metric: str) -> float:
    name = metric.lower()
    if _REQUEST_COUNT.match(name):
        return 0.7
    if _DERIVED_LATENCY.match(name) and "node_" not in name:
        return 1.0
    for words, weight in _SIGNAL_WEIGHT:
        if any(w in name for w in words):
            return weight
    return 0.7


# Label pairs naming the two ends of a call: our convention, Istio, Linkerd.
_EDGE_LABELS = (
    ("caller", "callee"),
    ("source_workload", "destination_workload"),
    ("deployment", "dst_deployment"),
)
# Traffic says how much load a service gets, not that it is hurting.
_TRAFFIC = re.compile(
    r"request_rate|requests_total|_rps\b|^rps|qps|throughput|^rate\(", re.IGNORECASE
)


def edge_of(labels: dict[str, str]) -> tuple[str, str] | None:
    for caller, callee in _EDGE_LABELS:
        if labels.get(caller) and labels.get(callee) and labels[caller] != labels[callee]:
            return labels[caller], labels[callee]
    return None


def subject_of(labels: dict[str, str], metric: str) -> str:
    """Errors and latency of a call edge (caller -> callee) speak about the callee, wherever
    they were measured; a pod's CPU or memory speaks about the pod's own service."""
    edge = edge_of(labels)
    if edge and signal_weight(metric) >= 1.0:
        return edge[1]
    service = labels.get("service")
    if service and service == labels.get("job"):
        service = None  # the exporter's own scrape target (kube-state-metrics), not a workload
    if node := node_of(labels):
        return node  # a node's own series (node-exporter, kubelet): about the node, not its job
    # Other stacks' vocabularies (Istio, OpenTelemetry, Helm, pod names): collectors.identity.
    who = identify(labels)
    return service or (edge[1] if edge else "") or (who.name if who else "") or ""


def node_of(labels: dict[str, str]) -> str:
    """The node a series is about, when it is about a node rather than a workload on it."""
    if any(k in labels for k in ("pod", "namespace", "service")):
        return ""
    return next((labels[k] for k in NODE_LABELS if labels.get(k)), "")


def expand(template: str, incident: IncidentView) -> list[tuple[str, str]]:
    """A golden-signal template, once per alert namespace (``$namespace``) or, when it names
    ``$workload``, once per workload the alerts may name (collectors.identity: the likeliest,
    the alternatives, and the container, which often enough names its workload too)."""
    targets: set[tuple[str, str]] = set()
    common_ns = namespace_of(incident.common_labels)
    for labels in [incident.common_labels, *(a.labels for a in incident.alerts.values())]:
        workload = identify(labels)
        ns = (workload.namespace if workload else None) or namespace_of(labels) or common_ns
        if not ns:
            continue
        names = [*workload.names, workload.container or ""] if workload else []
        targets.update((ns, n) for n in [n for n in names if n] or [""])
    if "$workload" in template:
        return sorted(
            (template.replace("$namespace", ns).replace("$workload", wl), wl)
            for ns, wl in targets
            if wl
        )
    return sorted({(template.replace("$namespace", ns), "") for ns, _ in targets})


def worse_direction(metric: str, labels: dict[str, str] | None = None) -> int:
    labels = labels or {}
    if labels.get("condition") == "Ready" and "status" in labels:
        # kube-state-metrics' condition series: Ready="true" falling is the node going away.
        return -1 if labels["status"] == "true" else 1
    return -1 if any(w in metric.lower() for w in _LOWER_IS_WORSE) else 1


def departure(points: list[tuple[float, float]], onset: float) -> float | None:
    """First time after the baseline that a series left its baseline band."""
    before = [v for t, v in points if t < onset - 600]
    if len(before) < 3:
        return None
    med = statistics.median(before)
    mad = statistics.median([abs(v - med) for v in before]) * 1.4826
    band = max(3 * mad, abs(med) * 0.1, 1e-9)
    for t, v in points:
        if t >= onset - 1800 and abs(v - med) > band:
            # Require the departure to persist, not a single blip.
            later = [w for u, w in points if t <= u <= t + 180]
            if sum(abs(w - med) > band for w in later) >= min(2, len(later)):
                return t
    return None


class MetricsCollector:
    name = "metrics"

    def __init__(
        self,
        source: MetricSource,
        *,
        step_s: float = 60,
        selectors: tuple[str, ...] = DEFAULT_SELECTORS,
        lead_s: float = 600,
        golden: bool = True,
        neighbours: Neighbours | None = None,
    ) -> None:
        self._source = source
        self._neighbours = neighbours
        self._step = step_s
        # Alerts fire after `for:` durations and evaluation delays: the trouble starts before.
        self._lead = lead_s
        self._selectors = selectors
        # Counters as rates, histograms as quantiles (collectors.golden); off = raw values.
        self._golden = golden

    async def collect(self, incident: IncidentView, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        # (query, the workload it was asked about, if any)
        # The series the alerts' rules read, raw, whichever backend answers (see rule_selectors).
        # First: they are few and the most specific, and a namespace past MAX_SERIES (a large
        # one, bench/scale.py) must not crowd them out.
        queries = sorted(
            {
                (selector, "")
                for a in incident.alerts.values()
                if (e := expr_from_generator_url(a.generator_url))
                for selector in rule_selectors(e, RULE_LABELS_DROPPED)
            }
        )
        queries += [(q, wl) for template in self._selectors for q, wl in expand(template, incident)]
        # Then the call-graph neighbours' namespaces, last: the alerts' own come first at the cap.
        _, near, scope_error = await in_scope(incident, window, self._neighbours)
        queries += [
            (t.replace("$namespace", ns), "")
            for ns in near
            for t in self._selectors
            if "$namespace" in t and "$workload" not in t
        ]
        series: dict[tuple[tuple[str, str], ...], Series] = {}
        errors = []
        for q, workload in queries:
            try:
                for s in await self._source.query_range(q, window.start, window.end, self._step):
                    if workload and not subject_of(s.labels, s.labels.get("__name__", "")):
                        # An aggregation dropped the labels; the query said whose it is.
                        s = s.model_copy(update={"labels": {**s.labels, "service": workload}})
                    series.setdefault(tuple(sorted(s.labels.items())), s)
            except CollectorError as exc:
                errors.append(str(exc))
            if len(series) > MAX_SERIES:
                break
        notes = [scope_error] if scope_error else []  # a narrower look, still a look
        if not series:
            return Evidence(
                collector=self.name,
                status="error" if errors else "no_data",
                error="; ".join(errors + notes) or f"no series for {_shown(q for q, _ in queries)}",
                duration_s=time.monotonic() - started,
            )
        onset = window.onset.timestamp() - self._lead
        found = derive(list(series.values())) if self._golden else list(series.values())
        found += rollup(found)
        items = self._expired(found, window.end.timestamp())
        shifts = self._shifts(found, onset)
        shifts = wire_hints(found, shifts, onset, edge_of=edge_of, subject_of=subject_of)
        items += shifts + version_items(found, onset)
        items.sort(key=lambda i: i.id)
        return Evidence(
            collector=self.name,
            status="ok" if items else "no_data",
            items=items,
            error="; ".join(errors + notes)
            or (None if items else f"{len(series)} series, none moved at the onset"),
            duration_s=time.monotonic() - started,
            edges=sorted({pair for s in series.values() if (pair := edge_of(s.labels))}),
        )

    def _shifts(self, series: list[Series], onset: float) -> list[EvidenceItem]:
        """Per service and metric, the series that moved the most in its bad direction."""
        best: dict[tuple[str, str], tuple[float, float, Series, float | None]] = {}
        # Callers whose calls to a component went wrong: one caller may be the one at fault
        # (its client, its credentials), several point at the component itself.
        callers: dict[tuple[str, str], set[str]] = defaultdict(set)
        for s in series:
            # Aggregating PromQL drops the name; the series still speaks for its service.
            metric = s.labels.get("__name__") or "query result"
            svc = subject_of(s.labels, metric)
            if not svc:
                continue
            before = [v for t, v in s.points if t < onset and math.isfinite(v)]
            after = [v for t, v in s.points if t >= onset and math.isfinite(v)]
            # Bucket bounds grow about 2x apart: interpolating inside one says little below that.
            resolution = 0.25 if _DERIVED_LATENCY.match(metric) else 0.05
            z, score = shift_score(before, after, resolution)
            if edge_of(s.labels) and signal_weight(metric) >= 1.0 and len(after) > LATEST:
                # A call edge's latest minutes too: a link that slowed shortly before the alert
                # shows only there, the calm minutes before it would outvote them.
                z_late, late = shift_score(before, after[-LATEST:], resolution)
                if late > score:
                    z, score = z_late, late
            # A node's own series says little about one workload on it, all about the node.
            score *= 1.0 if node_of(s.labels) else signal_weight(metric)
            if z * worse_direction(metric, s.labels) <= 0:
                score = score * 0.2  # moving in the good direction is barely a symptom
            key = (svc, metric)
            edge = edge_of(s.labels)
            if edge and edge[1] == svc and score >= 0.5:
                callers[key].add(edge[0])
            if score > best.get(key, (-1.0, 0.0, s, None))[0]:
                best[key] = (score, z, s, departure(s.points, onset))
        items = []
        for (svc, metric), (score, z, s, dep) in sorted(best.items()):
            if score < 0.3:
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "__name__")
            items.append(
                EvidenceItem(
                    id="metric-" + hashlib.sha256(f"{svc}|{metric}".encode()).hexdigest()[:10],
                    kind="traffic_shift"
                    if _TRAFFIC.search(metric) and signal_weight(metric) < 1.0
                    else "edge_shift"
                    if edge_of(s.labels)
                    else "metric_shift",
                    related=sorted(callers[(svc, metric)]),
                    summary=f"{metric} of {svc} moved {'up' if z > 0 else 'down'} after the onset "
                    f"(robust z={z:.1f}){_when(dep, onset)}",
                    detail=f"series {{{labels}}}",
                    subject=svc,
                    fault_hint="cpu_throttling" if "throttl" in metric.lower() else None,
                    timestamp=datetime.fromtimestamp(dep, UTC) if dep else None,
                    score=round(score, 4),
                    points=s.points,
                )
            )
        return items

    def _expired(self, series: list[Series], now: float) -> list[EvidenceItem]:
        """Certificate exporters publish expiry as a Unix time (x509 `not_after`, blackbox
        `ssl_earliest_cert_expiry`): one that has passed is a cause, not a symptom."""
        items = []
        for s in series:
            metric = s.labels.get("__name__", "")
            if not _EXPIRY.search(metric) or not s.points:
                continue
            expiry = min(v for _, v in s.points)
            if not 1e9 < expiry <= now:
                continue
            subject = s.labels.get("service") or s.labels.get("secret") or metric
            when = datetime.fromtimestamp(expiry, UTC)
            items.append(
                EvidenceItem(
                    id="expired-"
                    + hashlib.sha256(repr(sorted(s.labels.items())).encode()).hexdigest()[:10],
                    kind="expired_cert",
                    summary=f"{metric} says the certificate of {subject} expired at "
                    f"{when:%Y-%m-%d %H:%M:%S}Z",
                    detail=", ".join(f"{k}={v}" for k, v in sorted(s.labels.items())),
                    subject=subject,
                    timestamp=when,
                    score=0.9,
                    fault_hint="certificate_expiry",
                )
            )
        return items


def _when(dep: float | None, onset: float) -> str:
    if dep is None:
        return ""
    minutes = (onset - dep) / 60
    return (
        f", departed {minutes:.0f} min before the onset"
        if minutes >= 0
        else f", departed {-minutes:.0f} min after the onset"
    )


def _shown(queries: Iterable[str], most: int = 3) -> str:
    """The queries that found nothing, as a reader can paste them into Prometheus."""
    found = list(queries)
    more = f" and {len(found) - most} more" if len(found) > most else ""
    return ", ".join(found[:most]) + more if found else "no query (the alert names no namespace)"
