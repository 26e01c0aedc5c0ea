"""The draft as plain text (console, `triage investigate`): the cause and how sure, what it rests
on first, what was ruled out apart, then what to do and where to look."""

from __future__ import annotations

from triage.deliver.routing import RouteDecision
from triage.incidents.correlation import summary
from triage.models import CONFIDENT, RCA, CollectorReport, DeliveryRequest, EvidenceDigest


def confidence_word(confidence: float) -> str:
    if confidence >= 0.7:
        return "high"
    if confidence >= CONFIDENT:
        return "medium"
    if confidence >= 0.2:
        return "low"
    return "none"


def cause_line(rca: RCA) -> str:
    """The headline: the cause and how sure, or plainly that there is no confident cause."""
    cause = rca.root_cause
    kind = cause.kind.replace("_", " ")
    sure = f"confidence {rca.confidence:.2f}, {confidence_word(rca.confidence)}"
    if cause.component == "unknown":
        return f"No confident cause ({sure})"
    if rca.confidence < CONFIDENT:
        return f"No confident cause; leading suspect {cause.component} ({kind}; {sure})"
    return f"Probable cause: {cause.component} ({kind}; {sure})"


def _evidence_lines(items: list[EvidenceDigest]) -> list[str]:
    lines = []
    for e in items:
        lines.append(f"  - [{e.id}] {e.summary}")
        if e.detail and e.detail != e.summary:
            lines.append(f"      {e.detail}")
    return lines


def render_text(request: DeliveryRequest, route: RouteDecision) -> str:
    head = f"[{request.severity}] {request.title}  -> {', '.join(route.channels)} ({route.team})"
    if request.kind == "resolve":
        return f"RESOLVED {head}\nincident {request.incident_id} episode {request.episode}\n"
    if request.kind == "storm_update":
        lines = storm_lines(request) or ["No attached groups"]
        return f"STORM {head}\nincident {request.incident_id}\n" + "\n".join(lines) + "\n"
    rca = request.rca
    if rca is None:
        return f"DRAFT {head}\n(no analysis)\n"
    cause = rca.root_cause
    lines = [
        f"DRAFT for review  {head}",
        f"incident {request.incident_id} revision {request.revision}"
        + (f" ({request.reason})" if request.reason else ""),
        "",
        cause_line(rca),
        f"  {rca.summary}",
    ]
    if cause.change:
        lines.append(f"  Change: {cause.change}")
    shown = {
        rca.summary,
        *(e.detail for e in request.evidence),
        *(e.summary for e in request.evidence),
    }
    if cause.description and cause.description not in shown:
        lines.append(f"  {cause.description}")
    lines.append(f"Impact: {rca.impact}")
    lines += storm_lines(request)
    by_role = {
        role: [e for e in request.evidence if e.role == role]
        for role in ("cause", "context", "ruled_out")
    }
    if by_role["cause"]:
        lines += ["Evidence the cause rests on:", *_evidence_lines(by_role["cause"])]
    if by_role["context"]:
        lines += ["Also seen:", *_evidence_lines(by_role["context"][:5])]
    if by_role["ruled_out"]:
        lines += ["Ruled out (looked, found normal):", *_evidence_lines(by_role["ruled_out"][:5])]
    if rca.next_steps:
        lines += ["Next steps:", *(f"  - {s}" for s in rca.next_steps)]
    if rca.open_questions:
        lines += ["Open questions:", *(f"  - {q}" for q in rca.open_questions)]
    if request.links:
        label = {"graph": "Graph", "runbook": "Runbook"}
        lines += [
            "Links:",
            *(f"  - {label[ln.kind]} ({ln.title}): {ln.url}" for ln in request.links),
        ]
    found = "; ".join(_collector(c) for c in request.collectors)
    lines.append("Collectors: " + (found or "none configured"))
    lines.append(rca.label + (f" (model {rca.model})" if rca.model else ""))
    return "\n".join(lines) + "\n"


# Attached groups listed by name in a draft, at most; the rest are counted.
LISTED_GROUPS = 20


def storm_lines(request: DeliveryRequest, limit: int = LISTED_GROUPS) -> list[str]:
    """The parent's attached groups ("+37 alert groups in 9 services"), each with why it was
    attached, and the groups detached since, with why."""
    lines = []
    if request.attached:
        lines.append(f"Attached: {summary(request.attached)}, one cause")
        for child_id, c in sorted(request.attached.items(), key=lambda kv: (kv[1].at, kv[0]))[
            :limit
        ]:
            state = "" if c.status == "firing" else f" [{c.status}]"
            lines.append(f"  - {c.title}{state} ({child_id}, {c.alerts} alerts): {c.reason}")
        if len(request.attached) > limit:
            lines.append(f"  - and {len(request.attached) - limit} more")
    if request.notes:
        lines += ["Detached:", *(f"  - {n}" for n in request.notes[-limit:])]
    return lines


def _collector(c: CollectorReport) -> str:
    why = f": {c.error}" if c.error and c.status != "ok" else ""
    return f"{c.collector} {c.status}{why}"
