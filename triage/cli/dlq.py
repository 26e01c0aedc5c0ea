"""``triage dlq list | replay``: what landed on PREFIX.deadletter.STAGE, and sending it back.

Dead letters are read straight from the stream by sequence (no consumer is created, so this
works with either retention policy and leaves the stages' consumers alone). A replay publishes
the original payload to its original subject under a new ``Nats-Msg-Id`` (the original id would
still be inside the de-duplication window and be dropped), waits for JetStream's ack, and only
then deletes the dead letter: a replay interrupted in between leaves the letter in place, and
running it again publishes under the same id, which JetStream drops as a duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import ValidationError

from triage.bus.jetstream import TRANSIENT
from triage.bus.subjects import CONSUMERS, Subjects
from triage.errors import BrokerUnavailable
from triage.models import DeadLetter, utcnow
from triage.settings import NatsSettings, Settings


@dataclass(frozen=True)
class Entry:
    """One dead letter as stored; ``letter`` is None when it cannot be read (then no replay)."""

    seq: int
    stage: str
    letter: DeadLetter | None
    problem: str = ""

    def age(self, now: datetime) -> timedelta | None:
        return None if self.letter is None else now - self.letter.at

    def replay_id(self) -> str:
        # Stable for this letter (a re-run is a duplicate), new for a re-dead-lettered copy.
        at = int(self.letter.at.timestamp() * 1_000_000) if self.letter else 0
        return f"dlq-replay:{self.seq}:{at}"


@dataclass(frozen=True)
class Replayed:
    entry: Entry
    published: bool  # False: JetStream already had this replay (an earlier, interrupted run)


class DeadLetters:
    def __init__(self, js: JetStreamContext, settings: NatsSettings) -> None:
        self._js = js
        self._stream = settings.stream
        self._subjects = Subjects(settings.subject_prefix)
        self._filter = self._subjects.dead_letter(">")

    async def list(self, stage: str | None = None) -> list[Entry]:
        found: list[Entry] = []
        seq = 1
        subject = self._subjects.dead_letter(stage) if stage else self._filter
        while True:
            try:
                raw = await self._js.get_msg(self._stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return found
            except TRANSIENT as exc:
                raise BrokerUnavailable(f"reading dead letters: {type(exc).__name__}") from exc
            found.append(self._entry(raw.seq or seq, raw.subject or "", raw.data or b""))
            seq = (raw.seq or seq) + 1

    def _entry(self, seq: int, subject: str, data: bytes) -> Entry:
        stage = subject.rsplit(".", 1)[-1]
        try:
            return Entry(seq, stage, DeadLetter.model_validate_json(data))
        except ValidationError as exc:
            return Entry(seq, stage, None, f"unreadable: {exc.errors()[0]['msg']}")

    async def replay(self, entry: Entry) -> Replayed:
        if entry.letter is None:
            raise ValueError(f"dead letter {entry.seq} cannot be replayed: {entry.problem}")
        try:
            ack = await self._js.publish(
                entry.letter.subject,
                entry.letter.payload.encode(),
                headers={"Nats-Msg-Id": entry.replay_id()},
            )
            await self._js.delete_msg(self._stream, entry.seq)
        except TRANSIENT as exc:
            raise BrokerUnavailable(
                f"replaying {entry.seq}: {type(exc).__name__}", subject=entry.letter.subject
            ) from exc
        return Replayed(entry, published=not ack.duplicate)


def select(entries: list[Entry], *, stage: str | None, seqs: list[int], every: bool) -> list[Entry]:
    """``--all``, ``--stage`` and sequences narrow each other; with none, nothing is chosen."""
    if not (every or stage or seqs):
        return []
    chosen = [e for e in entries if stage is None or e.stage == stage]
    if seqs:
        wanted = set(seqs)
        chosen = [e for e in chosen if e.seq in wanted]
    return chosen


def format_age(age: timedelta | None) -> str:
    if age is None:
        return "?"
    s = max(int(age.total_seconds()), 0)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{s}s"
    return f"{s}s"


def table(entries: list[Entry], now: datetime) -> str:
    rows = [("SEQ", "STAGE", "DELIVERIES", "AGE", "SUBJECT", "REASON")]
    for e in entries:
        letter = e.letter
        rows.append(
            (
                str(e.seq),
                e.stage,
                str(letter.deliveries) if letter else "?",
                format_age(e.age(now)),
                letter.subject if letter else "?",
                (letter.reason if letter else e.problem).replace("\n", " ")[:120],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:5])) + "  " + r[5] for r in rows
    )


def as_json(entries: list[Entry], now: datetime) -> str:
    out = []
    for e in entries:
        age = e.age(now)
        out.append(
            {
                "seq": e.seq,
                "stage": e.stage,
                "subject": e.letter.subject if e.letter else None,
                "reason": e.letter.reason if e.letter else e.problem,
                "deliveries": e.letter.deliveries if e.letter else None,
                "age_s": round(age.total_seconds(), 1) if age is not None else None,
                "at": e.letter.at.isoformat() if e.letter else None,
            }
        )
    return json.dumps(out, indent=2)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    where = "NATS at TRIAGE_NATS_URL, else the embedded server of `triage serve`"
    dlq = sub.add_parser(
        "dlq", help="list or replay dead letters", description=f"Dead letters on {where}."
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    stages = sorted(CONSUMERS)
    listing = actions.add_parser("list", help="dead letters with stage, reason, deliveries, age")
    listing.add_argument("--stage", choices=stages, help="only this stage")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    replay = actions.add_parser(
        "replay", help="publish dead letters to their original subject, then delete them"
    )
    replay.add_argument("seq", nargs="*", type=int, help="stream sequences (from `dlq list`)")
    replay.add_argument("--stage", choices=stages, help="every dead letter of this stage")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")


async def _quiet(_: Exception) -> None:
    # The failure is reported once, below, instead of nats-py's traceback per attempt.
    return None


async def _connect(url: str) -> Client:
    try:
        return await nats.connect(url, connect_timeout=3, max_reconnect_attempts=1, error_cb=_quiet)
    except (OSError, *TRANSIENT, nats.errors.NoServersError) as exc:
        raise BrokerUnavailable(f"cannot reach NATS at {url}: {exc}") from exc


async def run_async(settings: Settings, args: argparse.Namespace, out: list[str]) -> int:
    url = settings.nats.url or f"nats://127.0.0.1:{settings.nats.embedded_port}"
    nc = await _connect(url)
    try:
        letters = DeadLetters(nc.jetstream(timeout=settings.nats.publish_timeout_s), settings.nats)
        now = utcnow()
        if args.dlq_command == "list":
            entries = await letters.list(args.stage)
            out.append(as_json(entries, now) if args.json else table(entries, now))
            return 0
        if not (args.all or args.stage or args.seq):
            out.append("nothing selected: name sequences, --stage STAGE or --all")
            return 2
        chosen = select(await letters.list(), stage=args.stage, seqs=args.seq, every=args.all)
        missing = sorted(set(args.seq) - {e.seq for e in chosen})
        code = 0
        if missing:
            out.append(f"not found: {', '.join(map(str, missing))}")
            code = 1
        for entry in chosen:
            target = entry.letter.subject if entry.letter else "?"
            if entry.letter is None:
                out.append(f"skip {entry.seq} ({entry.stage}): {entry.problem}")
                code = 1
            elif args.dry_run:
                out.append(f"would replay {entry.seq} ({entry.stage}) -> {target}")
            else:
                done = await letters.replay(entry)
                note = "" if done.published else " (already replayed; dead letter removed)"
                out.append(f"replayed {entry.seq} ({entry.stage}) -> {target}{note}")
        if not chosen:
            out.append("no dead letters matched")
        return code
    finally:
        await nc.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    out: list[str] = []
    try:
        return asyncio.run(run_async(settings, args, out))
    finally:
        if out:
            print("\n".join(out), flush=True)
