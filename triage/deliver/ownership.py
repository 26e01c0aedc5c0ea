"""Who owns the alerting workload, as the cluster says: labels and annotations on the Deployment
(StatefulSet, DaemonSet) or its Namespace, read through the official client, read-only.

Keys, most specific first: annotation ``triage.io/owner``, label ``triage.io/owner``, then
``team``; ``triage.io/slack-channel`` (comma-separated) for channels. The workload beats its
namespace field by field. A missing object is no ownership; any other failure is a
CollectorError, and routing falls back to the rules.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from collectors.contracts import WORKLOAD_LABEL_KINDS
from triage.deliver.routing import CHANNEL, Ownership
from triage.errors import CollectorError, ConfigError

log = structlog.get_logger(__name__)

OWNER_KEYS = ("triage.io/owner", "team")
CHANNEL_KEY = "triage.io/slack-channel"
_READ = {
    "deployment": "read_namespaced_deployment",
    "statefulset": "read_namespaced_stateful_set",
    "daemonset": "read_namespaced_daemon_set",
}
# Alert labels naming a workload this can read: (label, kind, client method). Labels that name
# their own kind come first, ahead of guesses such as `service` (a Deployment of that name).
WORKLOAD_LABELS = tuple(
    (label, kind, _READ[kind])
    for label, kind in sorted(WORKLOAD_LABEL_KINDS.items(), key=lambda lk: lk[0] != lk[1])
    if kind is not None
)


def owner_fields(metadata: Any) -> tuple[str | None, tuple[str, ...]]:
    """Team and channels from an object's metadata; annotations beat labels."""
    annotations = dict(getattr(metadata, "annotations", None) or {})
    labels = dict(getattr(metadata, "labels", None) or {})
    team = None
    for key in OWNER_KEYS:
        team = annotations.get(key) or labels.get(key)
        if team:
            break
    raw = annotations.get(CHANNEL_KEY) or labels.get(CHANNEL_KEY) or ""
    channels = []
    for ch in (c.strip() for c in raw.split(",")):
        if not ch:
            continue
        # Labels cannot hold "#", so a bare name means the channel of that name.
        ch = ch if ch.startswith("#") or (ch[0] in "CG" and ch.isupper()) else f"#{ch}"
        if CHANNEL.match(ch):
            channels.append(ch)
        else:
            log.warning("ownership_channel_ignored", channel=ch[:100])
    team = team.strip()[:80] if team else None
    return team or None, tuple(channels)


class KubernetesOwnership:
    """``OwnerLookup`` over the Kubernetes API; answers are cached for ``cache_s``."""

    def __init__(self, api: k8s.ApiClient, *, timeout_s: float = 5, cache_s: float = 60) -> None:
        self._apps = k8s.AppsV1Api(api)
        self._core = k8s.CoreV1Api(api)
        self._timeout = timeout_s
        self._cache_s = cache_s
        self._cache: dict[tuple[str, ...], tuple[float, Ownership | None]] = {}

    async def lookup(self, labels: dict[str, str]) -> Ownership | None:
        namespace = labels.get("namespace")
        if not namespace:
            return None
        workloads = [
            (kind, labels[key], method) for key, kind, method in WORKLOAD_LABELS if labels.get(key)
        ]
        key = (namespace, *(f"{k}/{n}" for k, n, _ in workloads))
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await asyncio.to_thread(self._lookup, namespace, workloads)
        self._cache[key] = (time.monotonic() + self._cache_s, found)
        return found

    def _lookup(self, namespace: str, workloads: list[tuple[str, str, str]]) -> Ownership | None:
        team: str | None = None
        channels: tuple[str, ...] = ()
        sources: list[str] = []
        for kind, name, method in workloads:
            obj = self._read(getattr(self._apps, method), name, namespace)
            if obj is None:
                continue
            team, channels = owner_fields(obj.metadata)
            if team or channels:
                sources.append(f"{kind} {namespace}/{name}")
            break  # the first workload that exists is the one alerting
        if team is None or not channels:
            ns = self._read(self._core.read_namespace, namespace)
            if ns is not None:
                ns_team, ns_channels = owner_fields(ns.metadata)
                if (ns_team and team is None) or (ns_channels and not channels):
                    sources.append(f"namespace {namespace}")
                team = team or ns_team
                channels = channels or ns_channels
        if team is None and not channels:
            return None
        return Ownership(team=team, channels=channels, source=", ".join(sources))

    def _read(self, method: Any, *args: str) -> Any:
        try:
            return method(*args, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise CollectorError(
                f"kubernetes {method.__name__}{args}: {exc.status} {exc.reason}",
                collector="ownership",
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CollectorError(
                f"kubernetes unreachable: {type(exc).__name__}: {exc}", collector="ownership"
            ) from exc


def api_client(
    *, kubeconfig: str | None, context: str | None, in_cluster: bool
) -> k8s.ApiClient | None:
    """The configured client, or None when no Kubernetes is configured; a broken configuration
    stops the service at start. Reads files: call it off the event loop."""
    from kubernetes import config

    try:
        if in_cluster:
            cfg = k8s.Configuration()
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            cfg.retries = 1
            return k8s.ApiClient(cfg)
        if kubeconfig:
            cfg = k8s.Configuration()
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
            cfg.retries = 1
            return k8s.ApiClient(cfg)
    except (config.ConfigException, OSError, ValueError) as exc:
        where = (
            "TRIAGE_KUBERNETES_IN_CLUSTER=true (not running in a pod?)"
            if in_cluster
            else f"TRIAGE_KUBERNETES_KUBECONFIG={kubeconfig}"
            + (f", TRIAGE_KUBERNETES_CONTEXT={context}" if context else "")
        )
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"{where}: {reason}", setting="kubernetes") from exc
    return None
