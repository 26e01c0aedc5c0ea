"""The cluster's own components as the API server shows them: kubeadm's static control-plane
pods (mirror pods owned by their Node), the node agents' DaemonSets (kube-proxy, the CNI) and
their pods, and the leader-election Leases in kube-system. Only worlds whose fault involves
them carry a :class:`ControlPlane`; the others render as they always did."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from triage_lab.corpus import kube_nodes
from triage_lab.corpus.kube import object_meta, owner_refs, safe_hash, uid
from triage_lab.corpus.model import NodeInfo, Pod
from triage_lab.fakes import kubernetes_objects as api
from triage_lab.fakes.kubernetes_objects import Obj, ts
from triage_lab.scenarios import KubeObjects, LogStream

if TYPE_CHECKING:
    from triage_lab.corpus.world import World

NS = "kube-system"


@dataclass
class Component:
    """A control-plane binary run as a static pod, or a node agent run by a DaemonSet."""

    name: str  # kube-scheduler | kube-controller-manager | calico-node | cilium | kube-proxy
    static: bool
    image: str
    labels: dict[str, str]
    created: datetime
    command: list[str]
    pods: list[Pod] = field(default_factory=list)


@dataclass
class LeaseInfo:
    name: str
    holder: str
    acquired: datetime
    renewed: datetime
    transitions: int


@dataclass
class ControlPlane:
    node: NodeInfo | None  # kubeadm's control-plane node; managed clusters hide theirs
    components: list[Component] = field(default_factory=list)
    leases: list[LeaseInfo] = field(default_factory=list)
    cordoned: dict[str, datetime] = field(default_factory=dict)  # node -> since
    unscheduled: set[str] = field(default_factory=set)  # pods no scheduler ever looked at
    no_sandbox: set[str] = field(default_factory=set)  # pods whose sandbox never came up
    # Status the controllers stopped updating: ReplicaSet/Deployment name -> (replicas, ready)
    frozen: dict[str, tuple[int, int]] = field(default_factory=dict)
    silent_since: dict[str, datetime] = field(default_factory=dict)  # event source -> since

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)


def agent_pod_name(component: str, node: str, seed: str) -> str:
    return f"{component}-{safe_hash(f'{seed}/{component}/{node}', 5)}"


def _klog_time(t: datetime) -> str:
    return f"{t:%m%d %H:%M:%S}.{t.microsecond:06d}"


def klog(t: datetime, level: str, source: str, msg: str) -> str:
    """A line as Kubernetes components write them (klog header)."""
    return f"{level[0].upper()}{_klog_time(t)}       1 {source}] {msg}"


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(info: LeaseInfo, seed: str) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": object_meta("Lease", info.name, NS, info.acquired - timedelta(days=30), seed),
        "spec": {
            "holderIdentity": info.holder,
            "leaseDurationSeconds": 15,
            "acquireTime": _micro(info.acquired),
            "renewTime": _micro(info.renewed),
            "leaseTransitions": info.transitions,
        },
    }


def _container_status(c: Component, p: Pod, seed: str) -> Obj:
    digest = hashlib.sha256(c.image.encode()).hexdigest()
    cs: Obj = {
        "name": c.name,
        "image": c.image,
        "imageID": f"{c.image.rsplit(':', 1)[0]}@sha256:{digest}",
        "ready": p.ready,
        "restartCount": len(p.restarts),
        "started": p.waiting is None and p.started is not None,
        "lastState": {},
    }
    if p.last:
        cs["lastState"] = {
            "terminated": {
                "exitCode": p.last["exitCode"],
                "reason": p.last["reason"],
                "startedAt": ts(p.last["startedAt"]),
                "finishedAt": ts(p.last["finishedAt"]),
                "containerID": "containerd://" + uid(seed, p.name, "last").replace("-", ""),
            }
        }
    if p.waiting:
        cs["state"] = {"waiting": {"reason": p.waiting[0], "message": p.waiting[1]}}
    elif p.started is not None:
        cs["state"] = {"running": {"startedAt": ts(p.started)}}
    cs["containerID"] = "containerd://" + uid(seed, p.name, str(p.started)).replace("-", "")
    return cs


def component_pod(c: Component, p: Pod, node_ip: str, seed: str) -> Obj:
    ready = "True" if p.ready else "False"
    since = ts(p.ready_changed or p.created + timedelta(seconds=5))
    unready = (
        {}
        if p.ready
        else {
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{c.name}]",
        }
    )
    conds = [
        {
            "type": "PodReadyToStartContainers",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": ts(p.created + timedelta(seconds=2)),
        },
        {
            "type": "Initialized",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": ts(p.created + timedelta(seconds=1)),
        },
        {"type": "Ready", "status": ready, "lastProbeTime": None, "lastTransitionTime": since}
        | unready,
        {
            "type": "ContainersReady",
            "status": ready,
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }
        | unready,
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": ts(p.created),
        },
    ]
    container: Obj = {
        "name": c.name,
        "image": c.image,
        "command": c.command,
        "resources": {"requests": {"cpu": "100m" if c.static else "250m"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if c.static:
        port = {"kube-scheduler": 10259, "kube-controller-manager": 10257}.get(c.name, 6443)
        container["livenessProbe"] = {
            "httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": port, "scheme": "HTTPS"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 15,
            "failureThreshold": 8,
            "successThreshold": 1,
        }
        config_hash = hashlib.md5(f"{seed}{c.name}{p.created}".encode()).hexdigest()
        meta = object_meta(
            "Pod",
            p.name,
            NS,
            p.created,
            seed,
            labels=dict(c.labels),
            annotations={
                "kubernetes.io/config.hash": config_hash,
                "kubernetes.io/config.mirror": config_hash,
                "kubernetes.io/config.seen": _micro(p.created).replace("Z", "+00:00"),
                "kubernetes.io/config.source": "file",
            },
            ownerReferences=[
                api.owner_reference("Node", p.node or "", uid(seed, "Node", "", p.node or ""), "v1")
            ],
        )
        spec: Obj = {"priorityClassName": "system-node-critical", "priority": 2000001000}
        tolerations: list[Obj] = [{"operator": "Exists", "effect": "NoExecute"}]
    else:
        meta = object_meta(
            "Pod",
            p.name,
            NS,
            p.created,
            seed,
            labels=c.labels
            | {
                "controller-revision-hash": safe_hash(f"{seed}{c.name}", 10)[:10],
                "pod-template-generation": "1",
            },
            ownerReferences=owner_refs("DaemonSet", c.name, NS, seed),
            generateName=f"{c.name}-",
        )
        spec = {
            "priorityClassName": "system-node-critical",
            "priority": 2000001000,
            "serviceAccountName": c.name,
        }
        tolerations = [{"operator": "Exists"}]
    spec |= {
        "containers": [container],
        "hostNetwork": True,
        "nodeName": p.node,
        "tolerations": tolerations,
        "restartPolicy": "Always",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": "Running",
            "qosClass": "Burstable",
            "hostIP": node_ip,
            "podIP": node_ip,
            "podIPs": [{"ip": node_ip}],
            "startTime": ts(p.created + timedelta(seconds=1)),
            "conditions": conds,
            "containerStatuses": [_container_status(c, p, seed)],
        },
    }


def daemonset(c: Component, seed: str) -> Obj:
    ready = sum(1 for p in c.pods if p.ready)
    n = len(c.pods)
    status: Obj = {
        "currentNumberScheduled": n,
        "desiredNumberScheduled": n,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": n,
        "observedGeneration": 1,
    }
    if ready < n:
        status["numberUnavailable"] = n - ready
    tmpl = api.pod_template(
        dict(c.labels),
        [{"name": c.name, "image": c.image, "command": c.command}],
        hostNetwork=True,
        priorityClassName="system-node-critical",
        serviceAccountName=c.name,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": object_meta(
            "DaemonSet",
            c.name,
            NS,
            c.created,
            seed,
            labels=dict(c.labels),
            generation=1,
            annotations={"deprecated.daemonset.template.generation": "1"},
        ),
        "spec": {
            "selector": {"matchLabels": dict(c.labels)},
            "template": tmpl,
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
        },
        "status": status,
    }


def _node_ips(w: World, cp: ControlPlane) -> dict[str, str]:
    nodes = [*w.nodes, *([cp.node] if cp.node else [])]
    return {n.name: n.ip for n in nodes}


def add_objects(w: World, k: KubeObjects) -> None:
    """What the world's components add to the listed objects, and what their trouble leaves
    on the others: statuses no controller updated, pods no scheduler or CNI ever finished."""
    cp = w.control_plane
    if cp is None:
        return
    seed = w.key
    if cp.node is not None:
        obj = kube_nodes.node(
            cp.node, kubelet=w.cluster.kubelet, itype=w.cluster.instance_type, now=w.now, seed=seed
        )
        obj["metadata"]["labels"] |= {
            "node-role.kubernetes.io/control-plane": "",
            "node.kubernetes.io/exclude-from-external-load-balancers": "",
        }
        k.nodes.append(obj)
    for node in k.nodes:
        since = cp.cordoned.get(node["metadata"]["name"])
        if since is not None:
            node["spec"]["unschedulable"] = True
    ips = _node_ips(w, cp)
    for c in cp.components:
        if not c.static:
            k.daemonsets.append(daemonset(c, seed))
        k.pods += [component_pod(c, p, ips.get(p.node or "", ""), seed) for p in c.pods]
    k.leases = [lease(info, seed) for info in cp.leases]
    for pod in k.pods:
        name = pod["metadata"]["name"]
        if name in cp.unscheduled:  # the scheduler never saw it: no node, no conditions at all
            pod["spec"].pop("nodeName", None)
            pod["status"] = {"phase": "Pending", "qosClass": pod["status"].get("qosClass")}
        elif name in cp.no_sandbox:  # scheduled, but the network never came up
            status = pod["status"]
            status.pop("podIP", None)
            status.pop("podIPs", None)
            init = next(c for c in status["conditions"] if c["type"] == "Initialized")
            status["conditions"].insert(
                0, init | {"type": "PodReadyToStartContainers", "status": "False"}
            )
            for cs in status.get("containerStatuses") or []:
                cs["imageID"], cs["started"] = "", False
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
                cs.pop("containerID", None)
    for kind in ("replicasets", "deployments"):
        for obj in k.of(kind):
            frozen = cp.frozen.get(obj["metadata"]["name"])
            if frozen is None or obj["metadata"]["namespace"] != w.ns:
                continue
            replicas, ready = frozen
            obj["spec"]["replicas"] = max(obj["spec"]["replicas"], replicas)
            status = obj["status"]
            status["replicas"], status["readyReplicas"] = replicas, ready
            status["availableReplicas"] = ready
            if kind == "replicasets":
                status["fullyLabeledReplicas"] = replicas
            else:
                status.pop("unavailableReplicas", None)
                status["updatedReplicas"] = replicas
                for cond in status.get("conditions") or []:
                    if cond["type"] == "Available":
                        cond.update(
                            status="True",
                            reason="MinimumReplicasAvailable",
                            message="Deployment has minimum availability.",
                        )
    # A component that is down reports nothing: drop what it would have said after it stopped.
    k.events = [e for e in k.events if not _silenced(e, cp)]


def _silenced(ev: dict[str, Any], cp: ControlPlane) -> bool:
    since = cp.silent_since.get((ev.get("source") or {}).get("component", ""))
    return since is not None and ev["firstTimestamp"] > ts(since)


def log_streams(w: World) -> list[LogStream]:
    cp = w.control_plane
    out: list[LogStream] = []
    for c in cp.components if cp is not None else ():
        for p in c.pods:
            for previous, lines in ((False, p.logs), (True, p.prev_logs)):
                kept = sorted((t, m) for t, m in lines if t <= w.now)
                if not kept and (previous or p.started is None):
                    continue
                out.append(
                    LogStream(
                        namespace=NS,
                        pod=p.name,
                        container=c.name,
                        previous=previous,
                        lines=[f"{_micro(t).replace('.', ',', 0)[:-4]}Z {m}" for t, m in kept],
                    )
                )
    return out
