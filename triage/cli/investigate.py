"""``triage investigate``: one investigation, here and now, with no NATS.

The alerts come from the command line (labels), a saved Alertmanager webhook, or a running
Alertmanager's API; the incident is built as the incident stage builds it, investigated by the
worker's collectors and analyzer, routed as the notifier routes it, and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from collectors.contracts import Collector
from triage.analyse.gateway import gateway_client
from triage.analyse.heuristic import Analyzer, HeuristicAnalyzer
from triage.analyse.llm import llm_analyzer
from triage.analyse.redaction import Redactor
from triage.app import default_collectors
from triage.deliver.delivery import delivery_record, owned
from triage.deliver.draft_text import render_text
from triage.deliver.ownership import KubernetesOwnership, api_client
from triage.deliver.routing import Matcher, Router
from triage.errors import ConfigError, TriageError
from triage.incidents.grouping import apply_notification
from triage.investigate.investigation import Investigator, draft_request
from triage.models import AlertmanagerWebhook, DeliveryRequest, IncidentState, utcnow
from triage.settings import Settings
from triage.telemetry import Metrics

REASON = "triage investigate"
RECEIVER = "triage-investigate"
ALERTMANAGER_TIMEOUT_S = 10.0
NO_COLLECTORS = (
    "no evidence source configured: set TRIAGE_KUBERNETES_KUBECONFIG (or --kubeconfig FILE, "
    "or --in-cluster), TRIAGE_PROMETHEUS_URL (or --prometheus URL), TRIAGE_LOKI_URL "
    "(or --loki URL)"
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "investigate",
        help="investigate alerts now and print the draft (no NATS needed)",
        description="Investigate one alert group now, with the worker's collectors and analyzer, "
        "and print the draft the notifier would deliver. The alerts come from exactly one of: "
        "label=value arguments, --webhook FILE, --alertmanager URL.",
    )
    p.add_argument(
        "labels",
        nargs="*",
        metavar="label=value",
        help="one firing alert with these labels, e.g. alertname=KubePodCrashLooping "
        "namespace=shop service=cartservice severity=critical",
    )
    src = p.add_argument_group("alert source (instead of labels)")
    src.add_argument(
        "--webhook", metavar="FILE", help="an Alertmanager webhook (version 4) JSON file; - = stdin"
    )
    src.add_argument(
        "--alertmanager", metavar="URL", help="the firing alerts of this Alertmanager (API v2)"
    )
    src.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="MATCHER",
        help="with --alertmanager: only alerts matching, e.g. 'alertname=\"X\"' (repeatable)",
    )
    src.add_argument(
        "--each",
        action="store_true",
        help="with --alertmanager: one investigation per alertname and namespace",
    )
    when = p.add_argument_group("when the label alert started (default now)")
    when.add_argument("--since", metavar="DURATION", help="this long ago: 90s, 10m, 2h, 1h30m")
    when.add_argument("--at", metavar="ISO8601", help="at this time, e.g. 2026-04-01T16:04:47Z")
    cfg = p.add_argument_group("evidence sources (override TRIAGE_* settings)")
    cfg.add_argument("--kubeconfig", metavar="FILE", help="= TRIAGE_KUBERNETES_KUBECONFIG")
    cfg.add_argument("--context", help="kubeconfig context = TRIAGE_KUBERNETES_CONTEXT")
    cfg.add_argument(
        "--in-cluster",
        action="store_true",
        default=None,
        help="use the pod's service account = TRIAGE_KUBERNETES_IN_CLUSTER",
    )
    cfg.add_argument("--prometheus", metavar="URL", help="= TRIAGE_PROMETHEUS_URL")
    cfg.add_argument("--loki", metavar="URL", help="= TRIAGE_LOKI_URL")
    out = p.add_argument_group("analysis and output")
    out.add_argument(
        "--llm",
        action="store_true",
        help="analyse with the LLM gateway (TRIAGE_LLM_BASE_URL) instead of the heuristic",
    )
    out.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="whole investigation = TRIAGE_INVESTIGATION_TOTAL_DEADLINE_S",
    )
    out.add_argument(
        "--json",
        action="store_true",
        help="print the delivery record (JSON, one line per incident) instead of the text "
        "draft; the collector lines go to stderr",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    settings = _override(settings, args)
    if args.llm and not settings.llm.base_url:
        raise ConfigError("--llm needs TRIAGE_LLM_BASE_URL (the gateway's URL)", setting="llm")
    webhooks = _source(args)  # bad input is reported before any cluster is contacted
    return asyncio.run(_investigate_all(settings, args, webhooks))


def _override(settings: Settings, args: argparse.Namespace) -> Settings:
    k8s = settings.kubernetes
    if args.kubeconfig is not None or args.context is not None or args.in_cluster is not None:
        k8s = k8s.model_copy(
            update={
                "kubeconfig": Path(args.kubeconfig) if args.kubeconfig else k8s.kubeconfig,
                "context": args.context if args.context is not None else k8s.context,
                "in_cluster": bool(args.in_cluster) or k8s.in_cluster,
            }
        )
    prom = settings.prometheus
    if args.prometheus is not None:
        prom = prom.model_copy(update={"url": args.prometheus or None})
    loki = settings.loki
    if args.loki is not None:
        loki = loki.model_copy(update={"url": args.loki or None})
    inv = settings.investigation
    if args.timeout is not None:
        if args.timeout <= 0:
            raise ConfigError("--timeout must be more than 0 seconds", setting="investigation")
        inv = inv.model_copy(
            update={
                "total_deadline_s": args.timeout,
                "collector_deadline_s": min(inv.collector_deadline_s, args.timeout),
            }
        )
        if args.llm and settings.llm.deadline_s + 1 >= args.timeout + 5:
            raise ConfigError(
                f"--timeout {args.timeout:g} is too short for --llm: give more than "
                f"{settings.llm.deadline_s - 4:g}s (TRIAGE_LLM_DEADLINE_S="
                f"{settings.llm.deadline_s:g} minus 4)",
                setting="investigation",
            )
    return settings.model_copy(
        update={"kubernetes": k8s, "prometheus": prom, "loki": loki, "investigation": inv}
    )


# --- where the alerts come from ------------------------------------------------------------


def _source(args: argparse.Namespace) -> list[AlertmanagerWebhook] | str:
    """The webhooks to investigate, or the Alertmanager URL to ask (asked once running)."""
    given = [
        name
        for name, value in (
            ("label=value arguments", args.labels),
            ("--webhook", args.webhook),
            ("--alertmanager", args.alertmanager),
        )
        if value
    ]
    if len(given) != 1:
        what = " and ".join(given) if given else "nothing"
        raise ConfigError(
            f"give exactly one alert source: label=value arguments, --webhook FILE or "
            f"--alertmanager URL (got {what})"
        )
    if (args.since or args.at) and not args.labels:
        raise ConfigError("--since and --at apply to label=value arguments only")
    if (args.filter or args.each) and not args.alertmanager:
        raise ConfigError("--filter and --each apply to --alertmanager only")
    if args.labels:
        return [_from_labels(args.labels, _starts_at(args.since, args.at))]
    if args.webhook:
        return [_read_webhook(args.webhook)]
    for text in args.filter:
        try:
            Matcher.parse(text)
        except ValueError as exc:
            raise ConfigError(f"--filter: {exc}") from exc
    return str(args.alertmanager)


def _starts_at(since: str | None, at: str | None) -> datetime:
    if since and at:
        raise ConfigError("give --since or --at, not both")
    if since:
        parts = _DURATION.findall(since)
        if not parts or "".join(n + u for n, u in parts) != since.strip():
            raise ConfigError(f"--since {since!r}: want a duration like 90s, 10m, 2h or 1h30m")
        return utcnow() - timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in parts))
    if at:
        try:
            when = datetime.fromisoformat(at)
        except ValueError as exc:
            raise ConfigError(f"--at {at!r}: not an ISO 8601 time") from exc
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return utcnow()


def _from_labels(items: list[str], starts: datetime) -> AlertmanagerWebhook:
    labels: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _LABEL_NAME.match(name):
            raise ConfigError(f"{item!r} is not label=value")
        labels[name] = value
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": starts.isoformat(),
        "fingerprint": _fingerprint(labels),
    }
    return _webhook([alert], _group_labels(labels))


def _read_webhook(name: str) -> AlertmanagerWebhook:
    where = "stdin" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read webhook file {where}: {reason}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"webhook file {where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    try:
        return AlertmanagerWebhook.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError(
            f"webhook file {where} is not an Alertmanager webhook (version 4):\n" + "\n".join(lines)
        ) from exc


async def _from_alertmanager(
    url: str, filters: list[str], each: bool, timeout_s: float
) -> list[AlertmanagerWebhook]:
    api = url.rstrip("/") + "/api/v2/alerts"
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("active", "true"),
        ("silenced", "false"),
        ("inhibited", "false"),
    ]
    params += [("filter", f) for f in filters]
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            resp = await client.get(api, params=params)
    except httpx.HTTPError as exc:
        raise TriageError(f"cannot reach Alertmanager at {url}: {_why(exc)}") from exc
    if resp.status_code != 200:
        body = " ".join(resp.text.split())[:200]
        raise TriageError(f"Alertmanager at {url} answered {resp.status_code}: {body}")
    try:
        found = resp.json()
    except ValueError as exc:
        raise TriageError(f"Alertmanager at {url} did not answer JSON") from exc
    if not isinstance(found, list):
        raise TriageError(f"Alertmanager at {url} answered something other than a list of alerts")
    alerts: list[dict[str, Any]] = []
    for a in found:
        if not isinstance(a, dict) or (a.get("status") or {}).get("state", "active") != "active":
            continue
        labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": a.get("annotations") or {},
                "startsAt": a.get("startsAt"),
                "generatorURL": a.get("generatorURL") or "",
                "fingerprint": a.get("fingerprint") or _fingerprint(labels),
            }
        )
    if not alerts:
        which = f" matching {' '.join(filters)}" if filters else ""
        raise TriageError(f"no firing alerts{which} at {url}")
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for alert in alerts:
        key = (
            (alert["labels"].get("alertname", ""), alert["labels"].get("namespace", ""))
            if each
            else ()
        )
        groups.setdefault(key, []).append(alert)
    try:
        return [
            _webhook(
                group,
                _group_labels(group[0]["labels"]) if each else {},
                filters=() if each else tuple(filters),
            )
            for _, group in sorted(groups.items())
        ]
    except ValidationError as exc:
        raise TriageError(f"Alertmanager at {url} answered alerts triage cannot read: {exc}") from (
            exc
        )


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _fingerprint(labels: dict[str, str]) -> str:
    text = "\x1f".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _group_labels(labels: dict[str, str]) -> dict[str, str]:
    return {k: labels[k] for k in ("alertname", "namespace") if k in labels}


def _webhook(
    alerts: list[dict[str, Any]], group: dict[str, str], filters: tuple[str, ...] = ()
) -> AlertmanagerWebhook:
    """The notification Alertmanager would send for these alerts, grouped by ``group``."""

    def common(field: str) -> dict[str, str]:
        first = dict(alerts[0].get(field) or {})
        return {
            k: v for k, v in first.items() if all((a.get(field) or {}).get(k) == v for a in alerts)
        }

    inner = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(group.items())) or ",".join(filters)
    return AlertmanagerWebhook.model_validate(
        {
            "version": "4",
            "groupKey": f"{{}}/{{{RECEIVER}}}:{{{inner}}}",
            "status": "firing",
            "receiver": RECEIVER,
            "groupLabels": group,
            "commonLabels": common("labels"),
            "commonAnnotations": common("annotations"),
            "alerts": alerts,
        }
    )


# --- the investigation ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _kube(settings: Settings) -> AsyncIterator[Any | None]:
    k8s = settings.kubernetes
    path = k8s.kubeconfig
    if path is not None and not k8s.in_cluster and not path.is_file():
        raise ConfigError(
            f"kubeconfig {path} not found (--kubeconfig, TRIAGE_KUBERNETES_KUBECONFIG)",
            setting="kubernetes.kubeconfig",
        )
    # api_client's own errors name the file and the variable; a missing file it would skip.
    kube: Any = await asyncio.to_thread(
        api_client,
        kubeconfig=str(path) if path else None,
        context=k8s.context,
        in_cluster=k8s.in_cluster,
    )
    try:
        yield kube
    finally:
        if kube is not None:
            kube.close()


async def _investigate_all(
    settings: Settings, args: argparse.Namespace, source: list[AlertmanagerWebhook] | str
) -> int:
    metrics = Metrics()
    async with (
        _kube(settings) as kube,
        httpx.AsyncClient(timeout=settings.prometheus.timeout_s) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        collectors = default_collectors(settings, client, kube)
        if not collectors:
            raise ConfigError(NO_COLLECTORS, setting="investigation")
        webhooks = (
            source
            if isinstance(source, list)
            else await _from_alertmanager(source, args.filter, args.each, ALERTMANAGER_TIMEOUT_S)
        )
        analyzer: Analyzer = HeuristicAnalyzer()
        if args.llm:
            llm = llm_analyzer(
                settings, gateway_client(settings.llm, settings.llm_api_key()), metrics
            )
            stack.push_async_callback(llm.aclose)
            analyzer = llm
        router = Router.from_settings(
            settings.routing,
            owners=KubernetesOwnership(kube, timeout_s=settings.kubernetes.timeout_s, cache_s=0)
            if kube is not None
            else None,
        )
        redactor = Redactor.from_settings(settings.redaction, metrics)
        for webhook in webhooks:
            incident = apply_notification(None, webhook, utcnow(), 0)
            assert incident is not None  # a first notification always makes an incident
            request = await _investigate(settings, collectors, analyzer, metrics, incident)
            route = await router.decide({"severity": request.severity, **request.labels})
            # What leaves the process is redacted, here as in the notifier.
            request, route = redactor.redact_delivery(owned(request, route), route)
            _print_collectors(request, sys.stderr if args.json else sys.stdout)
            if args.json:
                print(json.dumps(delivery_record(request, route, None)), flush=True)
            else:
                print(render_text(request, route), flush=True)
    return 0


async def _investigate(
    settings: Settings,
    collectors: list[Collector],
    analyzer: Analyzer,
    metrics: Metrics,
    incident: IncidentState,
) -> DeliveryRequest:
    """As a worker does it: every collector under its deadline, then the analyzer."""
    total = settings.investigation.total_deadline_s
    investigator = Investigator(collectors, settings.investigation, metrics)
    try:
        async with asyncio.timeout(total + 5):  # the worker's cut-off, too
            evidence = await investigator.collect(incident)
            rca = await analyzer.analyze(incident, evidence)
    except TimeoutError as exc:
        raise TriageError(f"the investigation took longer than {total + 5:g}s") from exc
    return draft_request(incident, 1, rca, evidence, REASON)


def _print_collectors(request: DeliveryRequest, out: Any) -> None:
    width = max((len(c.collector) for c in request.collectors), default=0)
    for c in request.collectors:
        line = (
            f"collector {c.collector:<{width}}  {c.status:<7} {c.items:>4} items "
            f"{c.duration_s:>7.2f}s"
        )
        if c.error:
            line += f"  {' '.join(c.error.split())}"
        print(line, file=out, flush=True)
