"""``triage doctor``'s LLM gateway check: aliases listed, strict json_schema kept."""

from __future__ import annotations

import json
from typing import Any, cast

import openai

from triage.analyse.gateway import gateway_client, gateway_error
from triage.cli.doctor_common import Check, safe_url
from triage.errors import TriageError
from triage.settings import Settings

# Asked for prose under a schema that allows none: only a gateway that enforces the schema
# answers with it.
_PROBE_MESSAGES = [
    {"role": "system", "content": "You are a health check."},
    {"role": "user", "content": "Say hello."},
]
_PROBE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "triage_doctor_probe",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
    },
}


async def check_llm(settings: Settings) -> Check:
    cfg = settings.llm
    if not cfg.base_url:
        return Check(
            "off", "llm", "set TRIAGE_LLM_BASE_URL (drafts come from the heuristic analyzer)"
        )
    shown = safe_url(cfg.base_url)
    try:
        client = gateway_client(cfg, settings.llm_api_key())
    except TriageError as exc:
        return Check("fail", "llm", str(exc))
    try:
        try:
            listed = [m.id async for m in client.models.list()]
        except openai.OpenAIError as exc:
            err, _ = gateway_error(exc, "GET /models")
            return Check("fail", "llm", f"{shown}: {err}")
        wanted = [cfg.model, *cfg.fallback_models]
        absent = [m for m in wanted if m not in listed]
        if absent:
            return Check(
                "fail",
                "llm",
                f"{shown}: model alias(es) {', '.join(absent)} not listed by the gateway "
                f"(it lists: {', '.join(sorted(listed)) or 'nothing'})",
            )
        try:
            response = await client.chat.completions.create(
                model=cfg.model,
                messages=cast(Any, _PROBE_MESSAGES),
                response_format=cast(Any, _PROBE_SCHEMA),
                temperature=0,
                max_tokens=64,
            )
        except openai.OpenAIError as exc:
            err, _ = gateway_error(exc, cfg.model)
            return Check("fail", "llm", f"{shown}: strict json_schema request failed: {err}")
        content = response.choices[0].message.content if response.choices else None
        if not _probe_valid(content):
            return Check(
                "fail",
                "llm",
                f"{shown}: {cfg.model} does not keep to a strict json_schema "
                f"(answered {(content or '')[:80]!r})",
            )
    finally:
        await client.close()
    return Check(
        "ok", "llm", f"{shown}: {', '.join(wanted)} listed, strict json_schema answers valid"
    )


def _probe_valid(content: str | None) -> bool:
    try:
        data = json.loads(content or "")
    except ValueError:
        return False
    return isinstance(data, dict) and set(data) == {"ok"} and isinstance(data["ok"], bool)
