"""Volumes a workload's pods cannot use, through the Kubernetes API fake and the real client: a
claim that never binds, a ReadWriteOnce volume still attached elsewhere, a volume that will not
mount. Each names the workload that mounts the claim, as a storage fault, above the callers that
lose it."""

from __future__ import annotations

from typing import Any

from triage_lab.scenarios import KubeObjects

from tests.support.kube_collect import Obj, of_kind, suffers
from tests.support.kube_objects import collect, deployment, event, meta, pending, pod, pvc, ranked

PV = "pvc-4150a3ca-9673-44de-a6d6-20dc5d84914f"
MULTI_ATTACH = (
    f'Multi-Attach error for volume "{PV}" Volume is already exclusively attached to one node '
    "and can't be attached to another"
)
UNMOUNTED = (
    "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], "
    "failed to process volumes=[]: timed out waiting for the condition"
)


def statefulset(name: str, available: int = 0) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(name, labels={"app": name}),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
        },
        "status": {"replicas": 1, "availableReplicas": available},
    }


def creating() -> Obj:
    """A pod placed on a node whose container waits for its volumes."""
    return {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "db", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ],
    }


def mounting(name: str, claim: str, **more: Any) -> Obj:
    volumes = [
        {"name": "tls", "secret": {"secretName": f"{name}-tls"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
    ]
    return pod(f"{name}-0", name, creating(), nodeName="node-b", volumes=volumes, **more)


def bound(name: str) -> Obj:
    claim = pvc(name, "gp3", phase="Bound")
    claim["spec"]["volumeName"] = PV
    return claim


async def test_a_volume_still_attached_elsewhere_names_the_datastore():
    objects = KubeObjects(
        deployments=[deployment("web")],
        statefulsets=[statefulset("db")],
        pods=[mounting("db", "data-db-0")],
        persistentvolumeclaims=[bound("data-db-0")],
        events=[
            event("FailedAttachVolume", "Pod", "db-0", MULTI_ATTACH, first=-1),
            event("FailedMount", "Pod", "db-0", UNMOUNTED, first=1),
        ],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "volume")
    assert item.subject == "db" and item.related == ["data-db-0"]
    assert item.fault_hint == "storage"
    assert f"PersistentVolumeClaim data-db-0 is Bound (StorageClass gp3, volume {PV})" in (
        item.summary
    )
    assert "12x FailedAttachVolume: Multi-Attach error" in item.summary
    assert "12x FailedMount: Unable to attach or mount volumes" in item.summary
    rca = await ranked(evidence, suffers("web", "db"))
    assert rca.suspects[0].component == "db"
    assert rca.suspects[0].kind == "storage"
    assert "volume" in rca.suspects[0].breakdown


async def test_a_filesystem_that_will_not_mount_is_a_storage_fault():
    message = (
        f'MountVolume.MountDevice failed for volume "{PV}" : rpc error: code = Internal desc = '
        'could not format "/dev/nvme1n1" and mount it at "/var/lib/kubelet/plugins/x/globalmount"'
        ": mount failed: exit status 32"
    )
    objects = KubeObjects(
        deployments=[deployment("web")],
        statefulsets=[statefulset("db")],
        pods=[mounting("db", "data-db-0")],
        persistentvolumeclaims=[bound("data-db-0")],
        events=[event("FailedMount", "Pod", "db-0", message, first=0)],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "volume")
    assert "MountVolume.MountDevice failed" in item.summary
    rca = await ranked(evidence, suffers("web", "db"))
    assert (rca.suspects[0].component, rca.suspects[0].kind) == ("db", "storage")


async def test_a_claim_whose_class_is_missing_names_the_workload_that_mounts_it():
    waiting = "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    volumes = [{"name": "spool", "persistentVolumeClaim": {"claimName": "search-spool"}}]
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search", replicas=2, available=1)],
        pods=[pod("search-7d9f-a", "search", pending(waiting, since=0), volumes=volumes)],
        persistentvolumeclaims=[pvc("search-spool", "fast-ssd")],
        events=[
            event(
                "ProvisioningFailed",
                "PersistentVolumeClaim",
                "search-spool",
                'storageclass.storage.k8s.io "fast-ssd" not found',
                first=0,
            ),
            event("FailedScheduling", "Pod", "search-7d9f-a", waiting, first=0),
        ],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "volume")
    assert item.subject == "search" and item.related == ["search-spool"]
    assert "PersistentVolumeClaim search-spool is Pending (StorageClass fast-ssd)" in item.summary
    assert 'storageclass.storage.k8s.io "fast-ssd" not found' in item.summary
    rca = await ranked(evidence, suffers("web", "search"))
    # The scheduler's FailedScheduling says "scheduling"; the claim says why.
    assert (rca.suspects[0].component, rca.suspects[0].kind) == ("search", "storage")


async def test_a_claim_no_pod_mounts_yet_names_its_statefulset_by_the_claim_name():
    objects = KubeObjects(
        statefulsets=[statefulset("db")],
        persistentvolumeclaims=[pvc("data-db-1", "io2")],
        events=[
            event(
                "ProvisioningFailed",
                "PersistentVolumeClaim",
                "data-db-1",
                'failed to provision volume with StorageClass "io2": InvalidParameterValue',
            )
        ],
    )
    (item,) = of_kind(await collect(objects), "volume")
    assert item.subject == "db" and item.related == ["data-db-1"]


async def test_a_missing_secret_volume_is_not_a_storage_fault():
    message = 'MountVolume.SetUp failed for volume "tls" : secret "db-tls" not found'
    objects = KubeObjects(
        deployments=[deployment("web")],
        statefulsets=[statefulset("db")],
        pods=[mounting("db", "data-db-0")],
        persistentvolumeclaims=[bound("data-db-0")],
        events=[event("FailedMount", "Pod", "db-0", message, first=-1)],
    )
    evidence = await collect(objects)
    assert not of_kind(evidence, "volume")
    rca = await ranked(evidence, suffers("web", "db"))
    assert rca.suspects[0].kind != "storage"


async def test_volume_trouble_that_began_long_after_the_onset_explains_little():
    objects = KubeObjects(
        statefulsets=[statefulset("db")],
        pods=[mounting("db", "data-db-0")],
        persistentvolumeclaims=[bound("data-db-0")],
        events=[event("FailedAttachVolume", "Pod", "db-0", MULTI_ATTACH, first=8)],
    )
    (item,) = of_kind(await collect(objects), "volume")
    assert item.score < 0.3
