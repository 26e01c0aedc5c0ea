"""HeuristicAnalyzer: evidence in, a deterministic, cited, schema-valid RCA out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import jsonschema
import pytest

from collectors.contracts import Evidence, EvidenceItem
from triage.analyse.heuristic import HeuristicAnalyzer
from triage.analyse.next_steps import DEFAULT_STEPS, NEXT_STEPS
from triage.models import RCA, AlertSnapshot, FaultKind, IncidentState

ONSET = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LABELS = {"alertname": "HighErrorRate", "service": "frontend", "namespace": "shop"}

ROLLOUT = EvidenceItem(
    id="rollout-checkout-14",
    kind="rollout",
    summary="checkoutservice rolled out revision 14 four minutes before the onset",
    subject="checkoutservice",
    score=0.86,
    change="deployment/checkoutservice revision 14 (v1.8.3 -> v1.9.0)",
)
LOG_PATTERN = EvidenceItem(
    id="logs-checkout-timeout",
    kind="log_pattern",
    summary="new log template in checkoutservice: payment timeout",
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


def incident() -> IncidentState:
    return IncidentState(
        incident_id="inc-test",
        group_key='{}:{alertname="HighErrorRate"}',
        status="firing",
        first_seen=ONSET,
        updated_at=ONSET,
        common_labels=LABELS,
        alerts={"fp1": AlertSnapshot(status="firing", labels=LABELS, starts_at=ONSET)},
        requested_revision=3,
    )


def ok(collector: str, *items: EvidenceItem) -> Evidence:
    return Evidence(collector=collector, status="ok", items=list(items))


def failed(collector: str, error: str = "connection refused") -> Evidence:
    return Evidence(collector=collector, status="error", error=error)


async def analyze(*evidence: Evidence) -> RCA:
    return await HeuristicAnalyzer().analyze(incident(), list(evidence))


def comparable(rca: RCA) -> dict[str, Any]:
    return rca.model_dump(mode="json", exclude={"created_at"})


async def test_blames_the_subject_of_the_most_suspicious_item_and_cites_it():
    spike = EvidenceItem(
        id="metric-cart-errors",
        kind="pod_state",
        summary="cartservice pods in CrashLoopBackOff",
        subject="cartservice",
        score=0.95,
    )
    rca = await analyze(ok("scenario", ROLLOUT, PAYMENT), ok("prometheus", spike))

    assert rca.root_cause.component == "cartservice"
    assert rca.evidence_ids[0] == "metric-cart-errors"
    assert "metric-payment-latency" not in rca.evidence_ids
    assert rca.incident_id == "inc-test"
    assert rca.revision == 3


async def test_a_rollout_is_blamed_as_a_bad_rollout_with_its_change():
    rca = await analyze(ok("scenario", PAYMENT, LOG_PATTERN, ROLLOUT))

    assert rca.root_cause.kind == "bad_rollout"
    assert rca.root_cause.component == "checkoutservice"
    assert rca.root_cause.change == ROLLOUT.change
    # Everything about the blamed component is cited, most suspicious first.
    assert rca.evidence_ids == ["rollout-checkout-14", "logs-checkout-timeout"]
    assert any("checkoutservice" in step for step in rca.next_steps)


async def test_without_evidence_no_cause_is_named_and_each_collector_says_why():
    quiet = Evidence(collector="scenario", status="no_data", error="no scenario matches")
    rca = await analyze(failed("prometheus"), quiet)

    assert rca.summary.startswith("Insufficient evidence")
    assert "frontend" in rca.summary  # what was looked at, from the alert's labels
    # The alerting service is not blamed for want of anything else.
    assert rca.root_cause.component == "unknown" and rca.root_cause.kind == "unknown"
    assert rca.confidence == 0 and rca.evidence_ids == []
    assert "prometheus: error" in rca.root_cause.description
    assert "scenario: no_data (no scenario matches)" in rca.root_cause.description
    assert any("prometheus" in q for q in rca.open_questions)


async def test_with_no_collector_configured_the_draft_says_so():
    rca = await analyze()
    assert rca.summary == "Insufficient evidence: no evidence source is configured"
    assert rca.root_cause.component == "unknown"


async def test_the_same_items_in_another_order_give_the_same_draft():
    # Scored equal to ROLLOUT: order of arrival must not decide between them.
    tie = EvidenceItem(
        id="k8s-cart-restarts", kind="rollout", summary="x", subject="cartservice", score=0.86
    )
    one = await analyze(ok("scenario", ROLLOUT, LOG_PATTERN, PAYMENT), ok("k8s", tie))
    other = await analyze(ok("k8s", tie), ok("scenario", PAYMENT, LOG_PATTERN, ROLLOUT))

    assert comparable(one) == comparable(other)
    # Both changed; only checkoutservice's change is corroborated by new errors.
    assert one.root_cause.component == "checkoutservice"


@pytest.mark.parametrize("with_evidence", [True, False])
async def test_the_same_failures_in_another_order_give_the_same_draft(with_evidence: bool):
    found = [ok("scenario", ROLLOUT)] if with_evidence else []
    one = await analyze(*found, failed("prometheus", "timeout"), failed("loki", "401"))
    other = await analyze(failed("loki", "401"), failed("prometheus", "timeout"), *found)

    assert comparable(one) == comparable(other)


@pytest.mark.parametrize(
    ("score", "others"),
    [(0.86, 1), (1.0, 4)],  # 1.0: what Prometheus gives a clear jump (see test_prometheus)
)
async def test_failed_collectors_lower_the_confidence(score: float, others: int):
    top = ROLLOUT.model_copy(update={"score": score})
    names = [f"source-{n}" for n in range(others)]
    all_ok = await analyze(ok("scenario", top), *(ok(n, PAYMENT) for n in names))
    one_failed = await analyze(
        ok("scenario", top), failed(names[0]), *(ok(n, PAYMENT) for n in names[1:])
    )

    assert one_failed.confidence < all_ok.confidence
    assert any(names[0] in q for q in one_failed.open_questions)
    assert all_ok.root_cause == one_failed.root_cause


@pytest.mark.parametrize("mode", ["validation", "serialization"])
@pytest.mark.parametrize("with_evidence", [True, False])
async def test_the_rca_validates_against_its_own_json_schema(mode: Any, with_evidence: bool):
    evidence = [ok("scenario", ROLLOUT, LOG_PATTERN)] if with_evidence else [failed("k8s")]
    rca = await HeuristicAnalyzer().analyze(incident(), evidence)
    schema = RCA.model_json_schema(mode=mode)

    document = json.loads(rca.model_dump_json())
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
    with pytest.raises(jsonschema.ValidationError):  # the schema does constrain the document
        jsonschema.validate({**document, "confidence": 1.5}, schema)


def rollout_of(service: str, score: float) -> EvidenceItem:
    return EvidenceItem(
        id=f"rollout-{service}",
        kind="rollout",
        summary=f"{service} rolled out a new revision before the onset",
        subject=service,
        score=score,
        change=f"deployment/{service} revision 2",
    )


async def test_two_suspects_in_a_dead_heat_give_no_confident_cause_and_what_would_confirm_each():
    tie = [ok("kubernetes", rollout_of("cartservice", 0.8), rollout_of("adservice", 0.8))]
    rca = await HeuristicAnalyzer().analyze(incident(), tie)
    assert rca.confidence < 0.5  # not "probable": a guess between two
    asks = [q for q in rca.open_questions if q.startswith("Is it ")]
    assert {q.split()[2] for q in asks} == {"cartservice", "adservice"}
    assert all("To confirm: " in q for q in asks)
    from triage.deliver.draft_text import cause_line

    assert cause_line(rca).startswith("No confident cause; leading suspect")


async def test_a_clear_lead_with_corroboration_is_named_as_the_probable_cause():
    rca = await HeuristicAnalyzer().analyze(
        incident(), [ok("kubernetes", ROLLOUT, LOG_PATTERN, PAYMENT)]
    )
    assert rca.root_cause.component == "checkoutservice"
    assert rca.confidence >= 0.5
    assert not [q for q in rca.open_questions if q.startswith("Is it ")]


@pytest.mark.parametrize("kind", [k for k in get_args(FaultKind) if k != "unknown"])
def test_every_fault_kind_has_checks_that_name_the_suspect(kind: str):
    """A draft's next steps (and what would confirm a leading suspect) are specific to the kind
    of fault, and each names the suspect or says where to look."""
    steps = NEXT_STEPS[kind]
    assert steps and steps != DEFAULT_STEPS
    texts = [s.format(c="cart-7f") for s in steps]
    assert any("cart-7f" in t or "<namespace>" in t or "FailedScheduling" in t for t in texts)
