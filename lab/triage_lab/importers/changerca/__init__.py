"""ChangeRCA cases as scenarios (docs/scenarios.md): ``triage eval import-changerca SRC DEST``.

Input is the layout of the ChangeRCA OnlineBoutique dataset (IntelligentDDS/ChangeRCA,
``data/<day>/``): ``<case>/<case>.json`` with the rollout ``plan`` and ``detect_timestamp``, and
``<pod>_<caller>_<callee>.csv`` with one-minute samples per pod and call edge. Everything else
(other methods' ``*_result`` fields, their folders and ``gied.json``, the service-level
``dependency.csv`` / ``*_success.csv``) is ignored.

Ground truth goes to truth.json only: :func:`ground_truth` is the one reader of
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

from pathlib import Path

import structlog

from triage_lab.importers.changerca.cluster import cluster_objects, named_pods, replicasets
from triage_lab.importers.changerca.dataset import (
    ENTRY_SERVICE,
    METRICS,
    PREDATES,
    SOURCE,
    Case,
    read_edges,
    read_json,
    validate,
)
from triage_lab.importers.changerca.signals import ground_truth, openmetrics, webhook
from triage_lab.scenarios import ScenarioError, ScenarioMeta, write_scenario

__all__ = ["find_cases", "import_case", "import_changerca"]

log = structlog.get_logger(__name__)


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
    raw = read_json(path)
    case = validate(Case, raw, path)
    edges, dropped = read_edges(case_dir)
    first = min((e.samples[0][0] for e in edges if e.samples), default=None)
    if first is None:
        raise ScenarioError(case_dir, "", "no numeric samples in any CSV")
    predates = first - int(PREDATES.total_seconds())
    seen = {e.pod for e in edges} | named_pods(case, path)
    meta = ScenarioMeta(
        name=f"changerca-{name}",
        description=f"ChangeRCA OnlineBoutique case {name}: rollouts of "
        f"{', '.join(sorted(case.plan))}; SLO alert on {ENTRY_SERVICE}.",
        source=SOURCE,
        webhooks=[webhook(case.detect_timestamp)],
        call_graph=sorted({(e.caller, e.callee) for e in edges}),
    )
    kube = cluster_objects(name, replicasets(case, seen, predates, path), predates)
    metrics = openmetrics(edges)
    truth = ground_truth(raw, case, path)
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
