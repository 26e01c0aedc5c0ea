"""`triage eval PATH | import-changerca SRC DEST | generate-corpus DEST`."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from triage.settings import Settings

FORMS = {
    "import-changerca": "usage: triage eval import-changerca SRC DEST\n\n"
    "Converts ChangeRCA cases (SRC: the dataset's folder, one sub-folder per case with its "
    "rollout plan, per-pod metrics and ground truth) into triage scenarios under DEST, which "
    "`triage eval DEST` then scores.",
    "generate-corpus": "usage: triage eval generate-corpus DEST [--seed N] "
    "[--conventions ours|real-world]\n\n"
    "Writes the synthetic Kubernetes fault corpus (every fault kind, with decoys) into DEST; "
    "the same seed gives the same files.",
}


class _FormHelp(argparse.Action):
    """``--help`` after import-changerca or generate-corpus explains that form, not eval's."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show this help message and exit")

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, *_: Any) -> None:
        target = getattr(ns, "target", None) or []
        print(FORMS[target[0]] if target and target[0] in FORMS else parser.format_help())
        parser.exit()


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="score the investigation on scenarios; or import-changerca SRC DEST; "
        "or generate-corpus DEST",
        description="triage eval PATH [--analyzer heuristic|llm] [--backend files|live] | "
        "triage eval import-changerca SRC DEST | triage eval generate-corpus DEST [--seed N]. "
        "PATH holds scenario folders (a scenario.json each, see docs/scenarios.md), for example "
        "scenarios/k8s-faults.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_FormHelp)
    p.add_argument(
        "target", nargs="+", help="PATH, or import-changerca SRC DEST, or generate-corpus DEST"
    )
    p.add_argument("--analyzer", choices=["heuristic", "llm"], default="heuristic")
    p.add_argument("--backend", choices=["files", "live"], default="files")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder (default: eval-results/<name of PATH>)",
    )
    p.add_argument("--seed", type=int, default=7, help="generate-corpus: random seed")
    p.add_argument(
        "--conventions",
        choices=["ours", "real-world"],
        default="ours",
        help="generate-corpus: our labels (service, namespace), or each case relabelled as "
        "Istio, OpenTelemetry, kube-state-metrics or Helm stacks write them",
    )
    p.add_argument(
        "--delay",
        type=float,
        default=60,
        metavar="SECONDS",
        help="investigate this long after the first alert's start (default 60: the first "
        "draft; a follow-up investigation runs later, see TRIAGE_INVESTIGATION_FOLLOW_UP_S)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    target: list[str] = args.target
    if target[0] == "import-changerca":
        if len(target) != 3:
            raise SystemExit("usage: triage eval import-changerca SRC DEST")
        from triage_lab.importers.changerca import import_changerca

        made = import_changerca(Path(target[1]), Path(target[2]))
        print(f"imported {len(made)} case(s) into {target[2]}")
        return 0
    if target[0] == "generate-corpus":
        if len(target) != 2:
            raise SystemExit("usage: triage eval generate-corpus DEST [--seed N]")
        from triage_lab.corpus import generate_corpus

        made = generate_corpus(Path(target[1]), seed=args.seed, conventions=args.conventions)
        print(f"generated {len(made)} scenario(s) into {target[1]}")
        return 0
    if len(target) != 1:
        raise SystemExit("usage: triage eval PATH [--analyzer ...] [--backend ...]")
    from triage_lab.evaluation import run_eval

    if args.delay < 0:
        raise SystemExit("--delay must be 0 or more seconds")
    path = Path(target[0])
    out = args.out or Path("eval-results") / path.resolve().name
    report = run_eval(
        path,
        out,
        analyzer=args.analyzer,
        backend=args.backend,
        settings=settings.investigation,
        config=settings,
        delay=timedelta(seconds=args.delay),
    )
    o = report["summary"]["overall"]
    print(
        f"{o['cases']} cases: AC@1 {o['ac@1']:.3f}  AC@3 {o['ac@3']:.3f}  "
        f"Avg@5 {o['avg@5']:.3f}  mean rank {o['mean_rank']:.2f}  -> {out}/report.md"
    )
    failed = report["summary"]["errors"]
    if failed:
        print(f"triage eval: {failed} case(s) failed (see the error column of the report)")
        return 1
    return 0
