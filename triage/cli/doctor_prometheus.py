"""``triage doctor``'s HTTP evidence sources: Prometheus (and its query templates), Loki."""

from __future__ import annotations

from typing import Any

import httpx

from triage.cli.doctor_common import Check, describe, safe_url
from triage.settings import Settings

# A namespace no cluster has: query templates are parsed and evaluated, but select nothing.
NO_NAMESPACE = "triage-doctor-no-such-namespace"


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
