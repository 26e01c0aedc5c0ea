"""A scripted OpenAI-compatible gateway for tests and bench/llm.py.

``POST /v1/chat/completions`` answers with the next scripted step (a valid answer, a status
with Retry-After, a slow answer, raw content); with the script empty it answers validly. A
valid answer is made from the request itself: it blames the first suspect of the ranking and
cites the first evidence item inside <evidence>…</evidence>. With ``capacity`` set it behaves
like a GPU backend behind a gateway: at most that many requests at once, each taking
``latency`` seconds, 429 with Retry-After beyond. Every request body is recorded.
``GET /v1/models`` lists the model aliases in ``listed``.

It runs real uvicorn in a thread of its own, so it keeps answering while the test's event loop
is busy, and the client under test talks to it over TCP like to any gateway.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from triage.analyse.budget import estimate_tokens
from triage_lab.fakes.asgi import AsgiServer

_EVIDENCE = re.compile(r"<evidence>\n?(.*?)\n?</evidence>", re.DOTALL)


@dataclass
class Step:
    """What the server does with one request."""

    status: int = 200
    content: str | None = None  # None: a valid answer made from the request
    answer: dict[str, Any] = field(default_factory=dict)  # overrides of the made answer
    delay: float = 0.0
    retry_after: float | None = None
    model: str | None = None  # only for requests naming this model


def answer(delay: float = 0.0, **overrides: Any) -> Step:
    return Step(answer=overrides, delay=delay)


def status(code: int, retry_after: float | None = None) -> Step:
    return Step(status=code, retry_after=retry_after)


def raw(content: str) -> Step:
    return Step(content=content)


def slow(seconds: float) -> Step:
    return Step(delay=seconds)


def evidence_of(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON between the delimiters of the request's user message."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    found = _EVIDENCE.search(user)
    return json.loads(found.group(1)) if found else {}


def made_answer(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = evidence_of(body)
    items = data.get("items", [])
    ranking = data.get("ranking", [])
    lead = ranking[0] if ranking else {}
    result = {
        "summary": f"Probable cause: {lead.get('component', 'unknown')}",
        "root_cause": {
            "component": lead.get("component", "unknown"),
            "kind": lead.get("kind", "unknown"),
            "change": lead.get("change"),
            "description": items[0]["summary"] if items else "no evidence",
        },
        "confidence": 0.7 if items else 0.1,
        "impact": "checkout requests fail",
        "evidence_ids": [items[0]["id"]] if items else [],
        "next_steps": ["kubectl rollout history deploy/checkoutservice"],
        "open_questions": [],
        "owner_team": "unknown",
    }
    result.update(overrides)
    return result


def tokens(text: str) -> int:
    return estimate_tokens(text) if text else 0


class ScriptedLLM:
    def __init__(
        self,
        *steps: Step,
        capacity: int | None = None,
        latency: float = 0.0,
        retry_after: float = 1.0,
        listed: tuple[str, ...] = ("triage-rca",),
    ) -> None:
        self.listed = listed
        self.capacity = capacity
        self.latency = latency
        self.retry_after = retry_after
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self.statuses: collections.Counter[int] = collections.Counter()
        self.responses: list[tuple[float, int]] = []  # (time.monotonic(), status)
        self.active = 0
        self.peak = 0
        self._steps: collections.deque[Step] = collections.deque(steps)
        self._lock = threading.Lock()
        self._http = AsgiServer(
            self.app(),
            name="scripted-llm",
            force_exit=True,  # slow steps still sleeping must not hold the exit
            lifespan="off",
            backlog=4096,
            timeout_keep_alive=30,
        )
        self.port = self._http.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def models(self) -> list[str]:
        return [r["model"] for r in self.requests]

    def _next(self, model: str) -> Step:
        with self._lock:
            for step in self._steps:
                if step.model is None or step.model == model:
                    self._steps.remove(step)
                    return step
        return Step(delay=self.latency)

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            self.arrivals.append(time.monotonic())
        if self.capacity is not None and self.active >= self.capacity:
            return self._respond(429, body, Step(retry_after=self.retry_after))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            step = self._next(body.get("model", ""))
            if step.delay:
                await asyncio.sleep(step.delay)
            return self._respond(step.status, body, step)
        finally:
            self.active -= 1

    def _respond(self, code: int, body: dict[str, Any], step: Step) -> Response:
        with self._lock:
            self.statuses[code] += 1
            self.responses.append((time.monotonic(), code))
        if code != 200:
            headers = {} if step.retry_after is None else {"Retry-After": f"{step.retry_after:g}"}
            kind = "rate_limit_error" if code == 429 else "server_error"
            return JSONResponse(
                {"error": {"message": f"scripted {code}", "type": kind, "code": code}},
                status_code=code,
                headers=headers,
            )
        content = step.content
        if content is None:
            content = json.dumps(made_answer(body, step.answer))
        # Counted like the analyzer budgets: the messages and the schema.
        prompt = sum(tokens(m.get("content") or "") for m in body["messages"])
        prompt += tokens(json.dumps(body["response_format"])) if "response_format" in body else 0
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": tokens(content),
                    "total_tokens": prompt + tokens(content),
                },
            }
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "scripted"}
                    for m in self.listed
                ],
            }
        )

    async def _stats(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(
                {
                    "statuses": dict(self.statuses),
                    "responses": self.responses,
                    "peak": self.peak,
                    "requests": len(self.requests),
                }
            )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models),
                Route("/stats", self._stats),
            ]
        )

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """``python -m tests.llmserver --capacity C --latency L --port P``: the server in a process
    of its own (bench/llm.py), so that it does not share an interpreter with the client."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    args = parser.parse_args()
    server = ScriptedLLM(capacity=args.capacity, latency=args.latency, retry_after=args.retry_after)
    uvicorn.run(
        server.app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
