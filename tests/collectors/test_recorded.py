"""Scenario files: which incident they match, and how a broken one is reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collectors.contracts import TimeWindow
from collectors.recorded import ScenarioCollector, load_scenarios
from triage.errors import ConfigError
from triage.models import AlertSnapshot, IncidentState

ONSET = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=30), onset=ONSET, end=ONSET + timedelta(minutes=10)
)


def item(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "kind": "rollout", "summary": f"{item_id} happened", "score": 0.8}


def write(directory: Path, filename: str, match: dict[str, str], *items: str) -> None:
    body = {"name": filename, "match": match, "evidence": [item(i) for i in items]}
    (directory / filename).write_text(json.dumps(body))


def incident(common: dict[str, str], *alert_labels: dict[str, str]) -> IncidentState:
    return IncidentState(
        incident_id="inc-test",
        group_key="{}:{}",
        status="firing",
        first_seen=ONSET,
        updated_at=ONSET,
        common_labels=common,
        alerts={
            f"fp{n}": AlertSnapshot(status="firing", labels=labels, starts_at=ONSET)
            for n, labels in enumerate(alert_labels)
        },
    )


async def collect(directory: Path, state: IncidentState) -> list[str]:
    evidence = await ScenarioCollector(load_scenarios(directory)).collect(state, WINDOW)
    assert evidence.status in ("ok", "no_data")
    assert (evidence.status == "ok") == bool(evidence.items)
    return [i.id for i in evidence.items]


async def test_matches_on_the_common_labels(tmp_path: Path):
    write(tmp_path, "checkout.json", {"service": "checkoutservice"}, "rollout-14")
    write(tmp_path, "cart.json", {"service": "cartservice"}, "cart-oom")

    ids = await collect(tmp_path, incident({"service": "checkoutservice", "namespace": "shop"}))

    assert ids == ["rollout-14"]


async def test_matches_on_any_single_alert_labels(tmp_path: Path):
    write(tmp_path, "cart.json", {"service": "cartservice", "pod": "cart-1"}, "cart-oom")
    state = incident(
        {"namespace": "shop"},
        {"service": "checkoutservice", "pod": "checkout-1"},
        {"service": "cartservice", "pod": "cart-1"},
    )

    assert await collect(tmp_path, state) == ["cart-oom"]


async def test_every_match_label_must_come_from_the_same_alert(tmp_path: Path):
    write(tmp_path, "cart.json", {"service": "cartservice", "pod": "cart-1"}, "cart-oom")
    state = incident(
        {"namespace": "shop"},
        {"service": "cartservice", "pod": "cart-2"},
        {"service": "checkoutservice", "pod": "cart-1"},
    )

    assert await collect(tmp_path, state) == []


async def test_all_matching_scenarios_contribute(tmp_path: Path):
    write(tmp_path, "a.json", {"service": "checkoutservice"}, "rollout-14")
    write(tmp_path, "b.json", {"namespace": "shop"}, "node-pressure")

    ids = await collect(tmp_path, incident({"service": "checkoutservice", "namespace": "shop"}))

    assert sorted(ids) == ["node-pressure", "rollout-14"]


async def test_no_matching_scenario_is_no_data(tmp_path: Path):
    write(tmp_path, "checkout.json", {"service": "checkoutservice"}, "rollout-14")
    write(tmp_path, "catch-all.json", {}, "everything")  # an empty match selects nothing

    assert await collect(tmp_path, incident({"service": "cartservice"}, {"pod": "x"})) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "match": {"a": "b"}, "evidence": [{"id": "e1", "kind": "rollout"}]},
         "evidence.0.summary"),
        ({"name": "x", "match": {"a": "b"}, "delay_s": -1, "evidence": []}, "delay_s"),
        ({"name": "x", "evidence": []}, "match"),
    ],
)  # fmt: skip
def test_a_malformed_file_names_the_file_and_the_field(
    tmp_path: Path, body: dict[str, Any], field: str
):
    write(tmp_path, "good.json", {"service": "checkoutservice"}, "rollout-14")
    (tmp_path / "broken.json").write_text(json.dumps(body))

    with pytest.raises(ConfigError) as err:
        load_scenarios(tmp_path)

    assert str(tmp_path / "broken.json") in str(err.value)
    assert field in str(err.value)


def test_a_file_that_is_not_json_names_the_file(tmp_path: Path):
    (tmp_path / "broken.json").write_text("{not json")

    with pytest.raises(ConfigError) as err:
        load_scenarios(tmp_path)

    assert str(tmp_path / "broken.json") in str(err.value)
