"""Storms for the correlation tests and bench/storm.py: recorded evidence (scenario files the
ScenarioCollector reads) of one node failing, one bad rollout of a shared dependency, or an
independent bad rollout, and Alertmanager groups of the services that suffer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.payloads import alert, webhook


def node_failure(service: str, node: str = "node-7") -> list[dict[str, Any]]:
    """What a service whose pods ran on ``node`` shows when the node fails."""
    return [
        {
            "id": f"{node}-notready",
            "kind": "node_condition",
            "summary": f"{node} Ready=Unknown: NodeStatusUnknown, kubelet stopped posting status",
            "subject": node,
            "score": 1.0,
            "fault_hint": "node_failure",
        },
        {
            "id": f"{service}-{node}-evicted",
            "kind": "k8s_event",
            "summary": f"TaintManagerEviction: marking {service} pods on {node} for deletion",
            "subject": node,
            "score": 0.9,
            "fault_hint": "node_failure",
        },
        {
            "id": f"{service}-errors",
            "kind": "metric_shift",
            "summary": f"{service} error ratio up",
            "subject": service,
            "score": 0.7,
        },
    ]


def dependency_rollout(service: str, dependency: str = "auth-db") -> list[dict[str, Any]]:
    """What a caller of ``dependency`` shows after a bad rollout of the dependency."""
    return [
        {
            "id": f"{dependency}-rollout",
            "kind": "rollout",
            "summary": f"{dependency} revision 31 rolled out 2 minutes before the onset",
            "subject": dependency,
            "score": 0.95,
            "fault_hint": "bad_rollout",
            "change": f"deployment/{dependency} revision 31",
        },
        {
            "id": f"{dependency}-crash",
            "kind": "pod_state",
            "summary": f"{dependency} pods CrashLoopBackOff",
            "subject": dependency,
            "score": 0.9,
            "fault_hint": "bad_rollout",
        },
        {
            "id": f"{service}-log",
            "kind": "log_pattern",
            "summary": f"{service}: connection refused to {dependency}",
            "subject": service,
            "score": 0.8,
        },
        {
            "id": f"{service}-errors",
            "kind": "metric_shift",
            "summary": f"{service} error ratio up",
            "subject": service,
            "score": 0.7,
        },
    ]


def own_rollout(service: str, at: datetime | None = None) -> list[dict[str, Any]]:
    """A bad rollout of ``service`` itself (seen from ``at`` on, when given)."""
    stamp = {"timestamp": at.isoformat()} if at is not None else {}
    return [
        {
            "id": f"{service}-rollout",
            "kind": "rollout",
            "summary": f"{service} revision 12 rolled out",
            "subject": service,
            "score": 0.95,
            "fault_hint": "bad_rollout",
            "change": f"deployment/{service} revision 12",
            **stamp,
        },
        {
            "id": f"{service}-split",
            "kind": "version_split",
            "summary": f"{service} revision 12 pods fail, revision 11 pods do not",
            "subject": service,
            "score": 0.95,
            "fault_hint": "bad_rollout",
            **stamp,
        },
        {
            "id": f"{service}-crash",
            "kind": "pod_state",
            "summary": f"{service} revision 12 pods CrashLoopBackOff",
            "subject": service,
            "score": 0.9,
            "fault_hint": "bad_rollout",
            **stamp,
        },
    ]


def write_scenarios(directory: Path, evidence: dict[str, list[dict[str, Any]]]) -> Path:
    """One scenario file per service: ``evidence[service]`` for alerts labelled with it."""
    directory.mkdir(parents=True, exist_ok=True)
    for service, items in evidence.items():
        (directory / f"{service}.json").write_text(
            json.dumps({"name": service, "match": {"service": service}, "evidence": items})
        )
    return directory


def group(
    service: str,
    *,
    alertname: str = "HighErrorRate",
    alerts: int = 1,
    status: str = "firing",
    team: str | None = None,
    started: datetime | None = None,
) -> dict[str, Any]:
    """One Alertmanager group (group_by alertname, service) of ``alerts`` alerts."""
    started = started or datetime.now(UTC) - timedelta(minutes=3)
    extra = {"team": team} if team else {}
    body = webhook(
        [
            alert(
                alertname,
                status=status,
                service=service,
                started=started,
                extra_labels={**extra, "pod": f"{service}-{i}"},
            )
            for i in range(alerts)
        ],
        group_key=f'{{}}:{{alertname="{alertname}", service="{service}"}}',
    )
    return body
