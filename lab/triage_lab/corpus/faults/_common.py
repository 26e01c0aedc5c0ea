"""Pieces several fault families share: how callers complain, how a broken container looks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from triage_lab.corpus import log_lines as L
from triage_lab.corpus.changes import crashloop
from triage_lab.corpus.model import Pod, Workload
from triage_lab.corpus.world import World, sec


def symptoms(w: World, path: Sequence[str], when: dict[str, datetime], signal: str) -> None:
    """The SLO alert on the entry service, and sometimes one more on the hop below it."""
    w.symptom(path[-1], signal, when[path[-1]])
    if len(path) >= 3 and w.rng.random() < 0.4:
        w.symptom(path[-2], signal, when[path[-2]])


def pod_ips(w: World, svc: str) -> list[str]:
    return [p.ip for p in w.workloads[svc].pods if p.ip] or [w.cluster_ips.get(svc, "10.0.0.9")]


def refused(w: World, callee: str) -> Callable[[], str]:
    port = w.ports.get(callee, 8080)
    options = (
        f"dial tcp {{ip}}:{port}: connect: connection refused",
        "upstream connect error or disconnect/reset before headers. reset reason: connection "
        "failure, transport failure reason: delayed connect error: 111",
        f"read tcp {{me}}:{{n}}->{{ip}}:{port}: read: connection reset by peer",
    )

    def msg() -> str:
        text = w.rng.choice(options)
        text = text.replace("{ip}", w.rng.choice(pod_ips(w, callee)))
        me = f"10.{100 + w.rng.randrange(4)}.0.{w.rng.randrange(2, 250)}"
        text = text.replace("{me}", me)
        return f"call to {callee} failed: " + L.fill(text, w.rng)

    return msg


def overloaded(w: World, svc: str, start: datetime) -> None:
    """The pods left serving after a stalled rollout carry all the traffic."""
    w.shift(svc, "cpu", start, mul=1.7)
    serving = [p for p in w.workloads[svc].pods if p.ready and p.running(start)]
    w.repeat(
        svc,
        start,
        [
            "request queue full ({d} waiting), rejecting with 503",
            "slow request: handler took {ms}ms",
        ],
        level="warn",
        every=(15, 60),
        pods=serving,
    )


def at_capacity(
    w: World, target: str, up: list[str], start: datetime, lat: float, err: float
) -> None:
    """A workload that cannot grow any further: slower and shedding load from ``start``, as
    its callers up to the entry see it."""
    rng = w.rng
    w.shift(target, "p99", start, mul=lat)
    w.shift(target, "err", start, add=err)
    if w.workloads[target].current.cpu_limit:
        w.shift(target, "thr", start, to=rng.uniform(0.3, 0.5))
    w.repeat(
        target,
        start,
        ["request queue depth {d} above 100, shedding load", "slow request: handler took {ms}ms"],
        level="warn",
        every=(15, 50),
    )
    when = w.propagate(up, start, err=err, lat=lat)
    if len(up) > 1:
        caller_logs(w, up, when, timeouts(w, target, rng.choice((1000, 2000))), level="warn")
    symptoms(w, up, when, "latency")


def system_oom(w: World, wl: Workload, kills: dict[str, list[datetime]]) -> None:
    """The kernel's SystemOOM events on each node where ``wl``'s containers were killed."""
    proc = {"java": "java", "python": "gunicorn"}.get(wl.style, wl.name.split("-")[0])
    for node, ends in sorted(kills.items()):
        if not ends:
            continue
        w.ev(
            "Node",
            node,
            "SystemOOM",
            f"System OOM encountered, victim process: {proc}, pid: {w.rng.randint(3000, 90000)}",
            min(ends),
            last=max(ends),
            count=len(ends),
            warning=True,
            ns="default",
            host=node,
        )


def fewer_pods(w: World, svc: str, start: datetime) -> list[str]:
    """Fewer pods serve after the stalled rollout: errors and latency up to the entry."""
    rng = w.rng
    err, lat = rng.uniform(0.07, 0.12), rng.uniform(2.2, 3.0)
    w.shift(svc, "err", start, add=err)
    w.shift(svc, "p99", start, mul=lat)
    overloaded(w, svc, start)
    path = w.path_to_entry(svc)
    when = w.propagate(path, start, err=err * 0.9, lat=lat)
    caller_logs(w, path, when, upstream_5xx(svc) + timeouts(w, svc, 1000))
    symptoms(w, path, when, "errors")
    return path


def oom_killed(
    w: World,
    wl: Workload,
    p: Pod,
    kills: dict[str, list[datetime]],
    *,
    run: tuple[float, float],
    first_end: datetime | None = None,
) -> tuple[list[tuple[datetime, datetime]], list[datetime]]:
    """``p`` of ``wl``'s current revision OOM-killed again and again from its start: its runs,
    and its kills so far (also recorded under its node in ``kills``, for ``system_oom``)."""
    assert p.started is not None
    runs = crashloop(
        w,
        wl,
        p,
        p.started,
        first_end=first_end,
        startup=startup_lines(wl, wl.current.tag),
        crash=[],
        reason="OOMKilled",
        exit_code=137,
        run=run,
        ready_when_running=True,
    )
    p.quiet = False
    ends = [e for _, e in runs if e <= w.now]
    kills.setdefault(p.node or "", []).extend(ends)
    return runs, ends


def timeouts(w: World, callee: str, budget_ms: int) -> list[str]:
    return [
        f"request to {callee} timed out after {budget_ms}ms: context deadline exceeded",
        f"{callee} call failed after 2 retries: context deadline exceeded",
    ]


def upstream_5xx(callee: str) -> list[str]:
    return [
        f"upstream {callee} returned 503 Service Unavailable",
        f"request to {callee} failed: status 502 Bad Gateway",
        f"{callee} call failed after 2 retries: status 503",
    ]


def degrade(
    w: World,
    svc: str,
    start: datetime,
    err: float,
    lat: float,
    direct: Sequence[str] | Callable[[], str],
    *,
    path: list[str] | None = None,
    spread: float = 0.9,
) -> list[str]:
    """``svc`` fails from ``start`` (errors up by ``err``, latency times ``lat``) and it travels
    up to the entry service: callers' logs, the SLO alerts. Returns the path it took."""
    w.shift(svc, "err", start, add=err)
    w.shift(svc, "p99", start, mul=lat)
    path = path or w.path_to_entry(svc)
    when = w.propagate(path, start, err=err * spread, lat=lat)
    caller_logs(w, path, when, direct)
    symptoms(w, path, when, "errors")
    return path


def caller_logs(
    w: World,
    path: Sequence[str],
    when: dict[str, datetime],
    direct: Sequence[str] | Callable[[], str],
    *,
    level: str = "error",
    every: tuple[int, int] = (12, 45),
) -> None:
    """The first caller prints the fault's own message; callers further up only see 5xx."""
    for k in range(1, len(path)):
        svc, callee = path[k], path[k - 1]
        msgs = direct if k == 1 else upstream_5xx(callee)
        w.repeat(svc, when[svc], msgs, level=level, every=every)


def image_pull_backoff(w: World, wl: Workload, p: Pod, image: str) -> None:
    p.started, p.ready, p.quiet = None, False, True
    p.ready_changed = p.created
    p.logs = []
    p.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
    t, n = p.created + sec(1), max(2, int((w.now - p.created).total_seconds() // 90))
    last = w.now - sec(w.rng.uniform(5, 60))
    reg = image.rsplit(":", 1)[0]
    not_found = (
        f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and '
        f'unpack image "{image}": failed to resolve reference "{image}": {reg}: not found'
    )
    # (reason, message, seconds after t, repeats per pull attempt, warning)
    for reason, message, after, per, warning in (
        ("Pulling", f'Pulling image "{image}"', 0.0, 1, False),
        ("Failed", not_found, 1.2, 1, True),
        ("Failed", "Error: ErrImagePull", 1.3, 1, True),
        ("BackOff", f'Back-off pulling image "{image}"', 2.0, 3, False),
        ("Failed", "Error: ImagePullBackOff", 2.0, 3, True),
    ):
        w.ev(
            "Pod",
            p.name,
            reason,
            message,
            t + sec(after),
            last=last,
            count=n * per,
            warning=warning,
            host=p.node,
            ns=wl.namespace,
        )


def config_error(w: World, wl: Workload, p: Pod, message: str) -> None:
    """CreateContainerConfigError: kubelet cannot build the container (missing Secret/key)."""
    p.started, p.ready, p.quiet = None, False, True
    p.ready_changed = p.created
    p.logs = []
    p.waiting = ("CreateContainerConfigError", message)
    n = max(2, int((w.now - p.created).total_seconds() // 20))
    w.ev(
        "Pod",
        p.name,
        "Pulled",
        f'Container image "{wl.repo}:{wl.revision(p.revision).tag}" already present on machine',
        p.created + sec(1),
        last=w.now - sec(5),
        count=n,
        host=p.node,
        ns=wl.namespace,
    )
    w.ev(
        "Pod",
        p.name,
        "Failed",
        f"Error: {message}",
        p.created + sec(1.1),
        last=w.now - sec(5),
        count=n,
        warning=True,
        host=p.node,
        ns=wl.namespace,
    )


def startup_lines(wl: Workload, tag: str) -> list[str]:
    if wl.style == "java":
        return [
            f"Starting Application v{tag} using Java 21.0.3 with PID 1",
            'The following 1 profile is active: "prod"',
            f"Tomcat initialized with port {wl.port} (http)",
        ]
    if wl.style == "python":
        return ["Started server process [1]", "Waiting for application startup."]
    return [f"starting {wl.name} {tag}", f"loading configuration from /etc/{wl.name}/config.yaml"]


def crash_lines(w: World, wl: Workload, kind: str, detail: str) -> tuple[list[str], int]:
    """What a process prints as it dies at startup, in its stack's own words; and exit code."""
    rng = w.rng
    if kind == "panic":
        if wl.style == "java":
            return [
                "***************************",
                "APPLICATION FAILED TO START",
                "***************************",
                "",
                "Description:",
                "",
                f"Parameter 0 of constructor in com.example.{wl.name.replace('-', '')}.service."
                f"CoreService required a bean of type 'com.example.clients.{detail}Client' that "
                "could not be found.",
            ], 1
        if wl.style == "python":
            return [
                "Traceback (most recent call last):",
                '  File "/app/main.py", line 14, in <module>',
                "    from app.service import create_app",
                '  File "/app/app/service.py", line 7, in <module>',
                f"    from app.clients import {detail}Client",
                f"ImportError: cannot import name '{detail}Client' from 'app.clients' "
                "(/app/app/clients/__init__.py)",
            ], 1
        pc = rng.randrange(0x1000000, 0x2000000)
        return [
            "panic: runtime error: invalid memory address or nil pointer dereference",
            f"[signal SIGSEGV: segmentation violation code=0x1 addr=0x28 pc={pc:#x}]",
            "",
            "goroutine 1 [running]:",
            f"main.(*{detail}Client).Register(0x0, 0xc0001a2000)",
            f"\t/src/internal/clients/{detail.lower()}.go:{rng.randint(40, 200)} +0x3c",
            "main.main()",
            f"\t/src/cmd/server/main.go:{rng.randint(40, 120)} +0x2b5",
        ], 2
    # a setting the new code requires and nothing provides
    if wl.style == "java":
        return [
            "***************************",
            "APPLICATION FAILED TO START",
            "***************************",
            "",
            "Description:",
            "",
            f"Binding to target [Bindings@{rng.randrange(16**6):x}] failed:",
            "",
            f"    Property: app.{detail.lower()}",
            "    Value: null",
            "    Reason: must not be null",
        ], 1
    if wl.style == "python":
        return [
            "Traceback (most recent call last):",
            '  File "/app/main.py", line 9, in <module>',
            "    settings = Settings()",
            "pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings",
            detail.lower(),
            "  Field required [type=missing, input_value={...}, input_type=dict]",
        ], 1
    return [
        L.fmt(
            wl.style,
            "fatal",
            f"invalid configuration: required setting {detail.upper()} is not set",
            rng,
        )
    ], 1
