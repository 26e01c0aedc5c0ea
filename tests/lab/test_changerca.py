"""The ChangeRCA importer on the real dev split (shared/datasets/changerca-dev)."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from triage_lab.fakes.prometheus import Prometheus
from triage_lab.importers.changerca import import_changerca
from triage_lab.scenarios import ScenarioError, load_scenario, load_truth

from tests.support.changerca_data import shared_dir

CASE = "2023-09-22_1"  # adservice (exception) rolled out beside productcatalogservice, currency
COLUMNS = {
    "SuccessRate": "changerca_success_rate",
    "Latency": "changerca_latency_ms",
    "CPUUsageRate(%)": "changerca_cpu_usage_percent",
    "MemoryUsageRate(%)": "changerca_memory_usage_percent",
    "NodeCpuUsageRate(%)": "changerca_node_cpu_usage_percent",
    "NodeMemoryUsageRate(%)": "changerca_node_memory_usage_percent",
}
NON_TRUTH = ("scenario.json", "kubernetes.json", "metrics.om")


@pytest.fixture(scope="module")
def dev_split() -> Path:
    return shared_dir()  # fails (never skips) when the split is missing


@pytest.fixture(scope="module")
def imported(dev_split: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dest = tmp_path_factory.mktemp("changerca")
    return {p.name: p for p in import_changerca(dev_split, dest)}


def case_json(dev_split: Path, case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((dev_split / case / f"{case}.json").read_text())
    return data


def kube(scenario: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((scenario / "kubernetes.json").read_text())
    return data


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects}


def revision(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"])


def edge_labels(*values: str) -> tuple[tuple[str, str], ...]:
    """Labels of a per-pod edge series from (service, pod, version, caller, callee), sorted."""
    names = ("service", "pod", "version", "caller", "callee")
    return tuple(sorted([("namespace", "onlineboutique"), *zip(names, values, strict=True)]))


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def edge_files(case_dir: Path) -> list[tuple[Path, str, str, str]]:
    """(file, pod, caller, callee) for every per-pod CSV."""
    out = []
    for path in sorted(case_dir.glob("*-v*_*_*.csv")):
        pod, caller, callee = path.stem.split("_")
        out.append((path, pod, caller, callee))
    return out


def series(metrics: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]] = {}
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            out.setdefault(key, {})[float(s.timestamp)] = s.value
    return out


def copy_case(dev_split: Path, root: Path, case: str = CASE) -> Path:
    return Path(shutil.copytree(dev_split / case, root / case))


def files(scenario: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(scenario.iterdir())}


# -- the dev split --------------------------------------------------------------------------------


def test_every_dev_case_becomes_a_loadable_scenario_with_its_truth(
    dev_split: Path, imported: dict[str, Path]
):
    assert len(imported) == 11
    for case, scenario_dir in imported.items():
        raw = case_json(dev_split, case)
        scenario = load_scenario(scenario_dir)
        truth = load_truth(scenario_dir)

        assert scenario.name == f"changerca-{case}"
        assert scenario.metrics.rstrip().endswith("# EOF")
        fault_service = raw["fault_release_service"]
        assert (truth.kind, truth.name, truth.service) == (
            "Deployment",
            fault_service,
            fault_service,
        )
        assert truth.namespace == "onlineboutique"
        assert truth.category == "bad_rollout"
        assert truth.detail == raw["fault"]
        assert truth.onset == datetime.fromtimestamp(
            raw["plan"][fault_service]["release_time"], UTC
        )


def test_rollouts_are_replicaset_revisions_at_the_plans_release_times(
    dev_split: Path, imported: dict[str, Path]
):
    for case, scenario_dir in imported.items():
        objects = kube(scenario_dir)
        deployments = by_name(objects["deployments"])
        replicasets = by_name(objects["replicasets"])
        pods = by_name(objects["pods"])
        for service, plan in case_json(dev_split, case)["plan"].items():
            steps = sorted(plan["process"].values(), key=lambda s: s["release_complete_timestamp"])
            released = [p for s in steps for p in s["release_pod"]]
            new_name = released[0].rsplit("-", 1)[0]  # adservice-v2-fd6989b7c
            owned = [
                rs
                for rs in replicasets.values()
                if rs["metadata"]["ownerReferences"][0]["name"] == service
            ]
            old, new = sorted(owned, key=revision)

            assert deployments[service]["metadata"]["annotations"] == {
                "deployment.kubernetes.io/revision": "2"
            }
            assert new["metadata"]["name"] == new_name
            assert new["metadata"]["creationTimestamp"] == iso(plan["release_time"])
            assert new["metadata"]["labels"]["pod-template-hash"] == new_name.rsplit("-", 1)[1]
            assert new["spec"]["template"]["spec"]["containers"][0]["image"] == f"{service}:v2"
            assert old["spec"]["template"]["spec"]["containers"][0]["image"] == f"{service}:v1"
            assert old["metadata"]["creationTimestamp"] < new["metadata"]["creationTimestamp"]
            assert (old["status"]["replicas"], new["status"]["replicas"]) == (
                steps[-1]["v1"],
                steps[-1]["v2"],
            )
            for step in steps:
                for pod in step["release_pod"]:
                    assert pods[pod]["metadata"]["creationTimestamp"] == iso(
                        step["release_complete_timestamp"]
                    )
                    assert pods[pod]["metadata"]["ownerReferences"][0]["name"] == new_name
                    assert pods[pod]["metadata"]["labels"]["version"] == "v2"
                for pod in step["delete_pod"]:
                    assert pod not in pods  # gone once the rollout finished


def test_services_without_a_rollout_have_one_revision_with_every_pod_seen(
    dev_split: Path, imported: dict[str, Path]
):
    raw = case_json(dev_split, CASE)
    objects = kube(imported[CASE])
    deployments = by_name(objects["deployments"])
    pods = by_name(objects["pods"])
    seen = {pod for _, pod, _, _ in edge_files(dev_split / CASE)} | set(raw["before_change_list"])

    for service in ("cartservice", "frontend", "loadgenerator"):
        assert service not in raw["plan"]
        assert deployments[service]["metadata"]["annotations"] == {
            "deployment.kubernetes.io/revision": "1"
        }
        expected = sorted(p for p in seen if p.startswith(f"{service}-"))
        assert expected
        assert sorted(p for p in pods if p.startswith(f"{service}-")) == expected
        assert deployments[service]["spec"]["replicas"] == len(expected)


def test_the_alert_is_a_frontend_slo_alert_at_detection_whose_selector_has_series(
    dev_split: Path, imported: dict[str, Path]
):
    for case, scenario_dir in imported.items():
        scenario = load_scenario(scenario_dir)
        [webhook] = scenario.meta.webhooks
        [alert] = webhook.alerts

        detect = case_json(dev_split, case)["detect_timestamp"]
        assert alert.startsAt == datetime.fromtimestamp(detect, UTC)
        assert alert.status == webhook.status == "firing"
        assert alert.labels["service"] == "frontend"
        assert alert.labels["namespace"] == "onlineboutique"
        assert alert.labels["severity"] == "critical"
        [expr] = parse_qs(urlparse(alert.generatorURL).query)["g0.expr"]
        assert expr == 'changerca_success_rate{service="frontend"}'
        assert re.search(
            r'^changerca_success_rate\{[^}]*service="frontend"', scenario.metrics, re.MULTILINE
        )


def test_call_graph_is_the_service_edges_of_the_csv_names(
    dev_split: Path, imported: dict[str, Path]
):
    for case, scenario_dir in imported.items():
        expected = sorted({(caller, callee) for *_, caller, callee in edge_files(dev_split / case)})
        assert load_scenario(scenario_dir).meta.call_graph == expected
        assert ("frontend", "checkoutservice") in expected


@pytest.mark.parametrize("case", [CASE, "2023-09-22_6"])  # _6 has the most NaN cells
def test_every_csv_value_is_a_sample_labelled_by_service_pod_version_and_edge(
    dev_split: Path, imported: dict[str, Path], case: str
):
    got = series(load_scenario(imported[case]).metrics)
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]] = {}
    for path, pod, caller, callee in edge_files(dev_split / case):
        service, version = pod.split("-")[:2]  # OnlineBoutique names have no dash
        labels = edge_labels(service, pod, version, caller, callee)
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                for column, name in COLUMNS.items():
                    value = float(row[column])
                    if not math.isnan(value):  # NaN: no reading that minute, left as a gap
                        key = (name, labels)
                        expected.setdefault(key, {})[float(row["Timestamp"])] = value
    assert got == expected


# -- ground truth stays in truth.json -------------------------------------------------------------


def test_the_fault_kind_and_the_word_fault_appear_only_in_truth(
    dev_split: Path, imported: dict[str, Path]
):
    for case, scenario_dir in imported.items():
        kind = case_json(dev_split, case)["fault"]
        assert re.search(rf"\b{kind}\b", (scenario_dir / "truth.json").read_text())
        for name in NON_TRUTH:
            text = (scenario_dir / name).read_text()
            assert not re.search(rf"\b{kind}\b", text), f"{case}/{name} names the fault kind"
            assert "fault" not in text.lower(), f"{case}/{name}"


def test_objects_are_in_sorted_order_not_the_plans(imported: dict[str, Path]):
    for scenario_dir in imported.values():
        objects = kube(scenario_dir)
        for kind in ("deployments", "replicasets", "pods"):
            names = [o["metadata"]["name"] for o in objects[kind]]
            assert names == sorted(names)


def test_non_truth_files_do_not_depend_on_the_answer(dev_split: Path, tmp_path: Path):
    """Point the answer at a benign rollout, reorder the plan, change every answer-ish field:
    only truth.json may change."""
    original = copy_case(dev_split, tmp_path / "a")
    swapped = copy_case(dev_split, tmp_path / "b")
    raw = case_json(dev_split, CASE)
    assert raw["fault_release_service"] == "adservice" and next(iter(raw["plan"])) == "adservice"
    raw["plan"] = dict(reversed(list(raw["plan"].items())))
    raw["plan"]["currencyservice"]["fault"] = "memoryleak"
    raw["fault_release_service"] = "currencyservice"
    raw["fault"] = "memoryleak"
    raw["normal_service_list"] = ["adservice", "productcatalogservice"]
    (swapped / f"{CASE}.json").write_text(json.dumps(raw))

    [a] = import_changerca(original, tmp_path / "out-a")
    [b] = import_changerca(swapped, tmp_path / "out-b")

    for name in NON_TRUTH:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (load_truth(a).service, load_truth(b).service) == ("adservice", "currencyservice")


# -- input handling -------------------------------------------------------------------------------


def test_the_original_files_with_other_methods_results_import_the_same(
    dev_split: Path, imported: dict[str, Path], tmp_path: Path
):
    case_dir = copy_case(dev_split, tmp_path / "src")
    raw = case_json(dev_split, CASE)
    answer = raw["fault_release_service"]
    raw |= {"GIED_result": answer, "Microscope_result": answer, "Microrca_result": answer}
    (case_dir / f"{CASE}.json").write_text(json.dumps(raw, indent=4))
    (case_dir / "gied.json").write_text(json.dumps({"result": answer}))
    for method in ("gied", "microrca", "microscope"):
        (case_dir / method).mkdir()
        (case_dir / method / f"{CASE}.json").write_text(json.dumps({"result": [answer]}))
        (case_dir / method / "adservice.json").write_text("{}")

    [scenario] = import_changerca(tmp_path / "src", tmp_path / "out")

    assert files(scenario) == files(imported[CASE])


def test_a_single_case_folder_imports_on_its_own(
    dev_split: Path, imported: dict[str, Path], tmp_path: Path
):
    assert import_changerca(dev_split / CASE, tmp_path) == [tmp_path / CASE]
    assert files(tmp_path / CASE) == files(imported[CASE])


def test_reimporting_gives_byte_identical_files(
    dev_split: Path, imported: dict[str, Path], tmp_path: Path
):
    again = {p.name: p for p in import_changerca(dev_split, tmp_path)}
    assert sorted(again) == sorted(imported)
    for case, scenario_dir in imported.items():
        assert files(again[case]) == files(scenario_dir), case


def test_a_case_without_plan_is_an_error_naming_file_and_field(dev_split: Path, tmp_path: Path):
    case_dir = copy_case(dev_split, tmp_path / "src")
    raw = case_json(dev_split, CASE)
    del raw["plan"]
    (case_dir / f"{CASE}.json").write_text(json.dumps(raw))

    with pytest.raises(ScenarioError) as err:
        import_changerca(case_dir, tmp_path / "out")

    assert err.value.path == case_dir / f"{CASE}.json"
    assert err.value.field == "plan"
    assert f"{CASE}.json: plan:" in str(err.value)
    assert not (tmp_path / "out" / CASE).exists()


def test_a_csv_missing_a_column_is_an_error_naming_file_and_column(dev_split: Path, tmp_path: Path):
    case_dir = copy_case(dev_split, tmp_path / "src")
    path = case_dir / "frontend-v1-684ff8b787-zwm6t_frontend_adservice.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, [c for c in rows[0] if c != "Latency"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    with pytest.raises(ScenarioError) as err:
        import_changerca(case_dir, tmp_path / "out")

    assert (err.value.path, err.value.field) == (path, "Latency")
    assert "Latency: missing column" in str(err.value)


def test_an_answer_outside_the_plan_is_an_error(dev_split: Path, tmp_path: Path):
    case_dir = copy_case(dev_split, tmp_path / "src")
    raw = case_json(dev_split, CASE) | {"fault_release_service": "cartservice"}
    (case_dir / f"{CASE}.json").write_text(json.dumps(raw))

    with pytest.raises(ScenarioError) as err:
        import_changerca(case_dir, tmp_path / "out")

    assert err.value.field == "fault_release_service"


def test_a_folder_without_cases_is_an_error(tmp_path: Path):
    (tmp_path / "gied").mkdir()
    with pytest.raises(ScenarioError, match="no ChangeRCA case"):
        import_changerca(tmp_path, tmp_path / "out")


def test_rows_with_non_numbers_are_dropped_and_nan_cells_left_as_gaps(
    dev_split: Path, tmp_path: Path
):
    case_dir = copy_case(dev_split, tmp_path / "src")
    pod, caller, callee = "frontend-v1-684ff8b787-zwm6t", "frontend", "adservice"
    path = case_dir / f"{pod}_{caller}_{callee}.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[3]["SuccessRate"] = "n/a"
    rows[4]["Latency"] = "NaN"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    [scenario] = import_changerca(case_dir, tmp_path / "out")

    labels = edge_labels("frontend", pod, "v1", caller, callee)
    got = series(load_scenario(scenario).metrics)
    latency = got[("changerca_latency_ms", labels)]
    cpu = got[("changerca_cpu_usage_percent", labels)]
    t3, t4, t5 = (float(rows[i]["Timestamp"]) for i in (3, 4, 5))
    assert t3 not in cpu and t3 not in latency  # the whole row is dropped
    assert t4 not in latency and cpu[t4] == float(rows[4]["CPUUsageRate(%)"])  # one gap
    assert latency[t5] == float(rows[5]["Latency"])
    assert len(cpu) == len(rows) - 1


# -- a real Prometheus ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(imported: dict[str, Path]) -> Iterator[Prometheus]:
    with Prometheus((imported[CASE] / "metrics.om").read_text()) as server:
        yield server


def instant(prom: Prometheus, query: str, at: float) -> list[dict[str, Any]]:
    resp = httpx.get(f"{prom.url}/api/v1/query", params={"query": query, "time": at}, timeout=10)
    body = resp.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.slow
def test_metrics_backfill_into_prometheus_and_answer_with_the_csv_values(
    dev_split: Path, prometheus: Prometheus
):
    pod = "adservice-v2-fd6989b7c-w7f44"
    with (dev_split / CASE / f"{pod}_frontend_adservice.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    detect = case_json(dev_split, CASE)["detect_timestamp"]

    for row in rows[:5]:
        [sample] = instant(
            prometheus, f'changerca_success_rate{{pod="{pod}"}}', float(row["Timestamp"])
        )
        assert sample["metric"]["version"] == "v2"
        assert sample["metric"]["service"] == "adservice"
        assert float(sample["value"][1]) == float(row["SuccessRate"])
    frontend = instant(prometheus, 'changerca_success_rate{service="frontend"}', detect)
    assert sorted(s["metric"]["callee"] for s in frontend) == sorted(
        callee for _, pod, _, callee in edge_files(dev_split / CASE) if pod.startswith("frontend-")
    )
    assert len(frontend) == 7
