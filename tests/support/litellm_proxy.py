"""A real LiteLLM proxy (OpenAI-compatible gateway) for tests, from its own pinned venv.

``make litellm`` (a prerequisite of ``make test``) installs it into ``.venv-litellm`` from
tests/litellm-requirements.txt, every package pinned with its hash. Its routes answer with
``mock_response``, so no model provider is needed. LiteLLM fetches its model cost map from
the internet at startup (three tries, about 6 s, then its bundled copy);
``LITELLM_LOCAL_MODEL_COST_MAP=True`` makes it use the bundled copy straight away, offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from triage_lab.fakes.process import ServerProcess as _ServerProcess
from triage_lab.fakes.process import http_status as _http_status
from triage_lab.fakes.process import require_binary

LITELLM_BIN = Path(__file__).resolve().parents[2] / ".venv-litellm" / "bin" / "litellm"
MASTER_KEY = "sk-triage-test-master-key"


class LiteLLMProxy(_ServerProcess):
    name = "litellm"

    def __init__(self, config: dict[str, Any], *, workdir: Path | None = None) -> None:
        require_binary(LITELLM_BIN, "the test-only LiteLLM venv: make litellm")
        super().__init__(workdir)
        self.config = config

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _command(self) -> list[str]:
        config_file = self.workdir / "litellm.yaml"
        config_file.write_text(json.dumps(self.config, indent=2))  # JSON is valid YAML
        return [
            str(LITELLM_BIN),
            "--config",
            str(config_file),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--num_workers",
            "1",
        ]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
        env.update(
            LITELLM_MASTER_KEY=MASTER_KEY,
            LITELLM_LOCAL_MODEL_COST_MAP="True",  # offline: no cost map download at startup
            LITELLM_LOG="ERROR",
            NO_DOCS="True",
        )
        return env

    def _ready(self) -> bool:
        return _http_status(f"http://127.0.0.1:{self.port}/health/liveliness") == 200
