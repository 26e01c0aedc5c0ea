"""A local HTTP receiver for the generic webhook sink: answers the statuses a test queues, then
200, and keeps every request's headers and JSON body."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from triage_lab.fakes.process import free_port


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.answers: list[int] = []  # statuses to answer, in order; then 200
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), json.loads(await request.read())))
        status = self.answers.pop(0) if self.answers else 200
        return web.json_response({"status": status}, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
