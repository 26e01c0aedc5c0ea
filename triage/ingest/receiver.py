"""Alertmanager webhook receiver: authenticate, bound, validate, publish durably, then answer."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from dataclasses import dataclass

import structlog
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from triage.bus.jetstream import Bus
from triage.errors import BrokerUnavailable, MessageTooLarge
from triage.ingest import body as http_body
from triage.models import AlertmanagerWebhook, incident_id_for, utcnow
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/api/v1/alertmanager"
# The envelope around the body and its Nats-Msg-Id header: a content id is 32 hex characters,
# received_at always has microseconds, so every envelope has the same overhead.
_ENVELOPE = b'{"schema_version":1,"msg_id":"%s","received_at":"%s","webhook":%s}'
ENVELOPE_OVERHEAD = len(_ENVELOPE % (b"0" * 32, b"2026-01-01T00:00:00.000000+00:00", b""))
MSG_ID_HEADERS = {"Nats-Msg-Id": "0" * 32}


def envelope(msg_id: str, body: bytes) -> bytes:
    received = utcnow().isoformat(timespec="microseconds").encode()
    return _ENVELOPE % (msg_id.encode(), received, body)


@dataclass(frozen=True)
class Auth:
    """Credentials Alertmanager's http_config may send; None everywhere means open."""

    bearer_token: str | None = None
    basic_username: str | None = None
    basic_password: str | None = None

    @property
    def open(self) -> bool:
        return self.bearer_token is None and self.basic_password is None

    def check(self, header: str | None) -> bool:
        if self.open:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self.bearer_token is not None:
            return hmac.compare_digest(value.encode(), self.bearer_token.encode())
        if scheme == "basic" and self.basic_password is not None:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            # Compare both, always, so timing does not tell which one was wrong.
            ok_user = hmac.compare_digest(user.encode(), (self.basic_username or "").encode())
            ok_pass = hmac.compare_digest(password.encode(), self.basic_password.encode())
            return ok_user and ok_pass
        return False


def _error(status: int, error: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


class WebhookReceiver:
    def __init__(
        self,
        bus: Bus,
        metrics: Metrics,
        auth: Auth,
        max_body_bytes: int,
        *,
        body_timeout_s: float | None = None,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._auth = auth
        self._max_body = max_body_bytes
        self._body_timeout_s = (
            http_body.BODY_TIMEOUT_S if body_timeout_s is None else body_timeout_s
        )

    def routes(self) -> list[Route]:
        return [Route(WEBHOOK_PATH, self.receive, methods=["POST"])]

    @property
    def body_limit(self) -> int:
        """The largest body that can be taken: TRIAGE_INGEST_MAX_BODY_BYTES, or less when the
        broker's max_payload, less the envelope and its header, is smaller."""
        return min(self._max_body, self._broker_body_limit())

    def _broker_body_limit(self) -> int:
        return self._bus.room(MSG_ID_HEADERS) - ENVELOPE_OVERHEAD

    def _too_large(self) -> JSONResponse:
        if self._broker_body_limit() < self._max_body:
            return _error(
                413,
                f"body exceeds {self.body_limit} bytes (the broker's max_payload of "
                f"{self._bus.max_payload} bytes less {self._bus.max_payload - self.body_limit} "
                f"bytes of envelope; TRIAGE_INGEST_MAX_BODY_BYTES={self._max_body})",
                limit=self.body_limit,
            )
        return _error(413, f"body exceeds {self._max_body} bytes", limit=self._max_body)

    async def receive(self, request: Request) -> Response:
        response, outcome = await self._handle(request)
        self._metrics.webhook_requests.labels(outcome).inc()
        return response

    async def _handle(self, request: Request) -> tuple[Response, str]:
        if not self._auth.check(request.headers.get("authorization")):
            resp = _error(401, "missing or wrong credentials")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="triage"'
            # Answered unread: the body is dropped or the connection closed, never kept open.
            resp.headers.update(await http_body.release(request))
            return resp, "unauthorized"
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            resp = _error(415, "Content-Type must be application/json")
            resp.headers.update(await http_body.release(request))
            return resp, "unsupported_media"
        try:
            body = await http_body.read_body(
                request, limit=self.body_limit, timeout_s=self._body_timeout_s
            )
        except http_body.BodyError as exc:  # 413 over the body limit, 408 past the deadline
            resp = self._too_large() if exc.status == 413 else _error(exc.status, str(exc))
            resp.headers.update(await http_body.release(request, exc))
            return resp, exc.outcome
        try:
            webhook = AlertmanagerWebhook.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            if errors[0]["type"] == "json_invalid":
                return _error(400, f"malformed JSON: {errors[0]['msg']}"), "bad_json"
            fields = [
                {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
                for e in errors[:20]
            ]
            return _error(422, "invalid webhook payload", fields=fields), "invalid"

        if len(body) > self.body_limit:
            return self._too_large(), "too_large"
        msg_id = webhook.content_id()
        # The raw body is embedded as-is: it was just validated, and re-encoding 50 alerts
        # would cost more than everything else here.
        started = time.perf_counter()
        try:
            stored = await self._bus.publish(
                self._bus.subjects.alerts, envelope(msg_id, body), msg_id
            )
        except MessageTooLarge as exc:  # the broker's limit changed since we looked
            log.warning("ingest_too_large", error=str(exc))
            return self._too_large(), "too_large"
        except BrokerUnavailable as exc:
            log.warning("ingest_unavailable", error=str(exc))
            resp = _error(503, "broker unavailable, retry later")
            resp.headers["Retry-After"] = "5"
            return resp, "unavailable"
        self._metrics.publish_latency.observe(time.perf_counter() - started)
        firing = sum(1 for a in webhook.alerts if a.status == "firing")
        for status, count in (("firing", firing), ("resolved", len(webhook.alerts) - firing)):
            if count:
                self._metrics.alerts_received.labels(status).inc(count)
        incident_id = incident_id_for(webhook.groupKey)
        return (
            JSONResponse(
                {
                    "status": "accepted",
                    "incident_id": incident_id,
                    "msg_id": msg_id,
                    "duplicate": not stored,
                    "alerts": len(webhook.alerts),
                }
            ),
            "accepted" if stored else "duplicate",
        )
