"""Kubernetes API objects as the API server returns them, from the generator's model: the
seed-derived identity every object carries, Namespaces and Events (other kinds: ``kube_*``)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from triage_lab.fakes import kubernetes_objects as api
from triage_lab.fakes.kubernetes_objects import Obj, ts

SAFE = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names


def uid(*key: str) -> str:
    h = hashlib.sha256("/".join(key).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def safe_hash(text: str, n: int = 10) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(SAFE[b % len(SAFE)] for b in digest[:n])


def identity(kind: str, name: str, ns: str | None, created: datetime, seed: str) -> Obj:
    """uid, creation time and resourceVersion, derived from the seed: the same corpus each run."""
    the_uid = uid(seed, kind, ns or "", name)
    version = str(int(hashlib.sha256(the_uid.encode()).hexdigest()[:7], 16))
    return {"uid": the_uid, "created": created, "resource_version": version}


def object_meta(
    kind: str, name: str, ns: str | None, created: datetime, seed: str, **more: Any
) -> Obj:
    return api.metadata(name, namespace=ns, **identity(kind, name, ns, created, seed), **more)


def owner_refs(kind: str, name: str, ns: str, seed: str) -> list[Obj]:
    return [api.owner_reference(kind, name, uid(seed, kind, ns, name))]


def namespace(name: str, created: datetime, seed: str) -> Obj:
    return api.namespace(name, **identity("Namespace", name, None, created, seed))


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
        "metadata": object_meta("Event", key, ns, first, seed),
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
