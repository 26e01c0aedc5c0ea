"""The scorer's metrics on hand-made rankings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from triage_lab.scenarios import GroundTruth
from triage_lab.scoring import CaseResult, ac_at, avg_at, mean_rank, rank_of, summarize


def truth(name: str = "cartservice", aliases: list[str] | None = None) -> GroundTruth:
    return GroundTruth(
        kind="Deployment",
        namespace="shop",
        name=name,
        service=name,
        aliases=aliases or [],
        category="bad_rollout",
        onset=datetime(2026, 1, 1, tzinfo=UTC),
    )


def case(rank: int | None, n: int = 5, category: str = "bad_rollout") -> CaseResult:
    ranking = [f"svc{i}" for i in range(n)]
    return CaseResult(
        scenario=f"s{rank}",
        category=category,
        ranking=ranking,
        rank=rank,
        predicted_kind="bad_rollout",
        schema_valid=True,
    )


def test_rank_matches_name_service_or_alias_case_insensitively():
    t = truth("cart-v2", aliases=["CartService"])
    assert rank_of(["frontend", "cartservice", "cart-v2"], t) == 2
    assert rank_of(["frontend", "Cart-V2"], t) == 2
    assert rank_of(["frontend", "checkout"], t) is None


def test_ac_at_k_avg_at_5_and_mean_rank():
    results = [case(1), case(2), case(4), case(None, n=3)]
    assert ac_at(results, 1) == 0.25
    assert ac_at(results, 3) == 0.5
    assert ac_at(results, 5) == 0.75
    # Avg@5 = mean of AC@1..AC@5 = (1 + 2 + 2 + 3 + 3) / 4 / 5
    assert avg_at(results) == pytest.approx((1 + 2 + 2 + 3 + 3) / 4 / 5)
    # The missing cause counts as worse than any ranked case: past the longest ranking (5).
    assert mean_rank(results) == pytest.approx((1 + 2 + 4 + 6) / 4)


def test_a_case_that_errored_with_an_empty_ranking_does_not_pass_for_rank_1():
    ranked = [case(1), case(2)]
    errored = CaseResult(
        scenario="broken",
        category="bad_rollout",
        ranking=[],
        rank=None,
        predicted_kind="unknown",
        schema_valid=False,
        error="ValueError: +Inf bucket missing",
    )
    assert mean_rank([*ranked, errored]) > mean_rank(ranked) + 1
    s = summarize([*ranked, errored])
    assert s["failed_cases"] == [{"scenario": "broken", "error": "ValueError: +Inf bucket missing"}]
    assert s["overall"]["errors"] == 1


def scored(rank: int | None, confidence: float, source: str = "gen") -> CaseResult:
    return case(rank).model_copy(update={"confidence": confidence, "source": source})


def test_calibration_brier_score_and_reliability_table():
    results = [scored(1, 0.85), scored(1, 0.85), scored(2, 0.85), scored(None, 0.1)]
    cal = summarize(results)["calibration"]
    # (0.15² + 0.15² + 0.85² + 0.1²) / 4
    assert cal["brier"] == pytest.approx((0.0225 * 2 + 0.7225 + 0.01) / 4, abs=1e-4)
    row = next(r for r in cal["table"] if r["confidence"] == "0.8-0.9")
    assert (row["drafts"], row["right"]) == (3, 2)
    assert cal["confident_drafts"] == 3
    assert cal["confident_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    top = next(r for r in cal["table"] if r["confidence"] == "0.9-1.0")
    assert top["drafts"] == 0 and top["accuracy"] is None


def test_summary_splits_by_source():
    results = [scored(1, 0.5, "changerca-importer"), scored(None, 0.5, "corpus")]
    by_source = summarize(results)["by_source"]
    assert by_source["changerca-importer"]["ac@1"] == 1.0
    assert by_source["corpus"]["ac@1"] == 0.0


def test_summary_splits_by_category():
    results = [
        case(1, category="dns_failure"),
        case(None, category="dns_failure"),
        case(3, category="bad_rollout"),
    ]
    s = summarize(results)
    assert s["by_category"]["dns_failure"]["ac@1"] == 0.5
    assert s["by_category"]["bad_rollout"]["ac@3"] == 1.0
    assert s["overall"]["not_ranked"] == 1
    assert s["overall"]["cases"] == 3
