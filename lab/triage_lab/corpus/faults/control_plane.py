"""Faults in the cluster's own components: the scheduler or the controller-manager stops (a
static-pod manifest edit it cannot start with on kubeadm; on a managed control plane only its
leader Lease going stale shows it), or the CNI agent on one node does not come back after the
node rebooted. What the workloads see is what that component no longer does for them."""

from __future__ import annotations

from datetime import datetime

from triage_lab.corpus.cluster_apps import new_pod
from triage_lab.corpus.cluster_control_plane import components, crash_loop
from triage_lab.corpus.faults._common import caller_logs, overloaded, symptoms, upstream_5xx
from triage_lab.corpus.kube import uid
from triage_lab.corpus.kube_control_plane import (
    NS,
    Component,
    ControlPlane,
    klog,
)
from triage_lab.corpus.model import NodeInfo, Pod
from triage_lab.corpus.world import World, sec
from triage_lab.fakes.kubernetes_objects import ts

APP_ROLES = ("entry", "mid", "leaf")
# What the controller-manager runs: none of them reports once it is gone.
KCM_SOURCES = (
    "replicaset-controller",
    "deployment-controller",
    "node-controller",
    "horizontal-pod-autoscaler",
    "taint-eviction-controller",
    "endpoint-slice-controller",
)


def control_plane(w: World, variant: int) -> None:
    mode = ("scheduler", "controller-manager", "cni")[variant % 3]
    cp = components(w, "cilium" if mode == "cni" else w.rng.choice(("calico-node", "cilium")))
    w.control_plane = cp
    if mode == "cni":
        _cni(w, cp)
        return
    for wl in w.workloads.values():
        if wl.role in APP_ROLES:
            wl.rolled = True  # nothing else rolls out meanwhile: it could not have
    t0 = w.onset
    name = "kube-scheduler" if mode == "scheduler" else "kube-controller-manager"
    lease = next(x for x in cp.leases if x.name == name)
    lease.renewed = t0 - sec(w.rng.uniform(0.3, 2.0))
    if cp.node is not None:
        _static_crash(w, cp, cp.component(name), t0)
    for source in ("default-scheduler",) if mode == "scheduler" else KCM_SOURCES:
        cp.silent_since[source] = t0
    path = _drain(w, cp, t0 + sec(w.rng.uniform(60, 200)), mode == "scheduler")
    aliases = [p.name for p in cp.component(name).pods] if cp.node is not None else []
    w.set_truth(
        "Pod" if cp.node is not None else "Lease",
        name,
        name,
        "control_plane",
        mode,
        namespace=NS,
        propagation=[name, *path],
        aliases=aliases,
    )


def _static_crash(w: World, cp: ControlPlane, c: Component, t0: datetime) -> None:
    """An edit to the static-pod manifest: the kubelet replaces the pod with one that cannot
    start (a flag or config version this release no longer has)."""
    old = c.pods[0]
    old.created = t0  # the mirror pod is recreated with the manifest
    at = t0 + sec(0.3)
    if c.name == "kube-scheduler":
        c.command.append("--config=/etc/kubernetes/scheduler-config.yaml")
        startup = [klog(at, "I", "serving.go:386", "Generated self-signed cert in-memory")]
        crash = [
            klog(
                at + sec(0.4),
                "E",
                "run.go:72",
                '"command failed" err="no kind '
                '\\"KubeSchedulerConfiguration\\" is registered for version '
                '\\"kubescheduler.config.k8s.io/v1beta3\\" in scheme '
                '\\"pkg/scheduler/apis/config/scheme/scheme.go:30\\""',
            ),
        ]
    else:
        c.command.append("--pod-eviction-timeout=2m0s")
        startup = []
        crash = [
            "Error: unknown flag: --pod-eviction-timeout",
            "Usage:",
            "  kube-controller-manager [flags]",
        ]
    crash_loop(w, c, old, at, startup, crash)


# -- what the workloads see ---------------------------------------------------------------------


def _pods_on(w: World, node: str, t: datetime) -> list[Pod]:
    return [
        p
        for wl in w.workloads.values()
        if wl.role in APP_ROLES and wl.kind == "Deployment"
        for p in wl.pods
        if p.node == node and p.alive(t)
    ]


def _busiest(w: World, t: datetime) -> NodeInfo:
    stores = {p.node for s in (w.db, w.cache) for p in w.workloads[s].pods}
    nodes = [n for n in w.nodes if n.name not in stores] or list(w.nodes)
    load = {
        n.name: sum(w.workloads[p.workload].role != "entry" for p in _pods_on(w, n.name, t))
        for n in nodes
    }
    best = max(load.values())
    node = w.rng.choice([n for n in nodes if load[n.name] == best])
    if not best:  # make sure a backend pod runs there, as the scheduler might have put it
        p = w.rng.choice([p for m in w.mids for p in w.workloads[m].pods if p.alive(t)])
        p.node = node.name
        p.ip = f"10.{100 + node.index}.0.{w.rng.randrange(100, 250)}"
    return node


def _hurt(w: World, lost: dict[str, int], start: datetime, direct: list[str]) -> list[str]:
    """Services short of replicas: errors and latency on them, travelling up to the entry."""
    rng = w.rng
    err = rng.uniform(0.12, 0.22)
    for svc, n in lost.items():
        share = n / max(1, w.workloads[svc].replicas)
        w.shift(svc, "err", start, add=err * min(1.0, share * 1.5))
        w.shift(svc, "p99", start, mul=1 + 2 * share)
        overloaded(w, svc, start)
    backends = [s for s in lost if w.workloads[s].role != "entry"] or list(lost)
    primary = max(backends, key=lambda s: (lost[s], s))
    path = w.path_to_entry(primary)
    when = w.propagate(path, start, err=err * 0.9, lat=2.0, hops=(20, 60))
    caller_logs(w, path, when, [*direct, *upstream_5xx(primary)])
    symptoms(w, path, when, "errors")
    return path


def _drain(w: World, cp: ControlPlane, t: datetime, replace: bool) -> list[str]:
    """An engineer drains a node for maintenance. With a scheduler the replacements wait for
    it; without a controller-manager none is created, and stale endpoints keep the old IPs."""
    rng = w.rng
    node = _busiest(w, t)
    cp.cordoned[node.name] = t
    node.taints = [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": ts(t)}
    ]
    w.ev(
        "Node",
        node.name,
        "NodeNotSchedulable",
        f"Node {node.name} status is now: NodeNotSchedulable",
        t,
        host=node.name,
        ns="default",
    )
    lost: dict[str, int] = {}
    dead_ips: dict[str, list[str]] = {}
    at = t + sec(rng.uniform(1, 4))
    for p in _pods_on(w, node.name, at):
        wl = w.workloads[p.workload]
        rev = wl.revision(p.revision)
        rs = f"{wl.name}-{rev.hash}"
        alive = [q for q in wl.pods if q.alive(at) and q.revision == rev.number]
        if rs not in cp.frozen and not replace:
            cp.frozen[rs] = cp.frozen[wl.name] = (len(alive), sum(q.ready for q in alive))
        w.ev(
            "Pod",
            p.name,
            "Killing",
            f"Stopping container {wl.name}",
            at,
            host=p.node,
            ns=wl.namespace,
        )
        p.deleted, p.dark_since = at + sec(rng.uniform(2, 25)), at
        lost[wl.name] = lost.get(wl.name, 0) + 1
        dead_ips.setdefault(wl.name, []).append(p.ip)
        if replace:
            q = new_pod(w, wl, rev, at + sec(0.2), None)
            q.started, q.ready, q.quiet, q.phase, q.ip = None, False, True, "Pending", ""
            cp.unscheduled.add(q.name)
            w.ev(
                "ReplicaSet",
                rs,
                "SuccessfulCreate",
                f"Created pod: {q.name}",
                at + sec(0.2),
                component="replicaset-controller",
                ns=wl.namespace,
            )
        at += sec(rng.uniform(0.5, 3))
    start = at + sec(rng.uniform(5, 20))
    direct: list[str] = []
    if not replace:  # the endpoints still list the gone pods: calls to them time out
        svc = max(dead_ips, key=lambda s: (lost[s], s))
        port = w.ports.get(svc, 8080)
        direct = [
            f"call to {svc} failed: dial tcp {ip}:{port}: i/o timeout" for ip in dead_ips[svc]
        ]
    return _hurt(w, lost, start, direct)


def _cni(w: World, cp: ControlPlane) -> None:
    """The node reboots; its CNI agent does not come back, so no pod there gets a network."""
    rng = w.rng
    t0 = w.onset
    node = _busiest(w, t0)
    back = t0 + sec(rng.uniform(70, 110))
    boot = uid(w.key, "boot-after", node.name)
    w.ev(
        "Node",
        node.name,
        "NodeNotReady",
        f"Node {node.name} status is now: NodeNotReady",
        t0 + sec(40),
        component="node-controller",
        ns="default",
    )
    for reason, message, warning in (
        ("Starting", "Starting kubelet.", False),
        ("Rebooted", f"Node {node.name} has been rebooted, boot id: {boot}", True),
        ("NodeReady", f"Node {node.name} status is now: NodeReady", False),
    ):
        w.ev(
            "Node", node.name, reason, message, back, warning=warning, host=node.name, ns="default"
        )
    agent = cp.component("cilium")
    pod = next(p for p in agent.pods if p.node == node.name)
    startup = [
        f'level=info msg="Cilium 1.15.8 {uid(w.key, "sha")[:8]} go version go1.21.12 linux/amd64" '
        "subsys=daemon",
        'level=info msg="Memory available for map entries (0.003% of 16450543616B): 41126358B" '
        "subsys=config",
    ]
    crash = [
        'level=warning msg="BPF filesystem is not mounted. This will lead to network disruption '
        'when Cilium pods are restarted. Ensure that the BPF filesystem is mounted in the host." '
        "subsys=bpf",
        'level=fatal msg="Unable to mount BPF filesystem" error="failed to mount /sys/fs/bpf: '
        'operation not permitted" subsys=daemon',
    ]
    crash_loop(w, agent, pod, back + sec(rng.uniform(5, 15)), startup, crash)
    lost: dict[str, int] = {}
    for p in _pods_on(w, node.name, t0):
        wl = w.workloads[p.workload]
        p.ready, p.ready_changed, p.dark_since, p.started = False, t0 + sec(40), t0, None
        p.waiting, p.quiet = ("ContainerCreating", ""), True
        p.last = {"reason": "Unknown", "exitCode": 255, "startedAt": p.created, "finishedAt": t0}
        cp.no_sandbox.add(p.name)
        lost[wl.name] = lost.get(wl.name, 0) + 1
        w.ev(
            "Pod",
            p.name,
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.",
            back + sec(3),
            host=node.name,
            ns=wl.namespace,
        )
        sandbox = uid(w.key, "sandbox", p.name).replace("-", "") * 2
        w.ev(
            "Pod",
            p.name,
            "FailedCreatePodSandBox",
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup "
            f'network for sandbox "{sandbox}": plugin type="cilium-cni" name="cilium" failed '
            "(add): unable to connect to Cilium daemon: failed to create cilium agent client "
            'after 30.000000 seconds timeout: Get "http:///var/run/cilium/cilium.sock/v1/config": '
            "dial unix /var/run/cilium/cilium.sock: connect: no such file or directory\n"
            "Is the agent running?",
            back + sec(35),
            last=w.now - sec(rng.uniform(5, 40)),
            count=int((w.now - back).total_seconds() // 45) + 1,
            warning=True,
            host=node.name,
            ns=wl.namespace,
        )
    start = t0 + sec(rng.uniform(35, 50))
    path = _hurt(w, lost, start, [])
    w.set_truth(
        "DaemonSet",
        "cilium",
        "cilium",
        "control_plane",
        "cni",
        namespace=NS,
        propagation=["cilium", *path],
        aliases=[pod.name],
    )
