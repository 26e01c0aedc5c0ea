"""ChangeRCA cases as scenarios (docs/scenarios.md): ``triage eval import-changerca SRC DEST``.

Input is the layout of the ChangeRCA OnlineBoutique dataset (IntelligentDDS/ChangeRCA,
``data/<day>/``): ``<case>/<case>.json`` with the rollout ``plan`` and ``detect_timestamp``, and
``<pod>_<caller>_<callee>.csv`` with one-minute samples per pod and call edge. Everything else
(other methods' ``*_result`` fields, their folders and ``gied.json``, the service-level
``dependency.csv`` / ``*_success.csv``) is ignored.

Ground truth goes to truth.json only: :func:`_ground_truth` is the one reader of
``fault_release_service`` and ``fault``. ``normal_service_list`` (the benign changes: the
complement of the answer) and the ``fault`` inside ``plan`` entries are never read, and every
list is emitted sorted, because the plan lists the faulty service first.

Modelling:

- A CSV's pod belongs to the service its name starts with (``adservice-v2-fd6989b7c-w7f44``
  -> adservice, v2, ReplicaSet ``adservice-v2-fd6989b7c``). The pod is the callee on its
  callers' edges (``adservice-…_frontend_adservice``) and the caller on its own
  (``frontend-…_frontend_adservice``); the ``caller``/``callee`` labels keep both readings.
- kubernetes.json is the cluster after the recorded rollouts. A rolled-out service has its old
  ReplicaSet (revision 1) and the new one (revision 2, created at the plan's ``release_time``).
  Pods the rollout deleted (``delete_pod``) are gone; their metric series remain. A released pod
  was created at its step's ``release_complete_timestamp``: the step keys are out of time order
  past the second step, the completion times are not, and the pods' first samples follow them.
  What predates the recording (Deployments, old ReplicaSets and their pods) is dated a day
  before the first sample: the real age is unknown, and a day keeps it out of any
  investigation window.
- Rollouts that start after ``detect_timestamp`` are kept, with their real times.
- Each CSV cell becomes one gauge sample labelled namespace/service/pod/version/caller/callee
  (namespace as Kubernetes service discovery adds it; collectors select by it). A NaN cell
  (a minute without data) is left out, a gap as Prometheus would have; a row with a cell that
  is not a number is dropped. The log line of each case counts both.
- The alert: FrontendSLOBurn on frontend at ``detect_timestamp``.
- truth.json ``onset`` is the faulty service's ``release_time``, when the cause began.
"""

from __future__ import annotations

import csv
import json
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_plus

import structlog
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest
from pydantic import BaseModel, ConfigDict, ValidationError

from triage.models import AlertmanagerWebhook
from triage_lab.scenarios import (
    GroundTruth,
    KubeObjects,
    ScenarioError,
    ScenarioMeta,
    write_scenario,
)

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

SOURCE = "changerca-importer"
NAMESPACE = "onlineboutique"
ENTRY_SERVICE = "frontend"
ALERT_NAME = "FrontendSLOBurn"
ALERT_EXPR = f'changerca_success_rate{{service="{ENTRY_SERVICE}"}}'
# CSV column -> gauge; the values are kept as recorded (percent, milliseconds).
METRICS = (
    ("SuccessRate", "changerca_success_rate"),
    ("Latency", "changerca_latency_ms"),
    ("CPUUsageRate(%)", "changerca_cpu_usage_percent"),
    ("MemoryUsageRate(%)", "changerca_memory_usage_percent"),
    ("NodeCpuUsageRate(%)", "changerca_node_cpu_usage_percent"),
    ("NodeMemoryUsageRate(%)", "changerca_node_memory_usage_percent"),
)
LABELS = ("namespace", "service", "pod", "version", "caller", "callee")
PREDATES = timedelta(days=1)

_EDGE_CSV = re.compile(
    r"^(?P<pod>[a-z0-9-]+-v\d+-[a-z0-9]+-[a-z0-9]+)_(?P<caller>[a-z0-9-]+)_(?P<callee>[a-z0-9-]+)"
    r"\.csv$"
)
_VERSIONED = re.compile(r"^(?P<service>.+)-(?P<version>v\d+)$")


# -- input ----------------------------------------------------------------------------------------


class _Lenient(BaseModel):
    # The original files carry more than we read (other methods' answers); ignore it.
    model_config = ConfigDict(extra="ignore")


class _Step(_Lenient):
    release_pod: list[str]
    delete_pod: list[str] = []
    release_complete_timestamp: int


class _Rollout(_Lenient):
    release_time: int
    process: dict[str, _Step]


class _Case(_Lenient):
    """What an investigation may know of a case: no ground-truth field is declared here."""

    plan: dict[str, _Rollout]
    detect_timestamp: int
    before_change_list: list[str] = []


class _Answer(_Lenient):
    fault_release_service: str
    fault: str | None = None


@dataclass(frozen=True)
class _Pod:
    name: str
    service: str
    version: str  # "" when the name carries none (loadgenerator-75f659cdb5-96t8n)
    template_hash: str

    @property
    def replicaset(self) -> str:
        return self.name.rsplit("-", 1)[0]


@dataclass(frozen=True)
class _Edge:
    """One CSV: a pod's samples on one call edge: (unix second, values in METRICS order)."""

    pod: _Pod
    caller: str
    callee: str
    samples: tuple[tuple[int, tuple[float | None, ...]], ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return (
            NAMESPACE,
            self.pod.service,
            self.pod.name,
            self.pod.version,
            self.caller,
            self.callee,
        )


def _validate(model: type[M], data: Any, path: Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field_name = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise ScenarioError(path, field_name, err["msg"]) from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise ScenarioError(path, "", f"cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(path, "", f"invalid JSON: {exc}") from exc


def _pod(name: str, path: Path, where: str) -> _Pod:
    parts = name.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise ScenarioError(path, where, f"not a pod name: {name!r}")
    prefix, template_hash, _ = parts
    m = _VERSIONED.match(prefix)
    service, version = (m["service"], m["version"]) if m else (prefix, "")
    return _Pod(name, service, version, template_hash)


def _row(row: dict[str | Any, str | Any]) -> tuple[int, tuple[float | None, ...]] | None:
    """(time, values); None for a row with a cell that is not a number. NaN is a number: the
    recorder writes it for a minute without data (no calls, no reading), so that one value
    is left out and the series has a gap, as Prometheus would."""
    try:
        ts = float(row["Timestamp"])
        numbers = [float(row[column]) for column, _ in METRICS]
    except (TypeError, ValueError):  # a short row gives None, a bad cell a ValueError
        return None
    if not math.isfinite(ts):
        return None
    return round(ts), tuple(n if math.isfinite(n) else None for n in numbers)


def _read_edge(path: Path, pod: _Pod, caller: str, callee: str) -> tuple[_Edge, int]:
    """The edge's samples, and how many rows were dropped (non-numeric or repeated time)."""
    samples: dict[int, tuple[float | None, ...]] = {}
    dropped = 0
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            for column in ("Timestamp", *(c for c, _ in METRICS)):
                if column not in header:
                    raise ScenarioError(path, column, "missing column")
            for row in reader:
                parsed = _row(row)
                if parsed is None or parsed[0] in samples:
                    dropped += 1
                else:
                    samples[parsed[0]] = parsed[1]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ScenarioError(path, "", f"cannot read: {exc}") from exc
    return _Edge(pod, caller, callee, tuple(sorted(samples.items()))), dropped


def _read_edges(case_dir: Path) -> tuple[list[_Edge], int]:
    edges: list[_Edge] = []
    dropped = 0
    for path in sorted(case_dir.glob("*.csv")):
        m = _EDGE_CSV.match(path.name)
        if m is None:  # service-level CSVs
            continue
        edge, bad = _read_edge(path, _pod(m["pod"], path, "(file name)"), m["caller"], m["callee"])
        edges.append(edge)
        dropped += bad
    if not edges:
        raise ScenarioError(case_dir, "", "no <pod>_<caller>_<callee>.csv files")
    return edges, dropped


# -- kubernetes -----------------------------------------------------------------------------------


@dataclass
class _ReplicaSet:
    name: str
    service: str
    version: str
    template_hash: str
    created: int
    revision: int
    pods: dict[str, int] = field(default_factory=dict)  # live pod -> creation time


def _steps(case: _Case) -> Iterable[_Step]:
    return (step for rollout in case.plan.values() for step in rollout.process.values())


def _new_replicaset(service: str, rollout: _Rollout, path: Path) -> str:
    where = f"plan.{service}.process"
    pods = [_pod(n, path, where) for s in rollout.process.values() for n in s.release_pod]
    names = {p.replicaset for p in pods}
    if len(names) != 1 or any(p.service != service for p in pods):
        raise ScenarioError(path, where, f"release_pod must name new pods of {service}")
    return names.pop()


def _named_pods(case: _Case, path: Path) -> set[_Pod]:
    """Pods the case file names: before the change, and released or deleted by the plan."""
    named = [(n, "before_change_list") for n in case.before_change_list]
    for service, rollout in case.plan.items():
        for step in rollout.process.values():
            named += [(n, f"plan.{service}.process") for n in (*step.release_pod, *step.delete_pod)]
    return {_pod(n, path, where) for n, where in named}


def _replicasets(case: _Case, seen: Iterable[_Pod], predates: int, path: Path) -> list[_ReplicaSet]:
    """Every ReplicaSet the pod names imply, in revision order per service, sorted by service."""
    released = {
        pod: step.release_complete_timestamp for step in _steps(case) for pod in step.release_pod
    }
    deleted = {pod for step in _steps(case) for pod in step.delete_pod}
    groups: dict[str, dict[str, list[_Pod]]] = {}
    for pod in seen:
        groups.setdefault(pod.service, {}).setdefault(pod.replicaset, []).append(pod)
    out: list[_ReplicaSet] = []
    for service in sorted(groups):
        rollout = case.plan.get(service)
        new = _new_replicaset(service, rollout, path) if rollout else None
        order = [*sorted(n for n in groups[service] if n != new), *([new] if new else [])]
        for revision, name in enumerate(order, 1):
            first = groups[service][name][0]
            created = rollout.release_time if rollout and name == new else predates
            rs = _ReplicaSet(name, service, first.version, first.template_hash, created, revision)
            rs.pods = {
                p.name: released.get(p.name, created)
                for p in groups[service][name]
                if p.name not in deleted
            }
            out.append(rs)
    return out


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uid(case: str, kind: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"changerca:{case}:{kind}:{name}"))


def _labels(rs: _ReplicaSet, *, with_hash: bool = True) -> dict[str, str]:
    labels = {"app": rs.service}
    if rs.version:
        labels["version"] = rs.version
    if with_hash:
        labels["pod-template-hash"] = rs.template_hash
    return labels


def _container(rs: _ReplicaSet) -> dict[str, str]:
    image = f"{rs.service}:{rs.version}" if rs.version else rs.service
    return {"name": rs.service, "image": image}


def _owner(case: str, kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": _uid(case, kind, name),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(case: str, kind: str, name: str, created: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NAMESPACE,
        "uid": _uid(case, kind, name),
        "creationTimestamp": _iso(created),
        **extra,
    }


def _deployment(case: str, rss: Sequence[_ReplicaSet], created: int) -> dict[str, Any]:
    current = rss[-1]
    replicas = sum(len(rs.pods) for rs in rss)
    revision = str(current.revision)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            case,
            "Deployment",
            current.service,
            created,
            generation=current.revision,
            labels={"app": current.service},
            annotations={"deployment.kubernetes.io/revision": revision},
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": current.service}},
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": _labels(current, with_hash=False)},
                "spec": {"containers": [_container(current)]},
            },
        },
        "status": {
            "observedGeneration": current.revision,
            "replicas": replicas,
            "updatedReplicas": len(current.pods),
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def _replicaset(case: str, rs: _ReplicaSet) -> dict[str, Any]:
    n = len(rs.pods)
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _metadata(
            case,
            "ReplicaSet",
            rs.name,
            rs.created,
            generation=1,
            labels=_labels(rs),
            annotations={"deployment.kubernetes.io/revision": str(rs.revision)},
            ownerReferences=[_owner(case, "Deployment", rs.service)],
        ),
        "spec": {
            "replicas": n,
            "selector": {"matchLabels": _labels(rs)},
            "template": {
                "metadata": {"labels": _labels(rs)},
                "spec": {"containers": [_container(rs)]},
            },
        },
        "status": {
            "replicas": n,
            "fullyLabeledReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
            "observedGeneration": 1,
        },
    }


def _pod_object(case: str, rs: _ReplicaSet, name: str, created: int) -> dict[str, Any]:
    at = _iso(created)
    container = _container(rs)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(
            case,
            "Pod",
            name,
            created,
            labels=_labels(rs),
            ownerReferences=[_owner(case, "ReplicaSet", rs.name)],
        ),
        "spec": {"containers": [container]},
        "status": {
            "phase": "Running",
            "startTime": at,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}],
            "containerStatuses": [
                {
                    **container,
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": at}},
                },
            ],
        },
    }


def _kubernetes(case: str, rss: Sequence[_ReplicaSet], predates: int) -> KubeObjects:
    by_service: dict[str, list[_ReplicaSet]] = {}
    for rs in rss:
        by_service.setdefault(rs.service, []).append(rs)
    pods = [(rs, name, created) for rs in rss for name, created in rs.pods.items()]
    return KubeObjects(
        namespaces=[
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": NAMESPACE,
                    "uid": _uid(case, "Namespace", NAMESPACE),
                    "creationTimestamp": _iso(predates),
                },
                "status": {"phase": "Active"},
            }
        ],
        deployments=[_deployment(case, by_service[s], predates) for s in sorted(by_service)],
        replicasets=[_replicaset(case, rs) for rs in sorted(rss, key=lambda r: r.name)],
        pods=[_pod_object(case, *p) for p in sorted(pods, key=lambda p: p[1])],
    )


# -- alert, metrics, truth ------------------------------------------------------------------------


def _fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's alert fingerprint (Prometheus' LabelSet.Fingerprint, FNV-1a 64)."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for byte in b"".join((name.encode(), b"\xff", labels[name].encode(), b"\xff")):
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _webhook(detect: int) -> AlertmanagerWebhook:
    group = {"alertname": ALERT_NAME, "namespace": NAMESPACE}
    labels = {**group, "service": ENTRY_SERVICE, "severity": "critical"}
    annotations = {
        "summary": f"{ENTRY_SERVICE} call success rate is burning its SLO error budget",
        "description": f"Success rate of {ENTRY_SERVICE}'s calls dropped below its SLO.",
    }
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}"
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(detect),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote_plus(ALERT_EXPR)}&g0.tab=1",
        "fingerprint": _fingerprint(labels),
    }
    return AlertmanagerWebhook.model_validate(
        {
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "triage",
            "groupLabels": group,
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "http://alertmanager:9093",
            "alerts": [alert],
        }
    )


class _Families:
    """What generate_latest asks of a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _openmetrics(edges: Sequence[_Edge]) -> str:
    ordered = sorted(edges, key=lambda e: e.labels)
    families: list[Metric] = []
    for i, (column, name) in enumerate(METRICS):
        family = GaugeMetricFamily(name, f"ChangeRCA CSV column {column}", labels=LABELS)
        for edge in ordered:
            for ts, values in edge.samples:
                value = values[i]
                if value is not None:
                    family.add_metric(edge.labels, value, timestamp=ts)
        families.append(family)
    text: bytes = generate_latest(_Families(families))  # type: ignore[no-untyped-call]
    return text.decode()


def _ground_truth(raw: Any, case: _Case, path: Path) -> GroundTruth:
    """The only reader of the answer fields."""
    answer = _validate(_Answer, raw, path)
    service = answer.fault_release_service
    rollout = case.plan.get(service)
    if rollout is None:
        raise ScenarioError(path, "fault_release_service", f"{service!r} is not in plan")
    return GroundTruth(
        kind="Deployment",
        namespace=NAMESPACE,
        name=service,
        service=service,
        aliases=[],
        category="bad_rollout",
        onset=datetime.fromtimestamp(rollout.release_time, UTC),
        detail=answer.fault or "",
    )


# -- entry points ---------------------------------------------------------------------------------


def find_cases(src: Path) -> list[Path]:
    """``src`` itself when it is a case folder, else its case folders in name order."""
    if (src / f"{src.name}.json").is_file():
        return [src]
    if not src.is_dir():
        raise ScenarioError(src, "", "not a directory")
    cases = sorted(d for d in src.iterdir() if d.is_dir() and (d / f"{d.name}.json").is_file())
    if not cases:
        raise ScenarioError(src, "", "no ChangeRCA case folders (<case>/<case>.json)")
    return cases


def import_case(case_dir: Path, out: Path) -> Path:
    """One case folder -> one scenario folder ``out``; nothing is written if the case is bad."""
    name = case_dir.name
    path = case_dir / f"{name}.json"
    raw = _read_json(path)
    case = _validate(_Case, raw, path)
    edges, dropped = _read_edges(case_dir)
    first = min((e.samples[0][0] for e in edges if e.samples), default=None)
    if first is None:
        raise ScenarioError(case_dir, "", "no numeric samples in any CSV")
    predates = first - int(PREDATES.total_seconds())
    seen = {e.pod for e in edges} | _named_pods(case, path)
    meta = ScenarioMeta(
        name=f"changerca-{name}",
        description=f"ChangeRCA OnlineBoutique case {name}: rollouts of "
        f"{', '.join(sorted(case.plan))}; SLO alert on {ENTRY_SERVICE}.",
        source=SOURCE,
        webhooks=[_webhook(case.detect_timestamp)],
        call_graph=sorted({(e.caller, e.callee) for e in edges}),
    )
    kube = _kubernetes(name, _replicasets(case, seen, predates, path), predates)
    metrics = _openmetrics(edges)
    truth = _ground_truth(raw, case, path)
    write_scenario(out, meta, truth, kubernetes=kube, metrics=metrics)
    values = [v for e in edges for _, row in e.samples for v in row]
    report = log.warning if dropped else log.info
    report(
        "changerca case imported",
        case=name,
        series=len(edges) * len(METRICS),
        samples=sum(v is not None for v in values),
        nan_values=sum(v is None for v in values),
        dropped_rows=dropped,
    )
    return out


def import_changerca(src: Path, dest: Path) -> list[Path]:
    """Every ChangeRCA case under ``src`` (or the case ``src``) as a scenario under
    ``dest/<case>``; returns the scenario folders. Raises ScenarioError naming file and field."""
    return [import_case(case_dir, dest / case_dir.name) for case_dir in find_cases(src)]
