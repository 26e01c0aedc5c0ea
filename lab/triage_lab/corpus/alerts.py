"""Alertmanager v4 webhooks: the SLO alert(s) on the symptom service, plus unrelated alerts
that happen to be firing or flapping at the same time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from triage.models import AlertmanagerWebhook
from triage_lab.corpus.world import World, sec

PROMETHEUS = "http://prometheus:9090"
NEVER = datetime(1, 1, 1, tzinfo=UTC)


@dataclass
class AlertSpec:
    name: str
    labels: dict[str, str]
    expr: str
    summary: str
    description: str
    starts: datetime
    ends: datetime | None = None  # resolved at
    severity: str = "critical"
    annotations: dict[str, str] = field(default_factory=dict)


def selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def generator_url(expr: str) -> str:
    return f"{PROMETHEUS}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"


def symptom_alerts(w: World) -> list[AlertSpec]:
    rng = w.rng
    names = {
        "errors": rng.choice(("HighErrorRate", "ErrorBudgetBurn", "SLOErrorRatioBreach")),
        "latency": rng.choice(("HighLatencyP99", "LatencySLOBreach", "SlowResponses")),
    }
    severity = rng.choice(("critical", "page"))
    out = []
    for s in w.symptoms:
        wl = w.workloads[s.service]
        lbl = {"namespace": wl.namespace, "service": s.service}
        sel = {"service": s.service}
        starts = s.departs + sec(rng.randint(120, 300)) + sec(rng.random())
        starts = min(starts, w.now - sec(rng.randint(20, 60)))
        if s.signal == "errors":
            expr = selector("service_error_ratio", sel)
            summary = f"{s.service} error ratio above 5%"
            desc = f"{s.service} in {wl.namespace} has served more than 5% errors for 2 minutes."
        else:
            limit = wl.base["p99"] * 2.5
            expr = selector("service_p99_seconds", sel)
            summary = f"{s.service} p99 latency above {limit:.2f}s"
            desc = f"99th percentile latency of {s.service} is above its {limit:.2f}s objective."
        out.append(
            AlertSpec(
                name=names[s.signal],
                labels=lbl,
                expr=expr,
                summary=summary,
                description=desc,
                starts=starts,
                severity=severity,
                annotations={"runbook_url": f"https://runbooks.example.com/slo/{s.signal}"},
            )
        )
    return out


def webhooks(w: World) -> list[AlertmanagerWebhook]:
    main = symptom_alerts(w)
    noise: list[AlertSpec] = [AlertSpec(**a) for a in w.noise_alerts]
    hooks: list[dict[str, Any]] = []
    if w.group_by_namespace:
        # route: group_by [namespace]; alerts without the label get a group of their own
        same = [a for a in noise if a.labels.get("namespace") == w.ns]
        firing = main + [a for a in same if a.ends is None or a.ends > w.now]
        hooks.append(_hook(w, firing, {"namespace": w.ns}))
        for a in noise:
            if a in same and (a.ends is None or a.ends > w.now):
                continue
            group = {"namespace": a.labels["namespace"]} if a in same else {}
            hooks.append(_hook(w, [a], group))
    else:
        by_name: dict[str, list[AlertSpec]] = {}
        for a in main:
            by_name.setdefault(a.name, []).append(a)
        for name, alerts in by_name.items():
            hooks.append(_hook(w, alerts, {"alertname": name, "namespace": w.ns}))
        for a in noise:
            group = {"alertname": a.name}
            if "namespace" in a.labels:
                group["namespace"] = a.labels["namespace"]
            hooks.append(_hook(w, [a], group))
    return [AlertmanagerWebhook.model_validate(h) for h in hooks]


def _hook(w: World, alerts: list[AlertSpec], group: dict[str, str]) -> dict[str, Any]:
    bodies: list[dict[str, Any]] = []
    for a in alerts:
        labels = {"alertname": a.name, **a.labels, "severity": a.severity}
        if "namespace" in a.labels:
            labels["team"] = w.team
        fp = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
        resolved = a.ends is not None and a.ends <= w.now
        bodies.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": labels,
                "annotations": {
                    "summary": a.summary,
                    "description": a.description,
                    **a.annotations,
                },
                "startsAt": a.starts.isoformat(),
                "endsAt": (a.ends if resolved and a.ends else NEVER).isoformat(),
                "generatorURL": generator_url(a.expr),
                "fingerprint": fp,
            }
        )
    common = dict(bodies[0]["labels"])
    for b in bodies[1:]:
        common = {k: v for k, v in common.items() if b["labels"].get(k) == v}
    route = '{}/{severity=~"critical|page"}' if alerts[0].severity != "warning" else "{}"
    key = ", ".join(f'{k}="{v}"' for k, v in group.items())
    return {
        "receiver": "triage",
        "status": "firing" if any(b["status"] == "firing" for b in bodies) else "resolved",
        "alerts": bodies,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": {
            k: v
            for k, v in bodies[0]["annotations"].items()
            if all(b["annotations"].get(k) == v for b in bodies)
        },
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f"{route}:{{{key}}}",
        "truncatedAlerts": 0,
    }
