"""The correlation rule, without a bus: which open parent a group's lead belongs to, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from triage.incidents import correlation as rule
from triage.models import ChildRef

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LEAST = 0.5


def lead(component: str, score: float, *path: str, change: str | None = None) -> rule.Lead:
    return rule.Lead(component, "node_failure", change, score, frozenset(path))


def placed(index: rule.Index, incident: str, at: datetime, lead_: rule.Lead) -> rule.Placement:
    new, placement = rule.place(index, incident, at, lead_, window_s=600, least=LEAST)
    if new is not None:
        index.parents = new.parents
    return placement


def test_same_confident_leading_suspect_attaches_with_its_reason():
    index = rule.Index()
    assert placed(index, "inc-a", T0, lead("node-7", 0.8)).parent_id is None
    p = placed(index, "inc-b", T0 + timedelta(seconds=5), lead("Node-7", 0.7))
    assert p.parent_id == "inc-a"
    assert p.reason == "same leading suspect: Node-7 (node_failure, score 0.70)"
    assert index.parents[0].children == ["inc-b"]


def test_two_independent_confident_causes_stay_two_parents():
    index = rule.Index()
    placed(index, "inc-a", T0, lead("node-7", 0.8, "cart", "node-7"))
    # Its path even names node-7: its own confident cause wins (precision first).
    p = placed(index, "inc-b", T0, lead("search", 0.9, "search", "node-7"))
    assert p.parent_id is None
    assert [x.incident_id for x in index.parents] == ["inc-a", "inc-b"]


def test_a_group_without_a_confident_lead_attaches_when_the_cause_is_on_its_path():
    index = rule.Index()
    placed(index, "inc-a", T0, lead("node-7", 0.8))
    p = placed(index, "inc-b", T0, lead("cart", 0.3, "cart", "node-7"))
    assert p.parent_id == "inc-a" and p.reason.startswith("shared path: node-7")
    # Not on its path: a parent of its own, however weak.
    assert placed(index, "inc-c", T0, lead("web", 0.3, "web")).parent_id is None


def test_same_change_attaches_and_an_unconfident_parent_attracts_nobody():
    index = rule.Index()
    placed(index, "inc-a", T0, lead("auth-db", 0.9, change="deployment/auth-db revision 31"))
    p = placed(index, "inc-b", T0, lead("cart", 0.6, change="deployment/auth-db revision 31"))
    assert p.parent_id == "inc-a" and p.reason.startswith("same change")
    placed(index, "inc-c", T0, lead("web", 0.3, "web"))
    assert placed(index, "inc-d", T0, lead("web", 0.3, "web")).parent_id is None


def test_outside_the_window_a_new_parent_and_the_decision_is_idempotent():
    index = rule.Index()
    placed(index, "inc-a", T0, lead("node-7", 0.8))
    assert (
        placed(index, "inc-b", T0 + timedelta(seconds=601), lead("node-7", 0.8)).parent_id is None
    )
    again = placed(index, "inc-b", T0, lead("node-7", 0.8))
    assert again.parent_id is None and not again.new
    placed(index, "inc-c", T0 + timedelta(seconds=602), lead("node-7", 0.8))
    repeat = rule.place(index, "inc-c", T0, lead("x", 0.9), window_s=600, least=LEAST)
    assert repeat[0] is None and repeat[1].parent_id == "inc-b" and not repeat[1].new


def test_the_oldest_matching_parent_wins_and_same_cause_beats_shared_path():
    index = rule.Index(
        parents=[
            rule.OpenParent(incident_id="inc-z", first_seen=T0, component="db", kind="x",
                            confidence=0.9),
            rule.OpenParent(incident_id="inc-y", first_seen=T0 + timedelta(seconds=1),
                            component="node-7", kind="node_failure", confidence=0.9),
        ]
    )  # fmt: skip
    p = placed(index, "inc-b", T0 + timedelta(seconds=2), lead("node-7", 0.3, "db", "node-7"))
    assert p.parent_id == "inc-z"  # both on its path: the oldest
    p = placed(index, "inc-c", T0 + timedelta(seconds=2), lead("node-7", 0.8, "db"))
    assert p.parent_id == "inc-y"  # its own confident lead: rule 1


def test_detach_only_for_a_confident_different_cause_and_without():
    parent = rule.OpenParent(
        incident_id="inc-a", first_seen=T0, component="node-7", kind="node_failure",
        confidence=0.8, children=["inc-b"],
    )  # fmt: skip
    assert rule.detach_reason(parent, lead("node-7", 0.9), LEAST) is None
    assert rule.detach_reason(parent, lead("cart", 0.3, "node-7"), LEAST) is None
    why = rule.detach_reason(parent, lead("cart", 0.9), LEAST)
    assert why is not None and "names cart" in why and "not node-7" in why
    index = rule.Index(parents=[parent])
    smaller = rule.without(index, "inc-b")
    assert smaller is not None and smaller.parents[0].children == []
    assert rule.without(smaller, "inc-q") is None


def test_summary_counts_groups_and_services():
    ref = ChildRef(title="t", services=["a", "b"], at=T0)
    other = ChildRef(title="u", services=["b", "c"], at=T0)
    assert rule.summary({"x": ref, "y": other}) == "+2 alert groups in 3 services"
    assert rule.summary({"x": ref}) == "+1 alert group in 2 services"
    assert rule.summary({}) == ""
