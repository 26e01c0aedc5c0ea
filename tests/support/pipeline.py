"""Inputs for the end-to-end pipeline tests: a scenario directory and Alertmanager's alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def scenario_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "rollout.json").write_text(
        json.dumps(
            {
                "name": "bad-rollout",
                "match": {"service": "cartservice"},
                "evidence": [
                    {
                        "id": "rollout-cart-7",
                        "kind": "rollout",
                        "summary": "cartservice revision 7 rolled out 3 minutes before the onset",
                        "subject": "cartservice",
                        "score": 0.9,
                        "change": "deployment/cartservice revision 7",
                    }
                ],
            }
        )
    )
    return directory


def am_alert(service: str, *, ends: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": {
            "alertname": "HighErrorRate",
            "namespace": "shop",
            "service": service,
            "severity": "critical",
            "team": "cart",
        },
        "annotations": {"summary": f"{service} is failing"},
        "startsAt": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up&g0.tab=1",
    }
    if ends is not None:
        body["endsAt"] = ends.isoformat()
    return body
