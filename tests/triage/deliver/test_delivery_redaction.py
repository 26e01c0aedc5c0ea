"""Redaction at the edge of every sink: secrets planted in every place a draft carries text
(labels, annotations, runbook and generator URLs, evidence, RCA text, title, collectors' errors,
the series) reach none of the sinks' actual output: the console's stream, the JSON Lines file,
the webhook receiver's body, the messages and uploads of a Slack-compatible server, the LLM
prompt. Ordinary text (service names, PromQL in URLs) comes through unchanged."""

from __future__ import annotations

import io
import json
import string
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi, all_text

from collectors.contracts import Evidence, EvidenceItem
from tests.support.drafts import GRAPH_URL, LABELS, RUNBOOK_URL, draft, incident, rca, route, series
from tests.support.receivers import Receiver
from tests.support.secrets_corpus import ALNUM, B64, BENIGN, HEX, UPPER, _jwt, fake, pem
from triage.analyse.llm import response_format
from triage.analyse.llm_messages import PromptBuilder
from triage.analyse.prompts import load_prompts
from triage.analyse.redaction import Redactor
from triage.bus.jetstream import Bus
from triage.deliver.delivery import ConsoleSink, DeliveryStage, JsonlSink, Sink
from triage.deliver.routing import RouteDecision, Router, parse_routing
from triage.deliver.slack import SlackSink, web_client
from triage.deliver.webhook_sink import WebhookSink
from triage.models import (
    AlertSnapshot,
    CollectorReport,
    DeliveryRequest,
    EvidenceDigest,
    Link,
    RootCause,
)
from triage.settings import NatsSettings, RedactionSettings, SlackSettings
from triage.telemetry import Metrics

# A secret leaks if any run of this many of its characters is found (a cut-off key leaks too).
WINDOW = 12


@dataclass(frozen=True)
class Secret:
    kind: str
    text: str  # as a log line, an annotation or an env dump carries it
    url: str  # as it sits in a runbook or generator URL
    secrets: tuple[str, ...]  # none of these may show, nor any WINDOW characters of one


def _secrets() -> list[Secret]:
    akia = "AKIA" + fake(UPPER, 16, "d-akia")
    aws = fake(B64, 40, "d-aws-secret")
    jwt = _jwt("d-jwt")
    url_pw = fake(ALNUM, 14, "d-url-pw")
    block, body = pem("RSA PRIVATE KEY", "d-pem")
    slack = f"xoxb-{fake(string.digits, 12, 'd-x1')}-{fake(ALNUM, 24, 'd-x2')}"
    ghp = "ghp_" + fake(ALNUM, 36, "d-ghp")
    bearer = fake(ALNUM, 31, "d-bearer") + "7"
    pw = fake(ALNUM, 12, "d-pw")
    api_key = fake(HEX, 32, "d-api-key")
    sig = fake(HEX, 64, "d-sig")
    stripe = "sk_live_" + fake(ALNUM, 24, "d-stripe")
    s3 = "https://shop-assets.s3.amazonaws.com/exports/orders.csv"
    return [
        Secret(
            "aws_access_key",
            f"AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID={akia}",
            f"{s3}?X-Amz-Credential={akia}%2F20240501%2Feu-west-1%2Fs3%2Faws4_request",
            (akia,),
        ),
        Secret(
            "aws_secret_key",
            f"aws_secret_access_key = {aws}",
            f"https://backup.example.com/restore?aws_secret_access_key={aws}",
            (aws,),
        ),
        Secret(
            "jwt",
            f"401 for session {jwt}: token expired",
            f"https://grafana.example.com/login?auth_token={jwt}",
            (jwt,),
        ),
        Secret(
            "url_password",
            f"dial postgres://app:{url_pw}@db.shop:5432/orders: i/o timeout",
            f"https://admin:{url_pw}@grafana.example.com/d/cart?orgId=1",
            (url_pw,),
        ),
        Secret(
            "private_key",
            f"configmap tls-bundle changed:\n{block}\nroll pods to pick it up",
            f"https://vault.example.com/v1/pki/issue?private_key={body[0]}",
            tuple(body),
        ),
        Secret(
            "slack_token",
            f"notifier: posting with {slack} failed: invalid_auth",
            f"https://slack.com/api/auth.test?token={slack}",
            (slack,),
        ),
        Secret(
            "github_token",
            f"git push with {ghp} denied",
            f"https://x-access-token:{ghp}@github.com/acme/shop.git",
            (ghp,),
        ),
        Secret(
            "bearer_token",
            f"upstream 401 with Authorization: Bearer {bearer}",
            f"https://api.example.com/v1/orders?page=2&access_token={bearer}",
            (bearer,),
        ),
        Secret(
            "password",
            f"env DB_PASSWORD={pw} DB_HOST=db.shop",
            f"https://api.example.com/login?user=app&password={pw}",
            (pw,),
        ),
        Secret(
            "api_key",
            f'payment provider said {{"api_key": "{api_key}", "error": "quota"}}',
            f"https://api.example.com/v1/rates?limit=5&api_key={api_key}",
            (api_key,),
        ),
        Secret(
            "url_signature",
            f"GET {s3}?X-Amz-Expires=300&X-Amz-Signature={sig} 403 Forbidden",
            f"{s3}?X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature={sig}",
            (sig,),
        ),
        Secret(
            "stripe_key",
            f"charge failed with key {stripe}",
            f"https://dashboard.example.com/keys?key={stripe}",
            (stripe,),
        ),
    ]


SECRETS = _secrets()


def _rca_with(text: str) -> Any:
    return rca(
        summary=f"cartservice failed: {text}",
        impact=f"checkout down ({text})",
        root_cause=RootCause(
            component="cartservice",
            kind="bad_rollout",
            change=f"deployment/cartservice revision 7 ({text})",
            description=f"rolled out with {text}",
        ),
        next_steps=[f"check {text}"],
        open_questions=[f"why {text}?"],
    )


def _series_with(text: str) -> Any:
    s = series()
    changes = [c.model_copy(update={"label": f"rollout {text}"}) for c in s.changes]
    return s.model_copy(update={"title": f"errors {text}", "changes": changes})


def _evidence(**fields: str) -> list[EvidenceDigest]:
    base = {"id": "log-cart-1", "collector": "logs", "summary": "5 errors", "role": "cause"}
    return [EvidenceDigest.model_validate({**base, **fields})]


# Each place: how a secret gets there (from its text or URL form), and the sinks that show it.
PLACES: dict[str, tuple[Callable[[Secret], dict[str, Any]], frozenset[str]]] = {
    "label_value": (
        lambda s: {"labels": {**LABELS, "config": s.text}},
        frozenset({"jsonl", "webhook"}),
    ),
    "annotation": (
        lambda s: {"annotations": {"summary": "errors", "description": f"logs: {s.text}"}},
        frozenset({"slack", "jsonl", "webhook"}),
    ),
    "runbook_url": (
        lambda s: {
            "annotations": {"summary": "errors", "runbook_url": s.url},
            "links": [
                Link(kind="graph", title="HighErrorRate", url=GRAPH_URL),
                Link(kind="runbook", title="HighErrorRate", url=s.url),
            ],
        },
        frozenset({"console", "slack", "jsonl", "webhook"}),
    ),
    "generator_url": (
        lambda s: {
            "links": [
                Link(kind="graph", title="HighErrorRate", url=s.url),
                Link(kind="runbook", title="HighErrorRate", url=RUNBOOK_URL),
            ]
        },
        frozenset({"console", "slack", "jsonl", "webhook"}),
    ),
    "evidence_summary": (
        lambda s: {"evidence": _evidence(summary=f"level=error {s.text}")},
        frozenset({"console", "slack", "jsonl", "webhook"}),
    ),
    "evidence_detail": (
        lambda s: {"evidence": _evidence(detail=f"2024-05-01T12:00:00Z level=error {s.text}")},
        frozenset({"console", "slack", "jsonl", "webhook"}),
    ),
    "rca_text": (
        lambda s: {"rca": _rca_with(s.text)},
        frozenset({"console", "slack", "jsonl", "webhook"}),
    ),
    "title": (
        lambda s: {"title": f"HighErrorRate: {s.text}"},
        frozenset({"console", "slack", "jsonl", "webhook"}),
    ),
    "collector_error": (
        lambda s: {
            "collectors": [
                CollectorReport(
                    collector="loki", status="error", items=0, duration_s=1.0, error=s.text
                )
            ]
        },
        frozenset({"console", "jsonl", "webhook"}),
    ),
    "series": (
        lambda s: {"series": _series_with(s.text)},
        frozenset({"jsonl", "webhook"}),
    ),
}
SINKS = ("console", "jsonl", "webhook", "slack")


def survivors(secret: Secret, text: str) -> list[str]:
    """The secrets, or runs of WINDOW of their characters, found in ``text``."""
    found = []
    for s in secret.secrets:
        w = min(WINDOW, len(s))
        if any(s[i : i + w] in text for i in range(len(s) - w + 1)):
            found.append(s)
    return found


def slack_readable(api: SlackApi) -> str:
    """Everything sent to Slack, with the sink's escapes undone so nothing hides behind them."""
    parts: list[str] = []
    for call in api.calls:
        parts.append(json.dumps(call.params, ensure_ascii=False))
        parts += [str(call.params.get("text", "")), *all_text(call.params.get("blocks") or [])]
    text = "\n".join(parts)
    for look, mark in {"\u2217": "*", "\u02cd": "_", "\u223c": "~", "\u02cb": "`"}.items():
        text = text.replace(look, mark)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class Sinks:
    """The four delivery sinks, each writing where its output can be read back."""

    def __init__(self, tmp_path: Path, receiver: Receiver, api: SlackApi, **slack: Any) -> None:
        self.receiver = receiver
        self.api = api
        self.stream = io.StringIO()
        self.jsonl = tmp_path / "drafts.jsonl"
        self._tmp = tmp_path
        self._slack = slack

    async def deliver(self, request: DeliveryRequest, where: RouteDecision) -> None:
        """What the delivery stage does: redact once, then hand the copy to every sink."""
        request, where = Redactor.from_settings(RedactionSettings()).redact_delivery(request, where)
        settings = SlackSettings.model_validate(
            {"base_url": self.api.url, "channel_interval_s": 0, **self._slack}
        )
        async with aiohttp.ClientSession() as session, httpx.AsyncClient(timeout=5) as client:
            sinks = [
                ConsoleSink(self.stream),
                JsonlSink(self.jsonl),
                WebhookSink(self.receiver.url, client, deadline_s=5),
                SlackSink(web_client(settings, self.api.token, session), settings),
            ]
            for sink in sinks:
                await sink.send(request, where, None)

    def outputs(self) -> dict[str, str]:
        return {
            "console": self.stream.getvalue(),
            "jsonl": self.jsonl.read_text(),
            "webhook": "\n".join(json.dumps(body) for _, body in self.receiver.received),
            "slack": slack_readable(self.api),
        }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def sinks(tmp_path: Path, receiver: Receiver, slack_api: SlackApi) -> Sinks:
    return Sinks(tmp_path, receiver, slack_api, graphs=False)


def test_every_secret_kind_is_caught_by_the_redactor_in_both_forms():
    r = Redactor()
    for s in SECRETS:
        for text in (s.text, s.url):
            out, n = r.redact(text)
            assert n >= 1 and not survivors(s, out), (s.kind, out)
            assert r.redact(out) == (out, 0)  # idempotent


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("secret", SECRETS, ids=[s.kind for s in SECRETS])
async def test_no_planted_secret_reaches_any_sink(sinks: Sinks, secret: Secret, place: str):
    plant, shown_by = PLACES[place]
    await sinks.deliver(draft(**plant(secret)), route("#cart-oncall"))
    outputs = sinks.outputs()
    assert set(outputs) == set(SINKS)
    leaks = {sink: survivors(secret, text) for sink, text in outputs.items()}
    assert not any(leaks.values()), leaks
    # The place does reach the sink, redacted (a URL's password is dropped, not replaced).
    url_place = place in ("runbook_url", "generator_url")
    mark = "[REDACTED:"
    if url_place and secret.kind in ("url_password", "github_token"):
        mark = "://admin@grafana" if secret.kind == "url_password" else "://x-access-token@github"
    for sink in shown_by:
        assert mark in outputs[sink], (sink, outputs[sink])


async def test_the_graph_uploaded_to_slack_carries_no_secret_in_its_title(
    tmp_path: Path, receiver: Receiver, slack_api: SlackApi
):
    secret = SECRETS[0]
    graphs = Sinks(tmp_path, receiver, slack_api, graphs=True)
    await graphs.deliver(draft(series=_series_with(secret.text)), route("#cart-oncall"))
    assert slack_api.calls_to("files.completeUploadExternal")
    assert not survivors(secret, slack_api_text := slack_readable(slack_api))
    assert "[REDACTED:aws_access_key]" in slack_api_text


async def test_ordinary_text_comes_through_every_sink_unchanged(sinks: Sinks):
    graph = "http://prometheus:9090/graph?g0.expr=rate(x[5m])"
    request = draft(
        labels={**LABELS, "pod": "cartservice-7d9f8b6c5-x2x9z"},
        annotations={"summary": "cartservice error ratio above 5%", "runbook_url": RUNBOOK_URL},
        links=[
            Link(kind="graph", title="HighErrorRate", url=graph),
            Link(kind="runbook", title="HighErrorRate", url=RUNBOOK_URL),
        ],
        evidence=[
            EvidenceDigest(id=f"log-{n}", collector="logs", summary=line, role="cause")
            for n, line in enumerate(BENIGN)
        ],
        with_series=True,
    )
    where = route("#cart-oncall")
    redacted, same_route = Redactor().redact_delivery(request, where)
    assert redacted == request and same_route == where
    await sinks.deliver(request, where)
    outputs = sinks.outputs()
    assert "[REDACTED:" not in "".join(outputs.values())
    [record] = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    assert record["delivery"] == json.loads(request.model_dump_json())
    assert f"Graph (HighErrorRate): {graph}" in outputs["console"]
    assert "cartservice" in outputs["console"] and RUNBOOK_URL in outputs["console"]
    assert f"<{graph}|Prometheus graph: HighErrorRate>" in outputs["slack"]


def test_a_delivery_is_redacted_once_and_stays_so():
    s = SECRETS[3]
    request = draft(
        labels={**LABELS, "dsn": s.text},
        annotations={"runbook_url": s.url, "description": s.text},
        links=[Link(kind="runbook", title="x", url=s.url)],
        rca=_rca_with(s.text),
        evidence=_evidence(summary=s.text, detail=s.text),
    )
    counted: list[tuple[str, int]] = []
    r = Redactor(on_redaction=lambda kind, n: counted.append((kind, n)))
    once, where = r.redact_delivery(request, route())
    assert r.redact_delivery(once, where) == (once, where)
    # A whole URL stays usable: the userinfo password is dropped, not replaced.
    assert once.links[0].url == "https://admin@grafana.example.com/d/cart?orgId=1"
    assert once.annotations["runbook_url"] == once.links[0].url
    assert once.labels["dsn"].startswith("dial postgres://app:[REDACTED:url_password]@db.shop")
    # Identifiers the delivery records match on are ours and kept.
    assert (once.incident_id, once.kind, once.revision) == ("inc-cart", "draft", 1)
    # Each distinct string is redacted once: the same text in five places is one call.
    assert counted and all(kind == "url_password" for kind, _ in counted)


def test_secret_looking_query_values_are_redacted_and_the_url_kept():
    r = Redactor()
    assert r.redact_url("https://u:pw123456@h.example.com/p?a=1&token=abc123def&b=2") == (
        "https://u@h.example.com/p?a=1&token=[REDACTED:token]&b=2",
        2,
    )
    assert r.redact_url("https://h.example.com/x?api_key=k1k2k3k4&X-Amz-Signature=0a1b2c3d") == (
        "https://h.example.com/x?api_key=[REDACTED:api_key]&X-Amz-Signature=[REDACTED:url_signature]",
        2,
    )
    for ok in (
        "http://prometheus:9090/graph?g0.expr=rate(x[5m])",
        GRAPH_URL,
        "https://grafana.example.com/d/abc/cart?orgId=1&var-namespace=shop&from=now-1h",
    ):
        assert r.redact_url(ok) == (ok, 0)


# --- the LLM path: the prompt is built from redacted alerts and evidence -----------------------


def _prompt_text(secret: Secret, place: str) -> str:
    labels = dict(LABELS)
    annotations = {"summary": "errors"}
    generator = "http://prometheus:9090/graph?g0.expr=up"
    summary, detail, error = "5 errors", "", None
    if place == "label_value":
        labels["config"] = secret.text
    elif place == "annotation":
        annotations["description"] = secret.text
    elif place == "runbook_url":
        annotations["runbook_url"] = secret.url
    elif place == "generator_url":
        generator = secret.url
    elif place == "evidence_summary":
        summary = f"level=error {secret.text}"
    elif place == "evidence_detail":
        detail = f"2024-05-01T12:00:00Z level=error {secret.text}"
    elif place == "collector_error":
        error = secret.text
    state = incident()
    state.alerts = {
        "fp1": AlertSnapshot(
            status="firing",
            labels=labels,
            annotations=annotations,
            starts_at=datetime.now(UTC),
            generator_url=generator,
        )
    }
    state.common_labels = labels
    evidence = [
        Evidence(
            collector="logs",
            status="ok",
            items=[
                EvidenceItem(
                    id="log-cart-1",
                    kind="log_pattern",
                    summary=summary,
                    detail=detail,
                    subject="cartservice",
                    score=0.9,
                )
            ],
        ),
        Evidence(collector="loki", status="error", error=error),
    ]
    redactor = Redactor()
    # As LLMAnalyzer.analyze: the evidence redacted first, the alerts by the prompt builder.
    clean, _ = redactor.redact_evidence(evidence)
    builder = PromptBuilder(load_prompts("v1"), redactor, 4000, response_format())
    prompt = builder.build(state, clean, [])
    return "\n".join(m["content"] for m in prompt.messages)


LLM_PLACES = (
    "label_value",
    "annotation",
    "runbook_url",
    "generator_url",
    "evidence_summary",
    "evidence_detail",
    "collector_error",
)


@pytest.mark.parametrize("place", LLM_PLACES)
@pytest.mark.parametrize("secret", SECRETS, ids=[s.kind for s in SECRETS])
def test_no_planted_secret_reaches_the_llm_prompt(secret: Secret, place: str):
    text = _prompt_text(secret, place)
    assert not survivors(secret, text), text


# --- the delivery stage itself: redacts once, before any sink, with the redactor it is given --


@pytest.mark.slow
async def test_the_delivery_stage_hands_every_sink_the_redacted_draft(
    nats_server: NatsServer, tmp_path: Path, receiver: Receiver, slack_api: SlackApi
):
    bus = Bus(NatsSettings(), nats_server.url, Metrics())
    await bus.connect()
    await bus.declare()
    try:
        await bus.mutate_incident("inc-cart", lambda s: incident() if s is None else None)
        # Every kind in every place at once, and the deployment's own (extra pattern) too.
        everything = "\n".join([*(s.text for s in SECRETS), "ticket ACME-123456"])
        request = draft()
        for place, (plant, _) in PLACES.items():
            fields = plant(Secret("all", everything, SECRETS[0].url, ()))
            if place in ("runbook_url", "generator_url"):
                continue  # links: one URL each, below
            request = request.model_copy(update=fields)
        request = request.model_copy(
            update={
                "links": [Link(kind="runbook", title=s.kind, url=s.url) for s in SECRETS],
                "annotations": {**request.annotations, "runbook_url": SECRETS[3].url},
            }
        )
        out = Sinks(tmp_path, receiver, slack_api, graphs=False)
        settings = SlackSettings(base_url=slack_api.url, channel_interval_s=0)
        rules, default = parse_routing(
            'default: {team: sre, channels: ["#incidents"]}\nroutes: []\n'
        )
        assert default is not None
        redactor = Redactor.from_settings(RedactionSettings(extra_patterns=[r"ACME-\d{6}"]))
        async with aiohttp.ClientSession() as session, httpx.AsyncClient(timeout=5) as client:
            sinks: list[Sink] = [
                ConsoleSink(out.stream),
                JsonlSink(out.jsonl),
                WebhookSink(receiver.url, client, deadline_s=5),
                SlackSink(web_client(settings, slack_api.token, session), settings),
            ]
            stage = DeliveryStage(bus, Router(rules, default), sinks, Metrics(), redactor)
            assert await stage.handle(request) == "delivered"
        outputs = out.outputs()
        for secret in SECRETS:
            leaks = {sink: survivors(secret, text) for sink, text in outputs.items()}
            assert not any(leaks.values()), (secret.kind, leaks)
        for sink, text in outputs.items():
            assert "ACME-123456" not in text and "[REDACTED:custom]" in text, sink
        state, _ = await bus.get_incident("inc-cart")
        assert state is not None and {d.sink for d in state.deliveries if d.complete} == set(SINKS)
    finally:
        await bus.close()
