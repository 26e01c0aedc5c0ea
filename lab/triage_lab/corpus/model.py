"""The generator's own picture of a cluster: workloads, revisions, pods, config objects. The
builders in :mod:`triage.corpus.kube` turn it into the JSON the API server would return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Per-sample override of a pod's metric: (sample index, value it would have had) -> value.
Override = Callable[[int, float], float]


@dataclass
class Revision:
    number: int
    created: datetime
    tag: str
    env: dict[str, str]
    config: str | None  # ConfigMap mounted as the service's config directory
    env_secrets: list[str]  # Secrets loaded with envFrom
    tls_secret: str | None  # Secret mounted as the serving certificate
    cpu_request: str
    cpu_limit: str | None
    mem_request: str
    mem_limit: str
    readiness: dict[str, Any]
    liveness: dict[str, Any]
    annotations: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)  # beyond the defaults
    args: list[str] = field(default_factory=list)
    hash: str = ""
    desired: int | None = None  # ReplicaSet size when its pods could not be created


@dataclass
class Pod:
    name: str
    workload: str
    revision: int
    node: str | None
    created: datetime
    ip: str
    deleted: datetime | None = None  # gone before the snapshot: only its metrics remain
    terminating: datetime | None = None  # deletionTimestamp set, kubelet never confirmed
    dark_since: datetime | None = None  # no metrics from here on (node gone, pod evicted)
    unreachable: bool = False  # kubectl logs cannot reach it
    ready: bool = True
    ready_changed: datetime | None = None
    phase: str = "Running"
    reason: str = ""  # pod-level status reason, e.g. Evicted
    message: str = ""
    unschedulable: str = ""  # PodScheduled=False message
    started: datetime | None = None  # current container start; None if it never started
    restarts: list[datetime] = field(default_factory=list)
    waiting: tuple[str, str] | None = None
    last: dict[str, Any] | None = None  # lastState.terminated
    logs: list[tuple[datetime, str]] = field(default_factory=list)
    prev_logs: list[tuple[datetime, str]] = field(default_factory=list)
    quiet: bool = False  # no baseline log lines (the process does not serve)
    over: dict[str, Override] = field(default_factory=dict)
    jitter: float = 1.0

    def alive(self, t: datetime) -> bool:
        return self.created <= t and (self.deleted is None or t < self.deleted)

    def running(self, t: datetime) -> bool:
        return self.alive(t) and self.started is not None and self.started <= t


@dataclass
class Hpa:
    min_replicas: int
    max_replicas: int
    target_cpu: int
    utilization: int
    current: int
    last_scale: datetime
    history: list[tuple[datetime, int]]  # (time, replicas) steps, for the metric series
    limited: bool = False
    desired: int | None = None  # what it asked for when the pods could not be created


@dataclass
class Workload:
    name: str
    namespace: str
    kind: str  # Deployment | StatefulSet
    role: str  # entry | mid | leaf | db | cache | dns | gitops
    port: int
    style: str  # log style
    repo: str  # image without tag
    replicas: int
    created: datetime
    revisions: list[Revision] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    extra_labels: dict[str, str] = field(default_factory=dict)
    base: dict[str, float] = field(default_factory=dict)
    m: dict[str, list[float]] = field(default_factory=dict)  # service-level timelines
    hpa: Hpa | None = None
    max_surge: str = "25%"
    max_unavailable: str = "25%"
    stalled_since: datetime | None = None  # rollout that stopped making progress
    rolled: bool = False  # a revision appeared inside the metrics window
    external: str | None = None  # host outside the cluster it calls
    team: str = ""

    @property
    def current(self) -> Revision:
        return self.revisions[-1]

    def revision(self, number: int) -> Revision:
        return next(r for r in self.revisions if r.number == number)


@dataclass
class PolicyObj:
    """A NetworkPolicy: which pods it selects and who may reach them."""

    name: str
    namespace: str
    selector: dict[str, str]  # matchLabels; empty selects every pod in the namespace
    created: datetime
    changed: datetime
    manager: str
    ingress_from: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ConfigObj:
    kind: str  # ConfigMap | Secret
    name: str
    namespace: str
    created: datetime
    changed: datetime
    manager: str
    data: dict[str, str] = field(default_factory=dict)  # ConfigMaps only; Secrets: keys only
    secret_type: str = "Opaque"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class NodeInfo:
    name: str
    zone: str
    ip: str
    created: datetime
    index: int
    ready: bool = True
    not_ready_since: datetime | None = None
    pressure: str | None = None  # MemoryPressure | DiskPressure
    pressure_since: datetime | None = None
    taints: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ServiceEdit:
    """A write to a Service after its creation: a new selector or targetPort, by whom, when."""

    changed: datetime
    manager: str
    selector: dict[str, str] | None = None
    target_port: int | None = None


@dataclass
class RouteObj:
    """An Ingress (networking.k8s.io/v1) or HTTPRoute (gateway.networking.k8s.io/v1) sending a
    host's traffic to a Service."""

    kind: str  # Ingress | HTTPRoute
    name: str
    namespace: str
    host: str
    backend: str  # Service name
    port: int
    created: datetime
    changed: datetime
    manager: str
    parent: str = ""  # HTTPRoute: the Gateway, namespace/name


@dataclass
class QuotaObj:
    """A namespace's ResourceQuota: hard limits and what the namespace's pods use of them."""

    name: str
    namespace: str
    created: datetime
    manager: str
    hard: dict[str, str]
    used: dict[str, str]


@dataclass
class LimitRangeObj:
    """A namespace's LimitRange: per-Container bounds and defaults (``spec.limits``)."""

    name: str
    namespace: str
    created: datetime
    manager: str
    limits: list[dict[str, Any]]


@dataclass
class ClaimObj:
    """A PersistentVolumeClaim and the pods that mount it (from revision ``since`` on)."""

    name: str
    namespace: str
    workload: str
    created: datetime
    storage_class: str
    size: str
    access: str  # ReadWriteOnce | ReadWriteMany
    mount: str  # mountPath in the container
    volume: str = "data"  # the pod's volume name
    phase: str = "Bound"
    pods: list[str] = field(default_factory=list)  # pod names; empty: every pod of the workload
    since: int = 1  # first revision that mounts it
    manager: str = ""
    selected_node: str = ""
