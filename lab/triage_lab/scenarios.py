"""Scenarios: everything an investigation could see, plus hidden ground truth (docs/scenarios.md).

A scenario is a directory::

    scenario.json     name, description, webhooks that open the incident, call graph
    kubernetes.json   API objects at incident time, as the Kubernetes API returns them
    logs.json         pod logs per container (current and previous)
    metrics.om        metric series, OpenMetrics text (backfillable with promtool)
    truth.json        ground truth: read only by the scorer

The analyzers never see ``truth.json``: :func:`load_scenario` does not read it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from triage.errors import TriageError
from triage.models import AlertmanagerWebhook, FaultKind

M = TypeVar("M", bound=BaseModel)

SCENARIO_FILE = "scenario.json"
KUBE_KINDS = (
    "namespaces",
    "nodes",
    "pods",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "controllerrevisions",
    "configmaps",
    "secrets",
    "horizontalpodautoscalers",
    "events",
    "services",
    "networkpolicies",
)


class ScenarioError(TriageError):
    """A scenario file that cannot be used; names the file and the field."""

    def __init__(self, path: Path, field: str, reason: str) -> None:
        super().__init__(f"{path}: {field}: {reason}" if field else f"{path}: {reason}")
        self.path = path
        self.field = field


class LogStream(BaseModel):
    namespace: str
    pod: str
    container: str
    previous: bool = Field(False, description="Logs of the previous (crashed) container")
    lines: list[str] = Field(description="RFC 3339 timestamp, a space, the message")


# Kinds added after the first corpora were written (quotas, storage, endpoints).
LATER_KINDS = (
    "resourcequotas",
    "limitranges",
    "persistentvolumeclaims",
    "endpointslices",
    "ingresses",
    "httproutes",
    "leases",
)


class KubeObjects(BaseModel):
    """Raw API objects by plural resource name: the same JSON the API server would return."""

    namespaces: list[dict[str, Any]] = Field(default_factory=list)
    nodes: list[dict[str, Any]] = Field(default_factory=list)
    pods: list[dict[str, Any]] = Field(default_factory=list)
    deployments: list[dict[str, Any]] = Field(default_factory=list)
    replicasets: list[dict[str, Any]] = Field(default_factory=list)
    statefulsets: list[dict[str, Any]] = Field(default_factory=list)
    daemonsets: list[dict[str, Any]] = Field(default_factory=list)
    controllerrevisions: list[dict[str, Any]] = Field(default_factory=list)
    configmaps: list[dict[str, Any]] = Field(default_factory=list)
    secrets: list[dict[str, Any]] = Field(default_factory=list, description="metadata only")
    horizontalpodautoscalers: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    services: list[dict[str, Any]] = Field(default_factory=list)
    networkpolicies: list[dict[str, Any]] = Field(default_factory=list)
    resourcequotas: list[dict[str, Any]] = Field(default_factory=list)
    limitranges: list[dict[str, Any]] = Field(default_factory=list)
    persistentvolumeclaims: list[dict[str, Any]] = Field(default_factory=list)
    endpointslices: list[dict[str, Any]] = Field(default_factory=list)
    ingresses: list[dict[str, Any]] = Field(default_factory=list)
    httproutes: list[dict[str, Any]] = Field(default_factory=list)
    leases: list[dict[str, Any]] = Field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = getattr(self, kind)
        return objects


class ScenarioMeta(BaseModel):
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    source: str = Field("", description="Generator or importer that made it")
    webhooks: list[AlertmanagerWebhook] = Field(min_length=1)
    call_graph: list[tuple[str, str]] = Field(
        default_factory=list, description="caller -> callee edges between services"
    )


class GroundTruth(BaseModel):
    schema_version: Literal[1] = 1
    kind: str = Field(description="Kubernetes kind of the root-cause entity")
    namespace: str
    name: str
    service: str
    aliases: list[str] = Field(default_factory=list)
    category: FaultKind
    onset: datetime
    propagation: list[str] = Field(default_factory=list)
    detail: str = Field("", description="Source-specific fault label, e.g. ChangeRCA's")

    def names(self) -> set[str]:
        return {n.lower() for n in (self.name, self.service, *self.aliases) if n}


class Scenario(BaseModel):
    """What the investigation may use. No ground truth in here."""

    path: Path
    meta: ScenarioMeta
    kubernetes: KubeObjects = Field(default_factory=KubeObjects)
    logs: list[LogStream] = Field(default_factory=list)
    metrics: str = Field("", description="OpenMetrics text")

    @property
    def name(self) -> str:
        return self.meta.name


def _parse(model: type[M], path: Path) -> M:
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ScenarioError(path, "", f"cannot read: {exc.strerror}") from exc
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ScenarioError(path, field or "(file)", err["msg"]) from exc


def load_scenario(directory: Path) -> Scenario:
    meta = _parse(ScenarioMeta, directory / SCENARIO_FILE)
    kube = directory / "kubernetes.json"
    logs = directory / "logs.json"
    metrics = directory / "metrics.om"
    stream_list: list[LogStream] = []
    if logs.exists():
        try:
            raw = json.loads(logs.read_bytes())
        except json.JSONDecodeError as exc:
            raise ScenarioError(logs, "", f"invalid JSON: {exc}") from exc
        if not isinstance(raw, list):
            raise ScenarioError(logs, "(file)", "must be a list of log streams")
        for i, item in enumerate(raw):
            try:
                stream_list.append(LogStream.model_validate(item))
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = ".".join(str(p) for p in (i, *err["loc"]))
                raise ScenarioError(logs, loc, err["msg"]) from exc
    text = metrics.read_text() if metrics.exists() else ""
    if text and not text.rstrip().endswith("# EOF"):
        raise ScenarioError(metrics, "(file)", "OpenMetrics text must end with '# EOF'")
    return Scenario(
        path=directory,
        meta=meta,
        kubernetes=_parse(KubeObjects, kube) if kube.exists() else KubeObjects(),
        logs=stream_list,
        metrics=text,
    )


def load_truth(directory: Path) -> GroundTruth:
    """For the scorer only."""
    return _parse(GroundTruth, directory / "truth.json")


def find_scenarios(root: Path) -> list[Path]:
    """Every scenario directory under ``root`` (or ``root`` itself), in a stable order."""
    if (root / SCENARIO_FILE).exists():
        return [root]
    return sorted(p.parent for p in root.rglob(SCENARIO_FILE))


def write_scenario(
    directory: Path,
    meta: ScenarioMeta,
    truth: GroundTruth,
    *,
    kubernetes: KubeObjects | None = None,
    logs: list[LogStream] | None = None,
    metrics: str = "",
) -> None:
    """Used by the importer and the corpus generator; output is byte-stable for equal input."""
    directory.mkdir(parents=True, exist_ok=True)

    def dump(
        name: str, model: BaseModel | list[Any] | dict[str, Any], *, compact: bool = False
    ) -> None:
        data = (
            model.model_dump(mode="json", exclude_defaults=False)
            if isinstance(model, BaseModel)
            else model
        )
        # The small files are for people to read; the bulky ones only for tools.
        text = (
            json.dumps(data, separators=(",", ":"), sort_keys=True)
            if compact
            else json.dumps(data, indent=1, sort_keys=True)
        )
        (directory / name).write_text(text + "\n")

    dump(SCENARIO_FILE, meta)
    dump("truth.json", truth)
    if kubernetes is not None:
        objects = kubernetes.model_dump(mode="json")
        for kind in LATER_KINDS:  # written only when present: older scenarios stay as they were
            if not objects[kind]:
                del objects[kind]
        dump("kubernetes.json", objects, compact=True)
    if logs:
        dump("logs.json", [s.model_dump(mode="json") for s in logs], compact=True)
    if metrics:
        (directory / "metrics.om").write_text(metrics)
