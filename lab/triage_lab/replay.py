"""Replays a scenario into real servers: its series backfilled into a local Prometheus, its
Kubernetes objects served by the fixture API server. The `live` backend of `triage eval`."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from triage.errors import ConfigError
from triage_lab.fakes.kube_api import kube_api_app
from triage_lab.scenarios import Scenario

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigError(f"server for {url} exited with {proc.returncode}")
        try:
            with opener.open(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise ConfigError(f"{url} did not become ready in {timeout}s")


@contextlib.contextmanager
def prometheus_with(openmetrics: str) -> Iterator[str]:
    """A Prometheus holding exactly these series (retention long enough for old data)."""
    for binary in (PROMETHEUS, PROMTOOL):
        if not binary.exists():
            raise ConfigError(f"{binary} missing: install the Debian package prometheus")
    with tempfile.TemporaryDirectory(prefix="triage-replay-") as tmp:
        work = Path(tmp)
        (work / "data.om").write_text(openmetrics.rstrip() + "\n")
        res = subprocess.run(
            [
                str(PROMTOOL),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(work / "data.om"),
                str(work / "tsdb"),
            ],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise ConfigError(f"promtool backfill failed: {res.stderr.strip()[-500:]}")
        (work / "prometheus.yml").write_text(json.dumps({"scrape_configs": []}))
        port = _free_port()
        with (work / "prometheus.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    "--storage.tsdb.retention.time=100y",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=log,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(f"{url}/-/ready", proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(work / "tsdb", ignore_errors=True)


@contextlib.contextmanager
def kube_api_with(scenario: Scenario) -> Iterator[str]:
    """The fixture API server for this scenario, on a free port, in a background thread."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            kube_api_app(scenario.kubernetes, scenario.logs),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/api/v1/namespaces", None)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
