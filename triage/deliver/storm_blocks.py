"""Block Kit for a storm update when the draft a parent's first message shows is not at hand:
the cause as kept with the delivery reference, and the attached groups as they stand."""

from __future__ import annotations

from triage.deliver.draft_text import storm_lines
from triage.deliver.slack_blocks import (
    Block,
    ParentInfo,
    PartOf,
    context,
    esc,
    feedback_actions,
    header,
    headline,
    section,
    sections,
)
from triage.models import DeliveryRequest


def storm_parent_blocks(
    info: ParentInfo | None, request: DeliveryRequest, part_of: PartOf | None = None
) -> list[Block]:
    head: list[Block] = [header(headline(request))]
    if part_of is not None:
        head.append(context(part_of.line()))
    body: list[Block] = []
    if info is not None:
        conf = f" ({info.confidence:.0%} confidence)" if info.confidence is not None else ""
        body.append(section(f"*Probable cause*{conf}\n{esc(info.cause)}"))
    storm = storm_lines(request, limit=10)
    if storm:
        body += sections(f"*{esc(storm[0])}*", [esc(line.strip()) for line in storm[1:]])
    tail: list[Block] = []
    if info is not None:
        tail.append(feedback_actions(info.incident_id, info.revision, info.analyzer))
    tail.append(
        context(
            "*draft for review* · the investigation and its evidence are in the thread · "
            f"incident `{esc(request.incident_id)}`"
        )
    )
    return head + body + tail  # ten groups listed at most: far below Slack's 50 blocks
