"""A local stand-in for Slack's Web API that slack_sdk talks to through ``base_url``.

Serves the methods triage uses (auth.test, chat.postMessage, chat.update, chat.getPermalink,
files.getUploadURLExternal + the upload URL + files.completeUploadExternal, and for
``triage doctor`` conversations.info and conversations.list over the channels made with
``add_channel`` or posted to by name, and conversations.history / conversations.replies with
message metadata for finding a post again after a crash), checks the bot
token and Block Kit's limits as Slack does, records every call, and answers 429 with
Retry-After or fails on demand. Runs in the test's event loop on a free port.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web

from triage_lab.fakes.process import free_port

TOKEN = "xoxb-test-0123456789"
WORKSPACE = "triage-test"  # permalinks are https://triage-test.slack.com/archives/...
MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int
    at: float  # time.monotonic() when it arrived


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None

    def as_api(self, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class Fault:
    status: int = 500
    error: str | None = None
    retry_after: int | None = None
    channel: str | None = None  # only calls to this channel (as the caller named it)


def channel_id(channel: str) -> str:
    if channel[:1] in ("C", "G") and channel.isupper():
        return channel
    return "C" + hashlib.sha256(channel.encode()).hexdigest()[:8].upper()


class SlackApi:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.port = free_port()
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.uploads: dict[str, bytes] = {}
        self.shares: list[dict[str, Any]] = []
        self._faults: dict[str, list[Fault]] = {}
        self.channels: dict[str, dict[str, Any]] = {}  # id -> conversations.info's channel
        self._seq = 0
        self._last_ts = 0.0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- control -----------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        channel: str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (to ``channel``, if given) fail: HTTP
        ``status``, or 200 with ``{"ok": false, "error": error}`` when ``error`` is given."""
        fault = Fault(200 if error else status, error, retry_after, channel)
        self._faults.setdefault(method, []).extend([fault] * times)

    def add_channel(self, name: str, *, member: bool = True) -> str:
        """A channel Slack knows (``#name``), the bot in it or not; returns its id."""
        cid = channel_id("#" + name.removeprefix("#"))
        self.channels[cid] = {
            "id": cid,
            "name": name.removeprefix("#"),
            "is_channel": True,
            "is_private": False,
            "is_archived": False,
            "is_member": member,
        }
        return cid

    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        self.fail(method, status=429, retry_after=retry_after, times=times)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posted(self) -> list[Message]:
        """Every message, in the order they were posted."""
        return sorted(self.messages.values(), key=lambda m: float(m.ts))

    def top_level(self, channel: str) -> list[Message]:
        cid = channel_id(channel)
        return [m for m in self.posted() if m.channel == cid and m.thread_ts is None]

    def replies(self, parent: Message) -> list[Message]:
        return [
            m for m in self.posted() if m.channel == parent.channel and m.thread_ts == parent.ts
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack_sdk GETs conversations.*
        app.router.add_post("/upload/{file_id}", self._upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the API -----------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        body = await request.read()
        ctype = request.content_type
        if ctype == "application/json" and body:
            params.update(json.loads(body))
        elif ctype == "application/x-www-form-urlencoded" and body:
            params.update(parse_qsl(body.decode()))
        for key in ("blocks", "files"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        status, headers, body = self._answer(method, params, request)
        self.calls.append(Call(method, params, status, time.monotonic()))
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self, method: str, params: dict[str, Any], request: web.Request
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        faults = self._faults.get(method) or []
        fault = next((f for f in faults if f.channel in (None, params.get("channel"))), None)
        if fault is not None:
            faults.remove(fault)
            if fault.status == 429:
                headers = {"Retry-After": str(fault.retry_after or 1)}
                return 429, headers, {"ok": False, "error": "ratelimited"}
            return fault.status, {}, {"ok": False, "error": fault.error or "internal_error"}
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        return 200, {}, handler(params)

    def _next_ts(self) -> str:
        # Like Slack's: the time of posting, unique within the workspace's channel.
        self._seq += 1
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return f"{self._last_ts:.6f}"

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team": "Test", "user": "triage", "user_id": "UBOT", "bot_id": "BBOT"}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.channels.get(str(params.get("channel")))
        if found is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": found}

    def _conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "channels": list(self.channels.values()),
            "response_metadata": {"next_cursor": ""},
        }

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        problem = block_problem(params.get("blocks") or [])
        if problem:
            return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        cid = channel_id(str(params["channel"]))
        thread = params.get("thread_ts")
        if thread and (cid, thread) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        ts = self._next_ts()
        msg = Message(cid, ts, str(params.get("text", "")), params.get("blocks") or [], thread)
        meta = params.get("metadata")
        msg.metadata = json.loads(meta) if isinstance(meta, str) else meta
        self.messages[(cid, ts)] = msg
        name = str(params["channel"])
        if name.startswith("#") and cid not in self.channels:
            self.add_channel(name)  # Slack knows the channels it was asked to post to
        return {"ok": True, "channel": cid, "ts": ts, "message": {"text": msg.text, "ts": ts}}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = str(params.get("channel"))
        if cid not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(params.get("oldest") or 0)
        meta = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [
            m.as_api(meta)
            for m in reversed(self.posted())
            if m.channel == cid and m.thread_ts is None and float(m.ts) > oldest
        ]
        return {"ok": True, "messages": found[: int(params.get("limit") or 100)], "has_more": False}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        parent = self.messages.get((str(params.get("channel")), str(params.get("ts"))))
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        meta = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        thread = [parent, *self.replies(parent)]
        return {"ok": True, "messages": [m.as_api(meta) for m in thread], "has_more": False}

    def _chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        # As Slack answers (no scope needed): p + the ts without its dot; a reply's permalink
        # names its thread too.
        cid = str(params.get("channel") or "")
        if cid not in {m.channel for m in self.messages.values()} and cid not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        msg = self.messages.get((cid, str(params.get("message_ts"))))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        link = permalink(cid, msg.ts)
        if msg.thread_ts:
            link += f"?thread_ts={msg.thread_ts}&cid={cid}"
        return {"ok": True, "channel": cid, "permalink": link}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages.get((str(params.get("channel")), str(params.get("ts"))))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        problem = block_problem(params.get("blocks") or [])
        if problem:
            return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        msg.history.append({"text": msg.text, "blocks": msg.blocks})
        msg.text = str(params.get("text", msg.text))
        msg.blocks = params.get("blocks") or msg.blocks
        msg.edits += 1
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        self._seq += 1
        file_id = f"F{self._seq:08d}"
        upload_url = f"http://127.0.0.1:{self.port}/upload/{file_id}"
        return {"ok": True, "upload_url": upload_url, "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files") or []
        if any(f.get("id") not in self.uploads for f in files):
            return {"ok": False, "error": "file_not_found"}
        for f in files:
            self.shares.append(
                {
                    "file_id": f["id"],
                    "title": f.get("title"),
                    "channel": params.get("channel_id"),
                    "thread_ts": params.get("thread_ts"),
                    "bytes": self.uploads[f["id"]],
                }
            )
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        self.uploads[file_id] = data
        self.calls.append(
            Call("upload", {"file_id": file_id, "bytes": len(data)}, 200, time.monotonic())
        )
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")


def permalink(channel: str, ts: str) -> str:
    """The permalink Slack gives a message: the channel id and ``p`` + its ts without the dot."""
    return f"https://{WORKSPACE}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def block_problem(blocks: list[dict[str, Any]]) -> str | None:
    """Slack's limits on what a message may carry; None when the blocks are acceptable."""
    if len(blocks) > MAX_BLOCKS:
        return f"more than {MAX_BLOCKS} blocks"
    for n, b in enumerate(blocks):
        text = (b.get("text") or {}).get("text", "")
        if b.get("type") == "header" and len(text) > MAX_HEADER:
            return f"[{n}] header longer than {MAX_HEADER}"
        if b.get("type") == "section" and len(text) > MAX_SECTION:
            return f"[{n}] section longer than {MAX_SECTION}"
    return None


def all_text(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text string in a block tree (for checks that no mention slipped in)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return found
