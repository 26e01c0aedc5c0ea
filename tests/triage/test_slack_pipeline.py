"""End to end through the real pipeline (webhook -> JetStream -> incidents -> investigation ->
routing -> Slack) into the local Slack Web API: routed by the file or by the workload's owner,
one thread with a graph, the parent updated on resolve, the delivery recorded on the incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from triage_lab.fakes.kubernetes import KubeApi, path_of
from triage_lab.fakes.kubernetes_objects import deployment
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi, all_text

from tests.support.app import serve, wait_for
from tests.support.payloads import alert, webhook
from tests.support.slack_case import GROUP_KEY, slack_settings
from triage.deliver.graph import PNG_MAGIC
from triage.deliver.slack import SlackRef
from triage.models import incident_id_for

pytestmark = pytest.mark.slow


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
