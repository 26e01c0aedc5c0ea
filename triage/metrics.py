"""Prometheus metrics of every stage, on a registry owned by the app (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.webhook_requests = Counter(
            "triage_ingest_requests", "Webhook requests by outcome", ["outcome"], registry=r
        )
        self.alerts_received = Counter(
            "triage_ingest_alerts", "Alerts in accepted webhooks", ["status"], registry=r
        )
        self.publish_latency = Histogram(
            "triage_ingest_publish_seconds",
            "JetStream publish until ack",
            buckets=_FAST,
            registry=r,
        )
        self.consumer_pending = Gauge(
            "triage_consumer_pending",
            "Messages not yet acknowledged (pending + ack-pending)",
            ["consumer"],
            registry=r,
        )
        self.messages = Counter(
            "triage_messages", "Bus messages handled by outcome", ["stage", "outcome"], registry=r
        )
        self.dead_letters = Counter(
            "triage_dead_letters", "Messages sent to dead-letter", ["stage"], registry=r
        )
        self.investigations = Counter(
            "triage_investigations", "Investigations by outcome", ["outcome"], registry=r
        )
        self.stage_duration = Histogram(
            "triage_stage_seconds", "Time spent per stage", ["stage"], buckets=_SLOW, registry=r
        )
        self.collector_duration = Histogram(
            "triage_collector_seconds",
            "Time per collector by status",
            ["collector", "status"],
            buckets=_SLOW,
            registry=r,
        )
        self.deliveries = Counter(
            "triage_deliveries", "Deliveries by sink and outcome", ["sink", "outcome"], registry=r
        )
