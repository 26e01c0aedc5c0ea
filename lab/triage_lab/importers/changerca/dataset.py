"""ChangeRCA's case files read: the rollout plan and detection time, the answer, and the
per-pod, per-call-edge CSV samples (see :mod:`triage_lab.importers.changerca`)."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from triage_lab.scenarios import ScenarioError

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


class _Lenient(BaseModel):
    # The original files carry more than we read (other methods' answers); ignore it.
    model_config = ConfigDict(extra="ignore")


class Step(_Lenient):
    release_pod: list[str]
    delete_pod: list[str] = []
    release_complete_timestamp: int


class Rollout(_Lenient):
    release_time: int
    process: dict[str, Step]


class Case(_Lenient):
    """What an investigation may know of a case: no ground-truth field is declared here."""

    plan: dict[str, Rollout]
    detect_timestamp: int
    before_change_list: list[str] = []


class Answer(_Lenient):
    fault_release_service: str
    fault: str | None = None


@dataclass(frozen=True)
class Pod:
    name: str
    service: str
    version: str  # "" when the name carries none (loadgenerator-75f659cdb5-96t8n)
    template_hash: str

    @property
    def replicaset(self) -> str:
        return self.name.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Edge:
    """One CSV: a pod's samples on one call edge: (unix second, values in METRICS order)."""

    pod: Pod
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


def validate(model: type[M], data: Any, path: Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field_name = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise ScenarioError(path, field_name, err["msg"]) from exc


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise ScenarioError(path, "", f"cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(path, "", f"invalid JSON: {exc}") from exc


def parse_pod(name: str, path: Path, where: str) -> Pod:
    parts = name.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise ScenarioError(path, where, f"not a pod name: {name!r}")
    prefix, template_hash, _ = parts
    m = _VERSIONED.match(prefix)
    service, version = (m["service"], m["version"]) if m else (prefix, "")
    return Pod(name, service, version, template_hash)


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


def _read_edge(path: Path, pod: Pod, caller: str, callee: str) -> tuple[Edge, int]:
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
    return Edge(pod, caller, callee, tuple(sorted(samples.items()))), dropped


def read_edges(case_dir: Path) -> tuple[list[Edge], int]:
    edges: list[Edge] = []
    dropped = 0
    for path in sorted(case_dir.glob("*.csv")):
        m = _EDGE_CSV.match(path.name)
        if m is None:  # service-level CSVs
            continue
        edge, bad = _read_edge(
            path, parse_pod(m["pod"], path, "(file name)"), m["caller"], m["callee"]
        )
        edges.append(edge)
        dropped += bad
    if not edges:
        raise ScenarioError(case_dir, "", "no <pod>_<caller>_<callee>.csv files")
    return edges, dropped
