"""Configuration changes that reach workloads without a rollout: ConfigMaps their pods read,
and NetworkPolicies that select their pods. Both are ``config_change`` items."""

from __future__ import annotations

from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    CHANGE_LOOKBACK,
    WORKLOAD_RESOURCES,
    Objects,
    change_score,
    changed_by,
    meta,
    service_of,
    ts,
)


def referenced_configs(obj: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of ConfigMaps and Secrets a workload's pods read."""
    refs: set[tuple[str, str]] = set()
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    for vol in spec.get("volumes") or []:
        if "configMap" in vol:
            refs.add(("configmaps", vol["configMap"].get("name", "")))
        if "secret" in vol:
            refs.add(("secrets", vol["secret"].get("secretName", "")))
    for c in spec.get("containers") or []:
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                refs.add(("configmaps", src["configMapRef"].get("name", "")))
            if "secretRef" in src:
                refs.add(("secrets", src["secretRef"].get("name", "")))
        for env in c.get("env") or []:
            ref = env.get("valueFrom") or {}
            if "configMapKeyRef" in ref:
                refs.add(("configmaps", ref["configMapKeyRef"].get("name", "")))
            if "secretKeyRef" in ref:
                refs.add(("secrets", ref["secretKeyRef"].get("name", "")))
    return refs


def config_changes(ns: str, objs: Objects, window: TimeWindow) -> list[EvidenceItem]:
    since = window.start - CHANGE_LOOKBACK
    users: dict[tuple[str, str], set[str]] = {}
    for kind in WORKLOAD_RESOURCES:
        for wl in objs[kind]:
            for ref in referenced_configs(wl):
                users.setdefault(ref, set()).add(service_of(wl))
    items = []
    for cm in objs["configmaps"]:
        last = changed_by(cm)
        name = meta(cm).get("name", "")
        created = ts(meta(cm).get("creationTimestamp"))
        if last is None:
            continue
        changed, manager = last
        if changed == created or not since <= changed <= window.end:
            continue
        for svc in sorted(users.get(("configmaps", name), set())):
            items.append(
                EvidenceItem(
                    id=f"config-{ns}-{name}-{svc}",
                    kind="config_change",
                    summary=f"ConfigMap {ns}/{name}, read by {svc}, changed by {manager} "
                    f"at {changed:%H:%M:%S}",
                    detail=f"last write by {manager} at {changed.isoformat()}",
                    subject=svc,
                    timestamp=changed,
                    score=change_score(changed, window.onset) * 0.9,
                    fault_hint="config_change",
                    change=f"configmap/{name}",
                )
            )
    return items


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    template = (workload.get("spec") or {}).get("template") or {}
    labels: dict[str, str] = (template.get("metadata") or {}).get("labels") or {}
    return labels


def label_selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a set of labels; the empty
    selector selects everything, as the API server reads it."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)
        if not ok:
            return False
    return True


def policy_changes(
    ns: str, objs: Objects, policies: list[dict[str, Any]], window: TimeWindow
) -> list[EvidenceItem]:
    """A NetworkPolicy created or changed shortly before the onset cuts traffic to (or from)
    the workloads it selects: the change is theirs to explain."""
    since = window.start - CHANGE_LOOKBACK
    workloads = [(service_of(w), pod_labels(w)) for k in WORKLOAD_RESOURCES for w in objs[k]]
    items = []
    for policy in policies:
        last = changed_by(policy)
        if last is None or not since <= last[0] <= window.end:
            continue
        changed, manager = last
        verb = "created" if changed == ts(meta(policy).get("creationTimestamp")) else "changed"
        name = meta(policy).get("name", "")
        spec = policy.get("spec") or {}
        selector = spec.get("podSelector") or {}
        chosen = sorted({svc for svc, labels in workloads if label_selects(selector, labels)})
        types = "/".join(spec.get("policyTypes") or ["Ingress"]).lower()
        # An empty selector covers the whole namespace and explains nobody in particular.
        subjects = chosen if selector and chosen else [f"networkpolicy/{name}"]
        factor = 1.0 if selector and chosen else 0.5
        for subject in subjects:
            items.append(
                EvidenceItem(
                    id=f"netpol-{ns}-{name}-{subject}",
                    kind="config_change",
                    summary=f"NetworkPolicy {ns}/{name} ({types}) selecting "
                    f"{', '.join(chosen) or 'no workload'} {verb} by {manager} "
                    f"at {changed:%H:%M:%S}",
                    detail=f"podSelector {selector or '{} (every pod in the namespace)'}; "
                    f"last write by {manager} at {changed.isoformat()}",
                    subject=subject,
                    timestamp=changed,
                    score=round(change_score(changed, window.onset) * factor, 4),
                    fault_hint="network_policy",
                    change=f"networkpolicy/{name}",
                )
            )
    return items
