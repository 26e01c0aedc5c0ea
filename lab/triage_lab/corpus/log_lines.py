"""Log lines as services of different stacks print them: structured JSON, logfmt, Spring Boot,
uvicorn, and the datastores' and cluster add-ons' own formats."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime

STYLES = ("json", "logfmt", "java", "python")


def stamp(t: datetime) -> str:
    """``kubectl logs --timestamps`` prefix: RFC 3339 with nanoseconds."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}{t.microsecond % 997:03d}Z"


def fmt(style: str, level: str, msg: str, rng: random.Random, **fields: object) -> str:
    if style == "json":
        caller = rng.choice(("server/http.go:142", "client/pool.go:88", "app/handler.go:57"))
        body: dict[str, object] = {"level": level, "caller": caller, "msg": msg, **fields}
        return json.dumps(body, separators=(",", ":"))
    if style == "logfmt":
        extra = " ".join(f"{k}={_lf(v)}" for k, v in fields.items())
        return f"level={level} msg={_lf(msg)}" + (f" {extra}" if extra else "")
    if style == "java":
        thread = rng.choice(("http-nio-8080-exec-", "reactor-http-epoll-", "scheduling-"))
        logger = rng.choice(
            (
                "c.e.api.web.RequestHandler",
                "c.e.api.client.UpstreamClient",
                "c.e.api.service.CoreService",
            )
        )
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        return f"{level.upper():5} 1 --- [{thread}{rng.randint(1, 12)}] {logger:40} : {msg}{extra}"
    if style == "python":
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        return f"{level.upper()}:app.{rng.choice(('api', 'clients', 'service'))}:{msg}{extra}"
    if style == "postgres":
        tag = {"info": "LOG", "warn": "WARNING", "error": "ERROR", "fatal": "FATAL"}[level]
        return f"[{rng.randint(40, 9000)}] {tag}:  {msg}"
    if style == "redis":
        mark = {"info": "*", "warn": "#", "error": "#", "fatal": "#"}[level]
        return f"1:M {mark} {msg}"
    if style == "coredns":
        tag = {"info": "INFO", "warn": "WARNING", "error": "ERROR", "fatal": "FATAL"}[level]
        return f"[{tag}] {msg}"
    if style == "argocd":
        extra = "".join(f" {k}={_lf(v)}" for k, v in fields.items())
        return f"level={level} msg={_lf(msg)}{extra}"
    if style == "flux":
        body = {"level": level, "msg": msg, **fields}
        return json.dumps(body, separators=(",", ":"))
    raise ValueError(style)


def _lf(v: object) -> str:
    s = str(v)
    return json.dumps(s) if (" " in s or '"' in s or "=" in s or not s) else s


def access(style: str, rng: random.Random, noun: str, client_ip: str) -> tuple[str, str]:
    """One ordinary request line: (level, formatted line)."""
    method = rng.choice(("GET", "GET", "GET", "POST", "PUT"))
    path = f"/api/v1/{noun}" + (f"/{rng.randint(1000, 99999)}" if rng.random() < 0.6 else "")
    status = rng.choice((200, 200, 200, 200, 201, 204, 304, 404))
    ms = round(rng.lognormvariate(2.6, 0.6), 1)
    if style == "python":
        return (
            "info",
            f"INFO:     {client_ip}:{rng.randint(30000, 60999)} - "
            f'"{method} {path} HTTP/1.1" {status}',
        )
    if style == "java":
        return "info", fmt(style, "info", f"{method} {path} -> {status} ({ms} ms)", rng)
    return "info", fmt(
        style,
        "info",
        "request completed",
        rng,
        method=method,
        path=path,
        status=status,
        duration_ms=ms,
    )


# Warnings that every fleet prints all day and that have nothing to do with any incident.
BENIGN_WARNINGS = (
    "retrying export of spans to otel-collector.observability:4317: connection reset by peer",
    "config key 'legacy_pagination' is deprecated and will be removed in the next major release",
    "GC pause of 142ms exceeded target of 100ms",
    "client closed connection before the response was written",
    "jwks refresh took 2.4s (threshold 2s)",
    "rate limit for tenant t-{n} at 86% of quota",
    "slow request: GET /api/v1/export took 3.1s",
    "feature flag service returned stale snapshot, using cached flags (age 95s)",
    "connection pool at 80% utilisation (16/20)",
    "unknown query parameter 'utm_source' ignored",
)
BENIGN_ERRORS = (
    "request aborted: context canceled",
    "failed to write response: write tcp {ip}:8080->10.0.3.17:{n}: write: broken pipe",
    "validation failed for request id={n}: missing field 'email'",
)
PG_BASELINE = (
    "checkpoint starting: time",
    "checkpoint complete: wrote {n} buffers (1.2%); 0 WAL file(s) added, 0 removed, 1 recycled",
    'automatic vacuum of table "app.public.events": index scans: 1',
    "duration: {ms}.{d} ms  statement: SELECT * FROM line_items WHERE created_at > $1",
)
REDIS_BASELINE = (
    "100 changes in 300 seconds. Saving...",
    "Background saving started by pid {n}",
    "DB saved on disk",
    "Background saving terminated with success",
)
COREDNS_BASELINE = (
    '{ip}:{n} - {n} "A IN {host}. udp 64 false 1232" NOERROR qr,aa,rd 120 0.000{d}s',
    '{ip}:{n} - {n} "AAAA IN {host}. udp 64 false 1232" NOERROR qr,aa,rd 152 0.000{d}s',
)


_RANGES = {"n": (1024, 65000), "d": (120, 980), "ms": (1000, 4800)}


def fill(template: str, rng: random.Random, **values: str) -> str:
    """``{n}`` (port-sized), ``{d}`` (hundreds), ``{ms}`` get a fresh number each; named
    values replace their own placeholders."""
    out = re.sub(r"\{(n|d|ms)\}", lambda m: str(rng.randint(*_RANGES[m.group(1)])), template)
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out
