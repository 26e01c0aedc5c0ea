"""The Slack pipeline's setup: a routing file, scenarios with a graphable series, and settings
that deliver to the local Slack Web API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from triage_lab.fakes.slack import SlackApi

from tests.support.app import make_settings
from triage.settings import Settings

ROUTING = """\
default:
  team: sre
  channels: ["#incidents"]
routes:
  - name: cart
    matchers: ['namespace="shop"', 'service=~"cart.*"']
    team: cart
    channels: ["#cart-oncall"]
    mention: S0CART001
  - name: payments
    matchers: [team=payments]
    team: payments
    channels: ["#payments"]
    mention: S0PAY0001
"""
GROUP_KEY = '{}:{alertname="HighErrorRate", namespace="shop"}'


def scenarios(tmp_path: Path) -> Path:
    onset = datetime.now(UTC) - timedelta(minutes=5)
    start = onset.timestamp() - 1800
    points = [[start + 60 * i, 0.01 if i < 30 else 0.3] for i in range(40)]
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "cart.json").write_text(
        json.dumps(
            {
                "name": "cart-rollout",
                "match": {"service": "cartservice"},
                "evidence": [
                    {
                        "id": "rollout-cart-7",
                        "kind": "rollout",
                        "summary": "cartservice revision 7 rolled out 3 minutes before the onset",
                        "subject": "cartservice",
                        "score": 0.9,
                        "change": "deployment/cartservice revision 7",
                        "timestamp": (onset - timedelta(minutes=3)).isoformat(),
                    },
                    {
                        "id": "prom-cart-errors",
                        "kind": "metric_shift",
                        "summary": "cart error ratio moved from 0.01 to 0.3 after the onset",
                        "detail": "query: rate(cart_errors_total[5m])",
                        "subject": "cartservice",
                        "score": 0.6,
                        "points": points,
                    },
                ],
            }
        )
    )
    return directory


def slack_settings(tmp_path: Path, slack_api: SlackApi, **overrides: Any) -> Settings:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    return make_settings(
        tmp_path,
        investigation={"scenario_dir": str(scenarios(tmp_path))},
        routing={"file": str(routing)},
        slack={
            "bot_token": slack_api.token,
            "signing_secret": "test-signing-secret",
            "base_url": slack_api.url,
            "channel_interval_s": 0.2,
        },
        **overrides,
    )
