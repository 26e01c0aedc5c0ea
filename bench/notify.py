"""Notifier replicas benchmark: `make bench-notify` (= `.venv/bin/python bench/notify.py`).

For 1, 2 and 4 `triage notify` replicas (real subprocesses, configured by environment as
deployed, each run on a fresh nats-server and a fresh local Slack server: lab/triage_lab/fakes/slack.py in
a thread of this process): --incidents incidents spread over --channels channels by their team
label, each with three delivery requests published straight onto the bus (the incident state
written first, as the worker would have): its first draft; once that is in Slack, revision 2
(a reply in the thread) and the resolve (a reply, and the parent redrawn). So notify is what is
measured, not ingest or investigations. Every chat.postMessage and chat.update to a channel
takes a slot of that channel's budget, one per --interval seconds, shared by the replicas
through the pacing bucket.

Reported per replica count: duplicates, lost and split threads (each must be 0), wall time from
the first publish to the last call, paced calls per second per channel against the budget
(1/interval), throughput against the ideal (every channel's budget used all the time: the
busiest channel's calls x interval), and the least gap between two calls to one channel
(whichever replica made them: slots are reserved one interval apart, a replica that gets
the CPU late sends late, so on a crowded machine a few gaps come out shorter). Ratios within one run, not absolute claims: on a shared 2-core
machine nats-server, the replicas and this process compete for the same cores.

Writes bench/results/notify.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from triage_lab.fakes.nats import NatsServer  # noqa: E402
from triage_lab.fakes.slack import SlackApi, channel_id  # noqa: E402

from tests.reliability.harness import (  # noqa: E402
    SlackPost,
    StageProcess,
    ThreadedSlack,
    settled,
    start_all,
    stop_all,
)
from tests.support.drafts import draft, incident, resolve  # noqa: E402
from triage.bus.jetstream import Bus  # noqa: E402
from triage.models import DeliveryRequest  # noqa: E402
from triage.settings import NatsSettings  # noqa: E402
from triage.telemetry import Metrics  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "notify.json"
PACED = ("chat.postMessage", "chat.update")
CALLS_PER_INCIDENT = 4  # first draft, revision 2, resolve (posts), the parent redrawn (update)


class BenchSlackApi(SlackApi):
    """Keeps what each accepted post was about as it arrives, so that following the run costs
    the server next to nothing (a blocked server loop would bunch up the calls it records)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str, int, bool]] = []  # incident, kind, revision, top-level

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        answer = super()._chat_postMessage(params)
        if answer.get("ok"):
            meta = (params.get("metadata") or {}).get("event_payload") or {}
            top = not params.get("thread_ts")
            self.events.append(
                (meta.get("incident_id"), meta.get("kind"), meta.get("revision"), top)
            )
        return answer


def labels_of(i: int, channels: int) -> dict[str, str]:
    return {
        "alertname": f"Bench{i}",
        "namespace": "shop",
        "service": f"svc-{i}",
        "severity": "critical",
        "team": f"t{i % channels}",
    }


def requests_of(i: int, channels: int) -> tuple[str, list[DeliveryRequest]]:
    """The incident id and its three requests: first draft, revision 2, resolve."""
    inc = f"inc-bench-{i:04d}"
    labels = labels_of(i, channels)
    first = draft(inc, 1, labels=labels)
    second = draft(inc, 2, labels=labels, reason="incident changed")
    done = resolve(inc).model_copy(update={"labels": labels, "title": first.title})
    return inc, [first, second, done]


def msg_id(request: DeliveryRequest) -> str:
    return f"{request.incident_id}.{request.kind}.{request.revision}"


async def drive(
    url: str, slack: ThreadedSlack[BenchSlackApi], incidents: int, channels: int, limit_s: float
) -> float:
    """Publishes the workload and returns when Slack holds all of it (the start, monotonic)."""
    bus = Bus(NatsSettings(), url, Metrics())
    await bus.connect()
    try:
        await bus.declare()
        work = dict(requests_of(i, channels) for i in range(incidents))
        for i, inc in enumerate(work):
            state = incident(inc).model_copy(
                update={
                    "common_labels": labels_of(i, channels),
                    "requested_revision": 2,
                    "investigated_revision": 2,
                }
            )
            await bus.mutate_incident(inc, lambda s, state=state: state if s is None else None)
        started = time.monotonic()
        for first, _, _ in work.values():
            await bus.publish_delivery(first, msg_id(first))
        followed: set[str] = set()
        replies: set[tuple[str, str, int]] = set()
        seen = 0
        while True:
            events = await asyncio.to_thread(slack.read, lambda api, seen=seen: api.events[seen:])
            seen += len(events)
            for inc, kind, rev, top in events:
                if not top:
                    replies.add((inc, kind, rev))
                elif inc in work and inc not in followed:
                    for request in work[inc][1:]:
                        await bus.publish_delivery(request, msg_id(request))
                    followed.add(inc)
            if all((inc, "draft", 2) in replies and (inc, "resolve", 1) in replies for inc in work):
                # The resolve's redraw of the parent is its last call: wait for it too.
                updates = await asyncio.to_thread(
                    slack.read, lambda api: len(api.calls_to("chat.update"))
                )
                if updates >= len(work):
                    return started
            if time.monotonic() - started > limit_s:
                raise TimeoutError(f"not all delivered within {limit_s:g}s")
            await asyncio.sleep(0.1)
    finally:
        await bus.close()


def tally(posts: list[SlackPost], incidents: list[str]) -> dict[str, int]:
    by_incident: defaultdict[str | None, list[SlackPost]] = defaultdict(list)
    for p in posts:
        by_incident[p.incident_id].append(p)
    duplicates = lost = split = 0
    for inc in incidents:
        mine = by_incident[inc]
        tops = [p for p in mine if p.thread_ts is None]
        split += max(len(tops) - 1, 0)
        counts = Counter((p.kind, p.revision) for p in mine)
        for want in (("draft", 1), ("draft", 2), ("resolve", 1)):
            lost += counts[want] == 0
            duplicates += max(counts[want] - 1, 0)
        if tops:
            split += sum(
                1
                for p in mine
                if p.thread_ts is not None
                and (p.channel, p.thread_ts) != (tops[0].channel, tops[0].ts)
            )
    foreign = sum(len(v) for k, v in by_incident.items() if k not in set(incidents))
    return {"duplicates": duplicates, "lost": lost, "split_threads": split, "foreign": foreign}


def run_once(replicas: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        workdir = Path(tmp)
        with (
            NatsServer(workdir=workdir / "nats") as server,
            ThreadedSlack(BenchSlackApi()) as slack,
        ):
            env = {
                "TRIAGE_NATS_URL": server.url,
                "TRIAGE_NATS_ACK_WAIT_S": "30",
                "TRIAGE_ROUTING_TEAM_LABEL": "team",
                "TRIAGE_SLACK_BOT_TOKEN": slack.api.token,
                "TRIAGE_SLACK_BASE_URL": slack.api.url,
                "TRIAGE_SLACK_CHANNEL_INTERVAL_S": str(args.interval),
                "TRIAGE_SLACK_GRAPHS": "false",
            }
            notify = [
                StageProcess("notify", env, workdir, name=f"notify{n}") for n in range(replicas)
            ]
            try:
                start_all(notify)
                cpu_before = {n.name: cpu_seconds(n) for n in notify}
                started = asyncio.run(
                    drive(server.url, slack, args.incidents, args.channels, args.timeout)
                )
                cpu = {n.name: round(cpu_seconds(n) - cpu_before[n.name], 2) for n in notify}
                deadline = time.monotonic() + 30
                while not settled(server.url, ()) and time.monotonic() < deadline:
                    time.sleep(0.2)
                is_settled = settled(server.url, ())
                time.sleep(args.linger)  # anything late (a redelivery posting twice) shows here
                posts = slack.posts()
                calls = slack.read(
                    lambda api: [
                        (c.method, channel_id(str(c.params.get("channel", ""))), c.status, c.at)
                        for c in api.calls
                    ]
                )
            except BaseException:
                for n in notify:
                    print(f"--- {n.name} log tail ---\n{n.log_tail()}", file=sys.stderr)
                raise
            finally:
                stop_all(notify)
    incidents = [requests_of(i, args.channels)[0] for i in range(args.incidents)]
    counts = tally(posts, incidents)
    paced = [(cid, at) for method, cid, status, at in calls if method in PACED and status == 200]
    by_channel: defaultdict[str, list[float]] = defaultdict(list)
    for cid, at in paced:
        by_channel[cid].append(at)
    wall = max(at for _, at in paced) - started
    budget = 1 / args.interval
    per_channel = {cid: len(ts) / wall for cid, ts in by_channel.items()}
    ideal_wall = max(len(ts) for ts in by_channel.values()) * args.interval
    gaps = [b - a for ts in by_channel.values() for a, b in itertools.pairwise(sorted(ts))]
    return {
        "replicas": replicas,
        **counts,
        "settled": is_settled,
        "slack_posts": len(posts),
        "paced_calls": len(paced),
        "http_429": sum(1 for _m, _c, status, _at in calls if status == 429),
        "wall_s": round(wall, 2),
        "ideal_wall_s": round(ideal_wall, 2),
        "throughput_of_ideal": round(ideal_wall / wall, 3),
        "calls_per_s": round(len(paced) / wall, 2),
        "calls_per_s_per_channel_mean": round(statistics.fmean(per_channel.values()), 3),
        "calls_per_s_per_channel_max": round(max(per_channel.values()), 3),
        "budget_per_s_per_channel": round(budget, 3),
        "channel_budget_used_mean": round(statistics.fmean(per_channel.values()) / budget, 3),
        "min_gap_s": round(min(gaps), 3),
        "gap_p1_s": round(sorted(gaps)[len(gaps) // 100], 3),
        "gaps_under_0.8_interval": sum(1 for g in gaps if g < 0.8 * args.interval),
        "gaps": len(gaps),
        "notify_cpu_s": cpu,
    }


def cpu_seconds(stage: StageProcess) -> float:
    """User + system CPU of a running stage (Linux /proc), 0 when unknown."""
    if stage.proc is None:
        return 0.0
    try:
        fields = Path(f"/proc/{stage.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", default="1,2,4", help="replica counts, comma-separated")
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.25, help="s between calls/channel")
    parser.add_argument("--timeout", type=float, default=150, help="per replica count, s")
    parser.add_argument("--linger", type=float, default=2.0, help="s to watch for late posts")
    args = parser.parse_args()

    started_at = datetime.now(UTC)
    load = list(os.getloadavg())
    runs = []
    for replicas in (int(r) for r in args.replicas.split(",")):
        run = run_once(replicas, args)
        runs.append(run)
        print(
            f"{replicas} replica(s): wall {run['wall_s']} s (ideal {run['ideal_wall_s']} s, "
            f"{run['throughput_of_ideal']:.0%}), {run['calls_per_s_per_channel_mean']} calls/s "
            f"per channel of {run['budget_per_s_per_channel']}; duplicates {run['duplicates']}, "
            f"lost {run['lost']}, split threads {run['split_threads']}, min gap "
            f"{run['min_gap_s']} s; notify CPU {run['notify_cpu_s']}",
            flush=True,
        )
    base = runs[0]["calls_per_s"]
    for run in runs:
        run["throughput_vs_first"] = round(run["calls_per_s"] / base, 3) if base else None
    report = {
        "command": "bench/notify.py",
        "started_at": started_at.isoformat(),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_start": load,
        },
        "config": {
            "incidents": args.incidents,
            "channels": args.channels,
            "channel_interval_s": args.interval,
            "requests_per_incident": "first draft; revision 2 and resolve once it is in Slack",
            "paced_calls_per_incident": CALLS_PER_INCIDENT,
            "notify": "`triage notify` subprocesses, TRIAGE_NATS_MAX_WORKERS/FETCH_BATCH "
            "defaults, ack_wait 30 s, Slack sink only (graphs off)",
            "slack": "lab/triage_lab/fakes/slack.py in a thread of the benchmark process",
        },
        "targets": {
            "no_duplicates_lost_or_split": all(
                r["duplicates"] == r["lost"] == r["split_threads"] == 0 for r in runs
            ),
            "budget_kept(no_gap<0.8*interval)": all(
                r["gaps_under_0.8_interval"] == 0 for r in runs
            ),
        },
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(f"-> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
