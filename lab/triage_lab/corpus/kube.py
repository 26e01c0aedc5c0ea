"""Kubernetes API objects, shaped as the API server returns them (apiVersion, kind, metadata,
spec, status), built from the generator's model."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from triage_lab.corpus.model import ConfigObj, Hpa, NodeInfo, Pod, PolicyObj, Revision, Workload
from triage_lab.fakes import kubernetes_objects as api
from triage_lab.fakes.kubernetes_objects import Obj, ts

SAFE = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names


def uid(*key: str) -> str:
    h = hashlib.sha256("/".join(key).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def safe_hash(text: str, n: int = 10) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(SAFE[b % len(SAFE)] for b in digest[:n])


def _identity(kind: str, name: str, ns: str | None, created: datetime, seed: str) -> Obj:
    """uid, creation time and resourceVersion, derived from the seed: the same corpus each run."""
    the_uid = uid(seed, kind, ns or "", name)
    version = str(int(hashlib.sha256(the_uid.encode()).hexdigest()[:7], 16))
    return {"uid": the_uid, "created": created, "resource_version": version}


def _meta(kind: str, name: str, ns: str | None, created: datetime, seed: str, **more: Any) -> Obj:
    return api.metadata(name, namespace=ns, **_identity(kind, name, ns, created, seed), **more)


def _owner(kind: str, name: str, ns: str, seed: str) -> list[Obj]:
    return [api.owner_reference(kind, name, uid(seed, kind, ns, name))]


def namespace(name: str, created: datetime, seed: str) -> Obj:
    return api.namespace(name, **_identity("Namespace", name, None, created, seed))


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
        "metadata": _meta(
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


def _probe(spec: dict[str, Any]) -> Obj:
    action: Obj = (
        {"tcpSocket": {"port": spec["port"]}}
        if spec.get("tcp")
        else {"httpGet": {"path": spec["path"], "port": spec["port"], "scheme": "HTTP"}}
    )
    return action | {
        "initialDelaySeconds": spec.get("delay", 5),
        "periodSeconds": spec.get("period", 10),
        "timeoutSeconds": spec.get("timeout", 1),
        "successThreshold": 1,
        "failureThreshold": spec.get("failures", 3),
    }


def pod_template(w: Workload, rev: Revision) -> Obj:
    c: Obj = {
        "name": w.name,
        "image": f"{w.repo}:{rev.tag}",
        "ports": [{"name": "http", "containerPort": w.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(rev.env.items())],
        "resources": {
            "requests": {"cpu": rev.cpu_request, "memory": rev.mem_request},
            "limits": {"memory": rev.mem_limit} | ({"cpu": rev.cpu_limit} if rev.cpu_limit else {}),
        },
    }
    if rev.args:
        c["args"] = rev.args
    if rev.readiness:
        c["readinessProbe"] = _probe(rev.readiness)
    if rev.liveness:
        c["livenessProbe"] = _probe(rev.liveness)
    volumes: list[Obj] = []
    mounts: list[Obj] = []
    if rev.config:
        volumes.append({"name": "config", "configMap": {"name": rev.config, "defaultMode": 420}})
        mounts.append({"name": "config", "mountPath": f"/etc/{w.name}", "readOnly": True})
    if rev.tls_secret:
        volumes.append(
            {"name": "tls", "secret": {"secretName": rev.tls_secret, "defaultMode": 420}}
        )
        mounts.append({"name": "tls", "mountPath": "/var/run/tls", "readOnly": True})
    if rev.env_secrets:
        c["envFrom"] = [{"secretRef": {"name": name}} for name in rev.env_secrets]
    if mounts:
        c["volumeMounts"] = mounts
    spec: Obj = {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": w.name,
        "schedulerName": "default-scheduler",
        "securityContext": {"fsGroup": 2000},
    }
    if volumes:
        spec["volumes"] = volumes
    if rev.node_selector:
        spec["nodeSelector"] = rev.node_selector
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(w.port)}
    annotations.update(rev.annotations)
    return api.pod_template(labels(w, rev), [c], annotations=annotations, **spec)


def labels(w: Workload, rev: Revision | None = None) -> dict[str, str]:
    out = {"app": w.name, **w.extra_labels}
    if rev is not None:
        out["version"] = rev.tag
    return out


def template_hash(w: Workload, rev: Revision) -> str:
    return safe_hash(json.dumps(pod_template(w, rev), sort_keys=True), 10)


def deployment(w: Workload, now: datetime, seed: str) -> Obj:
    rev = w.current
    alive = [p for p in w.pods if p.deleted is None]
    updated = [p for p in alive if p.revision == rev.number]
    ready = [p for p in alive if p.ready]
    status: Obj = {
        "observedGeneration": rev.number + 1,
        "replicas": len(alive),
        "updatedReplicas": len(updated),
        "readyReplicas": len(ready),
        "availableReplicas": len(ready),
    }
    if len(ready) < len(alive):
        status["unavailableReplicas"] = len(alive) - len(ready)
    rs_name = f"{w.name}-{rev.hash}"
    min_ok = w.replicas - replicas_of(w.max_unavailable, w.replicas, up=False)
    available = (
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        if len(ready) >= min_ok
        else (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    )
    if w.stalled_since and now - w.stalled_since > timedelta(seconds=600):
        progressing = (
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
        )
        prog_since = w.stalled_since + timedelta(seconds=600)
    elif w.stalled_since:
        progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        prog_since = w.stalled_since
    else:
        progressing = (
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
        )
        prog_since = rev.created
    avail_since = max([p.ready_changed or p.created for p in alive] or [rev.created])
    status["conditions"] = [
        {
            "type": "Available",
            "status": available[0],
            "reason": available[1],
            "message": available[2],
            "lastUpdateTime": ts(avail_since),
            "lastTransitionTime": ts(avail_since),
        },
        {
            "type": "Progressing",
            "status": progressing[0],
            "reason": progressing[1],
            "message": progressing[2],
            "lastUpdateTime": ts(prog_since),
            "lastTransitionTime": ts(prog_since),
        },
    ]
    return api.deployment(
        w.namespace,
        w.name,
        labels=w.extra_labels | ({"team": w.team} if w.team else {}),
        revision=rev.number,
        replicas=w.replicas,
        template=pod_template(w, rev),
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": w.max_surge, "maxUnavailable": w.max_unavailable},
        },
        status=status,
        generation=rev.number + 1,
        revisionHistoryLimit=10,
        progressDeadlineSeconds=600,
        **_identity("Deployment", w.name, w.namespace, w.created, seed),
    )


def replicas_of(spec: str, replicas: int, *, up: bool) -> int:
    """maxSurge / maxUnavailable as a pod count: percentages round up for surge, down otherwise."""
    if spec.endswith("%"):
        frac = replicas * int(spec[:-1]) / 100
        return int(-(-frac // 1)) if up else int(frac)
    return int(spec)


def replicaset(w: Workload, rev: Revision, seed: str) -> Obj:
    alive = [p for p in w.pods if p.deleted is None and p.revision == rev.number]
    ready = [p for p in alive if p.ready]
    name = f"{w.name}-{rev.hash}"
    lbl = labels(w, rev) | {"pod-template-hash": rev.hash}
    tmpl = pod_template(w, rev)
    tmpl["metadata"]["labels"] = lbl
    return api.replicaset(
        w.namespace,
        name,
        owner=_owner("Deployment", w.name, w.namespace, seed)[0],
        revision=rev.number,
        labels=lbl,
        selector={"app": w.name, "pod-template-hash": rev.hash},
        template=tmpl,
        replicas=len(alive),
        ready=len(ready),
        desired=rev.desired,
        generation=1 if alive else 2,
        annotations={
            "deployment.kubernetes.io/desired-replicas": str(w.replicas),
            "deployment.kubernetes.io/max-replicas": str(
                w.replicas + replicas_of(w.max_surge, w.replicas, up=True)
            ),
        },
        **_identity("ReplicaSet", name, w.namespace, rev.created, seed),
    )


def statefulset(w: Workload, now: datetime, seed: str) -> Obj:
    rev = w.current
    alive = [p for p in w.pods if p.deleted is None]
    ready = [p for p in alive if p.ready]
    name_hash = f"{w.name}-{rev.hash}"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(
            "StatefulSet",
            w.name,
            w.namespace,
            w.created,
            seed,
            generation=rev.number,
            labels=labels(w),
        ),
        "spec": {
            "replicas": w.replicas,
            "serviceName": w.name,
            "selector": {"matchLabels": {"app": w.name}},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": pod_template(w, rev),
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "50Gi"}},
                    },
                }
            ],
        },
        "status": {
            "observedGeneration": rev.number,
            "replicas": len(alive),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),
            "currentReplicas": len(alive),
            "updatedReplicas": len(alive),
            "currentRevision": name_hash,
            "updateRevision": name_hash,
            "collisionCount": 0,
        },
    }


def controllerrevision(w: Workload, rev: Revision, seed: str) -> Obj:
    name = f"{w.name}-{rev.hash}"
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": _meta(
            "ControllerRevision",
            name,
            w.namespace,
            rev.created,
            seed,
            labels=labels(w) | {"controller.kubernetes.io/hash": rev.hash},
            ownerReferences=_owner("StatefulSet", w.name, w.namespace, seed),
        ),
        "revision": rev.number,
        "data": {"spec": {"template": pod_template(w, rev)}},
    }


def pod(w: Workload, p: Pod, now: datetime, seed: str) -> Obj:
    rev = w.revision(p.revision)
    tmpl = pod_template(w, rev)
    if w.kind == "Deployment":
        owner = _owner("ReplicaSet", f"{w.name}-{rev.hash}", w.namespace, seed)
        lbl = labels(w, rev) | {"pod-template-hash": rev.hash}
    else:
        owner = _owner("StatefulSet", w.name, w.namespace, seed)
        lbl = labels(w, rev) | {
            "controller-revision-hash": f"{w.name}-{rev.hash}",
            "statefulset.kubernetes.io/pod-name": p.name,
        }
    spec = tmpl["spec"]
    if p.node:
        spec["nodeName"] = p.node
    spec["tolerations"] = [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]
    status: Obj = {"phase": p.phase, "qosClass": "Burstable"}
    scheduled_at = p.created + timedelta(seconds=1)
    conds: list[Obj] = []
    if p.unschedulable:
        conds.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": p.unschedulable,
                "lastProbeTime": None,
                "lastTransitionTime": ts(p.created),
            }
        )
    else:
        status["hostIP"] = _node_ip(p.node, seed)
        status["podIP"] = p.ip
        status["podIPs"] = [{"ip": p.ip}]
        status["startTime"] = ts(scheduled_at)
        ready_at = ts(p.ready_changed or p.created + timedelta(seconds=8))
        ready = "True" if p.ready else "False"
        not_ready = None if p.ready else f"containers with unready status: [{w.name}]"
        conds += [
            {
                "type": "Initialized",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": ts(scheduled_at),
            },
            {
                "type": "Ready",
                "status": ready,
                "lastProbeTime": None,
                "lastTransitionTime": ready_at,
            }
            | ({"reason": "ContainersNotReady", "message": not_ready} if not_ready else {}),
            {
                "type": "ContainersReady",
                "status": ready,
                "lastProbeTime": None,
                "lastTransitionTime": ready_at,
            }
            | ({"reason": "ContainersNotReady", "message": not_ready} if not_ready else {}),
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": ts(scheduled_at),
            },
        ]
        digest = hashlib.sha256(rev.tag.encode() + w.repo.encode()).hexdigest()
        cs: Obj = {
            "name": w.name,
            "image": f"{w.repo}:{rev.tag}",
            "imageID": ""
            if p.waiting and p.waiting[0] in ("ImagePullBackOff", "ErrImagePull")
            else f"{w.repo}@sha256:{digest}",
            "ready": p.ready,
            "restartCount": len(p.restarts),
            "started": p.waiting is None and p.started is not None,
            "lastState": {"terminated": _terminated(p.last, p, seed)} if p.last else {},
        }
        if p.phase == "Failed" and p.last:
            cs["state"] = {"terminated": cs.pop("lastState")["terminated"]}
            cs["lastState"] = {}
        elif p.waiting:
            cs["state"] = {"waiting": {"reason": p.waiting[0], "message": p.waiting[1]}}
        elif p.started is not None:
            cs["state"] = {"running": {"startedAt": ts(p.started)}}
        if p.started is not None or p.last:
            cs["containerID"] = (
                "containerd://" + hashlib.sha256(f"{p.name}{p.started}".encode()).hexdigest()
            )
        status["containerStatuses"] = [cs]
    if p.reason:
        status["reason"] = p.reason
        status["message"] = p.message
    status["conditions"] = conds
    meta = _meta(
        "Pod",
        p.name,
        w.namespace,
        p.created,
        seed,
        labels=lbl,
        annotations=tmpl["metadata"]["annotations"],
        ownerReferences=owner,
        generateName=p.name.rsplit("-", 1)[0] + "-" if w.kind == "Deployment" else p.name[:-1],
    )
    if p.terminating:
        meta["deletionTimestamp"] = ts(p.terminating + timedelta(seconds=30))
        meta["deletionGracePeriodSeconds"] = 30
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def _terminated(last: dict[str, Any], p: Pod, seed: str) -> Obj:
    out: Obj = {
        "exitCode": last["exitCode"],
        "reason": last["reason"],
        "startedAt": ts(last["startedAt"]),
        "finishedAt": ts(last["finishedAt"]),
        "containerID": "containerd://" + uid(seed, p.name, ts(last["startedAt"])).replace("-", ""),
    }
    if last.get("message"):
        out["message"] = last["message"]
    return out


def _node_ip(node_name: str | None, seed: str) -> str:
    h = hashlib.sha256(f"{seed}{node_name}".encode()).digest()
    return f"10.0.{16 + h[0] % 200}.{2 + h[1] % 250}"


def config_obj(c: ConfigObj, seed: str) -> Obj:
    managed: list[Obj] = [
        {
            "manager": c.manager,
            "operation": "Apply"
            if "controller" in c.manager or "argocd" in c.manager
            else "Update",
            "apiVersion": "v1",
            "time": ts(c.changed),
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {f"f:{k}": {} for k in sorted(c.data)}}
            if c.kind == "ConfigMap"
            else {"f:data": {f"f:{k}": {} for k in sorted(c.data)}, "f:type": {}},
        }
    ]
    if c.changed > c.created + timedelta(minutes=1):
        managed.insert(
            0,
            {
                "manager": "kubectl-client-side-apply"
                if c.manager != "cert-manager-certificates-issuing"
                else "cert-manager-certificates-key-manager",
                "operation": "Update",
                "apiVersion": "v1",
                "time": ts(c.created),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {}}},
            },
        )
    meta = _meta(
        c.kind,
        c.name,
        c.namespace,
        c.created,
        seed,
        labels=c.labels,
        annotations=c.annotations,
        managedFields=managed,
    )
    obj: Obj = {"apiVersion": "v1", "kind": c.kind, "metadata": meta}
    if c.kind == "ConfigMap":
        obj["data"] = c.data
    else:
        obj["type"] = c.secret_type  # values are never recorded
    return obj


def network_policy(p: PolicyObj, seed: str) -> Obj:
    managed: list[Obj] = [
        {
            "manager": p.manager,
            "operation": "Apply",
            "apiVersion": "networking.k8s.io/v1",
            "time": ts(p.changed),
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:ingress": {}, "f:podSelector": {}, "f:policyTypes": {}}},
        }
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(
            "NetworkPolicy", p.name, p.namespace, p.created, seed, managedFields=managed
        ),
        "spec": {
            "podSelector": {"matchLabels": p.selector} if p.selector else {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": p.ingress_from}] if p.ingress_from else [],
        },
    }


def hpa(w: Workload, h: Hpa, now: datetime, seed: str) -> Obj:
    if h.limited:
        limited = (
            "True",
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    else:
        limited = (
            "False",
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    since = h.history[-1][0]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(
            "HorizontalPodAutoscaler", w.name, w.namespace, w.created, seed, labels=labels(w)
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": w.kind, "name": w.name},
            "minReplicas": h.min_replicas,
            "maxReplicas": h.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": h.target_cpu},
                    },
                }
            ],
        },
        "status": {
            "currentReplicas": h.current,
            "desiredReplicas": h.current,
            "lastScaleTime": ts(h.last_scale),
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {
                            "averageUtilization": h.utilization,
                            "averageValue": f"{h.utilization * 5}m",
                        },
                    },
                }
            ],
            "conditions": [
                {
                    "type": "AbleToScale",
                    "status": "True",
                    "reason": "ReadyForNewScale",
                    "message": "recommended size matches current size",
                    "lastTransitionTime": ts(h.last_scale),
                },
                {
                    "type": "ScalingActive",
                    "status": "True",
                    "reason": "ValidMetricFound",
                    "message": "the HPA was able to successfully calculate a replica count from "
                    "cpu resource utilization (percentage of request)",
                    "lastTransitionTime": ts(w.created),
                },
                {
                    "type": "ScalingLimited",
                    "status": limited[0],
                    "reason": limited[1],
                    "message": limited[2],
                    "lastTransitionTime": ts(since),
                },
            ],
        },
    }


def service(w: Workload, cluster_ip: str, seed: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            "Service",
            w.name if w.role != "dns" else "kube-dns",
            w.namespace,
            w.created,
            seed,
            labels=labels(w),
        ),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "selector": {"app": w.name},
            "ports": [
                {
                    "name": "dns" if w.role == "dns" else "http" if w.port > 1024 else "tcp",
                    "port": 53 if w.role == "dns" else w.port,
                    "targetPort": w.port,
                    "protocol": "UDP" if w.role == "dns" else "TCP",
                }
            ],
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {}},
    }


def event(
    *,
    ns: str,
    kind: str,
    name: str,
    reason: str,
    message: str,
    first: datetime,
    last: datetime | None = None,
    count: int = 1,
    warning: bool = False,
    component: str = "kubelet",
    host: str | None = None,
    seed: str,
    api: str = "v1",
) -> Obj:
    last = last or first
    key = f"{name}.{hashlib.sha256(f'{seed}{kind}{name}{reason}{first}'.encode()).hexdigest()[:16]}"
    source: Obj = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _meta("Event", key, ns, first, seed),
        "involvedObject": {
            "apiVersion": api,
            "kind": kind,
            "name": name,
            "uid": uid(seed, kind, ns if kind != "Node" else "", name),
        }
        | ({} if kind == "Node" else {"namespace": ns}),
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": ts(first),
        "lastTimestamp": ts(last),
        "count": count,
        "type": "Warning" if warning else "Normal",
        "reportingComponent": component,
        "reportingInstance": host or "",
    }
