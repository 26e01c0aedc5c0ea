"""``triage doctor``: every configured endpoint checked, one line each, and ``live_summary``: what
an instance will use, from the settings alone (the ``serve`` banner).

Each line is ``ok|fail|off  COMPONENT  DETAIL``; ``off`` names the variable that turns the part
on. The checks run concurrently, each under ``--timeout``; whatever a library raises becomes one
line (type and message), never a traceback. Exit status 1 when anything configured failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
import nats
import nats.errors
import nats.js.errors
import openai
import urllib3.exceptions
from nats.aio.client import Client
from slack_sdk.errors import SlackApiError, SlackClientError

from collectors.sources import KUBE_PATHS, api_group, collector_rbac
from triage.analyse.gateway import gateway_client, gateway_error
from triage.deliver.ownership import WORKLOAD_LABELS, api_client
from triage.deliver.routing import Router
from triage.deliver.slack import web_client
from triage.errors import TriageError
from triage.settings import Settings

Status = Literal["ok", "fail", "off"]
Need = tuple[str, str, str]  # RBAC (API group, resource[/subresource], verb)

DEFAULT_TIMEOUT_S = 15.0
KUBE_ENV = "TRIAGE_KUBERNETES_KUBECONFIG or TRIAGE_KUBERNETES_IN_CLUSTER=true"
# A namespace no cluster has: query templates are parsed and evaluated, but select nothing.
NO_NAMESPACE = "triage-doctor-no-such-namespace"
# Asked for prose under a schema that allows none: only a gateway that enforces the schema
# answers with it.
_PROBE_MESSAGES = [
    {"role": "system", "content": "You are a health check."},
    {"role": "user", "content": "Say hello."},
]
_PROBE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "triage_doctor_probe",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
    },
}


@dataclass(frozen=True)
class Check:
    status: Status
    component: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.component:<10}  {self.detail}"


def ownership_rbac() -> frozenset[Need]:
    """What ownership lookups read (triage/deliver/ownership.py): the namespace and the workload."""
    kinds = {kind + "s" for _, kind, _ in WORKLOAD_LABELS}
    gets = {(api_group(KUBE_PATHS[kind][0]), kind, "get") for kind in kinds}
    return frozenset(gets | {("", "namespaces", "get")})


def rbac_needs() -> frozenset[Need]:
    """Every verb triage uses: the workers' collectors and the notifier's ownership lookups."""
    return collector_rbac() | ownership_rbac()


def describe(exc: BaseException) -> str:
    """One readable line for any exception: its type and first line of message."""
    if isinstance(exc, SlackApiError):
        return f"Slack API error: {exc.response.get('error')}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return describe(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def safe_url(url: str) -> str:
    """The URL without credentials or query string, for printing."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "(unparseable URL)"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# -- NATS -----------------------------------------------------------------------------------------


async def _quiet(exc: Exception) -> None:
    pass


async def _port_open(port: int) -> bool:
    try:
        async with asyncio.timeout(1):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def check_nats(settings: Settings) -> Check:
    cfg = settings.nats
    url = cfg.url
    if url is None:
        if not await _port_open(cfg.embedded_port):
            return Check(
                "off",
                "nats",
                f"not running (`triage serve` starts the embedded server on port "
                f"{cfg.embedded_port}; set TRIAGE_NATS_URL for an external one)",
            )
        url = f"nats://127.0.0.1:{cfg.embedded_port}"
    shown = safe_url(url)
    try:
        nc: Client = await nats.connect(
            url, connect_timeout=3, max_reconnect_attempts=1, error_cb=_quiet
        )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        return Check("fail", "nats", f"{shown}: cannot connect: {describe(exc)}")
    try:
        js = nc.jetstream(timeout=5)
        try:
            account = await js.account_info()
        except nats.js.errors.ServiceUnavailableError:
            return Check("fail", "nats", f"{shown}: JetStream is not enabled (nats-server -js)")
        except (nats.errors.Error, TimeoutError) as exc:
            return Check("fail", "nats", f"{shown}: JetStream: {describe(exc)}")
        missing = []
        messages = 0
        try:
            info = await js.stream_info(cfg.stream)
            messages = info.state.messages
        except nats.js.errors.NotFoundError:
            missing.append(f"stream {cfg.stream}")
        try:
            await js.key_value(cfg.kv_bucket)
        except nats.js.errors.BucketNotFoundError:
            missing.append(f"KV bucket {cfg.kv_bucket}")
        if missing:
            return Check(
                "fail",
                "nats",
                f"{shown}: JetStream up but {' and '.join(missing)} missing "
                f"(any triage process creates them when it starts)",
            )
        return Check(
            "ok",
            "nats",
            f"{shown}: JetStream ({account.streams} streams), stream {cfg.stream} "
            f"({messages} messages), KV bucket {cfg.kv_bucket}",
        )
    except (nats.errors.Error, TimeoutError) as exc:
        return Check("fail", "nats", f"{shown}: {describe(exc)}")
    finally:
        await nc.close()


# -- Kubernetes -----------------------------------------------------------------------------------


def _kube_sync(settings: Settings, needs: frozenset[Need]) -> Check:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    cfg = settings.kubernetes
    api = api_client(
        kubeconfig=str(cfg.kubeconfig) if cfg.kubeconfig else None,
        context=cfg.context,
        in_cluster=cfg.in_cluster,
    )
    if api is None:  # unreachable: the caller checked that something is configured
        return Check("off", "kubernetes", f"set {KUBE_ENV}")
    host = safe_url(str(api.configuration.host))
    timeout = cfg.timeout_s
    try:
        try:
            version = k8s.VersionApi(api).get_code(_request_timeout=timeout).git_version
        except ApiException as exc:
            return Check("fail", "kubernetes", f"{host}: /version: {exc.status} {exc.reason}")
        auth = k8s.AuthorizationV1Api(api)
        denied = []
        for group, resource, verb in sorted(needs):
            name, _, sub = resource.partition("/")
            review = k8s.V1SelfSubjectAccessReview(
                api_version="authorization.k8s.io/v1",
                kind="SelfSubjectAccessReview",
                spec=k8s.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=k8s.V1ResourceAttributes(
                        group=group, resource=name, subresource=sub or None, verb=verb
                    )
                ),
            )
            try:
                answer = auth.create_self_subject_access_review(review, _request_timeout=timeout)
            except ApiException as exc:
                return Check(
                    "fail",
                    "kubernetes",
                    f"{host}: SelfSubjectAccessReview: {exc.status} {exc.reason}",
                )
            if not (answer.status and answer.status.allowed):
                denied.append(f"{verb} {resource}" + (f".{group}" if group else ""))
    finally:
        api.close()  # type: ignore[no-untyped-call]
    if denied:
        return Check(
            "fail",
            "kubernetes",
            f"{host} ({version}): RBAC denies {', '.join(denied)} "
            f"(see deploy/base/security/rbac.yaml)",
        )
    return Check(
        "ok", "kubernetes", f"{host} ({version}): all {len(needs)} RBAC verbs triage uses allowed"
    )


async def check_kubernetes(settings: Settings) -> Check:
    cfg = settings.kubernetes
    if not (cfg.kubeconfig or cfg.in_cluster):
        return Check("off", "kubernetes", f"set {KUBE_ENV}")
    try:
        return await asyncio.to_thread(_kube_sync, settings, rbac_needs())
    except TriageError as exc:
        return Check("fail", "kubernetes", str(exc))
    except urllib3.exceptions.HTTPError as exc:
        return Check("fail", "kubernetes", f"unreachable: {describe(exc)}")
    except Exception as exc:  # the client raises its own errors too: one line each
        return Check("fail", "kubernetes", describe(exc))


# -- Prometheus and Loki --------------------------------------------------------------------------


async def _get_json(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    resp = await client.get(url, params=params or None)
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code != 200:
        why = body.get("error") if isinstance(body, dict) else resp.text[:200].strip()
        raise _HttpProblem(f"HTTP {resp.status_code}: {why}")
    return body


class _HttpProblem(Exception):
    pass


async def check_prometheus(settings: Settings) -> Check:
    prom = settings.prometheus
    if not prom.url:
        return Check("off", "prometheus", "set TRIAGE_PROMETHEUS_URL")
    base = prom.url.rstrip("/")
    shown = safe_url(base)
    async with httpx.AsyncClient(timeout=prom.timeout_s) as client:
        try:
            info = await _get_json(client, f"{base}/api/v1/status/buildinfo")
            version = info["data"]["version"]
        except (httpx.HTTPError, _HttpProblem, KeyError, TypeError) as exc:
            return Check("fail", "prometheus", f"{shown}: {describe(exc)}")
        problems = []
        for n, template in enumerate(prom.queries, 1):
            query = template.replace("$namespace", NO_NAMESPACE).replace("$workload", NO_NAMESPACE)
            try:
                await _get_json(client, f"{base}/api/v1/query", query=query)
            except (httpx.HTTPError, _HttpProblem) as exc:
                problems.append(f"query {n} {template!r}: {describe(exc)}")
    if problems:
        return Check("fail", "prometheus", f"{shown} ({version}): " + "; ".join(problems))
    return Check(
        "ok",
        "prometheus",
        f"{shown}: Prometheus {version}, {len(prom.queries)} query template(s) valid",
    )


async def check_loki(settings: Settings) -> Check:
    if not settings.loki.url:
        return Check(
            "off",
            "loki",
            "set TRIAGE_LOKI_URL (without it logs come from the Kubernetes API, when configured)",
        )
    base = settings.loki.url.rstrip("/")
    shown = safe_url(base)
    async with httpx.AsyncClient(timeout=settings.prometheus.timeout_s) as client:
        try:
            ready = await client.get(f"{base}/ready")
            if ready.status_code != 200:
                return Check(
                    "fail", "loki", f"{shown}: /ready: HTTP {ready.status_code} {ready.text[:100]}"
                )
            labels = await _get_json(client, f"{base}/loki/api/v1/labels")
            count = len(labels.get("data") or [])
        except (httpx.HTTPError, _HttpProblem, AttributeError) as exc:
            return Check("fail", "loki", f"{shown}: {describe(exc)}")
    return Check("ok", "loki", f"{shown}: ready, {count} labels")


# -- LLM gateway ----------------------------------------------------------------------------------


async def check_llm(settings: Settings) -> Check:
    cfg = settings.llm
    if not cfg.base_url:
        return Check(
            "off", "llm", "set TRIAGE_LLM_BASE_URL (drafts come from the heuristic analyzer)"
        )
    shown = safe_url(cfg.base_url)
    try:
        client = gateway_client(cfg, settings.llm_api_key())
    except TriageError as exc:
        return Check("fail", "llm", str(exc))
    try:
        try:
            listed = [m.id async for m in client.models.list()]
        except openai.OpenAIError as exc:
            err, _ = gateway_error(exc, "GET /models")
            return Check("fail", "llm", f"{shown}: {err}")
        wanted = [cfg.model, *cfg.fallback_models]
        absent = [m for m in wanted if m not in listed]
        if absent:
            return Check(
                "fail",
                "llm",
                f"{shown}: model alias(es) {', '.join(absent)} not listed by the gateway "
                f"(it lists: {', '.join(sorted(listed)) or 'nothing'})",
            )
        try:
            response = await client.chat.completions.create(
                model=cfg.model,
                messages=cast(Any, _PROBE_MESSAGES),
                response_format=cast(Any, _PROBE_SCHEMA),
                temperature=0,
                max_tokens=64,
            )
        except openai.OpenAIError as exc:
            err, _ = gateway_error(exc, cfg.model)
            return Check("fail", "llm", f"{shown}: strict json_schema request failed: {err}")
        content = response.choices[0].message.content if response.choices else None
        if not _probe_valid(content):
            return Check(
                "fail",
                "llm",
                f"{shown}: {cfg.model} does not keep to a strict json_schema "
                f"(answered {(content or '')[:80]!r})",
            )
    finally:
        await client.close()
    return Check(
        "ok", "llm", f"{shown}: {', '.join(wanted)} listed, strict json_schema answers valid"
    )


def _probe_valid(content: str | None) -> bool:
    try:
        data = json.loads(content or "")
    except ValueError:
        return False
    return isinstance(data, dict) and set(data) == {"ok"} and isinstance(data["ok"], bool)


# -- Slack ----------------------------------------------------------------------------------------


def _is_channel_id(channel: str) -> bool:
    return not channel.startswith("#")


async def check_slack(settings: Settings) -> Check:
    try:
        token = settings.slack_bot_token()
    except TriageError as exc:
        return Check("fail", "slack", str(exc))
    if token is None:
        return Check("off", "slack", "set TRIAGE_SLACK_BOT_TOKEN (or TRIAGE_SLACK_BOT_TOKEN_FILE)")
    try:
        router = Router.from_settings(settings.routing)
    except TriageError as exc:
        return Check("fail", "slack", f"routing: {exc}")
    channels = list(
        dict.fromkeys([*router.default.channels, *(c for r in router.rules for c in r.channels)])
    )
    async with aiohttp.ClientSession() as session:
        client = web_client(settings.slack, token, session)
        try:
            auth = await client.auth_test()
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            return Check("fail", "slack", f"auth.test: {describe(exc)}")
        who = f"bot {auth.get('user')} in {auth.get('team')}"
        try:
            problems = await _channel_problems(client, channels)
        except SlackApiError as exc:
            if exc.response.get("error") == "missing_scope":
                return Check(
                    "ok",
                    "slack",
                    f"{who}; channels not checked: the token lacks channels:read "
                    f"(groups:read for private ones)",
                )
            return Check("fail", "slack", f"{who}; channels: {describe(exc)}")
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            return Check("fail", "slack", f"{who}; channels: {describe(exc)}")
    if problems:
        return Check("fail", "slack", f"{who}; " + "; ".join(problems))
    return Check("ok", "slack", f"{who}; the bot is in all {len(channels)} routed channel(s)")


async def _channel_problems(client: Any, channels: list[str]) -> list[str]:
    missing: list[str] = []
    not_member: list[str] = []
    by_name: dict[str, dict[str, Any]] = {}
    if any(not _is_channel_id(c) for c in channels):
        cursor = None
        while True:
            page = await client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for ch in page.get("channels") or []:
                by_name[str(ch.get("name"))] = ch
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
    for channel in channels:
        if _is_channel_id(channel):
            try:
                found = (await client.conversations_info(channel=channel)).get("channel")
            except SlackApiError as exc:
                if exc.response.get("error") != "channel_not_found":
                    raise
                found = None
        else:
            found = by_name.get(channel.removeprefix("#"))
        if found is None:
            missing.append(channel)
        elif not found.get("is_member"):
            not_member.append(channel)
    problems = []
    if missing:
        problems.append(f"missing channel(s): {', '.join(missing)}")
    if not_member:
        problems.append(f"bot not invited to: {', '.join(not_member)}")
    return problems


# -- the command ----------------------------------------------------------------------------------

CHECKS: tuple[tuple[str, Callable[[Settings], Awaitable[Check]]], ...] = (
    ("nats", check_nats),
    ("kubernetes", check_kubernetes),
    ("prometheus", check_prometheus),
    ("loki", check_loki),
    ("llm", check_llm),
    ("slack", check_slack),
)


async def _bounded(
    name: str, check: Callable[[Settings], Awaitable[Check]], settings: Settings, limit_s: float
) -> Check:
    try:
        async with asyncio.timeout(limit_s):
            return await check(settings)
    except TimeoutError:
        return Check("fail", name, f"no answer within {limit_s:g}s")
    except Exception as exc:  # a check's own bug or an unexpected library error: still one line
        return Check("fail", name, describe(exc))


async def diagnose(settings: Settings, limit_s: float = DEFAULT_TIMEOUT_S) -> list[Check]:
    return list(await asyncio.gather(*(_bounded(n, c, settings, limit_s) for n, c in CHECKS)))


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check every configured endpoint (NATS, Kubernetes RBAC, Prometheus, Loki, "
        "LLM gateway, Slack)",
        description="One line per component: ok, fail (with the reason) or off (with the "
        "variable that turns it on). Exit status 1 when a configured part fails.",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds each check may take (default %(default)s)",
    )


def report(checks: list[Check]) -> tuple[str, int]:
    """What the command prints, and its exit status: 1 when anything configured failed."""
    text = "".join(c.line() + "\n" for c in checks)
    return text, 1 if any(c.status == "fail" for c in checks) else 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    text, code = report(asyncio.run(diagnose(settings, args.timeout)))
    print(text, end="", flush=True)
    return code


# -- what is live, from the settings alone --------------------------------------------------------


def live_summary(settings: Settings) -> list[str]:
    """One line per evidence source and output, as the settings make them: no network calls."""
    rows: list[tuple[str, str, str]] = []
    k8s = settings.kubernetes
    if k8s.in_cluster:
        rows.append(("kubernetes", "on", "in-cluster service account"))
    elif k8s.kubeconfig:
        context = f", context {k8s.context}" if k8s.context else ""
        rows.append(("kubernetes", "on", f"kubeconfig {k8s.kubeconfig}{context}"))
    else:
        rows.append(("kubernetes", "off", f"set {KUBE_ENV}"))
    kube_on = bool(k8s.in_cluster or k8s.kubeconfig)
    prom = settings.prometheus
    if prom.url:
        rows.append(("prometheus", "on", f"{safe_url(prom.url)} ({len(prom.queries)} queries)"))
    else:
        rows.append(("prometheus", "off", "set TRIAGE_PROMETHEUS_URL"))
    if settings.loki.url:
        rows.append(("logs", "on", f"Loki {safe_url(settings.loki.url)}"))
    elif kube_on:
        rows.append(("logs", "on", "Kubernetes pod logs (set TRIAGE_LOKI_URL for Loki)"))
    else:
        rows.append(("logs", "off", "set TRIAGE_LOKI_URL, or configure Kubernetes for pod logs"))
    if settings.investigation.scenario_dir:
        rows.append(
            (
                "scenario",
                "on",
                f"recorded demo evidence from {settings.investigation.scenario_dir}",
            )
        )
    llm = settings.llm
    if llm.base_url:
        fallback = f", then {', '.join(llm.fallback_models)}" if llm.fallback_models else ""
        rows.append(
            (
                "llm",
                "on",
                f"{llm.model}{fallback} at {safe_url(llm.base_url)} "
                f"(heuristic draft when it fails)",
            )
        )
    else:
        rows.append(("llm", "off", "heuristic analyzer; set TRIAGE_LLM_BASE_URL for the LLM"))
    if settings.slack.bot_token or settings.slack.bot_token_file:
        routes = (
            f"routes from {settings.routing.file}"
            if settings.routing.file
            else f"everything to {settings.routing.default_channel}"
        )
        rows.append(("slack", "on", routes))
    else:
        rows.append(("slack", "off", "set TRIAGE_SLACK_BOT_TOKEN"))
    delivery = settings.delivery
    rows.append(
        ("console", "on", "drafts print here")
        if delivery.console
        else ("console", "off", "set TRIAGE_DELIVERY_CONSOLE=true")
    )
    rows.append(
        ("jsonl", "on", str(delivery.jsonl_path))
        if delivery.jsonl_path
        else ("jsonl", "off", "set TRIAGE_DELIVERY_JSONL_PATH")
    )
    rows.append(
        ("webhook", "on", safe_url(delivery.webhook_url))
        if delivery.webhook_url
        else ("webhook", "off", "set TRIAGE_DELIVERY_WEBHOOK_URL")
    )
    return [f"{name:<10}  {state:<3}  {detail}" for name, state, detail in rows]
