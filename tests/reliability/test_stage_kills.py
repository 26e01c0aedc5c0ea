"""kill -9 of the worker and of the notifier while incidents flow, with the Slack sink (a local
Slack-compatible server): every incident gets its first draft in every routed channel (0 lost),
and exactly one top-level message per incident and channel (0 duplicates).

The notifier is killed from inside Slack's chat.postMessage, after the message is stored and
before the answer goes back: the crash between posting and recording that the intent record and
the message metadata exist for (the retry must find the post in the channel's history and update
it, not post again). The worker is killed while investigations are in flight. A supervisor loop
restarts whatever died, as Kubernetes would.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi, channel_id

from tests.reliability import harness
from tests.reliability.harness import (
    WEBHOOK_PATH,
    AlertmanagerLike,
    StageProcess,
    dead_letters,
    drafts_by_incident,
    duplicate_deliveries,
    record,
    settled,
    start_all,
    stop_all,
    wait_until,
)
from tests.support.app import TOKEN
from tests.support.payloads import alert, webhook

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(420)]

INCIDENTS = 40
CHANNELS = ("#incidents", "#sre-feed")  # every draft goes to both: a crash can split them
NOTIFY_KILLS_AT_POST = (3, 30, 57)  # the notifier dies answering these chat.postMessage calls


class KillingSlackApi(SlackApi):
    """Slack that SIGKILLs the notifier while answering chosen chat.postMessage calls: the
    message is stored, the notifier never hears of it."""

    def __init__(self) -> None:
        super().__init__()
        self.victim: Callable[[], int | None] = lambda: None
        self.kill_at = list(NOTIFY_KILLS_AT_POST)
        self.post_count = 0
        self.kills: list[dict[str, Any]] = []

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        answer = super()._chat_postMessage(params)
        if not answer.get("ok"):
            return answer
        self.post_count += 1
        if self.kill_at and self.post_count >= self.kill_at[0]:
            pid = self.victim()
            if pid is not None:
                self.kill_at.pop(0)
                os.kill(pid, signal.SIGKILL)
                meta = (params.get("metadata") or {}).get("event_payload", {})
                self.kills.append({"post": self.post_count, "pid": pid, **meta})
        return answer


class ThreadedSlack(harness.ThreadedSlack[KillingSlackApi]):
    """The killing Slack server in a thread with its own event loop, so that the test can block."""

    def __init__(self) -> None:
        super().__init__(KillingSlackApi())


def supervise(
    stages: list[StageProcess], until: Callable[[], Any], timeout: float, what: str
) -> Any:
    """Restart any stage that died (as its Deployment would) until ``until()`` holds."""

    def check() -> Any:
        for stage in stages:
            if stage.reap():
                stage.start()
        return until()

    return wait_until(check, timeout, what, every=0.2)


def test_kill_9_of_worker_and_notifier_loses_nothing_and_posts_nothing_twice(tmp_path: Path):
    drafts_path = tmp_path / "drafts.jsonl"
    routing = tmp_path / "routing.yaml"
    routing.write_text(f"default:\n  team: sre\n  channels: {list(CHANNELS)}\n".replace("'", '"'))
    with NatsServer(workdir=tmp_path / "nats") as server, ThreadedSlack() as slack:
        common = {"TRIAGE_NATS_URL": server.url}
        ingest = StageProcess("ingest", {**common, "TRIAGE_INGEST_BEARER_TOKEN": TOKEN}, tmp_path)
        worker = StageProcess("worker", common, tmp_path)
        notify = StageProcess(
            "notify",
            {
                **common,
                "TRIAGE_DELIVERY_JSONL_PATH": str(drafts_path),
                "TRIAGE_ROUTING_FILE": str(routing),
                "TRIAGE_SLACK_BOT_TOKEN": slack.api.token,
                "TRIAGE_SLACK_BASE_URL": slack.api.url,
                "TRIAGE_SLACK_CHANNEL_INTERVAL_S": "0",
                "TRIAGE_SLACK_GRAPHS": "false",
            },
            tmp_path,
        )
        stages = [ingest, worker, notify]
        slack.api.victim = lambda: notify.proc.pid if notify.proc is not None else None
        am = AlertmanagerLike(ingest.base_url + WEBHOOK_PATH)
        incidents: list[str] = []
        cids = [channel_id(c) for c in CHANNELS]

        def top_level() -> Counter[tuple[str, str]]:
            return Counter(
                (cid, inc)
                for cid, thread, inc, kind, rev in slack.drafts()
                if thread is None and kind == "draft" and rev == 1
            )

        def send(first: int, last: int, client: httpx.Client) -> None:
            for i in range(first, last):
                body = webhook(
                    [alert(f"Crash{i}", service=f"svc-{i}")],
                    group_key=f'{{}}:{{alertname="Crash{i}", namespace="shop"}}',
                )
                resp = am.send(client, body)
                assert resp.status_code == 200, resp.text
                incidents.append(resp.json()["incident_id"])

        try:
            start_all(stages)
            started = time.monotonic()
            with httpx.Client() as client:
                send(0, 15, client)
                supervise(stages, lambda: len(top_level()) >= 8, 90, "first drafts in Slack")
                send(15, 25, client)
                # Kill the worker while the ten just sent are being investigated.
                in_flight = len(set(incidents) - set(drafts_by_incident(drafts_path)))
                worker.kill9()
                send(25, INCIDENTS, client)

            def complete() -> bool:
                posted = top_level()
                slack_done = all((cid, inc) in posted for inc in incidents for cid in cids)
                jsonl = drafts_by_incident(drafts_path)
                return slack_done and all(inc in jsonl for inc in incidents)

            supervise(stages, complete, 180, "every incident posted in every channel")
            # Nothing pending or unacked anywhere: no redelivery can still post a duplicate.
            supervise(stages, lambda: settled(server.url), 60, "consumers settled")
            elapsed = time.monotonic() - started

            posted = top_level()
            all_posts = Counter(
                (cid, inc, kind, rev) for cid, _thread, inc, kind, rev in slack.drafts()
            )
            lost = [(cid, inc) for inc in incidents for cid in cids if (cid, inc) not in posted]
            duplicates = {k: n for k, n in all_posts.items() if n > 1}
            calls = slack.read(lambda api: Counter(c.method for c in api.calls))
            kills = slack.read(lambda api: list(api.kills))
            letters = dead_letters(server.url)
            jsonl = drafts_by_incident(drafts_path)

            assert len(set(incidents)) == INCIDENTS
            assert lost == []
            assert duplicates == {}
            assert sum(posted.values()) == INCIDENTS * len(CHANNELS)
            assert set(all_posts) == {(cid, inc, "draft", 1) for inc in incidents for cid in cids}
            assert len(kills) == len(NOTIFY_KILLS_AT_POST) and worker.kills == 1
            # The crashes between posting and recording were healed by finding the posts again.
            assert calls["conversations.history"] >= 1 and calls["chat.update"] >= 1
            assert jsonl == Counter({inc: 1 for inc in incidents})
            assert duplicate_deliveries(drafts_path) == {}
            assert letters == []
            for stage in stages:
                assert stage.exits == [], f"{stage.name} exited on its own:\n{stage.log_tail()}"
        except BaseException:
            for stage in stages:
                print(f"--- {stage.name} log tail ---\n{stage.log_tail()}")
            raise
        finally:
            stop_all(stages)

    record(
        "stage_kills_slack",
        {
            "incidents": INCIDENTS,
            "channels_per_incident": len(CHANNELS),
            "worker_kills": worker.kills,
            "incidents_without_draft_at_worker_kill": in_flight,
            "notify_kills": len(kills),
            "notify_kills_between_post_and_record": kills,
            "restarts": {s.name: s.starts - 1 for s in stages},
            "slack_top_level_messages": sum(posted.values()),
            "lost": len(lost),
            "duplicates": sum(n - 1 for n in duplicates.values()),
            "jsonl_drafts": sum(jsonl.values()),
            "dead_letters": len(letters),
            "slack_calls": dict(sorted(calls.items())),
            "webhook_attempts": dict(am.attempts),
            "seconds_to_all_posted_and_settled": round(elapsed, 1),
        },
    )
