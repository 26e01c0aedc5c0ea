"""The cost of one investigation as the cluster grows: `.venv/bin/python bench/scale.py`
(--quick for a smoke run).

For each size (100, 1,000, 10,000 pods) one corpus scenario's incident is set inside a cluster
of that size (bench/scale_cluster.py: ~20 workloads per namespace, kube-system DaemonSets on
every node, cAdvisor/kube-state/request series per pod), served by the Kubernetes API fake
(lab/triage_lab/fakes/kubernetes.py, to the real client) and a real Prometheus the series are
backfilled into with promtool. A worker subprocess then runs --runs investigations through the
production composition (ApiKubeSource and PrometheusSource behind collectors/cache.py, one cold
cache per investigation: the cost of one incident) and the heuristic analyzer, and records wall
time, its own peak RSS (VmHWM), and per investigation the Kubernetes API calls (listings, and
log reads: at most 3 pods per workload in scope; also counted at the fake server) and the PromQL
queries; plus the calls of a second incident of the same storm reusing the first one's cache.
Past --max-series, other namespaces than the incident's and kube-system get every series (101
per pod: ~1M at 10,000 pods) at one sample per 10 minutes, which a 2-core machine backfills in
minutes; the incident's queries read the same series either way.

Targets (issue 15): p95 at 10,000 pods <= 3x p95 at 100 pods; calls and queries per
investigation don't grow with the cluster. Writes bench/results/scale.json. A benchmark, not a
test: on a shared 2-core machine the absolute times vary; the ratios come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "lab", ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import httpx  # noqa: E402
from scale_cluster import build  # noqa: E402
from triage_lab.evaluation import incident_of, investigated_at  # noqa: E402
from triage_lab.fakes.kubernetes import KubeApi  # noqa: E402
from triage_lab.replay import prometheus_with  # noqa: E402
from triage_lab.scenarios import load_scenario  # noqa: E402

from collectors.cache import CachedKubeSource, CachedMetricSource, TTLCache  # noqa: E402
from collectors.sources import ApiKubeSource, PrometheusSource  # noqa: E402
from collectors.standard import standard_collectors  # noqa: E402
from triage.analyse.heuristic import HeuristicAnalyzer  # noqa: E402
from triage.investigate.investigation import Investigator  # noqa: E402
from triage.settings import InvestigationSettings  # noqa: E402
from triage.telemetry import Metrics  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# pods -> replicas per workload: 100 pods ~ 50 workloads, 10,000 pods ~ 2,000 (issue 15)
SIZES = {100: 2, 1000: 3, 10000: 5}
QUICK = {60: 2, 240: 3}


class Counting:
    """Counts the calls a source makes: one HTTP request to the API server or Prometheus each."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0
        self.listed = 0  # objects the listings returned: what a namespace's size costs
        self.by_method: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.by_method[name] = self.by_method.get(name, 0) + 1
            result = await target(*args, **kwargs)
            if name == "list":
                self.listed += len(result)
            return result

        return call


def _rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: that one keeps the parent's
    peak across fork and exec, and the parent holds the whole synthetic cluster."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def _investigations(spec: dict[str, Any]) -> dict[str, Any]:
    import kubernetes.client

    scenario = load_scenario(Path(spec["scenario"]))
    incident, now = incident_of(scenario), investigated_at(scenario)
    analyzer = HeuristicAnalyzer(call_graph=scenario.meta.call_graph)
    settings = InvestigationSettings()
    config = kubernetes.client.Configuration()
    config.host = spec["kube_url"]
    runs: list[dict[str, Any]] = []
    rss_before = _rss_mb()
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        with kubernetes.client.ApiClient(config) as api:
            cache = TTLCache(settings.cache_ttl_s)
            for i in range(spec["runs"] + 2):  # a warm-up, the runs, a storm follow-up
                if i <= spec["runs"]:
                    cache = TTLCache(settings.cache_ttl_s)  # cold: one incident's own cost
                kube, prom = (
                    Counting(ApiKubeSource(api)),
                    Counting(PrometheusSource(spec["prom_url"], client)),
                )
                collectors = standard_collectors(
                    CachedKubeSource(kube, cache), CachedMetricSource(prom, cache)
                )
                started = time.perf_counter()
                evidence = await Investigator(collectors, settings, Metrics()).collect(
                    incident, now=now
                )
                rca = await analyzer.analyze(incident, evidence)
                runs.append(
                    {
                        "wall_s": time.perf_counter() - started,
                        "kube_calls": kube.calls,
                        "kube_lists": kube.by_method.get("list", 0),
                        "kube_logs": kube.by_method.get("logs", 0),
                        "kube_listed": kube.listed,
                        "queries": prom.calls,
                        "suspect": rca.suspects[0].component if rca.suspects else None,
                        "items": sum(len(e.items) for e in evidence),
                        "status": {e.collector: e.status for e in evidence},
                        "durations": {e.collector: round(e.duration_s, 3) for e in evidence},
                    }
                )
    measured, follow_up = runs[1:-1], runs[-1]
    walls = sorted(r["wall_s"] for r in measured)
    return {
        "wall_s": {
            "p50": round(statistics.median(walls), 3),
            "p95": round(_percentile(walls, 0.95), 3),
            "max": round(walls[-1], 3),
            "warm_up": round(runs[0]["wall_s"], 3),
        },
        "collector_s_median": {
            c: round(statistics.median(r["durations"][c] for r in measured), 3)
            for c in measured[0]["durations"]
        },
        "peak_rss_mb": _rss_mb(),
        "rss_before_mb": rss_before,
        "kube_api_calls": sorted({r["kube_calls"] for r in measured}),
        # Listings are per namespace in scope; log reads per workload in it (at most 3 pods).
        "kube_api_lists": sorted({r["kube_lists"] for r in measured}),
        "kube_api_log_reads": sorted({r["kube_logs"] for r in measured}),
        "kube_objects_listed": sorted({r["kube_listed"] for r in measured}),
        "promql_queries": sorted({r["queries"] for r in measured}),
        "follow_up_calls": {"kube": follow_up["kube_calls"], "promql": follow_up["queries"]},
        "top_suspect": sorted({str(r["suspect"]) for r in measured}),
        "evidence_items": sorted({r["items"] for r in measured}),
        "collector_status": measured[-1]["status"],
        "calls_total": sum(r["kube_calls"] for r in runs),
    }


def _percentile(ordered: list[float], q: float) -> float:
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _series_in(prom_url: str, at: float) -> int:
    resp = httpx.get(
        f"{prom_url}/api/v1/query",
        params={"query": 'count({__name__=~".+"})', "time": at},
        timeout=120,
    )
    result = resp.json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def one_size(scenario_dir: Path, pods: int, per_workload: int, args: Any) -> dict[str, Any]:
    scenario = load_scenario(scenario_dir)
    start = incident_of(scenario).onset() - timedelta(
        seconds=InvestigationSettings().lookback_s + 300
    )
    end = investigated_at(scenario)
    t0 = time.perf_counter()
    cluster = build(
        scenario,
        pods,
        per_workload,
        args.max_series,
        (int(start.timestamp()), int(end.timestamp())),
    )
    built_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with KubeApi(cluster.objects, cluster.logs) as api, prometheus_with(cluster.openmetrics) as url:
        backfill_s = time.perf_counter() - t0
        del cluster.openmetrics  # promtool has it; the server process does not need it
        spec = {"scenario": str(scenario_dir), "kube_url": api.url, "prom_url": url}
        spec["runs"] = args.runs
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"worker failed at {pods} pods:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        result["server_requests"] = len(api.requests)
        result["series"] = _series_in(url, end.timestamp())
    result["cluster"] = cluster.stats
    result["setup_s"] = {"build": round(built_s, 1), "backfill_and_start": round(backfill_s, 1)}
    return result


def report(sizes: dict[int, dict[str, Any]], args: Any) -> dict[str, Any]:
    small, large = min(sizes), max(sizes)
    p95 = {n: r["wall_s"]["p95"] for n, r in sizes.items()}
    calls = {n: r["kube_api_calls"] for n, r in sizes.items()}
    lists = {n: r["kube_api_lists"] for n, r in sizes.items()}
    queries = {n: r["promql_queries"] for n, r in sizes.items()}
    ratio = round(p95[large] / p95[small], 2)
    flat = (
        len({tuple(c) for c in calls.values()}) == 1
        and len({tuple(q) for q in queries.values()}) == 1
    )
    # The smallest cluster runs 2 replicas per workload, the others 3 and 5: below the
    # logs collector's 3 pods per workload it reads fewer; from 1,000 pods on, the caps hold.
    grown = [n for n in sizes if n >= 1000]
    flat_from_1000 = len(grown) > 1 and (
        len({tuple(calls[n]) for n in grown}) == 1 and len({tuple(queries[n]) for n in grown}) == 1
    )
    return {
        "command": "bench/scale.py" + (" --quick" if args.quick else ""),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "scenario": str(args.scenario),
        "runs_per_size": args.runs,
        "max_series": args.max_series,
        "ratios": {
            f"p95_{large}_over_p95_{small}": ratio,
            f"p50_{large}_over_p50_{small}": round(
                sizes[large]["wall_s"]["p50"] / sizes[small]["wall_s"]["p50"], 2
            ),
            f"peak_rss_{large}_over_{small}": round(
                sizes[large]["peak_rss_mb"] / sizes[small]["peak_rss_mb"], 2
            ),
        },
        "kube_api_calls_per_investigation": calls,
        "kube_api_lists_per_investigation": lists,
        "kube_api_log_reads_per_investigation": {
            n: r["kube_api_log_reads"] for n, r in sizes.items()
        },
        "kube_objects_listed_per_investigation": {
            n: r["kube_objects_listed"] for n, r in sizes.items()
        },
        "promql_queries_per_investigation": queries,
        "targets": {
            "p95_ratio_max": 3.0,
            "p95_ratio_met": ratio <= 3.0,
            "calls_and_queries_flat": flat,
            "calls_and_queries_flat_from_1000_pods": flat_from_1000,
            "lists_flat": len({tuple(v) for v in lists.values()}) == 1,
        },
        "sizes": sizes,
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios/k8s-faults/k8s-005")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sizes", type=str, default=None, help="e.g. 100,1000 (pods)")
    parser.add_argument("--max-series", type=int, default=300_000)
    parser.add_argument("--quick", action="store_true", help="two small sizes, 3 runs")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(_investigations(json.loads(args.worker)))))
        return
    table = dict(QUICK) if args.quick else dict(SIZES)
    if args.quick:
        args.runs = min(args.runs, 3)
    if args.sizes:
        table = {int(n): table.get(int(n), 5) for n in args.sizes.split(",")}
    sizes = {}
    for pods, per_workload in sorted(table.items()):
        sizes[pods] = r = one_size(args.scenario, pods, per_workload, args)
        print(
            f"{r['cluster']['pods']:>6} pods {r['series']:>8} series: wall p50 "
            f"{r['wall_s']['p50']:.3f} s p95 {r['wall_s']['p95']:.3f} s, peak RSS "
            f"{r['peak_rss_mb']} MB, k8s calls {r['kube_api_calls']} (lists "
            f"{r['kube_api_lists']}, logs {r['kube_api_log_reads']}), PromQL "
            f"{r['promql_queries']}, follow-up {r['follow_up_calls']}, "
            f"suspect {r['top_suspect']}",
            flush=True,
        )
    result = report(sizes, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"ratios {result['ratios']}; targets {result['targets']}; wrote {args.out}")


if __name__ == "__main__":
    main()
