"""Faults in what a Deployment reads: its ConfigMap, its Secrets, its certificate."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

import yaml

from triage_lab.corpus import log_lines as L
from triage_lab.corpus.changes import crashloop, gitops_sync, reloader_rollout, rollout
from triage_lab.corpus.cluster_config import set_config
from triage_lab.corpus.faults._common import (
    caller_logs,
    config_error,
    degrade,
    overloaded,
    refused,
    startup_lines,
    symptoms,
    timeouts,
)
from triage_lab.corpus.model import Pod, Revision
from triage_lab.corpus.noise import bump
from triage_lab.corpus.world import World, sec
from triage_lab.fakes.kubernetes_objects import ts


def _apply_config(
    w: World, svc: str, cfg: dict[str, Any], text: str | None, *, healthy: bool
) -> tuple[str, Revision, list[Pod]]:
    """Edit the ConfigMap at the onset and get it into the pods: kustomize rolls a new name,
    an in-place edit needs ``kubectl rollout restart``."""
    rng = w.rng
    wl = w.workloads[svc]
    t0 = w.onset
    if w.kustomize:
        cm = set_config(w, wl, cfg, t0, text=text)
        gitops_sync(w, t0, [("ConfigMap", w.ns, cm.name), ("Deployment", w.ns, svc)])
        rev, pods = rollout(
            w, wl, t0 + sec(rng.uniform(2, 6)), healthy=healthy, via="none", config=cm.name
        )
    else:
        manual = rng.random() < 0.5
        manager = "kubectl-edit" if manual else w.gitops_manager
        cm = set_config(w, wl, cfg, t0, text=text, manager=manager)
        if not manual:
            gitops_sync(w, t0, [("ConfigMap", w.ns, cm.name)])
        at = t0 + sec(rng.uniform(40, 150))
        rev, pods = rollout(
            w,
            wl,
            at,
            healthy=healthy,
            via="kubectl",
            annotations={"kubectl.kubernetes.io/restartedAt": ts(at)},
        )
    return cm.name, rev, pods


def config_change(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("parse", "timeout", "endpoint")[variant % 3]
    apps = {w.entry, *w.mids, *w.leaves}
    if mode == "parse":
        svc = rng.choice([*w.mids, *w.leaves])
    else:
        svc = rng.choice([m for m in w.mids if any(c in apps for c in w.callees(m))])
    wl = w.workloads[svc]
    wl.max_unavailable = "50%"
    cfg: dict[str, Any] = copy.deepcopy(w.app_config[svc])
    text = None
    callee = rng.choice([c for c in w.callees(svc) if c in apps] or [svc])
    if mode == "parse":
        good = yaml.safe_dump(cfg, sort_keys=True, default_flow_style=False).splitlines()

        def indent(line: str) -> int:
            return len(line) - len(line.lstrip())

        k = next(
            i
            for i in range(1, len(good))
            if indent(good[i]) == indent(good[i - 1]) > 0
            and ": " in good[i]
            and ": " in good[i - 1]
        )
        good[k] = " " + good[k]  # one space too many: the YAML no longer parses
        text = "\n".join(good) + "\n"
        line, column = k + 1, len(good[k].split(":")[0]) + 1
        detail = {
            "java": "org.yaml.snakeyaml.scanner.ScannerException: mapping values are not allowed "
            f"here in 'reader', line {line}, column {column}",
            "python": "yaml.scanner.ScannerError: mapping values are not allowed here in "
            f'"/etc/{svc}/config.yaml", line {line}, column {column}',
        }.get(
            wl.style,
            f"failed to load /etc/{svc}/config.yaml: yaml: line {line}: mapping "
            "values are not allowed in this context",
        )
        crash = [L.fmt(wl.style, "fatal", detail, rng)]
        if wl.style in ("java", "python"):
            crash = [L.fmt(wl.style, "error", "Application run failed", rng), detail]
    elif mode == "timeout":
        budget = rng.choice((25, 50, 80))
        cfg["upstreams"][callee]["timeout"] = f"{budget}ms"
    else:
        port = rng.choice((9090, 8081, 50051))
        cfg["upstreams"][callee]["address"] = f"{callee}.{w.ns}.svc.cluster.local:{port}"
    name, rev, pods = _apply_config(w, svc, cfg, text, healthy=mode != "parse")
    start = rev.created + sec(rng.uniform(10, 30))
    direct: list[str] | Callable[[], str]
    if mode == "parse":
        for p in pods:
            crashloop(
                w,
                wl,
                p,
                p.started or p.created,
                startup=startup_lines(wl, rev.tag),
                crash=crash,
                exit_code=1,
            )
        err, lat = rng.uniform(0.12, 0.25), rng.uniform(1.5, 2.2)
        direct = refused(w, svc)
    elif mode == "timeout":
        err, lat = rng.uniform(0.25, 0.45), rng.uniform(0.3, 0.6)
        w.repeat(
            svc,
            start,
            [
                f"request to {callee} timed out after {budget}ms: context deadline exceeded",
                f"{callee} call failed after 2 retries: context deadline exceeded",
            ],
            every=(8, 30),
        )
        w.edge(svc, callee, "err", start, to=err * 1.4, ramp=120)
        w.edge(svc, callee, "rps", start, mul=2.2, ramp=120)  # the retries
        direct = upstream_errors(svc)
    else:
        err, lat = rng.uniform(0.3, 0.5), 1.2
        ip = w.cluster_ips[callee]
        w.repeat(
            svc,
            start,
            [f"call to {callee} failed: dial tcp {ip}:{port}: connect: connection refused"],
            every=(8, 30),
        )
        w.edge(svc, callee, "err", start, to=0.98, ramp=120)
        w.shift(callee, "rps", start, mul=0.5, ramp=120)
        direct = upstream_errors(svc)
    w.shift(svc, "err", start, add=err, ramp=120)
    if lat > 1:
        w.shift(svc, "p99", start, mul=lat, ramp=120)
    elif lat < 1:
        w.shift(svc, "p99", start, mul=lat, ramp=120)  # failing fast is quicker than working
    path = w.path_to_entry(svc)
    when = w.propagate(path, start, err=err * 0.85, lat=max(lat, 1.0))
    caller_logs(w, path, when, direct)
    symptoms(w, path, when, "errors")
    w.set_truth(
        "ConfigMap",
        name,
        svc,
        "config_change",
        mode,
        propagation=path,
        aliases=[svc, f"{svc}-config"],
    )


def upstream_errors(svc: str) -> list[str]:
    return [
        f"upstream {svc} returned 500 Internal Server Error",
        f"request to {svc} failed: status 502 Bad Gateway",
    ]


def secret_change(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("rotated", "missing", "apikey")[variant % 3]
    t0 = w.onset
    if mode == "missing":
        svc = rng.choice([*w.mids, *w.leaves])
        wl = w.workloads[svc]
        wl.max_unavailable = "50%"
        secret = f"{svc}-" + rng.choice(
            ("signing-key", "feature-flags-token", "oauth-client", "kafka-credentials")
        )
        rev, pods = rollout(
            w,
            wl,
            t0,
            healthy=False,
            tag=bump(wl.current.tag, rng),
            env_secrets=[*wl.current.env_secrets, secret],
        )
        for p in pods:
            config_error(w, wl, p, f'secret "{secret}" not found')
        start = t0 + sec(rng.uniform(5, 20))
        overloaded(w, svc, start)
        err, lat = rng.uniform(0.07, 0.12), rng.uniform(2.2, 3.0)
        direct: list[str] | Callable[[], str] = [
            f"upstream {svc} returned 503 Service Unavailable",
            *timeouts(w, svc, rng.choice((800, 1000))),
        ]
        path = w.path_to_entry(svc)
        aliases = [svc, f"{svc}-{rev.hash}"]
    else:
        if mode == "rotated":
            svc = rng.choice([a for a in w.callers(w.db) if a != w.entry])
            secret = f"{svc}-db-credentials"
        else:
            svc = w.leaves[-1]
            secret = f"{svc}-provider-credentials"
        at = t0 + sec(rng.uniform(8, 40))
        reloader_rollout(w, svc, secret, at, changed=t0)
        wl = w.workloads[svc]
        start = at + sec(rng.uniform(8, 20))
        err, lat = rng.uniform(0.35, 0.55), 1.1
        user = svc.replace("-", "_")
        if mode == "rotated":
            msg = {
                "java": f"org.postgresql.util.PSQLException: FATAL: password authentication failed "
                f'for user "{user}"',
                "python": f"psycopg.OperationalError: connection failed: FATAL:  password "
                f'authentication failed for user "{user}"',
            }.get(
                wl.style,
                f"failed to connect to `host={w.db}.{w.ns}.svc.cluster.local "
                f"user={user} database={user}`: failed SASL auth (FATAL: password "
                f'authentication failed for user "{user}" (SQLSTATE 28P01))',
            )
            w.repeat(
                w.db,
                start,
                [
                    f'FATAL:  password authentication failed for user "{user}"',
                    'DETAIL:  Connection matched pg_hba.conf line 99: "host all '
                    'all all scram-sha-256"',
                ],
                level="info",
                every=(6, 25),
            )
            w.edge(svc, w.db, "err", start, to=0.95, ramp=90)
        else:
            host = wl.external or "api.example.com"
            msg = {
                "java": f"com.example.clients.ProviderException: {host} responded 401 "
                "Unauthorized: Invalid API Key provided",
            }.get(
                wl.style,
                f"provider call failed: POST https://{host}/v1/requests: 401 "
                'Unauthorized: {"error":{"type":"invalid_request_error","message":'
                '"Invalid API Key provided"}}',
            )
        w.repeat(svc, start, [msg], every=(6, 30))
        direct = upstream_errors(svc)
        path = w.path_to_entry(svc)
        aliases = [svc]
    degrade(w, svc, start, err, lat, direct, path=path, spread=0.85)
    w.set_truth("Secret", secret, svc, "secret_change", mode, propagation=path, aliases=aliases)


def certificate_expiry(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("serving", "database", "serving")[variant % 3]
    t0 = w.onset
    if mode == "database":
        svc = w.db
    else:
        svc = rng.choice([n for n in [*w.mids, *w.leaves] if w.workloads[n].current.tls_secret])
    wl = w.workloads[svc]
    secret = wl.current.tls_secret
    assert secret is not None
    obj = w.configs[secret]
    obj.changed = t0 - sec(90 * 86400)
    obj.created = min(obj.created, obj.changed)
    w.certs[secret] = t0
    expired = t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    callers = [c for c in w.callers(svc) if c in w.workloads]
    ramp = 300.0 if mode == "database" else 150.0  # pooled connections outlive the certificate
    start = t0 + sec(rng.uniform(5, 30))
    err = rng.uniform(0.3, 0.5)
    w.shift(svc, "rps", start, mul=0.15, ramp=ramp)
    when_first: dict[str, datetime] = {}
    for c in callers:
        style = w.workloads[c].style
        if mode == "database":
            msg = {
                "java": "org.postgresql.util.PSQLException: SSL error: PKIX path validation "
                "failed: java.security.cert.CertPathValidatorException: validity check failed",
                "python": "psycopg.OperationalError: connection failed: SSL error: certificate "
                "verify failed",
            }.get(
                style,
                f"failed to connect to `host={svc}.{w.ns}.svc.cluster.local`: tls error "
                f"(tls: failed to verify certificate: x509: certificate has expired or is "
                f"not yet valid: current time {{now}} is after {expired})",
            )
        else:
            msg = {
                "java": "javax.net.ssl.SSLHandshakeException: PKIX path validation failed: "
                "java.security.cert.CertPathValidatorException: validity check failed",
                "python": "httpx.ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                "failed: certificate has expired (_ssl.c:1006)",
            }.get(
                style,
                f'Post "https://{svc}.{w.ns}.svc:{wl.port}/api/v1/'
                f'{rng.choice(w.domain.nouns)}": tls: failed to verify certificate: x509: '
                f"certificate has expired or is not yet valid: current time {{now}} is "
                f"after {expired}",
            )
        t = start + sec(rng.uniform(0, 40))
        when_first[c] = t
        w.repeat(c, t, [msg], every=(6, 30))
        w.edge(c, svc, "err", t, to=0.97, ramp=ramp)
        w.shift(c, "err", t, add=err if c == callers[0] else err * 0.5, ramp=ramp)
    if mode == "database":
        w.repeat(
            svc,
            start,
            ["could not accept SSL connection: sslv3 alert certificate expired"],
            level="info",
            every=(5, 30),
        )
    else:
        server = {
            "java": "javax.net.ssl.SSLHandshakeException: Received fatal alert: "
            "certificate_unknown",
            "python": "ssl.SSLError: [SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad "
            "certificate (_ssl.c:2580)",
        }.get(
            wl.style, "http: TLS handshake error from {ip}:{n}: remote error: tls: bad certificate"
        )
        w.repeat(svc, start, [server], level="warn", every=(5, 30))
    path = w.path_to_entry(svc)
    when = w.propagate(path[1:], when_first[path[1]], err=err * 0.85)
    when[svc] = start
    caller_logs(w, path[1:], when, upstream_errors(path[1]))
    symptoms(w, path, when, "errors")
    w.set_truth("Secret", secret, svc, "certificate_expiry", mode, propagation=path, aliases=[svc])
