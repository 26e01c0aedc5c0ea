"""The corpus in the label conventions real clusters use: the same worlds, their alerts, series
and objects relabelled as Istio, OpenTelemetry, kube-state-metrics or Helm-deployed stacks write
them. Our own convention (``service`` + ``namespace`` everywhere) is what the engine was built
on; this half measures what carries over.

Only names change: which label names the workload, where the namespace is, what the objects
are labelled with. Values, timestamps and the truth stay as they are, so a case's score in both
halves differs only by what the engine understands.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from triage_lab.corpus.exporters import exporter_metrics, rule
from triage_lab.scenarios import KubeObjects, ScenarioMeta

Style = Literal["istio", "otel", "kube-state-metrics", "helm"]
STYLES: tuple[Style, ...] = ("istio", "otel", "kube-state-metrics", "helm")
Conventions = Literal["ours", "real-world"]

_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def style_of(key: str) -> Style:
    """Each scenario's style from its own key: stable, and independent of the other cases."""
    digest = hashlib.sha256(f"conventions/{key}".encode()).digest()
    return STYLES[digest[0] % len(STYLES)]


def alert_labels(labels: dict[str, str], style: Style, kinds: dict[str, str]) -> dict[str, str]:
    """An alert about a workload, as that stack's alert rules label it."""
    svc, ns = labels.get("service"), labels.get("namespace")
    if not svc:
        return labels
    out = {k: v for k, v in labels.items() if k not in ("service", "namespace")}
    if style == "istio":  # mesh metrics: the callee's workload, the namespace beside it
        out |= {"destination_workload": svc, "reporter": "destination"}
        if ns:
            out["destination_workload_namespace"] = ns
    elif style == "otel":  # OTLP resource attributes, job = service.namespace/service.name
        out |= {"service_name": svc, "job": f"{ns}/{svc}" if ns else svc}
    elif style == "kube-state-metrics":  # the exporter's own target labels sit beside
        kind = kinds.get(svc, "deployment")
        out |= {kind: svc, "job": "kube-state-metrics", "service": "kube-state-metrics"}
        if ns:
            out["namespace"] = ns
    else:  # Helm chart labels, namespace as a federated or pushed series carries it
        out |= {"app_kubernetes_io_name": svc, "app_kubernetes_io_instance": svc}
        if ns:
            out["exported_namespace"] = ns
    return out


def series_labels(labels: dict[str, str], style: Style) -> dict[str, str]:
    """A series' labels as that stack exports them (values untouched)."""
    out: dict[str, str] = {}
    ns = labels.get("namespace", "")
    for key, value in labels.items():
        if style == "istio" and key in ("service", "callee"):
            out["destination_workload"] = value
            if ns:
                out["destination_workload_namespace"] = ns
        elif style == "istio" and key == "caller":
            out["source_workload"] = value
        elif style == "otel" and key == "service":
            out["service_name"] = value
            out["job"] = f"{ns}/{value}" if ns else value
        elif style == "helm" and key == "service":
            out["app_kubernetes_io_name"] = value
        else:
            out[key] = value
    return out


def _relabel_line(line: str, style: Style) -> str:
    if line.startswith("#") or "{" not in line:
        return line
    name, rest = line.split("{", 1)
    body, tail = rest.rsplit("}", 1)
    labels = dict(_LABEL.findall(body))
    text = ",".join(f'{k}="{v}"' for k, v in series_labels(labels, style).items())
    return f"{name}{{{text}}}{tail}"


def openmetrics(text: str, style: Style) -> str:
    return "\n".join(_relabel_line(line, style) for line in text.split("\n"))


def _expr_label(style: Style) -> str:
    return {
        "istio": "destination_workload",
        "otel": "service_name",
        "kube-state-metrics": "service",
        "helm": "app_kubernetes_io_name",
    }[style]


def generator_url(url: str, style: Style, namespace: str = "") -> str:
    """The alert's expression selects the relabelled series; an SLO alert's becomes the rule
    the stack would write over its exporter's series (corpus/exporters.py)."""
    if not url:
        return url
    parts = urlsplit(url)

    def expr(v: str) -> str:
        return rule(v, style, namespace) or re.sub(r'\bservice="', f'{_expr_label(style)}="', v)

    query = [
        (k, expr(v) if k == "g0.expr" else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _helm_labels(obj: dict[str, Any]) -> None:
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    app = labels.get("app")
    if not app:
        return
    labels |= {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": app,
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": f"{app}-1.4.2",
    }
    template = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels")
    if isinstance(template, dict):
        template |= {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app}


def restyle(
    meta: ScenarioMeta, kube: KubeObjects, metrics: str, style: Style
) -> tuple[ScenarioMeta, KubeObjects, str]:
    raw = kube.model_dump(mode="json")
    kinds = {
        o["metadata"]["name"]: kind
        for plural, kind in (("statefulsets", "statefulset"), ("daemonsets", "daemonset"))
        for o in raw.get(plural, [])
    }
    hooks = []
    for hook in meta.model_dump(mode="json")["webhooks"]:
        for alert in hook["alerts"]:
            ns = alert["labels"].get("namespace", "")
            alert["labels"] = alert_labels(alert["labels"], style, kinds)
            alert["generatorURL"] = generator_url(alert.get("generatorURL", ""), style, ns)
        hook["commonLabels"] = alert_labels(hook.get("commonLabels", {}), style, kinds)
        hook["groupLabels"] = alert_labels(hook.get("groupLabels", {}), style, kinds)
        hooks.append(hook)
    if style == "helm":
        for plural in ("deployments", "statefulsets", "daemonsets", "pods", "replicasets"):
            for obj in raw.get(plural, []):
                _helm_labels(obj)
    restyled = meta.model_validate(
        meta.model_dump(mode="json")
        | {"webhooks": hooks, "description": f"{meta.description} [{style} conventions]"}
    )
    series = openmetrics(exporter_metrics(metrics, style), style)
    return restyled, KubeObjects.model_validate(raw), series
