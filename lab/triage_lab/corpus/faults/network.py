"""Faults between services: a dependency that goes down, name resolution, a NetworkPolicy."""

from __future__ import annotations

import hashlib
from datetime import datetime

from triage_lab.corpus import log_lines as L
from triage_lab.corpus.changes import crashloop, gitops_sync
from triage_lab.corpus.cluster_platform import COREFILE
from triage_lab.corpus.faults._common import caller_logs, symptoms, upstream_5xx
from triage_lab.corpus.kube_templates import template_hash
from triage_lab.corpus.model import PolicyObj
from triage_lab.corpus.world import World, mib, sec


def _by_style(style: str, go: str, java: str, python: str) -> str:
    return {"java": java, "python": python}.get(style, go)


def dependency_failure(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("database", "cache", "downstream")[variant % 3]
    t0 = w.onset
    if mode == "database":
        dep = w.db
        wl = w.workloads[dep]
        p = wl.pods[0]
        version = wl.current.tag
        startup = [
            f"starting PostgreSQL {version} on x86_64-pc-linux-gnu, compiled by gcc (Debian "
            "12.2.0-14) 12.2.0, 64-bit",
            'listening on IPv4 address "0.0.0.0", port 5432',
            "database system was interrupted; last known up at {now}",
            "database system was not properly shut down; automatic recovery in progress",
            "redo starts at 3/2A0001F8",
        ]
        crash = [
            L.fmt(
                "postgres",
                "fatal",
                f'PANIC:  could not write to file "pg_wal/xlogtemp.{rng.randint(30, 90)}": '
                "No space left on device",
                rng,
            ).replace("FATAL:  PANIC:", "PANIC:"),
            L.fmt(
                "postgres",
                "info",
                "startup process (PID 27) was terminated by signal 6: Aborted",
                rng,
            ),
            L.fmt("postgres", "info", "aborting startup due to startup process failure", rng),
            L.fmt("postgres", "info", "database system is shut down", rng),
        ]
        crashloop(
            w,
            wl,
            p,
            p.started or p.created,
            first_end=t0,
            startup=startup,
            crash=crash,
            exit_code=1,
            run=(3, 9),
        )
        p.logs = [(t, m.replace("{now}", t0.strftime("%Y-%m-%d %H:%M:%S UTC"))) for t, m in p.logs]
        p.prev_logs = [
            (t, m.replace("{now}", t0.strftime("%Y-%m-%d %H:%M:%S UTC"))) for t, m in p.prev_logs
        ]
        w.shift(dep, "err", t0, to=0.95, ramp=20)
        w.shift(dep, "rps", t0, mul=0.03, ramp=20)
        ip = w.cluster_ips[dep]

        def message(style: str, caller: str) -> str:
            user = caller.replace("-", "_")
            return _by_style(
                style,
                f"failed to connect to `host={dep}.{w.ns}.svc.cluster.local user={user} "
                f"database={user}`: dial error (dial tcp {ip}:5432: connect: connection refused)",
                f"org.postgresql.util.PSQLException: Connection to {dep}.{w.ns}.svc.cluster.local:"
                "5432 refused. Check that the hostname and port are correct and that the "
                "postmaster is accepting TCP/IP connections.",
                f'psycopg.OperationalError: connection failed: connection to server at "{ip}", '
                "port 5432 failed: Connection refused",
            )

        detail, kind = "database", "StatefulSet"
    elif mode == "cache":
        dep = w.cache
        wl = w.workloads[dep]
        for rev in wl.revisions:
            rev.args = ["--maxmemory", "768mb", "--maxmemory-policy", "noeviction"]
            rev.hash = template_hash(wl, rev)
        full = mib("768Mi")
        lead = w.start + (t0 - w.start) * rng.uniform(0.1, 0.4)
        floor = wl.base["mem"]

        def filling(i: int, v: float) -> float:
            t = w.times[i]
            if t < lead:
                return v
            f = min(1.0, (t - lead) / (t0 - lead))
            return floor + (full * 0.995 - floor) * f

        wl.pods[0].over["mem"] = filling
        w.shift(dep, "err", t0, to=rng.uniform(0.3, 0.5), ramp=30)

        def message(style: str, caller: str) -> str:
            oom = "OOM command not allowed when used memory > 'maxmemory'."
            return _by_style(
                style,
                f"cache write failed: {oom}",
                f"io.lettuce.core.RedisCommandExecutionException: {oom}",
                f"redis.exceptions.OutOfMemoryError: {oom}",
            )

        detail, kind = "cache", "StatefulSet"
    else:
        dep = rng.choice(w.leaves)
        wl = w.workloads[dep]
        kind, detail = "Deployment", "downstream"
        w.shift(dep, "p99", t0, mul=rng.uniform(15, 30), ramp=120)
        w.shift(dep, "err", t0, add=rng.uniform(0.4, 0.6), ramp=120)
        w.shift(dep, "rps", t0, mul=0.4, ramp=120)
        w.shift(dep, "cpu", t0, mul=0.35, ramp=120)
        w.repeat(
            dep,
            t0 + sec(30),
            [
                _by_style(
                    wl.style,
                    "http: Accept error: accept tcp [::]:8080: accept4: too many open files; "
                    "retrying in 1s",
                    "java.util.concurrent.RejectedExecutionException: Task rejected from "
                    "ThreadPoolExecutor[Running, pool size = 200, active threads = 200, queued "
                    "tasks = 1000]",
                    "database pool exhausted: QueuePool limit of size 20 overflow 10 reached, "
                    "connection timed out, timeout 30.00",
                )
            ],
            every=(5, 25),
        )

        def message(style: str, caller: str) -> str:
            return _by_style(
                style,
                f"request to {dep} timed out after 2000ms: context deadline exceeded",
                f"java.net.SocketTimeoutException: Read timed out (calling {dep})",
                f"httpx.ReadTimeout: timed out (calling {dep})",
            )

    path = w.path_to_entry(dep)
    err = rng.uniform(0.25, 0.45)
    first = path[1]
    for c in w.callers(dep):
        t = t0 + sec(rng.uniform(10, 40))
        level = err if c == first else err * 0.4
        w.shift(c, "err", t, add=level)
        w.shift(c, "p99", t, mul=1.8 if c == first else 1.2)
        w.repeat(c, t, [message(w.workloads[c].style, c)], every=(6, 30))
    when = w.propagate(path[1:], t0 + sec(30), err=err * 0.85, lat=1.8)
    when[dep] = t0
    caller_logs(w, path[1:], when, upstream_5xx(first))
    symptoms(w, path, when, "errors")
    w.set_truth(
        kind,
        dep,
        dep,
        "dependency_failure",
        detail,
        propagation=path,
        aliases=[f"{dep}-0"] if kind == "StatefulSet" else [],
    )


def dns_failure(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("upstream", "loop", "zone")[variant % 3]
    t0 = w.onset
    dns = w.workloads["coredns"]
    cm = w.configs["coredns"]
    dns_ip = w.cluster_ips["coredns"]
    via_git = rng.random() < 0.5
    cm.manager = w.gitops_manager if via_git else "kubectl-edit"
    cm.changed = t0
    if via_git:
        gitops_sync(w, t0, [("ConfigMap", "kube-system", "coredns")])
    reload = t0 + sec(rng.uniform(15, 45))
    sha = hashlib.sha512(f"{w.key}{mode}".encode()).hexdigest()
    for p in dns.pods:
        if p.running(reload):
            w.say(p, reload, "info", "Reloading")
            w.say(
                p, reload + sec(0.4), "info", f"plugin/reload: Running configuration SHA512 = {sha}"
            )
    if mode == "upstream":
        resolvers = f"10.{rng.randrange(16, 40)}.0.53 10.{rng.randrange(16, 40)}.1.53"
        cm.data = {
            "Corefile": COREFILE.replace("forward . /etc/resolv.conf", f"forward . {resolvers}")
        }
        svc = w.leaves[-1]
        host = w.workloads[svc].external or "api.example.com"
        upstream = resolvers.split()[0]
        for p in dns.pods:
            w.say(p, reload + sec(0.5), "info", "Reloading complete")
        w.repeat(
            "coredns",
            reload + sec(2),
            [
                f"plugin/errors: 2 {host}. A: read udp {{ip}}:{{n}}->{upstream}:53: i/o timeout",
                f"plugin/errors: 2 {host}. AAAA: read udp {{ip}}:{{n}}->{upstream}:53: i/o timeout",
            ],
            every=(5, 20),
        )
        w.shift("coredns", "err", reload, to=rng.uniform(0.15, 0.3), ramp=30)
        w.shift("coredns", "p99", reload, mul=80, ramp=30)
        msg = _by_style(
            w.workloads[svc].style,
            f'Post "https://{host}/v1/requests": dial tcp: lookup {host} on {dns_ip}:53: '
            "server misbehaving",
            f"java.net.UnknownHostException: {host}: Temporary failure in name resolution",
            "httpx.ConnectError: [Errno -3] Temporary failure in name resolution",
        )
        affected = [svc]
    elif mode == "loop":
        cm.data = {
            "Corefile": COREFILE.replace("forward . /etc/resolv.conf", f"forward . {dns_ip}")
        }
        fatal = (
            'plugin/loop: Loop (127.0.0.1:{n} -> :53) detected for zone ".", see '
            'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO '
            f'{rng.randrange(10**18, 10**19)}.{rng.randrange(10**18, 10**19)}."'
        )
        version = dns.current.tag
        for p in dns.pods:
            if not p.running(reload):
                continue
            crashloop(
                w,
                dns,
                p,
                p.started or p.created,
                first_end=reload + sec(1),
                startup=[".:53", f"CoreDNS-{version.lstrip('v')}", "linux/amd64, go1.21.5"],
                crash=[L.fmt("coredns", "fatal", L.fill(fatal, rng), rng)],
                run=(0.5, 2),
            )
        w.shift("coredns", "rps", reload, mul=0.02, ramp=20)
        w.shift("coredns", "err", reload, to=0.9, ramp=20)
        svc = rng.choice(w.mids)
        callee = rng.choice(w.callees(svc))
        me = rng.choice([p.ip for p in w.workloads[svc].pods])
        msg = (
            f"dial tcp: lookup {callee}.{w.ns}.svc.cluster.local on {dns_ip}:53: read udp "
            f"{me}:{{n}}->{dns_ip}:53: i/o timeout"
        )
        affected = [svc, *[m for m in w.mids if m != svc]]
    else:
        cm.data = {
            "Corefile": COREFILE.replace("kubernetes cluster.local", "kubernetes cluster.internal")
        }
        for p in dns.pods:
            w.say(p, reload + sec(0.5), "info", "Reloading complete")
        svc = rng.choice(w.mids)
        callee = rng.choice(w.callees(svc))
        name = f"{callee}.{w.ns}.svc.cluster.local"
        w.repeat(
            "coredns",
            reload + sec(2),
            [
                f'{{ip}}:{{n}} - {{n}} "A IN {name}. udp 64 false 1232" NXDOMAIN qr,rd,ra 140 '
                "0.00{d}s"
            ],
            level="info",
            every=(3, 15),
        )
        w.shift("coredns", "err", reload, to=rng.uniform(0.3, 0.5), ramp=30)
        msg = _by_style(
            w.workloads[svc].style,
            f"dial tcp: lookup {name} on {dns_ip}:53: no such host",
            f"java.net.UnknownHostException: {name}",
            f"httpx.ConnectError: [Errno -2] Name or service not known ({name})",
        )
        affected = [svc, *[m for m in w.mids if m != svc and rng.random() < 0.5]]
    err = rng.uniform(0.3, 0.5)
    start = reload + sec(rng.uniform(5, 30))
    for k, s in enumerate(affected):
        w.shift(s, "err", start, add=err if k == 0 else err * 0.25, ramp=120)
        if k == 0:
            w.repeat(s, start, [msg], every=(6, 25))
    path = ["coredns", *w.path_to_entry(svc)]
    when = w.propagate(path[1:], start, err=err * 0.85, lat=1.3)
    when["coredns"] = reload
    caller_logs(w, path[1:], when, upstream_5xx(svc))
    symptoms(w, path, when, "errors")
    w.set_truth(
        "ConfigMap",
        "coredns",
        "coredns",
        "dns_failure",
        mode,
        namespace="kube-system",
        propagation=path,
        aliases=["kube-dns", "coredns"],
    )


def _apply_policies(w: World, at: datetime, target: str, names: list[str]) -> None:
    """The objects the sync applied: the faulty one admits only the team's namespaces to
    ``target`` (its own callers are not among them); the others are harmless companions."""
    for name in names:
        if name == "allow-prometheus-scrape":
            selector: dict[str, str] = {}
            sources: list[dict[str, object]] = [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ]
        elif name == "allow-ingress-controller":
            selector = {"app": w.entry}
            sources = [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                    }
                }
            ]
        else:
            selector = {"app": target}
            sources = [{"namespaceSelector": {"matchLabels": {"team": w.team}}}]
        old = w.policies.get(name)
        created = old.created if old else at
        w.policies[name] = PolicyObj(
            name, w.ns, selector, created, at, w.gitops_manager, ingress_from=sources
        )


def network_policy(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("database", "cache", "service")[variant % 3]
    target = {"database": w.db, "cache": w.cache}.get(mode) or rng.choice(w.leaves)
    t0 = w.onset
    name = rng.choice(
        (
            f"{target}-ingress",
            f"restrict-{target}",
            f"{target}-allow-{w.team}",
            "deny-cross-team-ingress",
        )
    )
    objects = [("NetworkPolicy", w.ns, name)]
    if rng.random() < 0.5:
        objects.append(
            (
                "NetworkPolicy",
                w.ns,
                rng.choice(("allow-prometheus-scrape", "allow-ingress-controller")),
            )
        )
    gitops_sync(w, t0, objects)
    _apply_policies(w, t0, target, [n for _, _, n in objects])
    callers = w.callers(target)
    blocked = callers if rng.random() < 0.5 else callers[:1]
    ip, port = w.cluster_ips[target], w.ports[target]
    err = rng.uniform(0.3, 0.5)
    for c in blocked:
        style = w.workloads[c].style
        msg = _by_style(
            style,
            f"dial tcp {ip}:{port}: i/o timeout",
            "java.net.SocketTimeoutException: Connect timed out"
            if mode == "service"
            else "org.postgresql.util.PSQLException: The connection attempt failed."
            if mode == "database"
            else "io.lettuce.core.RedisConnectionException: Unable to connect to "
            f"{target}.{w.ns}.svc.cluster.local/{ip}:{port}",
            "httpx.ConnectTimeout: timed out"
            if mode == "service"
            else "psycopg.OperationalError: connection timeout expired"
            if mode == "database"
            else f"redis.exceptions.TimeoutError: Timeout connecting to server {target}:{port}",
        )
        t = t0 + sec(rng.uniform(20, 90))
        w.repeat(c, t, [msg], every=(6, 30))
        w.edge(c, target, "err", t, to=0.97, ramp=120)
        w.shift(c, "err", t, add=err if c == callers[0] else err * 0.6, ramp=120)
        w.shift(c, "p99", t, mul=rng.uniform(3, 5), ramp=120)
    w.shift(target, "rps", t0 + sec(30), mul=0.1 if blocked == callers else 0.55, ramp=120)
    path = w.path_to_entry(target)
    when = w.propagate(path[1:], t0 + sec(60), err=err * 0.85, lat=3.0)
    when[target] = t0
    caller_logs(w, path[1:], when, upstream_5xx(path[1]))
    symptoms(w, path, when, "errors")
    w.set_truth(
        "NetworkPolicy", name, target, "network_policy", mode, propagation=path, aliases=[target]
    )
