"""Evidence recorded in scenario files: drives the demo and tests without a cluster."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from collectors.contracts import Evidence, EvidenceItem, IncidentView, TimeWindow
from triage.errors import ConfigError


class ScenarioFile(BaseModel):
    name: str
    match: dict[str, str] = Field(description="Alert labels that select this scenario")
    delay_s: float = Field(0, ge=0, description="Simulates a slow evidence source")
    evidence: list[EvidenceItem]


def load_scenarios(directory: Path) -> list[ScenarioFile]:
    """Read every ``*.json`` under ``directory``; a bad file is an error naming file and field."""
    scenarios = []
    for path in sorted(directory.glob("*.json")):
        try:
            scenarios.append(ScenarioFile.model_validate_json(path.read_bytes()))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}: {field}: {err['msg']}", setting=str(path)) from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}", setting=str(path)) from exc
    return scenarios


class ScenarioCollector:
    name = "scenario"

    def __init__(self, scenarios: list[ScenarioFile]) -> None:
        self._scenarios = scenarios

    async def collect(self, incident: IncidentView, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        labels = [incident.common_labels] + [a.labels for a in incident.alerts.values()]
        chosen = [
            s
            for s in self._scenarios
            if s.match and any(s.match.items() <= lbls.items() for lbls in labels)
        ]
        if not chosen:
            return Evidence(
                collector=self.name,
                status="no_data",
                error="no recorded scenario matches the alert's labels",
            )
        await asyncio.sleep(max(s.delay_s for s in chosen))
        # Evidence stamped after the window has not happened yet, as far as this look knows.
        items = [
            i
            for s in chosen
            for i in s.evidence
            if i.timestamp is None or i.timestamp <= window.end
        ]
        return Evidence(
            collector=self.name,
            status="ok" if items else "no_data",
            items=items,
            error=None if items else "the recorded evidence lies after this look",
            duration_s=time.monotonic() - started,
        )
