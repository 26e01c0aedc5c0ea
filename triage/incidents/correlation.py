"""Correlation across alert groups, the rule: which open parent incident, if any, a group's own
cheap investigation (collectors and ranking, no LLM) says it belongs to, and why.

Deterministic and explained: the same leads give the same decision, and every attachment
carries the rule that held. Precision first: a group whose own leading suspect is confident and
different from a parent's is never attached to it, so two independent faults at one moment stay
two incidents.

Rules, tried against every open parent first seen within the window, oldest first:

1. same cause: both leading suspects are confident and name the same component (a node, a
   workload, a dependency) or the same change;
2. shared path: the group has no confident suspect of its own and the parent's confident cause
   lies on its path (among its suspects, its alerting workloads, or the node its alerts name).

A rule-1 match wins over a rule-2 match; among equals, the oldest parent (then the lowest id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from triage.bus.limits import VALUE_CHARS, bound_values, truncate
from triage.investigate.ranking import alerting_components
from triage.models import RCA, AlertSnapshot, ChildRef, IncidentState

# The KV key (in the incident bucket) of the open parents; every change is a compare-and-set.
INDEX_KEY = "correlation-index"
# A suspect this strong puts its component on the group's path.
PATH_SCORE = 0.2
# Alert labels naming the node a pod runs on (kube-state-metrics, Prometheus relabelling).
NODE_LABELS = ("node", "kubernetes_node", "nodename", "k8s_node_name")
# A parent's draft sees at most this many attached groups' alerts (one alert per group).
VIEW_GROUPS = 100
# Parents older than this many windows are dropped from the index, resolved or not.
KEEP_WINDOWS = 4


@dataclass(frozen=True)
class Lead:
    """What a group's own investigation says: its leading suspect and the path it lies on."""

    component: str
    kind: str
    change: str | None
    confidence: float
    path: frozenset[str]

    def confident(self, least: float) -> bool:
        return self.component not in ("", "unknown") and self.confidence >= least

    def describe(self) -> str:
        return f"{self.component} ({self.kind}, score {self.confidence:.2f})"


class OpenParent(BaseModel):
    incident_id: str
    first_seen: datetime
    component: str
    kind: str
    change: str | None = None
    confidence: float
    path: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)

    def lead(self) -> Lead:
        return Lead(self.component, self.kind, self.change, self.confidence, frozenset(self.path))


class Index(BaseModel):
    """The open parent incidents, as stored under INDEX_KEY."""

    parents: list[OpenParent] = Field(default_factory=list)


@dataclass(frozen=True)
class Placement:
    parent_id: str | None  # None: the group is a parent (of its own, so far)
    reason: str
    new: bool = True  # False: the index already said so (a redelivery)


def lead_of(state: IncidentState, rca: RCA) -> Lead:
    """The lead of a group from its cheap RCA (the heuristic's: ranking, no LLM)."""
    path = {s.component for s in rca.suspects if s.score >= PATH_SCORE}
    path |= alerting_components(state)
    for alert in state.alerts.values():
        path |= {alert.labels[k] for k in NODE_LABELS if alert.labels.get(k)}
    cause = rca.root_cause
    # The ranking's own strength of the lead: what the draft's confidence is made of before the
    # collectors' coverage weighs in, and that is alike for every group of one storm.
    score = next((s.score for s in rca.suspects if s.component == cause.component), None)
    return Lead(
        component=cause.component,
        kind=cause.kind,
        change=cause.change,
        confidence=score if score is not None else rca.confidence,
        path=frozenset(p for p in path if p),
    )


def same_cause(parent: Lead, lead: Lead, least: float) -> str | None:
    """Rule 1, or None."""
    if not (parent.confident(least) and lead.confident(least)):
        return None
    if parent.component.lower() == lead.component.lower():
        return f"same leading suspect: {lead.describe()}"
    if parent.change and parent.change == lead.change:
        return f"same change: {lead.change} ({lead.kind}, score {lead.confidence:.2f})"
    return None


def shared_path(parent: Lead, lead: Lead, least: float) -> str | None:
    """Rule 2, or None."""
    if lead.confident(least) or not parent.confident(least):
        return None
    if parent.component in lead.path:
        own = "no suspect" if lead.component in ("", "unknown") else lead.describe()
        return (
            f"shared path: {parent.component}, the parent's cause, is on this group's path "
            f"(its own lead: {own})"
        )
    return None


def match(parent: Lead, lead: Lead, least: float) -> tuple[int, str] | None:
    """(rule, reason) when ``lead`` belongs to ``parent``'s incident, else None."""
    reason = same_cause(parent, lead, least)
    if reason is not None:
        return 1, reason
    reason = shared_path(parent, lead, least)
    return (2, reason) if reason is not None else None


def place(
    index: Index,
    incident_id: str,
    first_seen: datetime,
    lead: Lead,
    *,
    window_s: float,
    least: float,
) -> tuple[Index | None, Placement]:
    """Where a group goes: (the index to store, or None if unchanged; the placement)."""
    for p in index.parents:
        if p.incident_id == incident_id:
            return None, Placement(None, "already a parent", new=False)
        if incident_id in p.children:
            return None, Placement(p.incident_id, "already attached", new=False)
    new = index.model_copy(deep=True)
    horizon = first_seen - timedelta(seconds=window_s * KEEP_WINDOWS)
    new.parents = [p for p in new.parents if p.first_seen >= horizon]
    earliest = first_seen - timedelta(seconds=window_s)
    found = sorted(
        (hit[0], p.first_seen, p.incident_id, hit[1], p)
        for p in new.parents
        if p.first_seen >= earliest and (hit := match(p.lead(), lead, least)) is not None
    )
    if found:
        _, _, parent_id, reason, parent = found[0]
        parent.children.append(incident_id)
        return new, Placement(parent_id, reason)
    new.parents.append(
        OpenParent(
            incident_id=incident_id,
            first_seen=first_seen,
            component=lead.component,
            kind=lead.kind,
            change=lead.change,
            confidence=lead.confidence,
            path=sorted(lead.path)[:50],
        )
    )
    why = (
        f"no open parent shares its cause; its lead: {lead.describe()}"
        if index.parents
        else "the first group"
    )
    return new, Placement(None, why)


def detach_reason(parent: OpenParent, lead: Lead, least: float) -> str | None:
    """Why an attached group now has its own cause (its own confident, different lead)."""
    if not lead.confident(least) or match(parent.lead(), lead, least) is not None:
        return None
    return f"its own investigation names {lead.describe()}, not {parent.lead().describe()}"


def without(index: Index, incident_id: str) -> Index | None:
    """The index with ``incident_id`` neither a parent nor a child, or None if unchanged."""
    new = index.model_copy(deep=True)
    new.parents = [p for p in new.parents if p.incident_id != incident_id]
    for p in new.parents:
        p.children = [c for c in p.children if c != incident_id]
    return None if new == index else new


def child_ref(state: IncidentState, reason: str, title: str) -> ChildRef:
    return ChildRef(
        title=truncate(title, VALUE_CHARS),
        labels=bound_values(state.common_labels or state.group_labels),
        services=sorted(alerting_components(state))[:20],
        alerts=len(state.alerts),
        status=state.status,
        reason=truncate(reason, 500),
        at=state.onset(),
    )


def with_children(state: IncidentState) -> IncidentState:
    """A parent as its investigation sees it: its own alerts and one of every attached group
    (its common labels, from its onset), so that the analysis sees the whole storm."""
    if not state.children:
        return state
    view = state.model_copy(deep=True)
    for child_id in sorted(state.children)[:VIEW_GROUPS]:
        child = state.children[child_id]
        view.alerts[f"attached:{child_id}"] = AlertSnapshot(
            status=child.status,
            labels=child.labels,
            annotations={"attached": child.reason},
            starts_at=child.at,
        )
    return view


def summary(children: dict[str, ChildRef]) -> str:
    """ "+37 alert groups in 9 services": what a parent's message says of its attached groups."""
    if not children:
        return ""
    services = {s for c in children.values() for s in c.services}
    groups = "alert group" if len(children) == 1 else "alert groups"
    where = f" in {len(services)} service{'s' if len(services) != 1 else ''}" if services else ""
    return f"+{len(children)} {groups}{where}"
