"""What the reliability suite shares: triage stages as real subprocesses (started, killed with
SIGKILL, restarted), reading what came out (JSONL drafts, dead letters, JetStream's counts), an
Alertmanager-like sender, and the figures each test records in bench/results/reliability.json."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import nats
import nats.js.errors
from triage_lab.fakes.process import free_port
from triage_lab.fakes.process import live as _live
from triage_lab.fakes.slack import SlackApi

from tests.support.app import TOKEN
from triage.cli.dlq import DeadLetters
from triage.models import IncidentState, incident_id_for
from triage.settings import NatsSettings

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "reliability.json"
WEBHOOK_PATH = "/api/v1/alertmanager"

# Tuned so that recovery takes seconds, not minutes: a message not acked within ACK_WAIT_S is
# redelivered; a killed worker's lease (total deadline + ack_wait) runs out after 8 s; deliveries
# are retried often enough that kills never exhaust them (a dead letter would be a loss here).
FAST = {
    "TRIAGE_LOG_FORMAT": "json",
    "TRIAGE_LOG_LEVEL": "warning",
    "TRIAGE_NATS_ACK_WAIT_S": "3",
    "TRIAGE_NATS_MAX_DELIVER": "20",
    "TRIAGE_INCIDENTS_DEBOUNCE_S": "0",
    "TRIAGE_INVESTIGATION_FOLLOW_UP_S": "0",
    "TRIAGE_INVESTIGATION_TOTAL_DEADLINE_S": "5",
    "TRIAGE_INVESTIGATION_COLLECTOR_DEADLINE_S": "3",
    "TRIAGE_DELIVERY_CONSOLE": "false",
}


T = TypeVar("T")
A = TypeVar("A", bound=SlackApi)


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(every)


class StageProcess:
    """``python -m triage.cli <command>`` with its own port and log file; restartable."""

    def __init__(self, command: str, env: dict[str, str], workdir: Path, name: str = "") -> None:
        self.command = command
        self.name = name or command
        self.port = free_port()
        self.workdir = workdir
        self.env = {**os.environ, **FAST, **env, "TRIAGE_HTTP_PORT": str(self.port)}
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.exits: list[int] = []  # exit codes of runs that ended on their own

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.alive, f"{self.name} already running"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "triage.cli", self.command],
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _live.add(self.proc)  # killed at interpreter exit if a test aborts
        self.starts += 1

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(self.ready, timeout, f"{self.name} ready ({self.log_path})", every=0.1)

    def kill9(self) -> None:
        assert self.proc is not None and self.alive, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def reap(self) -> bool:
        """True when the process is gone (killed or exited); records an exit of its own."""
        if self.proc is None:
            return True
        rc = self.proc.poll()
        if rc is None:
            return False
        if rc != -signal.SIGKILL:
            self.exits.append(rc)
        _live.discard(self.proc)
        self.proc = None
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _live.discard(self.proc)
        self.proc = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def start_all(stages: list[StageProcess], timeout: float = 90) -> None:
    """Start together (imports overlap), then wait for each to be ready."""
    for stage in stages:
        stage.start()
    for stage in stages:
        stage.wait_ready(timeout)


def stop_all(stages: list[StageProcess]) -> None:
    for stage in stages:
        stage.stop()


def jsonl_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    # A line cut by a SIGKILL mid-write would not parse: that is a finding, let it raise.
    return [json.loads(line) for line in lines if line]


def drafts_by_incident(path: Path) -> Counter[str]:
    """How many draft lines each incident got."""
    return Counter(
        rec["delivery"]["incident_id"]
        for rec in jsonl_lines(path)
        if rec["delivery"]["kind"] == "draft"
    )


def duplicate_deliveries(path: Path) -> dict[str, int]:
    """delivery_ids written more than once (the JSONL sink promises each once)."""
    counts = Counter(rec["delivery_id"] for rec in jsonl_lines(path))
    return {k: n for k, n in counts.items() if n > 1}


def dead_letter_incident(stage: str, payload: str) -> str | None:
    """The incident a dead letter is about, from its payload (None when it does not say)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("incident_id"), str):
        return data["incident_id"]
    webhook = data.get("webhook")
    if isinstance(webhook, dict) and isinstance(webhook.get("groupKey"), str):
        return incident_id_for(webhook["groupKey"])
    return None


async def _dead_letters(nats_url: str) -> list[dict[str, Any]]:
    nc = await nats.connect(nats_url)
    try:
        entries = await DeadLetters(nc.jetstream(), NatsSettings()).list()
    finally:
        await nc.close()
    found = []
    for e in entries:
        letter = e.letter
        found.append(
            {
                "seq": e.seq,
                "stage": e.stage,
                "reason": letter.reason if letter else e.problem,
                "incident_id": dead_letter_incident(e.stage, letter.payload) if letter else None,
            }
        )
    return found


def dead_letters(nats_url: str) -> list[dict[str, Any]]:
    """Every message on triage.deadletter.*, with its stage, reason and incident."""
    return asyncio.run(_dead_letters(nats_url))


async def _subject_count(nats_url: str, subject: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("TRIAGE", subjects_filter=subject)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


def subject_count(nats_url: str, subject: str) -> int:
    """How many messages the TRIAGE stream holds on ``subject``."""
    return asyncio.run(_subject_count(nats_url, subject))


async def _settled(nats_url: str, durables: tuple[str, ...]) -> bool:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for durable in durables:
            info = await js.consumer_info("TRIAGE", durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True
    finally:
        await nc.close()


def settled(nats_url: str, durables: tuple[str, ...] = ("incidents", "investigations")) -> bool:
    """Nothing left to deliver on these consumers, and nothing handed out and not yet acked:
    no redelivery (and so no late duplicate) can follow."""
    return asyncio.run(_settled(nats_url, (*durables, "deliveries", "paced_deliveries")))


class AlertmanagerLike:
    """Sends a webhook the way Alertmanager does: 5xx and connection errors are retried (with
    backoff) until an answer that is not a 5xx; records every attempt."""

    def __init__(self, url: str, token: str = TOKEN, deadline_s: float = 120) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.deadline_s = deadline_s
        self.attempts: Counter[str] = Counter()  # "200", "503", "ConnectError", ...

    def send(self, client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
        deadline = time.monotonic() + self.deadline_s
        backoff = 0.1
        while True:
            try:
                resp = client.post(self.url, json=body, headers=self.headers, timeout=10)
                self.attempts[str(resp.status_code)] += 1
                if resp.status_code < 500:
                    return resp
            except httpx.TransportError as exc:
                self.attempts[type(exc).__name__] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook not taken within {self.deadline_s}s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)


async def _incident_states(nats_url: str, ids: list[str]) -> dict[str, IncidentState]:
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(NatsSettings().kv_bucket)
        found = {}
        for incident_id in ids:
            try:
                entry = await kv.get(incident_id)
            except nats.js.errors.KeyNotFoundError:
                continue
            if entry.value:
                found[incident_id] = IncidentState.model_validate_json(entry.value)
        return found
    finally:
        await nc.close()


def incident_states(nats_url: str, ids: list[str]) -> dict[str, IncidentState]:
    """The stored state of these incidents (those that have one)."""
    return asyncio.run(_incident_states(nats_url, ids))


@dataclass(frozen=True)
class SlackPost:
    """A message triage posted, as the Slack server holds it, with its delivery metadata."""

    channel: str  # channel id
    ts: str
    thread_ts: str | None
    incident_id: str | None
    kind: str | None
    revision: int | None
    edits: int


class ThreadedSlack(Generic[A]):
    """A local Slack server (lab/triage_lab/fakes/slack.py) in a thread with its own event loop: reachable
    from stage subprocesses over HTTP while the test (or a benchmark) blocks."""

    def __init__(self, api: A) -> None:
        self.api = api
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedSlack[A]:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def read(self, fn: Callable[[A], T]) -> T:
        """``fn(api)`` run in the server's loop: a consistent view of what it holds (or a change
        made between two requests, such as a fault to inject)."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn(self.api))
            except BaseException as exc:
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result(10)

    def posts(self) -> list[SlackPost]:
        """Every message triage posted, in posting order."""

        def collect(api: A) -> list[SlackPost]:
            found = []
            for m in api.posted():
                p = (m.metadata or {}).get("event_payload") or {}
                found.append(
                    SlackPost(
                        m.channel,
                        m.ts,
                        m.thread_ts,
                        p.get("incident_id"),
                        p.get("kind"),
                        p.get("revision"),
                        m.edits,
                    )
                )
            return found

        return self.read(collect)

    def drafts(self) -> list[tuple[str, str | None, str | None, str | None, int | None]]:
        """(channel id, thread_ts, incident, kind, revision) of every message triage posted."""
        return [(p.channel, p.thread_ts, p.incident_id, p.kind, p.revision) for p in self.posts()]


def record(test: str, figures: dict[str, Any]) -> None:
    """Print the figures and keep them in bench/results/reliability.json (one key per test)."""
    print(f"\nRELIABILITY {test}: {json.dumps(figures, sort_keys=True)}")
    try:
        results = json.loads(RESULTS.read_text())
    except (FileNotFoundError, ValueError):
        results = {}
    results[test] = figures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
