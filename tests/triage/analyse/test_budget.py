"""Token budget: ranked evidence fits the prompt budget, in rank order, and says what it cut."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.contracts import EvidenceItem
from triage.analyse.budget import MIN_SUMMARY_CHARS, estimate_tokens, pack, render_item

# Texts with their token counts under cl100k_base, o200k_base and Claude's tokenizer, measured
# offline once; the estimate must not fall below any of them.
SAMPLES = json.loads((Path(__file__).parent / "token_counts.json").read_text())
MARKER = re.compile(r"\[truncated: (\d+) more characters\]$")


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["name"] for s in SAMPLES])
def test_the_estimate_is_not_below_real_tokenizers(sample: dict[str, object]):
    counts = sample["tokens"]
    assert isinstance(counts, dict)
    estimate = estimate_tokens(str(sample["text"]))
    assert max(counts.values()) <= estimate <= 1.6 * max(counts.values())


def test_estimate_basics():
    assert estimate_tokens("") == 0
    assert estimate_tokens("OOMKilled") >= 1
    # Hex and base64 cost far more per character than words.
    assert estimate_tokens("3f2c1a9e8b7d6c5f4e3d2c1b0a9f8e7d") > 2 * estimate_tokens(
        "the quick brown fox jumps over"
    )


def item(i: int, summary_len: int = 80, detail_len: int = 0) -> EvidenceItem:
    return EvidenceItem(
        id=f"item-{i}",
        kind="log_pattern",
        summary=f"item {i} " + "checkout errors rising " * (summary_len // 23 + 1),
        detail="timeout talking to payments after 3000 ms\n" * (detail_len // 42 + 1)
        if detail_len
        else "",
        subject="checkout",
        score=0.5,
    )


def test_the_default_budget_is_4000_tokens():
    items = [item(i, detail_len=400) for i in range(100)]
    packed = pack(items)
    assert 3500 < packed.tokens <= 4000
    assert packed.dropped > 0


def test_everything_fits_in_a_large_budget_unchanged():
    items = [item(i, detail_len=200) for i in range(5)]
    packed = pack(items, 100_000)
    assert packed.items == items
    assert (packed.dropped, packed.truncated_ids) == (0, [])
    assert packed.tokens == sum(estimate_tokens(render_item(i)) for i in items)


def test_rank_order_decides_what_goes_in():
    items = [item(i) for i in range(40)]
    packed = pack(items, 400, max_item_tokens=400)
    kept = [i.id for i in packed.items]
    assert kept == [f"item-{i}" for i in range(len(kept))]
    assert 0 < len(kept) < 40
    assert packed.dropped == 40 - len(kept)


def test_a_long_detail_is_cut_with_a_visible_marker():
    big = item(0, detail_len=20_000)
    packed = pack([big, item(1)], 1000)
    cut = packed.items[0]
    assert packed.truncated_ids == ["item-0"]
    assert cut.summary == big.summary  # the detail goes first
    m = MARKER.search(cut.detail)
    assert m is not None
    kept = cut.detail[: m.start() - 1]
    assert big.detail.startswith(kept)
    assert int(m.group(1)) == len(big.detail) - len(kept)
    assert packed.items[1].id == "item-1"  # the quarter-budget cap left room for the next one
    assert packed.tokens <= 1000


def test_the_summary_is_cut_when_the_detail_alone_is_not_enough():
    big = item(0, summary_len=3000, detail_len=500)
    packed = pack([big], 120, max_item_tokens=120)
    cut = packed.items[0]
    m = MARKER.search(cut.summary)
    assert m is not None and cut.detail == ""
    kept = cut.summary[: m.start() - 1]
    assert big.summary.startswith(kept)
    assert len(kept) >= MIN_SUMMARY_CHARS
    assert int(m.group(1)) == len(big.summary) - len(kept) + len(big.detail)
    assert packed.tokens <= 120


def test_an_item_without_room_for_a_useful_summary_is_dropped_and_counted():
    packed = pack([item(0, summary_len=2000)], 30)
    assert (packed.items, packed.dropped, packed.truncated_ids, packed.tokens) == ([], 1, [], 0)


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError):
        pack([item(0)], -1)


texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=600
) | st.from_regex(r"[a-z0-9 :=\-\n<>&\"]{0,3000}", fullmatch=True)
items_strategy = st.lists(
    st.builds(
        EvidenceItem,
        id=st.uuids().map(str),
        kind=st.sampled_from(["log_pattern", "rollout", "k8s_event", "metric_shift"]),
        summary=texts,
        detail=texts,
        subject=st.sampled_from(["", "checkout", "payments"]),
        score=st.floats(0, 1),
        change=st.none() | texts,
    ),
    max_size=25,
    unique_by=lambda i: i.id,
)


@settings(max_examples=200, deadline=None)
@given(
    items=items_strategy,
    budget=st.integers(0, 3000),
    cap=st.none() | st.integers(1, 3000),
)
def test_packing_keeps_the_budget_the_order_and_the_books(
    items: list[EvidenceItem], budget: int, cap: int | None
):
    before = [i.model_dump() for i in items]
    packed = pack(items, budget, max_item_tokens=cap)
    assert [i.model_dump() for i in items] == before  # inputs untouched
    # The budget holds, for the items one by one and for the section they make together.
    assert packed.tokens == sum(estimate_tokens(render_item(i)) for i in packed.items)
    assert packed.tokens <= budget
    assert estimate_tokens("".join(render_item(i) for i in packed.items)) <= packed.tokens
    # Rank order is kept and every item is accounted for.
    by_id = {i.id: i for i in items}
    kept = [i.id for i in packed.items]
    positions = [list(by_id).index(i) for i in kept]
    assert positions == sorted(positions)
    assert packed.dropped == len(items) - len(kept)
    # Exactly the truncated items differ from their originals, and each says by how much.
    changed = [i.id for i in packed.items if i != by_id[i.id]]
    assert packed.truncated_ids == changed
    for cut in packed.items:
        if cut.id not in changed:
            continue
        original = by_id[cut.id]
        field = "detail" if cut.summary == original.summary else "summary"
        m = MARKER.search(getattr(cut, field))
        assert m is not None
        kept_chars = max(m.start() - 1, 0)  # the text kept, then one space, then the marker
        assert getattr(cut, field)[:kept_chars] == getattr(original, field)[:kept_chars]
        if field == "detail":
            removed = len(original.detail) - kept_chars
        else:
            assert cut.detail == ""
            removed = len(original.summary) - kept_chars + len(original.detail)
        assert int(m.group(1)) == removed
