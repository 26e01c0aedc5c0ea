"""The cluster's own components before anything goes wrong: on kubeadm the control plane's
static pods on their own node, everywhere the node agents (kube-proxy, the CNI) and the leader
Leases of the scheduler and the controller-manager; and how one of them crash-loops."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from triage_lab.corpus.kube import uid
from triage_lab.corpus.kube_control_plane import (
    NS,
    Component,
    ControlPlane,
    LeaseInfo,
    agent_pod_name,
)
from triage_lab.corpus.model import NodeInfo, Pod
from triage_lab.corpus.units import sec

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def components(w: World, cni: str) -> ControlPlane:
    rng = w.rng
    version = w.cluster.kubelet
    oldest = min(n.created for n in w.nodes)
    node = None
    if w.cluster.flavor == "kubeadm":
        node = NodeInfo(
            name=rng.choice(("control-plane-01", "k8s-master-01", "cp-01")),
            zone=w.cluster.zones[0],
            ip=f"10.0.{16 + rng.randrange(200)}.{2 + rng.randrange(250)}",
            created=oldest - timedelta(days=rng.uniform(30, 200)),
            index=len(w.nodes),
            taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        )
    cp = ControlPlane(node=node)
    if node is not None:
        since = w.start - timedelta(days=rng.uniform(2, 40))  # the last upgrade
        for name, flags in (
            (
                "etcd",
                ["--data-dir=/var/lib/etcd", f"--advertise-client-urls=https://{node.ip}:2379"],
            ),
            ("kube-apiserver", [f"--advertise-address={node.ip}", "--secure-port=6443"]),
            (
                "kube-controller-manager",
                [
                    "--kubeconfig=/etc/kubernetes/controller-manager.conf",
                    "--leader-elect=true",
                    "--use-service-account-credentials=true",
                ],
            ),
            (
                "kube-scheduler",
                [
                    "--kubeconfig=/etc/kubernetes/scheduler.conf",
                    "--leader-elect=true",
                    "--bind-address=127.0.0.1",
                ],
            ),
        ):
            tag = "3.5.15-0" if name == "etcd" else version
            c = Component(
                name=name,
                static=True,
                image=f"registry.k8s.io/{name}:{tag}",
                labels={"component": name, "tier": "control-plane"},
                created=node.created,
                command=[name, *flags],
            )
            c.pods.append(agent_pod(w, name, f"{name}-{node.name}", node.name, since))
            cp.components.append(c)
    agents = [
        (
            "kube-proxy",
            f"registry.k8s.io/kube-proxy:{version}",
            ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"],
        ),
        (
            cni,
            "docker.io/calico/node:v3.28.1"
            if cni == "calico-node"
            else "quay.io/cilium/cilium:v1.15.8",
            ["start_runit"]
            if cni == "calico-node"
            else ["cilium-agent", "--config-dir=/tmp/cilium/config-map"],
        ),
    ]
    for name, image, command in agents:
        c = Component(name, False, image, {"k8s-app": name}, oldest, command)
        for n in [*w.nodes, *([node] if node else [])]:
            at = n.created + sec(rng.uniform(20, 60))
            c.pods.append(agent_pod(w, name, agent_pod_name(name, n.name, w.key), n.name, at))
        cp.components.append(c)
    host = node.name if node else f"ip-172-16-{rng.randrange(2, 250)}-{rng.randrange(2, 250)}"
    for name in ("kube-controller-manager", "kube-scheduler"):
        cp.leases.append(
            LeaseInfo(
                name=name,
                holder=f"{host}_{uid(w.key, 'holder', name)}",
                acquired=w.start - timedelta(days=rng.uniform(1, 30)),
                renewed=w.now - sec(rng.uniform(0.3, 2.5)),
                transitions=rng.randint(1, 12),
            )
        )
    return cp


def agent_pod(w: World, component: str, name: str, node: str, created: datetime) -> Pod:
    started = created + sec(w.rng.uniform(2, 8))
    return Pod(
        name=name,
        workload=component,
        revision=1,
        node=node,
        created=created,
        ip="",
        started=started,
        ready_changed=started + sec(w.rng.uniform(3, 12)),
        quiet=True,
    )


def crash_loop(
    w: World, c: Component, p: Pod, t0: datetime, startup: Sequence[str], crash: Sequence[str]
) -> None:
    """The container keeps dying at start; the kubelet backs off 10 s, 20 s ... up to 5 min."""
    rng = w.rng
    runs: list[tuple[datetime, datetime]] = []
    t, delay = t0, 10.0
    while t <= w.now:
        end = t + sec(rng.uniform(0.4, 2.5))
        runs.append((t, end))
        t = end + sec(delay + rng.uniform(0, 2))
        delay = min(delay * 2, 300.0)
    runs = [r for r in runs if r[1] <= w.now] or runs[:1]
    s, e = runs[-1]
    p.restarts = [r[0] for r in runs[1:]]
    p.started, p.ready, p.ready_changed = None, False, t0
    p.last = {"reason": "Error", "exitCode": 1, "startedAt": s, "finishedAt": e}
    pod_uid = uid(w.key, "Pod", NS, p.name)
    p.waiting = (
        "CrashLoopBackOff",
        f"back-off {min(int(delay / 2), 300)}s restarting failed container={c.name} "
        f"pod={p.name}_{NS}({pod_uid})",
    )
    p.logs = []
    p.prev_logs = [(s + sec(0.05 * k), line) for k, line in enumerate(startup)]
    p.prev_logs += [(e - sec(0.01 * (len(crash) - k)), line) for k, line in enumerate(crash)]
    for reason, message, warning in (
        ("Pulled", f'Container image "{c.image}" already present on machine', False),
        ("Created", f"Created container {c.name}", False),
        ("Started", f"Started container {c.name}", False),
        (
            "BackOff",
            f"Back-off restarting failed container {c.name} in pod {p.name}_{NS}({pod_uid})",
            True,
        ),
    ):
        first = runs[0][1] + sec(1) if reason == "BackOff" else runs[0][0]
        w.ev(
            "Pod",
            p.name,
            reason,
            message,
            first,
            last=runs[-1][0],
            warning=warning,
            count=len(runs) * (3 if warning else 1),
            host=p.node,
            ns=NS,
        )
