"""Pod templates (containers, probes, volumes) and the pod-template-hash derived from them."""

from __future__ import annotations

import json
from typing import Any

from triage_lab.corpus.kube import safe_hash
from triage_lab.corpus.model import Revision, Workload
from triage_lab.fakes import kubernetes_objects as api
from triage_lab.fakes.kubernetes_objects import Obj


def _probe(spec: dict[str, Any]) -> Obj:
    action: Obj = (
        {"tcpSocket": {"port": spec["port"]}}
        if spec.get("tcp")
        else {"httpGet": {"path": spec["path"], "port": spec["port"], "scheme": "HTTP"}}
    )
    return action | {
        "initialDelaySeconds": spec.get("delay", 5),
        "periodSeconds": spec.get("period", 10),
        "timeoutSeconds": spec.get("timeout", 1),
        "successThreshold": 1,
        "failureThreshold": spec.get("failures", 3),
    }


def pod_template(w: Workload, rev: Revision) -> Obj:
    c: Obj = {
        "name": w.name,
        "image": f"{w.repo}:{rev.tag}",
        "ports": [{"name": "http", "containerPort": w.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(rev.env.items())],
        "resources": {
            "requests": {"cpu": rev.cpu_request, "memory": rev.mem_request},
            "limits": {"memory": rev.mem_limit} | ({"cpu": rev.cpu_limit} if rev.cpu_limit else {}),
        },
    }
    if rev.args:
        c["args"] = rev.args
    if rev.readiness:
        c["readinessProbe"] = _probe(rev.readiness)
    if rev.liveness:
        c["livenessProbe"] = _probe(rev.liveness)
    volumes: list[Obj] = []
    mounts: list[Obj] = []
    if rev.config:
        volumes.append({"name": "config", "configMap": {"name": rev.config, "defaultMode": 420}})
        mounts.append({"name": "config", "mountPath": f"/etc/{w.name}", "readOnly": True})
    if rev.tls_secret:
        volumes.append(
            {"name": "tls", "secret": {"secretName": rev.tls_secret, "defaultMode": 420}}
        )
        mounts.append({"name": "tls", "mountPath": "/var/run/tls", "readOnly": True})
    if rev.env_secrets:
        c["envFrom"] = [{"secretRef": {"name": name}} for name in rev.env_secrets]
    if mounts:
        c["volumeMounts"] = mounts
    spec: Obj = {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": w.name,
        "schedulerName": "default-scheduler",
        "securityContext": {"fsGroup": 2000},
    }
    if volumes:
        spec["volumes"] = volumes
    if rev.node_selector:
        spec["nodeSelector"] = rev.node_selector
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(w.port)}
    annotations.update(rev.annotations)
    return api.pod_template(labels(w, rev), [c], annotations=annotations, **spec)


def labels(w: Workload, rev: Revision | None = None) -> dict[str, str]:
    out = {"app": w.name, **w.extra_labels}
    if rev is not None:
        out["version"] = rev.tag
    return out


def template_hash(w: Workload, rev: Revision) -> str:
    return safe_hash(json.dumps(pod_template(w, rev), sort_keys=True), 10)
