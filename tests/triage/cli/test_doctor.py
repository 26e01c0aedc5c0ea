"""``triage doctor`` against real local servers, and the ``serve`` banner's live summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from triage_lab.fakes.gateway import ScriptedLLM, raw
from triage_lab.fakes.kubernetes import KubeApi
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port
from triage_lab.fakes.prometheus import Prometheus
from triage_lab.fakes.slack import TOKEN as SLACK_TOKEN
from triage_lab.fakes.slack import SlackApi

from tests.support.app import make_settings
from triage.bus.jetstream import Bus
from triage.cli import doctor
from triage.cli import main as cli
from triage.cli.doctor_kubernetes import rbac_needs
from triage.settings import Settings
from triage.telemetry import Metrics

RBAC = Path(__file__).parents[3] / "deploy/base/security/rbac.yaml"
VERSION = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.2", "gitCommit": "abc", "gitTreeState": "clean",
    "buildDate": "2024-10-22T00:00:00Z", "goVersion": "go1.22.8", "compiler": "gc",
    "platform": "linux/amd64",
}  # fmt: skip


def lines_of(text: str) -> dict[str, tuple[str, str]]:
    """component -> (status, detail), from what the command prints."""
    found = {}
    for line in text.splitlines():
        status, component, detail = line.split(None, 2)
        found[component] = (status, detail)
    return found


async def doctor_says(settings: Settings) -> tuple[dict[str, tuple[str, str]], int, str]:
    text, code = doctor.report(await doctor.diagnose(settings, limit_s=20))
    return lines_of(text), code, text


def routing_file(tmp_path: Path, platform_id: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "default": {"team": "sre", "channels": ["#incidents"]},
                "routes": [
                    {"name": "cart", "matchers": ['namespace="shop"'], "team": "cart",
                     "channels": ["#cart-oncall"]},
                    {"name": "platform", "matchers": ['team="platform"'], "team": "platform",
                     "channel": platform_id},
                ],
            }
        )
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Prometheus]:
    now = int(time.time()) - 60
    text = f'# TYPE up gauge\nup{{namespace="shop",job="cart"}} 1 {now}\n# EOF\n'
    with Prometheus(text) as server:
        yield server


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeApi]:
    with KubeApi() as api:
        api.paths["/version/"] = VERSION  # the client asks with the slash
        yield api


async def declared(nats: NatsServer, settings: Settings) -> None:
    bus = Bus(settings.nats, nats.url, Metrics())
    await bus.connect()
    try:
        await bus.declare()
    finally:
        await bus.close()


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_verbs_doctor_checks_are_the_cluster_roles():
    roles = {
        o["metadata"]["name"]: rules_of(o)
        for o in yaml.safe_load_all(RBAC.read_text())
        if o and o["kind"] == "ClusterRole"
    }
    assert rbac_needs() == roles["triage-collectors"] | roles["triage-ownership"]
    assert ("", "pods/log", "get") in rbac_needs()


@pytest.mark.slow
async def test_every_working_endpoint_is_ok(
    tmp_path: Path, nats_server: NatsServer, prometheus: Prometheus, kube: KubeApi
):
    async with SlackApi() as slack:
        slack.add_channel("incidents")
        slack.add_channel("cart-oncall")
        platform = slack.add_channel("platform")
        with ScriptedLLM(raw('{"ok": true}')) as llm:
            settings = make_settings(
                tmp_path,
                nats={"url": nats_server.url},
                prometheus={"url": prometheus.url, "queries": ['up{namespace="$namespace"}']},
                kubernetes={"kubeconfig": kube.write_kubeconfig(tmp_path / "kubeconfig")},
                llm={"base_url": llm.url, "api_key": "sk-test"},
                slack={"bot_token": SLACK_TOKEN, "base_url": slack.url},
                routing={"file": routing_file(tmp_path, platform)},
            )
            await declared(nats_server, settings)
            found, code, text = await doctor_says(settings)
            probe = llm.requests[-1]
    assert code == 0, text
    for component in ("nats", "kubernetes", "prometheus", "llm", "slack"):
        assert found[component][0] == "ok", text
    assert "stream TRIAGE" in found["nats"][1] and "triage_incidents" in found["nats"][1]
    assert "v1.31.2" in found["kubernetes"][1]
    assert len(kube.reviews) == len(rbac_needs())
    assert "Prometheus 2." in found["prometheus"][1] or "Prometheus 3." in found["prometheus"][1]
    assert "triage-rca" in found["llm"][1]
    assert probe["model"] == "triage-rca"
    assert probe["response_format"]["type"] == "json_schema"
    assert probe["response_format"]["json_schema"]["strict"] is True
    assert "3 routed channel(s)" in found["slack"][1]
    assert found["loki"] == ("off", found["loki"][1])
    assert "TRIAGE_LOKI_URL" in found["loki"][1]


@pytest.mark.slow
async def test_what_fails_is_named(tmp_path: Path, nats_server: NatsServer, kube: KubeApi):
    kube.denied = {("networking.k8s.io", "networkpolicies", "list"), ("", "pods/log", "get")}
    async with SlackApi() as slack:
        slack.add_channel("incidents", member=False)
        platform = slack.add_channel("platform")
        with ScriptedLLM(listed=("gpt-4o-mini",)) as llm:
            dead = free_port()
            settings = make_settings(
                tmp_path,
                nats={"url": nats_server.url},  # up, but no triage process declared anything
                prometheus={"url": f"http://127.0.0.1:{dead}"},
                kubernetes={"kubeconfig": kube.write_kubeconfig(tmp_path / "kubeconfig")},
                llm={"base_url": llm.url},
                slack={"bot_token": SLACK_TOKEN, "base_url": slack.url},
                routing={"file": routing_file(tmp_path, platform)},
            )
            found, code, text = await doctor_says(settings)
            asked = list(llm.requests)
    assert code == 1
    assert found["nats"][0] == "fail"
    assert "stream TRIAGE and KV bucket triage_incidents missing" in found["nats"][1]
    assert found["prometheus"][0] == "fail"
    assert f"127.0.0.1:{dead}" in found["prometheus"][1]
    assert "ConnectError" in found["prometheus"][1]
    status, detail = found["kubernetes"]
    assert status == "fail"
    assert "list networkpolicies.networking.k8s.io" in detail
    assert "get pods/log" in detail
    assert "list pods" not in detail.replace("list pods/", "")
    assert found["llm"][0] == "fail"
    assert "triage-rca not listed" in found["llm"][1] and "gpt-4o-mini" in found["llm"][1]
    assert asked == []  # no completion for a model the gateway does not have
    assert found["slack"][0] == "fail"
    assert "missing channel(s): #cart-oncall" in found["slack"][1]
    assert "bot not invited to: #incidents" in found["slack"][1]
    assert found["loki"][0] == "off"
    assert "Traceback" not in text


@pytest.mark.slow
async def test_a_bad_query_template_and_a_gateway_without_strict_schemas(
    tmp_path: Path, prometheus: Prometheus
):
    with ScriptedLLM(raw("Hello! How can I help?")) as llm:
        settings = make_settings(
            tmp_path,
            nats={"embedded_port": free_port()},
            prometheus={"url": prometheus.url, "queries": ['up{namespace="$namespace"}', "sum(up"]},
            llm={"base_url": llm.url},
        )
        found, code, _ = await doctor_says(settings)
    assert code == 1
    status, detail = found["prometheus"]
    assert status == "fail"
    assert "query 2 'sum(up'" in detail and "parse error" in detail
    assert "query 1" not in detail
    status, detail = found["llm"]
    assert status == "fail"
    assert "does not keep to a strict json_schema" in detail and "Hello!" in detail


def test_nothing_configured_is_off_with_the_variable_and_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("TRIAGE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_NATS_EMBEDDED_PORT", str(free_port()))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["doctor", "--timeout", "10"])
    assert exit_.value.code == 0
    found = lines_of(capsys.readouterr().out)
    assert {c: s for c, (s, _) in found.items()} == {
        "nats": "off", "kubernetes": "off", "prometheus": "off", "loki": "off", "llm": "off",
        "slack": "off",
    }  # fmt: skip
    assert "not running" in found["nats"][1] and "TRIAGE_NATS_URL" in found["nats"][1]
    assert "TRIAGE_KUBERNETES_KUBECONFIG" in found["kubernetes"][1]
    assert "TRIAGE_PROMETHEUS_URL" in found["prometheus"][1]
    assert "TRIAGE_LLM_BASE_URL" in found["llm"][1]
    assert "TRIAGE_SLACK_BOT_TOKEN" in found["slack"][1]


def banner_line(banner: str, name: str) -> str:
    summary = banner.split("Evidence and delivery:\n", 1)[1]
    return next(line for line in summary.splitlines() if line.split()[0] == name)


def test_the_serve_banner_says_what_is_live(tmp_path: Path):
    off = cli._banner(make_settings(tmp_path), "nats://x")
    assert off.rstrip().endswith("Check them: triage doctor")
    assert banner_line(off, "prometheus").split()[1] == "off"
    assert "TRIAGE_PROMETHEUS_URL" in banner_line(off, "prometheus")
    assert banner_line(off, "kubernetes").split()[1] == "off"
    assert banner_line(off, "logs").split()[1] == "off"
    assert "heuristic" in banner_line(off, "llm")
    assert "TRIAGE_SLACK_BOT_TOKEN" in banner_line(off, "slack")
    assert banner_line(off, "jsonl").split()[1] == "on"  # make_settings writes drafts.jsonl
    assert "scenario" not in off

    on = cli._banner(
        make_settings(
            tmp_path,
            prometheus={"url": "http://prom:9090"},
            kubernetes={"in_cluster": True},
            llm={"base_url": "http://user:secret@litellm:4000/v1", "model": "rca"},
            investigation={"scenario_dir": str(tmp_path)},
        ),
        "nats://x",
    )
    assert banner_line(on, "prometheus").split()[1:3] == ["on", "http://prom:9090"]
    assert "Kubernetes pod logs" in banner_line(on, "logs")
    assert "rca at http://litellm:4000/v1" in banner_line(on, "llm")
    assert "secret" not in on
    assert str(tmp_path) in banner_line(on, "scenario")
