"""A read-only Kubernetes API server over recorded objects: what the real `kubernetes` client
talks to when a scenario is replayed (no apiserver can run here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from collectors.sources import KUBE_PATHS, selector_matches
from triage_lab.scenarios import KubeObjects, LogStream

_LIST_KINDS = {
    "namespaces": "NamespaceList",
    "nodes": "NodeList",
    "pods": "PodList",
    "events": "EventList",
    "configmaps": "ConfigMapList",
    "secrets": "SecretList",
    "services": "ServiceList",
    "deployments": "DeploymentList",
    "replicasets": "ReplicaSetList",
    "statefulsets": "StatefulSetList",
    "daemonsets": "DaemonSetList",
    "controllerrevisions": "ControllerRevisionList",
    "horizontalpodautoscalers": "HorizontalPodAutoscalerList",
    "networkpolicies": "NetworkPolicyList",
}


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status_code=code,
    )


def kube_api_app(objects: KubeObjects, logs: list[LogStream] | None = None) -> Starlette:
    """Serves GET list/get for the resources collectors read, and pod logs. Requests are
    recorded on ``app.state.requests`` so tests can see what the client asked."""
    streams = {(s.namespace, s.pod, s.container, s.previous): s.lines for s in logs or []}
    requests: list[str] = []

    def lister(resource: str, group: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            requests.append(
                str(request.url.path) + ("?" + request.url.query if request.url.query else "")
            )
            ns = request.path_params.get("namespace")
            name = request.path_params.get("name")
            selector = request.query_params.get("labelSelector")
            items = [
                o
                for o in objects.of(resource)
                if (ns is None or o.get("metadata", {}).get("namespace") == ns)
                and selector_matches(selector, o.get("metadata", {}).get("labels") or {})
            ]
            if name is not None:
                found = [o for o in items if o.get("metadata", {}).get("name") == name]
                if not found:
                    return _status(404, "NotFound", f'{resource} "{name}" not found')
                return JSONResponse(found[0])
            return JSONResponse(
                {
                    "kind": _LIST_KINDS[resource],
                    "apiVersion": group.removeprefix("/apis/").removeprefix("/api/"),
                    "metadata": {"resourceVersion": "1"},
                    "items": items,
                }
            )

        return handle

    async def pod_log(request: Request) -> Response:
        requests.append(str(request.url.path) + "?" + request.url.query)
        q = request.query_params
        key = (
            request.path_params["namespace"],
            request.path_params["name"],
            q.get("container", ""),
            q.get("previous") == "true",
        )
        lines = streams.get(key)
        if lines is None:
            return _status(400, "BadRequest", f"previous terminated container not found: {key}")
        tail = q.get("tailLines")
        if tail and tail.isdigit():
            lines = lines[-int(tail) :]
        return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""))

    routes = [Route("/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log)]
    for resource, (group, namespaced) in KUBE_PATHS.items():
        handle = lister(resource, group)
        if namespaced:
            routes += [
                Route(f"{group}/namespaces/{{namespace}}/{resource}", handle),
                Route(f"{group}/namespaces/{{namespace}}/{resource}/{{name}}", handle),
            ]
        routes += [
            Route(f"{group}/{resource}", handle),
            Route(f"{group}/{resource}/{{name}}", handle),
        ]
    app = Starlette(routes=routes)
    app.state.requests = requests
    return app
