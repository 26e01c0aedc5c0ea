"""The namespace's ConfigMaps, Secrets and cert-manager certificates before the incident."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import yaml

from triage_lab.corpus.kube import safe_hash
from triage_lab.corpus.kube_templates import template_hash
from triage_lab.corpus.model import ConfigObj, Workload

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def set_config(
    w: World,
    wl: Workload,
    cfg: dict[str, Any],
    at: datetime,
    *,
    initial: bool = False,
    manager: str | None = None,
    text: str | None = None,
) -> ConfigObj:
    """Write the service's ConfigMap; with kustomize naming that is a new object."""
    text = text or yaml.safe_dump(cfg, sort_keys=True, default_flow_style=False)
    name = f"{wl.name}-config-" + safe_hash(text) if w.kustomize else f"{wl.name}-config"
    old = w.configs.get(wl.current.config or "")
    created = at if (w.kustomize or old is None) else old.created
    obj = ConfigObj(
        kind="ConfigMap",
        name=name,
        namespace=wl.namespace,
        created=created,
        changed=at,
        manager=manager or w.gitops_manager,
        data={"config.yaml": text},
        labels={"app": wl.name},
    )
    w.configs[name] = obj
    if initial:
        for rev in wl.revisions:
            rev.config = name
        wl.current.hash = template_hash(wl, wl.current)
        for r in wl.revisions:
            r.hash = template_hash(wl, r)
    return obj


def add_secret(w: World, name: str, keys: list[str], *, tls: bool = False) -> str:
    rng = w.rng
    created = w.start - timedelta(days=rng.uniform(60, 400))
    changed = created if rng.random() < 0.5 else w.start - timedelta(days=rng.uniform(2, 50))
    manager = rng.choice(
        ("external-secrets", "vault-secrets-operator", "kubectl-client-side-apply")
    )
    w.configs[name] = ConfigObj(
        kind="Secret",
        name=name,
        namespace=w.ns,
        created=created,
        changed=changed,
        manager=manager,
        data={k: "" for k in keys},
        secret_type="kubernetes.io/tls" if tls else "Opaque",
    )
    return name


def add_cert(w: World, name: str) -> str:
    rng = w.rng
    secret = f"{name}-tls"
    issued = w.start - timedelta(days=rng.uniform(5, 55), minutes=rng.randrange(1440))
    w.configs[secret] = ConfigObj(
        kind="Secret",
        name=secret,
        namespace=w.ns,
        created=issued - timedelta(days=rng.choice((90, 180, 270))),
        changed=issued,
        manager="cert-manager-certificates-issuing",
        data={"tls.crt": "", "tls.key": "", "ca.crt": ""},
        secret_type="kubernetes.io/tls",
        annotations={
            "cert-manager.io/certificate-name": secret,
            "cert-manager.io/common-name": f"{name}.{w.ns}.svc",
            "cert-manager.io/alt-names": f"{name}.{w.ns}.svc,{name}.{w.ns}.svc.cluster.local",
            "cert-manager.io/issuer-kind": "ClusterIssuer",
            "cert-manager.io/issuer-name": rng.choice(("internal-issuer", "mesh-issuer")),
        },
    )
    w.certs[secret] = issued + timedelta(days=90)
    return secret
