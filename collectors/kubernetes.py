"""Kubernetes: what changed (rollouts, config), what is failing (pod states, events), and where
(nodes, autoscalers), for the workloads around the alert. Read-only."""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import datetime, timedelta
from typing import Any

from collectors.contracts import Evidence, EvidenceItem, TimeWindow
from collectors.sources import KubeSource
from triage.errors import CollectorError
from triage.models import IncidentState

# Changes up to this long before the baseline window still count as suspects.
CHANGE_LOOKBACK = timedelta(hours=2)
# How fast a change's suspicion fades with its distance before the onset.
CHANGE_DECAY_S = 1800.0

_WAITING = {
    "CrashLoopBackOff": (0.8, "crash_loop"),
    "ImagePullBackOff": (0.85, "bad_rollout"),
    "ErrImagePull": (0.85, "bad_rollout"),
    "CreateContainerConfigError": (0.85, "config_change"),
    "CreateContainerError": (0.7, "config_change"),
    "RunContainerError": (0.7, "bad_rollout"),
}
_UNSCHEDULABLE = (0.75, "scheduling")
_TERMINATED = {"OOMKilled": (0.85, "resource_exhaustion"), "Error": (0.6, "crash_loop")}
# Warning event reasons and the fault they usually point to.
_EVENTS = {
    "FailedScheduling": (0.75, "scheduling"),
    "FailedCreate": (0.7, "scheduling"),
    "Evicted": (0.7, "node_failure"),
    "NodeNotReady": (0.8, "node_failure"),
    "Unhealthy": (0.6, "probe_misconfiguration"),
    "BackOff": (0.6, "crash_loop"),
    "FailedMount": (0.75, "secret_change"),
    "OOMKilling": (0.8, "resource_exhaustion"),
    "FailedPullImage": (0.8, "bad_rollout"),
    "Failed": (0.55, "bad_rollout"),
}
# Unknown is a node that stopped reporting: the classic dead node.
_NODE_BAD = {
    "Ready": ("False", "Unknown"),
    "MemoryPressure": ("True",),
    "DiskPressure": ("True",),
    "PIDPressure": ("True",),
    "NetworkUnavailable": ("True",),
}


# Cluster add-ons (DNS, CNI, ingress) that every workload depends on.
CLUSTER_NAMESPACES = ("kube-system",)


def scope_namespaces(incident: IncidentState) -> list[str]:
    """The alerts' namespaces, plus the cluster's own, whose failures reach everyone."""
    found = {
        ns
        for labels in [incident.common_labels, *(a.labels for a in incident.alerts.values())]
        if (ns := labels.get("namespace") or labels.get("exported_namespace"))
    }
    return sorted(found | set(CLUSTER_NAMESPACES)) if found else []


def ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    m: dict[str, Any] = obj.get("metadata") or {}
    return m


def service_of(obj: dict[str, Any]) -> str:
    labels = meta(obj).get("labels") or {}
    for key in ("app.kubernetes.io/name", "app", "k8s-app", "service"):
        if labels.get(key):
            return str(labels[key])
    return str(meta(obj).get("name", "?"))


def change_score(at: datetime, onset: datetime) -> float:
    """Suspicion from timing alone: high just before the onset, fading with distance."""
    lead = (onset - at).total_seconds()
    if lead < -300:  # well after the onset: a reaction, not a cause
        return 0.1
    return 0.2 + 0.75 * math.exp(-max(lead, 0.0) / CHANGE_DECAY_S)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers: list[dict[str, Any]] = spec.get("containers") or []
    return containers


def template_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What a revision changed in the pod template, in words an engineer scans quickly."""
    if old is None:
        return ["first revision"]
    out = []
    before = {c.get("name"): c for c in _containers(old)}
    for c in _containers(new):
        prev = before.get(c.get("name"), {})
        name = c.get("name")
        if c.get("image") != prev.get("image"):
            out.append(f"{name}: image {prev.get('image')} -> {c.get('image')}")
        env_old = {e.get("name"): e for e in prev.get("env") or []}
        for e in c.get("env") or []:
            if env_old.get(e.get("name")) != e:
                shown = e.get("value", "(from reference)")
                out.append(f"{name}: env {e.get('name')}={shown}")
        if (c.get("resources") or {}) != (prev.get("resources") or {}):
            out.append(f"{name}: resources {prev.get('resources')} -> {c.get('resources')}")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if c.get(probe) != prev.get(probe):
                out.append(f"{name}: {probe} changed")
        if (c.get("envFrom") or []) != (prev.get("envFrom") or []):
            out.append(f"{name}: envFrom changed")
    old_vols = ((old.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes")
    new_vols = ((new.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes")
    if old_vols != new_vols:
        out.append("volumes changed")
    return out or [NO_CHANGE]


NO_CHANGE = "no pod template change"
_SLOW = re.compile(r"deadline exceeded|timeout|timed out", re.IGNORECASE)
_MISSING_SECRET = re.compile(r"\bsecrets? \"[^\"]+\" not found", re.IGNORECASE)
_SECRETISH = re.compile(r"secret|password|token|credential", re.IGNORECASE)


def rollout_hint(diff: list[str]) -> str:
    """What kind of change a revision was, from what it changed."""
    text = "\n".join(diff)
    if "Probe changed" in text:
        return "probe_misconfiguration"
    if ": env " in text or "envFrom" in text or "volumes changed" in text:
        return "secret_change" if _SECRETISH.search(text) else "config_change"
    return "bad_rollout"


# A restart or a scale runs the same code and configuration: a weaker suspect than a change.
RESTART_FACTOR = 0.5


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


def last_change(obj: dict[str, Any]) -> datetime | None:
    times = [ts(f.get("time")) for f in meta(obj).get("managedFields") or []]
    known = [t for t in times if t is not None]
    return max(known) if known else ts(meta(obj).get("creationTimestamp"))


class KubernetesCollector:
    name = "kubernetes"

    def __init__(self, source: KubeSource) -> None:
        self._source = source

    async def collect(self, incident: IncidentState, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        namespaces = scope_namespaces(incident)
        if not namespaces:
            return Evidence(collector=self.name, status="no_data", error="alert has no namespace")
        items: list[EvidenceItem] = []
        errors: list[str] = []
        try:
            nodes = await self._nodes(window)
        except CollectorError as exc:
            nodes, errors = [], [str(exc)]
        items += nodes
        bad_nodes = {i.subject: i for i in nodes}
        results = await asyncio.gather(
            *(self._namespace(ns, window, bad_nodes) for ns in namespaces),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, CollectorError):
                errors.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                items += result
        items.sort(key=lambda i: i.id)
        status = "ok" if items else ("error" if errors else "no_data")
        quiet = f"no changes, unhealthy pods or warning events in {', '.join(sorted(namespaces))}"
        return Evidence(
            collector=self.name,
            status=status,
            items=items,
            error="; ".join(errors) or (quiet if not items else None),
            duration_s=time.monotonic() - started,
        )

    async def _namespace(
        self, ns: str, window: TimeWindow, bad_nodes: dict[str, EvidenceItem]
    ) -> list[EvidenceItem]:
        kinds = (
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "controllerrevisions",
            "pods",
            "events",
            "configmaps",
            "horizontalpodautoscalers",
        )
        listed = await asyncio.gather(*(self._source.list(k, ns) for k in kinds))
        objs = dict(zip(kinds, listed, strict=True))
        items = self._rollouts(ns, objs, window)
        items += self._config_changes(ns, objs, window)
        try:
            policies = await self._source.list("networkpolicies", ns)
            items += self._policy_changes(ns, objs, policies, window)
        except CollectorError:
            pass  # older RBAC without networkpolicies: the rest still stands
        items += self._pod_states(ns, objs, window)
        items += self._events(ns, objs["events"], objs["pods"], window, sorted(bad_nodes))
        items += self._autoscalers(ns, objs["horizontalpodautoscalers"])
        items += self._on_bad_nodes(ns, objs, bad_nodes)
        return items

    def _on_bad_nodes(
        self, ns: str, objs: dict[str, list[dict[str, Any]]], bad_nodes: dict[str, EvidenceItem]
    ) -> list[EvidenceItem]:
        """A sick node hurts the services whose pods it runs: they share its evidence."""
        owners = self._pod_services(objs)
        hit: dict[tuple[str, str], list[str]] = {}
        for pod in objs["pods"]:
            node = (pod.get("spec") or {}).get("nodeName")
            if node in bad_nodes:
                svc = owners.get(meta(pod).get("name", ""), service_of(pod))
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

    def _rollouts(
        self, ns: str, objs: dict[str, list[dict[str, Any]]], window: TimeWindow
    ) -> list[EvidenceItem]:
        since = window.start - CHANGE_LOOKBACK
        items = []
        for deploy in objs["deployments"]:
            name = meta(deploy).get("name")
            owned = [
                rs
                for rs in objs["replicasets"]
                if any(o.get("name") == name for o in meta(rs).get("ownerReferences") or [])
            ]
            owned.sort(
                key=lambda rs: int(
                    (meta(rs).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0)
                )
            )
            previous = None
            for rs in owned:
                created = ts(meta(rs).get("creationTimestamp"))
                rev = (meta(rs).get("annotations") or {}).get("deployment.kubernetes.io/revision")
                if created and since <= created <= window.end and previous is not None:
                    diff = template_diff(previous, rs)
                    minutes = (window.onset - created).total_seconds() / 60
                    when = (
                        f"{minutes:.0f} min before the onset"
                        if minutes >= 0
                        else f"{-minutes:.0f} min after the onset"
                    )
                    items.append(
                        EvidenceItem(
                            id=f"rollout-{ns}-{name}-rev{rev}",
                            kind="rollout",
                            summary=f"Deployment {ns}/{name} rolled out revision {rev} {when}: "
                            + "; ".join(diff[:3]),
                            detail="\n".join(diff),
                            subject=service_of(deploy),
                            timestamp=created,
                            score=change_score(created, window.onset)
                            * (RESTART_FACTOR if diff == [NO_CHANGE] else 1.0),
                            fault_hint=rollout_hint(diff),
                            change=f"deployment/{name} revision {rev}",
                        )
                    )
                previous = rs
        for kind in ("statefulsets", "daemonsets"):
            for wl in objs[kind]:
                wl_name = meta(wl).get("name")
                revs = sorted(
                    (
                        cr
                        for cr in objs["controllerrevisions"]
                        if any(
                            o.get("name") == wl_name for o in meta(cr).get("ownerReferences") or []
                        )
                    ),
                    key=lambda cr: int(cr.get("revision", 0)),
                )
                for cr in revs[1:]:
                    created = ts(meta(cr).get("creationTimestamp"))
                    if created and since <= created <= window.end:
                        items.append(
                            EvidenceItem(
                                id=f"rollout-{ns}-{wl_name}-rev{cr.get('revision')}",
                                kind="rollout",
                                summary=f"{kind[:-1].capitalize()} {ns}/{wl_name} rolled out "
                                f"revision {cr.get('revision')}",
                                subject=service_of(wl),
                                timestamp=created,
                                score=change_score(created, window.onset),
                                fault_hint="bad_rollout",
                                change=f"{kind[:-1]}/{wl_name} revision {cr.get('revision')}",
                            )
                        )
        return items

    def _config_changes(
        self, ns: str, objs: dict[str, list[dict[str, Any]]], window: TimeWindow
    ) -> list[EvidenceItem]:
        since = window.start - CHANGE_LOOKBACK
        users: dict[tuple[str, str], set[str]] = {}
        for kind in ("deployments", "statefulsets", "daemonsets"):
            for wl in objs[kind]:
                for ref in referenced_configs(wl):
                    users.setdefault(ref, set()).add(service_of(wl))
        items = []
        for cm in objs["configmaps"]:
            changed = last_change(cm)
            name = meta(cm).get("name", "")
            created = ts(meta(cm).get("creationTimestamp"))
            if changed is None or changed == created or not since <= changed <= window.end:
                continue
            for svc in sorted(users.get(("configmaps", name), set())):
                items.append(
                    EvidenceItem(
                        id=f"config-{ns}-{name}-{svc}",
                        kind="config_change",
                        summary=f"ConfigMap {ns}/{name}, read by {svc}, changed at "
                        f"{changed:%H:%M:%S}",
                        subject=svc,
                        timestamp=changed,
                        score=change_score(changed, window.onset) * 0.9,
                        fault_hint="config_change",
                        change=f"configmap/{name}",
                    )
                )
        return items

    def _policy_changes(
        self,
        ns: str,
        objs: dict[str, list[dict[str, Any]]],
        policies: list[dict[str, Any]],
        window: TimeWindow,
    ) -> list[EvidenceItem]:
        """A NetworkPolicy created or changed shortly before the onset cuts traffic to (or from)
        the workloads it selects: the change is theirs to explain."""
        since = window.start - CHANGE_LOOKBACK
        workloads = [
            (service_of(w), pod_labels(w))
            for k in ("deployments", "statefulsets", "daemonsets")
            for w in objs[k]
        ]
        items = []
        for policy in policies:
            changed = last_change(policy)
            if changed is None or not since <= changed <= window.end:
                continue
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
                        f"{', '.join(chosen) or 'no workload'} changed at {changed:%H:%M:%S}",
                        detail=f"podSelector {selector or '{} (every pod in the namespace)'}",
                        subject=subject,
                        timestamp=changed,
                        score=round(change_score(changed, window.onset) * factor, 4),
                        fault_hint="network_policy",
                        change=f"networkpolicy/{name}",
                    )
                )
        return items

    def _pod_states(
        self, ns: str, objs: dict[str, list[dict[str, Any]]], window: TimeWindow
    ) -> list[EvidenceItem]:
        owners = self._pod_services(objs)
        worst: dict[tuple[str, str], tuple[float, str, str, list[str]]] = {}
        for pod in objs["pods"]:
            svc = owners.get(meta(pod).get("name", ""), service_of(pod))
            status = pod.get("status") or {}
            found = [
                ("Unschedulable", 0, _UNSCHEDULABLE)
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and c.get("reason") == "Unschedulable"
            ]
            for cs in status.get("containerStatuses") or []:
                state = (cs.get("state") or {}).get("waiting") or {}
                waiting = state.get("reason")
                term = (cs.get("lastState") or {}).get("terminated") or {}
                restarts = int(cs.get("restartCount") or 0)
                for reason, table in ((waiting, _WAITING), (term.get("reason"), _TERMINATED)):
                    if reason in table:
                        score, hint = table[reason]
                        if reason == waiting and _MISSING_SECRET.search(state.get("message", "")):
                            hint = "secret_change"
                        found.append((reason, restarts, (score, hint)))
            for reason, restarts, (base, hint) in found:
                score = min(1.0, base + 0.02 * min(restarts, 5))
                key = (svc, reason)
                pods = worst.get(key, (0, "", "", []))[3] + [meta(pod).get("name", "")]
                if score >= worst.get(key, (0.0, "", "", []))[0]:
                    worst[key] = (score, hint, f"restarts={restarts}", pods)
                else:
                    worst[key] = (*worst[key][:3], pods)
        return [
            EvidenceItem(
                id=f"podstate-{ns}-{svc}-{reason}",
                kind="pod_state",
                summary=f"{len(pods)} pod(s) of {svc} in {reason} ({extra}): "
                + ", ".join(sorted(pods)[:3]),
                subject=svc,
                score=score,
                fault_hint=hint,
                timestamp=window.onset,
            )
            for (svc, reason), (score, hint, extra, pods) in sorted(worst.items())
        ]

    @staticmethod
    def _pod_services(objs: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
        """Pod name -> service, following ownerReferences pod -> ReplicaSet -> Deployment."""
        rs_owner = {}
        by_name = {
            meta(d).get("name"): d
            for k in ("deployments", "statefulsets", "daemonsets")
            for d in objs[k]
        }
        for rs in objs["replicasets"]:
            for o in meta(rs).get("ownerReferences") or []:
                if o.get("name") in by_name:
                    rs_owner[meta(rs).get("name")] = service_of(by_name[o["name"]])
        out = {}
        for pod in objs["pods"]:
            for o in meta(pod).get("ownerReferences") or []:
                svc = rs_owner.get(o.get("name"))
                if svc is None and o.get("name") in by_name:
                    svc = service_of(by_name[o["name"]])
                if svc:
                    out[meta(pod).get("name", "")] = svc
        return out

    def _events(
        self,
        ns: str,
        events: list[dict[str, Any]],
        pods: list[dict[str, Any]],
        window: TimeWindow,
        bad_nodes: list[str],
    ) -> list[EvidenceItem]:
        pod_svc = {meta(p).get("name"): service_of(p) for p in pods}
        pod_node = {meta(p).get("name"): (p.get("spec") or {}).get("nodeName") for p in pods}
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for ev in events:
            if ev.get("type") != "Warning":
                continue
            last = ts(
                ev.get("lastTimestamp") or ev.get("eventTime") or meta(ev).get("creationTimestamp")
            )
            first = ts(ev.get("firstTimestamp")) or last
            # A repeating event is one object with a count: keep it if its run overlaps the
            # window, however long it went on after.
            if first is None or last is None or not (first <= window.end and last >= window.start):
                continue
            obj = ev.get("involvedObject") or {}
            name = obj.get("name", "")
            subject = pod_svc.get(name) or _event_subject(obj.get("kind", ""), name)
            grouped.setdefault((subject, ev.get("reason", "")), []).append(ev)
        items = []
        for (subject, reason), evs in sorted(grouped.items()):
            base, hint = _EVENTS.get(reason, (0.3, None))
            message = evs[0].get("message", "")
            if reason == "Unhealthy" and _SLOW.search(message):
                hint = None  # a probe that times out says the app is slow, not why
            elif _MISSING_SECRET.search(message):
                hint = "secret_change"  # the kubelet names what the pod could not mount or read
            count = sum(int(e.get("count") or 1) for e in evs)
            # A pod's node trouble is the node's: name it, so the ranking can follow. The pod
            # may be gone already; then the nodes that are unwell now are the candidates.
            nodes: set[str] = set()
            for e in evs if hint == "node_failure" else ():
                node = pod_node.get((e.get("involvedObject") or {}).get("name"))
                nodes.update([node] if node else bad_nodes[:3])
            first = min(
                ts(e.get("firstTimestamp") or e.get("lastTimestamp")) or window.end for e in evs
            )
            items.append(
                EvidenceItem(
                    id=f"event-{ns}-{subject}-{reason}",
                    kind="k8s_event",
                    summary=f"{count}x {reason} on {subject}: {evs[0].get('message', '')[:200]}",
                    detail=f"node {', '.join(sorted(nodes))}" if nodes else "",
                    subject=subject,
                    timestamp=first,
                    score=min(1.0, base + 0.05 * math.log1p(count)),
                    fault_hint=hint,
                )
            )
        return items

    def _autoscalers(self, ns: str, hpas: list[dict[str, Any]]) -> list[EvidenceItem]:
        items = []
        for hpa in hpas:
            status, spec = hpa.get("status") or {}, hpa.get("spec") or {}
            current, maximum = status.get("currentReplicas"), spec.get("maxReplicas")
            limited = any(
                c.get("type") == "ScalingLimited" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            if maximum and current is not None and (current >= maximum or limited):
                target = (spec.get("scaleTargetRef") or {}).get("name", meta(hpa).get("name"))
                items.append(
                    EvidenceItem(
                        id=f"hpa-{ns}-{target}",
                        kind="hpa",
                        summary=f"HPA for {target} is at its maximum "
                        f"({current}/{maximum} replicas)",
                        subject=str(target),
                        score=0.7,
                        fault_hint="capacity",
                    )
                )
        return items

    async def _nodes(self, window: TimeWindow) -> list[EvidenceItem]:
        items = []
        for node in await self._source.list("nodes"):
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
                            score=0.8,
                            fault_hint="node_failure",
                        )
                    )
        return items


def _event_subject(kind: str, name: str) -> str:
    """The workload an event is about, from the object's name when the object is gone."""
    if kind in ("Pod", ""):
        return _strip_pod_suffix(name)
    if kind == "ReplicaSet":  # <deployment>-<template hash>
        return name.rsplit("-", 1)[0] if "-" in name else name
    return name  # Deployment, StatefulSet, Node...


def _strip_pod_suffix(name: str) -> str:
    parts = name.split("-")
    if len(parts) > 1 and parts[-1].isdigit():  # a StatefulSet's pod: <name>-<ordinal>
        return "-".join(parts[:-1])
    return "-".join(parts[:-2]) if len(parts) > 2 else name


def _owned_by(obj: dict[str, Any], owner: object) -> bool:
    return any(o.get("name") == owner for o in meta(obj).get("ownerReferences") or [])
