"""The service's own install has no evaluation lab: `triage eval` says how to get it."""

from __future__ import annotations

import sys

import pytest

from triage.cli.main import main


def test_eval_without_the_lab_says_how_to_install_it(monkeypatch, capsys):
    # As in the image: not importable (both names, in case an earlier test imported the lab).
    monkeypatch.setitem(sys.modules, "triage_lab", None)
    monkeypatch.setitem(sys.modules, "triage_lab.cli", None)
    with pytest.raises(SystemExit) as exited:
        main(["eval", "scenarios/k8s-faults"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "evaluation lab" in err and "pip install -e lab" in err


def test_eval_with_the_lab_runs_the_labs_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["eval", "--help"])
    assert exited.value.code == 0
    assert "import-changerca" in capsys.readouterr().out
