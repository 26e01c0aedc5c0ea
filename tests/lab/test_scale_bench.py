"""bench/scale.py, smoke-sized: the synthetic cluster has the shape asked for, and a run through
the fake API server and a real Prometheus reports what the issue asks. No timings asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from triage_lab.scenarios import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios/k8s-faults/k8s-005"
sys.path.insert(0, str(ROOT / "bench"))

from scale_cluster import (  # noqa: E402
    SCRAPE_S,
    SERIES_PER_POD,
    THIN_S,
    WORKLOADS_PER_NAMESPACE,
    build,
)


def test_cluster_has_the_size_and_shape_asked_for() -> None:
    scenario = load_scenario(SCENARIO)
    cluster = build(scenario, 400, 4, max_series=10**6, span=(1_775_058_000, 1_775_060_400))
    stats = cluster.stats
    assert 380 <= stats["pods"] <= 400
    assert stats["incident_namespace_pods"] >= (WORKLOADS_PER_NAMESPACE - 8) * 4
    pods_per_node = stats["pods"] / stats["nodes"]
    assert 20 <= pods_per_node <= 30
    assert stats["filler_series"] >= (stats["pods"] - len(scenario.kubernetes.pods)) * (
        SERIES_PER_POD - 1
    )
    assert cluster.openmetrics.endswith("# EOF\n")
    # Filler is healthy: nothing in it changed recently or failed.
    assert all(e["type"] == "Normal" for e in cluster.objects.events[-10:])


def test_cluster_past_the_series_budget_thins_other_namespaces_only() -> None:
    # Past the budget every series is still there (the index is as large), other namespaces'
    # with one sample per THIN_S instead of one per scrape.
    scenario = load_scenario(SCENARIO)
    span = (1_775_058_000, 1_775_060_400)
    cluster = build(scenario, 400, 4, max_series=1000, span=span)
    assert cluster.stats["sparse_namespaces"] >= 1
    samples: dict[str, dict[str, int]] = {"billing": {}, "team-0000": {}}
    for line in cluster.openmetrics.splitlines():
        for ns, seen in samples.items():
            if line.startswith(f'http_requests_total{{namespace="{ns}"'):
                series = line.rsplit(" ", 2)[0]
                seen[series] = seen.get(series, 0) + 1
    assert samples["billing"] and samples["team-0000"]
    scrapes = (span[1] - span[0]) // SCRAPE_S
    assert min(samples["billing"].values()) >= scrapes
    assert max(samples["team-0000"].values()) <= (span[1] - span[0]) // THIN_S + 2


@pytest.mark.slow
def test_quick_run_reports_calls_that_do_not_grow_outside_the_incident(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    # Same pods per workload at both sizes: only the rest of the cluster grows.
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/scale.py"),
            "--quick",
            "--sizes",
            "90,250",
            "--runs",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        timeout=170,
    )
    result = json.loads(out.read_text())
    assert result["targets"]["calls_and_queries_flat"], result["kube_api_calls_per_investigation"]
    for size in result["sizes"].values():
        assert size["server_requests"] == size["calls_total"]  # counted where they arrive
        assert size["follow_up_calls"]["promql"] == 0  # a storm's second incident: cached
        assert size["top_suspect"] == ["risk-scoring"]
        assert size["peak_rss_mb"] > 0 and size["wall_s"]["p95"] > 0
