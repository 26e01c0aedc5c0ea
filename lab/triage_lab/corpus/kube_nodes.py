"""Node objects: conditions (pressure, NotReady), capacity and node info."""

from __future__ import annotations

from datetime import datetime, timedelta

from triage_lab.corpus.kube import object_meta, uid
from triage_lab.corpus.model import NodeInfo
from triage_lab.fakes.kubernetes_objects import Obj, ts


def _cond(kind: str, status: str, reason: str, message: str, since: datetime, now: datetime) -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": ts(now - timedelta(seconds=37) if status != "Unknown" else since),
        "lastTransitionTime": ts(since),
    }


def node(n: NodeInfo, *, kubelet: str, itype: str, now: datetime, seed: str) -> Obj:
    up = n.created + timedelta(minutes=2)
    mem = (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    )
    disk = ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
    if n.pressure == "MemoryPressure":
        mem = (
            "MemoryPressure",
            "True",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        )
    if n.pressure == "DiskPressure":
        disk = ("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure")
    conds = []
    for kind, status, reason, msg in (
        mem,
        disk,
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ):
        since = n.pressure_since if status == "True" and n.pressure_since else up
        if not n.ready and n.not_ready_since:
            conds.append(
                _cond(
                    kind,
                    "Unknown",
                    "NodeStatusUnknown",
                    "Kubelet stopped posting node status.",
                    n.not_ready_since,
                    now,
                )
            )
        else:
            conds.append(_cond(kind, status, reason, msg, since, now))
    if n.ready:
        conds.append(
            _cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", up, now)
        )
    else:
        since = n.not_ready_since or up
        conds.append(
            _cond(
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                since,
                now,
            )
        )
    cpu, memory = ("4", "16") if "xlarge" in itype or "4" in itype else ("8", "32")
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": object_meta(
            "Node",
            n.name,
            None,
            n.created,
            seed,
            labels={
                "kubernetes.io/hostname": n.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": itype,
                "topology.kubernetes.io/zone": n.zone,
            },
        ),
        "spec": {"podCIDR": f"10.{100 + n.index}.0.0/24", "taints": n.taints}
        if n.taints
        else {"podCIDR": f"10.{100 + n.index}.0.0/24"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": n.ip},
                {"type": "Hostname", "address": n.name},
            ],
            "capacity": {
                "cpu": cpu,
                "memory": f"{memory}Gi",
                "pods": "110",
                "ephemeral-storage": "100Gi",
            },
            "allocatable": {
                "cpu": f"{int(cpu) * 1000 - 190}m",
                "memory": f"{int(memory) * 1024 - 1400}Mi",
                "pods": "110",
                "ephemeral-storage": "92Gi",
            },
            "conditions": conds,
            "nodeInfo": {
                "bootID": uid(seed, "boot", n.name),
                "machineID": uid(seed, "machine", n.name).replace("-", ""),
                "systemUUID": uid(seed, "system", n.name).upper(),
                "kubeProxyVersion": kubelet,
                "kubeletVersion": kubelet,
                "containerRuntimeVersion": "containerd://1.7.20",
                "osImage": "Ubuntu 22.04.4 LTS",
                "kernelVersion": "6.5.0-1024",
                "architecture": "amd64",
                "operatingSystem": "linux",
            },
        },
    }
