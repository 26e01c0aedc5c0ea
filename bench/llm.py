"""LLM analysis benchmark: `make bench-llm` (= `.venv/bin/python bench/llm.py`).

1. Throughput against a gateway of fixed capacity: the scripted OpenAI-compatible server
   (lab/triage_lab/fakes/gateway.py, in a process of its own) holds at most C requests at once, each for L seconds, and answers 429
   (Retry-After 1 s) beyond that: a GPU backend behind LiteLLM with max_parallel_requests. A pool
   of investigation workers (2·C, more than the gateway holds) runs the real LLMAnalyzer, whose
   adaptive limit starts above C (max_concurrency 2·C) and has to find C. Measured in a window
   after a warmup (steady state; the warmup's one burst of 429s, while the limiter learns C, is
   reported apart): RCAs/s against the ideal C/L (target >= 0.9·C/L), 429s (target: no storm,
   under 2% of the calls), p50/p99 of the wait for a call slot, drafts that fell back.
2. Prompt tokens per RCA over the Kubernetes fault corpus (scenarios/k8s-faults/ when present):
   the real investigation path (triage.evaluation: file-backed sources, standard collectors,
   Investigator) with the LLM analyzer and the prompt budget, against the scripted server.
   Target p95 <= 4,000.

Writes bench/results/llm.json. A benchmark, not a test: numbers move with other load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from triage_lab.fakes.gateway import ScriptedLLM  # noqa: E402
from triage_lab.fakes.process import free_port  # noqa: E402

from triage.analyse.backpressure import AdaptiveLimiter, Slot  # noqa: E402
from triage.analyse.gateway import gateway_client  # noqa: E402
from triage.analyse.llm import LLMAnalyzer, llm_analyzer  # noqa: E402
from triage.settings import Settings  # noqa: E402
from triage.telemetry import Metrics  # noqa: E402

CORPUS = ROOT / "scenarios" / "k8s-faults"
RESULTS = ROOT / "bench" / "results" / "llm.json"


class RecordingLimiter(AdaptiveLimiter):
    """Keeps every slot's queue wait and the limit over time, for the report."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[tuple[float, float]] = []  # (when, queue wait)
        self.timeline: list[tuple[float, float]] = []  # (when, limit)

    async def acquire(self) -> Slot:
        slot = await super().acquire()
        self.waits.append((slot.started, slot.queue_wait))
        return slot

    def record(self, slot: Slot, signal: str, latency: float | None = None) -> None:
        super().record(slot, signal, latency)
        self.timeline.append((time.monotonic(), self.limit))


@contextlib.contextmanager
def gateway_process(capacity: int, latency: float) -> Iterator[str]:
    """The scripted gateway in a process of its own, as a real gateway would be: sharing this
    interpreter would charge its work to the client's latency. time.monotonic() is the same
    clock in both processes, so its response times line up with ours."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.llmserver", "--port", str(port)),
            *("--capacity", str(capacity), "--latency", str(latency)),
        ],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/stats", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("scripted gateway did not start") from None
                time.sleep(0.1)
        yield url + "/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def fetch_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as resp:
        stats: dict[str, Any] = json.load(resp)
        return stats


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def settings_for(url: str, **llm: Any) -> Settings:
    return Settings.model_validate({"llm": {"base_url": url, "model": "bench", **llm}})


async def throughput(
    capacity: int, latency: float, warmup: float, duration: float
) -> dict[str, Any]:
    """Workers run RCAs back to back for warmup + duration; the rate is what completed inside
    the window after the warmup (steady state: the limiter has found the capacity, and the
    drain of the last calls is not counted)."""
    from tests.support.llm_case import evidence, incident

    workers = 2 * capacity
    with gateway_process(capacity, latency) as url:
        settings = settings_for(url, max_concurrency=workers, max_retries=5)
        analyzer = llm_analyzer(settings, gateway_client(settings.llm, None), Metrics())
        limiter = RecordingLimiter(1, workers, None)
        analyzer.limiter = limiter
        labels: dict[str, int] = {}
        done: list[float] = []
        started = time.monotonic()
        window = (started + warmup, started + warmup + duration)

        async def worker() -> None:
            while time.monotonic() < window[1]:
                rca = await analyzer.analyze(incident(), evidence())
                done.append(time.monotonic())
                labels[rca.analyzer] = labels.get(rca.analyzer, 0) + 1

        await asyncio.gather(*(worker() for _ in range(workers)))
        await analyzer.aclose()
        stats = await asyncio.to_thread(fetch_stats, url)

    def inside(t: float) -> bool:
        return window[0] <= t < window[1]

    ideal = capacity / latency
    rate = sum(1 for t in done if inside(t)) / duration
    responses = [(t, code) for t, code in stats["responses"]]
    calls = [code for t, code in responses if inside(t)]
    rejected = calls.count(429)
    startup_429 = sum(1 for t, code in responses if code == 429 and t < window[0])
    waits = [w for t, w in limiter.waits if inside(t)]
    limits = [lim for t, lim in limiter.timeline if inside(t)]
    return {
        "capacity": capacity,
        "latency_s": latency,
        "workers": workers,
        "max_concurrency": workers,
        "warmup_s": warmup,
        "window_s": duration,
        "rcas_in_window": sum(1 for t in done if inside(t)),
        "rcas_per_s": round(rate, 2),
        "ideal_per_s": round(ideal, 2),
        "fraction_of_ideal": round(rate / ideal, 3),
        "gateway_calls_in_window": len(calls),
        "http_429_in_window": rejected,
        "http_429_fraction_in_window": round(rejected / max(len(calls), 1), 4),
        "http_429_during_warmup": startup_429,
        "queue_wait_p50_s": round(pct(waits, 0.5), 3),
        "queue_wait_p99_s": round(pct(waits, 0.99), 3),
        "gateway_peak_concurrency": stats["peak"],
        "limit_decreases": limiter.decreases,
        "limit_mean_in_window": round(statistics.fmean(limits), 2) if limits else None,
        "limit_min_max_in_window": [round(min(limits), 2), round(max(limits), 2)]
        if limits
        else None,
        "drafts_by_analyzer": labels,
        "targets": {
            "rcas_per_s>=0.9*C/L": rate >= 0.9 * ideal,
            "no_429_storm(<2% of calls in window)": rejected < 0.02 * max(len(calls), 1),
        },
    }


async def corpus_tokens(limit: int | None) -> dict[str, Any]:
    from triage_lab.evaluation import investigate, sources
    from triage_lab.scenarios import find_scenarios, load_scenario

    from collectors.standard import standard_collectors

    if not CORPUS.exists():
        return {"corpus": str(CORPUS.relative_to(ROOT)), "present": False}
    dirs = find_scenarios(CORPUS)[:limit]
    with ScriptedLLM() as server:
        settings = settings_for(server.url)
        tokens: list[int] = []
        per_case: dict[str, int] = {}
        errors: dict[str, str] = {}
        for d in dirs:
            scenario = load_scenario(d)
            analyzer: LLMAnalyzer = llm_analyzer(
                settings,
                gateway_client(settings.llm, None),
                Metrics(),
                call_graph=scenario.meta.call_graph,
            )
            try:
                async with sources(scenario, "files") as (kube, metrics):
                    rca = await investigate(
                        scenario,
                        standard_collectors(kube, metrics),
                        analyzer,
                        settings.investigation,
                    )
                if rca.usage is None or rca.analyzer != "llm":
                    errors[scenario.name] = f"no LLM answer: {rca.label}"
                    continue
                tokens.append(rca.usage.prompt_tokens)
                per_case[scenario.name] = rca.usage.prompt_tokens
            except Exception as exc:  # report the case, keep measuring the others
                errors[scenario.name] = f"{type(exc).__name__}: {exc}"
            finally:
                await analyzer.aclose()
    budget = settings.investigation.prompt_budget_tokens
    return {
        "corpus": str(CORPUS.relative_to(ROOT)),
        "present": True,
        "cases": len(dirs),
        "measured": len(tokens),
        "prompt_budget_tokens": budget,
        "prompt_tokens_p50": pct([float(t) for t in tokens], 0.5),
        "prompt_tokens_p95": pct([float(t) for t in tokens], 0.95),
        "prompt_tokens_max": max(tokens, default=0),
        "counted_by": "scripted gateway: triage.budget.estimate_tokens over the messages "
        "and the response_format schema",
        "errors": errors,
        "per_case": per_case,
        "targets": {"p95<=4000": bool(tokens) and pct([float(t) for t in tokens], 0.95) <= 4000},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--capacity", type=int, default=32, help="C: requests the gateway holds")
    parser.add_argument("--latency", type=float, default=2.0, help="L: seconds per request")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds before the window")
    parser.add_argument("--duration", type=float, default=30.0, help="measured window, seconds")
    parser.add_argument("--corpus-limit", type=int, default=None, help="scenarios, at most")
    args = parser.parse_args()

    started = datetime.now(UTC)
    first = asyncio.run(throughput(args.capacity, args.latency, args.warmup, args.duration))
    print(
        f"throughput: {first['rcas_per_s']} RCAs/s of ideal {first['ideal_per_s']} "
        f"({first['fraction_of_ideal']:.0%}); 429s {first['http_429_in_window']} of "
        f"{first['gateway_calls_in_window']} calls in the window "
        f"({first['http_429_during_warmup']} during the warmup); queue wait "
        f"p50 {first['queue_wait_p50_s']} s p99 {first['queue_wait_p99_s']} s; "
        f"gateway peak {first['gateway_peak_concurrency']} (capacity {first['capacity']})"
    )
    second = asyncio.run(corpus_tokens(args.corpus_limit))
    if second["present"]:
        print(
            f"prompt tokens over {second['measured']} of {second['cases']} scenarios: "
            f"p50 {second['prompt_tokens_p50']:.0f}, p95 {second['prompt_tokens_p95']:.0f}, "
            f"max {second['prompt_tokens_max']} (budget {second['prompt_budget_tokens']})"
        )
    else:
        print(f"prompt tokens: {second['corpus']} not present, skipped")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": "bench/llm.py",
                "started_at": started.isoformat(),
                "machine": {"python": platform.python_version(), "platform": platform.platform()},
                "throughput": first,
                "prompt_tokens": second,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"-> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
