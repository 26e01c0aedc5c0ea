"""The webhook as Alertmanager and a careless sender see it: answers, auth, limits, no stray
messages on the bus."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from triage_lab.fakes.nats import NatsServer

from tests.support.app import TOKEN, make_settings, serve, stream_messages
from tests.support.payloads import alert, many_alerts, webhook


async def alerts_on_bus(nats_server: NatsServer) -> int:
    return await stream_messages(nats_server.url, "triage.alerts")


async def test_accepts_webhook_after_jetstream_stored_it(nats_server: NatsServer, settings):
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            resp = await client.post("/api/v1/alertmanager", json=webhook())
        assert resp.status_code == 200
        body = resp.json()
        assert body["status"] == "accepted" and body["duplicate"] is False
        assert body["incident_id"].startswith("inc-")
        assert await alerts_on_bus(nats_server) == 1


async def test_alertmanager_resend_is_deduplicated(nats_server: NatsServer, settings):
    payload = webhook()
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            first = await client.post("/api/v1/alertmanager", json=payload)
            payload["receiver"] = "renamed"  # same notification content, other envelope
            again = await client.post("/api/v1/alertmanager", json=payload)
        assert first.json()["msg_id"] == again.json()["msg_id"]
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert await alerts_on_bus(nats_server) == 1


async def test_unknown_fields_are_tolerated(nats_server: NatsServer, settings):
    payload = webhook()
    payload["someFutureField"] = {"x": 1}
    payload["alerts"][0]["silencedBy"] = []
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            resp = await client.post("/api/v1/alertmanager", json=payload)
        assert resp.status_code == 200


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("groupKey"), "groupKey"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.update(alerts=[]), "alerts"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda p: p["alerts"][0].update(status="burning"), "alerts.0.status"),
        (lambda p: p["alerts"][0]["labels"].update(n=5), "alerts.0.labels.n"),
        # Years no investigation window can be computed around (OverflowError, once).
        (lambda p: p["alerts"][0].update(startsAt="0001-01-01T00:00:00Z"), "alerts.0.startsAt"),
        (lambda p: p["alerts"][0].update(startsAt="9999-12-31T00:00:00Z"), "alerts.0.startsAt"),
        (
            lambda p: p["alerts"][0].update(status="resolved", endsAt="9999-01-01T00:00:00Z"),
            "alerts.0.endsAt",
        ),
    ],
)
async def test_schema_errors_name_the_field(nats_server: NatsServer, settings, mutate, field):
    payload = webhook()
    mutate(payload)
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            resp = await client.post("/api/v1/alertmanager", json=payload)
        assert resp.status_code == 422
        assert field in [f["field"] for f in resp.json()["fields"]]
        assert await alerts_on_bus(nats_server) == 0


async def test_bad_requests_publish_nothing(nats_server: NatsServer, tmp_path: Path):
    settings = make_settings(tmp_path, ingest={"max_body_bytes": 64 * 1024})
    big = json.dumps(webhook(many_alerts(1000, annotation_bytes=200)))
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            url = "/api/v1/alertmanager"
            malformed = await client.post(
                url, content=b'{"version": "4", ', headers={"Content-Type": "application/json"}
            )
            not_object = await client.post(url, json=[1, 2])
            wrong_type = await client.post(
                url, content=json.dumps(webhook()), headers={"Content-Type": "text/plain"}
            )
            too_big = await client.post(
                url, content=big, headers={"Content-Type": "application/json"}
            )

            async def chunks():
                for _ in range(100):
                    yield b" " * 1024  # no Content-Length: the limit holds while streaming

            chunked = await client.post(
                url, content=chunks(), headers={"Content-Type": "application/json"}
            )
        assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
        assert not_object.status_code == 422
        assert wrong_type.status_code == 415
        assert too_big.status_code == 413
        assert chunked.status_code == 413
        assert await alerts_on_bus(nats_server) == 0


async def test_thousand_alert_webhook_is_one_message_when_the_limit_allows(
    nats_server: NatsServer, tmp_path: Path
):
    settings = make_settings(tmp_path, ingest={"max_body_bytes": 4 * 1024 * 1024})
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            resp = await client.post("/api/v1/alertmanager", json=webhook(many_alerts(1000)))
        assert resp.status_code == 200 and resp.json()["alerts"] == 1000
        assert await alerts_on_bus(nats_server) == 1


async def test_wrong_or_missing_credentials_are_401(nats_server: NatsServer, settings):
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        for token in (None, "wrong", TOKEN + "x"):
            async with app.client(token) as client:
                resp = await client.post("/api/v1/alertmanager", json=webhook())
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"].startswith("Bearer")
        assert await alerts_on_bus(nats_server) == 0


async def test_basic_auth_from_a_password_file(nats_server: NatsServer, tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = make_settings(
        tmp_path,
        ingest={"bearer_token": None, "basic_username": "am", "basic_password_file": str(secret)},
    )

    def basic(user: str, password: str) -> dict[str, str]:
        return {
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        }

    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client(None) as client:
            good = await client.post(
                "/api/v1/alertmanager", json=webhook(), headers=basic("am", "s3cret")
            )
            bad_user = await client.post(
                "/api/v1/alertmanager", json=webhook([alert("B")]), headers=basic("root", "s3cret")
            )
            bad_pass = await client.post(
                "/api/v1/alertmanager", json=webhook([alert("C")]), headers=basic("am", "nope")
            )
            garbage = await client.post(
                "/api/v1/alertmanager",
                json=webhook([alert("D")]),
                headers={"Authorization": "Basic %%%"},
            )
        assert good.status_code == 200
        assert [r.status_code for r in (bad_user, bad_pass, garbage)] == [401, 401, 401]
        assert await alerts_on_bus(nats_server) == 1


async def test_broker_down_is_503_then_accepted_when_back(nats_server: NatsServer, settings):
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            nats_server.stop()
            down = await client.post("/api/v1/alertmanager", json=webhook())
            ready_down = await client.get("/readyz")
            nats_server.start()
            for _ in range(100):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            back = await client.post("/api/v1/alertmanager", json=webhook())
            metrics = (await client.get("/metrics")).text
        assert down.status_code == 503 and down.headers["retry-after"]
        assert ready_down.status_code == 503
        assert back.status_code == 200
        assert await alerts_on_bus(nats_server) == 1
        assert 'triage_ingest_requests_total{outcome="unavailable"} 1.0' in metrics
        assert 'triage_ingest_requests_total{outcome="accepted"} 1.0' in metrics


async def test_probes_and_metrics(nats_server: NatsServer, settings):
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client(None) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).json()["ready"] is True
        async with app.client() as client:
            await client.post("/api/v1/alertmanager", json=webhook(many_alerts(3)))
            text = (await client.get("/metrics")).text
        assert 'triage_ingest_alerts_total{status="firing"} 3.0' in text
        assert "triage_ingest_publish_seconds_count 1.0" in text


def test_refuses_to_start_without_credentials(tmp_path: Path, nats_server: NatsServer):
    from triage.app import create_app
    from triage.errors import ConfigError

    settings = make_settings(tmp_path, ingest={"bearer_token": None})
    with pytest.raises(ConfigError, match="no credentials"):
        create_app(settings, nats_url=nats_server.url)
    open_settings = make_settings(
        tmp_path, ingest={"bearer_token": None, "allow_unauthenticated": True}
    )
    create_app(open_settings, nats_url=nats_server.url)
