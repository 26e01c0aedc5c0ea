"""Kubernetes fault corpus: seeded, deterministic incident scenarios (docs/scenarios.md) for 13
fault categories, three or more variants each, with noise (benign rollouts, config edits and
Secret rotations, transient probe failures, unrelated firing or flapping alerts).

Layout: :mod:`.names` (name pools), :mod:`.cluster` (the namespace before the incident),
:mod:`.world` (timeline, metric shapes, logs, events), :mod:`.changes` (rollouts, crash loops,
GitOps syncs), :mod:`.faults` (one module per fault family), :mod:`.noise`, :mod:`.alerts`,
:mod:`.kube` and :mod:`.render` (API objects, logs, OpenMetrics).

Metric series, one sample a minute (``render.FAMILIES``): ``service_request_rate``,
``service_error_ratio``, ``service_p99_seconds``, ``service_cpu_cores``,
``service_memory_bytes``, ``service_throttled_ratio``, ``service_restarts_total``
(``service`` label); ``pod_error_ratio`` (``service``, ``pod``, ``version``; services rolled
out inside the window); ``edge_error_ratio`` (``caller``, ``callee``); ``node_ready``
(``node``); ``hpa_current_replicas`` and ``tls_cert_not_after_seconds`` (``service``).
"""

from __future__ import annotations

from triage_lab.corpus.generate import generate_corpus

__all__ = ["generate_corpus"]
