"""End to end through the real pipeline (webhook -> JetStream -> incidents -> investigation ->
routing -> Slack) into the local Slack Web API: routed by the file or by the workload's owner,
one thread with a graph, the parent updated on resolve, the delivery recorded on the incident."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from triage_lab.fakes.kube_objects import KubeApi, deployment, path_of
from triage_lab.fakes.servers import NatsServer
from triage_lab.fakes.slack import SlackApi, all_text

from tests.conftest import make_settings, serve, wait_for
from tests.support.payloads import alert, webhook
from triage.deliver.graph import PNG_MAGIC
from triage.deliver.slack import SlackRef
from triage.models import incident_id_for
from triage.settings import Settings

pytestmark = pytest.mark.slow

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


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackApi]:
    async with SlackApi() as api:
        yield api


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


def cart_alert(status: str = "firing") -> dict[str, Any]:
    body = alert(service="cartservice", status=status)
    body["annotations"]["runbook_url"] = "https://runbooks.example.com/cart/errors"
    body["annotations"]["summary"] = "cart errors <!channel> from a label"
    return body


async def test_alert_to_slack_thread_with_graph_then_resolve(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
):
    settings = slack_settings(tmp_path, slack_api)
    async with serve(settings, nats_server.url) as app, app.client() as client:
        assert slack_api.calls_to("auth.test")  # the token was checked at start
        resp = await client.post("/api/v1/alertmanager", json=webhook([cart_alert()]))
        assert resp.status_code == 200

        [parent] = await wait_for(lambda: slack_api.top_level("#cart-oncall"))
        body = "\n".join(all_text(parent.blocks))
        assert parent.blocks[0]["text"]["text"].startswith("CRITICAL · cartservice")
        assert parent.text.startswith("<!subteam^S0CART001> ")
        assert "*Probable cause*" in body and "bad rollout" in body
        assert "<https://runbooks.example.com/cart/errors|Runbook: HighErrorRate>" in body
        assert "cart errors &lt;!channel&gt; from a label" in body
        assert "<!channel>" not in body
        # The graph of the alerting series lands in the thread.
        [share] = await wait_for(lambda: slack_api.shares)
        assert share["thread_ts"] == parent.ts and share["bytes"].startswith(PNG_MAGIC)

        # The delivery is recorded on the incident: channel id and ts.
        incident = incident_id_for(GROUP_KEY)

        async def slack_ref() -> SlackRef | None:
            state, _ = await app.runtime.bus.get_incident(incident)
            refs = [d for d in state.deliveries if d.sink == "slack"] if state else []
            return SlackRef.parse(refs[0].ref) if refs else None

        ref = await wait_for(slack_ref)
        assert ref.parents["#cart-oncall"].ts == parent.ts

        resolved = cart_alert(status="resolved")
        resp = await client.post("/api/v1/alertmanager", json=webhook([resolved]))
        assert resp.status_code == 200
        [reply] = await wait_for(lambda: slack_api.replies(parent))
        assert "*Resolved*" in all_text(reply.blocks)[0]
        await wait_for(lambda: parent.edits == 1)
        assert parent.blocks[0]["text"]["text"].startswith("RESOLVED · CRITICAL")
    assert len(slack_api.top_level("#cart-oncall")) == 1
    assert len(slack_api.calls_to("chat.postMessage")) == 2  # the draft and the resolve


async def test_the_workloads_owner_overrides_the_routing_file(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
):
    owned = deployment(
        "shop",
        "cartservice",
        annotations={"triage.io/owner": "payments", "triage.io/slack-channel": "#pay-war-room"},
    )
    with KubeApi([owned]) as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        settings = slack_settings(tmp_path, slack_api, kubernetes={"kubeconfig": str(kubeconfig)})
        async with serve(settings, nats_server.url) as app, app.client() as client:
            await client.post("/api/v1/alertmanager", json=webhook([cart_alert()]))
            [msg] = await wait_for(lambda: slack_api.top_level("#pay-war-room"))
        assert path_of(owned) in kube.requests
    assert slack_api.top_level("#cart-oncall") == []
    # The owner's user group comes from the routing file's rule for that team.
    assert msg.text.startswith("<!subteam^S0PAY0001> ")
    context = msg.blocks[-1]["elements"][0]["text"]
    assert "ownership: deployment shop/cartservice" in context
