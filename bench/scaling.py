"""Scaling simulation: `make bench-scaling` (= `.venv/bin/python bench/scaling.py`).

Replays an alert storm against a model of KEDA + the HPA driving the workers and the vLLM
model server, with the thresholds read from the rendered production overlay (not copied here):

- incidents arrive (default 2,000 in 5 minutes, seeded), wait the incident debounce, and queue
  on the "investigations" consumer;
- a worker runs up to TRIAGE_NATS_MAX_WORKERS investigations at once: evidence collection, then
  one LLM call through the gateway to the primary vLLM if a replica is ready, else to the
  always-on small fallback model;
- a vLLM replica runs up to --max-num-seqs requests at once (longer with a fuller batch), the
  rest wait in its queue; a new replica serves only after a GPU cold start;
- the HPA loop (every 15 s) computes desired = ceil(metric / target) per metric, takes the
  largest, skips changes within its 10% tolerance, clamps to min/max, applies the scale-up /
  scale-down stabilisation windows and rate policies of the ScaledObject; KEDA activates from
  zero at its polling interval and scales to zero after cooldownPeriod without activity;
  Prometheus-backed metrics are as old as the last scrape (15 s).

Writes bench/results/scaling.json (parameters, assumptions, p50/p95/p99 time-to-draft,
GPU-minutes, peaks) and bench/results/scaling.png (replicas, queue depth, time-to-draft).
A model, not a measurement: the assumptions are in the JSON next to the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.deploy.manifests import arg_value, one, render, settings_env  # noqa: E402
from triage.settings import IncidentSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
HPA_SYNC_S = 15  # kube-controller-manager --horizontal-pod-autoscaler-sync-period default
HPA_TOLERANCE = 0.1
SCRAPE_S = 15  # ServiceMonitor interval


@dataclass
class Rules:
    """One ScaledObject as the HPA and KEDA apply it."""

    polling_s: int
    cooldown_s: int
    min_replicas: int
    max_replicas: int
    up_window_s: int
    down_window_s: int
    up_policies: list[tuple[str, int, int]]
    up_select: str
    down_policies: list[tuple[str, int, int]]
    down_select: str
    thresholds: dict[str, float]
    activation: dict[str, float]


@dataclass
class Params:
    incidents: int = 2000
    storm_s: float = 300
    seed: int = 7
    horizon_s: int = 3 * 3600
    collect_s: float = 3.0  # mean evidence collection per investigation
    llm_s: float = 12.0  # primary model, one RCA call at a light batch
    llm_small_s: float = 5.0
    batch_slowdown: float = 0.5  # a full batch makes each sequence this much slower
    gpu_cold_start_s: float = 240  # GPU node + image + weights + CUDA graphs
    worker_start_s: float = 15
    warm_vllm: int = 0  # replicas already running when the storm starts
    vllm_max: int | None = None  # what-if: another vLLM maxReplicaCount (workers' max follows)


@dataclass
class Deploy:
    per_worker: int
    debounce_s: float
    seqs: int
    small_seqs: int
    small_replicas: int
    workers: Rules
    vllm: Rules
    gpu_cap_per_replica: int


def rules(so: dict[str, Any]) -> Rules:
    spec = so["spec"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]

    def pol(side: str) -> list[tuple[str, int, int]]:
        return [(p["type"], p["value"], p["periodSeconds"]) for p in behavior[side]["policies"]]

    thresholds, activation = {}, {}
    modifiers = spec["advanced"].get("scalingModifiers")
    for t in spec["triggers"]:
        meta = t["metadata"]
        thresholds[t["name"]] = float(meta.get("threshold", meta.get("lagThreshold", 0)))
        activation[t["name"]] = float(
            meta.get("activationThreshold", meta.get("activationLagThreshold", 0))
        )
    if modifiers:
        thresholds["composite"] = float(modifiers["target"])
        activation["composite"] = float(modifiers.get("activationTarget", 0))
    return Rules(
        polling_s=spec.get("pollingInterval", 30),
        cooldown_s=spec.get("cooldownPeriod", 300),
        min_replicas=spec.get("minReplicaCount", 0),
        max_replicas=spec.get("maxReplicaCount", 100),
        up_window_s=behavior["scaleUp"].get("stabilizationWindowSeconds", 0),
        down_window_s=behavior["scaleDown"].get("stabilizationWindowSeconds", 300),
        up_policies=pol("scaleUp"),
        up_select=behavior["scaleUp"].get("selectPolicy", "Max"),
        down_policies=pol("scaleDown"),
        down_select=behavior["scaleDown"].get("selectPolicy", "Max"),
        thresholds=thresholds,
        activation=activation,
    )


def load_deploy(overlay: str) -> Deploy:
    objs = render(overlay)
    env = settings_env(objs)
    workers = one(objs, "ScaledObject", "triage-worker")
    cap_query = next(t for t in workers["spec"]["triggers"] if t["name"] == "gpu_capacity")[
        "metadata"
    ]["query"]
    cap = re.search(r"\* (\d+)$", cap_query)
    assert cap, cap_query

    def container(name: str) -> dict[str, Any]:
        c: dict[str, Any] = one(objs, "Deployment", name)["spec"]["template"]["spec"]["containers"][
            0
        ]
        return c

    return Deploy(
        per_worker=int(env["TRIAGE_NATS_MAX_WORKERS"]),
        debounce_s=float(env.get("TRIAGE_INCIDENTS_DEBOUNCE_S", IncidentSettings().debounce_s)),
        seqs=int(arg_value(container("vllm"), "--max-num-seqs")),
        small_seqs=int(arg_value(container("vllm-small"), "--max-num-seqs")),
        small_replicas=one(objs, "Deployment", "vllm-small")["spec"]["replicas"],
        workers=rules(workers),
        vllm=rules(one(objs, "ScaledObject", "vllm")),
        gpu_cap_per_replica=int(cap.group(1)),
    )


@dataclass
class Request:
    incident: int
    arrived: float
    ready_at: float  # after the debounce
    model: str = ""
    owner: Worker | None = None


@dataclass
class Replica:
    seqs: int
    ready_at: float
    running: list[tuple[float, Request]] = field(default_factory=list)  # (done at, request)
    waiting: deque[Request] = field(default_factory=deque)

    def ready(self, now: float) -> bool:
        return now >= self.ready_at


@dataclass
class Worker:
    ready_at: float
    slots: int
    collecting: list[tuple[float, Request]] = field(default_factory=list)
    in_llm: int = 0
    draining: bool = False

    def busy(self) -> int:
        return len(self.collecting) + self.in_llm


class Autoscaler:
    """HPA (behavior, tolerance) + KEDA (activation, cooldown) for one ScaledObject."""

    def __init__(self, r: Rules, replicas: int) -> None:
        self.r = r
        self.history: list[tuple[float, int]] = [(-1e9, replicas)]
        self.recommendations: deque[tuple[float, int]] = deque()
        self.last_active = -1e9

    def replicas_at(self, t: float) -> int:
        value = self.history[0][1]
        for at, n in self.history:
            if at > t:
                break
            value = n
        return value

    def step(self, now: float, current: int, metrics: dict[str, float]) -> int:
        r = self.r
        active = any(metrics[k] > r.activation[k] for k in metrics)
        if active:
            self.last_active = now
        if current == 0:
            # KEDA's own loop: activation takes 0 -> 1 (then the HPA takes over).
            return 1 if active and now % r.polling_s < HPA_SYNC_S else 0
        if not active and r.min_replicas == 0 and now - self.last_active >= r.cooldown_s:
            return 0
        desired = current
        proposals = []
        for name, value in metrics.items():
            ratio = value / r.thresholds[name] / current
            if abs(ratio - 1) > HPA_TOLERANCE:
                proposals.append(math.ceil(value / r.thresholds[name]))
            else:
                proposals.append(current)
        desired = max(proposals) if proposals else current
        desired = min(max(desired, max(r.min_replicas, 1)), r.max_replicas)
        self.recommendations.append((now, desired))
        window = max(r.up_window_s, r.down_window_s)
        while self.recommendations and self.recommendations[0][0] < now - window:
            self.recommendations.popleft()
        if desired > current:
            recent = [n for t, n in self.recommendations if t >= now - r.up_window_s]
            desired = min(recent) if recent else desired
            limits = [
                self._limit(now, kind, value, period, up=True)
                for kind, value, period in r.up_policies
            ]
            cap = max(limits) if r.up_select == "Max" else min(limits)
            desired = min(desired, max(cap, current))
        elif desired < current:
            recent = [n for t, n in self.recommendations if t >= now - r.down_window_s]
            desired = max(recent) if recent else desired
            limits = [
                self._limit(now, kind, value, period, up=False)
                for kind, value, period in r.down_policies
            ]
            floor = min(limits) if r.down_select == "Max" else max(limits)
            desired = max(desired, min(floor, current))
        return desired

    def _limit(self, now: float, kind: str, value: int, period: int, *, up: bool) -> int:
        base = self.replicas_at(now - period)
        change = value if kind == "Pods" else math.ceil(base * value / 100)
        return base + change if up else base - change

    def record(self, now: float, replicas: int) -> None:
        if replicas != self.history[-1][1]:
            self.history.append((now, replicas))


def simulate(d: Deploy, p: Params) -> dict[str, Any]:
    if p.vllm_max is not None:
        workers_max = math.ceil(
            p.vllm_max * d.gpu_cap_per_replica / d.workers.thresholds["composite"]
        )
        d = replace(
            d,
            vllm=replace(d.vllm, max_replicas=p.vllm_max),
            workers=replace(d.workers, max_replicas=workers_max),
        )
    rng = random.Random(p.seed)
    arrivals = sorted(rng.uniform(0, p.storm_s) for _ in range(p.incidents))
    pending = deque(Request(i, t, t + d.debounce_s) for i, t in enumerate(arrivals))
    queue: deque[Request] = deque()  # the investigations consumer: published, not fetched
    workers = [Worker(0, d.per_worker) for _ in range(d.workers.min_replicas)]
    primary = [Replica(d.seqs, 0) for _ in range(p.warm_vllm)]
    small = [Replica(d.small_seqs, 0) for _ in range(d.small_replicas)]
    w_scaler = Autoscaler(d.workers, len(workers))
    v_scaler = Autoscaler(d.vllm, len(primary))
    if primary:
        v_scaler.last_active = 0  # warm because it was busy a moment ago
    drafts: list[tuple[float, float, str]] = []  # (arrived, time to draft, model)
    timeline: list[dict[str, float]] = []
    scraped: dict[str, float] = {"waiting": 0, "backlog": 0, "gpu": 0, "ready": 0}
    gpu_seconds = 0.0

    def lag() -> int:
        return len(queue) + sum(w.busy() for w in workers)

    def service(replica: Replica, req: Request, now: float, base: float) -> None:
        slow = 1 + p.batch_slowdown * len(replica.running) / replica.seqs
        replica.running.append((now + rng.lognormvariate(math.log(base * slow), 0.3), req))

    for now in range(p.horizon_s):
        while pending and pending[0].ready_at <= now:
            queue.append(pending.popleft())
        # Workers fetch what they have slots for, collect evidence, then call the gateway.
        for w in workers:
            if now < w.ready_at:
                continue
            done = [r for t, r in w.collecting if t <= now]
            w.collecting = [(t, r) for t, r in w.collecting if t > now]
            for req in done:
                ready = [r for r in primary if r.ready(now)]
                pool, req.model = (ready, "primary") if ready else (small, "small")
                target = min(pool, key=lambda r: len(r.running) + len(r.waiting))
                target.waiting.append(req)
                w.in_llm += 1
                req.owner = w
            while not w.draining and queue and w.busy() < w.slots:
                w.collecting.append((now + rng.expovariate(1 / p.collect_s), queue.popleft()))
        for replica in primary + small:
            if not replica.ready(now):
                continue
            finished = [r for t, r in replica.running if t <= now]
            replica.running = [(t, r) for t, r in replica.running if t > now]
            for req in finished:
                assert req.owner is not None
                req.owner.in_llm -= 1
                drafts.append((req.arrived, now + 0.5 - req.arrived, req.model))
            while replica.waiting and len(replica.running) < replica.seqs:
                base = p.llm_s if replica in primary else p.llm_small_s
                service(replica, replica.waiting.popleft(), now, base)
        workers = [w for w in workers if not (w.draining and w.busy() == 0)]

        if now % SCRAPE_S == 0:
            ready = [r for r in primary if r.ready(now)]
            scraped = {
                "waiting": sum(len(r.waiting) for r in ready),
                "backlog": lag(),
                "gpu": sum(min(100.0, 100 * len(r.running) / r.seqs) for r in ready),
                "ready": len(ready),
            }
        if now % HPA_SYNC_S == 0:
            # What gpu_capacity counts: ready primaries, or the fallback while there are none.
            servers = scraped["ready"] or len(small)
            composite = min(lag(), servers * d.gpu_cap_per_replica)
            live = [w for w in workers if not w.draining]
            want = w_scaler.step(now, len(live), {"composite": composite})
            for _ in range(want - len(live)):
                workers.append(Worker(now + p.worker_start_s, d.per_worker))
            for w in sorted(live, key=Worker.busy)[: max(len(live) - want, 0)]:
                w.draining = True  # finishes its work within terminationGracePeriodSeconds
            w_scaler.record(now, want)
            want_v = v_scaler.step(
                now,
                len(primary),
                {
                    "waiting": scraped["waiting"],
                    "backlog": scraped["backlog"],
                    "gpu_utilization": scraped["gpu"],
                },
            )
            for _ in range(want_v - len(primary)):
                primary.append(Replica(d.seqs, now + p.gpu_cold_start_s))
            if want_v < len(primary):
                # The HPA removes pods; idle ones first, queued requests go elsewhere.
                primary.sort(key=lambda r: len(r.running) + len(r.waiting))
                for gone in primary[: len(primary) - want_v]:
                    for _, req in gone.running:
                        gone.waiting.append(req)
                    for req in gone.waiting:
                        small[0].waiting.append(req)
                        req.model = "small"
                primary = primary[len(primary) - want_v :]
            v_scaler.record(now, want_v)
        gpu_seconds += len(primary) + len(small)
        if now % 5 == 0:
            timeline.append(
                {
                    "t": now,
                    "workers": len([w for w in workers if now >= w.ready_at]),
                    "vllm_ready": len([r for r in primary if r.ready(now)]),
                    "vllm_total": len(primary),
                    "lag": lag(),
                    "vllm_waiting": sum(len(r.waiting) for r in primary),
                    "not_yet_due": len(pending),
                }
            )
        if len(drafts) == p.incidents and not primary and now > p.storm_s:
            break
    return {"drafts": drafts, "timeline": timeline, "gpu_seconds": gpu_seconds, "end": now}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(d: Deploy, p: Params, run: dict[str, Any]) -> dict[str, Any]:
    ttd = [x[1] for x in run["drafts"]]
    tl = run["timeline"]
    primary_gpu_s = run["gpu_seconds"] - d.small_replicas * (run["end"] + 1)
    return {
        "drafts": len(ttd),
        "time_to_draft_s": {
            "p50": round(percentile(ttd, 0.5), 1),
            "p95": round(percentile(ttd, 0.95), 1),
            "p99": round(percentile(ttd, 0.99), 1),
            "max": round(max(ttd), 1),
        },
        "drafts_by_small_model": sum(1 for x in run["drafts"] if x[2] == "small"),
        "last_draft_s": round(max(a + t for a, t, _ in run["drafts"]), 1),
        "gpu_minutes": {
            "primary": round(primary_gpu_s / 60, 1),
            "fallback_always_on": round(d.small_replicas * (run["end"] + 1) / 60, 1),
            "total": round(run["gpu_seconds"] / 60, 1),
        },
        "simulated_s": run["end"] + 1,
        "peak": {
            "workers": max(x["workers"] for x in tl),
            "vllm_replicas": max(x["vllm_total"] for x in tl),
            "investigation_lag": max(x["lag"] for x in tl),
            "vllm_waiting": max(x["vllm_waiting"] for x in tl),
        },
        "first_primary_replica_ready_s": next((x["t"] for x in tl if x["vllm_ready"] > 0), None),
    }


def plot(runs: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(runs), figsize=(7 * len(runs), 10), sharex="col")
    for col, (name, run) in enumerate(runs.items()):
        ax = axes[:, col] if len(runs) > 1 else axes
        tl = run["timeline"]
        t = [x["t"] / 60 for x in tl]
        ax[0].step(t, [x["workers"] for x in tl], where="post", label="workers (ready)")
        ax[0].step(t, [x["vllm_total"] for x in tl], where="post", label="vLLM pods (GPUs held)")
        ax[0].step(t, [x["vllm_ready"] for x in tl], where="post", label="vLLM ready")
        ax[0].set_ylabel("replicas")
        ax[0].set_title(name)
        ax[0].legend(loc="upper right")
        ax[1].plot(t, [x["lag"] for x in tl], label="investigations lag (pending + ack-pending)")
        ax[1].plot(t, [x["vllm_waiting"] for x in tl], label="vLLM waiting")
        ax[1].set_ylabel("messages / requests")
        ax[1].legend(loc="upper right")
        arrived = [a / 60 for a, _, _ in run["drafts"]]
        ttd = [v / 60 for _, v, _ in run["drafts"]]
        colors = ["tab:orange" if m == "small" else "tab:blue" for _, _, m in run["drafts"]]
        ax[2].scatter(arrived, ttd, s=3, c=colors)
        p95 = percentile([v for _, v, _ in run["drafts"]], 0.95) / 60
        ax[2].axhline(p95, color="red", linestyle="--", label=f"p95 {p95:.1f} min")
        ax[2].set_ylabel("time to draft (min)\nblue primary, orange fallback")
        ax[2].set_xlabel("alert arrival / time (min)")
        ax[2].legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--overlay", default="production")
    parser.add_argument("--incidents", type=int, default=Params.incidents)
    parser.add_argument("--storm-s", type=float, default=Params.storm_s)
    parser.add_argument("--seed", type=int, default=Params.seed)
    parser.add_argument("--gpu-cold-start-s", type=float, default=Params.gpu_cold_start_s)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    deploy = load_deploy(args.overlay)
    base = Params(
        incidents=args.incidents,
        storm_s=args.storm_s,
        seed=args.seed,
        gpu_cold_start_s=args.gpu_cold_start_s,
    )
    scenarios = {
        f"{args.overlay}: vLLM scaled to zero when the storm starts": base,
        f"{args.overlay}: one vLLM replica already warm": Params(
            **{**asdict(base), "warm_vllm": 1}
        ),
        f"what-if: {args.overlay} with vLLM maxReplicaCount 8": Params(
            **{**asdict(base), "vllm_max": 8}
        ),
    }
    runs, results = {}, {}
    for name, params in scenarios.items():
        runs[name] = simulate(deploy, params)
        results[name] = {"params": asdict(params), "result": summary(deploy, params, runs[name])}
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "what": "alert storm replayed against a model of KEDA/HPA, workers and vLLM (bench/scaling.py)",
        "deploy": asdict(deploy),
        "model": {
            "hpa_sync_s": HPA_SYNC_S,
            "hpa_tolerance": HPA_TOLERANCE,
            "prometheus_scrape_s": SCRAPE_S,
            "time_to_draft": "alert arrival -> draft delivered (includes the incident debounce)",
            "gpu_minutes": "GPU pods held (cold-starting included) x minutes, until the primary "
            "model is back at zero",
        },
        "scenarios": results,
    }
    (args.out / "scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(runs, args.out / "scaling.png")
    for name, r in results.items():
        res = r["result"]
        print(
            f"{name}\n  p50/p95/p99 time-to-draft {res['time_to_draft_s']['p50']}/"
            f"{res['time_to_draft_s']['p95']}/{res['time_to_draft_s']['p99']} s, "
            f"GPU-minutes {res['gpu_minutes']['total']} (primary {res['gpu_minutes']['primary']}), "
            f"peaks {res['peak']}, drafts by fallback model {res['drafts_by_small_model']}"
        )
    print(f"wrote {args.out / 'scaling.json'} and {args.out / 'scaling.png'}")


if __name__ == "__main__":
    main()
