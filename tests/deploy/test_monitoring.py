"""Self-monitoring: the PrometheusRule passes promtool and its alerts fire (and stay quiet)
on the series triage exports, every alert links a runbook that exists, and the Alertmanager
example passes amtool. promtool and amtool come with Debian's prometheus packages
(`make system-deps`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from triage_lab.fakes.alertmanager import ALERTMANAGER_BIN
from triage_lab.fakes.process import require_binary
from triage_lab.fakes.prometheus import PROMTOOL_BIN

from tests.deploy.manifests import DEPLOY, ROOT, find, render
from triage.telemetry import Metrics

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow

AMTOOL_BIN = ALERTMANAGER_BIN.parent / "amtool"
RUNBOOKS = ROOT / "runbooks"
# Metrics the rules use that other work in progress adds (redaction); listed in
# deploy/README.md so they can be aligned when those land.
EXPECTED_ELSEWHERE = {"triage_redactions_total"}
# Exported by Kubernetes components, not by triage.
PLATFORM = {
    "up",
    "kube_deployment_status_replicas_available",
    "kube_deployment_spec_replicas",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
}


def groups() -> list[dict[str, Any]]:
    (rule,) = find(render("production"), "PrometheusRule")
    found: list[dict[str, Any]] = rule["spec"]["groups"]
    return found


def alerts() -> list[dict[str, Any]]:
    return [r for g in groups() for r in g["rules"] if "alert" in r]


def write_rules(tmp_path: Path) -> Path:
    path = tmp_path / "triage-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups()}, sort_keys=False))
    return path


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_rules_pass_promtool(tmp_path: Path):
    require_binary(PROMTOOL_BIN, "the Debian package prometheus")
    proc = run([str(PROMTOOL_BIN), "check", "rules", str(write_rules(tmp_path))], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups())} rules found" in proc.stdout


def test_alerts_fire_on_trouble_and_stay_quiet_otherwise(tmp_path: Path):
    """promtool's rule unit tests, with series shaped like triage's /metrics."""
    require_binary(PROMTOOL_BIN, "the Debian package prometheus")
    write_rules(tmp_path)
    tests = (Path(__file__).parent / "rules_test.yaml").read_text()
    (tmp_path / "rules_test.yaml").write_text(tests)
    proc = run([str(PROMTOOL_BIN), "test", "rules", "rules_test.yaml"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_links_a_runbook_that_exists_and_names_an_owner():
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        m = re.fullmatch(r"https://[^ ]+/runbooks/([a-z0-9-]+\.md)", url)
        assert m, url
        runbook = RUNBOOKS / m.group(1)
        assert runbook.is_file(), f"{alert['alert']}: {url} does not resolve to {runbook}"
        assert alert["alert"] in runbook.read_text(), f"{runbook.name} does not name its alert"
        assert alert["labels"]["team"] in {"platform", "model"}
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_alerts_cover_what_the_issue_asks_to_watch():
    exprs = " ".join(a["expr"] for a in alerts())
    for metric in (
        'triage_ingest_requests_total{outcome="unavailable"}',
        "triage_dead_letters_total",
        "triage_consumer_pending",
        "triage_llm_calls_total",
        'triage_llm_analyses_total{outcome=~"invalid|unavailable|circuit_open"}',
        'triage_deliveries_total{sink="slack",outcome="error"}',
        "triage_redactions_total",
    ):
        assert metric in exprs, metric


def exported_metric_names() -> set[str]:
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in Metrics().registry.collect():
        # Labelled metrics have no samples until a label is used: name them from the family.
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def test_rules_use_metric_names_triage_exports_or_documents():
    known = exported_metric_names() | EXPECTED_ELSEWHERE | PLATFORM
    readme = (DEPLOY / "README.md").read_text()
    for alert in alerts():
        used = set(re.findall(r"\b([a-z_][a-z0-9_:]*)(?=\s*[{\[])", alert["expr"]))
        used -= {"rate", "increase", "delta", "sum", "max", "absent", "by", "offset", "and", "or"}
        for metric in used:
            assert metric in known, f"{alert['alert']} uses unknown metric {metric}"
            if metric in EXPECTED_ELSEWHERE:
                assert f"`{metric}" in readme, f"{metric} must be listed in deploy/README.md"


def test_alertmanager_example_passes_amtool_and_sends_to_triage_with_bearer_auth():
    require_binary(AMTOOL_BIN, "the Debian package prometheus-alertmanager")
    path = DEPLOY / "alertmanager" / "alertmanager.yml"
    proc = run([str(AMTOOL_BIN), "check-config", str(path)], ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load(path.read_text())
    route = config["route"]
    assert route["receiver"] == "triage" and route["group_by"]
    assert route["group_wait"] and route["group_interval"]
    (receiver,) = [r for r in config["receivers"] if r["name"] == "triage"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].endswith(":9095/api/v1/alertmanager") and hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert "credentials_file" in hook["http_config"]["authorization"]
    # triage's own alerts must not be routed into triage.
    (own,) = [r for r in route["routes"] if r["receiver"] != "triage" and "service" in str(r)]
    assert own["matchers"] == ['service="triage"']
    assert all(a["labels"]["service"] == "triage" for a in alerts())


@pytest.mark.parametrize("name", ["triage", "vllm"])
def test_service_monitors_select_services_that_exist(name: str):
    objs = render("production")
    (monitor,) = find(objs, "ServiceMonitor", name)
    services = [s for s in find(objs, "Service") if _selects(monitor["spec"]["selector"], s)]
    assert services, name
    for service in services:
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert monitor["spec"]["endpoints"][0]["port"] in ports


def _selects(selector: dict[str, Any], service: dict[str, Any]) -> bool:
    labels = service["metadata"].get("labels", {})
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True
