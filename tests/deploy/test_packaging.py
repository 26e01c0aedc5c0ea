"""What the wheel carries: every package on disk (the list in pyproject.toml is explicit, so a
new subpackage must be added to it) and the prompt templates, as data package triage_prompts."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_namespace_packages

from tests.deploy.manifests import ROOT


def setuptools_config() -> dict:
    config: dict = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config


def test_the_package_list_is_every_package_on_disk_plus_the_prompts():
    config = setuptools_config()
    on_disk = find_namespace_packages(str(ROOT), include=["triage", "triage.*", "collectors*"])
    versions = [f"triage_prompts.{v}" for v in find_namespace_packages(str(ROOT / "prompts"))]
    assert sorted(config["packages"]) == sorted([*on_disk, "triage_prompts", *versions])
    assert config["package-dir"] == {"triage_prompts": "prompts"}


def test_every_prompt_template_is_package_data():
    data = setuptools_config()["package-data"]
    prompts = ROOT / "prompts"
    templates = [p.relative_to(prompts) for p in prompts.rglob("*.j2")]
    assert templates
    for template in templates:
        package = "triage_prompts." + ".".join(template.parent.parts)
        patterns = data.get(package, [])
        assert any(fnmatch.fnmatch(template.name, p) for p in patterns), template


# Offline: the pinned build backend is in the dev venv (pyproject's dev extra).
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]


def _wheel(tmp_path: Path) -> zipfile.ZipFile:
    """Built from what .dockerignore lets into the image, as the image builds it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("triage", "collectors", "prompts"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    out = tmp_path / "dist"
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(src)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = out.glob("triage-*.whl")
    return zipfile.ZipFile(wheel)


@pytest.mark.slow
def test_the_wheel_carries_the_service_and_its_prompts_and_nothing_of_the_lab(tmp_path: Path):
    wheel = _wheel(tmp_path)
    names = wheel.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"triage", "collectors", "triage_prompts"}
    templates = {p.name for p in (ROOT / "prompts").rglob("*.j2")}
    assert templates and templates <= {Path(n).name for n in names if n.endswith(".j2")}
    service = {
        str(p.relative_to(ROOT))
        for folder in ("triage", "collectors")
        for p in (ROOT / folder).rglob("*.py")
    }
    assert {n for n in names if n.endswith(".py") and not n.startswith("triage_prompts")} == service
    assert "triage/demo/scenarios/demo-checkout-rollout.json" in names
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "tqdm" not in metadata  # the lab's dependency, not the service's


def test_the_service_never_imports_the_lab():
    """Only `triage eval` reaches for it, and says how to install it when it is missing."""
    importers = [
        str(p.relative_to(ROOT))
        for folder in ("triage", "collectors")
        for p in (ROOT / folder).rglob("*.py")
        if re.search(
            r"^\s*(from|import) triage_lab\b|import_module\(\"triage_lab", p.read_text(), re.M
        )
    ]
    assert importers == ["triage/cli/main.py"]
