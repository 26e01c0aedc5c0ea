"""OpenMetrics text for collector tests: counters that count per minute around a fixed onset,
and the incident whose alert they are read for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from collectors.contracts import TimeWindow
from tests.support.incidents import firing
from triage.models import IncidentState

ONSET = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=30), onset=ONSET, end=ONSET + timedelta(minutes=10)
)
MINUTES = range(-40, 11)


def ts(minute: int) -> int:
    return int((ONSET + timedelta(minutes=minute)).timestamp())


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def counter(
    name: str,
    labels: dict[str, str],
    per_minute: Callable[[int], float],
    minutes: range = MINUTES,
) -> list[str]:
    """A counter's samples: what it counted each minute, added up."""
    total, lines = 0.0, []
    for m in minutes:
        total += per_minute(m)
        lines.append(f"{name}{{{_labels(labels)}}} {total:g} {ts(m)}")
    return lines


def openmetrics(*families: tuple[str, str, list[str]]) -> str:
    lines = []
    for family, kind, samples in families:
        lines += [f"# TYPE {family} {kind}", *samples]
    return "\n".join(lines) + "\n# EOF\n"


def incident(labels: dict[str, str]) -> IncidentState:
    return firing(labels, ONSET, fingerprint="f")
