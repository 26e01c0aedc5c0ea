"""One root error; subclasses carry the fields a handler needs to decide what to do."""

from __future__ import annotations


class TriageError(Exception):
    """Root of every error triage raises on purpose."""


class ConfigError(TriageError):
    def __init__(self, message: str, *, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


class BrokerUnavailable(TriageError):
    """The bus cannot take or give a message now; the caller should retry later."""

    def __init__(self, message: str, *, subject: str = "") -> None:
        super().__init__(message)
        self.subject = subject


class PoisonMessage(TriageError):
    """A message that can never be processed; it goes to dead-letter instead of looping."""

    def __init__(self, message: str, *, subject: str = "") -> None:
        super().__init__(message)
        self.subject = subject


class MessageTooLarge(PoisonMessage):
    """A message over the broker's max_payload (headers included): it is never sent, since the
    server would answer with an error that closes the connection for good."""

    def __init__(self, message: str, *, subject: str = "", size: int, limit: int) -> None:
        super().__init__(message, subject=subject)
        self.size = size
        self.limit = limit


class BrokerLost(BrokerUnavailable):
    """The connection to NATS is closed for good (nats-py will not reconnect): the process must
    stop so that its supervisor restarts it."""


class NotReady(TriageError):
    """Processing must wait (state not written yet, debounce, another worker's lease)."""

    def __init__(self, message: str, *, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class CollectorError(TriageError):
    def __init__(self, message: str, *, collector: str) -> None:
        super().__init__(message)
        self.collector = collector


class RoutingFileError(ConfigError):
    """The routing file is unusable; ``line`` is 1-based (0 when the file cannot be read)."""

    def __init__(self, message: str, *, path: str, line: int) -> None:
        super().__init__(message, setting="routing.file")
        self.path = path
        self.line = line


class DeliveryError(TriageError):
    """A sink could not deliver; the bus redelivers the message later."""

    def __init__(self, message: str, *, sink: str) -> None:
        super().__init__(message)
        self.sink = sink


class PartialDelivery(DeliveryError):
    """Some of a sink's posts went out before it failed: ``ref`` records them so that the retry
    updates those instead of posting them again."""

    def __init__(self, message: str, *, sink: str, ref: str) -> None:
        super().__init__(message, sink=sink)
        self.ref = ref


class GatewayError(TriageError):
    """An LLM gateway call failed. ``transient`` ones (429, 5xx, timeouts, connection errors)
    are retried, then the next model is asked; ``retry_after`` is the gateway's hint in seconds."""

    def __init__(
        self,
        message: str,
        *,
        model: str,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status = status
        self.transient = transient
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        return self.status == 429
