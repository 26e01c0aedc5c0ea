"""Token budget: ranked evidence packed into a prompt budget, estimated offline.

No tokenizer is loaded: tiktoken fetches its BPE tables at run time, and the gateway may serve
any model. The estimate is a heuristic that errs high (see ``estimate_tokens``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from collectors.contracts import EvidenceItem

DEFAULT_BUDGET_TOKENS = 4000
# An item is worth sending truncated only if this much of its summary fits.
MIN_SUMMARY_CHARS = 48
# Random hex and base64 run at 1.4 to 1.7 characters per token.
DENSE_CHARS_PER_TOKEN = 1.35

# Calibration, measured offline against the cl100k and o200k BPE tables and Claude's tokenizer
# (test_budget.py keeps a sample with those counts): log lines and JSON run at 2.5 to 3 characters
# per token, English prose at ~3.5, random hex and base64 at 1.4 to 1.7. Priced here: letters ~4
# per token (3 when upper-case: ``OOMKILLED``, ``API_KEY``), digits in groups of three, which do
# not absorb the space before them, segments mixing letters and digits (hashes, ids, pod
# suffixes, keys) 1.35 characters per token, a run of punctuation 2 per token (``":"``), a line
# break 1, and non-ASCII 2 UTF-8 bytes per token. On ~900 samples (Kubernetes events, objects
# and logs of the fault corpus, prose, code, stack traces, rendered evidence items) the estimate
# came out 1.15 to 1.6 times the largest of the three counts; random hex and base64 0.98 to 1.3.
# Only strings of a few tokens (``HEROKU_API_KEY=<uuid>``) came out up to ~15% low.
_RUN = re.compile(
    r"(?P<word>[A-Za-z0-9+/=_-]+)|(?P<space>[ ]+)|(?P<ws>\s+)|(?P<wide>[^\x00-\x7f]+)"
    r"|(?P<punct>[^A-Za-z0-9+/=_\s\x80-\U0010ffff-]+)",
    re.DOTALL,
)
_SEGMENT = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]+")


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` takes in a prompt, estimated high; no network, no model files."""
    total = 0.0
    after_space = False
    for m in _RUN.finditer(text):
        kind, run = m.lastgroup, m.group()
        if kind == "word":
            for seg in _SEGMENT.findall(run):
                if not seg[0].isalnum():
                    total += math.ceil(len(seg) / 2)  # - _ / + = between parts
                elif seg.isalpha():
                    total += math.ceil(len(seg) / (3 if seg.isupper() else 4))
                elif seg.isdigit():
                    # Numbers go in groups of three and do not absorb the space before them.
                    total += math.ceil(len(seg) / 3) + (1 if after_space else 0)
                else:
                    total += len(seg) / DENSE_CHARS_PER_TOKEN  # hashes, ids, keys, base64
                after_space = False
        elif kind == "space":
            total += 0 if len(run) == 1 else 1  # one space joins the next word's token
        elif kind == "ws":
            total += 1  # a line break with the next line's indentation
        elif kind == "wide":
            total += len(run.encode()) / 2
        else:
            total += math.ceil(len(run) / 2)  # JSON's ":" and "," are one token each
        after_space = kind == "space"
    return math.ceil(total)


class Packed(BaseModel):
    items: list[EvidenceItem]
    tokens: int
    dropped: int
    truncated_ids: list[str]


def item_data(item: EvidenceItem) -> dict[str, Any]:
    """The fields of an item that a prompt carries: no metric points, no empty fields."""
    data = item.model_dump(mode="json", exclude={"points"}, exclude_none=True)
    return {k: v for k, v in data.items() if v not in ("", [], {})}


def render_item(item: EvidenceItem) -> str:
    """The item as it stands in the prompt's evidence JSON, which is what ``pack`` counts:
    compact, ``<``, ``>`` and ``&`` written as ``\\u`` escapes (``prompts.delimited``), and the
    comma that separates it from the next item."""
    text = json.dumps(item_data(item), ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + ","


def truncation_marker(removed: int) -> str:
    return f"[truncated: {removed} more characters]"


def pack(
    items: list[EvidenceItem],
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    *,
    max_item_tokens: int | None = None,
) -> Packed:
    """Ranked items (most important first) packed greedily into ``budget_tokens``.

    An item that does not fit whole is cut, detail first, then summary, and says so with
    ``[truncated: N more characters]``; one that cannot keep ``MIN_SUMMARY_CHARS`` of its summary
    is dropped and counted. ``max_item_tokens`` (default a quarter of the budget) keeps one huge
    log excerpt from crowding out everything ranked below it.
    """
    if budget_tokens < 0:
        raise ValueError("budget_tokens must not be negative")
    cap = max_item_tokens if max_item_tokens is not None else max(budget_tokens // 4, 1)
    kept: list[EvidenceItem] = []
    truncated: list[str] = []
    used = 0
    for item in items:
        room = min(budget_tokens - used, cap)
        cost = estimate_tokens(render_item(item))
        if cost <= room:
            kept.append(item)
            used += cost
            continue
        cut = _truncate(item, room)
        if cut is None:
            continue
        kept.append(cut)
        truncated.append(item.id)
        used += estimate_tokens(render_item(cut))
    return Packed(items=kept, tokens=used, dropped=len(items) - len(kept), truncated_ids=truncated)


def _truncate(item: EvidenceItem, room: int) -> EvidenceItem | None:
    """The longest cut of ``item`` that fits ``room``, or None if too little would be left."""

    def cut_detail(keep: int) -> EvidenceItem:
        detail = _with_marker(item.detail, keep, len(item.detail) - keep)
        return item.model_copy(update={"detail": detail})

    def cut_summary(keep: int) -> EvidenceItem:
        removed = len(item.summary) - keep + len(item.detail)
        summary = _with_marker(item.summary, keep, removed)
        return item.model_copy(update={"summary": summary, "detail": ""})

    if item.detail:
        best = _longest(cut_detail, len(item.detail) - 1, room)
        if best is not None:
            return best
    floor = min(len(item.summary), MIN_SUMMARY_CHARS)
    best = _longest(cut_summary, len(item.summary) - (0 if item.detail else 1), room, floor)
    return best


def _with_marker(text: str, keep: int, removed: int) -> str:
    return f"{text[:keep]} {truncation_marker(removed)}" if keep else truncation_marker(removed)


def _longest(
    make: Callable[[int], EvidenceItem], most: int, room: int, least: int = 0
) -> EvidenceItem | None:
    """``make(k)`` for the largest k in [least, most] whose rendering fits ``room``."""
    if most < least:
        return None

    def fits(k: int) -> bool:
        return estimate_tokens(render_item(make(k))) <= room

    if not fits(least):
        return None
    # No rendering fits more than ~8 characters per token: start the search near the answer.
    lo, hi = least, min(most, least + 8 * room)
    while lo < hi:  # every k that lo takes was checked, so the result fits even where the
        # estimate does not grow with k (then a longer cut may be missed, never overrun)
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return make(lo)
