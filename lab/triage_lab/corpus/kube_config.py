"""ConfigMaps, Secrets (never their values), NetworkPolicies and Services."""

from __future__ import annotations

from datetime import timedelta

from triage_lab.corpus.kube import object_meta
from triage_lab.corpus.kube_templates import labels
from triage_lab.corpus.model import ConfigObj, PolicyObj, Workload
from triage_lab.fakes.kubernetes_objects import Obj, ts


def config_obj(c: ConfigObj, seed: str) -> Obj:
    managed: list[Obj] = [
        {
            "manager": c.manager,
            "operation": "Apply"
            if "controller" in c.manager or "argocd" in c.manager
            else "Update",
            "apiVersion": "v1",
            "time": ts(c.changed),
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {f"f:{k}": {} for k in sorted(c.data)}}
            if c.kind == "ConfigMap"
            else {"f:data": {f"f:{k}": {} for k in sorted(c.data)}, "f:type": {}},
        }
    ]
    if c.changed > c.created + timedelta(minutes=1):
        managed.insert(
            0,
            {
                "manager": "kubectl-client-side-apply"
                if c.manager != "cert-manager-certificates-issuing"
                else "cert-manager-certificates-key-manager",
                "operation": "Update",
                "apiVersion": "v1",
                "time": ts(c.created),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {}}},
            },
        )
    meta = object_meta(
        c.kind,
        c.name,
        c.namespace,
        c.created,
        seed,
        labels=c.labels,
        annotations=c.annotations,
        managedFields=managed,
    )
    obj: Obj = {"apiVersion": "v1", "kind": c.kind, "metadata": meta}
    if c.kind == "ConfigMap":
        obj["data"] = c.data
    else:
        obj["type"] = c.secret_type  # values are never recorded
    return obj


def network_policy(p: PolicyObj, seed: str) -> Obj:
    managed: list[Obj] = [
        {
            "manager": p.manager,
            "operation": "Apply",
            "apiVersion": "networking.k8s.io/v1",
            "time": ts(p.changed),
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:ingress": {}, "f:podSelector": {}, "f:policyTypes": {}}},
        }
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(
            "NetworkPolicy", p.name, p.namespace, p.created, seed, managedFields=managed
        ),
        "spec": {
            "podSelector": {"matchLabels": p.selector} if p.selector else {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": p.ingress_from}] if p.ingress_from else [],
        },
    }


def service(w: Workload, cluster_ip: str, seed: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            "Service",
            w.name if w.role != "dns" else "kube-dns",
            w.namespace,
            w.created,
            seed,
            labels=labels(w),
        ),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "selector": {"app": w.name},
            "ports": [
                {
                    "name": "dns" if w.role == "dns" else "http" if w.port > 1024 else "tcp",
                    "port": 53 if w.role == "dns" else w.port,
                    "targetPort": w.port,
                    "protocol": "UDP" if w.role == "dns" else "TCP",
                }
            ],
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {}},
    }
