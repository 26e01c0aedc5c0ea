"""The scorer: the only reader of ground truth. AC@k, Avg@5 and mean rank, as the RCA
literature defines them, overall and per fault category."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel

from triage_lab.scenarios import GroundTruth

K_MAX = 5


class CaseResult(BaseModel):
    scenario: str
    category: str
    ranking: list[str]
    rank: int | None
    predicted_kind: str
    schema_valid: bool
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    error: str | None = None


def rank_of(ranking: list[str], truth: GroundTruth) -> int | None:
    """1-based position of the first suspect that names the true cause."""
    names = truth.names()
    for pos, component in enumerate(ranking, start=1):
        if component.lower() in names:
            return pos
    return None


def ac_at(results: list[CaseResult], k: int) -> float:
    if not results:
        return 0.0
    return sum(1 for r in results if r.rank is not None and r.rank <= k) / len(results)


def avg_at(results: list[CaseResult], k: int = K_MAX) -> float:
    return sum(ac_at(results, i) for i in range(1, k + 1)) / k


def mean_rank(results: list[CaseResult]) -> float:
    """A cause missing from the ranking counts as ranked just past its end."""
    if not results:
        return 0.0
    return sum(r.rank if r.rank is not None else len(r.ranking) + 1 for r in results) / len(results)


def _block(results: list[CaseResult]) -> dict[str, Any]:
    return {
        "cases": len(results),
        "ac@1": round(ac_at(results, 1), 4),
        "ac@3": round(ac_at(results, 3), 4),
        "avg@5": round(avg_at(results), 4),
        "mean_rank": round(mean_rank(results), 3),
        "not_ranked": sum(1 for r in results if r.rank is None),
    }


def summarize(results: list[CaseResult]) -> dict[str, Any]:
    by_category: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        by_category[r.category].append(r)
    n = max(len(results), 1)
    return {
        "overall": _block(results),
        "by_category": {c: _block(rs) for c, rs in sorted(by_category.items())},
        "schema_valid_rate": round(sum(r.schema_valid for r in results) / n, 4),
        "kind_accuracy": round(sum(r.predicted_kind == r.category for r in results) / n, 4),
        "llm_calls_per_case": round(sum(r.llm_calls for r in results) / n, 3),
        "prompt_tokens_per_case": round(sum(r.prompt_tokens for r in results) / n, 1),
        "completion_tokens_per_case": round(sum(r.completion_tokens for r in results) / n, 1),
        "errors": sum(1 for r in results if r.error),
    }
