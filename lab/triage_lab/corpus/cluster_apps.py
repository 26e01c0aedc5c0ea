"""The application services before the incident: Deployments, revision history, pods, IPs."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from triage_lab.corpus.cluster_config import add_cert, add_secret, set_config
from triage_lab.corpus.kube import SAFE
from triage_lab.corpus.model import Pod, Revision, Workload
from triage_lab.corpus.units import sec

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def assign_cluster_ip(w: World, name: str) -> str:
    rng = w.rng
    prefix = "172.20" if w.cluster.flavor == "eks" else "10.96"
    ip = f"{prefix}.{rng.randrange(1, 255)}.{rng.randrange(2, 254)}"
    w.cluster_ips[name] = ip
    return ip


def add_app(w: World, name: str, role: str, style: str, external: str | None, tls: bool) -> None:
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
            secrets.append(add_secret(w, f"{name}-db-credentials", ["DB_USER", "DB_PASSWORD"]))
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
        secrets.append(add_secret(w, f"{name}-provider-credentials", ["API_KEY", "API_SECRET"]))
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
    add_pods(w, wl)
    w.baseline(wl)
    assign_cluster_ip(w, name)


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


def add_pods(w: World, wl: Workload) -> None:
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
