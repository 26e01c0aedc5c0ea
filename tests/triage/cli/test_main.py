"""What a user runs: `triage serve` + `triage demo` on the embedded default, and the stages as
separate processes against an external NATS."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port

from tests.support.app import TOKEN
from tests.support.payloads import alert, webhook

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def triage(args: list[str], env: dict[str, str], cwd: Path, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "triage.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def serve_once(cwd: Path, *envs: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`triage serve` expected to stop by itself (a bad setting), with its output."""
    env: dict[str, str] = {}
    for e in envs:
        env.update(e)
    return subprocess.run(
        [sys.executable, "-m", "triage.cli", "serve"],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.1)


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    except httpx.TransportError:
        return False


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@pytest.fixture
def embedded_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        "TRIAGE_STATE_DIR": str(tmp_path / "state"),
        "TRIAGE_HTTP_PORT": str(free_port()),
        "TRIAGE_NATS_EMBEDDED_PORT": str(free_port()),
        "TRIAGE_NATS_EMBEDDED_MONITOR_PORT": str(free_port()),
        "TRIAGE_INVESTIGATION_SCENARIO_DIR": str(REPO / "triage/demo/scenarios"),
        "TRIAGE_LOG_FORMAT": "json",
    }


def test_serve_on_the_embedded_default_then_demo_prints_a_draft(embedded_env, tmp_path):
    out = tmp_path / "serve.out"
    with out.open("w") as sink:
        serve = triage(["serve"], embedded_env, tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    try:
        port = int(embedded_env["TRIAGE_HTTP_PORT"])
        wait_until(lambda: ready(port))
        banner = out.read_text()
        assert f"url: http://127.0.0.1:{port}/api/v1/alertmanager" in banner
        # "triage is up" only once it is: connected, declared, consuming.
        assert banner.index('"event": "started"') < banner.index("triage is up")
        token_file = Path(embedded_env["TRIAGE_STATE_DIR"]) / "ingest-token"
        assert f"credentials_file: {token_file.resolve()}" in banner
        assert token_file.stat().st_mode & 0o077 == 0  # the generated secret is private

        no_token = httpx.post(f"http://127.0.0.1:{port}/api/v1/alertmanager", json=webhook())
        assert no_token.status_code == 401

        def demo() -> None:
            done = subprocess.run(
                [sys.executable, "-m", "triage.cli", "demo"],
                cwd=tmp_path,
                env={**os.environ, **embedded_env},
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert '"status":"accepted"' in done.stdout

        demo()
        wait_until(lambda: "DRAFT for review" in out.read_text())
        text = out.read_text()
        assert "Probable cause: checkoutservice (bad rollout; confidence" in text
        # The decisive fact is on the console, under what the cause rests on.
        rests_on = text.split("Evidence the cause rests on:")[1]
        assert "rollout-checkoutservice-rev14" in rests_on.split("Ruled out")[0]
        assert "env PAYMENT_TIMEOUT_MS 3000 -> 300" in rests_on
        ruled_out = text.split("Ruled out (looked, found normal):")[1]
        assert "paymentservice p99 latency unchanged" in ruled_out.split("Next steps:")[0]
        assert "Runbook (CheckoutHighErrorRate): https://runbooks.example.internal/" in text
        # The alert's team label chose the channel; no routing file is configured.
        assert "-> #payments (payments)" in text
        # Each `make demo` is a new incident, with a draft of its own.
        demo()
        wait_until(lambda: out.read_text().count("DRAFT for review") == 2)
    finally:
        stop(serve)
    # The embedded nats-server went down with the service, its data stays for next time.
    assert (Path(embedded_env["TRIAGE_STATE_DIR"]) / "nats" / "jetstream").is_dir()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{embedded_env['TRIAGE_NATS_EMBEDDED_MONITOR_PORT']}/varz")


@pytest.mark.parametrize(
    ("env", "variable", "expected"),
    [
        ({"TRIAGE_PROMETHEUS_QUERIES": "up"}, "TRIAGE_PROMETHEUS_QUERIES", "expected JSON"),
        ({"TRIAGE_LOG_LEVEL": "verbose"}, "TRIAGE_LOG_LEVEL", "'debug', 'info'"),
        ({"TRIAGE_NATS_MAX_DELIVER": "0"}, "TRIAGE_NATS_MAX_DELIVER", "greater than or equal"),
        (
            {"TRIAGE_LLM_BASE_URL": "http://gw/v1", "TRIAGE_LLM_DEADLINE_S": "30"},
            "TRIAGE_LLM_DEADLINE_S",
            "TRIAGE_INVESTIGATION_TOTAL_DEADLINE_S",
        ),
        (
            {"TRIAGE_KUBERNETES_KUBECONFIG": "/nonexistent/kubeconfig"},
            "TRIAGE_KUBERNETES_KUBECONFIG",
            "/nonexistent/kubeconfig",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_2(
    embedded_env, tmp_path, env, variable, expected
):
    proc = serve_once(tmp_path, embedded_env, env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # no traceback
    assert lines[0].startswith(f"triage: {variable}") and expected in lines[0]
    assert "triage is up" not in proc.stdout


def test_a_taken_http_port_is_one_line_naming_the_variable(embedded_env, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        env = {**embedded_env, "TRIAGE_HTTP_PORT": str(s.getsockname()[1])}
        proc = serve_once(tmp_path, env)
    assert proc.returncode == 2
    assert (
        proc.stderr.startswith("triage: TRIAGE_HTTP_PORT=") and len(proc.stderr.splitlines()) == 1
    )


def test_embedded_port_taken_is_a_clear_error(embedded_env, tmp_path, nats_server: NatsServer):
    env = {**embedded_env, "TRIAGE_NATS_EMBEDDED_PORT": str(nats_server.port)}
    proc = serve_once(tmp_path, env)
    assert proc.returncode == 2
    assert f"port {nats_server.port} is taken" in proc.stderr


def test_stages_as_separate_processes(nats_server: NatsServer, tmp_path: Path):
    drafts = tmp_path / "drafts.jsonl"
    common = {
        "TRIAGE_NATS_URL": nats_server.url,
        "TRIAGE_LOG_FORMAT": "json",
        "TRIAGE_INVESTIGATION_SCENARIO_DIR": str(REPO / "triage/demo/scenarios"),
    }
    ports = {name: free_port() for name in ("ingest", "worker", "worker2", "notify")}
    envs = {
        "ingest": {"TRIAGE_INGEST_BEARER_TOKEN": TOKEN},
        "worker": {},
        "worker2": {},
        "notify": {"TRIAGE_DELIVERY_CONSOLE": "false", "TRIAGE_DELIVERY_JSONL_PATH": str(drafts)},
    }
    procs = {
        name: triage(
            ["worker" if name == "worker2" else name],
            {**common, **envs[name], "TRIAGE_HTTP_PORT": str(port)},
            tmp_path,
        )
        for name, port in ports.items()
    }
    try:
        for port in ports.values():
            wait_until(lambda port=port: ready(port))
        payload = json.loads((REPO / "triage/demo/alert.json").read_text())
        payload["alerts"] = [
            alert("CheckoutHighErrorRate", extra_labels={"scenario": "demo-checkout-rollout"})
        ]
        resp = httpx.post(
            f"http://127.0.0.1:{ports['ingest']}/api/v1/alertmanager",
            json=payload,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert resp.status_code == 200
        wait_until(lambda: drafts.exists() and drafts.read_text().strip() != "")
        record = json.loads(drafts.read_text().splitlines()[0])
        assert record["delivery"]["rca"]["root_cause"]["component"] == "checkoutservice"
        # The worker exposes its own metrics: investigations by outcome.
        metrics = [
            httpx.get(f"http://127.0.0.1:{ports[w]}/metrics").text for w in ("worker", "worker2")
        ]
        assert any('triage_investigations_total{outcome="investigated"} 1.0' in m for m in metrics)
        assert (
            httpx.post(
                f"http://127.0.0.1:{ports['worker']}/api/v1/alertmanager", json=payload
            ).status_code
            == 404
        )
    finally:
        for proc in procs.values():
            stop(proc)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_wrong_nats_url_is_one_line_naming_it_and_exit_2(embedded_env, tmp_path, command):
    env = {**embedded_env, "TRIAGE_NATS_URL": "nats://127.0.0.1:1"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "triage.cli", command],
        cwd=tmp_path,
        env={**os.environ, **env, "TRIAGE_INGEST_BEARER_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - started < 15
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # no traceback, no reconnect noise
    assert lines[0].startswith(
        "triage: TRIAGE_NATS_URL=nats://127.0.0.1:1: cannot connect within 5s: "
    )
    assert "triage is up" not in proc.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_connecting_stops_at_once(embedded_env, tmp_path, sig):
    env = {**embedded_env, "TRIAGE_NATS_URL": "nats://127.0.0.1:1"}
    proc = triage(["serve"], env, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Importing takes about 2 s (more on a loaded machine); then it connects, giving up 5 s
        # later: 3.5 s lands inside the connection attempt either way.
        time.sleep(3.5)
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 2
        assert proc.returncode == 0
        assert "triage is up" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
