"""The namespace before anything goes wrong: services with their revision history, pods,
ConfigMaps and Secrets, the datastores, CoreDNS, the GitOps controller and the autoscalers."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from triage_lab.corpus import log_lines as L
from triage_lab.corpus.cluster_apps import add_app
from triage_lab.corpus.cluster_platform import add_coredns, add_gitops, add_store
from triage_lab.corpus.model import Hpa, NodeInfo, PolicyObj, Workload

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def populate(w: World) -> None:
    rng, d = w.rng, w.domain
    w.nodes = [
        NodeInfo(
            name=n,
            zone=w.cluster.zones[i % 3],
            ip=f"10.0.{16 + rng.randrange(200)}.{2 + rng.randrange(250)}",
            created=w.start - timedelta(days=rng.uniform(3, 60)),
            index=i,
        )
        for i, n in enumerate(w.cluster.node_names)
    ]
    add_gitops(w)
    w.entry = rng.choice(d.entries)
    w.mids = rng.sample(d.mids, 2)
    w.leaves = rng.sample(d.leaves, 2 if rng.random() < 0.2 else 1)
    w.db = rng.choice(d.databases)
    w.cache = rng.choice(d.caches)
    m0, m1 = w.mids
    edges = [(w.entry, m0), (w.entry, m1), (m0, w.leaves[0]), (m1, w.leaves[-1])]
    edges += [(m0, w.db), (m1, w.cache)]
    if rng.random() < 0.5:
        edges.append((m1, w.db))
    if rng.random() < 0.5:
        edges.append((w.leaves[0], w.cache))
    w.edges = list(dict.fromkeys(edges))
    apps = [(w.entry, "entry"), *((m, "mid") for m in w.mids)]
    apps += [(leaf, "leaf") for leaf in w.leaves]
    styles = {name: rng.choice(L.STYLES) for name, _ in apps}
    w.ports = {name: 8000 if styles[name] == "python" else 8080 for name in styles}
    w.ports[w.db], w.ports[w.cache] = 5432, 6379
    external = rng.choice(d.externals)
    tls = set(rng.sample([*w.mids, *w.leaves], rng.randint(1, 2)))
    for name, role in apps:
        ext = external if name == w.leaves[-1] else None
        add_app(w, name, role, styles[name], ext, name in tls)
    add_store(w, w.db, "db")
    add_store(w, w.cache, "cache")
    add_coredns(w)
    for name in (w.entry, w.mids[0]):
        _hpa(w, w.workloads[name])
    _policies(w)


def _policies(w: World) -> None:
    """Long-standing NetworkPolicies, as most namespaces have: unchanged, so never suspects.
    Deterministic: the generator's random stream stays as it was."""
    since = w.start - timedelta(days=90)
    for name, selector, sources in (
        ("allow-same-namespace", {}, [{"podSelector": {}}]),
        (
            f"{w.db}-ingress",
            {"app": w.db},
            [{"podSelector": {"matchLabels": {"app": m}}} for m in w.callers(w.db)],
        ),
    ):
        w.policies[name] = PolicyObj(
            name, w.ns, selector, since, since, w.gitops_manager, ingress_from=sources
        )


def _hpa(w: World, wl: Workload) -> None:
    rng = w.rng
    last = w.start - timedelta(hours=rng.uniform(3, 90))
    wl.hpa = Hpa(
        min_replicas=wl.replicas,
        max_replicas=wl.replicas + rng.randint(3, 6),
        target_cpu=rng.choice((70, 75, 80)),
        utilization=rng.randint(30, 60),
        current=wl.replicas,
        last_scale=last,
        history=[(last, wl.replicas)],
    )
