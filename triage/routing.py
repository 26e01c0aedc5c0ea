"""Ownership: which team and channel a draft goes to. First matching rule wins."""

from __future__ import annotations

from dataclasses import dataclass

from triage.settings import DeliverySettings


@dataclass(frozen=True)
class RouteDecision:
    team: str
    channel: str
    reason: str


class Router:
    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings

    def route(self, labels: dict[str, str]) -> RouteDecision:
        for n, rule in enumerate(self._settings.routes):
            if rule.match.items() <= labels.items():
                matched = ", ".join(f"{k}={v}" for k, v in rule.match.items()) or "anything"
                return RouteDecision(rule.team, rule.channel, f"rule {n + 1} ({matched})")
        return RouteDecision(
            self._settings.default_team, self._settings.default_channel, "default route"
        )
