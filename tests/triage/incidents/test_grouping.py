"""Grouping rules: what a resend, a new alert, a resolve and a re-fire do to an incident."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from triage_lab.fakes.nats import NatsServer

from tests.support.payloads import alert, webhook
from triage.bus.jetstream import Bus
from triage.incidents.grouping import apply_notification
from triage.models import AlertmanagerWebhook, IncidentState
from triage.settings import NatsSettings
from triage.telemetry import Metrics

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def hook(*alerts: dict, status: str | None = None) -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate(webhook(list(alerts), status=status))


def first(*alerts: dict) -> IncidentState:
    state = apply_notification(None, hook(*alerts), NOW, 30)
    assert state is not None
    return state


def test_new_group_is_one_incident_investigated_at_once():
    state = first(alert("A", service="a"), alert("A", service="b"))
    assert state.status == "firing"
    assert len(state.alerts) == 2
    assert state.requested_revision == 1 and state.investigate_after == NOW


def test_resend_of_the_same_group_changes_nothing():
    a = alert("A")
    state = first(a)
    assert apply_notification(state, hook(a), NOW + timedelta(minutes=5), 30) is None


def test_new_alert_joining_triggers_one_debounced_reinvestigation():
    a, b, c = alert("A", service="a"), alert("A", service="b"), alert("A", service="c")
    state = first(a)
    state.investigated_revision = 1
    grown = apply_notification(state, hook(a, b), NOW, 30)
    assert grown is not None and grown.requested_revision == 2
    assert grown.investigate_after == NOW + timedelta(seconds=30)
    # Another alert while revision 2 is still waiting: folded into it, not a third run.
    again = apply_notification(grown, hook(a, b, c), NOW + timedelta(seconds=5), 30)
    assert again is not None and again.requested_revision == 2 and len(again.alerts) == 3


def test_resolve_then_refire_opens_a_new_episode():
    a = alert("A")
    state = first(a)
    state.investigated_revision = 1
    resolved_alert = {**a, "status": "resolved", "endsAt": NOW.isoformat()}
    resolved = apply_notification(state, hook(resolved_alert), NOW, 30)
    assert resolved is not None and resolved.status == "resolved" and resolved.resolved_at == NOW
    assert resolved.requested_revision == 1
    refired = apply_notification(resolved, hook(a), NOW + timedelta(hours=1), 30)
    assert refired is not None
    assert refired.status == "firing" and refired.episode == 2
    assert refired.requested_revision == 2


def test_partial_resolve_keeps_the_incident_firing():
    a, b = alert("A", service="a"), alert("A", service="b")
    state = first(a, b)
    b_resolved = {**b, "status": "resolved", "endsAt": NOW.isoformat()}
    partial = apply_notification(state, hook(a, b_resolved), NOW, 30)
    assert partial is not None and partial.status == "firing"
    assert len(partial.firing()) == 1


async def test_compare_and_set_loses_no_concurrent_update(nats_server: NatsServer):
    bus = Bus(NatsSettings(), nats_server.url, Metrics())
    await bus.connect()
    try:
        await bus.declare()
        base = first(alert("A"))

        def bump(state: IncidentState | None) -> IncidentState:
            state = state or base.model_copy(deep=True)
            state.requested_revision += 1
            return state

        await asyncio.gather(*(bus.mutate_incident(base.incident_id, bump) for _ in range(20)))
        stored, _ = await bus.get_incident(base.incident_id)
        assert stored is not None and stored.requested_revision == base.requested_revision + 20
    finally:
        await bus.close()


def test_onset_is_set_by_the_most_severe_alerts_not_an_old_minor_one():
    old_minor = alert(
        "DiskAlmostFull", started=NOW - timedelta(hours=3), extra_labels={"severity": "warning"}
    )
    fresh = alert("HighErrorRate", started=NOW - timedelta(minutes=4))
    state = first(old_minor, fresh)
    assert state.onset() == NOW - timedelta(minutes=4)
    only_minor = first(old_minor)
    assert only_minor.onset() == NOW - timedelta(hours=3)


def test_alerts_joining_during_a_pending_follow_up_are_looked_at_without_waiting_for_it():
    state = first(alert("A", service="a"))
    # Investigated; a follow-up is scheduled five minutes out (as the investigation stage does).
    state.investigated_revision = 1
    state.requested_revision = state.follow_up_revision = 2
    state.follow_up_episode = 1
    state.investigate_after = NOW + timedelta(minutes=5)
    later = NOW + timedelta(seconds=40)
    grown = apply_notification(
        state, hook(alert("A", service="a"), alert("A", service="b")), later, 30
    )
    assert grown is not None
    # The same pending revision, due once the group settles, and no longer a silent follow-up.
    assert grown.requested_revision == 2
    assert grown.investigate_after == later + timedelta(seconds=30)
    assert grown.follow_up_revision == 0


def test_a_group_of_mixed_severities_is_as_severe_as_its_worst_alert():
    # group_by [alertname, namespace] groups a warning and a critical: the shared labels then
    # carry no severity, and the draft must still be critical (and page).
    state = first(
        alert("A", service="a", extra_labels={"severity": "warning"}),
        alert("A", service="b", extra_labels={"severity": "critical"}),
    )
    assert "severity" not in state.common_labels
    assert state.severity() == "critical"
    from triage.investigate.investigation import draft_request
    from triage.models import RCA, RootCause

    rca = RCA(
        incident_id=state.incident_id,
        revision=1,
        summary="s",
        root_cause=RootCause(component="b", kind="unknown", description="d"),
        confidence=0.5,
        impact="i",
        evidence_ids=[],
        next_steps=[],
        analyzer="heuristic",
        label="l",
        created_at=NOW,
    )
    assert draft_request(state, 1, rca, [], "new incident").severity == "critical"
    info = first(alert("B", extra_labels={"severity": "info"}))
    assert info.severity() == "info"


def test_times_without_a_zone_are_utc_and_alertmanagers_zero_end_is_no_end():
    naive = alert("A")
    naive["startsAt"] = "2026-11-23T11:55:00"
    day = alert("B")
    day["startsAt"] = "2026-11-23"
    state = first(naive, day)
    starts = sorted(a.starts_at for a in state.alerts.values())
    assert starts == [
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 23, 11, 55, tzinfo=UTC),
    ]
    # Comparable with aware times (a TypeError in the investigation, before).
    assert state.onset() < NOW
    assert all(a.ends_at is None for a in state.alerts.values())
