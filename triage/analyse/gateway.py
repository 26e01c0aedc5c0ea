"""The boundary with the OpenAI SDK: the client, its errors mapped to GatewayError with what
the retry and the adaptive limit need (transient?, Retry-After, which load signal), prices."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import openai
from openai import AsyncOpenAI

from triage.analyse.backpressure import Signal
from triage.errors import GatewayError
from triage.settings import LLMSettings

MAX_RETRY_AFTER_S = 30.0


def gateway_client(settings: LLMSettings, api_key: str | None) -> AsyncOpenAI:
    # Retries are ours (tenacity, under the deadline), not the SDK's.
    return AsyncOpenAI(
        base_url=settings.base_url,
        api_key=api_key or "none",
        timeout=settings.timeout_s,
        max_retries=0,
    )


def gateway_error(exc: BaseException, model: str) -> tuple[GatewayError, Signal]:
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return GatewayError(f"{model}: request timed out", model=model, transient=True), "timeout"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return (
            GatewayError(f"{model}: connection failed: {cause}", model=model, transient=True),
            "error",
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        err = GatewayError(
            f"{model}: HTTP {status}: {exc.message}",
            model=model,
            status=status,
            transient=status in (408, 429) or status >= 500,
            retry_after=retry_after_s(exc.response.headers),
        )
        return err, "rate_limited" if status == 429 else "error"
    return GatewayError(f"{model}: {type(exc).__name__}: {exc}", model=model), "error"


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Retry-After-Ms, or Retry-After in seconds or as an HTTP date; capped."""
    try:
        if "retry-after-ms" in headers:
            return min(max(float(headers["retry-after-ms"]) / 1000, 0.0), MAX_RETRY_AFTER_S)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - time.time()
        return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError):
        return None


def price(setting: float | dict[str, float], model: str) -> float:
    """Price per 1k tokens: one number for every model, or per model with "*" as default."""
    if isinstance(setting, dict):
        return setting.get(model, setting.get("*", 0.0))
    return setting
