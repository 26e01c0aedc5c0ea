"""The Dockerfile, checked without a Docker engine: multi-stage, the final stage runs as a
numeric non-root user and installs no build tools, and only what the service needs is sent."""

from __future__ import annotations

import re

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import ROOT, pod_templates, render

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow

BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|cargo|rustc|git)\b")


def stages() -> list[list[dict[str, str]]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    out: list[list[dict[str, str]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def test_multi_stage_with_a_non_root_final_stage_without_build_tools():
    found = stages()
    assert len(found) >= 2
    final = found[-1]
    assert "AS runtime" in final[0]["value"]
    runs = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
    assert not BUILD_TOOLS.search(runs), runs
    assert "apt-get install" not in runs
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000
    copies = [i["value"] for i in final if i["instruction"] == "COPY"]
    assert copies and all(c.startswith("--from=build") for c in copies)
    # The build stage is where compilers may live.
    assert BUILD_TOOLS.search(" ".join(i["value"] for i in found[0] if i["instruction"] == "RUN"))


def test_image_user_matches_the_pods_run_as_user():
    uid = int(
        next(i["value"] for i in reversed(stages()[-1]) if i["instruction"] == "USER").split(":")[0]
    )
    for workload, pod in pod_templates(render("production")):
        if workload["metadata"]["name"].startswith("triage-"):
            assert pod["securityContext"]["runAsUser"] == uid


def test_dockerignore_sends_only_the_package():
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    # constraints.txt: the image installs the versions the tests passed with.
    assert allowed == {"pyproject.toml", "constraints.txt", "triage", "collectors", "prompts"}


def test_the_image_carries_the_prompt_templates_inside_the_installed_package():
    """The wheel ships prompts/ as package ``triage_prompts``: the build stage needs the folder
    to install it; the runtime stage gets it with the virtual environment, and nothing points
    TRIAGE_LLM_PROMPT_DIR elsewhere (unset = the bundled templates)."""
    build, final = stages()[0], stages()[-1]
    assert "prompts ./prompts" in [i["value"] for i in build if i["instruction"] == "COPY"]
    install = " ".join(i["value"] for i in build if i["instruction"] == "RUN")
    assert re.search(r"pip install\b.* \.(\s|$)", install), install  # the package, not -e
    everything = " ".join(i["value"] for stage in stages() for i in stage)
    assert "TRIAGE_LLM_PROMPT_DIR" not in everything
    copies = [i["value"] for i in final if i["instruction"] == "COPY"]
    assert copies == ["--from=build /opt/triage /opt/triage"]
    assert (ROOT / "prompts" / "__init__.py").is_file()
