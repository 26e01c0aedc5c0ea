"""`triage eval`: the real investigation path (collectors -> ranking -> analysis) over scenarios,
scored against their ground truth. Writes report.md, report.json, report.png (deterministic)
and timing.json (wall times, which vary run to run)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import ValidationError
from tqdm import tqdm

from collectors.contracts import Collector
from collectors.sources import (
    ApiKubeSource,
    FileKubeSource,
    FileMetricSource,
    KubeSource,
    MetricSource,
    PrometheusSource,
)
from collectors.standard import standard_collectors
from triage.analyse.heuristic import Analyzer, HeuristicAnalyzer
from triage.analyse.llm import LLMAnalyzer
from triage.incidents.grouping import apply_notification
from triage.investigate.investigation import Investigator
from triage.models import RCA, IncidentState
from triage.settings import InvestigationSettings, Settings
from triage.telemetry import Metrics
from triage_lab.scenarios import (
    SCENARIO_FILE,
    Scenario,
    find_scenarios,
    load_scenario,
    load_truth,
)
from triage_lab.scoring import CaseResult, rank_of, summarize

Backend = Literal["files", "live"]
# Alertmanager's group_wait: the investigation starts this long after the first alert.
NOTIFY_DELAY = timedelta(seconds=60)


def incident_webhooks(scenario: Scenario) -> list[Any]:
    """The notifications of the scenario's incident: its first webhook's Alertmanager group.
    Other groups in the scenario are other, unrelated incidents (noise)."""
    key = scenario.meta.webhooks[0].groupKey
    return [w for w in scenario.meta.webhooks if w.groupKey == key]


def incident_of(scenario: Scenario) -> IncidentState:
    state = None
    for webhook in incident_webhooks(scenario):
        at = max(a.startsAt for a in webhook.alerts) + NOTIFY_DELAY
        state = apply_notification(state, webhook, at, 0) or state
    assert state is not None  # at least one webhook, validated on load
    return state


def investigated_at(scenario: Scenario, delay: timedelta = NOTIFY_DELAY) -> Any:
    """When the investigation ran: ``delay`` after the first alert of the incident; by default
    just after its first notification (a follow-up investigation runs later)."""
    first = incident_webhooks(scenario)[0]
    return max(a.startsAt for a in first.alerts) + delay


@contextlib.asynccontextmanager
async def sources(
    scenario: Scenario, backend: Backend
) -> AsyncIterator[tuple[KubeSource, MetricSource]]:
    if backend == "files":
        yield (
            FileKubeSource(scenario.kubernetes, scenario.logs),
            FileMetricSource(scenario.metrics),
        )
        return
    import kubernetes.client

    from triage_lab.replay import kube_api_with, prometheus_with

    with (
        kube_api_with(scenario) as kube_url,
        prometheus_with(scenario.metrics or "# EOF\n") as prom_url,
    ):
        config = kubernetes.client.Configuration()
        config.host = kube_url
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            with kubernetes.client.ApiClient(config) as api:
                yield ApiKubeSource(api), PrometheusSource(prom_url, client)


async def investigate(
    scenario: Scenario,
    collectors: list[Collector],
    analyzer: Analyzer,
    settings: InvestigationSettings,
    delay: timedelta = NOTIFY_DELAY,
) -> RCA:
    incident = incident_of(scenario)
    investigator = Investigator(collectors, settings, Metrics())
    evidence = await investigator.collect(incident, now=investigated_at(scenario, delay))
    return await analyzer.analyze(incident, evidence)


def build_analyzer(name: str, scenario: Scenario, config: Settings | None = None) -> Analyzer:
    if name == "heuristic":
        return HeuristicAnalyzer(call_graph=scenario.meta.call_graph)
    if config is None or not config.llm.base_url:
        raise SystemExit("the llm analyzer needs an LLM gateway: set TRIAGE_LLM_BASE_URL")
    from triage.analyse.gateway import gateway_client
    from triage.analyse.llm import llm_analyzer

    client = gateway_client(config.llm, config.llm_api_key())
    return llm_analyzer(config, client, Metrics(), call_graph=scenario.meta.call_graph)


async def evaluate_one(
    path: Path,
    analyzer_name: str,
    backend: Backend,
    settings: InvestigationSettings,
    config: Settings | None = None,
    delay: timedelta = NOTIFY_DELAY,
) -> CaseResult:
    scenario = load_scenario(path)
    truth = load_truth(path)  # scorer-side only; nothing below hands it to the analysis
    started = time.monotonic()
    error = None
    usage = None
    confidence: float | None = None
    analyzer = build_analyzer(analyzer_name, scenario, config)
    try:
        async with sources(scenario, backend) as (kube, metrics):
            collectors = standard_collectors(kube, metrics)
            rca = await investigate(scenario, collectors, analyzer, settings, delay)
        valid = _schema_valid(rca)
        ranking = [s.component for s in rca.suspects] or [rca.root_cause.component]
        kind = rca.root_cause.kind
        usage = rca.usage
        confidence = rca.confidence
        if analyzer_name == "llm" and rca.analyzer != "llm":
            # The gateway did not answer and the heuristic wrote the draft: scoring it as the
            # LLM's would report the heuristic's accuracy under the LLM's name.
            error, valid, ranking = f"LLM not used: {rca.label}", False, []
            confidence = None
    except Exception as exc:  # one broken case must not hide the others' results
        error, valid, ranking, kind = f"{type(exc).__name__}: {exc}", False, [], "unknown"
    finally:
        if isinstance(analyzer, LLMAnalyzer):
            await analyzer.aclose()  # its client belongs to this case's event loop
    return CaseResult(
        scenario=scenario.name,
        category=truth.category,
        ranking=ranking,
        rank=rank_of(ranking, truth),
        predicted_kind=kind,
        schema_valid=valid,
        llm_calls=usage.calls if usage else 0,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        wall_s=round(time.monotonic() - started, 3),
        error=error,
        confidence=confidence,
        source=scenario.meta.source,
    )


def _schema_valid(rca: RCA) -> bool:
    try:
        RCA.model_validate_json(rca.model_dump_json())
    except ValidationError:
        return False
    return True


def run_eval(
    path: Path,
    out: Path,
    *,
    analyzer: str = "heuristic",
    backend: Backend = "files",
    settings: InvestigationSettings | None = None,
    config: Settings | None = None,
    delay: timedelta = NOTIFY_DELAY,
) -> dict[str, Any]:
    """Validates every scenario first (a malformed one stops the run, naming file and field),
    then evaluates them in a stable order. ``config``: the LLM analyzer's gateway settings."""
    dirs = find_scenarios(path)
    if not dirs:
        hint = (
            ": it holds recorded evidence for `make run`'s demo, not evaluation scenarios"
            if any(path.glob("*.json"))
            else ""
        )
        raise SystemExit(
            f"no scenarios under {path}{hint}. An evaluation scenario is a folder with a "
            f"{SCENARIO_FILE} (docs/scenarios.md); try scenarios/k8s-faults, or make some with "
            "`triage eval generate-corpus DEST`"
        )
    for d in dirs:
        load_scenario(d)
        load_truth(d)
    cfg = settings or (config.investigation if config else InvestigationSettings())
    results = []
    for d in tqdm(dirs, desc="eval", unit="case", file=sys.stderr, disable=None):
        results.append(asyncio.run(evaluate_one(d, analyzer, backend, cfg, config, delay)))
    summary = summarize(results)
    report = {
        "analyzer": analyzer,
        "backend": backend,
        "delay_s": delay.total_seconds(),
        "summary": summary,
        "cases": [r.model_dump(exclude={"wall_s"}) for r in results],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    (out / "report.md").write_text(markdown(report))
    chart(results, summary, out / "report.png")
    timing = {r.scenario: r.wall_s for r in results}
    (out / "timing.json").write_text(
        json.dumps(
            {"per_case_s": timing, "mean_s": round(sum(timing.values()) / len(timing), 3)},
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    return report


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    o = s["overall"]
    lines = [
        f"# triage eval: {report['analyzer']} analyzer, {report['backend']} backend",
        "",
    ]
    if s.get("failed_cases"):
        # First, so that a run that could not look at some cases cannot pass for a good one.
        lines += [f"**{len(s['failed_cases'])} case(s) failed** (counted as not ranked):", ""]
        lines += [f"- {c['scenario']}: {c['error']}" for c in s["failed_cases"]]
        lines.append("")
    lines += [
        f"Investigated {report.get('delay_s', 60):.0f} s after the first alert's start; "
        "data after that moment is not read.",
        "",
        f"{o['cases']} cases. AC@1 **{o['ac@1']:.3f}**, AC@3 **{o['ac@3']:.3f}**, "
        f"Avg@5 {o['avg@5']:.3f}, mean rank {o['mean_rank']:.2f} "
        f"({o['not_ranked']} not ranked, counted as rank {s['missed_rank']}).",
        f"Fault kind right: {s['kind_accuracy']:.3f}. Schema-valid: {s['schema_valid_rate']:.3f}."
        f" LLM calls/case: {s['llm_calls_per_case']}, prompt tokens/case: "
        f"{s['prompt_tokens_per_case']}, completion tokens/case: "
        f"{s['completion_tokens_per_case']}. Errors: {s['errors']}.",
        "",
    ]
    for title, groups in (("category", s["by_category"]), ("source", s["by_source"])):
        lines += [
            f"| {title} | cases | AC@1 | AC@3 | Avg@5 | mean rank | kind right | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, b in groups.items():
            lines.append(
                f"| {name} | {b['cases']} | {b['ac@1']:.3f} | {b['ac@3']:.3f} | "
                f"{b['avg@5']:.3f} | {b['mean_rank']:.2f} | {b['kind_accuracy']:.3f} | "
                f"{b['errors']} |"
            )
        lines.append("")
    cal = s["calibration"]
    confident = cal["confident_accuracy"]
    lines += [
        f"Calibration (right = the cause named first is the true one): Brier score "
        f"**{cal['brier']:.3f}** over {cal['cases']} drafts; drafts with confidence >= 0.8: "
        f"{cal['confident_drafts']}, right "
        + (f"**{confident:.3f}**." if confident is not None else "-."),
        "",
        "| confidence | drafts | right | accuracy |",
        "|---|---|---|---|",
    ]
    for row in cal["table"]:
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        lines.append(f"| {row['confidence']} | {row['drafts']} | {row['right']} | {acc} |")
    lines += [
        "",
        "| scenario | category | rank | top 3 | predicted kind | confidence | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in report["cases"]:
        conf = "-" if c.get("confidence") is None else f"{c['confidence']:.2f}"
        lines.append(
            f"| {c['scenario']} | {c['category']} | {c['rank'] or '-'} | "
            f"{', '.join(c['ranking'][:3])} | {c['predicted_kind']} | {conf} | "
            f"{c['error'] or ''} |"
        )
    return "\n".join(lines) + "\n"


def chart(results: list[CaseResult], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = list(summary["by_category"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = range(len(cats))
    left.bar(
        [i - 0.2 for i in x], [summary["by_category"][c]["ac@1"] for c in cats], 0.4, label="AC@1"
    )
    left.bar(
        [i + 0.2 for i in x], [summary["by_category"][c]["ac@3"] for c in cats], 0.4, label="AC@3"
    )
    left.set_xticks(list(x), cats, rotation=45, ha="right", fontsize=8)
    left.set_ylim(0, 1.05)
    left.set_title("Accuracy by fault category")
    left.legend()
    ranks = [r.rank if r.rank is not None and r.rank <= 5 else 6 for r in results]
    right.hist(ranks, bins=[0.5 + i for i in range(7)], rwidth=0.8)
    right.set_xticks(range(1, 7), ["1", "2", "3", "4", "5", ">5"])
    right.set_title("Rank of the true cause")
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
