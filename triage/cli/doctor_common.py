"""What every ``triage doctor`` check shares: the result line, error text, printable URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import urllib3.exceptions
from slack_sdk.errors import SlackApiError

Status = Literal["ok", "fail", "off"]

KUBE_ENV = "TRIAGE_KUBERNETES_KUBECONFIG or TRIAGE_KUBERNETES_IN_CLUSTER=true"


@dataclass(frozen=True)
class Check:
    status: Status
    component: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.component:<10}  {self.detail}"


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
