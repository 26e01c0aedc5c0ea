"""The one place where triage is wired: settings in, a running ASGI app out.

Every process is this app with some of the stages switched on: ``serve`` runs all of them,
``ingest``, ``worker`` and ``notify`` one each, sharing state only through NATS. Tests pass real
local servers and their own collectors or sinks through the factory's arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import aiohttp
import httpx
import structlog
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collectors.cache import CachedKubeSource, CachedMetricSource, TTLCache
from collectors.contracts import Collector, Neighbours
from collectors.loki import LokiCollector
from collectors.recorded import ScenarioCollector, load_scenarios
from collectors.sources import ApiKubeSource, PrometheusSource
from collectors.standard import standard_collectors
from triage.analyse.gateway import gateway_client
from triage.analyse.heuristic import Analyzer, HeuristicAnalyzer
from triage.analyse.llm import llm_analyzer
from triage.analyse.redaction import Redactor
from triage.bus.consumers import settle
from triage.bus.embedded import EmbeddedNats
from triage.bus.jetstream import Bus
from triage.bus.subjects import LANES
from triage.deliver.delivery import ConsoleSink, DeliveryStage, JsonlSink, Sink, lane_sinks
from triage.deliver.feedback import SlackInteractions
from triage.deliver.ownership import KubernetesOwnership, api_client
from triage.deliver.routing import Router
from triage.deliver.slack import SLACK_ERRORS, SharedChannelPacer, SlackSink, web_client
from triage.deliver.webhook_sink import WebhookSink
from triage.errors import BrokerLost, ConfigError
from triage.incidents.grouping import IncidentStage
from triage.incidents.storm import Correlator
from triage.ingest.receiver import Auth, WebhookReceiver
from triage.investigate.investigation import InvestigationStage, Investigator
from triage.models import AlertNotification, DeliveryRequest, InvestigationRequest
from triage.settings import Settings
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)

Stage = Literal["ingest", "worker", "notify"]
ALL_STAGES: frozenset[Stage] = frozenset({"ingest", "worker", "notify"})
LAG_INTERVAL_S = 5.0


@dataclass
class Runtime:
    """What the lifespan built; exposed on ``app.state.runtime`` for probes and tests."""

    settings: Settings
    metrics: Metrics
    bus: Bus
    broker: NatsBroker | None = None
    slack: SlackSink | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Called when a NATS connection is closed for good: the process must stop, non-zero, so
    # that its supervisor restarts it (the CLI stops uvicorn, then exits 1).
    on_fatal: list[Callable[[BrokerLost], None]] = field(default_factory=list)
    fatal: BrokerLost | None = None
    stopping: bool = False

    def fail(self, error: BrokerLost) -> None:
        if self.stopping or self.fatal is not None:
            return
        self.fatal = error
        log.error("fatal", error=str(error))
        if self.broker is not None:
            # Consume nothing more: with the bus gone no message could be settled, and on a
            # closed connection FastStream's fetch loop would spin without yielding.
            for subscriber in self.broker.subscribers:
                subscriber.running = False
        for callback in self.on_fatal:
            callback(error)


def build_auth(settings: Settings) -> Auth:
    auth = Auth(
        bearer_token=settings.bearer_token(),
        basic_username=settings.ingest.basic_username,
        basic_password=settings.basic_password(),
    )
    if auth.open and not settings.ingest.allow_unauthenticated:
        raise ConfigError(
            "ingest has no credentials: set TRIAGE_INGEST_BEARER_TOKEN(_FILE) or basic auth, "
            "or TRIAGE_INGEST_ALLOW_UNAUTHENTICATED=true to accept anyone",
            setting="ingest",
        )
    return auth


def default_collectors(
    settings: Settings, client: httpx.AsyncClient, kube: Any | None = None
) -> list[Collector]:
    """Kubernetes (objects, events, logs) when a cluster is configured, Prometheus when a URL
    is, and recorded evidence for the demo; each is optional, none is required."""
    prom = settings.prometheus
    cache = TTLCache(settings.investigation.cache_ttl_s)
    found = standard_collectors(
        CachedKubeSource(
            ApiKubeSource(kube, request_timeout_s=settings.kubernetes.timeout_s), cache
        )
        if kube
        else None,
        CachedMetricSource(PrometheusSource(prom.url, client), cache) if prom.url else None,
        step_s=prom.step_s,
        queries=tuple(prom.queries),
        logs=partial(_loki, settings.loki.url, client, settings.loki.limit)
        if settings.loki.url
        else None,
        neighbour_namespaces=settings.investigation.neighbour_namespaces,
    )
    if settings.investigation.scenario_dir:
        found.append(ScenarioCollector(load_scenarios(settings.investigation.scenario_dir)))
    return found


def _loki(url: str, client: httpx.AsyncClient, limit: int, near: Neighbours | None) -> Collector:
    return LokiCollector(url, client, limit=limit, neighbours=near)


async def _worker_kube(
    settings: Settings, stages: frozenset[Stage], stack: contextlib.AsyncExitStack
) -> Any | None:
    if "worker" not in stages:
        return None
    k8s = settings.kubernetes
    kube = await asyncio.to_thread(
        api_client,
        kubeconfig=str(k8s.kubeconfig) if k8s.kubeconfig else None,
        context=k8s.context,
        in_cluster=k8s.in_cluster,
    )
    if kube is not None:
        stack.callback(kube.close)
    return kube


def default_sinks(
    settings: Settings, slack: SlackSink | None, webhook_client: httpx.AsyncClient | None
) -> list[Sink]:
    sinks: list[Sink] = []
    if settings.delivery.console:
        sinks.append(ConsoleSink())
    if settings.delivery.jsonl_path:
        sinks.append(JsonlSink(settings.delivery.jsonl_path))
    if settings.delivery.webhook_url and webhook_client is not None:
        sinks.append(
            WebhookSink(
                settings.delivery.webhook_url,
                webhook_client,
                deadline_s=settings.delivery.webhook_deadline_s,
            )
        )
    if slack is not None:
        sinks.append(slack)
    return sinks


async def _start_notify(
    settings: Settings, router: Router, slack_token: str | None, stack: contextlib.AsyncExitStack
) -> tuple[SlackSink | None, httpx.AsyncClient | None]:
    """The notifier's clients: Kubernetes for ownership, Slack, the webhook's HTTP client."""
    k8s = settings.kubernetes
    kube = await asyncio.to_thread(
        api_client,
        kubeconfig=str(k8s.kubeconfig) if k8s.kubeconfig else None,
        context=k8s.context,
        in_cluster=k8s.in_cluster,
    )
    if kube is not None:
        stack.callback(kube.close)
        router.owners = KubernetesOwnership(
            kube, timeout_s=k8s.timeout_s, cache_s=settings.routing.ownership_cache_s
        )
    slack = None
    if slack_token:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        slack = SlackSink(web_client(settings.slack, slack_token, session), settings.slack)
        try:
            auth = await slack.client.auth_test()
            log.info("slack_connected", team=auth.get("team"), bot=auth.get("user"))
        except SLACK_ERRORS as exc:  # Slack being down must not keep the rest from starting
            log.warning("slack_auth_test_failed", error=f"{type(exc).__name__}: {exc}")
    webhook_client = None
    if settings.delivery.webhook_url:
        webhook_client = await stack.enter_async_context(
            httpx.AsyncClient(timeout=settings.delivery.webhook_timeout_s)
        )
    return slack, webhook_client


def create_app(
    settings: Settings,
    *,
    nats_url: str | None = None,
    stages: frozenset[Stage] = ALL_STAGES,
    collectors: list[Collector] | None = None,
    analyzer: Analyzer | None = None,
    sinks: list[Sink] | None = None,
    embedded: EmbeddedNats | None = None,
) -> Starlette:
    """``embedded``: a nats-server started for this process, stopped when the app stops
    (uvicorn re-raises SIGTERM after shutdown, so the caller's ``finally`` may never run)."""
    url = nats_url or settings.nats.url
    if not url:
        raise ConfigError("no NATS URL: set TRIAGE_NATS_URL or use `triage serve`")
    metrics = Metrics()
    auth = build_auth(settings) if "ingest" in stages else Auth()
    bus = Bus(
        settings.nats,
        url,
        metrics,
        name=f"TRIAGE_NATS_URL={url}" if url == settings.nats.url else f"NATS {url}",
        on_lost=lambda error: runtime.fail(error),
    )
    runtime = Runtime(settings=settings, metrics=metrics, bus=bus)
    receiver = (
        WebhookReceiver(
            bus,
            metrics,
            auth,
            settings.ingest.max_body_bytes,
            body_timeout_s=settings.ingest.body_timeout_s,
        )
        if "ingest" in stages
        else None
    )
    notify = "notify" in stages
    # A bad routing file stops the service here, with its line and reason.
    router = Router.from_settings(settings.routing) if notify else None
    slack_token = settings.slack_bot_token() if notify else None
    signing_secret = settings.slack_signing_secret() if notify else None
    interactions = (
        SlackInteractions(
            bus, metrics, signing_secret, body_timeout_s=settings.ingest.body_timeout_s
        )
        if signing_secret
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            httpx.AsyncClient(timeout=settings.prometheus.timeout_s) as client,
            contextlib.AsyncExitStack() as stack,
        ):
            webhook_client = None
            llm = None
            if analyzer is None and "worker" in stages and settings.llm.base_url:
                gateway = gateway_client(settings.llm, settings.llm_api_key())
                llm = llm_analyzer(settings, gateway, metrics)
                stack.push_async_callback(llm.aclose)
            if router is not None:
                runtime.slack, webhook_client = await _start_notify(
                    settings, router, slack_token, stack
                )
                if interactions is not None:
                    interactions.slack = runtime.slack
            try:
                await bus.connect()  # once connected (the CLI connects first), a no-op
                await bus.declare()
                if runtime.slack is not None:
                    # Replicas share Slack's per-channel budget, not one each.
                    runtime.slack.pacer = SharedChannelPacer(
                        settings.slack.channel_interval_s, bus.reserve_slot
                    )
                if stages & {"worker", "notify"}:
                    runtime.broker = _broker(
                        runtime,
                        url,
                        stages,
                        collectors
                        if collectors is not None
                        else default_collectors(
                            settings, client, await _worker_kube(settings, stages, stack)
                        ),
                        analyzer or llm or HeuristicAnalyzer(),
                        sinks
                        if sinks is not None
                        else default_sinks(settings, runtime.slack, webhook_client),
                        router,
                    )
                    await runtime.broker.start()
                    runtime.tasks.append(asyncio.create_task(_report_lag(bus, stages)))
                log.info("started", stages=sorted(stages), nats=url, max_payload=bus.max_payload)
                yield
            finally:
                runtime.stopping = True
                for task in runtime.tasks:
                    task.cancel()
                if runtime.broker is not None:
                    try:
                        await runtime.broker.stop()
                    except Exception as exc:
                        if runtime.fatal is None:
                            raise
                        # Its connection is closed for good: there is nothing left to stop.
                        log.warning("broker_stop_failed", error=f"{type(exc).__name__}: {exc}")
                await bus.close()
                if embedded is not None:
                    await asyncio.to_thread(embedded.stop)

    async def healthz(_: Request) -> Response:
        # A connection nats-py gave up on never comes back: only a restart helps.
        if runtime.fatal is not None:
            return JSONResponse({"status": "fatal", "error": str(runtime.fatal)}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ok = runtime.fatal is None and await bus.ready()
        body: dict[str, Any] = {"ready": ok, "nats": bus.connected, "max_payload": bus.max_payload}
        if receiver is not None:
            body["max_body_bytes"] = receiver.body_limit
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    if receiver is not None:
        routes += receiver.routes()
    if interactions is not None:
        routes += interactions.routes()
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app


def _broker(
    runtime: Runtime,
    url: str,
    stages: frozenset[Stage],
    collectors: list[Collector],
    analyzer: Analyzer,
    sinks: list[Sink],
    router: Router | None,
) -> NatsBroker:
    settings, bus, metrics = runtime.settings, runtime.bus, runtime.metrics

    async def closed() -> None:
        # The consumers' own connection: if nats-py gives up on it, nothing is consumed again.
        runtime.fail(BrokerLost(f"{bus.name}: the consumers' connection closed for good"))

    broker = NatsBroker(
        url, max_reconnect_attempts=-1, reconnect_time_wait=1, logger=None, closed_cb=closed
    )
    stream = JStream(settings.nats.stream, declare=False)
    n = settings.nats

    def subscribe(durable: str, subject: str) -> Any:
        return broker.subscriber(
            subject,
            stream=stream,
            durable=durable,
            config=bus.consumer_config(durable),
            pull_sub=PullSub(batch_size=n.fetch_batch, timeout=1.0),
            max_workers=n.max_workers,
            ack_policy=AckPolicy.MANUAL,
        )

    incidents = IncidentStage(bus, settings.incidents)
    if "worker" in stages:
        investigation = InvestigationStage(
            bus,
            Investigator(collectors, settings.investigation, metrics),
            analyzer,
            incidents,
            settings.investigation,
            metrics,
            correlator=Correlator(bus, settings.incidents, metrics, incidents)
            if settings.incidents.correlation
            else None,
        )

        async def on_alerts(msg: NatsMessage) -> None:
            async def work(note: AlertNotification) -> str:
                return "changed" if await incidents.handle(note) else "unchanged"

            await settle(msg, "incidents", AlertNotification, work, bus, metrics)

        def on_investigate(durable: str) -> Any:
            async def handler(msg: NatsMessage) -> None:
                async def work(req: InvestigationRequest) -> str:
                    outcome = await investigation.handle(req, msg.in_progress)
                    metrics.investigations.labels(outcome).inc()
                    return outcome

                await settle(msg, durable, InvestigationRequest, work, bus, metrics)

            return handler

        subscribe("incidents", bus.subjects.alerts)(on_alerts)
        subscribe("investigations", bus.subjects.investigate)(on_investigate("investigations"))
        subscribe("followups", bus.subjects.follow_up)(on_investigate("followups"))

    if "notify" in stages:
        routes = router or Router.from_settings(settings.routing)
        redactor = Redactor.from_settings(settings.redaction, metrics)

        def on_deliver(durable: str, delivery: DeliveryStage) -> Any:
            async def handler(msg: NatsMessage) -> None:
                async def work(req: DeliveryRequest) -> str:
                    return await delivery.handle(req, msg.in_progress)

                await settle(msg, durable, DeliveryRequest, work, bus, metrics)

            return handler

        # One consumer per lane: Slack waiting for its channel budget holds neither the
        # console, JSONL and webhook sinks nor the drafts queued behind it for them.
        for lane in LANES:
            stage = DeliveryStage(
                bus, routes, lane_sinks(lane, sinks), metrics, redactor=redactor, lane=lane
            )
            subscribe(lane.durable, getattr(bus.subjects, lane.subject))(
                on_deliver(lane.durable, stage)
            )

    return broker


async def _report_lag(bus: Bus, stages: frozenset[Stage]) -> None:
    durables = (["incidents", "investigations"] if "worker" in stages else []) + (
        [lane.durable for lane in LANES] if "notify" in stages else []
    )
    while True:
        await bus.report_lag(durables)
        await asyncio.sleep(LAG_INTERVAL_S)
