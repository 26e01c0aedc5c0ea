"""Slack delivery: one thread per incident and channel, exactly once as people see it.

The first draft of an episode is a new message; later drafts and the resolve go into its
thread, and the resolve redraws the parent (a storm update only redraws it). Where each
message went (channel id and ts) is the delivery reference stored on the incident, so a
redelivered request updates what was posted instead of posting again, also when it failed half
way through a list of channels. Messages to one channel are paced (Slack allows about one a
second); a 429 waits for its Retry-After (slack_sdk's retry handler) and anything still failing
is redelivered by the bus, never dropped.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

import aiohttp
import structlog
from pydantic import BaseModel, ValidationError
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from triage.deliver import slack_blocks as kit
from triage.deliver.routing import RouteDecision
from triage.deliver.slack_pacing import ChannelPacer
from triage.deliver.slack_pacing import SharedChannelPacer as SharedChannelPacer
from triage.deliver.storm import attached_channels
from triage.deliver.storm_blocks import storm_parent_blocks
from triage.errors import DeliveryError, PartialDelivery
from triage.incidents.correlation import summary
from triage.models import DeliveryRequest
from triage.settings import SlackSettings

log = structlog.get_logger(__name__)

# Every failure of a call: the bus redelivers the request later (and dead-letters it in the end).
SLACK_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)


class Posted(BaseModel):
    channel_id: str
    ts: str


class SlackRef(BaseModel):
    """The delivery reference of one request: its thread parents and its own messages, by the
    channel as routed, and the parent's gist for redrawing it on resolve."""

    v: Literal[1] = 1
    episode: int
    kind: Literal["draft", "resolve"]
    revision: int
    parents: dict[str, Posted] = {}
    posts: dict[str, Posted] = {}
    parent: kit.ParentInfo | None = None
    # The permalink of the parent's thread in its first channel, once Slack gave it: the threads
    # of attached groups' teams in their own channels link to it.
    permalink: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> SlackRef | None:
        if not raw:
            return None
        try:
            return cls.model_validate_json(raw)
        except ValidationError:
            log.warning("slack_ref_unreadable", ref=raw[:200])
            return None

    def dump(self) -> str:
        return self.model_dump_json()


# Every message carries this metadata: after a crash between posting and recording, the post is
# found again in the channel's history instead of being posted twice.
EVENT_TYPE = "triage_delivery"
# How far before the recorded intent to look for the post (clocks differ a little).
RECOVER_SLACK_S = 60


def marker(request: DeliveryRequest, channel: str) -> dict[str, Any]:
    rev = request.revision if request.kind == "draft" else request.episode
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "incident_id": request.incident_id,
            "kind": request.kind,
            "revision": rev,
            "channel": channel,
        },
    }


def web_client(
    settings: SlackSettings, token: str, session: aiohttp.ClientSession
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=settings.base_url,
        timeout=int(max(settings.timeout_s, 1)),
        session=session,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=settings.rate_limit_retries),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackSink:
    name = "slack"
    paced = True  # drafts superseded while a channel's budget is spent are coalesced

    def __init__(self, client: AsyncWebClient, settings: SlackSettings) -> None:
        self.client = client
        self._settings = settings
        self.pacer = ChannelPacer(settings.channel_interval_s)
        # Channel as routed -> its id as Slack answered (for finding a post again), and back.
        # Every call to a channel is paced under the channel as routed: the one name for it
        # that every replica knows before its first post there (pacing the first post by name
        # and later calls by id would let two replicas fill one channel's slot under two keys).
        self._ids: dict[str, str] = {}
        self._routed: dict[str, str] = {}

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        if request.kind == "storm_update":
            return await self._storm(request, route, thread)
        ref = self._start(request, thread)
        teams = attached_channels(route)
        part_of: kit.PartOf | None = None
        # In route order: the parent's own channels first, so its thread exists (and has a
        # permalink) before any attached team's thread links to it.
        for channel in route.channels:
            try:
                if channel in teams and part_of is None:  # asked once a request
                    part_of = await self._part_of(request, route, ref)
                link = part_of if channel in teams else None
                if request.kind == "draft":
                    await self._draft(request, route, channel, ref, link)
                else:
                    await self._resolve(request, channel, ref, link)
            except SLACK_ERRORS as exc:
                why = _describe(exc)
                if ref.posts:
                    raise PartialDelivery(
                        f"slack {channel}: {why}", sink=self.name, ref=ref.dump()
                    ) from exc
                raise DeliveryError(f"slack {channel}: {why}", sink=self.name) from exc
        return ref.dump()

    @staticmethod
    def _start(request: DeliveryRequest, thread: str | None) -> SlackRef:
        """This request's reference: the thread parents of its episode, and, on a retry of this
        very request, what it posted already."""
        prev = SlackRef.parse(thread)
        rev = request.revision if request.kind == "draft" else request.episode
        ref = SlackRef(episode=request.episode, kind=request.kind, revision=rev)
        if prev is not None and prev.episode == request.episode:
            ref.parents = dict(prev.parents)
            ref.parent = prev.parent
            ref.permalink = prev.permalink
            if prev.kind == request.kind and prev.revision == rev:
                ref.posts = dict(prev.posts)  # a retry of this very request
        return ref

    async def _part_of(
        self, request: DeliveryRequest, route: RouteDecision, ref: SlackRef
    ) -> kit.PartOf | None:
        """Where the parent's thread is, for an attached team's channel: its first channel and
        the permalink of its first message (chat.getPermalink, no scope needed; asked once an
        episode). Without a permalink the channel and incident id are named instead: a link is
        an extra, never a reason to fail the delivery."""
        top = ref.parents.get(route.channel)
        if top is None:
            return None  # the parent's own thread is not posted: nothing to link to
        if ref.permalink is None:
            try:
                resp = await self.client.chat_getPermalink(
                    channel=top.channel_id, message_ts=top.ts
                )
                ref.permalink = str(resp.get("permalink") or "") or None
            except SLACK_ERRORS as exc:
                log.warning("slack_permalink_failed", error=_describe(exc))
        return kit.PartOf(
            incident_id=request.incident_id,
            channel=route.channel,
            channel_id=top.channel_id,
            permalink=ref.permalink,
            groups=summary(request.attached),
        )

    async def _draft(
        self,
        request: DeliveryRequest,
        route: RouteDecision,
        channel: str,
        ref: SlackRef,
        part_of: kit.PartOf | None = None,
    ) -> None:
        done = ref.posts.get(channel)
        parent = ref.parents.get(channel)
        # Page once, with the thread's first message; replies and retries do not page again.
        pages = parent is None or (done is not None and done.ts == parent.ts)
        mentions = route.mentions(channel, request.severity) if pages else []
        text = kit.fallback_text(request, mentions, part_of)
        if done is not None:
            # Posted by an earlier attempt whose record was all that got lost: refresh it.
            reply = parent is not None and parent.ts != done.ts
            blocks = kit.draft_blocks(request, route, mentions, reply=reply, part_of=part_of)
            await self._update(done, text, blocks, channel)
            return
        blocks = kit.draft_blocks(
            request, route, mentions, reply=parent is not None, part_of=part_of
        )
        posted = await self._post(
            channel, text, blocks, parent.ts if parent else None, marker(request, channel)
        )
        ref.posts[channel] = posted
        if parent is None:
            ref.parents[channel] = parent = posted
            ref.parent = ref.parent or kit.ParentInfo.of(request)
        elif request.attached or request.notes:
            # A parent incident's first message shows the storm as it stands now ("+37 alert
            # groups in 9 services"): edited, not posted again.
            top = kit.draft_blocks(request, route, [], reply=False, part_of=part_of)
            await self._update(parent, text, top, channel)
            ref.parent = kit.ParentInfo.of(request)
        if request.series is not None and self._settings.graphs:
            await self._graph(request, parent, channel)

    async def _resolve(
        self,
        request: DeliveryRequest,
        channel: str,
        ref: SlackRef,
        part_of: kit.PartOf | None = None,
    ) -> None:
        parent = ref.parents.get(channel)
        text = kit.fallback_text(request, [], part_of)
        if channel not in ref.posts:
            blocks = (
                kit.resolve_reply_blocks(request)
                if parent is not None
                else kit.standalone_resolve_blocks(request)
            )
            ref.posts[channel] = await self._post(
                channel, text, blocks, parent.ts if parent else None, marker(request, channel)
            )
        if parent is not None and ref.parent is not None:
            info, storm = ref.parent, summary(request.attached)
            if storm:  # the storm's final count, all of it resolved now
                info = info.model_copy(update={"headline": kit.headline(request)[:300]})
            blocks = kit.resolved_parent_blocks(info, request.created_at, part_of, storm)
            await self._update(parent, text, blocks, channel)

    async def _storm(
        self, request: DeliveryRequest, route: RouteDecision, thread: str | None
    ) -> str:
        """A storm update: the first message of each of the episode's threads redrawn with the
        storm as it stands. Never a new post: a channel without a thread yet (an attached
        group's team) gets one with the next draft, which lists the groups anyway."""
        ref = SlackRef.parse(thread)
        if ref is None or ref.episode != request.episode:
            return thread or ""
        teams = attached_channels(route)
        part_of: kit.PartOf | None = None
        for channel in [c for c in route.channels if c in ref.parents]:
            try:
                if channel in teams and part_of is None:
                    part_of = await self._part_of(request, route, ref)
                link = part_of if channel in teams else None
                text = kit.fallback_text(request, [], link)
                if request.rca is not None:  # the draft it shows, the storm as it stands
                    blocks = kit.draft_blocks(request, route, [], reply=False, part_of=link)
                else:
                    blocks = storm_parent_blocks(ref.parent, request, link)
                await self._update(ref.parents[channel], text, blocks, channel)
            except SLACK_ERRORS as exc:
                raise DeliveryError(f"slack {channel}: {_describe(exc)}", sink=self.name) from exc
        return ref.dump()

    async def _post(
        self,
        channel: str,
        text: str,
        blocks: list[kit.Block],
        thread_ts: str | None,
        metadata: dict[str, Any],
    ) -> Posted:
        async with self.pacer.slot(channel):
            resp = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                link_names=False,
                metadata=metadata,
            )
        posted = Posted(channel_id=str(resp["channel"]), ts=str(resp["ts"]))
        self._ids[channel] = posted.channel_id
        self._routed[posted.channel_id] = channel
        return posted

    async def recover(
        self, request: DeliveryRequest, route: RouteDecision, thread: str | None, since: datetime
    ) -> tuple[str, bool] | None:
        """After an attempt that may have posted without recording it (a crash): the posts of
        this request found by their metadata, as the reference ``send`` continues from. Needs
        the history scopes (channels:history, groups:history, and channels:read for channels
        given by name); without them the retry posts again, as before."""
        ref = self._start(request, thread)
        found = False
        for channel in route.channels:
            if channel in ref.posts:
                continue
            try:
                posted = await self._find(request, channel, ref.parents.get(channel), since)
            except SLACK_ERRORS as exc:
                log.warning("slack_recover_failed", channel=channel, error=_describe(exc))
                continue
            if posted is None:
                continue
            found = True
            ref.posts[channel] = posted
            if channel not in ref.parents:
                ref.parents[channel] = posted
                ref.parent = ref.parent or kit.ParentInfo.of(request)
        # send() then refreshes what was found and posts only what is missing.
        return (ref.dump(), False) if found else None

    async def _find(
        self, request: DeliveryRequest, channel: str, parent: Posted | None, since: datetime
    ) -> Posted | None:
        want = marker(request, channel)["event_payload"]
        if parent is not None:
            resp = await self.client.conversations_replies(
                channel=parent.channel_id, ts=parent.ts, include_all_metadata=True, limit=200
            )
            cid = parent.channel_id
        else:
            found = await self._channel_id(channel)
            if found is None:
                return None
            cid = found
            oldest = since.timestamp() - RECOVER_SLACK_S
            resp = await self.client.conversations_history(
                channel=cid, oldest=f"{oldest:.6f}", include_all_metadata=True, limit=200
            )
        for message in resp.get("messages") or []:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == EVENT_TYPE and meta.get("event_payload") == want:
                return Posted(channel_id=cid, ts=str(message["ts"]))
        return None

    async def _channel_id(self, channel: str) -> str | None:
        if channel in self._ids:
            return self._ids[channel]
        if not channel.startswith("#"):
            return channel  # routed by id
        name, cursor = channel[1:], None
        while True:
            resp = await self.client.conversations_list(
                types="public_channel,private_channel", limit=1000, cursor=cursor
            )
            for c in resp.get("channels") or []:
                if c.get("name") == name:
                    self._ids[channel] = str(c["id"])
                    return self._ids[channel]
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    async def _update(
        self, at: Posted, text: str, blocks: list[kit.Block], channel: str | None = None
    ) -> None:
        async with self.pacer.slot(channel or self._routed.get(at.channel_id, at.channel_id)):
            await self.client.chat_update(
                channel=at.channel_id, ts=at.ts, text=text, blocks=blocks, link_names=False
            )

    async def update_message(
        self, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        """For the feedback handler: a message we posted, redrawn."""
        await self._update(Posted(channel_id=channel_id, ts=ts), text, blocks)

    async def _graph(self, request: DeliveryRequest, parent: Posted, channel: str) -> None:
        # A graph is an extra: failing to draw or upload it must not repeat the draft.
        if request.series is None:
            return
        try:
            from triage.deliver.graph import render_png  # matplotlib only where graphs are drawn

            png = await asyncio.to_thread(render_png, request.series)
            async with self.pacer.slot(channel):
                await self.client.files_upload_v2(
                    channel=parent.channel_id,
                    thread_ts=parent.ts,
                    file=png,
                    filename=f"{request.incident_id}-r{request.revision}.png",
                    title=kit.clip(kit.esc(request.series.title), 200),
                    alt_txt="Alerting series around the onset, changes marked",
                )
        except (*SLACK_ERRORS, ValueError, OSError) as exc:
            log.warning("slack_graph_failed", error=_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"{exc.response.status_code} {exc.response.get('error')}"
    return f"{type(exc).__name__}: {exc}"
