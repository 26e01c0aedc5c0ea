"""Analysis: evidence in, structured RCA out. The heuristic analyzer needs nothing but the
evidence; it is the default and the fallback when no LLM gateway answers."""

from __future__ import annotations

from typing import Protocol, cast, get_args

from collectors.contracts import Evidence, EvidenceItem
from collectors.identity import identify_incident
from triage.analyse.next_steps import DEFAULT_STEPS, NEXT_STEPS
from triage.investigate.ranking import rank
from triage.models import CONFIDENT, RCA, FaultKind, IncidentState, RootCause, Suspect, utcnow

HEURISTIC_LABEL = "Deterministic draft (heuristic analyzer), for review"
KINDS: tuple[str, ...] = get_args(FaultKind)

# Evidence kinds that name a fault kind on their own when no hint is given.
_KIND_BY_EVIDENCE: dict[str, str] = {
    "rollout": "bad_rollout",
    "config_change": "config_change",
    "oom_killed": "resource_exhaustion",
    "crash_loop": "crash_loop",
    "node_condition": "node_failure",
}


class Analyzer(Protocol):
    name: str

    async def analyze(self, incident: IncidentState, evidence: list[Evidence]) -> RCA: ...


def ranked_items(evidence: list[Evidence]) -> list[EvidenceItem]:
    """Most suspicious first; ties broken by id so the same evidence gives the same draft."""
    items = [i for e in evidence for i in e.items]
    return sorted(items, key=lambda i: (-i.score, i.id))


def alert_component(incident: IncidentState) -> str:
    """The workload the alerts name (collectors.identity), shared labels first when an alert
    agrees; ``unknown`` only when no label names a pod or a workload."""
    found = identify_incident(incident.common_labels, (a.labels for a in incident.alerts.values()))
    return found[0].name if found else "unknown"


class HeuristicAnalyzer:
    name = "heuristic"

    def __init__(self, call_graph: list[tuple[str, str]] | None = None) -> None:
        self._call_graph = call_graph

    async def analyze(self, incident: IncidentState, evidence: list[Evidence]) -> RCA:
        items = ranked_items(evidence)
        usable = [e for e in evidence if e.status == "ok"]
        coverage = len(usable) / len(evidence) if evidence else 0.0
        impact = _impact(incident)
        if not items:
            return self._insufficient(incident, evidence, impact)
        suspects = rank(incident, evidence, self._call_graph)
        by_id = {i.id: i for i in items}
        if suspects:
            lead = suspects[0]
            component = lead.component
            cited = [by_id[i] for i in lead.evidence_ids if i in by_id]
            top = cited[0] if cited else items[0]
            kind = lead.kind if lead.kind != "unknown" else _fault_kind(top)
            change = lead.change
            score = lead.score
        else:
            top = items[0]
            component = top.subject or alert_component(incident)
            kind = _fault_kind(top)
            change = top.change
            cited = [top]
            score = top.score
        # Strength of the lead, how much of the evidence could be looked at, and how clearly the
        # lead is ahead: a dead heat between two suspects is a guess, however strong both are.
        separation = _separation(suspects)
        confidence = round(min(0.9, score) * (0.5 + 0.5 * coverage) * (0.5 + 0.5 * separation), 2)
        questions = [
            f"Collector {e.collector} failed: {e.error}"
            for e in sorted(evidence, key=lambda e: e.collector)
            if e.status == "error"
        ]
        if confidence < CONFIDENT and suspects:
            questions = _to_confirm(suspects) + questions
        return RCA(
            incident_id=incident.incident_id,
            revision=incident.requested_revision,
            summary=top.summary,
            root_cause=RootCause(
                component=component,
                kind=kind,
                change=change,
                description=top.detail or top.summary,
            ),
            confidence=confidence,
            impact=impact,
            evidence_ids=[i.id for i in cited],
            next_steps=[s.format(c=component) for s in NEXT_STEPS.get(kind, DEFAULT_STEPS)],
            open_questions=questions,
            analyzer=self.name,
            label=HEURISTIC_LABEL,
            created_at=utcnow(),
            suspects=suspects,
        )

    def _insufficient(self, incident: IncidentState, evidence: list[Evidence], impact: str) -> RCA:
        """Nothing to go on: say so, and why, rather than blame the alerting service."""
        where = alert_component(incident)
        reasons = collector_reasons(evidence)
        return RCA(
            incident_id=incident.incident_id,
            revision=incident.requested_revision,
            summary=f"{INSUFFICIENT}: no collector found anything about {where}"
            if evidence
            else f"{INSUFFICIENT}: no evidence source is configured",
            root_cause=RootCause(
                component="unknown",
                kind="unknown",
                description="; ".join(reasons) or "no collectors configured",
            ),
            confidence=0.0,
            impact=impact,
            evidence_ids=[],
            next_steps=[s.format(c=where) for s in DEFAULT_STEPS],
            open_questions=[f"Collector {r}" for r in reasons if ": ok" not in r],
            analyzer=self.name,
            label=HEURISTIC_LABEL,
            created_at=utcnow(),
        )


INSUFFICIENT = "Insufficient evidence"
# The lead over the next suspect, as a share of the lead's score, that counts as clearly ahead.
CLEAR_LEAD = 0.25
LEADING = 3


def _separation(suspects: list[Suspect]) -> float:
    """0 for a dead heat with the runner-up, 1 for a lead of CLEAR_LEAD or more."""
    if len(suspects) < 2 or suspects[0].score <= 0:
        return 1.0
    lead = (suspects[0].score - suspects[1].score) / suspects[0].score
    return max(0.0, min(1.0, lead / CLEAR_LEAD))


def _to_confirm(suspects: list[Suspect]) -> list[str]:
    """No suspect clearly ahead: the leading ones, each with the check that would confirm it."""
    lines = []
    for s in suspects[:LEADING]:
        kind = s.kind if s.kind != "unknown" else ""
        check = NEXT_STEPS.get(kind, DEFAULT_STEPS)[0].format(c=s.component)
        label = (
            f"{s.component} ({kind.replace('_', ' ')}, score {s.score:.2f})"
            if kind
            else (f"{s.component} (score {s.score:.2f})")
        )
        lines.append(f"Is it {label}? To confirm: {check}")
    return lines


def collector_reasons(evidence: list[Evidence]) -> list[str]:
    """``name: status (reason)`` per collector, for a draft that must say why it knows little."""
    return [
        f"{e.collector}: {e.status}" + (f" ({e.error})" if e.error else "")
        for e in sorted(evidence, key=lambda e: e.collector)
    ]


def _fault_kind(item: EvidenceItem) -> FaultKind:
    hint = item.fault_hint if item.fault_hint in KINDS else _KIND_BY_EVIDENCE.get(item.kind)
    return cast(FaultKind, hint or "unknown")


def _impact(incident: IncidentState) -> str:
    firing = incident.firing()
    names = sorted({a.labels.get("alertname", "?") for a in firing.values()})
    return f"{len(firing)} firing alert(s): {', '.join(names) or 'none'}"
