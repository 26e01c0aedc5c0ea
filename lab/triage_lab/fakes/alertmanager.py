"""Alertmanager as a real process on a free port, routing every alert to one webhook."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from triage_lab.fakes.process import ServerProcess, http, http_status, require_binary

ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")


class Alertmanager(ServerProcess):
    """Alertmanager routing every alert to one webhook receiver, with test-friendly timings.

    Gossip is disabled (--cluster.listen-address=) so no extra port or network is needed.
    Alerts posted without endsAt reach the webhook with endsAt "0001-01-01T00:00:00Z";
    an alert already resolved when first posted is never notified.
    """

    name = "alertmanager"

    def __init__(
        self,
        webhook_url: str,
        *,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        group_by: Sequence[str] = ("alertname", "namespace"),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        resolve_timeout: str = "5m",
        workdir: Path | None = None,
    ) -> None:
        require_binary(ALERTMANAGER_BIN, "the Debian package prometheus-alertmanager")
        if bearer_token is not None and basic_auth is not None:
            raise ValueError("bearer_token and basic_auth are mutually exclusive")
        super().__init__(workdir)
        http_config: dict[str, Any] = {}
        if bearer_token is not None:
            http_config["authorization"] = {"type": "Bearer", "credentials": bearer_token}
        if basic_auth is not None:
            http_config["basic_auth"] = {"username": basic_auth[0], "password": basic_auth[1]}
        webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True, "max_alerts": 0}
        if http_config:
            webhook["http_config"] = http_config
        self.config: dict[str, Any] = {
            "global": {"resolve_timeout": resolve_timeout},
            "route": {
                "receiver": "webhook",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [{"name": "webhook", "webhook_configs": [webhook]}],
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        config_file = self.workdir / "alertmanager.yml"
        config_file.write_text(json.dumps(self.config, indent=2))  # JSON is valid YAML
        return [
            str(ALERTMANAGER_BIN),
            f"--config.file={config_file}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]

    def _ready(self) -> bool:
        return http_status(f"{self.url}/-/ready") == 200

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts: dicts with labels, annotations, startsAt, endsAt?, generatorURL."""
        req = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with http.open(req, timeout=5.0):
                pass
        except urllib.error.HTTPError as e:
            raise RuntimeError(
                f"Alertmanager rejected alerts: {e.code} {e.read().decode(errors='replace')}"
            ) from e
