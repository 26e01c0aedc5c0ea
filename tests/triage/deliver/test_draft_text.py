"""The draft as the console and `triage investigate` print it: the cause and how sure first,
what it rests on, what was ruled out apart, the links, and each collector's word."""

from __future__ import annotations

from tests.support.drafts import draft, rca, route
from triage.deliver.draft_text import render_text
from triage.models import CollectorReport, EvidenceDigest, RootCause

EVIDENCE = [
    EvidenceDigest(
        id="rollout-cart-7",
        collector="kubernetes",
        summary="Deployment shop/cartservice rolled out revision 7",
        detail="env CART_TIMEOUT_MS 3000 -> 300",
        role="cause",
    ),
    EvidenceDigest(
        id="logs-cart-1", collector="logs", summary="new template 'timeout' 1,412x", role="context"
    ),
    EvidenceDigest(
        id="metric-redis-latency",
        collector="metrics",
        summary="redis p99 latency unchanged",
        role="ruled_out",
    ),
]


def test_the_cause_its_specifics_and_what_was_ruled_out_are_apart():
    request = draft().model_copy(update={"evidence": EVIDENCE})
    text = render_text(request, route())
    assert "Probable cause: cartservice (bad rollout; confidence 0.72, high)" in text
    rests_on = text.split("Evidence the cause rests on:")[1].split("Also seen:")[0]
    assert "rollout-cart-7" in rests_on and "env CART_TIMEOUT_MS 3000 -> 300" in rests_on
    assert "redis p99 latency unchanged" not in rests_on
    ruled_out = text.split("Ruled out (looked, found normal):")[1]
    assert "redis p99 latency unchanged" in ruled_out
    assert "Graph (HighErrorRate): http://prometheus:9090/graph" in text
    assert "Runbook (HighErrorRate): https://runbooks.example.com/cart/high-error-rate" in text
    assert text.count("cartservice (bad rollout") == 1  # the cause is said once


def test_without_evidence_no_cause_is_named_and_each_collector_says_why():
    empty = rca(
        summary="Insufficient evidence: no collector found anything about cartservice",
        root_cause=RootCause(component="unknown", kind="unknown", description="x"),
        confidence=0.0,
        evidence_ids=[],
    )
    request = draft().model_copy(
        update={
            "rca": empty,
            "evidence": [],
            "collectors": [
                CollectorReport(
                    collector="metrics",
                    status="no_data",
                    items=0,
                    duration_s=0.1,
                    error='no series for {namespace="shop"}',
                ),
                CollectorReport(
                    collector="kubernetes",
                    status="error",
                    items=0,
                    duration_s=5,
                    error="deadline of 5s exceeded",
                ),
            ],
        }
    )
    text = render_text(request, route())
    assert "No confident cause (confidence 0.00, none)" in text
    assert "Probable cause" not in text and "Evidence the cause rests on" not in text
    assert 'metrics no_data: no series for {namespace="shop"}' in text
    assert "kubernetes error: deadline of 5s exceeded" in text


def test_a_weak_lead_is_a_suspect_not_a_cause():
    request = draft().model_copy(update={"rca": rca(confidence=0.12)})
    text = render_text(request, route())
    assert "No confident cause; leading suspect cartservice (bad rollout;" in text
