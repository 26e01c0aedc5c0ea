"""What the LLM must answer: a pydantic model, the strict JSON schema generated from it for
``response_format``, and the check that says exactly what is wrong with an answer."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage.errors import TriageError
from triage.models import FaultKind

SCHEMA_NAME = "triage_rca"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerCause(_Strict):
    component: str = Field(description="Service or workload that caused it, or 'unknown'")
    kind: FaultKind = Field(description="Fault kind from the fixed vocabulary, or 'unknown'")
    change: str | None = Field(description="The change (rollout, config) blamed, or null")
    description: str = Field(description="What went wrong, from the evidence")


class LLMAnswer(_Strict):
    summary: str = Field(description="One line: what happened and the probable cause")
    root_cause: AnswerCause
    confidence: float = Field(ge=0, le=1, description="0..1; low when evidence is thin")
    impact: str = Field(description="Who or what is affected")
    evidence_ids: list[str] = Field(description="Ids of the evidence items the answer relies on")
    next_steps: list[str] = Field(
        description="Read-only diagnostic steps (kubectl get/describe/logs, queries); never "
        "changes to the cluster"
    )
    open_questions: list[str] = Field(description="What the evidence does not settle")
    owner_team: str = Field(description="Owning team if the evidence says, else 'unknown'")


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form OpenAI-style strict mode accepts: references
    inlined, every object closed (``additionalProperties: false``) with every property
    required (optional ones stay nullable), no defaults or titles."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**target, **extra})
        out = {k: walk(v) for k, v in node.items() if k not in ("default", "title")}
        if out.get("type") == "object" or "properties" in out:
            out["type"] = "object"
            out["additionalProperties"] = False
            out["required"] = list(out.get("properties", {}))
        return out

    result: dict[str, Any] = walk(schema)
    return result


def response_format() -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": strict_schema(LLMAnswer)},
    }


class AnswerProblem(TriageError):
    """What is wrong with an answer, worded for the repair call."""


def check_answer(content: str | None, allowed_ids: list[str]) -> LLMAnswer:
    """The parsed answer; raises AnswerProblem naming exactly what is wrong."""
    if not content or not content.strip():
        raise AnswerProblem("Your answer was empty.")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise AnswerProblem(
            f"Your answer was not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from exc
    try:
        answer = LLMAnswer.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise AnswerProblem(f"Your answer does not match the schema: {problems}.") from exc
    allowed = set(allowed_ids)
    unknown = [i for i in answer.evidence_ids if i not in allowed]
    if unknown:
        raise AnswerProblem(
            f"Your answer cites evidence ids that are not in the evidence: {', '.join(unknown)}. "
            "Cite only ids of items inside <evidence>."
        )
    return answer


# kubectl verbs and tools that change the cluster: triage proposes diagnostics only.
_CHANGING = re.compile(
    r"\b(?:kubectl|oc)(?:\s+-{1,2}[\w-]+(?:[= ][^\s-]\S*)?)*\s+"
    r"(?:delete|apply|edit|patch|replace|scale|autoscale|drain|cordon|uncordon|taint|label|"
    r"annotate|set|create|run|expose|exec|cp|rollout\s+(?:undo|restart|pause|resume))\b"
    r"|\bhelm\s+(?:upgrade|install|rollback|uninstall|delete)\b",
    re.IGNORECASE,
)


def read_only(steps: list[str]) -> tuple[list[str], list[str]]:
    """(steps kept, steps refused because they would change the cluster)."""
    kept = [s for s in steps if not _CHANGING.search(s)]
    return kept, [s for s in steps if _CHANGING.search(s)]
