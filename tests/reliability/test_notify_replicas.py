"""More than one `triage notify` on one NATS (issue 17): ingest, one worker and two or three
notifier replicas as real subprocesses, the local Slack server, incidents routed over several
channels by their team label. Every incident gets a first alert, a second alert once its first
draft is in Slack (a re-investigation: revision 2, a reply in the thread) and right after that
its resolve, while the other incidents are still arriving.

What the Slack server holds at the end must be exactly once as people see it, whichever replica
posted: one top-level message per incident in its channel, the revision 2 reply and the resolve
each once in that message's thread (none lost, none in a second thread), the parent redrawn as
resolved. Three ways to get there:

- three replicas at a small pacing interval: the per-channel budget is shared, so no two calls to
  one channel (chat.postMessage or chat.update, from any replica) come closer than the interval;
- a storm of 429s (Retry-After 1) on chat.postMessage part way through;
- kill -9 of one of two replicas part way through (from inside chat.postMessage: the message is
  stored, that replica never records it), not restarted: the other takes its messages over once
  the claim and ack_wait (3 s) run out, and finds the orphaned post again instead of reposting.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi, channel_id

from tests.reliability.harness import (
    WEBHOOK_PATH,
    AlertmanagerLike,
    SlackPost,
    StageProcess,
    ThreadedSlack,
    dead_letters,
    incident_states,
    jsonl_lines,
    record,
    settled,
    start_all,
    stop_all,
    wait_until,
)
from tests.support.app import TOKEN
from tests.support.payloads import alert, webhook

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(300)]

CHANNELS = 8  # incident i goes to #t{i % CHANNELS} (its team label)
PACED = ("chat.postMessage", "chat.update")


class ReplicaSlackApi(SlackApi):
    """Slack with two faults to inject at the n-th chat.postMessage: a 429 storm (the next
    ``storm_calls`` calls answered 429, Retry-After 1) and a SIGKILL of one notifier replica,
    sent after the message is stored and before the answer goes back."""

    def __init__(self) -> None:
        super().__init__()
        self.post_count = 0
        self.storm_at: int | None = None
        self.storm_calls = 0
        self.kill_at: int | None = None
        self.victim: Callable[[], int | None] = lambda: None
        self.killed: dict[str, Any] | None = None

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        answer = super()._chat_postMessage(params)
        if not answer.get("ok"):
            return answer
        self.post_count += 1
        if self.storm_at is not None and self.post_count >= self.storm_at:
            self.storm_at = None
            self.rate_limit("chat.postMessage", retry_after=1, times=self.storm_calls)
        if self.kill_at is not None and self.post_count >= self.kill_at:
            pid = self.victim()
            if pid is not None:
                self.kill_at = None
                os.kill(pid, signal.SIGKILL)
                meta = (params.get("metadata") or {}).get("event_payload", {})
                self.killed = {"post": self.post_count, "pid": pid, **meta}
        return answer


def team(i: int) -> str:
    return f"t{i % CHANNELS}"


def alerts_of(i: int, status: str, second: bool) -> list[dict[str, Any]]:
    labels = {"team": team(i)}
    found = [alert(f"Replica{i}", status=status, service=f"svc-{i}", extra_labels=labels)]
    if second:  # a second alert of the group: a new fingerprint, the same team
        labels = {**labels, "pod": f"svc-{i}-b"}
        found.append(alert(f"Replica{i}", status=status, service=f"svc-{i}", extra_labels=labels))
    return found


def body(i: int, step: str) -> dict[str, Any]:
    group_key = f'{{}}:{{alertname="Replica{i}", namespace="shop"}}'
    if step == "first":
        return webhook(alerts_of(i, "firing", False), group_key=group_key)
    if step == "second":
        return webhook(alerts_of(i, "firing", True), group_key=group_key)
    return webhook(alerts_of(i, "resolved", True), group_key=group_key)


@dataclass
class Outcome:
    incidents: dict[str, int]  # incident id -> i
    posts: list[SlackPost]
    calls: list[tuple[str, str, str, int, float]]  # (method, channel id, as named, status, at)
    jsonl: list[dict[str, Any]]
    letters: list[dict[str, Any]]
    notify: list[StageProcess]
    seconds: float
    webhooks: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)  # Slack calls by method


def run_replicas(
    tmp_path: Path,
    api: ReplicaSlackApi,
    *,
    incidents: int,
    replicas: int,
    interval: float,
    victim: int | None = None,
) -> Outcome:
    """The pipeline with ``replicas`` notifiers, every incident driven through first alert,
    second alert and resolve; returns once Slack holds all of it and the bus is settled."""
    drafts_path = tmp_path / "drafts.jsonl"
    with NatsServer(workdir=tmp_path / "nats") as server, ThreadedSlack(api) as slack:
        common = {"TRIAGE_NATS_URL": server.url}
        ingest = StageProcess("ingest", {**common, "TRIAGE_INGEST_BEARER_TOKEN": TOKEN}, tmp_path)
        worker = StageProcess("worker", common, tmp_path)
        notify_env = {
            **common,
            "TRIAGE_DELIVERY_JSONL_PATH": str(drafts_path),
            "TRIAGE_ROUTING_TEAM_LABEL": "team",
            "TRIAGE_SLACK_BOT_TOKEN": api.token,
            "TRIAGE_SLACK_BASE_URL": api.url,
            "TRIAGE_SLACK_CHANNEL_INTERVAL_S": str(interval),
            "TRIAGE_SLACK_GRAPHS": "false",
        }
        notify = [
            StageProcess("notify", notify_env, tmp_path, name=f"notify{n}") for n in range(replicas)
        ]
        stages = [ingest, worker, *notify]
        if victim is not None:
            target = notify[victim]
            api.victim = lambda: target.proc.pid if target.alive and target.proc else None
        am = AlertmanagerLike(ingest.base_url + WEBHOOK_PATH)
        ids: dict[str, int] = {}
        second: set[str] = set()
        resolved: set[str] = set()

        def send(client: httpx.Client, i: int, step: str) -> str:
            resp = am.send(client, body(i, step))
            assert resp.status_code == 200, resp.text
            return str(resp.json()["incident_id"])

        try:
            start_all(stages)
            started = time.monotonic()
            with httpx.Client() as client:
                for i in range(incidents):
                    ids[send(client, i, "first")] = i

                def drive() -> bool:
                    for stage in stages:
                        if (
                            stage.proc is not None
                            and not stage.alive
                            and stage is not (notify[victim] if victim is not None else None)
                        ):
                            raise AssertionError(f"{stage.name} died:\n{stage.log_tail()}")
                    posts = slack.posts()
                    # The second alert once the first draft is in Slack: revision 2 is a reply.
                    tops = {p.incident_id for p in posts if p.thread_ts is None}
                    for inc in sorted(tops - second, key=lambda inc: ids.get(inc or "", 0)):
                        if inc in ids:
                            send(client, ids[inc], "second")
                            second.add(inc)
                    # The resolve right after, once the incident has taken the second alert
                    # (were it taken first, the second alert would open a new episode).
                    waiting = sorted(second - resolved)
                    if waiting:
                        states = incident_states(server.url, waiting)
                        for inc, state in states.items():
                            if state.requested_revision >= 2:
                                send(client, ids[inc], "resolve")
                                resolved.add(inc)
                    replies = Counter(
                        (p.incident_id, p.kind, p.revision) for p in posts if p.thread_ts
                    )
                    return all(
                        (inc, "draft", 2) in replies and (inc, "resolve", 1) in replies
                        for inc in ids
                    )

                wait_until(drive, 90, "every incident's draft, revision 2 and resolve", 0.3)
            # Nothing pending or unacked: no redelivery can still post a duplicate.
            wait_until(lambda: settled(server.url), 60, "consumers settled", every=0.5)
            seconds = time.monotonic() - started
            # A last look after settling: anything late would show up here.
            posts = slack.posts()
            calls = slack.read(
                lambda api: [
                    (
                        c.method,
                        channel_id(str(c.params.get("channel", ""))),
                        str(c.params.get("channel", "")),
                        c.status,
                        c.at,
                    )
                    for c in api.calls
                    if c.method in PACED
                ]
            )
            methods = slack.read(lambda api: Counter(c.method for c in api.calls))
            letters = dead_letters(server.url)
            for stage in stages:
                stage.reap()
                assert stage.exits == [], f"{stage.name} exited on its own:\n{stage.log_tail()}"
        except BaseException:
            for stage in stages:
                print(f"--- {stage.name} log tail ---\n{stage.log_tail()}")
            print(f"--- where the incidents stand ---\n{standing(server.url, slack, ids)}")
            raise
        finally:
            stop_all(stages)
    return Outcome(
        ids, posts, calls, jsonl_lines(drafts_path), letters, notify, seconds, am.attempts, methods
    )


def standing(nats_url: str, slack: ThreadedSlack[ReplicaSlackApi], ids: dict[str, int]) -> str:
    """For a failure's report: what Slack holds of the unfinished incidents, and their state."""
    try:
        posts = slack.posts()
        have = Counter((p.incident_id, p.kind, p.revision, p.thread_ts is None) for p in posts)
        unfinished = [
            inc
            for inc in ids
            if not (have[(inc, "draft", 2, False)] and have[(inc, "resolve", 1, False)])
        ]
        states = incident_states(nats_url, unfinished)
        lines = [f"{len(posts)} posts; {len(unfinished)} of {len(ids)} incidents unfinished"]
        for inc in unfinished:
            st = states.get(inc)
            mine = sorted((k, r, top) for i, k, r, top in have if i == inc)
            lines.append(
                f"{inc}: slack {mine}; state "
                + (
                    f"{st.status} requested {st.requested_revision} investigated "
                    f"{st.investigated_revision} notify_claim {st.notify_claim} deliveries "
                    f"{[(d.sink, d.kind, d.revision, d.complete) for d in st.deliveries]}"
                    if st
                    else "none"
                )
            )
        return "\n".join(lines)
    except Exception as exc:  # a report, not the failure
        return f"unavailable: {type(exc).__name__}: {exc}"


def check_exactly_once(out: Outcome) -> dict[str, int]:
    """Asserts what people see in Slack and in the JSONL file; returns the counts."""
    assert len(out.incidents) == len(set(out.incidents.values()))
    by_incident: defaultdict[str | None, list[SlackPost]] = defaultdict(list)
    for p in out.posts:
        by_incident[p.incident_id].append(p)
    assert set(by_incident) == set(out.incidents), "a post without (or with a foreign) incident"
    lost: list[str] = []
    duplicates: list[str] = []
    split: list[str] = []
    for inc, i in out.incidents.items():
        posts = by_incident[inc]
        tops = [p for p in posts if p.thread_ts is None]
        replies = Counter((p.kind, p.revision) for p in posts if p.thread_ts is not None)
        if len(tops) > 1:
            split.append(inc)
        for want in (("draft", 2), ("resolve", 1)):
            if replies[want] == 0:
                lost.append(f"{inc} {want}")
            if replies[want] > 1:
                duplicates.append(f"{inc} {want} x{replies[want]}")
        if not tops:
            lost.append(f"{inc} top-level")
            continue
        [top] = tops[:1]
        assert (top.kind, top.revision) == ("draft", 1), top
        assert top.channel == channel_id(f"#{team(i)}"), top
        assert set(replies) <= {("draft", 2), ("resolve", 1)}, replies
        # Every reply in that one thread, in that channel: no second thread anywhere.
        for p in posts:
            if p.thread_ts is not None and (p.channel, p.thread_ts) != (top.channel, top.ts):
                split.append(f"{inc} reply outside its thread")
        assert top.edits >= 1, f"{inc}: parent not redrawn as resolved"
    assert (lost, duplicates, split) == ([], [], [])

    jsonl = Counter(rec["delivery_id"] for rec in out.jsonl)
    assert duplicate_deliveries_of(out) == {}
    assert set(jsonl) == {
        f"{inc}.{kind}" for inc in out.incidents for kind in ("draft.1", "draft.2", "resolve.1")
    }
    assert out.letters == []
    return {
        "incidents": len(out.incidents),
        "slack_top_level": sum(1 for p in out.posts if p.thread_ts is None),
        "slack_replies": sum(1 for p in out.posts if p.thread_ts is not None),
        "lost": len(lost),
        "duplicates": len(duplicates),
        "split_threads": len(split),
        "jsonl_lines": sum(jsonl.values()),
        "dead_letters": len(out.letters),
    }


def duplicate_deliveries_of(out: Outcome) -> dict[str, int]:
    counts = Counter(rec["delivery_id"] for rec in out.jsonl)
    return {k: n for k, n in counts.items() if n > 1}


def gaps_by_channel(out: Outcome, ok_only: bool = True) -> dict[str, float]:
    """The least time between two paced calls to each channel, any replica."""
    times: defaultdict[str, list[float]] = defaultdict(list)
    for _method, cid, _named, status, at in out.calls:
        if status == 200 or not ok_only:
            times[cid].append(at)
    return {
        cid: min((b - a for a, b in itertools.pairwise(sorted(ts))), default=float("inf"))
        for cid, ts in times.items()
    }


def close_calls(out: Outcome, least: float) -> list[tuple[Any, ...]]:
    """Pairs of consecutive paced calls to one channel less than ``least`` apart: (seconds,
    first call's method and channel as named, the second's)."""
    by_channel: defaultdict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for method, cid, named, _status, at in out.calls:
        by_channel[cid].append((at, method, named))
    found = []
    for calls in by_channel.values():
        for a, b in itertools.pairwise(sorted(calls)):
            if b[0] - a[0] < least:
                found.append((round(b[0] - a[0], 3), *a[1:], *b[1:]))
    return found


def figures(out: Outcome, counts: dict[str, int], interval: float) -> dict[str, Any]:
    gaps = gaps_by_channel(out)
    statuses = Counter((m, s) for m, _c, _n, s, _at in out.calls)
    return {
        **counts,
        "notify_replicas": len(out.notify),
        "channels": CHANNELS,
        "channel_interval_s": interval,
        "min_gap_between_paced_calls_s": round(min(gaps.values()), 3),
        "paced_calls": {f"{m} {s}": n for (m, s), n in sorted(statuses.items())},
        "slack_calls": dict(sorted(out.methods.items())),
        "webhook_attempts": dict(out.webhooks),
        "seconds_to_all_posted_and_settled": round(out.seconds, 1),
    }


def test_three_replicas_share_the_channel_budget_and_post_each_message_once(tmp_path: Path):
    interval = 0.4
    api = ReplicaSlackApi()
    out = run_replicas(tmp_path, api, incidents=40, replicas=3, interval=interval)
    counts = check_exactly_once(out)
    gaps = gaps_by_channel(out, ok_only=False)
    assert len(gaps) == CHANNELS
    # One budget per channel, whichever replica calls: no two calls closer than it allows.
    too_close = close_calls(out, interval * 0.8)
    assert too_close == [], too_close
    record("notify_replicas_pacing", figures(out, counts, interval))


def test_a_429_storm_on_two_replicas_loses_nothing_and_posts_nothing_twice(tmp_path: Path):
    interval = 0.2
    api = ReplicaSlackApi()
    api.storm_at, api.storm_calls = 12, 25
    out = run_replicas(tmp_path, api, incidents=24, replicas=2, interval=interval)
    counts = check_exactly_once(out)
    answered_429 = sum(1 for m, _c, _n, s, _at in out.calls if m == "chat.postMessage" and s == 429)
    assert answered_429 == api.storm_calls
    record(
        "notify_replicas_429_storm", {**figures(out, counts, interval), "http_429": answered_429}
    )


def test_kill_9_of_one_replica_the_other_takes_over(tmp_path: Path):
    interval = 0.2
    api = ReplicaSlackApi()
    api.kill_at = 15
    out = run_replicas(tmp_path, api, incidents=24, replicas=2, interval=interval, victim=0)
    counts = check_exactly_once(out)
    assert api.killed is not None, "the replica was not killed"
    assert not out.notify[0].alive and out.notify[0].starts == 1  # not restarted
    record(
        "notify_replicas_kill_9",
        {**figures(out, counts, interval), "killed_at": api.killed},
    )
