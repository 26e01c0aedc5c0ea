"""Nodes: conditions that make a node unwell (not ready, pressure, no network), and the
services whose pods run on such a node, which share its evidence."""

from __future__ import annotations

import asyncio

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    CHANGE_LOOKBACK,
    Objects,
    meta,
    pod_services,
    pod_subject,
    recency,
    ts,
)
from collectors.sources import KubeSource

# Unknown is a node that stopped reporting: the classic dead node.
_NODE_BAD = {
    "Ready": ("False", "Unknown"),
    "MemoryPressure": ("True",),
    "DiskPressure": ("True",),
    "PIDPressure": ("True",),
    "NetworkUnavailable": ("True",),
}


async def node_conditions(
    source: KubeSource, window: TimeWindow, names: list[str]
) -> list[EvidenceItem]:
    """The named nodes' bad conditions, one field-selected read each: listing every node of a
    5,000-node cluster per investigation would cost what the cluster's size does."""
    found = await asyncio.gather(
        *(source.list("nodes", field_selector=f"metadata.name={name}") for name in names)
    )
    items = []
    for node in (n for batch in found for n in batch):
        name = meta(node).get("name", "")
        for cond in (node.get("status") or {}).get("conditions") or []:
            kind, status = cond.get("type"), cond.get("status")
            if status in _NODE_BAD.get(kind or "", ()):
                at = ts(cond.get("lastTransitionTime"))
                if at is not None and at < window.start - CHANGE_LOOKBACK:
                    continue
                items.append(
                    EvidenceItem(
                        id=f"node-{name}-{kind}",
                        kind="node_condition",
                        summary=f"Node {name}: {kind}={status} since {at:%H:%M:%S}"
                        if at
                        else f"Node {name}: {kind}={status}",
                        detail=cond.get("message", ""),
                        subject=name,
                        timestamp=at,
                        score=round(0.8 * recency(at, window), 4),
                        fault_hint="node_failure",
                    )
                )
    return items


def on_bad_nodes(ns: str, objs: Objects, bad_nodes: dict[str, EvidenceItem]) -> list[EvidenceItem]:
    """A sick node hurts the services whose pods it runs: they share its evidence."""
    owners = pod_services(objs)
    hit: dict[tuple[str, str], list[str]] = {}
    for pod in objs["pods"]:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in bad_nodes:
            svc = pod_subject(pod, owners)
            hit.setdefault((svc, node), []).append(meta(pod).get("name", ""))
    return [
        EvidenceItem(
            id=f"onnode-{ns}-{svc}-{node}",
            kind="node_condition",
            summary=f"{len(pods)} pod(s) of {svc} run on {node}: {bad_nodes[node].summary}",
            subject=svc,
            timestamp=bad_nodes[node].timestamp,
            score=round(bad_nodes[node].score * 0.9, 4),
            fault_hint="node_failure",
        )
        for (svc, node), pods in sorted(hit.items())
    ]
