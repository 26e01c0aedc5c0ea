"""What the wheel carries: every package on disk (the list in pyproject.toml is explicit, so a
new subpackage must be added to it) and the prompt templates, as data package triage_prompts."""

from __future__ import annotations

import fnmatch
import tomllib

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
