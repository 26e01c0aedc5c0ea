"""Versioned prompt templates (``prompts/<version>/system.j2`` and ``user.j2``), rendered with
one Jinja2 environment per folder. The version and a hash of the templates' content go on
every RCA, so a draft can be traced to the exact prompt that produced it.

The bundled templates are the repository's top-level ``prompts/`` folder, installed as the data
package ``triage_prompts`` (pyproject.toml): found through importlib.resources, so a wheel or an
editable install works the same, wherever it runs from."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from triage.errors import ConfigError

BUNDLED_PACKAGE = "triage_prompts"
OPEN, CLOSE = "<evidence>", "</evidence>"


@functools.cache
def bundled_dir() -> Path:
    """The folder of the bundled templates: package ``triage_prompts``, as installed."""
    try:
        root = importlib.resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"bundled prompts not installed (package {BUNDLED_PACKAGE}): reinstall triage "
            "(`pip install .` or `pip install -e .`) or set TRIAGE_LLM_PROMPT_DIR",
            setting="llm.prompt_dir",
        ) from exc
    if not isinstance(root, Path):  # e.g. imported from a zip file: Jinja2 needs a folder
        raise ConfigError(
            f"bundled prompts are not on the file system ({root}): set TRIAGE_LLM_PROMPT_DIR",
            setting="llm.prompt_dir",
        )
    return root


@functools.cache
def _environment(root: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        autoescape=False,
        keep_trailing_newline=False,
    )


@dataclass(frozen=True)
class Prompts:
    version: str
    hash: str
    system_template: jinja2.Template
    user_template: jinja2.Template

    def system(self, **context: Any) -> str:
        return self.system_template.render(**context).strip()

    def user(self, **context: Any) -> str:
        return self.user_template.render(**context).strip()


def load_prompts(version: str, root: Path | None = None) -> Prompts:
    base = root or bundled_dir()
    env = _environment(base.resolve())
    digest = hashlib.sha256(version.encode())
    templates = []
    for name in ("system.j2", "user.j2"):
        try:
            source = (base / version / name).read_text()
            templates.append(env.get_template(f"{version}/{name}"))
        except (OSError, jinja2.TemplateError) as exc:
            raise ConfigError(
                f"prompt template {base / version / name} unusable: {exc}",
                setting="llm.prompt_version",
            ) from exc
        digest.update(b"\0" + source.encode())
    return Prompts(version, digest.hexdigest()[:16], templates[0], templates[1])


def delimited(data: Any) -> str:
    """JSON for the inside of <evidence>…</evidence>: ``<``, ``>`` and ``&`` are written as
    \\u escapes, so no text in the evidence can close the block or open another one, and the
    JSON still decodes to the same strings."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
