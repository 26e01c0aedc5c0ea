"""Runbooks: one per self-monitoring alert and per operating task the issue names, each with
the sections on-call needs, each listed in the index, and every link between them resolves."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import ROOT, find, render

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow

RUNBOOKS = ROOT / "runbooks"
SECTIONS = ("## Symptoms", "## Checks", "## Actions", "## Escalation", "## Ownership")
TASKS = {
    "gateway down": "gateway-down.md",
    "GPU node lost": "gpu-node-lost.md",
    "dead-letter replay": "dead-letter-replay.md",
    "consumer lag": "consumer-lag.md",
    "Slack token revoked": "slack-token-revoked.md",
    "NATS disk full": "nats-disk-full.md",
    "rotating secrets": "rotating-secrets.md",
}


def runbooks() -> list[str]:
    return sorted(p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md")


@pytest.mark.parametrize("name", runbooks())
def test_runbook_has_every_section_and_commands(name: str):
    text = (RUNBOOKS / name).read_text()
    positions = [text.find(s) for s in SECTIONS]
    assert -1 not in positions, f"{name} lacks one of {SECTIONS}"
    assert positions == sorted(positions), f"{name}: sections out of order"
    checks = text[positions[1] : positions[2]]
    assert "```" in checks, f"{name}: Checks without commands"
    owner = text[positions[4] :]
    assert re.search(r"\b(Platform|Model) team\b", owner), name


def test_every_operating_task_and_alert_has_a_runbook_in_the_index():
    index = (RUNBOOKS / "README.md").read_text()
    for task, file in TASKS.items():
        assert (RUNBOOKS / file).is_file(), task
        assert f"]({file})" in index, f"index lacks {task}"
    (rule,) = find(render("production"), "PrometheusRule")
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    for alert in alerts:
        assert f"| {alert} |" in index, alert
    for name in runbooks():
        assert f"]({name})" in index, f"index lacks {name}"


@pytest.mark.parametrize("name", [*runbooks(), "README.md"])
def test_links_between_runbooks_resolve(name: str):
    text = (RUNBOOKS / name).read_text()
    for target in re.findall(r"\]\(([a-z0-9-]+\.md)\)", text):
        assert (RUNBOOKS / target).is_file(), f"{name} links {target}"
    for path in re.findall(r"\b(deploy/[\w./-]+\.ya?ml|bench/results/\w+\.json)\b", text):
        assert (ROOT / path).is_file(), f"{name} names {path}"
