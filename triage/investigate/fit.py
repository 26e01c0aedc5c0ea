"""Shrinking a draft to fit the broker's max_payload, each step only as far as needed."""

from __future__ import annotations

import structlog

from triage.bus.limits import truncate, truncate_strings
from triage.models import DeliveryRequest

log = structlog.get_logger(__name__)


# Shrinking a draft over the broker's max_payload, in this order, each step only as far as
# needed: evidence details and summaries, the series' points, annotations, then every text.
DETAIL_STEPS = (100, 0)
SUMMARY_STEPS = (200, 80)
POINT_STEPS = (60, 12)
ANNOTATION_STEPS = (500, 100, 0)
TEXT_STEPS = (1000, 300, 100, 40)


def draft_size(delivery: DeliveryRequest) -> int:
    return len(delivery.model_dump_json().encode())


def fit_draft(delivery: DeliveryRequest, room: int) -> DeliveryRequest:
    """``delivery`` if it fits in ``room`` bytes, else a copy shrunk until it does (or as far as
    it goes: the publish then refuses it and the request is dead-lettered with the reason).
    Every cut text ends with "… [truncated N chars]"."""
    size = draft_size(delivery)
    if size <= room:
        return delivery
    draft = delivery.model_copy(deep=True)
    done: list[str] = []

    def shrunk(step: str) -> bool:
        done.append(step)
        return draft_size(draft) <= room

    def result() -> DeliveryRequest:
        log.warning(
            "draft_shrunk", size=size, now=draft_size(draft), max_payload_room=room, steps=done
        )
        return draft

    for limit in DETAIL_STEPS:
        for item in draft.evidence:
            item.detail = truncate(item.detail, limit)
        if shrunk(f"evidence details to {limit} chars"):
            return result()
    for limit in SUMMARY_STEPS:
        for item in draft.evidence:
            item.summary = truncate(item.summary, limit)
        if shrunk(f"evidence summaries to {limit} chars"):
            return result()
    if draft.series is not None:
        for points in POINT_STEPS:
            draft.series.points = _thin(draft.series.points, points)
            if shrunk(f"series to {points} points"):
                return result()
    for limit in ANNOTATION_STEPS:
        draft.annotations = {k: truncate(v, limit) for k, v in draft.annotations.items()}
        if shrunk(f"annotations to {limit} chars"):
            return result()
    for limit in TEXT_STEPS:
        data = truncate_strings(draft.model_dump(mode="json"), limit)
        # Ids and times keep their form; everything else is text that can be cut.
        data.update(
            {k: getattr(delivery, k) for k in ("kind", "incident_id", "created_at", "severity")}
        )
        draft = DeliveryRequest.model_validate(data)
        if shrunk(f"every text to {limit} chars"):
            return result()
    return result()


def _thin(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    if len(points) <= limit:
        return points
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)]
