"""Real server processes for the fakes: a free loopback port, the binary check, and the shared
lifecycle (spawn, poll readiness, report the log tail on failure, stop)."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

START_TIMEOUT = 15.0

# Ignore *_proxy env vars: loopback test traffic must never go through a proxy.
http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Children still running at interpreter exit (e.g. a test run aborted mid-fixture) get killed.
live: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(live):
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


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_status(url: str) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with http.open(url, timeout=1.0) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class ServerProcess:
    """Shared lifecycle: spawn, poll readiness, report the log tail on failure, stop.

    Use as a context manager (start on enter, stop + remove temp dir on exit) or call
    start()/stop()/close() yourself.
    """

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
        live.add(self._proc)
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
        live.discard(proc)

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
