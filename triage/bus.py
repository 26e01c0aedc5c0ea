"""NATS JetStream: stream, consumers and the incident KV bucket, declared idempotently; publishing
with de-duplication ids; compare-and-set updates of incident state; dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

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
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue
from pydantic import BaseModel

from triage.errors import BrokerUnavailable
from triage.metrics import Metrics
from triage.models import DeadLetter, IncidentState, utcnow
from triage.settings import NatsSettings

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


@dataclass(frozen=True)
class Subjects:
    prefix: str

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def investigate(self) -> str:
        return f"{self.prefix}.investigate"

    @property
    def follow_up(self) -> str:
        return f"{self.prefix}.followup"

    @property
    def deliver(self) -> str:
        return f"{self.prefix}.deliver"

    def dead_letter(self, stage: str) -> str:
        return f"{self.prefix}.deadletter.{stage}"


# durable consumer name -> subject attribute; one consumer per stage, shared by its replicas.
# Follow-ups wait minutes on purpose (a delayed nak keeps them ack-pending): on their own
# consumer they neither block fresh investigations at max_ack_pending nor inflate the lag that
# scales the workers.
CONSUMERS = {
    "incidents": "alerts",
    "investigations": "investigate",
    "followups": "follow_up",
    "deliveries": "deliver",
}
MAX_ACK_PENDING = {"followups": 100_000}


class Bus:
    """One nats-py connection for publishing and state; FastStream consumes on its own."""

    def __init__(self, settings: NatsSettings, url: str, metrics: Metrics) -> None:
        self.settings = settings
        self.url = url
        self.subjects = Subjects(settings.subject_prefix)
        self._metrics = metrics
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None

    async def connect(self) -> None:
        self._nc = await nats.connect(
            self.url,
            name="triage",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=3,
        )
        self._js = self._nc.jetstream(timeout=self.settings.publish_timeout_s)

    async def close(self) -> None:
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
        try:
            ack = await self.js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
        except TRANSIENT as exc:
            raise BrokerUnavailable(
                f"publish failed: {type(exc).__name__}", subject=subject
            ) from exc
        return not ack.duplicate

    async def publish_model(self, subject: str, model: BaseModel, msg_id: str) -> bool:
        return await self.publish(subject, model.model_dump_json().encode(), msg_id)

    async def dead_letter(
        self, stage: str, subject: str, payload: bytes, reason: str, deliveries: int
    ) -> None:
        letter = DeadLetter(
            subject=subject,
            reason=reason,
            deliveries=deliveries,
            payload=payload.decode("utf-8", "replace"),
            at=utcnow(),
        )
        await self.js.publish(
            self.subjects.dead_letter(stage),
            letter.model_dump_json().encode(),
            headers={"Triage-Reason": reason[:200]},
        )
        self._metrics.dead_letters.labels(stage).inc()
        log.warning("dead_letter", stage=stage, reason=reason, deliveries=deliveries)

    # -- incident state -------------------------------------------------------------------------

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise BrokerUnavailable("incident bucket not declared")
        return self._kv

    async def get_incident(self, incident_id: str) -> tuple[IncidentState | None, int]:
        try:
            entry = await self.kv.get(incident_id)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        except TRANSIENT as exc:
            raise BrokerUnavailable(f"kv get failed: {type(exc).__name__}") from exc
        if entry.value is None:
            return None, 0
        return IncidentState.model_validate_json(entry.value), entry.revision or 0

    async def mutate_incident(
        self,
        incident_id: str,
        change: Callable[[IncidentState | None], IncidentState | None],
        *,
        attempts: int = 50,
    ) -> IncidentState | None:
        """Apply ``change`` with compare-and-set, re-reading on conflict. ``change`` returns None
        to leave the state as it is; the result is the state as stored."""
        for _ in range(attempts):
            state, revision = await self.get_incident(incident_id)
            before = state.model_copy(deep=True) if state is not None else None
            new = change(before)
            if new is None:
                return state
            data = new.model_dump_json().encode()
            try:
                if revision == 0:
                    await self.kv.create(incident_id, data)
                else:
                    await self.kv.update(incident_id, data, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except nats.js.errors.APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    continue
                raise BrokerUnavailable(f"kv write failed: {exc}") from exc
            except TRANSIENT as exc:
                raise BrokerUnavailable(f"kv write failed: {type(exc).__name__}") from exc
            return new
        raise BrokerUnavailable(f"incident {incident_id}: too much write contention")

    # -- lag ------------------------------------------------------------------------------------

    async def report_lag(self, durables: list[str]) -> None:
        for durable in durables:
            try:
                info = await self.js.consumer_info(self.settings.stream, durable)
            except (*TRANSIENT, nats.js.errors.NotFoundError):
                continue
            pending = (info.num_pending or 0) + (info.num_ack_pending or 0)
            self._metrics.consumer_pending.labels(durable).set(pending)
