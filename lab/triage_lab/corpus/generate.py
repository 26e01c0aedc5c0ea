"""Generate the corpus: every fault family, ``variants`` times, each in its own world."""

from __future__ import annotations

import random
from pathlib import Path

from triage_lab.corpus import render
from triage_lab.corpus.alerts import webhooks
from triage_lab.corpus.conventions import Conventions, restyle, style_of
from triage_lab.corpus.faults import FAULTS
from triage_lab.corpus.names import DOMAINS
from triage_lab.corpus.noise import add_noise
from triage_lab.corpus.world import World
from triage_lab.scenarios import GroundTruth, ScenarioMeta, write_scenario


def generate_corpus(
    dest: Path, seed: int = 7, variants: int = 3, conventions: Conventions = "ours"
) -> list[Path]:
    """Write ``len(FAULTS) * variants`` scenarios under ``dest`` and return their directories.

    The same ``seed`` gives byte-identical files (existing files are overwritten; directories
    from an earlier, larger run are left alone). Scenario names (``k8s-001`` ...) follow a
    shuffled order so that neither the name nor the position tells the fault. Each scenario has
    its own random stream, so adding a variant does not change the others' content.

    ``conventions="real-world"``: the same worlds, each relabelled as one real stack writes
    its alerts, series and objects (corpus/conventions.py), named ``k8s-rw-001`` ..."""
    jobs = [(category, v) for category in FAULTS for v in range(variants)]
    order = random.Random(f"k8s-corpus/{seed}/order").sample(jobs, len(jobs))
    out = []
    for i, (category, variant) in enumerate(order, 1):
        name = f"k8s-{i:03d}" if conventions == "ours" else f"k8s-rw-{i:03d}"
        build_scenario(dest / name, name, seed, category, variant, conventions)
        out.append(dest / name)
    return out


def build_scenario(
    directory: Path,
    name: str,
    seed: int,
    category: str,
    variant: int,
    conventions: Conventions = "ours",
) -> None:
    key = f"{seed}/{category}/{variant}"
    domains = random.Random(f"{seed}/{category}/domains").sample(DOMAINS, len(DOMAINS))
    world = World(random.Random(key), domains[variant % len(domains)], key)
    FAULTS[category](world, variant)
    add_noise(world)
    truth = world.truth
    assert truth is not None, category
    hooks = webhooks(world)
    first = hooks[0].alerts[0].labels
    meta = ScenarioMeta(
        name=name,
        description=f"{first['alertname']} on {first.get('service', '?')} in namespace "
        f"{first.get('namespace', '?')} (generated Kubernetes incident)",
        source=f"triage.corpus seed={seed}",
        webhooks=hooks,
        call_graph=world.edges,
    )
    ground = GroundTruth(
        kind=truth.kind,
        namespace=truth.namespace,
        name=truth.name,
        service=truth.service,
        aliases=truth.aliases,
        category=truth.category,
        onset=world.onset,
        propagation=truth.propagation,
        detail=truth.detail,
    )
    logs = render.log_streams(world)
    real = conventions == "real-world"
    kube, metrics = render.kube_objects(world), render.openmetrics(world, per_pod=real)
    if conventions == "real-world":
        style = style_of(key)
        meta = meta.model_copy(update={"source": f"{meta.source} real-world/{style}"})
        meta, kube, metrics = restyle(meta, kube, metrics, style)
    write_scenario(directory, meta, ground, kubernetes=kube, logs=logs, metrics=metrics)
