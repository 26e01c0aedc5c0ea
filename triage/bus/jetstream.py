"""NATS JetStream: stream, consumers and the incident KV bucket, declared idempotently; publishing
with de-duplication ids; compare-and-set updates of incident state; dead letters."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    KeyValueConfig,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue
from pydantic import BaseModel

from triage.bus.limits import DEFAULT_MAX_PAYLOAD, headers_size, truncate_bytes
from triage.bus.subjects import CONSUMERS, LANES, MAX_ACK_PENDING, Subjects
from triage.errors import BrokerLost, BrokerUnavailable, MessageTooLarge
from triage.models import DeadLetter, DeliveryRequest, IncidentState, utcnow
from triage.settings import NatsSettings
from triage.telemetry import Metrics

M = TypeVar("M", bound=BaseModel)

log = structlog.get_logger(__name__)

# What counts as "the broker cannot do it now": retry later, never a 4xx.
TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    asyncio.TimeoutError,
)
WRONG_LAST_SEQUENCE = 10071
# Startup gives up on NATS after this long, with one line naming the URL.
CONNECT_DEADLINE_S = 5.0
# KV writes carry Nats-Expected-Last-Subject-Sequence: <revision>.
KV_HEADERS = {"Nats-Expected-Last-Subject-Sequence": "9" * 20}


class Bus:
    """One nats-py connection for publishing and state; FastStream consumes on its own."""

    def __init__(
        self,
        settings: NatsSettings,
        url: str,
        metrics: Metrics,
        *,
        name: str = "",
        on_lost: Callable[[BrokerLost], None] | None = None,
    ) -> None:
        self.settings = settings
        self.url = url
        # How errors name the server, e.g. "TRIAGE_NATS_URL=nats://nats:4222".
        self.name = name or f"NATS {url}"
        self.subjects = Subjects(settings.subject_prefix)
        self.lost: BrokerLost | None = None
        self._on_lost = on_lost
        self._metrics = metrics
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._pacing: KeyValue | None = None
        self._closing = False
        self._last_error: BaseException | None = None

    async def connect(self, deadline_s: float = CONNECT_DEADLINE_S) -> None:
        """Connect within ``deadline_s`` or raise BrokerUnavailable naming the URL; once
        connected, nats-py reconnects for ever, and a connection it gives up on (the server
        answered -ERR) is reported to ``on_lost``."""
        if self._nc is not None and not self._nc.is_closed:
            return
        nc = Client()
        self._closing = False
        self._last_error = None
        try:
            async with asyncio.timeout(deadline_s):
                await nc.connect(
                    self.url,
                    name="triage",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,  # type: ignore[arg-type]  # a float works
                    connect_timeout=max(1, min(3, int(deadline_s))),
                    error_cb=self._error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    closed_cb=self._closed,
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            self._closing = True
            await nc.close()
            last = self._last_error or exc
            reason = f"{type(last).__name__}: {last}" if str(last) else type(last).__name__
            raise BrokerUnavailable(
                f"{self.name}: cannot connect within {deadline_s:g}s: {reason}"
            ) from exc
        self._nc = nc
        self._js = nc.jetstream(timeout=self.settings.publish_timeout_s)
        log.info("nats_connected", url=self.url, max_payload=nc.max_payload)

    async def _error(self, exc: Exception) -> None:
        # nats-py's default prints a traceback each time, twice a second while it reconnects:
        # say each kind of error once until the connection is back.
        if self._nc is not None and type(exc) is not type(self._last_error):
            log.warning("nats_error", url=self.url, error=f"{type(exc).__name__}: {exc}")
        self._last_error = exc

    async def _disconnected(self) -> None:
        if self._nc is not None and not self._closing:
            log.warning("nats_disconnected", url=self.url)

    async def _reconnected(self) -> None:
        self._last_error = None
        log.info("nats_reconnected", url=self.url)

    async def _closed(self) -> None:
        if self._closing or self._nc is None:
            return
        last = self._nc.last_error or self._last_error
        why = f"{type(last).__name__}: {last}" if last is not None else "closed by the client"
        self.lost = BrokerLost(f"{self.name}: connection closed for good ({why})")
        log.error("nats_connection_lost", url=self.url, error=why)
        if self._on_lost is not None:
            self._on_lost(self.lost)

    async def close(self) -> None:
        self._closing = True
        if self._nc is None or self._nc.is_closed:
            return
        try:
            await self._nc.drain()
        except (*TRANSIENT, nats.errors.ConnectionDrainingError):
            await self._nc.close()  # draining needs a live connection; closing does not

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def max_payload(self) -> int:
        """What the server announced it takes in one message, headers included."""
        return self._nc.max_payload if self._nc is not None else DEFAULT_MAX_PAYLOAD

    def room(self, headers: Mapping[str, str] | None = None) -> int:
        """Bytes of payload one message with ``headers`` may carry."""
        return self.max_payload - headers_size(headers)

    def check_size(
        self, subject: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Refuse here what the server would refuse with -ERR, which ends the connection."""
        size = len(payload) + headers_size(headers)
        if size > self.max_payload:
            raise MessageTooLarge(
                f"message of {size} bytes on {subject} exceeds the broker's max_payload of "
                f"{self.max_payload} bytes",
                subject=subject,
                size=size,
                limit=self.max_payload,
            )

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BrokerUnavailable("bus not connected")
        return self._js

    # -- declarations ---------------------------------------------------------------------------

    def stream_config(self) -> StreamConfig:
        s = self.settings
        return StreamConfig(
            name=s.stream,
            subjects=[f"{s.subject_prefix}.>"],
            retention=RetentionPolicy(s.retention),
            max_age=s.max_age_s,
            max_bytes=s.max_bytes,
            duplicate_window=s.duplicate_window_s,
            num_replicas=s.replicas,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
        )

    def consumer_config(self, durable: str) -> ConsumerConfig:
        s = self.settings
        return ConsumerConfig(
            durable_name=durable,
            filter_subject=getattr(self.subjects, CONSUMERS[durable]),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            max_deliver=s.max_deliver,
            max_ack_pending=MAX_ACK_PENDING.get(durable, 1000),
        )

    async def declare(self) -> None:
        """Create or update stream, consumers and bucket so that settings always win."""
        js = self.js
        config = self.stream_config()
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)
        for durable in CONSUMERS:
            await js.add_consumer(self.settings.stream, self.consumer_config(durable))
        try:
            self._kv = await js.key_value(self.settings.kv_bucket)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=self.settings.kv_bucket,
                    history=5,
                    replicas=self.settings.replicas,
                    storage=StorageType.FILE,
                )
            )

        # Slack's per-channel budget, shared by every notifier replica.
        try:
            self._pacing = await js.key_value(self.pacing_bucket)
        except nats.js.errors.BucketNotFoundError:
            self._pacing = await js.create_key_value(
                KeyValueConfig(
                    bucket=self.pacing_bucket,
                    history=1,
                    ttl=3600,
                    replicas=self.settings.replicas,
                    storage=StorageType.MEMORY,
                )
            )

    @property
    def pacing_bucket(self) -> str:
        return f"{self.settings.kv_bucket}_pacing"

    async def reserve_slot(self, key: str, interval_s: float) -> float:
        """Reserves the next free slot for ``key`` (a channel) across every process sharing this
        bus, one ``interval_s`` after the one before; returns the seconds to wait for it."""
        if self._pacing is None:
            raise BrokerUnavailable("pacing bucket not declared")
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        for _ in range(100):
            now = time.time()
            try:
                entry = await self._pacing.get(name)
                free, revision = float(entry.value or b"0"), entry.revision or 0
            except nats.js.errors.KeyNotFoundError:
                free, revision = 0.0, 0
            start = max(now, free)
            value = f"{start + interval_s:.6f}".encode()
            try:
                if revision == 0:
                    await self._pacing.create(name, value)
                else:
                    await self._pacing.update(name, value, last=revision)
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.APIError):
                continue  # another replica took this slot: the next one
            except TRANSIENT as exc:
                raise BrokerUnavailable(f"pacing: {exc}") from exc
            return start - now
        raise BrokerUnavailable(f"pacing of {key}: too much contention")

    async def _send(self, subject: str, data: bytes, headers: dict[str, str], what: str) -> PubAck:
        """One JetStream publish, size-checked first; the broker's refusals mapped."""
        self.check_size(subject, data, headers)
        try:
            return await self.js.publish(subject, data, headers=headers)
        except nats.errors.MaxPayloadError as exc:
            raise self._too_large(subject, data, headers) from exc
        except TRANSIENT as exc:
            raise BrokerUnavailable(
                f"{what} failed: {type(exc).__name__}", subject=subject
            ) from exc

    async def ready(self) -> bool:
        if not self.connected:
            return False
        try:
            await self.js.stream_info(self.settings.stream)
            await self.js.key_value(self.settings.kv_bucket)
        except (*TRANSIENT, nats.js.errors.NotFoundError):
            return False
        return True

    # -- publishing -----------------------------------------------------------------------------

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> bool:
        """Publish durably; True if JetStream stored it, False if it was a known duplicate."""
        if not self.connected:
            # Buffering while disconnected could land the message after we said 503.
            raise BrokerUnavailable("not connected to NATS", subject=subject)
        headers = {"Nats-Msg-Id": msg_id}
        ack = await self._send(subject, payload, headers, "publish")
        return not ack.duplicate

    def _too_large(
        self, subject: str, payload: bytes, headers: Mapping[str, str] | None
    ) -> MessageTooLarge:
        size = len(payload) + headers_size(headers)
        return MessageTooLarge(
            f"message of {size} bytes on {subject} refused: over the broker's max_payload "
            f"of {self.max_payload} bytes",
            subject=subject,
            size=size,
            limit=self.max_payload,
        )

    async def publish_model(self, subject: str, model: BaseModel, msg_id: str) -> bool:
        return await self.publish(subject, model.model_dump_json().encode(), msg_id)

    async def publish_delivery(self, request: DeliveryRequest, msg_id: str) -> bool:
        """To every delivery lane, each de-duplicated under its own id; a lane whose sinks this
        deployment lacks acks it as nothing to do. True if any lane stored it anew."""
        payload = request.model_dump_json().encode()
        stored = [
            await self.publish(getattr(self.subjects, lane.subject), payload, lane.msg_id(msg_id))
            for lane in LANES
        ]
        return any(stored)

    async def dead_letter(
        self,
        stage: str,
        subject: str,
        payload: bytes,
        reason: str,
        deliveries: int,
        *,
        stream_seq: int | None = None,
    ) -> None:
        """Publish a dead letter; one whose payload would not fit keeps as much of it as fits,
        and its reason says so (and where the original is, while the stream keeps it)."""
        target = self.subjects.dead_letter(stage)
        headers = {"Triage-Reason": reason[:200].replace("\r", " ").replace("\n", " ")}
        letter = DeadLetter(
            subject=subject,
            reason=reason,
            deliveries=deliveries,
            payload=payload.decode("utf-8", "replace"),
            at=utcnow(),
        )
        data = letter.model_dump_json().encode()
        room = self.room(headers)
        if len(data) > room:
            where = f"; the original is stream {self.settings.stream} sequence {stream_seq}"
            note = (
                f" [payload of {len(payload)} bytes truncated to fit the broker's max_payload "
                f"of {self.max_payload} bytes{where if stream_seq else ''}]"
            )
            letter.reason = reason + note
            letter.payload = ""
            overhead = len(letter.model_dump_json().encode())
            # JSON escaping can make a byte six (\u00XX): scale down until it fits.
            keep = room - overhead
            for _ in range(20):
                letter.payload = truncate_bytes(payload, keep).decode("utf-8", "replace")
                data = letter.model_dump_json().encode()
                if len(data) <= room or keep <= 0:
                    break
                keep = int(keep * (room - overhead) / (len(data) - overhead) * 0.99)
            if len(data) > room:
                letter.payload = ""
                data = letter.model_dump_json().encode()
        await self._send(target, data, headers, "dead letter")
        self._metrics.dead_letters.labels(stage).inc()
        log.warning("dead_letter", stage=stage, reason=reason, deliveries=deliveries)

    # -- incident state -------------------------------------------------------------------------

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise BrokerUnavailable("incident bucket not declared")
        return self._kv

    async def get_incident(self, incident_id: str) -> tuple[IncidentState | None, int]:
        return await self.get_model(incident_id, IncidentState)

    async def get_model(self, key: str, model: type[M]) -> tuple[M | None, int]:
        """The value under ``key`` and its revision (0: none)."""
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        except TRANSIENT as exc:
            raise BrokerUnavailable(f"kv get failed: {type(exc).__name__}") from exc
        if entry.value is None:
            return None, 0
        return model.model_validate_json(entry.value), entry.revision or 0

    async def mutate_incident(
        self,
        incident_id: str,
        change: Callable[[IncidentState | None], IncidentState | None],
        *,
        attempts: int = 50,
    ) -> IncidentState | None:
        """Apply ``change`` with compare-and-set, re-reading on conflict. ``change`` returns None
        to leave the state as it is; the result is the state as stored."""
        return await self.mutate_model(
            incident_id, IncidentState, change, attempts=attempts, what=f"incident {incident_id}"
        )

    async def mutate_model(
        self,
        key: str,
        model: type[M],
        change: Callable[[M | None], M | None],
        *,
        attempts: int = 200,
        what: str = "",
    ) -> M | None:
        """Compare-and-set of any model kept in the bucket under ``key`` (an incident, the
        correlation index): ``change`` sees a copy of the stored value and returns the new one,
        or None to leave it; conflicts re-read and try again."""
        what = what or key
        for _ in range(attempts):
            current, revision = await self.get_model(key, model)
            new = change(current.model_copy(deep=True) if current is not None else None)
            if new is None:
                return current
            data = new.model_dump_json().encode()
            self.check_size(f"{what} (KV bucket)", data, KV_HEADERS)
            try:
                if revision == 0:
                    await self.kv.create(key, data)
                else:
                    await self.kv.update(key, data, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except nats.errors.MaxPayloadError as exc:
                raise self._too_large(what, data, KV_HEADERS) from exc
            except nats.js.errors.APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    continue
                raise BrokerUnavailable(f"kv write failed: {exc}") from exc
            except TRANSIENT as exc:
                raise BrokerUnavailable(f"kv write failed: {type(exc).__name__}") from exc
            return new
        raise BrokerUnavailable(f"{what}: too much write contention")

    # -- lag ------------------------------------------------------------------------------------

    async def report_lag(self, durables: list[str]) -> None:
        for durable in durables:
            try:
                info = await self.js.consumer_info(self.settings.stream, durable)
            except (*TRANSIENT, nats.js.errors.NotFoundError):
                continue
            pending = (info.num_pending or 0) + (info.num_ack_pending or 0)
            self._metrics.consumer_pending.labels(durable).set(pending)


def worker_id() -> str:
    """This process, as claims on incident state name it."""
    return f"{socket.gethostname()}-{os.getpid()}"
