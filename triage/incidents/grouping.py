"""Grouping and state: one Alertmanager group is one incident, kept in the KV bucket.

State is changed first (compare-and-set), then whatever the state says is owed is published
with an id derived from the state. A crash between the two is healed by the redelivery, and
JetStream's de-duplication keeps the second publish from doing anything twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from triage.bus.jetstream import Bus
from triage.bus.limits import VALUE_CHARS, bound_values, truncate
from triage.incidents.correlation import INDEX_KEY, Index, without
from triage.models import (
    AlertmanagerWebhook,
    AlertNotification,
    AlertSnapshot,
    DeliveryRequest,
    IncidentState,
    InvestigationRequest,
    incident_id_for,
    utcnow,
)
from triage.settings import IncidentSettings

log = structlog.get_logger(__name__)


# Links are kept whole up to here (a generatorURL carries its PromQL).
URL_CHARS = 8192


def snapshot(webhook: AlertmanagerWebhook) -> dict[str, AlertSnapshot]:
    """The alerts as the incident keeps them: long label and annotation values truncated
    (saying so), so that the state stays far below the broker's max_payload."""
    return {
        truncate(a.fingerprint, 64): AlertSnapshot(
            status=a.status,
            labels=bound_values(a.labels),
            annotations=bound_values(a.annotations),
            starts_at=a.startsAt,
            ends_at=a.ends() if a.status == "resolved" else None,
            generator_url=truncate(a.generatorURL, URL_CHARS),
        )
        for a in webhook.alerts
    }


def apply_notification(
    state: IncidentState | None, webhook: AlertmanagerWebhook, now: datetime, debounce_s: float
) -> IncidentState | None:
    """The incident after this notification, or None when nothing changes."""
    alerts = snapshot(webhook)
    if state is None:
        firing = webhook.status == "firing"
        return IncidentState(
            incident_id=incident_id_for(webhook.groupKey),
            group_key=truncate(webhook.groupKey, VALUE_CHARS),
            status=webhook.status,
            first_seen=now,
            updated_at=now,
            group_labels=bound_values(webhook.groupLabels),
            common_labels=bound_values(webhook.commonLabels),
            common_annotations=bound_values(webhook.commonAnnotations),
            external_url=truncate(webhook.externalURL, URL_CHARS),
            alerts=alerts,
            requested_revision=1 if firing else 0,
            investigate_after=now if firing else None,
            resolved_at=None if firing else now,
        )

    new = state.model_copy(deep=True)
    was_firing = set(state.firing())
    new.alerts.update(alerts)
    new.common_labels = bound_values(webhook.commonLabels) or new.common_labels
    new.common_annotations = bound_values(webhook.commonAnnotations) or new.common_annotations
    newly_firing = {fp for fp, a in alerts.items() if a.status == "firing"} - was_firing

    if webhook.status == "firing":
        if state.status == "resolved":
            new.status = "firing"
            new.episode += 1
            new.resolved_at = None
            new.requested_revision += 1
            new.investigate_after = now
        elif newly_firing and not _pending_unclaimed(state):
            # New alerts joined: one re-investigation once the group has settled.
            new.requested_revision += 1
            new.investigate_after = now + timedelta(seconds=debounce_s)
        elif newly_firing and state.follow_up_revision == state.requested_revision:
            # The pending follow-up becomes this re-investigation: not minutes later, and its
            # draft is always delivered.
            settled = now + timedelta(seconds=debounce_s)
            new.investigate_after = min(state.investigate_after or settled, settled)
            new.follow_up_revision = 0
    elif state.status == "firing":
        new.status = "resolved"
        new.resolved_at = now

    if new.model_dump(exclude={"updated_at"}) == state.model_dump(exclude={"updated_at"}):
        return None
    new.updated_at = now
    return new


def _pending_unclaimed(state: IncidentState) -> bool:
    pending = state.requested_revision > state.investigated_revision
    claimed = state.claim is not None and state.claim.revision == state.requested_revision
    return pending and not claimed


class IncidentStage:
    def __init__(self, bus: Bus, settings: IncidentSettings) -> None:
        self._bus = bus
        self._settings = settings

    async def handle(self, note: AlertNotification) -> IncidentState | None:
        webhook = note.webhook
        incident_id = incident_id_for(webhook.groupKey)
        structlog.contextvars.bind_contextvars(incident_id=incident_id)
        now = utcnow()
        state = await self._bus.mutate_incident(
            incident_id,
            lambda s: apply_notification(s, webhook, now, self._settings.debounce_s),
        )
        if state is not None:
            await self.publish_owed(state)
        return state

    async def publish_owed(self, state: IncidentState) -> None:
        subjects = self._bus.subjects
        rev = state.requested_revision
        if state.status == "firing" and rev > state.investigated_revision:
            request = InvestigationRequest(
                incident_id=state.incident_id,
                revision=rev,
                not_before=state.investigate_after or state.updated_at,
                reason="new incident"
                if rev == 1
                else "follow-up"
                if rev == state.follow_up_revision
                else "incident changed",
            )
            # Ids differ by subject: a follow-up turned into a prompt re-investigation is
            # published again, and must not be dropped as a duplicate of the waiting one.
            subject, kind = (
                (subjects.follow_up, "followup")
                if request.reason == "follow-up"
                else (subjects.investigate, "investigate")
            )
            await self._bus.publish_model(subject, request, f"{state.incident_id}.{kind}.{rev}")
            after = request.not_before.isoformat()
            log.info("investigation_requested", revision=rev, not_before=after)
        if state.parent_id is not None:
            await self._tell_parent(state)
        resolved_sent = any(
            d.kind == "resolve" and d.revision == state.episode for d in state.deliveries
        )
        # An attached group is resolved in its parent's thread; a parent once all its are.
        settled = state.parent_id is None and all(
            c.status == "resolved" for c in state.children.values()
        )
        if (
            state.status == "resolved"
            and state.investigated_revision > 0
            and settled
            and not resolved_sent
        ):
            await self._bus.mutate_model(
                INDEX_KEY,
                Index,
                lambda index: without(index, state.incident_id) if index is not None else None,
            )
            request_ = DeliveryRequest(
                kind="resolve",
                incident_id=state.incident_id,
                revision=state.episode,
                episode=state.episode,
                title=title_of(state),
                labels=state.common_labels,
                severity=state.severity(),
                created_at=utcnow(),
            )
            await self._bus.publish_delivery(
                request_, f"{state.incident_id}.resolve.{state.episode}"
            )
            log.info("resolve_requested", episode=state.episode)

    async def _tell_parent(self, child: IncidentState) -> None:
        """The parent's record of an attached group follows its status; a parent whose groups
        have all resolved (itself too) then owes its resolve."""
        if child.parent_id is None:
            return

        def sync(p: IncidentState | None) -> IncidentState | None:
            ref = p.children.get(child.incident_id) if p is not None else None
            if p is None or ref is None:
                return None
            if (ref.status, ref.alerts) == (child.status, len(child.alerts)):
                return None
            ref.status, ref.alerts = child.status, len(child.alerts)
            p.updated_at = utcnow()
            return p

        before, _ = await self._bus.get_incident(child.parent_id)
        parent = await self._bus.mutate_incident(child.parent_id, sync)
        if parent is not None and parent != before and parent.parent_id is None:
            await self.publish_owed(parent)


def title_of(state: IncidentState) -> str:
    labels = state.common_labels or state.group_labels
    name = labels.get("alertname", "alert")
    where = labels.get("service") or labels.get("deployment") or labels.get("namespace", "")
    return f"{name} on {where}" if where else name
