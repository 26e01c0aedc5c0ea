"""Root-cause ranking: every component in the blast radius and every recent change is a
candidate; each is scored from independent signals and the score says which signals put it
where it is."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import cast, get_args

from collectors.contracts import Evidence, EvidenceItem
from collectors.identity import identify_incident
from triage.models import FaultKind, IncidentState, Suspect

# A component whose errors blame another that changed or failed is likely downstream damage.
POINTS_ELSEWHERE = 0.8
# How much one signal alone can say, 0..1; signals combine as a noisy-OR.
WEIGHTS = {
    "change": 0.55,  # a rollout / config change shortly before the onset
    "version_split": 0.85,  # new-version pods worse than old-version pods
    "anomaly": 0.35,  # its own metrics moved after the onset
    "onset_order": 0.35,  # it departed from baseline first
    "new_errors": 0.5,  # new or spiking error log templates
    "pod_failure": 0.65,  # crash loops, OOMKilled, config errors
    "events": 0.45,  # warning events
    "node": 0.6,  # node conditions
    "capacity": 0.5,  # autoscaler pinned at max
    "expired": 0.75,  # a certificate past its expiry
    "quota": 0.9,  # a namespace ResourceQuota / LimitRange refuses its pods
    "unschedulable": 0.85,  # its pods wait for a node: requests, affinity, taints, a PVC
    "volume": 0.85,  # its pods cannot get their volumes: unbound claim, attach, mount
    "no_endpoints": 0.85,  # a Service meant for it has no ready endpoint (or it is at 0)
    "dead_route": 0.85,  # an Ingress / HTTPRoute whose backend is missing or cannot answer
    "blamed": 0.45,  # other components' errors name it
    "common_cause": 0.6,  # several failing components name it
    "topology": 0.15,  # close to the alerting service, downstream of it
    "frontier": 0.4,  # hurting while everything it calls is healthy
    "callers_slowed": 0.5,  # the calls of every one of its (several) callers slowed or failed
    "load": 0.15,  # its traffic moved
    "control_plane": 0.9,  # a cluster component down, and what it no longer does shows
}
_SIGNAL_OF_KIND = {
    "rollout": "change",
    "config_change": "change",
    "version_split": "version_split",
    "version_same": "version_same",
    "metric_shift": "anomaly",
    "edge_shift": "anomaly",
    "traffic_shift": "load",
    "log_pattern": "new_errors",
    "pod_state": "pod_failure",
    "k8s_event": "events",
    "node_condition": "node",
    "hpa": "capacity",
    "expired_cert": "expired",
    "quota": "quota",
    "unschedulable": "unschedulable",
    "volume": "volume",
    "no_endpoints": "no_endpoints",
    "route_backend": "dead_route",
    "control_plane": "control_plane",
}
_KINDS = set(get_args(FaultKind))
# Signals that say a component did something, rather than that it suffers.
_CAUSAL = (
    "common_cause",
    "control_plane",
    "expired",
    "quota",
    "unschedulable",
    "volume",
    "no_endpoints",
    "dead_route",
    "change",
    "version_split",
    "pod_failure",
    "events",
    "node",
    "capacity",
    "new_errors",
    "blamed",
    "frontier",
    "callers_slowed",
)
# A change only explains an incident if something around it misbehaves.
_CORROBORATING = (
    "version_split",
    "unschedulable",
    "volume",
    "no_endpoints",
    "dead_route",
    "anomaly",
    "new_errors",
    "pod_failure",
    "events",
    "onset_order",
    "blamed",
    "frontier",
    "callers_slowed",
)
# New pods measured against old pods at the same moments and found no worse: the change is
# more likely a benign concurrent one; this much of its weight goes at full confidence.
BENIGN_DISCOUNT = 0.6
# A change that began after the first alert started explains little of it.
AFTER_ONSET = 0.5
_SHARED = ("anomaly", "onset_order")
# Golden-signal shifts at least this strong say a component is hurting, not merely busy.
HARM = 0.5


def alerting_components(incident: IncidentState) -> set[str]:
    """The workloads the alerts are about, one per alert (collectors.identity)."""
    return {
        w.name
        for w in identify_incident(
            incident.common_labels, (a.labels for a in incident.alerts.values())
        )
    }


def downstream_distance(graph: list[tuple[str, str]], sources: set[str]) -> dict[str, int]:
    """Hops from the alerting services along caller -> callee edges."""
    callees: dict[str, set[str]] = defaultdict(set)
    for caller, callee in graph:
        callees[caller].add(callee)
    dist = {s: 0 for s in sources}
    frontier = list(sources)
    while frontier:
        nxt = []
        for node in frontier:
            for callee in callees.get(node, ()):
                if callee not in dist:
                    dist[callee] = dist[node] + 1
                    nxt.append(callee)
        frontier = nxt
    return dist


def rank(
    incident: IncidentState,
    evidence: list[Evidence],
    call_graph: list[tuple[str, str]] | None = None,
    *,
    limit: int = 10,
) -> list[Suspect]:
    items = [i for e in evidence for i in e.items if i.subject]
    if not items:
        return []
    signals: dict[str, dict[str, float]] = defaultdict(dict)
    support: dict[str, list[EvidenceItem]] = defaultdict(list)
    onset = incident.onset().timestamp()
    for item in items:
        signal = _SIGNAL_OF_KIND.get(item.kind)
        if signal is None:
            continue
        score = item.score
        if signal == "change" and item.timestamp and item.timestamp.timestamp() > onset + 30:
            score *= AFTER_ONSET  # the alert was already firing: it cannot have started it
        s = signals[item.subject]
        s[signal] = max(s.get(signal, 0.0), score)
        support[item.subject].append(item)

    _onset_order(items, signals)
    blames = _blame(items, signals, support)
    blamed_by: dict[str, set[str]] = defaultdict(set)
    for source, targets in blames.items():
        for target in targets:
            blamed_by[target].add(source)
    for target, sources in blamed_by.items():
        if len(sources) >= 2:
            # Several failing components point at one thing they share: the common cause.
            signals[target]["common_cause"] = min(1.0, 0.35 * len(sources))
    observed = {edge for e in evidence for edge in e.edges}
    graph = sorted({*(call_graph or ()), *observed})
    calls_down, failing = _frontier(items, graph, observed, signals)
    for caller, callee in failing:
        blames[caller].add(callee)  # failing calls name the callee as surely as a log line
    for item in items:
        if item.kind == "control_plane":  # what merely waits on a cluster component names it
            for waiter in item.related:
                blames[waiter].add(item.subject)
    for item in items:
        if item.kind == "quota":  # the pods it refuses name it, as the controller says
            for blocked in item.related:
                blames[blocked].add(item.subject)
            s = signals[item.subject]
            s["blamed"] = max(s.get("blamed", 0.0), item.score)
    alerting = alerting_components(incident)
    dist: dict[str, int] = {}
    if graph:
        dist = downstream_distance(graph, alerting)
        for comp in signals:
            if comp in dist:
                signals[comp]["topology"] = 1 / (1 + dist[comp])
    for comp in alerting & set(signals):
        signals[comp].setdefault("topology", 0.5)

    suspects = []
    for comp, sig in signals.items():
        same = sig.pop("version_same", 0.0)
        if "change" in sig and "version_split" not in sig:
            sig["change"] *= 1 - BENIGN_DISCOUNT * same
        # Trouble that hits old and new pods alike says nothing about the new version.
        corroborating = [k for k in _CORROBORATING if not same or k not in _SHARED]
        if "change" in sig and not any(k in sig for k in corroborating):
            sig["change"] *= 0.5  # a benign concurrent change looks just like this
        causal = [k for k in _CAUSAL if k in sig]
        if not causal or (same and causal == ["change"]):
            # Only symptoms (or a change its own pods show benign): a component that merely
            # suffers ranks below one that did something.
            for k in ("anomaly", "onset_order"):
                if k in sig:
                    sig[k] *= 0.5
        miss = 1.0
        for name, value in sig.items():
            miss *= 1 - WEIGHTS[name] * value
        # Traffic cannot reach it (its Service or route leads nowhere): what it calls is no
        # reason for its trouble.
        unreachable = any(i.fault_hint == "routing" for i in support[comp])
        if not unreachable and (
            comp in calls_down
            or any(any(k in signals[t] for k in _CAUSAL) for t in blames.get(comp, ()))
        ):
            # Its own errors name a component that did something, or it calls one that hurts
            # too: follow the chain down.
            miss = 1 - (1 - miss) * POINTS_ELSEWHERE
        best = sorted(support[comp], key=lambda i: (-i.score, i.id))
        change = next((i.change for i in best if i.change), None)
        kind = _kind(best)
        if kind in _OUTAGE and change is None and dist.get(comp, 0) >= 1:
            # Something the alerting services call broke by itself: to them, a dependency's
            # outage (the crash loop or silence is its own symptom, not the mechanism).
            kind = "dependency_failure"
        suspects.append(
            Suspect(
                component=comp,
                score=round(1 - miss, 4),
                kind=kind,
                change=change,
                breakdown={k: round(WEIGHTS[k] * v, 4) for k, v in sorted(sig.items())},
                evidence_ids=[i.id for i in best[:5]],
            )
        )
    suspects.sort(key=lambda s: (-s.score, s.component))
    return suspects[:limit]


def _onset_order(items: list[EvidenceItem], signals: dict[str, dict[str, float]]) -> None:
    """Whoever left its baseline first is more likely the cause than those that followed."""
    first: dict[str, float] = {}
    for item in items:
        if (
            item.kind in ("metric_shift", "edge_shift")
            and item.timestamp is not None
            and item.score >= HARM
        ):
            t = item.timestamp.timestamp()
            first[item.subject] = min(first.get(item.subject, t), t)
    if len(first) < 2:
        return
    earliest = min(first.values())
    for comp, t in first.items():
        signals[comp]["onset_order"] = math.exp(-(t - earliest) / 300)


def _frontier(
    items: list[EvidenceItem],
    graph: list[tuple[str, str]],
    observed: set[tuple[str, str]],
    signals: dict[str, dict[str, float]],
) -> tuple[set[str], set[tuple[str, str]]]:
    """Failures travel up the call graph, from callee to callers: among the components that
    hurt, the one whose own calls still succeed is where it starts. Returns the hurting
    components whose calls to another hurting one fail, and the failing calls."""
    harm: dict[str, float] = {}
    failing: set[tuple[str, str]] = set()
    slowed: dict[str, float] = defaultdict(float)
    for item in items:
        if item.kind == "edge_shift" and item.score >= HARM:
            failing.update((caller, item.subject) for caller in item.related)
            slowed[item.subject] = max(slowed[item.subject], item.score)
        # One caller's failing calls may be that caller's own doing (its client, its
        # credentials); the callee's own metrics, or several callers, speak for the callee.
        if item.score >= HARM and (
            item.kind == "metric_shift" or (item.kind == "edge_shift" and len(item.related) > 1)
        ):
            harm[item.subject] = max(harm.get(item.subject, 0.0), item.score)
    callees: dict[str, set[str]] = defaultdict(set)
    callers: dict[str, set[str]] = defaultdict(set)
    for caller, callee in graph:
        # Where calls are measured, only failing calls carry the damage upstream.
        if (caller, callee) not in observed or (caller, callee) in failing:
            callees[caller].add(callee)
            callers[callee].add(caller)
    own = {i.subject for i in items if i.kind == "metric_shift" and i.score >= HARM}
    for comp, score in slowed.items():
        every = {a for a, b in graph if b == comp}
        if comp not in own and len(every) > 1 and all((a, comp) in failing for a in every):
            # Every caller waits on it, however different their own code, while its own
            # metrics are calm (its link, not its code): the common end of the slow calls is
            # the one to look at, not the callers that merely wait.
            signals[comp]["callers_slowed"] = score
    upstream = set()
    for comp, score in harm.items():
        if callees[comp] & harm.keys():
            upstream.add(comp)
        elif callers[comp] & harm.keys():
            signals[comp]["frontier"] = score
    return upstream, failing


def _blame(
    items: list[EvidenceItem],
    signals: dict[str, dict[str, float]],
    support: dict[str, list[EvidenceItem]],
) -> dict[str, set[str]]:
    """Errors in one component that name another (``dial tcp db:5432``) point at that one.
    Returns who names whom."""
    blames: dict[str, set[str]] = defaultdict(set)
    names = sorted(signals, key=len, reverse=True)
    # Database users and env names spell a workload with underscores (warehouse_api).
    patterns = {n: re.compile(_name_pattern(n)) for n in names if len(n) > 2}
    for item in items:
        if item.kind not in ("log_pattern", "k8s_event", "node_condition"):
            continue
        text = f"{item.summary} {item.detail}"
        for name, rx in patterns.items():
            if name != item.subject and rx.search(text):
                s = signals[name]
                s["blamed"] = max(s.get("blamed", 0.0), item.score)
                support[name].append(item)
                blames[item.subject].add(name)
    return blames


def _name_pattern(name: str) -> str:
    # Database users and env names spell a workload with underscores (warehouse_api).
    body = "[-_]".join(re.escape(part) for part in name.split("-"))
    return rf"(?<![\w-]){body}(?![\w-])"


# Hints that say something broke without saying how; a specific one on the same component wins,
# and among specific ones the mechanism (DNS, OOM, a probe) wins over the trigger (a config).
_GENERIC = ("bad_rollout", "crash_loop", "dependency_failure")
_OUTAGE = ("crash_loop", "unknown")
_TRIGGERS = ("config_change", "secret_change")
# Kinds that say why another happened: a quota or a volume is why pods could not be placed.
_NARROWER = {"quota": "scheduling", "storage": "scheduling"}


def _kind(best: list[EvidenceItem]) -> FaultKind:
    """The fault kind its evidence names: the mechanism (OOM, probe, certificate...) rather
    than the bare fact that a rollout happened or a pod crashed."""
    votes: dict[str, float] = defaultdict(float)
    for item in best:
        if item.fault_hint is not None and item.fault_hint in _KINDS:
            votes[item.fault_hint] = max(votes[item.fault_hint], item.score)
    for narrow, broad in _NARROWER.items():
        if narrow in votes:
            votes.pop(broad, None)
    specific = {k: v for k, v in votes.items() if k not in _GENERIC}
    mechanism = {k: v for k, v in specific.items() if k not in _TRIGGERS}
    if mechanism or specific:
        votes = mechanism or specific
    if not mechanism and "secret_change" in votes:
        return "secret_change"  # a Secret is the narrower kind of configuration
    elif "bad_rollout" in votes:
        return "bad_rollout"  # a crash loop right after a rollout is the rollout's
    if not votes:
        return "unknown"
    return cast(FaultKind, max(sorted(votes), key=lambda k: votes[k]))
