"""The Kubernetes API fake: recorded objects served to the real ``kubernetes`` client.

One Starlette app answers what triage asks of an API server: list/get of the resources in
``KUBE_PATHS`` (namespaced or across namespaces, with equality label selectors), pod logs
(``container``, ``previous``, ``tailLines``), and SelfSubjectAccessReviews (allowed unless
their (group, resource[/subresource], verb) is in ``denied``). ``paths`` answers exact paths
(``/version/``, a single object) before the recorded objects; a path in ``failing`` answers
that HTTP status; anything else is the API's 404 Status. Every request is recorded, path and
query. :class:`KubeApi` runs it on a free port in a thread of its own (the client is
synchronous and called from worker threads); :func:`kube_api_app` is the bare app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kubernetes import client as k8s
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from collectors.sources import KUBE_PATHS, fields_match, selector_matches
from triage_lab.fakes.asgi import AsgiServer
from triage_lab.scenarios import KubeObjects, LogStream

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"

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
    "resourcequotas": "ResourceQuotaList",
    "limitranges": "LimitRangeList",
    "persistentvolumeclaims": "PersistentVolumeClaimList",
    "endpointslices": "EndpointSliceList",
    "ingresses": "IngressList",
    "httproutes": "HTTPRouteList",
    "leases": "LeaseList",
}
_PLURALS = {kind.removesuffix("List"): plural for plural, kind in _LIST_KINDS.items()}


# The fields the API server lets one select on, per resource (besides metadata.name/namespace).
SELECTABLE_FIELDS = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
}


def unsupported_fields(resource: str, selector: str | None) -> str | None:
    for term in (selector or "").split(","):
        field = term.replace("!=", "=").partition("=")[0].strip()
        if field and field not in {"metadata.name", "metadata.namespace"} | SELECTABLE_FIELDS.get(
            resource, set()
        ):
            return field
    return None


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """The API server's Status object for a failed request."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


def path_of(obj: dict[str, Any]) -> str:
    """The path the API serves an object at (a get by name)."""
    meta = obj["metadata"]
    plural = _PLURALS[obj["kind"]]
    group, namespaced = KUBE_PATHS[plural]
    if namespaced:
        return f"{group}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    return f"{group}/{plural}/{meta['name']}"


def _answer(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(status(code, reason, message), status_code=code)


class KubeApi:
    """The fake API server over ``objects`` (recorded objects, or a list of them sorted by kind)
    and ``logs``; a context manager that serves it on ``url`` for the duration."""

    def __init__(
        self,
        objects: KubeObjects | Iterable[dict[str, Any]] | None = None,
        logs: Iterable[LogStream] | None = None,
    ) -> None:
        if isinstance(objects, KubeObjects):
            self.objects = objects
        else:
            self.objects = KubeObjects()
            for obj in objects or ():
                self.objects.of(_PLURALS[obj["kind"]]).append(obj)
        self.logs = {(s.namespace, s.pod, s.container, s.previous): s.lines for s in logs or ()}
        self.paths: dict[str, dict[str, Any]] = {}  # exact path -> the object answered there
        self.requests: list[str] = []  # path, and "?" query when there is one
        self.failing: dict[str, int] = {}  # path -> HTTP status to answer
        # (group, resource, verb) that access reviews deny
        self.denied: set[tuple[str, str, str]] = set()
        self.reviews: list[tuple[str, str, str]] = []  # every access review asked, in order
        self.app = self._app()
        self._server = AsgiServer(self.app, name="kube-api", lifespan="off")
        self.port = self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    def configuration(self) -> k8s.Configuration:
        cfg = k8s.Configuration()
        cfg.host = self.url
        cfg.retries = 0
        return cfg

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server, as a user would have one."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fixture", "cluster": {"server": self.url}}],
                    "users": [{"name": "triage", "user": {"token": "fixture-token"}}],
                    "contexts": [
                        {"name": "fixture", "context": {"cluster": "fixture", "user": "triage"}}
                    ],
                    "current-context": "fixture",
                }
            )
        )
        return path

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to a SelfSubjectAccessReview, as the API server gives it."""
        attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource += "/" + attrs["subresource"]
        key = (attrs.get("group", ""), resource, attrs.get("verb", ""))
        self.reviews.append(key)
        allowed = key not in self.denied
        answer: dict[str, Any] = {"allowed": allowed}
        if not allowed:
            answer["reason"] = "no RBAC policy matched"
        return {**body, "metadata": {}, "status": answer}

    async def _front(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Recording, injected failures, access reviews and exact paths, before the routes."""
        path = request.url.path
        self.requests.append(path + ("?" + request.url.query if request.url.query else ""))
        if path in self.failing:
            return _answer(self.failing[path], "InternalError", "injected failure")
        if request.method == "POST":
            if path == SSAR_PATH:
                return JSONResponse(self.review(json.loads(await request.body() or b"{}")), 201)
            return _answer(405, "MethodNotAllowed", f"POST {path}")
        if path in self.paths:
            return JSONResponse(self.paths[path])
        return await call_next(request)

    def _lister(self, resource: str, group: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            ns = request.path_params.get("namespace")
            name = request.path_params.get("name")
            selector = request.query_params.get("labelSelector")
            fields = request.query_params.get("fieldSelector")
            if bad := unsupported_fields(resource, fields):
                # As the API server answers: only some fields of each kind are indexed.
                return _answer(400, "BadRequest", f'field label not supported: "{bad}"')
            items = [
                o
                for o in self.objects.of(resource)
                if (ns is None or o.get("metadata", {}).get("namespace") == ns)
                and selector_matches(selector, o.get("metadata", {}).get("labels") or {})
                and fields_match(fields, o)
            ]
            if name is not None:
                found = [o for o in items if o.get("metadata", {}).get("name") == name]
                if not found:
                    return _answer(404, "NotFound", f'{resource} "{name}" not found')
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

    async def _pod_log(self, request: Request) -> Response:
        q = request.query_params
        key = (
            request.path_params["namespace"],
            request.path_params["name"],
            q.get("container", ""),
            q.get("previous") == "true",
        )
        lines = self.logs.get(key)
        if lines is None:
            return _answer(400, "BadRequest", f"previous terminated container not found: {key}")
        tail = q.get("tailLines")
        if tail and tail.isdigit():
            lines = lines[-int(tail) :]
        return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""))

    def _app(self) -> Starlette:
        routes = [Route("/api/v1/namespaces/{namespace}/pods/{name}/log", self._pod_log)]
        for resource, (group, namespaced) in KUBE_PATHS.items():
            handle = self._lister(resource, group)
            if namespaced:
                routes += [
                    Route(f"{group}/namespaces/{{namespace}}/{resource}", handle),
                    Route(f"{group}/namespaces/{{namespace}}/{resource}/{{name}}", handle),
                ]
            routes += [
                Route(f"{group}/{resource}", handle),
                Route(f"{group}/{resource}/{{name}}", handle),
            ]

        async def not_found(request: Request, exc: Exception) -> Response:
            return _answer(404, "NotFound", f"{request.url.path} not found")

        app = Starlette(
            routes=routes,
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=self._front)],
            exception_handlers={404: not_found},
        )
        app.state.requests = self.requests
        return app

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def kube_api_app(objects: KubeObjects, logs: list[LogStream] | None = None) -> Starlette:
    """The fake's app alone, for a server of the caller's; requests are recorded on
    ``app.state.requests``."""
    return KubeApi(objects, logs).app
