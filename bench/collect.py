"""Collectors run concurrently: an investigation's collection wall time should stay within
1.2x its slowest collector. Runs the real collectors over every scenario of the Kubernetes
fault corpus (file backend, plus a simulated network latency per source call) and writes
bench/results/collect.json.

    .venv/bin/python bench/collect.py [--latency-ms 20] [--path scenarios/k8s-faults]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triage_lab.evaluation import incident_of, investigated_at
from triage_lab.scenarios import find_scenarios, load_scenario

from collectors.sources import FileKubeSource, FileMetricSource
from collectors.standard import standard_collectors
from triage.investigate.investigation import Investigator
from triage.settings import InvestigationSettings
from triage.telemetry import Metrics


class Delayed:
    """Wraps a source so every call costs a round trip, as a real API server's would."""

    def __init__(self, inner: Any, latency_s: float) -> None:
        self._inner = inner
        self._latency = latency_s

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(self._latency)
            return await target(*args, **kwargs)

        return call


async def one(path: Path, latency_s: float) -> dict[str, Any]:
    scenario = load_scenario(path)
    kube = Delayed(FileKubeSource(scenario.kubernetes, scenario.logs), latency_s)
    metrics = Delayed(FileMetricSource(scenario.metrics), latency_s)
    investigator = Investigator(
        standard_collectors(kube, metrics), InvestigationSettings(), Metrics()
    )
    started = time.perf_counter()
    evidence = await investigator.collect(incident_of(scenario), now=investigated_at(scenario))
    wall = time.perf_counter() - started
    slowest = max(e.duration_s for e in evidence)
    return {
        "scenario": scenario.name,
        "wall_s": round(wall, 4),
        "slowest_s": round(slowest, 4),
        "sum_s": round(sum(e.duration_s for e in evidence), 4),
        "ratio": round(wall / slowest, 4) if slowest else 1.0,
        "collectors": {e.collector: round(e.duration_s, 4) for e in evidence},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", type=Path, default=Path("scenarios/k8s-faults"))
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--output", type=Path, default=Path("bench/results/collect.json"))
    args = parser.parse_args()
    cases = [asyncio.run(one(p, args.latency_ms / 1000)) for p in find_scenarios(args.path)]
    ratios = sorted(c["ratio"] for c in cases)
    p95 = ratios[min(len(ratios) - 1, int(0.95 * len(ratios)))]
    result = {
        "command": "bench/collect.py",
        "at": datetime.now(UTC).isoformat(),
        "latency_ms_per_source_call": args.latency_ms,
        "scenarios": len(cases),
        "ratio_wall_to_slowest": {
            "median": round(statistics.median(ratios), 4),
            "p95": p95,
            "max": ratios[-1],
        },
        "concurrency_gain_sum_over_wall": round(
            statistics.median(c["sum_s"] / c["wall_s"] for c in cases), 3
        ),
        "target": "wall <= 1.2 x slowest collector",
        "met": p95 <= 1.2,
        "cases": cases,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    r = result["ratio_wall_to_slowest"]
    print(
        f"{len(cases)} scenarios: wall/slowest median {r['median']:.3f} p95 {r['p95']:.3f} "
        f"max {r['max']:.3f}; sum/wall {result['concurrency_gain_sum_over_wall']:.2f}; "
        f"target met: {result['met']}"
    )


if __name__ == "__main__":
    main()
