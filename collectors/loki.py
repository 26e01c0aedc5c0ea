"""Logs from Loki (LogQL ``query_range``) instead of the Kubernetes API, when Loki is configured:
the same template mining, over every pod of the alert's namespaces, deleted pods included."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

import httpx

from collectors.contracts import Evidence, EvidenceItem, IncidentView, Neighbours, TimeWindow
from collectors.kubernetes.common import in_scope
from collectors.pod_logs import LogsCollector

# Labels Promtail / Grafana Agent / Alloy put on Kubernetes streams that name the service.
_SERVICE_LABELS = ("service_name", "app", "app_kubernetes_io_name", "service", "container")


def service_of_stream(labels: dict[str, str]) -> str:
    for key in _SERVICE_LABELS:
        if labels.get(key):
            return labels[key]
    return labels.get("pod", "unknown")


class LokiCollector:
    name = "loki"

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        limit: int = 5000,
        selector: str = '{namespace="$namespace"}',
        neighbours: Neighbours | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._client = client
        self._limit = limit
        self._selector = selector
        self._neighbours = neighbours

    async def collect(self, incident: IncidentView, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        namespaces, _, scope_error = await in_scope(incident, window, self._neighbours)
        if not namespaces:
            return Evidence(collector=self.name, status="no_data", error="alert has no namespace")
        per_service: dict[str, list[tuple[str, str]]] = defaultdict(list)
        errors = []
        for ns in namespaces:
            try:
                for labels, line in await self._query(
                    self._selector.replace("$namespace", ns), window
                ):
                    per_service[service_of_stream(labels)].append((labels.get("pod", ""), line))
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                errors.append(f"{ns}: {type(exc).__name__}: {exc}")
        items: list[EvidenceItem] = []
        for svc in sorted(per_service):
            items += LogsCollector.mine(svc, per_service[svc], window)
        status = "ok" if items else ("error" if errors and not per_service else "no_data")
        quiet = f"no unusual log patterns in {len(per_service)} service(s)' Loki streams"
        return Evidence(
            collector=self.name,
            status=status,
            items=items,
            error="; ".join(errors + ([scope_error] if scope_error else []))
            or (quiet if not items else None),
            duration_s=time.monotonic() - started,
        )

    async def _query(self, logql: str, window: TimeWindow) -> list[tuple[dict[str, str], str]]:
        resp = await self._client.get(
            f"{self._base}/loki/api/v1/query_range",
            params={
                "query": logql,
                "start": str(int(window.start.timestamp() * 1e9)),
                "end": str(int(window.end.timestamp() * 1e9)),
                "limit": str(self._limit),
                "direction": "forward",
            },
        )
        body = resp.json()
        if resp.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"Loki {logql!r}: {body.get('error') or resp.status_code}")
        if body["data"].get("resultType") != "streams":
            raise ValueError(f"Loki {logql!r}: not a log query ({body['data'].get('resultType')})")
        lines = []
        for stream in body["data"]["result"]:
            labels = stream.get("stream") or {}
            for ns_ts, text in stream.get("values") or []:
                at = datetime.fromtimestamp(int(ns_ts) / 1e9, UTC)
                lines.append((labels, f"{at.isoformat().replace('+00:00', 'Z')} {text}"))
        return lines
