"""A local Kubernetes API over recorded JSON, for the real ``kubernetes`` client.

A map of path -> object is served read-only (GET); anything else is the API's 404 Status.
The one write it answers is a SelfSubjectAccessReview (POST), allowed unless its (group,
resource[/subresource], verb) is in ``denied``. Every request is recorded, and a path can be
made to fail on demand. Runs a threading HTTP
server on a free port (the client is synchronous and called from worker threads).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from kubernetes import client as k8s

from triage_lab.fakes.servers import free_port

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


def deployment(
    namespace: str,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment as the API returns it (trimmed to what the client needs to parse it)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "resourceVersion": "1",
            "labels": {"app": name, **(labels or {})},
            "annotations": {"deployment.kubernetes.io/revision": "7", **(annotations or {})},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"registry/{name}:7"}]},
            },
        },
        "status": {"replicas": 2, "readyReplicas": 2},
    }


def namespace(
    name: str, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": f"uid-ns-{name}",
            "resourceVersion": "1",
            "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
            "annotations": annotations or {},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def path_of(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    if obj["kind"] == "Namespace":
        return f"/api/v1/namespaces/{meta['name']}"
    plural = {"Deployment": "deployments", "StatefulSet": "statefulsets",
              "DaemonSet": "daemonsets"}[obj["kind"]]  # fmt: skip
    return f"/apis/apps/v1/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


class KubeApi:
    def __init__(self, objects: list[dict[str, Any]] | None = None) -> None:
        self.paths: dict[str, dict[str, Any]] = {path_of(o): o for o in objects or []}
        self.requests: list[str] = []
        self.failing: dict[str, int] = {}  # path -> HTTP status to answer
        # (group, resource, verb) that access reviews deny
        self.denied: set[tuple[str, str, str]] = set()
        self.reviews: list[tuple[str, str, str]] = []  # every access review asked, in order
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    def start(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                api.requests.append(path)
                if path in api.failing:
                    code = api.failing[path]
                    self._send(code, status(code, "InternalError", "injected failure"))
                elif path in api.paths:
                    self._send(200, api.paths[path])
                else:
                    self._send(404, status(404, "NotFound", f"{path} not found"))

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                api.requests.append(path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if path in api.failing:
                    code = api.failing[path]
                    self._send(code, status(code, "InternalError", "injected failure"))
                elif path == SSAR_PATH:
                    self._send(201, api.review(body))
                else:
                    self._send(405, status(405, "MethodNotAllowed", f"POST {path}"))

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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
