"""The scorer: the only reader of ground truth. AC@k, Avg@5 and mean rank, as the RCA
literature defines them, overall, per fault category and per source; and how well the drafts'
confidence is calibrated (Brier score, reliability table)."""

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
    confidence: float | None = None
    source: str = ""


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


def missed_rank(results: list[CaseResult]) -> int:
    """Where a case that errored, or whose cause is missing from its ranking, counts: past the
    longest ranking of the run, so it weighs more than any ranked case (an empty ranking must
    not pass for rank 1)."""
    return max([K_MAX, *(len(r.ranking) for r in results), *(r.rank or 0 for r in results)]) + 1


def mean_rank(results: list[CaseResult], missed: int | None = None) -> float:
    if not results:
        return 0.0
    worst = missed if missed is not None else missed_rank(results)
    return sum(r.rank if r.rank is not None else worst for r in results) / len(results)


def right(result: CaseResult) -> bool:
    """What a draft's confidence speaks for: the cause it names first is the true one."""
    return result.rank == 1


# Reliability table bins: [lower, upper) of the draft's confidence; the last one includes 1.0.
BINS = [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 1.0)]


def _in_bin(confidence: float, lo: float, hi: float) -> bool:
    return lo <= confidence < hi or (hi == 1.0 and confidence == 1.0)


def calibration(results: list[CaseResult]) -> dict[str, Any]:
    """Brier score of the confidence against "named first and right", and per confidence bin
    how many drafts there were and how many of them were right."""
    scored = [r for r in results if r.confidence is not None]
    table = []
    for lo, hi in BINS:
        inside = [r for r in scored if _in_bin(r.confidence or 0.0, lo, hi)]
        hits = sum(right(r) for r in inside)
        table.append(
            {
                "confidence": f"{lo:.1f}-{hi:.1f}",
                "drafts": len(inside),
                "right": hits,
                "accuracy": round(hits / len(inside), 4) if inside else None,
            }
        )
    confident = [r for r in scored if (r.confidence or 0.0) >= 0.8]
    brier = sum(((r.confidence or 0.0) - right(r)) ** 2 for r in scored) / max(len(scored), 1)
    return {
        "cases": len(scored),
        "brier": round(brier, 4),
        "confident_drafts": len(confident),
        "confident_accuracy": (
            round(sum(right(r) for r in confident) / len(confident), 4) if confident else None
        ),
        "table": table,
    }


def _block(results: list[CaseResult], missed: int) -> dict[str, Any]:
    return {
        "cases": len(results),
        "ac@1": round(ac_at(results, 1), 4),
        "ac@3": round(ac_at(results, 3), 4),
        "avg@5": round(avg_at(results), 4),
        "mean_rank": round(mean_rank(results, missed), 3),
        "not_ranked": sum(1 for r in results if r.rank is None),
        "errors": sum(1 for r in results if r.error),
        "kind_accuracy": round(
            sum(r.predicted_kind == r.category for r in results) / max(len(results), 1), 4
        ),
    }


def _by(results: list[CaseResult], key: str, missed: int) -> dict[str, Any]:
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        groups[getattr(r, key) or "unknown"].append(r)
    return {g: _block(rs, missed) for g, rs in sorted(groups.items())}


def summarize(results: list[CaseResult]) -> dict[str, Any]:
    n = max(len(results), 1)
    missed = missed_rank(results)
    return {
        "overall": _block(results, missed),
        "missed_rank": missed,
        "by_category": _by(results, "category", missed),
        "by_source": _by(results, "source", missed),
        "calibration": calibration(results),
        "failed_cases": [{"scenario": r.scenario, "error": r.error} for r in results if r.error],
        "schema_valid_rate": round(sum(r.schema_valid for r in results) / n, 4),
        "kind_accuracy": round(sum(r.predicted_kind == r.category for r in results) / n, 4),
        "llm_calls_per_case": round(sum(r.llm_calls for r in results) / n, 3),
        "prompt_tokens_per_case": round(sum(r.prompt_tokens for r in results) / n, 1),
        "completion_tokens_per_case": round(sum(r.completion_tokens for r in results) / n, 1),
        "errors": sum(1 for r in results if r.error),
    }
