"""Small conversions the generator uses everywhere."""

from __future__ import annotations

from datetime import timedelta

MIN = timedelta(minutes=1)


def sec(s: float) -> timedelta:
    return timedelta(seconds=s)


def mib(q: str) -> float:
    """Bytes of a Kubernetes memory quantity (Mi/Gi only, as the generator writes them)."""
    if q.endswith("Gi"):
        return float(q[:-2]) * 1024**3
    return float(q[:-2]) * 1024**2


def cores(q: str | None) -> float:
    """CPU cores of a quantity; no limit counts as two cores of headroom."""
    if q is None:
        return 2.0
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)
