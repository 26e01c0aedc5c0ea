"""`triage investigate` as a user runs it: a subprocess against a real Prometheus holding a
corpus scenario's series, the scenario's Kubernetes objects behind the fixture API server (read
by the real client through a kubeconfig), and a real Alertmanager. No NATS anywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from triage_lab.fakes.alertmanager import Alertmanager
from triage_lab.fakes.asgi import serve_asgi
from triage_lab.fakes.kubernetes import kube_api_app
from triage_lab.fakes.process import free_port
from triage_lab.fakes.prometheus import Prometheus
from triage_lab.scenarios import load_scenario

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
# A bad rollout: payments-gateway alerts, the cause is risk-scoring's new image two hops down.
SCENARIO = REPO / "scenarios" / "k8s-faults" / "k8s-005"


@dataclass
class Cluster:
    prometheus: str
    alertmanager: str
    kubeconfig: Path
    webhook: Path
    truth: dict[str, Any]


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig as a user has one: a cluster, a token user, a current context."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fixture", "cluster": {"server": server}}],
                "users": [{"name": "triage", "user": {"token": "fixture-token"}}],
                "contexts": [
                    {"name": "fixture", "context": {"cluster": "fixture", "user": "triage"}}
                ],
                "current-context": "fixture",
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("investigate")
    scenario = load_scenario(SCENARIO)
    webhook = scenario.meta.webhooks[0]
    (tmp / "webhook.json").write_text(webhook.model_dump_json())
    with (
        Prometheus(scenario.metrics, workdir=tmp / "prometheus") as prom,
        serve_asgi(kube_api_app(scenario.kubernetes, scenario.logs)) as kube,
        # Its notifications go nowhere: the test reads its API, as `investigate` does.
        Alertmanager(f"http://127.0.0.1:{free_port()}/", workdir=tmp / "am") as am,
    ):
        am.post_alerts(
            [
                {
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": a.startsAt.isoformat(),
                    "generatorURL": a.generatorURL,
                }
                for a in webhook.alerts
            ]
            # Another group, in another namespace: --filter and --each keep it apart.
            + [{"labels": {"alertname": "Watchdog", "namespace": "monitoring"}}]
        )
        yield Cluster(
            prometheus=prom.url,
            alertmanager=am.url,
            kubeconfig=write_kubeconfig(tmp / "kubeconfig", kube),
            webhook=tmp / "webhook.json",
            truth=json.loads((SCENARIO / "truth.json").read_text()),
        )


def investigate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRIAGE_") and not k.lower().endswith("_proxy")
    }
    env["TRIAGE_LOG_FORMAT"] = "console"
    return subprocess.run(
        [sys.executable, "-m", "triage.cli", "investigate", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        input=stdin,
        timeout=120,
    )


def sources(c: Cluster) -> list[str]:
    return ["--kubeconfig", str(c.kubeconfig), "--prometheus", c.prometheus]


def collector_lines(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if line.startswith("collector "):
            found[line.split()[1]] = line.split()[2]
    return found


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("triage: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_webhook_draft_names_the_rollout_and_lists_the_collectors(cluster: Cluster):
    res = investigate(*sources(cluster), "--webhook", str(cluster.webhook))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    # Every collector ran against the real servers, and the lines come before the draft.
    assert collector_lines(out) == {"kubernetes": "ok", "logs": "ok", "metrics": "ok"}
    assert out.index("collector kubernetes") < out.index("DRAFT")
    assert "HighErrorRate on payments-gateway" in out
    # The alert is on payments-gateway; the draft blames the rolled-out service below it.
    cause = re.search(r"cause\b.*\b" + re.escape(cluster.truth["service"]), out, re.IGNORECASE)
    assert cause, out
    assert "revision 3" in out  # the rollout it rests on


def test_json_carries_the_rca_and_the_route(cluster: Cluster):
    res = investigate(*sources(cluster), "--webhook", str(cluster.webhook), "--json")
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    rca = record["delivery"]["rca"]
    assert rca["root_cause"]["component"] == cluster.truth["service"]
    assert rca["root_cause"]["kind"] == cluster.truth["category"]
    assert rca["evidence_ids"]
    assert {c["collector"]: c["status"] for c in record["delivery"]["collectors"]} == {
        "kubernetes": "ok",
        "logs": "ok",
        "metrics": "ok",
    }
    # Routed as the notifier routes: the alerting Deployment's owner label in the cluster.
    assert record["teams"] == ["billing"]
    assert record["route_reason"].startswith("ownership: deployment billing/payments-gateway")
    # The collector lines went to stderr, keeping stdout one JSON document.
    assert collector_lines(res.stderr) == {"kubernetes": "ok", "logs": "ok", "metrics": "ok"}


def test_webhook_on_stdin(cluster: Cluster):
    res = investigate(
        *sources(cluster), "--webhook", "-", "--json", stdin=cluster.webhook.read_text()
    )
    assert res.returncode == 0, res.stderr
    rca = json.loads(res.stdout)["delivery"]["rca"]
    assert rca["root_cause"]["component"] == cluster.truth["service"]


def test_labels_with_a_start_time(cluster: Cluster):
    alert = json.loads(cluster.webhook.read_text())["alerts"][0]
    labels = [f"{k}={v}" for k, v in alert["labels"].items()]
    res = investigate(*sources(cluster), *labels, "--at", alert["startsAt"], "--json")
    assert res.returncode == 0, res.stderr
    delivery = json.loads(res.stdout)["delivery"]
    assert delivery["title"] == "HighErrorRate on payments-gateway"
    assert delivery["rca"]["root_cause"]["component"] == cluster.truth["service"]


def test_firing_alerts_from_alertmanager(cluster: Cluster):
    res = investigate(
        *sources(cluster),
        "--alertmanager",
        cluster.alertmanager,
        "--filter",
        'alertname="HighErrorRate"',
        "--filter",
        "namespace=billing",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    delivery = json.loads(res.stdout)["delivery"]
    assert delivery["labels"]["service"] == "payments-gateway"
    assert delivery["rca"]["root_cause"]["component"] == cluster.truth["service"]


def test_each_alertmanager_group_is_its_own_incident(cluster: Cluster):
    res = investigate(*sources(cluster), "--alertmanager", cluster.alertmanager, "--each", "--json")
    assert res.returncode == 0, res.stderr
    drafts = [json.loads(line)["delivery"] for line in res.stdout.splitlines()]
    by_title = {d["title"]: d for d in drafts}
    assert sorted(by_title) == ["HighErrorRate on payments-gateway", "Watchdog on monitoring"]
    assert len({d["incident_id"] for d in drafts}) == 2
    rollout = by_title["HighErrorRate on payments-gateway"]["rca"]["root_cause"]
    assert rollout["component"] == cluster.truth["service"]


def test_no_alert_matching_the_filter(cluster: Cluster):
    res = investigate(
        *sources(cluster), "--alertmanager", cluster.alertmanager, "--filter", 'alertname="Nope"'
    )
    line = one_error_line(res)
    assert "no firing alerts" in line and 'alertname="Nope"' in line


def test_unreachable_alertmanager(cluster: Cluster):
    url = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(investigate(*sources(cluster), "--alertmanager", url))
    assert f"cannot reach Alertmanager at {url}" in line


def test_no_collector_configured_names_the_settings(cluster: Cluster):
    line = one_error_line(investigate("--webhook", str(cluster.webhook)))
    for name in (
        "TRIAGE_KUBERNETES_KUBECONFIG",
        "--kubeconfig",
        "TRIAGE_PROMETHEUS_URL",
        "--prometheus",
        "TRIAGE_LOKI_URL",
        "--loki",
    ):
        assert name in line


def test_missing_kubeconfig_names_the_file(cluster: Cluster, tmp_path: Path):
    missing = tmp_path / "nowhere" / "config"
    res = investigate("--kubeconfig", str(missing), "--webhook", str(cluster.webhook))
    assert str(missing) in one_error_line(res)


def test_bad_webhook_files(cluster: Cluster, tmp_path: Path):
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"version": "4", "alerts": [')
    line = one_error_line(investigate(*sources(cluster), "--webhook", str(garbled)))
    assert str(garbled) in line and "not JSON" in line

    absent = tmp_path / "absent.json"
    line = one_error_line(investigate(*sources(cluster), "--webhook", str(absent)))
    assert str(absent) in line

    # Valid JSON, wrong shape: one line per field, after the first line.
    wrong = json.loads(cluster.webhook.read_text())
    wrong["version"] = "3"
    del wrong["alerts"][0]["startsAt"]
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    res = investigate(*sources(cluster), "--webhook", str(tmp_path / "wrong.json"))
    assert res.returncode == 2
    first, *fields = res.stderr.strip().splitlines()
    assert first.startswith("triage: ") and "not an Alertmanager webhook" in first
    named = sorted(f.removeprefix("triage:").split(":")[0].strip() for f in fields)
    assert named == ["alerts.0.startsAt", "version"]


def test_usage_errors(cluster: Cluster):
    line = one_error_line(investigate(*sources(cluster), "--llm", "alertname=X"))
    assert "TRIAGE_LLM_BASE_URL" in line
    line = one_error_line(investigate(*sources(cluster)))
    assert "exactly one alert source" in line
