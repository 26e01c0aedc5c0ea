"""The namespace before anything goes wrong: services with their revision history, pods,
ConfigMaps and Secrets, the datastores, CoreDNS, the GitOps controller and the autoscalers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import yaml

from triage_lab.corpus import log_lines as L
from triage_lab.corpus.kube import SAFE, safe_hash, template_hash
from triage_lab.corpus.model import ConfigObj, Hpa, NodeInfo, Pod, PolicyObj, Revision, Workload
from triage_lab.corpus.units import sec

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def populate(w: World) -> None:
    rng, d = w.rng, w.domain
    w.nodes = [
        NodeInfo(
            name=n,
            zone=w.cluster.zones[i % 3],
            ip=f"10.0.{16 + rng.randrange(200)}.{2 + rng.randrange(250)}",
            created=w.start - timedelta(days=rng.uniform(3, 60)),
            index=i,
        )
        for i, n in enumerate(w.cluster.node_names)
    ]
    _gitops(w)
    w.entry = rng.choice(d.entries)
    w.mids = rng.sample(d.mids, 2)
    w.leaves = rng.sample(d.leaves, 2 if rng.random() < 0.2 else 1)
    w.db = rng.choice(d.databases)
    w.cache = rng.choice(d.caches)
    m0, m1 = w.mids
    edges = [(w.entry, m0), (w.entry, m1), (m0, w.leaves[0]), (m1, w.leaves[-1])]
    edges += [(m0, w.db), (m1, w.cache)]
    if rng.random() < 0.5:
        edges.append((m1, w.db))
    if rng.random() < 0.5:
        edges.append((w.leaves[0], w.cache))
    w.edges = list(dict.fromkeys(edges))
    apps = [(w.entry, "entry"), *((m, "mid") for m in w.mids)]
    apps += [(leaf, "leaf") for leaf in w.leaves]
    styles = {name: rng.choice(L.STYLES) for name, _ in apps}
    w.ports = {name: 8000 if styles[name] == "python" else 8080 for name in styles}
    w.ports[w.db], w.ports[w.cache] = 5432, 6379
    external = rng.choice(d.externals)
    tls = set(rng.sample([*w.mids, *w.leaves], rng.randint(1, 2)))
    for name, role in apps:
        ext = external if name == w.leaves[-1] else None
        _app(w, name, role, styles[name], ext, name in tls)
    _store(w, w.db, "db")
    _store(w, w.cache, "cache")
    _coredns(w)
    for name in (w.entry, w.mids[0]):
        _hpa(w, w.workloads[name])
    _policies(w)


def _policies(w: World) -> None:
    """Long-standing NetworkPolicies, as most namespaces have: unchanged, so never suspects.
    Deterministic: the generator's random stream stays as it was."""
    since = w.start - timedelta(days=90)
    for name, selector, sources in (
        ("allow-same-namespace", {}, [{"podSelector": {}}]),
        (
            f"{w.db}-ingress",
            {"app": w.db},
            [{"podSelector": {"matchLabels": {"app": m}}} for m in w.callers(w.db)],
        ),
    ):
        w.policies[name] = PolicyObj(
            name, w.ns, selector, since, since, w.gitops_manager, ingress_from=sources
        )


def _cluster_ip(w: World, name: str) -> str:
    rng = w.rng
    prefix = "172.20" if w.cluster.flavor == "eks" else "10.96"
    ip = f"{prefix}.{rng.randrange(1, 255)}.{rng.randrange(2, 254)}"
    w.cluster_ips[name] = ip
    return ip


def _app(w: World, name: str, role: str, style: str, external: str | None, tls: bool) -> None:
    rng = w.rng
    port = w.ports[name]
    wl = Workload(
        name=name,
        namespace=w.ns,
        kind="Deployment",
        role=role,
        port=port,
        style=style,
        repo=f"{w.registry}/{w.ns}/{name}",
        replicas=rng.choice((2, 3)) if role == "entry" else 3 if rng.random() < 0.15 else 2,
        created=w.start - timedelta(days=rng.uniform(120, 700)),
        external=external,
        team=w.team,
    )
    w.workloads[name] = wl
    env = {
        "LOG_LEVEL": "info",
        "PORT": str(port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4317",
    }
    cfg: dict[str, Any] = {"server": {"port": port, "shutdown_grace": "20s"}, "upstreams": {}}
    secrets: list[str] = []
    for callee in w.callees(name):
        host = f"{callee}.{w.ns}.svc.cluster.local"
        if callee == w.db:
            env |= {"DB_HOST": host, "DB_PORT": "5432", "DB_NAME": name.replace("-", "_")}
            cfg["database"] = {"pool_size": rng.choice((10, 20, 32)), "timeout": "3s"}
            secrets.append(_secret(w, f"{name}-db-credentials", ["DB_USER", "DB_PASSWORD"]))
        elif callee == w.cache:
            env["REDIS_ADDR"] = f"{host}:6379"
            cfg["cache"] = {"ttl": f"{rng.choice((60, 300, 900))}s", "timeout": "200ms"}
        else:
            key = callee.upper().replace("-", "_") + "_ADDR"
            env[key] = f"{host}:{w.ports[callee]}"
            cfg["upstreams"][callee] = {
                "timeout": f"{rng.choice((500, 800, 1000, 1500, 2000))}ms",
                "retries": rng.choice((1, 2, 3)),
            }
    if external:
        env["PROVIDER_URL"] = f"https://{external}"
        cfg["provider"] = {"endpoint": f"https://{external}", "timeout": "5s"}
        secrets.append(_secret(w, f"{name}-provider-credentials", ["API_KEY", "API_SECRET"]))
    if style == "java":
        env["JAVA_TOOL_OPTIONS"] = "-XX:MaxRAMPercentage=75.0"
    elif style == "python":
        env["WEB_CONCURRENCY"] = str(rng.choice((2, 4)))
    else:
        env["GOMAXPROCS"] = str(rng.choice((2, 4)))
    cfg["features"] = {
        f: rng.random() < 0.5
        for f in rng.sample(
            [
                "new_search_ranking",
                "async_receipts",
                "compact_payloads",
                "batch_writes",
                "shadow_reads",
                "gzip_responses",
            ],
            2,
        )
    }
    w.app_config[name] = cfg
    probe_paths = {
        "java": ("/actuator/health/readiness", "/actuator/health/liveness"),
        "python": ("/health/ready", "/health/live"),
    }.get(style, (rng.choice(("/readyz", "/ready")), "/healthz"))
    mem_req = rng.choice(("128Mi", "256Mi", "384Mi", "512Mi"))
    mem_lim = rng.choice(("512Mi", "768Mi", "1Gi")) if mem_req != "512Mi" else "1Gi"
    if style == "java":
        mem_req, mem_lim = "768Mi", rng.choice(("1536Mi", "2Gi"))
    rev = Revision(
        number=1,
        created=wl.created,
        tag="",
        env=env,
        config=None,
        env_secrets=secrets,
        tls_secret=add_cert(w, name) if tls else None,
        cpu_request=rng.choice(("100m", "200m", "250m", "500m")),
        cpu_limit=rng.choice((None, "1", "1", "2", "1500m")),
        mem_request=mem_req,
        mem_limit=mem_lim,
        readiness={
            "path": probe_paths[0],
            "port": port,
            "period": 10,
            "timeout": rng.choice((1, 2)),
            "failures": 3,
        },
        liveness={
            "path": probe_paths[1],
            "port": port,
            "period": 20,
            "delay": 15,
            "failures": 3,
            "timeout": 2,
        },
    )
    _history(w, wl, rev)
    set_config(w, wl, w.app_config[name], wl.current.created, initial=True)
    _pods(w, wl)
    w.baseline(wl)
    _cluster_ip(w, name)


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


def _secret(w: World, name: str, keys: list[str], *, tls: bool = False) -> str:
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


def _history(w: World, wl: Workload, first: Revision) -> None:
    rng = w.rng
    major, minor, patch = rng.randint(1, 4), rng.randint(2, 30), rng.randint(0, 6)
    count = rng.randint(1, 2)
    created = w.start - timedelta(days=rng.uniform(1.5, 25), minutes=rng.randrange(1440))
    times = [created]
    for _ in range(count - 1):
        times.append(times[-1] - timedelta(days=rng.uniform(2, 12), minutes=rng.randrange(600)))
    times.reverse()
    rev = first
    for i, t in enumerate(times):
        if i:
            if rng.random() < 0.6:
                patch += 1
            else:
                minor, patch = minor + 1, 0
        env = dict(rev.env)
        if i < count - 1 and rng.random() < 0.3:
            env["LOG_LEVEL"] = "debug"
        rev = replace(rev, number=i + 1, created=t, tag=f"{major}.{minor}.{patch}", env=env)
        wl.revisions.append(rev)


def _pods(w: World, wl: Workload) -> None:
    rng = w.rng
    rev = wl.current
    nodes = rng.sample(w.nodes, len(w.nodes))
    for i in range(wl.replicas):
        created = rev.created + sec(rng.uniform(2, 90))
        if rng.random() < 0.3:  # replaced later by node maintenance
            created += (w.start - created) * rng.uniform(0.2, 0.9)
        p = new_pod(w, wl, rev, created, nodes[i % len(nodes)].name, ordinal=i)
        if rng.random() < 0.12 and wl.role not in ("db", "dns"):
            # an old restart, long before the incident
            end = p.started + timedelta(hours=rng.uniform(2, 48)) if p.started else created
            if end < w.start - timedelta(hours=2):
                reason, code = rng.choice((("OOMKilled", 137), ("Error", 1), ("Error", 2)))
                p.last = {
                    "reason": reason,
                    "exitCode": code,
                    "startedAt": p.started,
                    "finishedAt": end,
                }
                p.restarts = [end + sec(rng.uniform(1, 20))]
                p.started = p.restarts[0]
                p.ready_changed = p.started + sec(12)


def new_pod(
    w: World, wl: Workload, rev: Revision, created: datetime, node: str | None, *, ordinal: int = 0
) -> Pod:
    rng = w.rng
    if wl.kind == "StatefulSet":
        name = f"{wl.name}-{ordinal}"
    else:
        name = f"{wl.name}-{rev.hash}-" + "".join(rng.choice(SAFE) for _ in range(5))
    ip = ""
    if node is not None:
        idx = next(n.index for n in w.nodes if n.name == node)
        w._ips[node] = w._ips.get(node, rng.randrange(4, 40)) + rng.randrange(1, 6)
        ip = f"10.{100 + idx}.0.{w._ips[node] % 250 + 2}"
    started = created + sec(rng.uniform(3, 12))
    p = Pod(
        name=name,
        workload=wl.name,
        revision=rev.number,
        node=node,
        created=created,
        ip=ip,
        started=started,
        ready_changed=started + sec(rng.uniform(4, 15)),
        jitter=rng.uniform(0.88, 1.12),
    )
    wl.pods.append(p)
    return p


def _store(w: World, name: str, role: str) -> None:
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
    secret = _secret(w, f"{name}-credentials", ["POSTGRES_PASSWORD"] if pg else ["REDIS_PASSWORD"])
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
    _cluster_ip(w, name)


def _coredns(w: World) -> None:
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
    _pods(w, wl)
    w.baseline(wl)
    _cluster_ip(w, "coredns")
    w.cluster_ips["coredns"] = "172.20.0.10" if w.cluster.flavor == "eks" else "10.96.0.10"


def _gitops(w: World) -> None:
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


def _hpa(w: World, wl: Workload) -> None:
    rng = w.rng
    last = w.start - timedelta(hours=rng.uniform(3, 90))
    wl.hpa = Hpa(
        min_replicas=wl.replicas,
        max_replicas=wl.replicas + rng.randint(3, 6),
        target_cpu=rng.choice((70, 75, 80)),
        utilization=rng.randint(30, 60),
        current=wl.replicas,
        last_scale=last,
        history=[(last, wl.replicas)],
    )


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
