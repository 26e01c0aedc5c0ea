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

from triage.bus import Bus
from triage.errors import BrokerUnavailable
from triage.metrics import Metrics
from triage.models import AlertmanagerWebhook, incident_id_for, utcnow

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/api/v1/alertmanager"


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
    def __init__(self, bus: Bus, metrics: Metrics, auth: Auth, max_body_bytes: int) -> None:
        self._bus = bus
        self._metrics = metrics
        self._auth = auth
        self._max_body = max_body_bytes

    def routes(self) -> list[Route]:
        return [Route(WEBHOOK_PATH, self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        response, outcome = await self._handle(request)
        self._metrics.webhook_requests.labels(outcome).inc()
        return response

    async def _handle(self, request: Request) -> tuple[Response, str]:
        if not self._auth.check(request.headers.get("authorization")):
            resp = _error(401, "missing or wrong credentials")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="triage"'
            return resp, "unauthorized"
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _error(415, "Content-Type must be application/json"), "unsupported_media"
        body = await self._read_bounded(request)
        if body is None:
            return _error(413, f"body exceeds {self._max_body} bytes"), "too_large"
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

        msg_id = webhook.content_id()
        # The raw body is embedded as-is: it was just validated, and re-encoding 50 alerts
        # would cost more than everything else here.
        envelope = b'{"schema_version":1,"msg_id":"%s","received_at":"%s","webhook":%s}' % (
            msg_id.encode(),
            utcnow().isoformat().encode(),
            body,
        )
        started = time.perf_counter()
        try:
            stored = await self._bus.publish(self._bus.subjects.alerts, envelope, msg_id)
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

    async def _read_bounded(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return None
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
