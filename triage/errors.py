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


class NotReady(TriageError):
    """Processing must wait (state not written yet, debounce, another worker's lease)."""

    def __init__(self, message: str, *, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class CollectorError(TriageError):
    def __init__(self, message: str, *, collector: str) -> None:
        super().__init__(message)
        self.collector = collector
