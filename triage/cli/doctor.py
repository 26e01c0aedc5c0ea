"""``triage doctor``: every configured endpoint checked, one line each, and ``live_summary``: what
an instance will use, from the settings alone (the ``serve`` banner).

Each line is ``ok|fail|off  COMPONENT  DETAIL``; ``off`` names the variable that turns the part
on. The checks run concurrently, each under ``--timeout``; whatever a library raises becomes one
line (type and message), never a traceback. Exit status 1 when anything configured failed.
The checks themselves live one module per system (``doctor_nats``, ``doctor_kubernetes``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from triage.cli.doctor_common import KUBE_ENV, Check, describe, safe_url
from triage.cli.doctor_kubernetes import check_kubernetes
from triage.cli.doctor_llm import check_llm
from triage.cli.doctor_nats import check_nats
from triage.cli.doctor_prometheus import check_loki, check_prometheus
from triage.cli.doctor_slack import check_slack
from triage.settings import Settings

DEFAULT_TIMEOUT_S = 15.0

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
