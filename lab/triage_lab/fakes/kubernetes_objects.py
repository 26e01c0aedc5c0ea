"""Kubernetes API objects as the API server returns them: the one set of builders the fake
API's users, the corpus generator and the importers share.

Identity (uid, creation time, resourceVersion) is the caller's: the defaults are readable
fixture values; the generator and importers pass their own, and ``None`` leaves a field out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def ts(t: datetime | int) -> str:
    """RFC 3339 in UTC to the second, as the API server writes times (a number is Unix time)."""
    at = t if isinstance(t, datetime) else datetime.fromtimestamp(t, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(
    name: str,
    uid: str,
    *,
    namespace: str | None = None,
    created: datetime | int | None = None,
    resource_version: str | None = None,
    **more: Any,
) -> Obj:
    """ObjectMeta. Further fields given empty are left out, as the API server omits them."""
    meta: Obj = {"name": name, "uid": uid}
    if namespace is not None:
        meta["namespace"] = namespace
    if created is not None:
        meta["creationTimestamp"] = ts(created)
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    meta.update({k: v for k, v in more.items() if v})
    return meta


def owner_reference(kind: str, name: str, uid: str, api: str = "apps/v1") -> Obj:
    """The controller's ownerReference, as controllers set it on what they create."""
    return {
        "apiVersion": api,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def namespace(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    uid: str | None = None,
    created: datetime | int | None = None,
    resource_version: str | None = "1",
    server_defaults: bool = True,
) -> Obj:
    """A Namespace. ``server_defaults`` adds what the API server adds itself (the
    kubernetes.io/metadata.name label, the kubernetes finalizer); an importer that records only
    what its dataset says turns it off."""
    own = {"kubernetes.io/metadata.name": name} if server_defaults else {}
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(
            name,
            uid or f"uid-ns-{name}",
            created=created,
            resource_version=resource_version,
            labels=own | (labels or {}),
            annotations=annotations,
        ),
    }
    if server_defaults:
        obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}
    return obj


def pod_template(
    labels: dict[str, str], containers: list[Obj], *, annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:  # fmt: skip
    """A workload's pod template: labels (and annotations), containers and further pod spec."""
    meta: Obj = {"labels": labels}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"containers": containers, **spec}}


def deployment(
    namespace: str,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    revision: int = 7,
    replicas: int = 2,
    template: Obj | None = None,
    strategy: Obj | None = None,
    status: Obj | None = None,
    uid: str | None = None,
    created: datetime | int | None = None,
    resource_version: str | None = "1",
    generation: int | None = None,
    **spec: Any,
) -> Obj:
    """A Deployment selecting ``app=name``. Left out, the template is one container
    ``registry/<name>:<revision>`` and the status has every replica ready."""
    body: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": pod_template(
            {"app": name}, [{"name": name, "image": f"registry/{name}:{revision}"}]
        )
        if template is None
        else template,
        **spec,
    }
    if strategy is not None:
        body["strategy"] = strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            name,
            uid or f"uid-{namespace}-{name}",
            namespace=namespace,
            created=created,
            resource_version=resource_version,
            generation=generation,
            labels={"app": name, **(labels or {})},
            annotations={"deployment.kubernetes.io/revision": str(revision), **(annotations or {})},
        ),
        "spec": body,
        "status": {"replicas": replicas, "readyReplicas": replicas} if status is None else status,
    }


def replicaset(
    namespace: str,
    name: str,
    *,
    owner: Obj,
    revision: int,
    labels: dict[str, str],
    selector: dict[str, str],
    template: Obj,
    replicas: int,
    ready: int,
    desired: int | None = None,
    generation: int = 1,
    annotations: dict[str, str] | None = None,
    uid: str | None = None,
    created: datetime | int | None = None,
    resource_version: str | None = "1",
) -> Obj:
    """A Deployment's ReplicaSet: ``replicas`` pods exist, ``ready`` of them ready; ``desired``
    (the spec) defaults to what exists."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata(
            name,
            uid or f"uid-{namespace}-{name}",
            namespace=namespace,
            created=created,
            resource_version=resource_version,
            generation=generation,
            labels=labels,
            annotations={**(annotations or {}), "deployment.kubernetes.io/revision": str(revision)},
            ownerReferences=[owner],
        ),
        "spec": {
            "replicas": replicas if desired is None else desired,
            "selector": {"matchLabels": selector},
            "template": template,
        },
        "status": {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": generation,
        },
    }
