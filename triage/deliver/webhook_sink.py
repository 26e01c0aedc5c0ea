"""A generic JSON webhook sink for chat tools other than Slack: the JSONL record, POSTed.

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with backoff under a
deadline; anything else, or the deadline, fails the delivery and the bus redelivers it later.
Receivers can drop repeats by the ``Idempotency-Key`` header.
"""

from __future__ import annotations

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from triage.deliver.delivery import delivery_id, delivery_record
from triage.deliver.routing import RouteDecision
from triage.errors import DeliveryError
from triage.models import DeliveryRequest

log = structlog.get_logger(__name__)


class _Retryable(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _Retryable)


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, client: httpx.AsyncClient, *, deadline_s: float) -> None:
        self._url = url
        self._client = client
        self._deadline = deadline_s

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        key = delivery_id(request)
        body = delivery_record(request, route, thread)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                stop=stop_after_delay(self._deadline),
                wait=wait_exponential_jitter(multiplier=0.2, max=5, jitter=0.2),
                reraise=False,
            ):
                with attempt:
                    resp = await self._client.post(
                        self._url, json=body, headers={"Idempotency-Key": key}
                    )
                    if resp.status_code == 429 or resp.status_code >= 500:
                        raise _Retryable(resp.status_code)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise DeliveryError(
                f"webhook {self._url}: still failing after {self._deadline:g}s: {last}",
                sink=self.name,
            ) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self._url}: {exc}", sink=self.name) from exc
        if resp.status_code >= 400:
            raise DeliveryError(
                f"webhook {self._url} refused the delivery: HTTP {resp.status_code}",
                sink=self.name,
            )
        return thread or f"webhook:{request.incident_id}"
