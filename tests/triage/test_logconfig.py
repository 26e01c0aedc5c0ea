"""One log format per process: what libraries log through the standard library (urllib3's
retries against an unreachable cluster, uvicorn) comes out as the same JSON as triage's own."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from triage.logconfig import configure_logging


@pytest.fixture(autouse=True)
def _restore() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def test_library_warnings_are_json_lines_like_triages_own(capsys: pytest.CaptureFixture[str]):
    configure_logging("json", "info")
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying (%s) after connection broken: %s", "Retry(total=0)", "refused"
    )
    logging.getLogger("urllib3.connectionpool").info("chatty request line")
    structlog.get_logger("triage.test").info("started", stages=["worker"])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    library, own = lines  # the library's info line is below the threshold
    assert library["event"] == "Retrying (Retry(total=0)) after connection broken: refused"
    assert library["level"] == "warning" and library["logger"] == "urllib3.connectionpool"
    assert "timestamp" in library and own["event"] == "started"
