"""Ten thousand bad, adversarial and odd webhook bodies against a real `triage ingest` process
(with NATS and a bearer token), then a worker and a notifier: no 5xx, every refusal a 4xx with a
JSON error, nothing on the bus from a refusal, and every accepted notification ends in a draft
or a dead letter with its reason.

The bodies are generated from a fixed seed, so every run sends the same ones. Each category
knows the answer the README promises for it (400 malformed JSON, 401 credentials, 413 too
large, 415 content type, 422 schema), and every body, refused or not, starts from a webhook
with a group key of its own: a refusal that slipped onto the stream would show up in the
stream's count. The accepted ones are few (valid but odd: unicode, NUL escapes, naive and
date-only times, huge annotations, hundreds of labels, ...) and each is a new incident; some
are sent again, as Alertmanager resends, and must be dropped by JetStream's de-duplication.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from triage_lab.fakes.nats import NatsServer

from tests.reliability.harness import (
    WEBHOOK_PATH,
    StageProcess,
    dead_letters,
    drafts_by_incident,
    duplicate_deliveries,
    record,
    settled,
    start_all,
    stop_all,
    subject_count,
    wait_until,
)
from tests.support.app import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(420)]

SEED = 13
TOTAL = 10_000
ACCEPTED = 120  # distinct valid-but-odd notifications, each a new incident
RESENDS = 30  # of those, sent again (Alertmanager's resends)
CONCURRENCY = 16
MAX_BODY = 1024 * 1024  # TRIAGE_INGEST_MAX_BODY_BYTES' default

ODD_TEXT = [
    "checkout ✓",
    "日本語のラベル",
    "עברית RTL \u202e txt",
    "zero\u200bwidth",
    "e\u0301\u0301 combining",
    "emoji 🔥🚀👩‍💻",
    "nul\u0000inside",
    "ctl \u0001\u001f\u007f",
    "<!channel> <@U123> <https://evil|x> &amp;",
    'back\\slash "quote"',
    "astral 😀 \U0001d518\U0001d52b\U0001d526",
    "",
    " ",
    "\n\t",
]
GOOD_TIMES = [
    "2026-01-01",  # date only: midnight UTC
    "2026-01-01T00:00:00",  # naive: read as UTC
    "2026-01-01T00:00:00.123456789Z",  # nanoseconds, as Go sends them
    "2026-01-01t00:00:00z",
    "2026-01-01 00:00:00+14:00",
    "2026-01-01T00:00:00-12:00",
    "1970-01-01T00:00:00Z",
    "2199-12-31T23:59:59Z",
    1_700_000_000,  # a number: Unix seconds
    "1700000000",
]
BAD_TIMES = [
    "0001-01-01T00:00:00Z",  # year 1 (Alertmanager's zero time is only an endsAt)
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
    "2199-12-31T23:59:59-12:00",  # 2200 in UTC
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "now",
    "",
    True,
    None,
    [],
    {},
    1e20,
]
BAD_ENDS = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "yesterday", True, 1e20]
NOT_STR = [1, -1, 1.5, True, None, [], ["x"], {}, {"a": "b"}]
NOT_DICT = [1, "x", None, True, [], ["a", "b"]]


def _alert(rng: random.Random, n: int, i: int) -> dict[str, Any]:
    labels = {
        "alertname": f"Fuzz{n}",
        "namespace": rng.choice(["shop", "payments", "kube-system"]),
        "service": f"svc-{rng.randrange(50)}",
        "severity": rng.choice(["critical", "warning", "info"]),
        "instance": f"10.0.{rng.randrange(256)}.{i}:9100",
    }
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"alert {n}/{i}", "description": rng.choice(ODD_TEXT)},
        "startsAt": "2026-03-01T12:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": f"{n:08x}{i:08x}",
    }


def base_webhook(rng: random.Random, n: int) -> dict[str, Any]:
    """A well-formed firing notification whose group key no other body has."""
    alerts = [_alert(rng, n, i) for i in range(rng.randint(1, 3))]
    common = dict(alerts[0]["labels"])
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    return {
        "receiver": "triage",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": common["alertname"]},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Fuzz{n}", case="{n}"}}',
        "truncatedAlerts": 0,
    }


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


@dataclass
class Case:
    category: str
    body: bytes
    expect: frozenset[int]
    content_type: str = "application/json"
    auth: str | bytes | None = f"Bearer {TOKEN}"
    chunked: bool = False  # sent with Transfer-Encoding: chunked (only the too-large ones)
    group: int | None = None  # the accepted notification this is (or resends)


@dataclass
class Outcome:
    case: Case
    status: int | None
    error: str = ""  # the JSON error of a refusal, or why there was none
    answer: dict[str, Any] = field(default_factory=dict)


# -- the accepted ones: valid but odd ---------------------------------------------------------


def odd_but_valid(rng: random.Random, n: int) -> tuple[dict[str, Any], str, str | bytes]:
    """(webhook, content type, authorization) that ingest must take."""
    body = base_webhook(rng, n)
    alert = body["alerts"][0]
    ctype = "application/json"
    auth: str | bytes = f"Bearer {TOKEN}"
    kind = n % 12
    if kind == 0:
        alert["labels"]["odd"] = rng.choice(ODD_TEXT)
        body["groupKey"] += rng.choice(ODD_TEXT)
    elif kind == 1:
        alert["startsAt"] = GOOD_TIMES[(n // 12) % len(GOOD_TIMES)]
    elif kind == 2:
        alert["annotations"]["description"] = "A" * rng.randint(100_000, 400_000)
    elif kind == 3:
        alert["labels"].update({f"label_{j}": "v" * j for j in range(300)})
    elif kind == 4:
        body["groupKey"] += "k" * 10_000
        alert["fingerprint"] = "f" * 2_000
    elif kind == 5:
        body["extraField"] = {"nested": [1, 2, {"x": None}]}
        alert["silencedBy"] = ["s1"]
        body["truncatedAlerts"] = 10**9
    elif kind == 6:
        ctype = rng.choice(["application/json; charset=utf-8", "Application/JSON"])
    elif kind == 7:
        auth = f"bearer   {TOKEN}"  # the scheme is case-insensitive, spaces are trimmed
    elif kind == 8:
        more = [_alert(rng, n, i) for i in range(3, 50)]
        for a in more[::2]:
            a["status"] = "resolved"
            a["endsAt"] = "2026-03-01T12:05:00Z"
        body["alerts"] += more
    elif kind == 9:
        alert["endsAt"] = rng.choice(["0001-01-01T00:00:00-01:00", None, "2199-01-01T00:00:00Z"])
        if alert["endsAt"] is None:
            del alert["endsAt"]
    elif kind == 10:
        alert["labels"][""] = "empty key"
        alert["labels"]["spaced key é"] = "\u0000"
        alert["generatorURL"] = "javascript:alert(1)"
    else:
        for key in ("annotations", "generatorURL", "endsAt"):
            alert.pop(key, None)
        for key in ("groupLabels", "commonLabels", "commonAnnotations", "externalURL"):
            body.pop(key)
    return body, ctype, auth


# -- the refused ones -------------------------------------------------------------------------


def _set_path(body: dict[str, Any], rng: random.Random, fields: list[str], values: list[Any]):
    path = rng.choice(fields)
    target: Any = body
    *parents, last = path.split(".")
    for p in parents:
        target = target[int(p)] if p.isdigit() else target[p]
    target[last] = rng.choice(values)
    return path


WRONG: list[tuple[str, list[Any]]] = [
    ("version", [4, "3", "", None, "v4", 4.0, ["4"]]),
    ("groupKey", ["", *NOT_STR]),
    ("status", ["FIRING", "pending", "", 1, None, ["firing"]]),
    ("receiver", NOT_STR),
    ("alerts", [[], {}, "x", None, 1, [None], ["alert"], [[]]]),
    ("truncatedAlerts", [-1, "x", 1.5, None, [], {}]),
    ("groupLabels", NOT_DICT),
    ("commonLabels", [*NOT_DICT, {"a": 1}, {"a": None}]),
    ("externalURL", NOT_STR),
    ("alerts.0.status", ["FIRING", "", None, 0, "unknown"]),
    ("alerts.0.labels", [*NOT_DICT, {"a": 1}, {"a": None}, {"a": ["x"]}, {"a": {"b": "c"}}]),
    ("alerts.0.annotations", [*NOT_DICT, {"a": 2.5}]),
    ("alerts.0.startsAt", BAD_TIMES),
    ("alerts.0.endsAt", BAD_ENDS),
    ("alerts.0.fingerprint", NOT_STR),
    ("alerts.0.generatorURL", NOT_STR),
]
REQUIRED = [
    "version",
    "groupKey",
    "status",
    "receiver",
    "alerts",
    "alerts.0.status",
    "alerts.0.labels",
    "alerts.0.startsAt",
    "alerts.0.fingerprint",
]


def wrong_type(rng: random.Random, n: int) -> bytes:
    body = base_webhook(rng, n)
    field_, values = WRONG[rng.randrange(len(WRONG))]
    _set_path(body, rng, [field_], values)
    alerts = body["alerts"]
    if isinstance(alerts, list) and alerts and isinstance(alerts[0], dict):
        labels = alerts[0].get("labels")
        if isinstance(labels, dict) and rng.random() < 0.3:
            labels["odd"] = rng.choice(ODD_TEXT)  # unicode and NUL do not make it valid
    return dumps(body)


def missing_field(rng: random.Random, n: int) -> bytes:
    body = base_webhook(rng, n)
    for path in rng.sample(REQUIRED, rng.randint(1, 3)):
        target: Any = body
        *parents, last = path.split(".")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target.get(p)
            if target is None:
                break
        if isinstance(target, dict):
            target.pop(last, None)
    if rng.random() < 0.03:  # huge, yet refused for what it lacks
        body["alerts"] = body.get("alerts") or [{}]
        body["alerts"][0]["annotations"] = {"big": "x" * rng.randint(50_000, 300_000)}
    return dumps(body)


def malformed(rng: random.Random, n: int) -> bytes:
    valid = dumps(base_webhook(rng, n))
    k = n % 12
    if k < 4:  # cut anywhere: a strict prefix of an object is never JSON
        return valid[: rng.randrange(0, len(valid) - 1)]
    if k == 4:
        return valid + rng.choice([b" x", b"}", b",", b"\x00", b"{}"])
    if k == 5:
        return valid.replace(b'"', b"'")
    if k == 6:
        at = rng.randrange(1, len(valid) - 1)
        return (
            valid[:at]
            + rng.choice([b"\x00", b"\x01", b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])
            + valid[at:]
        )
    if k == 7:
        return b"\xef\xbb\xbf" + valid  # a byte order mark
    if k == 8:
        return b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if k == 9:
        return valid.replace(b'"firing"', b'"fir\\ud800ing"', 1)  # a lone surrogate escape
    if k == 10:
        return rng.choice([b"", b" ", b"null null", b"{", b"[", b"{'a': 1}", b"undefined"])
    return valid.replace(b'"version"', b"version", 1)  # an unquoted key


def deep(rng: random.Random, n: int) -> bytes:
    depth = rng.choice([300, 1_000, 10_000, 50_000])
    nest = rng.choice([("[", "]"), ('{"a":', "}")])
    inner = nest[0] * depth + "1" + nest[1] * depth
    if n % 2:
        return inner.encode()
    body = base_webhook(rng, n)
    placeholder = "@@DEEP@@"
    body["alerts"][0]["annotations"] = placeholder
    return dumps(body).replace(f'"{placeholder}"'.encode(), inner.encode())


def not_an_object(rng: random.Random, n: int) -> bytes:
    return dumps(rng.choice([[], [base_webhook(rng, n)], 1, -0.5, "webhook", True, None, {}]))


def generate() -> Iterator[Case]:
    rng = random.Random(SEED)
    n = 0

    def next_n() -> int:
        nonlocal n
        n += 1
        return n

    accepted: list[Case] = []
    for _ in range(ACCEPTED):
        group = next_n()
        body, ctype, auth = odd_but_valid(rng, group)
        accepted.append(Case("accepted", dumps(body), frozenset({200}), ctype, auth, group=group))
    resends: list[Case] = []
    for case in rng.sample(accepted, RESENDS):
        body = json.loads(case.body)
        if case.group is not None and case.group % 2:  # same content, other bytes
            body["alerts"].reverse()
            raw = json.dumps(body, indent=1, sort_keys=True).encode()
        else:
            raw = case.body
        resends.append(
            Case("resend", raw, frozenset({200}), case.content_type, case.auth, group=case.group)
        )

    refused: list[tuple[str, int, Callable[[int], Case]]] = [
        (
            "malformed_json",
            2_400,
            lambda i: Case("malformed_json", malformed(rng, i), frozenset({400})),
        ),
        ("wrong_type", 3_000, lambda i: Case("wrong_type", wrong_type(rng, i), frozenset({422}))),
        (
            "missing_field",
            1_900,
            lambda i: Case("missing_field", missing_field(rng, i), frozenset({422})),
        ),
        (
            "not_an_object",
            300,
            lambda i: Case("not_an_object", not_an_object(rng, i), frozenset({422})),
        ),
        ("deep_nesting", 300, lambda i: Case("deep_nesting", deep(rng, i), frozenset({400}))),
        # Valid, unique bodies: refused only for how they were sent.
        (
            "bad_auth",
            1_000,
            lambda i: Case(
                "bad_auth",
                dumps(base_webhook(rng, i)),
                frozenset({401}),
                auth=rng.choice(
                    [
                        None,
                        "",
                        "Bearer",
                        f"Bearer {TOKEN}x",
                        f"Bearer {TOKEN[:-1]}",
                        f"Bearer {TOKEN.upper()}",
                        f"Token {TOKEN}",
                        f"Basic {TOKEN}",
                        "Basic dXNlcjpwYXNz",
                        "Basic !!!",
                        f"{TOKEN}",
                        f"Bearer {TOKEN}\u00e9".encode(),  # not ASCII
                    ]
                ),
            ),
        ),
        (
            "content_type",
            1_000,
            lambda i: Case(
                "content_type",
                dumps(base_webhook(rng, i)),
                frozenset({415}),
                content_type=rng.choice(
                    [
                        "",
                        "text/plain",
                        "application/xml",
                        "application/x-www-form-urlencoded",
                        "multipart/form-data; boundary=x",
                        "application/jsonx",
                        "application/json-patch+json",
                        "json",
                        "application/ json",
                    ]
                ),
            ),
        ),
        ("too_large", 20, lambda i: Case("too_large", _too_large(rng, i), frozenset({413}))),
        (
            "too_large_chunked",
            5,
            lambda i: Case("too_large_chunked", _too_large(rng, i), frozenset({413}), chunked=True),
        ),
    ]
    cases = accepted + resends
    for _name, count, make in refused:
        cases += [make(next_n()) for _ in range(count)]
    # Bad and good interleaved, as a noisy network would deliver them.
    rng.shuffle(cases)
    assert len(cases) >= TOTAL
    yield from cases


def _too_large(rng: random.Random, n: int) -> bytes:
    body = base_webhook(rng, n)
    body["alerts"][0]["annotations"]["description"] = "x" * (MAX_BODY + rng.randint(1, 50_000))
    return dumps(body)


# -- sending ----------------------------------------------------------------------------------


def _raw_post(url: str, case: Case) -> tuple[int, bytes]:
    """POST that reads the answer while still writing the body, as Go's client (Alertmanager)
    does: an answer given before the body was read (413) is there to read when the server
    closes. A client that first writes everything (httpx) only sees the reset of that close."""
    parsed = httpx.URL(url)
    head = [f"POST {parsed.path} HTTP/1.1", f"Host: {parsed.host}"]
    head += [f"Content-Type: {case.content_type}", f"Authorization: Bearer {TOKEN}"]
    head += ["Transfer-Encoding: chunked" if case.chunked else f"Content-Length: {len(case.body)}"]
    with socket.create_connection((parsed.host, parsed.port), timeout=30) as sock:

        def send() -> None:
            step = 64 * 1024
            try:
                sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
                for at in range(0, len(case.body), step):
                    piece = case.body[at : at + step]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if case.chunked else piece)
                if case.chunked:
                    sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed: the answer is what counts

        sending = threading.Thread(target=send, daemon=True)
        sending.start()
        got = b""
        while b"\r\n\r\n" not in got:
            piece = sock.recv(65536)
            if not piece:
                raise ConnectionError(f"closed without an answer after {got!r}")
            got += piece
        head_raw, _, body = got.partition(b"\r\n\r\n")
        lines = head_raw.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
        with contextlib.suppress(OSError):  # reset by the server already
            sock.shutdown(socket.SHUT_RDWR)
        sending.join(10)
    return int(lines[0].split()[1]), body


async def _send_all(url: str, cases: list[Case]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    queue = iter(cases)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(case: Case) -> Outcome:
            headers = {"Content-Type": case.content_type}
            if case.auth is not None:
                headers["Authorization"] = case.auth
            try:
                if case.category.startswith("too_large"):
                    status, raw = await asyncio.to_thread(_raw_post, url, case)
                    resp = httpx.Response(status, content=raw)
                else:
                    resp = await client.post(url, content=case.body, headers=headers)
            except (httpx.TransportError, OSError, ValueError, IndexError) as exc:
                return Outcome(case, None, f"{type(exc).__name__}: {exc}")
            try:
                answer = resp.json()
            except ValueError:
                return Outcome(case, resp.status_code, f"not JSON: {resp.text[:200]!r}")
            if not isinstance(answer, dict):
                return Outcome(case, resp.status_code, f"not an object: {answer!r}")
            error = answer.get("error")
            if resp.status_code != 200 and not (isinstance(error, str) and error):
                return Outcome(case, resp.status_code, f"no error: {answer!r}", answer)
            return Outcome(case, resp.status_code, error or "", answer)

        async def worker() -> None:
            for case in queue:
                outcomes.append(await one(case))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return outcomes


def test_ten_thousand_bad_bodies_then_every_accepted_one_ends_in_a_draft(tmp_path: Path):
    cases = list(generate())
    drafts_path = tmp_path / "drafts.jsonl"
    with NatsServer(workdir=tmp_path / "nats") as server:
        common = {"TRIAGE_NATS_URL": server.url}
        ingest = StageProcess(
            "ingest",
            {**common, "TRIAGE_INGEST_BEARER_TOKEN": TOKEN, "TRIAGE_LOG_LEVEL": "error"},
            tmp_path,
        )
        worker = StageProcess("worker", common, tmp_path)
        notify = StageProcess(
            "notify", {**common, "TRIAGE_DELIVERY_JSONL_PATH": str(drafts_path)}, tmp_path
        )
        stages = [ingest, worker, notify]
        try:
            start_all(stages)
            started = time.monotonic()
            outcomes = asyncio.run(_send_all(ingest.base_url + WEBHOOK_PATH, cases))
            send_s = time.monotonic() - started

            statuses = Counter(str(o.status) for o in outcomes)
            by_category: dict[str, Counter[str]] = {}
            for o in outcomes:
                by_category.setdefault(o.case.category, Counter())[str(o.status)] += 1
            # No 5xx, no transport error, and what the README promises for each kind.
            server_errors = sum(1 for o in outcomes if o.status is None or o.status >= 500)
            unexpected = [
                (o.case.category, o.status, o.error, o.case.body[:120])
                for o in outcomes
                if o.status not in o.case.expect or (o.status != 200 and not o.error)
            ]
            # Every expected answer is a 200 or a 4xx: nothing else passes.
            kinds = Counter((c, s, e[:60]) for c, s, e, _ in unexpected)
            assert not unexpected, (
                f"{len(unexpected)} unexpected answers: {kinds}, e.g. {unexpected[:3]}"
            )
            assert server_errors == 0

            ok = [o for o in outcomes if o.status == 200]
            stored = [o for o in ok if not o.answer["duplicate"]]
            duplicates = [o for o in ok if o.answer["duplicate"]]
            # Each accepted group stored once; every resend (same content, whatever its bytes)
            # recognised as the notification already stored.
            assert len(stored) == ACCEPTED and len(duplicates) == RESENDS
            assert len({o.answer["msg_id"] for o in stored}) == ACCEPTED
            first = {o.case.group: o.answer["msg_id"] for o in stored}
            assert all(first[o.case.group] == o.answer["msg_id"] for o in duplicates)
            # Nothing from a refusal on the bus: exactly the stored ones.
            on_stream = subject_count(server.url, "triage.alerts")
            assert on_stream == len(stored)

            incidents = {o.answer["incident_id"] for o in stored}
            assert len(incidents) == ACCEPTED

            def accounted() -> tuple[Counter[str], list[dict[str, Any]]] | None:
                drafts = drafts_by_incident(drafts_path)
                letters = dead_letters(server.url)
                dead = {d["incident_id"] for d in letters}
                missing = incidents - set(drafts) - dead
                return (drafts, letters) if not missing else None

            wait_until(
                accounted, 150, "a draft or dead letter for every accepted incident", every=1
            )
            wait_until(lambda: settled(server.url), 60, "consumers settled")
            drafts, letters = accounted() or (Counter(), [])
            pipeline_s = time.monotonic() - started - send_s
            assert not [d for d in letters if not d["reason"]], letters
            # Drafts only for accepted incidents, and each delivery written once.
            assert set(drafts) <= incidents
            assert duplicate_deliveries(drafts_path) == {}
            for stage in stages:
                assert stage.alive, f"{stage.name} died:\n{stage.log_tail()}"
        except BaseException:
            for stage in stages:
                print(f"--- {stage.name} log tail ---\n{stage.log_tail()}")
            raise
        finally:
            stop_all(stages)

    record(
        "ingest_fuzz",
        {
            "seed": SEED,
            "bodies_sent": len(outcomes),
            "concurrency": CONCURRENCY,
            "status_counts": dict(sorted(statuses.items())),
            "by_category": {k: dict(sorted(v.items())) for k, v in sorted(by_category.items())},
            "server_errors_5xx": server_errors,
            "accepted_200": len(ok),
            "accepted_stored": len(stored),
            "accepted_duplicates": len(duplicates),
            "stream_messages_triage_alerts": on_stream,
            "incidents": len(incidents),
            "incidents_with_draft": len(set(drafts) & incidents),
            "drafts": sum(drafts.values()),
            "dead_letters": len(letters),
            "dead_letter_reasons": sorted({d["reason"][:160] for d in letters}),
            "lost": 0,
            "send_seconds": round(send_s, 1),
            "requests_per_second": round(len(outcomes) / send_s),
            "accepted_to_all_drafts_seconds": round(pipeline_s, 1),
        },
    )
