"""Where collectors read from. Each source has a live implementation (Prometheus HTTP API, the
Kubernetes API through the official client) and one over a scenario's files, so the same
collector code gives the same evidence from both."""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel

from triage.errors import CollectorError

LOOKBACK_DELTA_S = 300  # Prometheus' default: a sample is visible for 5 minutes


class Series(BaseModel):
    labels: dict[str, str]
    points: list[tuple[float, float]]


class MetricSource(Protocol):
    async def query_range(
        self, query: str, start: datetime, end: datetime, step: float
    ) -> list[Series]: ...


class KubeSource(Protocol):
    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]: ...

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> str: ...


# -- metrics --------------------------------------------------------------------------------------


class PrometheusSource:
    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self._base = base_url.rstrip("/")
        self._client = client

    async def query_range(
        self, query: str, start: datetime, end: datetime, step: float
    ) -> list[Series]:
        try:
            resp = await self._client.get(
                f"{self._base}/api/v1/query_range",
                params={
                    "query": query,
                    "start": start.timestamp(),
                    "end": end.timestamp(),
                    "step": step,
                },
            )
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise CollectorError(
                f"Prometheus: {type(exc).__name__}: {exc}", collector="prometheus"
            ) from exc
        if resp.status_code != 200 or body.get("status") != "success":
            raise CollectorError(
                f"query {query!r}: {body.get('error', resp.status_code)}", collector="prometheus"
            )
        return [
            # Built without validation: Prometheus' JSON is already typed, and validating every
            # point of a large namespace's series costs more than parsing them.
            Series.model_construct(
                labels=s["metric"], points=[(float(t), float(v)) for t, v in s["values"]]
            )
            for s in body["data"]["result"]
        ]


_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_selector(query: str) -> list[Callable[[dict[str, str]], bool]]:
    """A plain series selector (``name{a="b", c=~"d.*"}``) as label predicates.
    The file backend answers only these; collectors ask nothing else of it."""
    m = _SELECTOR.match(query)
    if m is None or (m.group(1) is None and m.group(2) is None):
        raise CollectorError(f"not a plain selector: {query!r}", collector="metrics")
    preds: list[Callable[[dict[str, str]], bool]] = []
    if m.group(1):
        name = m.group(1)
        preds.append(lambda lbl: lbl.get("__name__") == name)
    body = m.group(2) or ""
    pos = 0
    while pos < len(body.strip()):
        mm = _MATCHER.match(body, pos)
        if mm is None:
            raise CollectorError(f"cannot parse matchers in {query!r}", collector="metrics")
        key, op, raw = mm.group(1), mm.group(2), mm.group(3)
        value = raw.encode().decode("unicode_escape")
        preds.append(_matcher(key, op, value))
        pos = mm.end()
    return preds


def _matcher(key: str, op: str, value: str) -> Callable[[dict[str, str]], bool]:
    if op == "=":
        return lambda lbl: lbl.get(key, "") == value
    if op == "!=":
        return lambda lbl: lbl.get(key, "") != value
    pattern = re.compile(f"^(?:{value})$")  # Prometheus anchors regex matchers
    if op == "=~":
        return lambda lbl: pattern.match(lbl.get(key, "")) is not None
    return lambda lbl: pattern.match(lbl.get(key, "")) is None


# One OpenMetrics sample line, as Prometheus' own OpenMetrics lexer reads it: a metric name,
# optional labels (no spaces), a value, an optional timestamp and an optional exemplar.
_LABEL_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
_SAMPLE_LINE = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*)"
    rf"(\{{(?:{_LABEL_PAIR}(?:,{_LABEL_PAIR})*)?\}})?"
    r" ([^ ]+)"
    r"(?: ([^ #][^ ]*))?"
    r"( # \{.*)?$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", "n": "\n", '"': '"'}


def _om_float(text: str) -> float:
    """A value as Prometheus parses it: Go's ParseFloat without the Go 1.13 additions."""
    if any(c in text for c in "pP_"):
        raise ValueError(f"unsupported character in float {text!r}")
    return float(text)


def _om_label_value(raw: str) -> str:
    # Only \\, \" and \n are escapes; any other backslash stays as it is.
    return _ESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(0)), raw)


def parse_openmetrics(text: str) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
    """Every sample line of OpenMetrics text as a point of the series its name and labels name,
    the way promtool backfills it: one series per sample name (``x_total``, ``x_created``,
    ``x_bucket{le=...}``, ``x_count``, ``x_sum``, ``x{quantile=...}``...), whatever the family's
    type, each line with its own timestamp (milliseconds, truncated as Prometheus truncates
    them; none reads as 0). Labels with an empty value are absent, as Prometheus returns them.
    Points come in time order; the text must end with ``# EOF``."""
    series: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
    lines = text.rstrip("\n").split("\n")
    if lines[-1] != "# EOF":
        raise ValueError("OpenMetrics text must end with '# EOF'")
    for n, line in enumerate(lines[:-1], 1):
        if line.startswith("#"):
            if line.startswith(("# HELP ", "# TYPE ", "# UNIT ")):
                continue
            raise ValueError(f"line {n}: unexpected comment {line!r}")
        m = _SAMPLE_LINE.match(line)
        if m is None:
            raise ValueError(f"line {n}: not an OpenMetrics sample: {line!r}")
        name, raw_labels, raw_value, raw_ts, exemplar = m.groups()
        if exemplar and not name.endswith(("_total", "_bucket")):  # as Prometheus checks
            raise ValueError(f"line {n}: metric name {name} does not support exemplars")
        labels = {"__name__": name}
        for lm in _LABEL.finditer(raw_labels or ""):
            if lm.group(1) in labels:
                raise ValueError(f"line {n}: label {lm.group(1)!r} repeated")
            labels[lm.group(1)] = _om_label_value(lm.group(2))
        ts_ms = 0
        if raw_ts is not None:
            ts = _om_float(raw_ts)
            if not math.isfinite(ts):
                raise ValueError(f"line {n}: invalid timestamp {raw_ts!r}")
            ts_ms = int(ts * 1000)
        key = tuple(sorted((k, v) for k, v in labels.items() if v != ""))
        series.setdefault(key, []).append((ts_ms, _om_float(raw_value)))
    return {k: sorted(v) for k, v in series.items()}


def _prom_time_ms(t: float) -> int:
    """A query's start or end in milliseconds, as Prometheus' API parses it: the fraction of a
    second rounded (half away from zero) to milliseconds."""
    frac, whole = math.modf(t)
    ms_frac = math.copysign(math.floor(abs(frac) * 1000 + 0.5), frac)
    return (int(whole) * 10**9 + int(ms_frac / 1000 * 1e9)) // 10**6


class FileMetricSource:
    """OpenMetrics text evaluated the way Prometheus evaluates a selector over a range: at each
    step, a series' latest sample at most LOOKBACK_DELTA_S old."""

    def __init__(self, openmetrics: str) -> None:
        self._series = parse_openmetrics(openmetrics) if openmetrics.strip() else {}

    async def query_range(
        self, query: str, start: datetime, end: datetime, step: float
    ) -> list[Series]:
        preds = parse_selector(query)
        t0, t1 = _prom_time_ms(start.timestamp()), _prom_time_ms(end.timestamp())
        step_ms = int(step * 1e9) // 10**6  # a Go time.Duration, then whole milliseconds
        if step_ms <= 0:
            raise CollectorError(f"step {step!r} must be positive", collector="metrics")
        steps = range(t0, t1 + 1, step_ms)
        lookback_ms = LOOKBACK_DELTA_S * 1000
        out = []
        for key, samples in self._series.items():
            labels = dict(key)
            if not all(p(labels) for p in preds):
                continue
            times = [t for t, _ in samples]
            points = []
            for t in steps:
                i = bisect.bisect_right(times, t) - 1
                if i >= 0 and t - times[i] <= lookback_ms:
                    points.append((t / 1000, samples[i][1]))
            if points:
                out.append(Series(labels=labels, points=points))
        return sorted(out, key=lambda s: sorted(s.labels.items()))


# -- kubernetes -----------------------------------------------------------------------------------


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Equality-based label selectors and existence (``a=b,c!=d,e,!f``), as the API server
    applies them."""
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term and term not in labels:
            return False
    return True


def fields_match(selector: str | None, obj: dict[str, Any]) -> bool:
    """Field selectors (``spec.nodeName=n,status.phase!=Running``), as the API server applies
    them: a missing field reads as the empty string."""
    if not selector:
        return True
    for term in selector.split(","):
        negate = "!=" in term
        path, _, want = term.replace("!=", "=").replace("==", "=").partition("=")
        value: Any = obj
        for key in path.strip().split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if (str(value) if value is not None else "") == want.strip():
            if negate:
                return False
        elif not negate:
            return False
    return True


class FileKubeSource:
    def __init__(self, objects: Any, logs: list[Any]) -> None:
        self._objects = objects  # triage.scenarios.KubeObjects
        self._logs = {(s.namespace, s.pod, s.container, s.previous): s.lines for s in logs}

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        found = []
        for obj in self._objects.of(resource):
            meta = obj.get("metadata", {})
            if namespace is not None and meta.get("namespace") not in (namespace, None):
                continue
            if selector_matches(label_selector, meta.get("labels") or {}) and fields_match(
                field_selector, obj
            ):
                found.append(obj)
        return found

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> str:
        # A container the scenario recorded nothing for logged nothing, as far as it knows.
        lines = self._logs.get((namespace, pod, container, previous), [])
        return "\n".join(lines[-tail_lines:] if tail_lines else lines)


# resource -> (API group path, namespaced): the URL layout the fixture server serves.
KUBE_PATHS = {
    "namespaces": ("/api/v1", False),
    "nodes": ("/api/v1", False),
    "pods": ("/api/v1", True),
    "events": ("/api/v1", True),
    "configmaps": ("/api/v1", True),
    "secrets": ("/api/v1", True),
    "services": ("/api/v1", True),
    "deployments": ("/apis/apps/v1", True),
    "replicasets": ("/apis/apps/v1", True),
    "statefulsets": ("/apis/apps/v1", True),
    "daemonsets": ("/apis/apps/v1", True),
    "controllerrevisions": ("/apis/apps/v1", True),
    "horizontalpodautoscalers": ("/apis/autoscaling/v2", True),
    "networkpolicies": ("/apis/networking.k8s.io/v1", True),
    "resourcequotas": ("/api/v1", True),
    "limitranges": ("/api/v1", True),
    "persistentvolumeclaims": ("/api/v1", True),
    "endpointslices": ("/apis/discovery.k8s.io/v1", True),
    "ingresses": ("/apis/networking.k8s.io/v1", True),
    "httproutes": ("/apis/gateway.networking.k8s.io/v1", True),
    "leases": ("/apis/coordination.k8s.io/v1", True),
}

# KUBE_PATHS kinds no collector lists: the fixture server serves them for other readers, and
# RBAC grants no Secrets (their data would come with them).
NOT_COLLECTED = frozenset({"namespaces", "secrets"})


def collector_rbac() -> frozenset[tuple[str, str, str]]:
    """What the collectors ask the API server for, as RBAC (API group, resource, verb): `list` on
    every KUBE_PATHS kind they read and `get` on pod logs. The ClusterRole triage-collectors in
    deploy/base/security/rbac.yaml grants exactly these; `triage doctor` checks them."""
    lists = {
        (api_group(path), resource, "list")
        for resource, (path, _) in KUBE_PATHS.items()
        if resource not in NOT_COLLECTED
    }
    return frozenset(lists | {("", "pods/log", "get")})


def api_group(path: str) -> str:
    """``/api/v1`` -> the core group ``""``, ``/apis/apps/v1`` -> ``apps``."""
    parts = path.strip("/").split("/")
    return "" if parts[0] == "api" else parts[1]


# resource -> (API class, namespaced list method, all-namespaces/cluster list method)
_KUBE_METHODS = {
    "namespaces": ("CoreV1Api", None, "list_namespace"),
    "nodes": ("CoreV1Api", None, "list_node"),
    "pods": ("CoreV1Api", "list_namespaced_pod", "list_pod_for_all_namespaces"),
    "events": ("CoreV1Api", "list_namespaced_event", "list_event_for_all_namespaces"),
    "configmaps": ("CoreV1Api", "list_namespaced_config_map", "list_config_map_for_all_namespaces"),
    "secrets": ("CoreV1Api", "list_namespaced_secret", "list_secret_for_all_namespaces"),
    "services": ("CoreV1Api", "list_namespaced_service", "list_service_for_all_namespaces"),
    "deployments": (
        "AppsV1Api",
        "list_namespaced_deployment",
        "list_deployment_for_all_namespaces",
    ),
    "replicasets": (
        "AppsV1Api",
        "list_namespaced_replica_set",
        "list_replica_set_for_all_namespaces",
    ),
    "statefulsets": (
        "AppsV1Api",
        "list_namespaced_stateful_set",
        "list_stateful_set_for_all_namespaces",
    ),
    "daemonsets": ("AppsV1Api", "list_namespaced_daemon_set", "list_daemon_set_for_all_namespaces"),
    "controllerrevisions": (
        "AppsV1Api",
        "list_namespaced_controller_revision",
        "list_controller_revision_for_all_namespaces",
    ),
    "horizontalpodautoscalers": (
        "AutoscalingV2Api",
        "list_namespaced_horizontal_pod_autoscaler",
        "list_horizontal_pod_autoscaler_for_all_namespaces",
    ),
    "networkpolicies": (
        "NetworkingV1Api",
        "list_namespaced_network_policy",
        "list_network_policy_for_all_namespaces",
    ),
    "resourcequotas": (
        "CoreV1Api",
        "list_namespaced_resource_quota",
        "list_resource_quota_for_all_namespaces",
    ),
    "limitranges": (
        "CoreV1Api",
        "list_namespaced_limit_range",
        "list_limit_range_for_all_namespaces",
    ),
    "persistentvolumeclaims": (
        "CoreV1Api",
        "list_namespaced_persistent_volume_claim",
        "list_persistent_volume_claim_for_all_namespaces",
    ),
    "endpointslices": (
        "DiscoveryV1Api",
        "list_namespaced_endpoint_slice",
        "list_endpoint_slice_for_all_namespaces",
    ),
    "ingresses": ("NetworkingV1Api", "list_namespaced_ingress", "list_ingress_for_all_namespaces"),
    "leases": ("CoordinationV1Api", "list_namespaced_lease", "list_lease_for_all_namespaces"),
}
# Custom resources the typed client lacks: resource -> (API group, version). A cluster without
# their CRD answers 404, which means none exist there, not an error.
_KUBE_CUSTOM = {"httproutes": ("gateway.networking.k8s.io", "v1")}


class ApiKubeSource:
    """The official client's typed calls, raw JSON out (the same shape as the scenario files),
    run in a bounded thread pool because the client is synchronous."""

    def __init__(
        self, api_client: Any, *, max_concurrency: int = 8, request_timeout_s: float = 10
    ) -> None:
        self._api = api_client  # kubernetes.client.ApiClient
        self._limit = asyncio.Semaphore(max_concurrency)
        self._timeout = request_timeout_s

    async def _call(
        self, api: str, method: str, *args: Any, absent: bytes | None = None, **kwargs: Any
    ) -> bytes:
        import kubernetes.client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        fn = getattr(getattr(kubernetes.client, api)(self._api), method)

        def call() -> bytes:
            resp = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            data: bytes = resp.data
            return data

        async with self._limit:
            try:
                return await asyncio.to_thread(call)
            except ApiException as exc:
                if exc.status == 404 and absent is not None:
                    return absent  # the resource's API is not installed
                raise CollectorError(
                    f"Kubernetes API {method}: {exc.status} {exc.reason}", collector="kubernetes"
                ) from exc
            except HTTPError as exc:
                raise CollectorError(
                    f"Kubernetes API unreachable: {exc}", collector="kubernetes"
                ) from exc

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if field_selector:
            kwargs["field_selector"] = field_selector
        if resource in _KUBE_CUSTOM:
            group, version = _KUBE_CUSTOM[resource]
            where = (namespace,) if namespace is not None else ()
            method = "list_namespaced_custom_object" if where else "list_cluster_custom_object"
            raw = await self._call(
                "CustomObjectsApi", method, group, version, *where, resource, absent=b"{}", **kwargs
            )
            return list(json.loads(raw).get("items") or [])
        api, namespaced, cluster = _KUBE_METHODS[resource]
        if namespace is not None and namespaced is not None:
            raw = await self._call(api, namespaced, namespace, **kwargs)
        else:
            raw = await self._call(api, cluster, **kwargs)
        items: list[dict[str, Any]] = json.loads(raw).get("items") or []
        return items

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {"container": container, "timestamps": True}
        if previous:
            kwargs["previous"] = True
        if tail_lines:
            kwargs["tail_lines"] = tail_lines
        raw = await self._call("CoreV1Api", "read_namespaced_pod_log", pod, namespace, **kwargs)
        return raw.decode("utf-8", "replace")
