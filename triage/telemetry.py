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
        self.correlations = Counter(
            "triage_correlations",
            "Alert groups placed by correlation: parent, attached, detached",
            ["outcome"],
            registry=r,
        )
        self.storm_reinvestigations = Counter(
            "triage_storm_reinvestigations",
            "Re-investigations of parent incidents requested because groups attached",
            registry=r,
        )
        self.deliveries = Counter(
            "triage_deliveries", "Deliveries by sink and outcome", ["sink", "outcome"], registry=r
        )
        # Accuracy as readers judge it: correct / (correct + wrong), per analyzer.
        self.feedback = Counter(
            "triage_feedback",
            "Verdicts on drafts' probable causes (Slack buttons), first per draft revision",
            ["verdict", "analyzer"],
            registry=r,
        )
        self.slack_interactions = Counter(
            "triage_slack_interactions",
            "Slack interactivity requests by outcome",
            ["outcome"],
            registry=r,
        )
        # LLM gateway: queue wait and in-flight drive autoscaling; tokens and cost go to owners.
        self.llm_inflight = Gauge(
            "triage_llm_inflight", "LLM gateway calls in flight in this worker", registry=r
        )
        self.llm_limit = Gauge(
            "triage_llm_concurrency_limit",
            "Adaptive (AIMD) limit on in-flight LLM calls in this worker",
            registry=r,
        )
        self.llm_queue_wait = Histogram(
            "triage_llm_queue_wait_seconds",
            "Wait for an LLM call slot",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
            registry=r,
        )
        self.llm_calls = Counter(
            "triage_llm_calls",
            "LLM gateway calls by model and outcome (ok, rate_limited, error, timeout)",
            ["model", "outcome"],
            registry=r,
        )
        self.llm_call_duration = Histogram(
            "triage_llm_call_seconds",
            "LLM gateway call latency",
            ["model"],
            buckets=_SLOW,
            registry=r,
        )
        self.llm_analyses = Counter(
            "triage_llm_analyses",
            "RCAs by how they were made (llm, repaired, invalid, unavailable, circuit_open, "
            "no_evidence)",
            ["outcome"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "triage_llm_tokens",
            "LLM tokens by model, owning team and kind",
            ["model", "team", "kind"],
            registry=r,
        )
        self.llm_cost = Counter(
            "triage_llm_cost",
            "LLM cost (configured prices) by model and owning team",
            ["model", "team"],
            registry=r,
        )
        self.llm_circuit_open = Gauge(
            "triage_llm_circuit_open", "1 while the LLM circuit breaker is open", registry=r
        )
        # kind is the placeholder's name ([REDACTED:kind]): a fixed set, plus "custom".
        self.redactions = Counter(
            "triage_redactions",
            "Secrets and personal data replaced in evidence before it left the investigation",
            ["kind"],
            registry=r,
        )
