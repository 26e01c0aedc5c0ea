"""Storage faults: a new PersistentVolumeClaim that never binds, a ReadWriteOnce volume still
attached to the node a datastore's pod left, a volume whose filesystem will not mount."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

from triage_lab.corpus.changes import gitops_sync, rollout
from triage_lab.corpus.cluster_apps import new_pod
from triage_lab.corpus.faults._common import caller_logs, fewer_pods, symptoms, upstream_5xx
from triage_lab.corpus.kube import uid
from triage_lab.corpus.kube_storage import volume_name
from triage_lab.corpus.kube_templates import template_hash
from triage_lab.corpus.model import ClaimObj, Workload
from triage_lab.corpus.noise import bump
from triage_lab.corpus.world import World, sec
from triage_lab.fakes.kubernetes_objects import ts

# Cluster flavour -> (default StorageClass, its CSI driver, the device a volume shows up as).
CLASSES = {
    "eks": ("gp3", "ebs.csi.aws.com", "/dev/nvme1n1"),
    "gke": ("standard-rwo", "pd.csi.storage.gke.io", "/dev/sdb"),
    "aks": ("managed-csi", "disk.csi.azure.com", "/dev/sdc"),
    "kubeadm": ("ceph-rbd", "rbd.csi.ceph.com", "/dev/rbd0"),
}
CONTROLLER = "statefulset-controller"
MOUNTS = {"db": "/var/lib/postgresql/data", "cache": "/data"}
UNMOUNTED = (
    "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[{0}], "
    "failed to process volumes=[]: timed out waiting for the condition"
)


def _by_style(style: str, go: str, java: str, python: str) -> str:
    return {"java": java, "python": python}.get(style, go)


def _store_claims(w: World) -> dict[str, ClaimObj]:
    """The datastores' claims from their volumeClaimTemplates, bound since they were made."""
    cls = CLASSES[w.cluster.flavor][0]
    out = {}
    for name in (w.db, w.cache):
        wl = w.workloads[name]
        pod = next(p for p in wl.pods if p.deleted is None)
        out[name] = ClaimObj(
            name=f"data-{name}-0",
            namespace=wl.namespace,
            workload=name,
            created=wl.created + sec(w.rng.uniform(0.5, 2)),
            storage_class=cls,
            size="50Gi",
            access="ReadWriteOnce",
            mount=MOUNTS[wl.role],
            selected_node=pod.node or "",
        )
    w.claims += out.values()
    return out


def storage(w: World, variant: int) -> None:
    mode = ("provisioning", "attach", "mount")[variant % 3]
    if mode == "provisioning":
        _unbound(w)
    else:
        _moved_store(w, mode)


def _unbound(w: World) -> None:
    """A rollout mounts a new claim whose StorageClass is missing or cannot make the volume:
    the claim stays Pending, the new pods wait for it, the rollout stalls half-way."""
    rng = w.rng
    t0 = w.onset
    n = len(w.nodes)
    svc = rng.choice([*w.mids, *w.leaves])
    wl = w.workloads[svc]
    wl.max_unavailable = "50%"
    default, driver, _ = CLASSES[w.cluster.flavor]
    too_small = w.cluster.flavor == "eks" and rng.random() < 0.5
    vol = rng.choice(("cache", "spool", "scratch", "uploads"))
    name = f"{svc}-{vol}"
    if too_small:
        cls, size = "io2", "1Gi"
    else:
        cls, size = rng.choice(("fast-ssd", f"{default}-encrypted", "shared-rwx")), "10Gi"
    applied = t0 - sec(rng.uniform(2, 6))
    objects = [("PersistentVolumeClaim", wl.namespace, name), ("Deployment", wl.namespace, svc)]
    gitops_sync(w, applied, objects)
    claim = ClaimObj(
        name=name,
        namespace=wl.namespace,
        workload=svc,
        created=applied + sec(1),
        storage_class=cls,
        size=size,
        access="ReadWriteMany" if "rwx" in cls else "ReadWriteOnce",
        mount=f"/var/{vol}/{svc}",
        volume=vol,
        phase="Pending",
        since=wl.current.number + 1,
        manager=w.gitops_manager,
    )
    w.claims.append(claim)
    made = claim.created
    retries = int((w.now - made).total_seconds() // 15) + 1
    if too_small:
        pv = volume_name(w, claim)
        controller = (
            f"{driver}_ebs-csi-controller-{uid(w.key, 'csi')[:10].replace('-', '')}-"
            f"{uid(w.key, 'csi-pod')[:5]}_{uid(w.key, 'csi-id')}"
        )
        w.ev(
            "PersistentVolumeClaim",
            name,
            "ExternalProvisioning",
            f"Waiting for a volume to be created either by the external provisioner '{driver}' "
            "or manually by the system administrator. If volume creation is delayed, please "
            "verify that the provisioner is running and correctly registered.",
            made + sec(0.1),
            last=w.now - sec(rng.uniform(1, 14)),
            count=retries,
            component="persistentvolume-controller",
        )
        backoff = max(2, min(12, retries // 8))
        w.ev(
            "PersistentVolumeClaim",
            name,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{wl.namespace}/{name}"',
            made + sec(0.2),
            last=w.now - sec(rng.uniform(10, 200)),
            count=backoff,
            component=controller,
        )
        w.ev(
            "PersistentVolumeClaim",
            name,
            "ProvisioningFailed",
            f'failed to provision volume with StorageClass "{cls}": rpc error: code = Internal '
            f'desc = Could not create volume "{pv}": could not create volume in EC2: operation '
            "error EC2: CreateVolume, https response error StatusCode: 400, RequestID: "
            f"{uid(w.key, 'request')}, api error InvalidParameterValue: Volume of 1GiB is too "
            "small; minimum is 4GiB.",
            made + sec(1.5),
            last=w.now - sec(rng.uniform(10, 200)),
            count=backoff,
            warning=True,
            component=controller,
        )
    else:
        w.ev(
            "PersistentVolumeClaim",
            name,
            "ProvisioningFailed",
            f'storageclass.storage.k8s.io "{cls}" not found',
            made + sec(0.1),
            last=w.now - sec(rng.uniform(1, 14)),
            count=retries,
            warning=True,
            component="persistentvolume-controller",
        )
    pending = (
        f"0/{n} nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
    )
    tag = bump(wl.current.tag, rng)
    rev, _ = rollout(w, wl, t0, healthy=False, via="applied-above", tag=tag, pending=pending)
    path = fewer_pods(w, svc, t0 + sec(rng.uniform(20, 60)))
    w.set_truth(
        "Deployment",
        svc,
        svc,
        "storage",
        "provisioning-" + ("provisioner" if too_small else "class"),
        propagation=path,
        aliases=[name, f"{svc}-{rev.hash}"],
    )


def _next(tag: str) -> str:
    parts = tag.split(".")
    return ".".join([*parts[:-1], str(int(parts[-1]) + 1)])


def _moved_store(w: World, mode: str) -> None:
    """A datastore's pod is replaced (a restart, an image update) and lands on another node,
    where its volume cannot be used: still attached to the old node, or a filesystem that will
    not mount. The datastore is down; its callers' connections are refused."""
    rng = w.rng
    t0 = w.onset
    store = rng.choice((w.db, w.cache))
    wl = w.workloads[store]
    claim = _store_claims(w)[store]
    _, driver, device = CLASSES[w.cluster.flavor]
    p = next(p for p in wl.pods if p.deleted is None)
    node = rng.choice([n.name for n in w.nodes if n.name != p.node and n.ready])
    old = wl.current
    if mode == "attach":  # kubectl rollout restart statefulset/<store>
        restarted = old.annotations | {"kubectl.kubernetes.io/restartedAt": ts(t0)}
        new = replace(old, number=old.number + 1, created=t0, annotations=restarted)
    else:
        gitops_sync(w, t0 - sec(rng.uniform(2, 6)), [("StatefulSet", wl.namespace, store)])
        new = replace(old, number=old.number + 1, created=t0, tag=_next(old.tag))
    new.hash = template_hash(wl, new)
    wl.revisions.append(new)
    wl.rolled = True
    ns = wl.namespace
    said = f"delete Pod {p.name} in StatefulSet {store} successful"
    w.ev("StatefulSet", store, "SuccessfulDelete", said, t0 + sec(0.3), component=CONTROLLER, ns=ns)
    w.ev("Pod", p.name, "Killing", f"Stopping container {store}", t0 + sec(0.4), host=p.node, ns=ns)
    gone = t0 + sec(rng.uniform(3, 12))
    p.deleted = gone
    q = new_pod(w, wl, new, gone + sec(0.4), node, ordinal=0)
    q.started, q.ready, q.quiet, q.phase, q.ip = None, False, True, "Pending", ""
    q.ready_changed, q.waiting = q.created, ("ContainerCreating", "")
    said = f"create Pod {q.name} in StatefulSet {store} successful"
    w.ev("StatefulSet", store, "SuccessfulCreate", said, q.created, component=CONTROLLER, ns=ns)
    said = f"Successfully assigned {ns}/{q.name} to {node}"
    w.ev(
        "Pod", q.name, "Scheduled", said, q.created + sec(0.1), component="default-scheduler", ns=ns
    )
    pv = volume_name(w, claim)
    _volume_events(w, wl, q.name, q.created, node, pv, mode, driver, device)
    _store_down(w, wl, gone)
    path = w.path_to_entry(store)
    w.set_truth(
        "StatefulSet",
        store,
        store,
        "storage",
        mode,
        propagation=path,
        aliases=[claim.name, f"{store}-0"],
    )


def _volume_events(
    w: World,
    wl: Workload,
    pod: str,
    created: datetime,
    node: str,
    pv: str,
    mode: str,
    driver: str,
    device: str,
) -> None:
    rng = w.rng
    ns = wl.namespace
    elapsed = (w.now - created).total_seconds()
    if mode == "attach":
        w.ev(
            "Pod",
            pod,
            "FailedAttachVolume",
            f'Multi-Attach error for volume "{pv}" Volume is already exclusively attached to one '
            "node and can't be attached to another",
            created + sec(0.5),
            last=w.now - sec(rng.uniform(1, 60)),
            count=int(elapsed // 90) + 1,
            warning=True,
            component="attachdetach-controller",
            ns=ns,
        )
        unattached = "data"
    else:
        attached = created + sec(rng.uniform(4, 15))
        w.ev(
            "Pod",
            pod,
            "SuccessfulAttachVolume",
            f'AttachVolume.Attach succeeded for volume "{pv}"',
            attached,
            component="attachdetach-controller",
            ns=ns,
        )
        digest = hashlib.sha256(pv.encode()).hexdigest()
        mount = f"/var/lib/kubelet/plugins/kubernetes.io/csi/{driver}/{digest}/globalmount"
        w.ev(
            "Pod",
            pod,
            "FailedMount",
            f'MountVolume.MountDevice failed for volume "{pv}" : rpc error: code = Internal desc '
            f'= could not format "{device}" and mount it at "{mount}": mount failed: exit status '
            f"32\nMounting command: mount\nMounting arguments: -t ext4 -o defaults {device} "
            f"{mount}\nOutput: mount: {mount}: wrong fs type, bad option, bad superblock on "
            f"{device}, missing codepage or helper program, or other error.",
            attached + sec(1),
            last=w.now - sec(rng.uniform(1, 120)),
            count=int(elapsed // 122) + 4,
            warning=True,
            host=node,
            ns=ns,
        )
        unattached = ""
    first = created + sec(122)
    w.ev(
        "Pod",
        pod,
        "FailedMount",
        UNMOUNTED.format(unattached),
        first,
        last=w.now - sec(rng.uniform(1, 120)),
        count=int(max(0.0, elapsed - 122) // 135) + 1,
        warning=True,
        host=node,
        ns=ns,
    )


def _store_down(w: World, wl: Workload, gone: datetime) -> None:
    """Nothing serves the datastore's Service: callers' connections are refused."""
    rng = w.rng
    store = wl.name
    w.shift(store, "err", gone, to=0.95, ramp=20)
    w.shift(store, "rps", gone, mul=0.03, ramp=20)
    ip = w.cluster_ips[store]
    host = f"{store}.{wl.namespace}.svc.cluster.local"

    def message(style: str, caller: str) -> str:
        if wl.role == "cache":
            return _by_style(
                style,
                f"redis: dial tcp {ip}:6379: connect: connection refused",
                f"io.lettuce.core.RedisConnectionException: Unable to connect to {host}/{ip}:6379",
                f"redis.exceptions.ConnectionError: Error 111 connecting to {host}:6379. "
                "Connection refused.",
            )
        user = caller.replace("-", "_")
        return _by_style(
            style,
            f"failed to connect to `host={host} user={user} database={user}`: dial error "
            f"(dial tcp {ip}:5432: connect: connection refused)",
            f"org.postgresql.util.PSQLException: Connection to {host}:5432 refused. Check that "
            "the hostname and port are correct and that the postmaster is accepting TCP/IP "
            "connections.",
            f'psycopg.OperationalError: connection failed: connection to server at "{ip}", '
            "port 5432 failed: Connection refused",
        )

    path = w.path_to_entry(store)
    err = rng.uniform(0.25, 0.45)
    first = path[1]
    for c in w.callers(store):
        t = gone + sec(rng.uniform(5, 30))
        w.shift(c, "err", t, add=err if c == first else err * 0.4)
        w.shift(c, "p99", t, mul=1.8 if c == first else 1.2)
        w.repeat(c, t, [message(w.workloads[c].style, c)], every=(6, 30))
    when = w.propagate(path[1:], gone + sec(30), err=err * 0.85, lat=1.8)
    when[store] = gone
    caller_logs(w, path[1:], when, upstream_5xx(first))
    symptoms(w, path, when, "errors")
