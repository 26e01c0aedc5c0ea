"""Sizes that must agree end to end: what NATS takes in one message (the ``max_payload`` the
server announces, headers included), and the truncation that keeps what triage publishes under
it, saying so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# nats-server's default max_payload, and what nats-py assumes before the server says otherwise.
DEFAULT_MAX_PAYLOAD = 1024 * 1024
# Label and annotation values kept in incident state and drafts; real ones are far shorter.
VALUE_CHARS = 2048


def headers_size(headers: Mapping[str, str] | None) -> int:
    """Bytes nats-py sends for ``headers`` (HPUB): they count towards max_payload."""
    if not headers:
        return 0
    size = len(b"NATS/1.0\r\n") + len(b"\r\n")
    for key, value in headers.items():
        size += len(key.strip().encode()) + len(b": ") + len(value.strip().encode()) + 2
    return size


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last ones saying how many were left out (so
    cutting again changes nothing)."""
    if len(text) <= limit:
        return text
    before = 0
    if found := _CUT.search(text):  # cut before: count from the original
        text, before = text[: found.start()], int(found.group(1))
    kept = max(limit - len(_cut(len(text) + before)), 0)
    return text[:kept] + _cut(len(text) - kept + before)


_CUT = re.compile(r"… \[truncated (\d+) chars\]$")


def _cut(chars: int) -> str:
    return f"… [truncated {chars} chars]"


def bound_values(values: Mapping[str, str], limit: int = VALUE_CHARS) -> dict[str, str]:
    """Labels or annotations with long values (and names) truncated."""
    return {truncate(k, limit): truncate(v, limit) for k, v in values.items()}


def truncate_strings(value: Any, limit: int) -> Any:
    """Every string in a JSON-like value cut to ``limit`` characters (dict keys too)."""
    if isinstance(value, str):
        return truncate(value, limit)
    if isinstance(value, list):
        return [truncate_strings(v, limit) for v in value]
    if isinstance(value, dict):
        return {truncate(str(k), limit): truncate_strings(v, limit) for k, v in value.items()}
    return value


def truncate_bytes(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of ``data``, cut on a UTF-8 character boundary."""
    if len(data) <= limit:
        return data
    return data[: max(limit, 0)].decode("utf-8", "ignore").encode()
