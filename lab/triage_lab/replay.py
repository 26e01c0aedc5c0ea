"""Replays a scenario into real servers: its series backfilled into a local Prometheus, its
Kubernetes objects served by the Kubernetes API fake. The `live` backend of `triage eval`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from triage.errors import ConfigError
from triage_lab.fakes.kubernetes import KubeApi
from triage_lab.fakes.prometheus import Prometheus
from triage_lab.scenarios import Scenario


@contextlib.contextmanager
def prometheus_with(openmetrics: str) -> Iterator[str]:
    """A Prometheus holding exactly these series (retention long enough for old data)."""
    try:
        prometheus = Prometheus(openmetrics)
    except (RuntimeError, ValueError) as exc:  # no binary, or not OpenMetrics
        raise ConfigError(str(exc)) from exc
    try:
        try:
            prometheus.start(timeout=20)
        except RuntimeError as exc:  # backfill failed, or it never got ready
            raise ConfigError(str(exc)[-500:]) from exc
        yield prometheus.url
    finally:
        prometheus.close()


@contextlib.contextmanager
def kube_api_with(scenario: Scenario) -> Iterator[str]:
    """The Kubernetes API fake for this scenario, on a free port, in a background thread."""
    with KubeApi(scenario.kubernetes, scenario.logs) as api:
        yield api.url
