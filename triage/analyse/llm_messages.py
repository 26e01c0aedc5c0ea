"""The messages of one LLM call: the system prompt, and the incident, the ranking and the
evidence most suspicious first, as delimited JSON, within the prompt token budget."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from collectors.contracts import Evidence, EvidenceItem
from triage.analyse.budget import estimate_tokens, item_data, pack
from triage.analyse.heuristic import KINDS, ranked_items
from triage.analyse.prompts import Prompts, delimited
from triage.analyse.redaction import Redactor
from triage.models import IncidentState, Suspect

MIN_EVIDENCE_TOKENS = 300
MAX_ALERTS = 20
RANKED = 5  # suspects shown to the model


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    ids: list[str]  # the evidence ids sent: the only ones the answer may cite
    tokens: int  # estimated, schema included
    dropped: int


def estimate(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) for m in messages)


class PromptBuilder:
    def __init__(
        self, prompts: Prompts, redactor: Redactor, budget_tokens: int, schema: dict[str, Any]
    ) -> None:
        self._prompts = prompts
        self._redactor = redactor
        self._budget = budget_tokens
        self.system = prompts.system(kinds=list(KINDS))
        self.schema_tokens = estimate_tokens(json.dumps(schema))

    def build(
        self, incident: IncidentState, evidence: list[Evidence], suspects: list[Suspect]
    ) -> Prompt:
        """``evidence`` already redacted; the alerts are redacted here."""
        ordered = _by_rank(evidence, suspects)
        incident_data = self._incident_data(incident)
        ranking = suspects[:RANKED]

        def render(items: list[EvidenceItem], dropped: int) -> Prompt:
            ids = [i.id for i in items]
            data = {
                "incident": incident_data,
                "ranking": [_suspect_data(s, set(ids)) for s in ranking],
                "items": [item_data(i) for i in items],
            }
            user = self._prompts.user(
                incident_id=incident.incident_id,
                firing=len(incident.firing()),
                evidence=delimited(data),
                dropped=dropped,
            )
            messages = [
                {"role": "system", "content": self.system},
                {"role": "user", "content": user},
            ]
            return Prompt(messages, ids, estimate(messages) + self.schema_tokens, dropped)

        fixed = render([], 0).tokens
        packed = pack(ordered, max(self._budget - fixed, MIN_EVIDENCE_TOKENS))
        items = list(packed.items)
        prompt = render(items, packed.dropped)
        # The budget is for the whole prompt as sent (the schema too); pack() estimated the
        # items alone, so trim the least suspicious until it fits, keeping the top one.
        while prompt.tokens > self._budget and len(items) > 1:
            items.pop()
            prompt = render(items, len(ordered) - len(items))
        return prompt

    def _incident_data(self, incident: IncidentState) -> dict[str, Any]:
        def clean(d: dict[str, str]) -> dict[str, str]:
            return {k: self._redactor.redact(v)[0] for k, v in sorted(d.items())}

        alerts = sorted(incident.alerts.values(), key=lambda a: (a.status, a.starts_at))
        return {
            "status": incident.status,
            "common_labels": clean(incident.common_labels),
            "alerts": [
                {
                    "status": a.status,
                    "labels": clean(a.labels),
                    "annotations": clean(a.annotations),
                    "starts_at": a.starts_at.isoformat(),
                }
                for a in alerts[:MAX_ALERTS]
            ],
            "alerts_left_out": max(len(alerts) - MAX_ALERTS, 0),
        }


def _by_rank(evidence: list[Evidence], suspects: list[Suspect]) -> list[EvidenceItem]:
    """Items the leading suspects rest on first, then the rest, most suspicious first."""
    items = ranked_items(evidence)
    by_id = {i.id: i for i in items}
    first = [i for s in suspects for i in s.evidence_ids if i in by_id]
    order = list(dict.fromkeys([*first, *by_id]))
    # Metric points are for the graph; the prompt gets the summary of the shift.
    return [by_id[i].model_copy(update={"points": []}) for i in order]


def _suspect_data(s: Suspect, sent: set[str]) -> dict[str, Any]:
    data = s.model_dump(mode="json", exclude_none=True)
    data["evidence_ids"] = [i for i in s.evidence_ids if i in sent]
    return data
