"""One incident and the evidence the LLM analyser is sent about it: a rollout, a log pattern and
a quiet metric, shared by the tests of the analyser and the LLM benchmark."""

from __future__ import annotations

from datetime import UTC, datetime

from collectors.contracts import Evidence, EvidenceItem
from triage.models import AlertSnapshot, IncidentState

ONSET = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LABELS = {"alertname": "HighErrorRate", "service": "frontend", "namespace": "shop", "team": "web"}

ROLLOUT = EvidenceItem(
    id="rollout-checkout-14",
    kind="rollout",
    summary="checkoutservice rolled out revision 14 four minutes before the onset",
    subject="checkoutservice",
    score=0.86,
    fault_hint="bad_rollout",
    change="deployment/checkoutservice revision 14 (v1.8.3 -> v1.9.0)",
)
ERRORS = EvidenceItem(
    id="logs-checkout-timeout",
    kind="log_pattern",
    summary="new log template in checkoutservice: payment timeout",
    detail="2025-03-01T12:01:02Z ERROR payment call timed out after 3s",
    subject="checkoutservice",
    score=0.74,
)
PAYMENT = EvidenceItem(
    id="metric-payment-latency",
    kind="metric_shift",
    summary="paymentservice latency unchanged",
    subject="paymentservice",
    score=0.08,
)
SENT_IDS = {ROLLOUT.id, ERRORS.id, PAYMENT.id}


def incident() -> IncidentState:
    return IncidentState(
        incident_id="inc-llm",
        group_key='{}:{alertname="HighErrorRate"}',
        status="firing",
        first_seen=ONSET,
        updated_at=ONSET,
        common_labels=LABELS,
        alerts={"fp1": AlertSnapshot(status="firing", labels=LABELS, starts_at=ONSET)},
        requested_revision=2,
    )


def evidence(*extra: EvidenceItem) -> list[Evidence]:
    return [
        Evidence(collector="kubernetes", status="ok", items=[ROLLOUT, *extra]),
        Evidence(collector="logs", status="ok", items=[ERRORS]),
        Evidence(collector="metrics", status="ok", items=[PAYMENT]),
    ]
