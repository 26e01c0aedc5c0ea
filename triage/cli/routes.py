"""``triage routes check FILE`` and ``triage routes test FILE label=value...``: the routing file
checked as the service checks it at start, and where an alert would go, and why."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triage.deliver.routing import MENTION_SEVERITY, Router
from triage.errors import RoutingFileError
from triage.settings import RoutingSettings


def add_parser(sub: Any) -> None:
    routes = sub.add_parser("routes", help="check a routing file, or see where an alert goes")
    cmds = routes.add_subparsers(dest="routes_command", required=True)
    check = cmds.add_parser("check", help="validate FILE; the line and reason of any problem")
    check.add_argument("file", type=Path)
    test = cmds.add_parser("test", help="which team and channels an alert with these labels gets")
    test.add_argument("file", type=Path)
    test.add_argument("labels", nargs="*", metavar="label=value")


def run(args: argparse.Namespace) -> int:
    try:
        router = Router.from_settings(RoutingSettings(file=args.file))
    except RoutingFileError as exc:
        print(f"triage routes: {exc}")
        return 1
    if args.routes_command == "check":
        default = "from the file" if router.default.reason == "default route" else "from settings"
        print(f"{args.file}: OK, {len(router.rules)} rule(s), default route {default}")
        return 0
    labels: dict[str, str] = {}
    for item in args.labels:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"triage routes: {item!r} is not label=value")
            return 2
        labels[name] = value
    print(describe(router, labels))
    return 0


def describe(router: Router, labels: dict[str, str]) -> str:
    decision = router.route(labels)
    severity = labels.get("severity", "")
    lines = []
    for target in decision.targets:
        lines.append(f"team:     {target.team}")
        lines.append(f"channels: {', '.join(target.channels)}")
        if target.mention:
            paged = "yes" if severity.lower() == MENTION_SEVERITY else "no, not critical"
            lines.append(f"mention:  <!subteam^{target.mention}> (would page now: {paged})")
        lines.append(f"why:      {target.reason}")
    lines.append("rules:")
    lines += router.explain(labels) or ["  (none)"]
    lines.append("(ownership labels on the workload or namespace, when Kubernetes is configured,")
    lines.append(" override this; the test does not read the cluster)")
    return "\n".join(lines)
