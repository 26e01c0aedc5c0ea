"""What the services rely on: the datastores, CoreDNS and the GitOps controller."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from triage_lab.corpus.cluster_apps import add_pods, assign_cluster_ip, new_pod
from triage_lab.corpus.cluster_config import add_cert, add_secret
from triage_lab.corpus.kube_templates import template_hash
from triage_lab.corpus.model import ConfigObj, Revision, Workload
from triage_lab.corpus.units import sec

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def add_store(w: World, name: str, role: str) -> None:
    rng = w.rng
    pg = role == "db"
    wl = Workload(
        name=name,
        namespace=w.ns,
        kind="StatefulSet",
        role=role,
        port=w.ports[name],
        style="postgres" if pg else "redis",
        repo="docker.io/library/postgres" if pg else "docker.io/library/redis",
        replicas=1,
        created=w.start - timedelta(days=rng.uniform(200, 900)),
        team=w.team,
    )
    w.workloads[name] = wl
    secret = add_secret(
        w, f"{name}-credentials", ["POSTGRES_PASSWORD"] if pg else ["REDIS_PASSWORD"]
    )
    probe = {"path": "", "tcp": True, "port": wl.port, "period": 10, "timeout": 1, "failures": 3}
    rev = Revision(
        number=1,
        created=wl.created,
        tag=rng.choice(("15.6", "15.7", "16.2", "16.3"))
        if pg
        else rng.choice(("7.2.4", "7.2.5", "7.0.15")),
        env={"PGDATA": "/var/lib/postgresql/data/pgdata"} if pg else {},
        config=None,
        env_secrets=[secret],
        tls_secret=add_cert(w, name) if pg else None,
        cpu_request="500m",
        cpu_limit=None,
        mem_request="1Gi" if pg else "512Mi",
        mem_limit="4Gi" if pg else "1Gi",
        readiness=probe,
        liveness=dict(probe, delay=30),
        args=[]
        if pg
        else [
            "--maxmemory",
            "768mb",
            "--maxmemory-policy",
            rng.choice(("allkeys-lru", "noeviction", "volatile-lru")),
        ],
    )
    wl.revisions.append(rev)
    if rng.random() < 0.5:
        upgraded = w.start - timedelta(days=rng.uniform(20, 90))
        wl.revisions = [
            replace(rev, tag=rev.tag[:-1] + "1"),
            replace(rev, number=2, created=upgraded),
        ]
    for r in wl.revisions:
        r.hash = template_hash(wl, r)
    new_pod(
        w,
        wl,
        wl.current,
        wl.current.created + sec(rng.uniform(5, 30)),
        rng.choice(w.nodes).name,
        ordinal=0,
    )
    w.baseline(wl)
    assign_cluster_ip(w, name)


def add_coredns(w: World) -> None:
    rng = w.rng
    wl = Workload(
        name="coredns",
        namespace="kube-system",
        kind="Deployment",
        role="dns",
        port=53,
        style="coredns",
        repo="registry.k8s.io/coredns/coredns",
        replicas=2,
        created=min(n.created for n in w.nodes) - timedelta(days=rng.uniform(30, 300)),
        extra_labels={"k8s-app": "kube-dns"},
    )
    w.workloads["coredns"] = wl
    cm = ConfigObj(
        kind="ConfigMap",
        name="coredns",
        namespace="kube-system",
        created=wl.created,
        changed=wl.created + timedelta(days=rng.uniform(1, 20)),
        manager="kubectl-client-side-apply",
        data={"Corefile": COREFILE},
        labels={"k8s-app": "kube-dns"},
    )
    w.configs["coredns"] = cm
    rev = Revision(
        number=1,
        created=wl.created,
        tag=rng.choice(("v1.11.1", "v1.11.3", "v1.10.1")),
        env={},
        config="coredns",
        env_secrets=[],
        tls_secret=None,
        cpu_request="100m",
        cpu_limit=None,
        mem_request="70Mi",
        mem_limit="170Mi",
        readiness={"path": "/ready", "port": 8181, "period": 10, "failures": 3},
        liveness={
            "path": "/health",
            "port": 8080,
            "period": 10,
            "delay": 60,
            "failures": 5,
            "timeout": 5,
        },
        args=["-conf", "/etc/coredns/Corefile"],
    )
    wl.revisions.append(rev)
    wl.revisions.append(
        replace(rev, number=2, created=w.start - timedelta(days=rng.uniform(3, 40)))
    )
    for r in wl.revisions:
        r.hash = template_hash(wl, r)
    add_pods(w, wl)
    w.baseline(wl)
    assign_cluster_ip(w, "coredns")
    w.cluster_ips["coredns"] = "172.20.0.10" if w.cluster.flavor == "eks" else "10.96.0.10"


def add_gitops(w: World) -> None:
    rng = w.rng
    argo = rng.random() < 0.5
    w.gitops_manager = "argocd-controller" if argo else "kustomize-controller"
    if argo:
        wl = Workload(
            name="argocd-application-controller",
            namespace="argocd",
            kind="StatefulSet",
            role="gitops",
            port=8082,
            style="argocd",
            repo="quay.io/argoproj/argocd",
            replicas=1,
            created=w.start - timedelta(days=rng.uniform(60, 400)),
        )
        tag = rng.choice(("v2.11.7", "v2.12.3", "v2.13.1"))
    else:
        wl = Workload(
            name="kustomize-controller",
            namespace="flux-system",
            kind="Deployment",
            role="gitops",
            port=8080,
            style="flux",
            repo="ghcr.io/fluxcd/kustomize-controller",
            replicas=1,
            created=w.start - timedelta(days=rng.uniform(60, 400)),
        )
        tag = rng.choice(("v1.3.0", "v1.4.0"))
    w.workloads[wl.name] = wl
    rev = Revision(
        number=1,
        created=w.start - timedelta(days=rng.uniform(5, 50)),
        tag=tag,
        env={},
        config=None,
        env_secrets=[],
        tls_secret=None,
        cpu_request="250m",
        cpu_limit=None,
        mem_request="512Mi",
        mem_limit="2Gi",
        readiness={"path": "/readyz", "port": wl.port, "period": 10},
        liveness={"path": "/healthz", "port": wl.port, "period": 10},
    )
    rev.hash = template_hash(wl, rev)
    wl.revisions.append(rev)
    new_pod(w, wl, rev, rev.created + sec(20), rng.choice(w.nodes).name)
    w.git_sha = "".join(rng.choice("0123456789abcdef") for _ in range(40))


COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
