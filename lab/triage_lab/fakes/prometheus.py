"""Prometheus as a real process on a free port, serving series backfilled from OpenMetrics text:
the one launcher tests and the lab's live replay use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from triage_lab.fakes.process import START_TIMEOUT, ServerProcess, http_status, require_binary

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
PROMTOOL_BIN = Path("/usr/bin/promtool")


def backfill(openmetrics: str, tsdb_dir: Path) -> None:
    """OpenMetrics text (ending in '# EOF') as TSDB blocks in tsdb_dir, written by promtool."""
    om_file = tsdb_dir.parent / "backfill.om"
    om_file.write_text(openmetrics)
    res = subprocess.run(
        [
            str(PROMTOOL_BIN),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(om_file),
            str(tsdb_dir),
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"promtool backfill failed ({res.returncode}):\n{res.stdout}{res.stderr}"
        )


class Prometheus(ServerProcess):
    """Prometheus serving data backfilled from OpenMetrics text (no scrape targets).

    Timestamps in the text are Unix seconds. The "don't backfill the last 3h" rule is about
    a *running* server's head block; here the TSDB is fresh and blocks are written before
    Prometheus starts, so any timestamps work (verified on 2.42: a year ago, 3 days up to a
    minute ago, even an hour into the future). Retention is 100y: the default 15d, counted
    back from the newest block, deletes older backfilled blocks at startup. Backfill runs
    once; a stop()/start() keeps it.
    """

    name = "prometheus"

    def __init__(self, openmetrics: str, *, workdir: Path | None = None) -> None:
        require_binary(PROMETHEUS_BIN, "the Debian package prometheus")
        require_binary(PROMTOOL_BIN, "the Debian package prometheus")
        if not openmetrics.rstrip().endswith("# EOF"):
            raise ValueError("OpenMetrics text must end with '# EOF'")
        super().__init__(workdir)
        self.openmetrics = openmetrics.rstrip() + "\n"
        self.tsdb_dir = self.workdir / "tsdb"
        self._backfilled = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if not self._backfilled:  # once: a restart reuses the existing blocks
            backfill(self.openmetrics, self.tsdb_dir)
            self._backfilled = True
        super().start(timeout)

    def _command(self) -> list[str]:
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(
            json.dumps({"global": {"scrape_interval": "15s"}, "scrape_configs": []})
        )
        return [
            str(PROMETHEUS_BIN),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def _ready(self) -> bool:
        return http_status(f"{self.url}/-/ready") == 200
