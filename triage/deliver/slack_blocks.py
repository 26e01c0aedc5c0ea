"""Block Kit for drafts and resolves.

Every string that did not come from us (labels, annotations, evidence, logs, LLM text) goes
through ``esc`` so no mention, link or broadcast can be formed from it: the only mentions in a
message are the routing file's user groups. Slack's limits (50 blocks, 3,000 characters a
section, 150 a header) are kept by truncation that says so.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel

from triage.deliver.draft_text import storm_lines
from triage.deliver.routing import RouteDecision
from triage.incidents.correlation import summary
from triage.models import CONFIDENT, RCA, DeliveryRequest, EvidenceDigest, Link

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_CONTEXT = 2000
MAX_FALLBACK = 3000
MAX_URL = 1500
FEEDBACK_BLOCK = "triage_feedback"
ACTION_CORRECT = "triage_cause_correct"
ACTION_WRONG = "triage_cause_wrong"
SEVERITY_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


# Formatting marks that could open or close bold, italics or strikethrough: at a word's edge
# (Slack formats ``*bold*``, not ``2*3`` or ``http_requests_total``), and every backtick.
_MARKUP = re.compile(
    r"(?<![^\W_])[*_~](?=\S)"  # opens: after a non-letter, before text
    r"|(?<=\S)[*_~](?![^\W_])"  # closes: after text, before a non-letter
    r"|`"
)
# Slack has no escape for these; look-alikes (as jsx-slack uses) read the same and never format.
_LOOKALIKE = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}


def esc(text: str, *, markup: bool = True) -> str:
    """Untrusted text for mrkdwn: Slack's three control characters escaped, the bare
    broadcast words broken with a zero-width space in case a client links them anyway, and
    (``markup``) the ``*``, ``_``, ``~`` and backticks that would format replaced by look-alikes
    (U+2217, U+02CD, U+223C, U+02CB), so alert text shows as written. Our own formatting is
    added around it."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if markup:
        text = _MARKUP.sub(lambda m: _LOOKALIKE[m.group()], text)
    return _BROADCAST.sub(lambda m: "@\u200b" + m.group(1), text)


def _units(text: str) -> int:
    # Slack counts UTF-16 code units: an emoji is two.
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut text ends by saying so and never splits an entity."""
    if _units(text) <= limit:
        return text
    note = " … (truncated)"
    head = text[: max(limit - len(note), 0)]
    while head and _units(head) + len(note) > limit:
        head = head[: -max(1, (_units(head) + len(note) - limit) // 2)]
    return _PARTIAL_ENTITY.sub("", head) + note


def link(url: str, label: str) -> str | None:
    """``<url|label>`` for http(s) URLs only; the URL cannot close the link early."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[oops": not a URL, no link
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL:
        return None
    safe = quote(url, safe="/:?=&%#;,+@!$'()*~.-_[]")
    safe = safe.replace("&", "&amp;")
    return f"<{safe}|{esc(label)}>"


def mrkdwn(text: str) -> Block:
    # verbatim: Slack must not link names or URLs found in the text on its own.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(clip(text, MAX_SECTION))}


def sections(title: str, lines: list[str]) -> list[Block]:
    """Lines packed into sections of at most 3,000 characters, never splitting a line."""
    out: list[Block] = []
    current = title
    for line in lines:
        line = clip(line, MAX_SECTION - len(title) - 1)
        if _units(current) + 1 + _units(line) > MAX_SECTION:
            out.append(section(current))
            current = line
        else:
            current = f"{current}\n{line}"
    out.append(section(current))
    return out


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(clip(text, MAX_CONTEXT))]}


def header(text: str) -> Block:
    # plain_text forms no mentions and no formatting, but escaping costs nothing and keeps one
    # rule for all text; its marks are left as they are.
    text = clip(esc(text, markup=False), MAX_HEADER)
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def service_of(request: DeliveryRequest) -> str:
    labels = request.labels
    for key in ("service", "deployment", "statefulset", "job", "namespace"):
        if labels.get(key):
            return labels[key]
    return "unknown service"


def headline(request: DeliveryRequest, prefix: str = "") -> str:
    sev = request.severity.upper()
    storm = f" ({summary(request.attached)})" if request.attached else ""
    return f"{prefix}{sev} · {service_of(request)}: {request.title}{storm}"


class ParentInfo(BaseModel):
    """What the parent message said, kept with the delivery reference so it can be redrawn
    as resolved without the draft at hand."""

    severity: str
    headline: str
    cause: str
    confidence: float | None
    incident_id: str
    revision: int
    analyzer: str

    @classmethod
    def of(cls, request: DeliveryRequest) -> ParentInfo:
        rca = request.rca
        return cls(
            severity=request.severity,
            headline=headline(request)[:300],
            cause=(_cause(rca) if rca else "no analysis")[:500],
            confidence=rca.confidence if rca else None,
            incident_id=request.incident_id,
            revision=request.revision,
            analyzer=rca.analyzer if rca else "none",
        )


def _cause(rca: RCA) -> str:
    """What the resolved parent keeps of the cause: who, what kind, and the decisive fact."""
    c = rca.root_cause
    if c.component == "unknown":
        return rca.summary
    return f"{c.component} ({c.kind.replace('_', ' ')}): {rca.summary}"


class PartOf(BaseModel):
    """Where the parent's thread is, for the thread of an attached group's team in its own
    channel: its channel as routed (and as Slack named it) and its permalink, when Slack gave
    one."""

    incident_id: str
    channel: str
    channel_id: str
    permalink: str | None = None
    groups: str = ""  # "+37 alert groups in 9 services"

    def _where(self) -> str:
        if self.channel.startswith("#") or not _CHANNEL_ID.fullmatch(self.channel_id):
            return esc(self.channel)
        return f"<#{self.channel_id}>"  # routed by id: Slack shows the channel's name

    def line(self) -> str:
        """'Part of <permalink|incident inc-1> in #cart-oncall: 37 alert groups in 9 services'
        (mrkdwn), naming the incident without a link when there is no permalink."""
        made = link(self.permalink, f"incident {self.incident_id}") if self.permalink else None
        what = made or f"incident `{esc(self.incident_id)}`"
        groups = f": {esc(self.groups.removeprefix('+'))}" if self.groups else ""
        return f":link: Part of {what} in {self._where()}{groups}"

    def text(self) -> str:
        """The same for the plain-text fallback (notifications)."""
        made = link(self.permalink, self.permalink) if self.permalink else None
        where = f" ({made})" if made else ""
        return f"part of incident {esc(self.incident_id)} in {self._where()}{where}"


_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,20}")


def feedback_actions(incident_id: str, revision: int, analyzer: str) -> Block:
    value = json.dumps({"i": incident_id, "r": revision, "a": analyzer[:60]})
    return {
        "type": "actions",
        "block_id": FEEDBACK_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": ACTION_CORRECT,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Correct cause"},
                "value": value,
            },
            {
                "type": "button",
                "action_id": ACTION_WRONG,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Wrong cause"},
                "value": value,
            },
        ],
    }


def mention_line(groups: list[str], route: RouteDecision) -> str:
    # Group ids come only from the routing file, validated as S…; nothing else can mention.
    tags = " ".join(f"<!subteam^{g}>" for g in groups)
    return f"{tags} critical incident for *{esc(route.team)}*"


def draft_blocks(
    request: DeliveryRequest,
    route: RouteDecision,
    mentions: list[str],
    *,
    reply: bool,
    part_of: PartOf | None = None,
) -> list[Block]:
    rca = request.rca
    icon = SEVERITY_ICON.get(request.severity.lower(), ":white_circle:")
    prefix = (
        ""
        if not reply
        else f"Follow-up with later data (revision {request.revision}) · "
        if request.reason == "follow-up"
        else f"Re-investigated (revision {request.revision}) · "
    )
    head: list[Block] = [header(f"{prefix}{headline(request)}")]
    if mentions:
        head.append(section(mention_line(mentions, route)))
    if part_of is not None:
        head.append(context(part_of.line()))
    body: list[Block] = []
    if rca is None:
        body.append(section(f"{icon} *No analysis* for this revision."))
    else:
        cause = rca.root_cause
        facts = [f"*Component:* {esc(cause.component)}", f"*Kind:* {cause.kind.replace('_', ' ')}"]
        if cause.change:
            facts.append(f"*Change:* {esc(cause.change)}")
        title = (
            "*Probable cause*"
            if cause.component != "unknown" and rca.confidence >= CONFIDENT
            else "*No confident cause*"
        )
        body.append(
            section(
                f"{icon} {title} ({rca.confidence:.0%} confidence)\n{esc(rca.summary)}\n"
                + " · ".join(facts)
                + f"\n*Impact:* {esc(rca.impact)}"
            )
        )
    storm = storm_lines(request, limit=10)
    if storm:
        body += sections(f"*{esc(storm[0])}*", [esc(line.strip()) for line in storm[1:]])
    alert_text = [esc(request.annotations[k]) for k in ("summary", "description")
                  if request.annotations.get(k)]  # fmt: skip
    if alert_text:
        body.append(section("*Alert*\n" + "\n".join(alert_text)))
    # What the cause rests on first, with its specifics (the diff, the log line); what was
    # looked at and found normal apart, so it is not read as support.
    evidence = [_evidence_line(e) for e in request.evidence if e.role != "ruled_out"]
    evidence += [line for ln in request.links if (line := _link_line(ln))]
    if evidence:
        body += sections("*Evidence*", evidence)
    ruled_out = [_evidence_line(e) for e in request.evidence if e.role == "ruled_out"]
    if ruled_out:
        body += sections("*Ruled out* (looked, found normal)", ruled_out)
    if rca is not None and rca.next_steps:
        body += sections(
            "*Next steps*", [f"{n}. {esc(s)}" for n, s in enumerate(rca.next_steps, 1)]
        )
    if rca is not None and rca.open_questions:
        body += sections("*Open questions*", [f"• {esc(q)}" for q in rca.open_questions])
    tail: list[Block] = []
    if rca is not None:
        tail.append(feedback_actions(request.incident_id, request.revision, rca.analyzer))
    tail.append(context(_context_line(request, route)))
    return _fit(head, body, tail)


def _evidence_line(e: EvidenceDigest) -> str:
    line = f"• `{esc(e.id)}` {esc(e.summary)}"
    if e.role == "cause" and e.detail and e.detail != e.summary:
        line += f"\n    ↳ {esc(e.detail)}"
    return line


def _link_line(ln: Link) -> str | None:
    label = "Prometheus graph" if ln.kind == "graph" else "Runbook"
    made = link(ln.url, f"{label}: {ln.title}")
    return f"• {made}" if made else None


def _context_line(request: DeliveryRequest, route: RouteDecision) -> str:
    rca = request.rca
    parts = []
    if rca is not None:
        parts.append(f"model: {esc(rca.model)}" if rca.model else f"analyzer: {esc(rca.analyzer)}")
        if rca.usage is not None and rca.usage.prompt_tokens + rca.usage.completion_tokens:
            parts.append(f"tokens: {rca.usage.prompt_tokens + rca.usage.completion_tokens:,}")
        parts.append(esc(rca.label))
    parts.append("*draft for review*")
    parts.append(f"incident `{esc(request.incident_id)}` rev {request.revision}")
    parts.append(f"routed to {esc(route.team)}: {esc(route.reason)}")
    return " · ".join(parts)


def _fit(head: list[Block], body: list[Block], tail: list[Block]) -> list[Block]:
    room = MAX_BLOCKS - len(head) - len(tail)
    if len(body) > room:
        dropped = len(body) - room + 1
        note = f"… {dropped} more sections not shown (Slack allows {MAX_BLOCKS} blocks)"
        body = [*body[: room - 1], context(note)]
    return head + body + tail


def fallback_text(
    request: DeliveryRequest, mentions: list[str], part_of: PartOf | None = None
) -> str:
    """The notification text (and what clients without Block Kit show)."""
    tags = "".join(f"<!subteam^{g}> " for g in mentions)
    what = request.rca.summary if request.rca else "no analysis"
    if request.kind == "resolve":
        what = "resolved"
    elif request.kind == "storm_update" and request.rca is None:
        what = summary(request.attached) or "no attached groups"
    tail = f" · {part_of.text()}" if part_of is not None else ""
    room = MAX_FALLBACK - _units(tail)
    return tags + clip(esc(f"[{request.severity}] {request.title}: {what}"), room) + tail


def resolve_reply_blocks(request: DeliveryRequest) -> list[Block]:
    when = request.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return [
        section(f":white_check_mark: *Resolved* at {when} · {esc(request.title)}"),
        context(f"incident `{esc(request.incident_id)}` episode {request.episode}"),
    ]


def resolved_parent_blocks(
    info: ParentInfo, resolved_at: datetime, part_of: PartOf | None = None, storm: str = ""
) -> list[Block]:
    """``storm``: the attached groups at the end ("+37 alert groups in 9 services")."""
    conf = f" ({info.confidence:.0%} confidence)" if info.confidence is not None else ""
    when = resolved_at.strftime("%Y-%m-%d %H:%M UTC")
    groups = f"\n*Attached:* {esc(storm)}, all resolved" if storm else ""
    return [
        header(f"RESOLVED · {info.headline}"),
        *([context(part_of.line())] if part_of is not None else []),
        section(
            f":white_check_mark: *Resolved* at {when}\n*Probable cause*{conf}\n{esc(info.cause)}"
            + groups
        ),
        feedback_actions(info.incident_id, info.revision, info.analyzer),
        context(
            f"analyzer: {esc(info.analyzer)} · *draft for review* · the investigation and its "
            f"evidence are in the thread · incident `{esc(info.incident_id)}`"
        ),
    ]


def standalone_resolve_blocks(request: DeliveryRequest) -> list[Block]:
    return [header(f"RESOLVED · {headline(request)}"), *resolve_reply_blocks(request)]
