"""Routing: which team and Slack channels an alert reaches, and why.

Rules come from a YAML file of ordered routes with Alertmanager's matchers (``=``, ``!=``,
``=~``, ``!~``; regexes anchored at both ends, a missing label reads as ""). The first matching
rule wins unless it says ``continue: true``; nothing matching goes to the default route.
Ownership recorded on the workload or its namespace overrides the rules when a lookup is
configured. The file is checked when the service starts: a bad one stops it with line and reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage.errors import CollectorError, RoutingFileError
from triage.settings import RoutingSettings

log = structlog.get_logger(__name__)

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
# Slack channel names (lowercase, digits, - and _) or conversation ids.
CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9_\-]{0,79}|[CG][A-Z0-9]{6,})$")
USER_GROUP = re.compile(r"^S[A-Z0-9]{6,}$")
MENTION_SEVERITY = "critical"

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """``name op value`` with the value optionally double-quoted; raises ValueError."""
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(f"not a matcher (want name=value, !=, =~ or !~): {text!r}")
        name, op, raw = m.groups()
        value = _unquote(raw)
        return cls.build(name, op, value)

    @classmethod
    def build(cls, name: str, op: str, value: str) -> Matcher:
        regex = None
        if op in ("=~", "!~"):
            try:
                # Matched with fullmatch: anchored at both ends like Alertmanager's ^(?:...)$,
                # so "cart" does not match "cartservice"; "." stops at newlines as in RE2.
                regex = re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return cls(name, op, value, regex)

    def matches(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.regex is not None:
            hit = self.regex.fullmatch(got) is not None
            return hit if self.op == "=~" else not hit
        return (got == self.value) if self.op == "=" else (got != self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def _unquote(raw: str) -> str:
    if not raw.startswith('"'):
        if '"' in raw:
            raise ValueError(f"stray quote in unquoted value {raw!r}")
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"badly quoted value {raw}: {exc.msg}") from exc
    if not isinstance(value, str):
        raise ValueError(f"badly quoted value {raw}")
    return value


@dataclass(frozen=True)
class Target:
    """One team's share of a decision: where it is posted and whom to page on critical."""

    team: str
    channels: tuple[str, ...]
    mention: str | None
    reason: str


@dataclass(frozen=True)
class RouteDecision:
    targets: tuple[Target, ...]

    @property
    def team(self) -> str:
        return self.targets[0].team

    @property
    def channel(self) -> str:
        return self.targets[0].channels[0]

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for t in self.targets for c in t.channels))

    @property
    def reason(self) -> str:
        return "; ".join(t.reason for t in self.targets)

    def mentions(self, channel: str, severity: str) -> list[str]:
        """User groups to page in ``channel``: only from the routing file, only when critical."""
        if severity.lower() != MENTION_SEVERITY:
            return []
        groups = (t.mention for t in self.targets if t.mention and channel in t.channels)
        return list(dict.fromkeys(groups))


@dataclass(frozen=True)
class Ownership:
    """Ownership found on the workload or its namespace; either part may be missing."""

    team: str | None
    channels: tuple[str, ...]
    source: str


class OwnerLookup(Protocol):
    async def lookup(self, labels: dict[str, str]) -> Ownership | None: ...


@dataclass(frozen=True)
class Rule:
    number: int
    line: int
    name: str
    matchers: tuple[Matcher, ...]
    team: str
    channels: tuple[str, ...]
    mention: str | None
    cont: bool

    def describe(self) -> str:
        label = f' "{self.name}"' if self.name else ""
        what = ", ".join(map(str, self.matchers)) or "anything"
        return f"rule {self.number}{label} (line {self.line}: {what})"

    def target(self) -> Target:
        return Target(self.team, self.channels, self.mention, self.describe())


class Router:
    def __init__(
        self,
        rules: list[Rule],
        default: Target,
        *,
        owners: OwnerLookup | None = None,
        source: str = "settings",
        team_label: str = "",
        team_channel: str = "#{team}",
    ) -> None:
        self.rules = rules
        self.default = default
        self.source = source
        self.owners = owners
        self.team_label = team_label
        self.team_channel = team_channel

    @classmethod
    def from_settings(cls, settings: RoutingSettings, owners: OwnerLookup | None = None) -> Router:
        default = Target(
            settings.default_team, (settings.default_channel,), None, "default route (settings)"
        )
        by_label = {"team_label": settings.team_label, "team_channel": settings.team_channel}
        if settings.file is None:
            return cls([], default, owners=owners, **by_label)
        rules, file_default = load_routing_file(settings.file)
        return cls(
            rules, file_default or default, owners=owners, source=str(settings.file), **by_label
        )

    def matching(self, labels: dict[str, str]) -> list[Rule]:
        hits = []
        for rule in self.rules:
            if all(m.matches(labels) for m in rule.matchers):
                hits.append(rule)
                if not rule.cont:
                    break
        return hits

    def route(self, labels: dict[str, str], owner: Ownership | None = None) -> RouteDecision:
        hits = self.matching(labels)
        by_rules = tuple(r.target() for r in hits) or (self._labelled(labels) or self.default,)
        if owner is None or not (owner.team or owner.channels):
            return RouteDecision(by_rules)
        # The workload's own word beats the rules; the file still decides whom to page.
        team = owner.team or by_rules[0].team
        team_rule = next((r for r in self.rules if r.team == team), None)
        if owner.channels:
            channels = owner.channels
        elif team_rule is not None:
            channels = team_rule.channels
        else:
            channels = self.default.channels
        if owner.team:
            # Only the file pages anyone: a team it does not know gets no mention.
            mention = team_rule.mention if team_rule is not None else None
        else:
            mention = by_rules[0].mention
        return RouteDecision((Target(team, channels, mention, f"ownership: {owner.source}"),))

    def _labelled(self, labels: dict[str, str]) -> Target | None:
        """The team an alert names in its team label, when no rule matched: the file's rule for
        that team says where (and whom to page), else the channel named after the team."""
        team = labels.get(self.team_label, "").strip() if self.team_label else ""
        if not team:
            return None
        why = f"label {self.team_label}={json.dumps(team)}"
        rule = next((r for r in self.rules if r.team == team), None)
        if rule is not None:
            return Target(
                team, rule.channels, rule.mention, f"{why}, channels of {rule.describe()}"
            )
        slug = re.sub(r"[^a-z0-9_\-]+", "-", team.lower()).strip("-")
        channel = self.team_channel.replace("{team}", slug)
        if not slug or not CHANNEL.match(channel):
            log.warning("team_label_unusable", team=team, channel=channel)
            return None
        return Target(team, (channel,), None, why)

    async def decide(self, labels: dict[str, str]) -> RouteDecision:
        owner = None
        if self.owners is not None:
            try:
                owner = await self.owners.lookup(labels)
            except CollectorError as exc:
                # Routing by the rules beats not delivering at all.
                log.warning("ownership_lookup_failed", error=str(exc))
        return self.route(labels, owner)

    def explain(self, labels: dict[str, str]) -> list[str]:
        """Every rule's verdict in order, for ``triage routes test``."""
        lines = []
        chosen = {r.number for r in self.matching(labels)}
        stopped = False
        for rule in self.rules:
            if stopped:
                lines.append(f"  {rule.describe()}: not evaluated (an earlier match stopped)")
                continue
            failing = next((m for m in rule.matchers if not m.matches(labels)), None)
            if rule.number in chosen:
                tail = ", continue" if rule.cont else ""
                lines.append(f"  {rule.describe()}: matched -> {rule.team}{tail}")
                stopped = not rule.cont
            elif failing is not None:
                got = json.dumps(labels.get(failing.name, ""))
                lines.append(f"  {rule.describe()}: no, {failing} is false ({failing.name}={got})")
        return lines


# -- the routing file ----------------------------------------------------------------------------


class _TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    team: str = Field(min_length=1, max_length=80)
    channels: list[str] = Field(default_factory=list)
    channel: str | None = None
    mention: str | None = None


class _RuleSpec(_TargetSpec):
    name: str = ""
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    continue_: bool = Field(False, alias="continue")


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: _TargetSpec | None = None
    routes: list[_RuleSpec] = Field(default_factory=list)


def load_routing_file(path: Path) -> tuple[list[Rule], Target | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutingFileError(f"{path}: cannot read: {exc}", path=str(path), line=0) from exc
    return parse_routing(text, str(path))


def parse_routing(text: str, source: str = "<routing>") -> tuple[list[Rule], Target | None]:
    """Rules and the file's default route; RoutingFileError names the line and the reason."""
    data, lines = _compose(text, source)

    def fail(where: Path_, reason: str) -> RoutingFileError:
        line = _line_of(lines, where)
        place = _render_path(where)
        msg = f"{source}:{line}: {place + ': ' if place else ''}{reason}"
        return RoutingFileError(msg, path=source, line=line)

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise fail((), "the routing file must be a mapping with `routes` and `default`")
    try:
        spec = _FileSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise fail(tuple(err["loc"]), err["msg"]) from exc

    default = None
    if spec.default is not None:
        default = _target(spec.default, ("default",), fail, "default route")
    rules = []
    for i, r in enumerate(spec.routes):
        where: Path_ = ("routes", i)
        target = _target(r, where, fail, "")
        matchers: list[Matcher] = []
        for j, text_ in enumerate(r.matchers):
            try:
                matchers.append(Matcher.parse(text_))
            except ValueError as exc:
                raise fail((*where, "matchers", j), str(exc)) from exc
        for key, op, mapping in (("match", "=", r.match), ("match_re", "=~", r.match_re)):
            for name, value in mapping.items():
                try:
                    matchers.append(Matcher.build(name, op, value))
                except ValueError as exc:
                    raise fail((*where, key, name), str(exc)) from exc
        rules.append(
            Rule(
                number=i + 1,
                line=_line_of(lines, where),
                name=r.name,
                matchers=tuple(matchers),
                team=target.team,
                channels=target.channels,
                mention=target.mention,
                cont=r.continue_,
            )
        )
    return rules, default


def _target(spec: _TargetSpec, where: Path_, fail: Any, reason: str) -> Target:
    channels = list(spec.channels) + ([spec.channel] if spec.channel else [])
    if not channels:
        raise fail(where, "needs `channels` (or `channel`): where should its alerts go?")
    for n, ch in enumerate(channels):
        if not CHANNEL.match(ch):
            key: Path_ = (*where, "channels", n) if n < len(spec.channels) else (*where, "channel")
            raise fail(key, f"{ch!r} is not a Slack channel (#name in lowercase, or an id C…)")
    if spec.mention is not None and not USER_GROUP.match(spec.mention):
        raise fail(
            (*where, "mention"),
            f"{spec.mention!r} is not a Slack user group id (S…, from usergroups.list)",
        )
    return Target(spec.team, tuple(dict.fromkeys(channels)), spec.mention, reason)


def _compose(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """YAML to plain data plus the line of every key and item (yaml's node marks)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise RoutingFileError(
            f"{source}:{line}: not valid YAML: {problem}", path=source, line=line
        ) from exc
    lines: dict[Path_, int] = {}
    if root is None:
        return None, lines
    constructor = yaml.constructor.SafeConstructor()

    def walk(node: yaml.Node, path: Path_) -> Any:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | bool):
                    raise RoutingFileError(
                        f"{source}:{key_node.start_mark.line + 1}: keys must be plain text",
                        path=source,
                        line=key_node.start_mark.line + 1,
                    )
                if key in out:
                    line = key_node.start_mark.line + 1
                    raise RoutingFileError(
                        f"{source}:{line}: {_render_path((*path, str(key)))}: duplicate key",
                        path=source,
                        line=line,
                    )
                lines[(*path, str(key))] = key_node.start_mark.line + 1
                out[str(key)] = walk(value_node, (*path, str(key)))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [walk(item, (*path, i)) for i, item in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    return walk(root, ()), lines


def _line_of(lines: dict[Path_, int], where: Iterable[str | int]) -> int:
    path = tuple("continue" if p == "continue_" else p for p in where)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get((), 1)


def _render_path(where: Iterable[str | int]) -> str:
    out = ""
    for p in where:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
