"""PromQL helpers shared by the metrics collector: the alert's own expression from its link,
and a robust score of how far a series moved."""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection
from urllib.parse import parse_qs, urlsplit

import promql_parser


def expr_from_generator_url(url: str) -> str | None:
    """Alertmanager alerts link back to Prometheus' graph page with the rule's expression."""
    if not url:
        return None
    query = parse_qs(urlsplit(url).query)
    values = query.get("g0.expr")
    return values[0] if values else None


def rule_selectors(expr: str, per_request: Collection[str] = ()) -> list[str]:
    """The series an alerting rule reads, as plain selectors: every vector selector inside its
    PromQL, in order, without duplicates.

    Asking for these rather than the whole expression gives both backends (a Prometheus, a
    recording) the same raw series, which the golden-signal derivation turns into rates, ratios
    and quantiles; a rule's ``sum(rate(x{code=~"5.."}[5m])) / sum(rate(x[5m]))`` needs all of
    ``x``, so matchers on ``per_request`` labels (status, route, bucket) are dropped. An
    expression that doesn't parse is asked as it is: a Prometheus may still answer it."""
    try:
        tree = promql_parser.parse(expr)
    except (ValueError, TypeError):
        return [expr]
    found: list[str] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            kept = [m for m in node.matchers.matchers if m.name not in per_request]
            if node.name:
                kept = [m for m in kept if m.name != "__name__"]
            body = ",".join(_matcher_text(m) for m in kept)
            text = f"{node.name or ''}{{{body}}}" if body or not node.name else node.name
            if text not in found and text != "{}":
                found.append(text)

    promql_parser.walk(tree, visit)
    return found or [expr]


# MatchOp values compare but don't hash.
_OPS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


def _matcher_text(m: promql_parser.Matcher) -> str:
    value = m.value.replace("\\", "\\\\").replace('"', '\\"')
    op = next(text for kind, text in _OPS if m.op == kind)
    return f'{m.name}{op}"{value}"'


def shift_score(
    before: list[float], after: list[float], resolution: float = 0.05
) -> tuple[float, float]:
    """Robust z-score of the incident window against the baseline, and its 0..1 score.

    ``resolution``: the share of its level below which a series can't tell a change from
    its own granularity (a quantile read from buckets is known only within its bucket)."""
    if not before or not after:
        return 0.0, 0.0
    base = statistics.median(before)
    mad = statistics.median([abs(v - base) for v in before]) * 1.4826
    # A flat baseline has no spread; scale by the level so a jump from 0 still counts.
    spread = max(mad, abs(base) * resolution, 1e-9)
    z = (statistics.median(after) - base) / spread
    return z, 1 - math.exp(-abs(z) / 5)
