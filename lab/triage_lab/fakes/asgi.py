"""An ASGI app (a fake HTTP API) served by uvicorn in a thread of its own on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import uvicorn

from triage_lab.fakes.process import free_port


class AsgiServer:
    """uvicorn in a daemon thread: it keeps answering while the caller's event loop is busy or
    blocked, and synchronous clients (the ``kubernetes`` client) can call it from any thread.
    Extra keyword arguments go to ``uvicorn.Config``."""

    def __init__(self, app: Any, *, name: str = "asgi", force_exit: bool = False, **config: Any):
        self.port = free_port()
        self._config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", **config
        )
        self._name = name
        # force_exit: requests still in a handler (a scripted slow answer) must not hold the exit
        self._force_exit = force_exit
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self._name} server did not start")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None and thread is not None:
            server.should_exit = True
            server.force_exit = self._force_exit
            thread.join(timeout)

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


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """An ASGI app (a recorded API) on a free port in a thread, for the duration; yields its URL."""
    with AsgiServer(app) as server:
        yield server.url
