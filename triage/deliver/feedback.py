"""Feedback from the "Correct cause" / "Wrong cause" buttons: Slack's interactivity requests,
verified by their signature, recorded on the incident, counted, and shown on the message.

A request without a valid signature (signing secret, timestamp within five minutes, compared in
constant time by slack_sdk's SignatureVerifier) gets 401 and changes nothing. What can be judged
from the headers is judged before a byte of the body is read: a missing signature or timestamp, a
stale or malformed one (401), a declared body over MAX_BODY (413). The body is then read under
the same limit (413 while streaming a chunked one) and a deadline (408), and only then is its
HMAC checked. A refusal closes the connection unless what is left of the body is small
(http_body.release).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qs

import structlog
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from triage.bus.jetstream import Bus
from triage.deliver import slack_blocks as kit
from triage.deliver.slack import SLACK_ERRORS, SlackSink
from triage.ingest import body as http_body
from triage.models import Feedback, IncidentState, utcnow
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)

INTERACTIONS_PATH = "/api/v1/slack/interactions"
# A block_actions payload carries the whole message it was clicked on (blocks included),
# URL-encoded: a long draft's click must still fit.
MAX_BODY = 256 * 1024
MAX_AGE_S = 60 * 5  # what SignatureVerifier accepts
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
VERDICTS = {kit.ACTION_CORRECT: "correct", kit.ACTION_WRONG: "wrong"}


class BadPayload(ValueError):
    pass


class SlackInteractions:
    def __init__(
        self,
        bus: Bus,
        metrics: Metrics,
        signing_secret: str,
        *,
        body_timeout_s: float | None = None,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._verifier = SignatureVerifier(signing_secret)
        self._body_timeout_s = (
            http_body.BODY_TIMEOUT_S if body_timeout_s is None else body_timeout_s
        )
        self.slack: SlackSink | None = None  # attached by the app's lifespan
        self._updates: set[asyncio.Task[None]] = set()

    def routes(self) -> list[Route]:
        return [Route(INTERACTIONS_PATH, self.handle, methods=["POST"])]

    async def handle(self, request: Request) -> Response:
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not timestamp or not signature:
            return await self._refuse(request, "unsigned", 401)
        if not self._plausible(timestamp, signature):
            return await self._refuse(request, "bad_signature", 401)
        try:
            body = await http_body.read_body(
                request, limit=MAX_BODY, timeout_s=self._body_timeout_s
            )
        except http_body.BodyError as exc:
            return await self._refuse(request, exc.outcome, exc.status, exc)
        try:
            valid = self._verifier.is_valid(body, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            valid = False
        if not valid:
            return self._answer("bad_signature", 401)
        try:
            action = parse_action(body)
        except BadPayload as exc:
            log.warning("slack_interaction_unusable", error=str(exc))
            return self._answer("bad_payload", 400)
        if action is None:
            return self._answer("ignored", 200)
        outcome, shown = await self._record(action)
        if shown is not None:
            self._redraw(action, shown)
        return self._answer(outcome, 200)

    def _answer(self, outcome: str, status: int) -> Response:
        self._metrics.slack_interactions.labels(outcome).inc()
        return JSONResponse({"outcome": outcome}, status_code=status)

    async def _refuse(
        self,
        request: Request,
        outcome: str,
        status: int,
        error: http_body.BodyError | None = None,
    ) -> Response:
        """An answer before the body was read to its end: what is left is dropped, or the
        connection closed after the answer."""
        headers = await http_body.release(request, error)
        response = self._answer(outcome, status)
        response.headers.update(headers)
        return response

    def _plausible(self, timestamp: str, signature: str) -> bool:
        """What the headers alone can rule out: a stale or non-numeric timestamp, a signature
        that is not ``v0=`` and 64 hex digits. The HMAC itself needs the body."""
        try:
            age = abs(self._verifier.clock.now() - int(timestamp))
        except ValueError:
            return False
        return age <= MAX_AGE_S and SIGNATURE.fullmatch(signature) is not None

    async def _record(self, action: dict[str, Any]) -> tuple[str, Feedback | None]:
        verdict = Feedback(
            verdict=action["verdict"],
            revision=action["revision"],
            analyzer=action["analyzer"],
            user_id=action["user_id"],
            user_name=action["user_name"],
            at=utcnow(),
        )
        outcome: list[str] = []

        def change(state: IncidentState | None) -> IncidentState | None:
            outcome.clear()
            if state is None:
                outcome.append("unknown_incident")
                return None
            if state.feedback is not None and state.feedback.revision >= verdict.revision:
                outcome.append("already_recorded")  # the first verdict on a draft stands
                return None
            state.feedback = verdict
            outcome.append("recorded")
            return state

        state = await self._bus.mutate_incident(action["incident_id"], change)
        result = outcome[0] if outcome else "unknown_incident"
        if result == "recorded":
            self._metrics.feedback.labels(verdict.verdict, verdict.analyzer).inc()
            log.info("feedback_recorded", verdict=verdict.verdict, revision=verdict.revision)
        shown = state.feedback if state is not None else None
        if shown is not None and shown.revision != verdict.revision:
            shown = None  # another draft's verdict is no answer to this message
        return result, shown

    def _redraw(self, action: dict[str, Any], shown: Feedback) -> None:
        # Slack wants the answer within 3 s; the paced update goes on after it.
        task = asyncio.create_task(self._update(action, shown))
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def _update(self, action: dict[str, Any], shown: Feedback) -> None:
        if self.slack is None or not action["channel_id"] or not action["ts"]:
            return
        blocks = with_verdict(action["blocks"], shown)
        try:
            await self.slack.update_message(
                action["channel_id"], action["ts"], action["text"], blocks
            )
        except SLACK_ERRORS as exc:
            log.warning("slack_feedback_update_failed", error=str(exc))


def with_verdict(blocks: list[dict[str, Any]], shown: Feedback) -> list[dict[str, Any]]:
    """The message as posted, its buttons replaced by who said what."""
    icon = ":white_check_mark:" if shown.verdict == "correct" else ":x:"
    note = kit.context(
        f"{icon} Probable cause marked *{shown.verdict}* by {kit.esc(shown.user_name)} "
        f"(revision {shown.revision}) · thank you, this is how triage learns"
    )
    out = [note if b.get("block_id") == kit.FEEDBACK_BLOCK else b for b in blocks]
    return out if any(b is note for b in out) else [*out, note]


def parse_action(body: bytes) -> dict[str, Any] | None:
    """The verdict a signed interactivity request carries, or None for other interactions."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError) as exc:
        raise BadPayload(f"no JSON payload: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    try:
        act = next(a for a in payload["actions"] if a.get("action_id") in VERDICTS)
    except (KeyError, TypeError, StopIteration):
        return None
    try:
        value = json.loads(act["value"])
        user = payload["user"]
        container = payload.get("container") or {}
        message = payload.get("message") or {}
        return {
            "verdict": VERDICTS[act["action_id"]],
            "incident_id": str(value["i"]),
            "revision": int(value["r"]),
            "analyzer": str(value.get("a", "unknown"))[:60],
            "user_id": str(user["id"]),
            "user_name": str(user.get("username") or user.get("name") or user["id"])[:80],
            "channel_id": str(
                container.get("channel_id") or (payload.get("channel") or {}).get("id") or ""
            ),
            "ts": str(container.get("message_ts") or message.get("ts") or ""),
            "text": str(message.get("text") or "triage draft"),
            "blocks": list(message.get("blocks") or []),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise BadPayload(f"unusable action: {exc}") from exc
