"""The `triage` command: the service (serve, or ingest / worker / notify apart), and the tools
around it (investigate, doctor, demo, dlq, routes, eval)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from importlib import resources
from types import FrameType
from typing import Any, Protocol, cast

import httpx
import uvicorn

from triage.app import ALL_STAGES, Stage, create_app
from triage.bus.embedded import EmbeddedNats
from triage.cli import dlq, doctor
from triage.cli import investigate as investigate_cli
from triage.cli import routes as routes_cli
from triage.deliver.ownership import api_client
from triage.errors import BrokerLost, ConfigError, TriageError
from triage.ingest.receiver import WEBHOOK_PATH
from triage.logconfig import configure_logging
from triage.models import utcnow
from triage.settings import Settings, load_settings

TOKEN_FILE = "ingest-token"
SETTINGS_HELP = (
    "Settings: TRIAGE_* environment variables (a section and its field joined by _, e.g. "
    "TRIAGE_PROMETHEUS_URL); the README's Settings table lists them all. `triage doctor` checks "
    "what they point at."
)
STAGE_HELP = (
    "It takes no options: TRIAGE_HTTP_HOST/PORT (webhook, /healthz, /readyz, /metrics), "
    "TRIAGE_NATS_URL, TRIAGE_KUBERNETES_*, TRIAGE_PROMETHEUS_URL, TRIAGE_LOKI_URL, TRIAGE_LLM_*, "
    "TRIAGE_SLACK_*, TRIAGE_ROUTING_* and TRIAGE_DELIVERY_* configure it."
)
STAGE_COMMANDS = [
    (
        "serve",
        "every stage in one process (embedded NATS unless TRIAGE_NATS_URL is set)",
        "Runs ingest, worker and notify in one process; without TRIAGE_NATS_URL it starts an "
        "embedded nats-server (data under TRIAGE_STATE_DIR) and, without credentials, makes a "
        "bearer token for Alertmanager.",
    ),
    ("ingest", "webhook receiver only (needs TRIAGE_NATS_URL)", "The webhook receiver."),
    (
        "worker",
        "incident grouping and investigations (needs TRIAGE_NATS_URL)",
        "Groups alerts into incidents and investigates them.",
    ),
    ("notify", "routing and delivery (needs TRIAGE_NATS_URL)", "Routes and delivers drafts."),
]


class _Command(Protocol):
    def add_parser(self, sub: Any) -> None: ...
    def run(self, settings: Settings, args: argparse.Namespace) -> int: ...


# Commands that take the settings and return an exit code; each module adds its own parser.
SETTINGS_COMMANDS: dict[str, _Command] = {}
SETTINGS_COMMANDS["doctor"] = doctor
SETTINGS_COMMANDS["investigate"] = investigate_cli


def _dev_token(settings: Settings) -> None:
    """``serve`` is safe by default too: with no credentials configured it makes a token."""
    path = settings.state_dir / TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    settings.ingest.bearer_token_file = path


def _banner(settings: Settings, nats_url: str) -> str:
    url = f"http://{settings.http_host}:{settings.http_port}{WEBHOOK_PATH}"
    token = settings.ingest.bearer_token_file
    creds = (
        f"        authorization:\n          credentials_file: {token.resolve()}\n" if token else ""
    )
    return (
        f"triage is up: NATS {nats_url}\n"
        f"Point Alertmanager at it:\n"
        f"  receivers:\n  - name: triage\n    webhook_configs:\n    - url: {url}\n"
        f"      send_resolved: true\n      max_alerts: 0\n"
        f"      http_config:\n{creds}"
        f"Try it: make demo   (drafts print here)\n"
        f"Evidence and delivery:\n"
        + "".join(f"  {line}\n" for line in doctor.live_summary(settings))
        + "Check them: triage doctor\n"
    )


def _preflight(settings: Settings, stages: frozenset[Stage]) -> None:
    """What would otherwise fail after "triage is up" as a traceback: a taken port, a kubeconfig
    that does not load. Each is a ConfigError naming the variable."""
    with socket.socket() as s:
        try:
            s.bind((settings.http_host, settings.http_port))
        except OSError as exc:
            raise ConfigError(
                f"TRIAGE_HTTP_PORT={settings.http_port} on TRIAGE_HTTP_HOST={settings.http_host}: "
                f"cannot listen ({exc.strerror}); another process may use it",
                setting="http_port",
            ) from exc
    if stages & {"worker", "notify"}:
        k8s = settings.kubernetes
        kube = api_client(
            kubeconfig=str(k8s.kubeconfig) if k8s.kubeconfig else None,
            context=k8s.context,
            in_cluster=k8s.in_cluster,
        )
        if kube is not None:
            kube.close()  # type: ignore[no-untyped-call]


class _Stopped(Exception):
    """SIGTERM or SIGINT before the service serves: stop what was started, exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """While starting synchronously (the embedded nats-server), a signal stops the start."""

    def stop(signum: int, _: FrameType | None) -> None:
        raise _Stopped(signum)

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


class _Server(uvicorn.Server):
    """uvicorn, with SIGTERM and SIGINT honoured while the app is still starting (uvicorn only
    notes them until its lifespan has started) and no signal re-raised after the shutdown, so
    that the exit status is ours to choose."""

    def __init__(self, config: uvicorn.Config, on_serving: Callable[[], None]) -> None:
        super().__init__(config)
        self.signalled: int | None = None
        self._on_serving = on_serving
        self._task: asyncio.Task[Any] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self._on_serving()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self._task is not None:  # already captured (serve() inside _serve())
            yield
            return
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            self._task = None

    def _on_signal(self, signum: int) -> None:
        first = self.signalled is None
        self.signalled = signum
        if not self.started:
            if self._task is not None:
                self._task.cancel()
        elif first or signum != signal.SIGINT:
            self.should_exit = True
        else:
            self.force_exit = True  # a second Ctrl-C


async def _serve(server: _Server, app: Any) -> None:
    runtime = app.state.runtime
    lost: list[BrokerLost] = []

    def fatal(error: BrokerLost) -> None:
        lost.append(error)
        server.should_exit = True

    runtime.on_fatal.append(fatal)
    with server.capture_signals():
        try:
            # Connect first, under a deadline, so that a wrong URL is one line and exit 2.
            await runtime.bus.connect()
            await server.serve()
        except asyncio.CancelledError:
            if server.signalled is None:
                raise
            raise _Stopped(server.signalled) from None
        finally:
            await runtime.bus.close()
    if lost:
        raise lost[0]


def _run(settings: Settings, stages: frozenset[Stage], embedded: bool) -> None:
    """Serve until SIGTERM/SIGINT (exit 0). A NATS connection closed for good stops the
    service and exits 1, so that its supervisor restarts it; startup errors exit 2."""
    _preflight(settings, stages)
    nats: EmbeddedNats | None = None
    try:
        with _stop_on_signals():
            if embedded and not settings.nats.url:
                nats = EmbeddedNats(
                    settings.state_dir,
                    settings.nats.embedded_port,
                    settings.nats.embedded_monitor_port,
                )
                nats.start()
            url = settings.nats.url or (nats.url if nats else None)
            app = create_app(settings, nats_url=url, stages=stages, embedded=nats)
        banner = _banner(settings, url or "?") if "ingest" in stages else ""
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            access_log=False,
        )
        # The banner only once it serves: connected, declared, consuming, listening.
        server = _Server(config, on_serving=lambda: print(banner, flush=True))
        # Everything built so far lives as long as the process: keep it out of the collector's
        # generations, whose full passes otherwise set the webhook's p99 (bench/ingest.py).
        gc.collect()
        gc.freeze()
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve(server, app))
    except _Stopped:
        return  # asked to stop before serving: nothing to report
    except BrokerLost as exc:
        print(f"triage: {exc}; exiting so that the service is restarted", file=sys.stderr)
        raise SystemExit(1) from exc
    finally:
        if nats is not None:
            nats.stop()


def _demo(settings: Settings) -> None:
    payload = json.loads(resources.files("triage").joinpath("demo/alert.json").read_text())
    now = utcnow()
    starts = (now - timedelta(minutes=5)).isoformat()
    # A new group each run, so each `make demo` is a new incident with a draft of its own (the
    # same group again would be the same, already drafted, incident).
    run = now.strftime("%Y%m%dT%H%M%S.%f")
    payload["groupKey"] += f":demo-run={run}"
    for alert in payload["alerts"]:
        alert["startsAt"] = starts
        alert["fingerprint"] = f"{alert['fingerprint']}-{run}"
    token = settings.bearer_token()
    if token is None and (settings.state_dir / TOKEN_FILE).exists():
        token = (settings.state_dir / TOKEN_FILE).read_text().strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://{settings.http_host}:{settings.http_port}{WEBHOOK_PATH}"
    try:
        resp = httpx.post(url, json=payload, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise SystemExit(f"cannot reach triage at {url}: {exc} (is `make run` running?)") from exc
    print(f"{resp.status_code} {resp.text}")
    if resp.status_code == 200:
        print("The draft appears in the `triage serve` console within seconds.")
    else:
        raise SystemExit(1)


LAB_MISSING = (
    "`triage eval` is part of the evaluation lab, which this install does not carry (the "
    "service image never does): from a checkout, `pip install -e lab` (`make test` installs it)"
)


def _lab_cli() -> _Command | None:
    """The lab is a distribution of its own (lab/): present in a checkout, absent from the image."""
    try:
        lab = importlib.import_module("triage_lab.cli")
    except ImportError:
        return None
    return cast(_Command, lab)


def _add_lab_missing(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="score scenarios (needs the evaluation lab: pip install -e lab)"
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="triage",
        description="Alertmanager webhooks in, cited root-cause drafts out, routed to the owning "
        "team. Every command reads its settings from TRIAGE_* environment variables.",
        epilog=SETTINGS_HELP,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_, what in STAGE_COMMANDS:
        sub.add_parser(
            name,
            help=help_,
            description=f"{what} {STAGE_HELP}",
            epilog=SETTINGS_HELP,
        )
    sub.add_parser("demo", help="post the bundled alert to a running triage")
    dlq.add_parser(sub)
    routes_cli.add_parser(sub)
    eval_command = _lab_cli()
    if eval_command is None:
        _add_lab_missing(sub)
    else:
        eval_command.add_parser(sub)
    for module in SETTINGS_COMMANDS.values():
        module.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "routes":  # needs no settings: it checks a file
        raise SystemExit(routes_cli.run(args))
    try:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        if args.command == "demo":
            _demo(settings)
        elif args.command == "eval":
            if eval_command is None:
                raise ConfigError(LAB_MISSING, setting="eval")
            raise SystemExit(eval_command.run(settings, args))
        elif args.command == "dlq":
            raise SystemExit(dlq.run(settings, args))
        elif args.command in SETTINGS_COMMANDS:
            raise SystemExit(SETTINGS_COMMANDS[args.command].run(settings, args))
        elif args.command == "serve":
            if not settings.ingest.allow_unauthenticated and not (
                settings.ingest.bearer_token
                or settings.ingest.bearer_token_file
                or settings.ingest.basic_password
                or settings.ingest.basic_password_file
            ):
                _dev_token(settings)
            _run(settings, ALL_STAGES, embedded=True)
        else:
            if not settings.nats.url:
                raise ConfigError(
                    f"`triage {args.command}` needs TRIAGE_NATS_URL (the NATS it shares with the "
                    "other stages); `triage serve` runs every stage on an embedded server",
                    setting="nats.url",
                )
            _run(settings, frozenset({args.command}), embedded=False)
    except TriageError as exc:
        # One line per problem, each naming what to change; no traceback.
        for line in str(exc).splitlines():
            print(f"triage: {line}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
