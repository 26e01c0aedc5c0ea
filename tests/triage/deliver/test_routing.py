"""Routing: Alertmanager's matcher semantics, first match and `continue`, the default route,
ownership overrides, bad files stopped with line and reason, and the `triage routes` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from triage.app import create_app
from triage.cli.main import main
from triage.deliver.routing import Matcher, Ownership, Router, parse_routing
from triage.errors import RoutingFileError
from triage.settings import RoutingSettings

ROUTING = """\
default:
  team: sre
  channels: ["#incidents"]
  mention: S0SRE0001
routes:
  - name: cart
    matchers:
      - namespace="shop"
      - service=~"cart.*"
    team: cart
    channels: ["#cart-oncall"]
    mention: S0CART001
    continue: true
  - name: payments
    matchers: ['service=~"(payment|checkout).*"']
    team: payments
    channel: "#payments"
    mention: S0PAY0001
  - name: shop-wide
    match: {namespace: shop}
    team: shop
    channels: ["#shop", "C0SHOP0001"]
"""


def router(text: str = ROUTING) -> Router:
    rules, default = parse_routing(text, "routing.yaml")
    assert default is not None
    return Router(rules, default)


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('service="cart"', {"service": "cart"}, True),
        ('service="cart"', {"service": "cartservice"}, False),
        ('service=""', {}, True),  # a missing label reads as the empty string
        ('service!="cart"', {}, True),
        ('service!="cart"', {"service": "cart"}, False),
        ('service=~"cart"', {"service": "cartservice"}, False),  # anchored at both ends
        ('service=~"cart.*"', {"service": "cartservice"}, True),
        ('service=~".*service"', {"service": "cartservice"}, True),
        ('service=~"a|b"', {"service": "ab"}, False),  # the whole alternation is anchored
        ('service=~"a|b"', {"service": "b"}, True),
        ('service=~"cart"', {"service": "cart\n"}, False),  # no trailing-newline leniency
        ('service=~".*"', {}, True),
        ('service=~".+"', {}, False),
        ('service!~"cart.*"', {"service": "cartservice"}, False),
        ('service!~"cart"', {"service": "cartservice"}, True),
        ('service!~".+"', {}, True),
        ('env=~"(?i)PROD"', {"env": "prod"}, True),
        ("team=cart", {"team": "cart"}, True),  # unquoted values are fine
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),  # quoted values unescape
        ('  severity  =  "critical"  ', {"severity": "critical"}, True),
    ],
)
def test_matchers_follow_alertmanager(matcher: str, labels: dict[str, str], expected: bool):
    assert Matcher.parse(matcher).matches(labels) is expected


def test_first_match_wins_and_continue_carries_on():
    r = router()
    # cart matches and continues; payments does not match; shop-wide matches and stops.
    d = r.route({"namespace": "shop", "service": "cartservice", "severity": "critical"})
    assert [t.team for t in d.targets] == ["cart", "shop"]
    assert d.team == "cart" and d.channel == "#cart-oncall"
    assert d.channels == ("#cart-oncall", "#shop", "C0SHOP0001")
    assert 'rule 1 "cart" (line 6' in d.reason and 'rule 3 "shop-wide"' in d.reason

    d = r.route({"namespace": "shop", "service": "checkoutservice"})
    assert [t.team for t in d.targets] == ["payments"]  # no continue: shop-wide is not reached


def test_nothing_matching_goes_to_the_default_route():
    d = router().route({"namespace": "monitoring", "service": "grafana"})
    assert (d.team, d.channels, d.reason) == ("sre", ("#incidents",), "default route")


def test_without_a_routing_file_everything_goes_to_the_default_from_settings():
    r = Router.from_settings(RoutingSettings(default_team="ops", default_channel="#ops"))
    d = r.route({"service": "anything"})
    assert (d.team, d.channels) == ("ops", ("#ops",))
    assert d.mentions("#ops", "critical") == []


def test_a_file_without_default_uses_the_settings_default(tmp_path: Path):
    path = tmp_path / "routing.yaml"
    path.write_text('routes:\n  - {team: cart, channel: "#cart", matchers: [team=cart]}\n')
    r = Router.from_settings(RoutingSettings(file=path, default_channel="#fallback"))
    assert r.route({"team": "cart"}).channel == "#cart"
    assert r.route({"service": "other"}).channels == ("#fallback",)


def test_the_team_label_routes_to_that_teams_channel_before_the_default():
    r = Router.from_settings(RoutingSettings(default_channel="#fallback"))
    d = r.route({"team": "Cart Team", "service": "cartservice"})
    assert (d.team, d.channels) == ("Cart Team", ("#cart-team",))
    assert 'label team="Cart Team"' in d.reason
    assert r.route({"service": "cartservice"}).channels == ("#fallback",)


def test_the_team_label_takes_the_files_channels_and_pager_for_that_team(tmp_path: Path):
    path = tmp_path / "routing.yaml"
    path.write_text(
        "routes:\n"
        '  - {team: cart, channel: "#cart-oncall", mention: S0CART001, matchers: [service=cart]}\n'
    )
    r = Router.from_settings(RoutingSettings(file=path, team_channel="#{team}-alerts"))
    d = r.route({"team": "cart", "service": "cartservice", "severity": "critical"})
    assert d.channels == ("#cart-oncall",)
    assert d.mentions("#cart-oncall", "critical") == ["S0CART001"]
    other = r.route({"owner": "search"})
    assert other.team == "unowned"  # no team label: the default
    named = Router.from_settings(
        RoutingSettings(team_label="owner", team_channel="#{team}-alerts")
    ).route({"owner": "search"})
    assert named.channels == ("#search-alerts",)


def test_the_team_channel_setting_must_name_the_team():
    with pytest.raises(ValidationError, match="must be a channel name containing"):
        RoutingSettings(team_channel="#alerts")


def test_user_groups_are_paged_only_for_critical_and_only_in_their_channels():
    d = router().route({"namespace": "shop", "service": "cartservice", "severity": "critical"})
    assert d.mentions("#cart-oncall", "critical") == ["S0CART001"]
    assert d.mentions("#shop", "critical") == []  # shop-wide names no group
    warning = router().route({"namespace": "shop", "service": "cartservice"})
    assert warning.mentions("#cart-oncall", "warning") == []


def test_workload_ownership_overrides_the_rules():
    r = router()
    labels = {"namespace": "shop", "service": "cartservice", "severity": "critical"}
    # Owner team known to the file: its channels and its user group.
    d = r.route(labels, Ownership("payments", (), "deployment shop/cartservice"))
    assert (d.team, d.channels) == ("payments", ("#payments",))
    assert d.mentions("#payments", "critical") == ["S0PAY0001"]
    assert d.reason == "ownership: deployment shop/cartservice"
    # Owner team and channel: the channel from the workload, the mention still from the file.
    d = r.route(labels, Ownership("payments", ("#pay-war-room",), "namespace shop"))
    assert d.channels == ("#pay-war-room",) and d.mentions("#pay-war-room", "critical") == [
        "S0PAY0001"
    ]
    # A team the file does not know: the default channel, and nobody paged.
    d = r.route(labels, Ownership("ml-platform", (), "deployment shop/cartservice"))
    assert (d.team, d.channels) == ("ml-platform", ("#incidents",))
    assert d.mentions("#incidents", "critical") == []
    # Only a channel: the rules' team, posted where the workload says.
    d = r.route(labels, Ownership(None, ("#cart-alerts",), "namespace shop"))
    assert (d.team, d.channels) == ("cart", ("#cart-alerts",))


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("routes:\n  - team: cart\n    channel: '#cart'\n    matchers: ['service=~\"(cart\"']\n",
         4, "invalid regex"),
        ("routes:\n  - team: cart\n    matchers: [a=b]\n", 2, "needs `channels`"),
        ("routes:\n  - matchers: [a=b]\n    channel: '#a'\n", 2, "team: Field required"),
        ("routes:\n  - team: a\n    channel: '#a'\n    contine: true\n", 4, "Extra inputs"),
        ("routes:\n  - team: a\n    channels: ['#A B']\n", 3, "is not a Slack channel"),
        ("routes:\n  - team: a\n    channel: '#a'\n    mention: '@oncall'\n", 4, "user group id"),
        ("routes:\n  - team: a\n    channel: '#a'\n    matchers: [service]\n", 4, "not a matcher"),
        ("routes:\n  - team: a\n    channel: '#a'\n    continue: maybe\n", 4, "valid boolean"),
        ("routes:\n  - team: a\n    channel: '#a'\n    match_re: {x: '['}\n", 4, "invalid regex"),
        ("default: {team: a, channel: '#a'}\ndefault: {team: b, channel: '#b'}\n", 2,
         "duplicate key"),
        ("routes: [\n  - team\n", 2, "not valid YAML"),
        ("- just a list\n", 1, "must be a mapping"),
        ("routs: []\n", 1, "Extra inputs"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_with_line_and_reason(text: str, line: int, reason: str):
    with pytest.raises(RoutingFileError) as caught:
        parse_routing(text, "routing.yaml")
    assert caught.value.line == line, str(caught.value)
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"routing.yaml:{line}:")


def test_the_service_does_not_start_with_a_bad_routing_file(tmp_path: Path):
    from tests.support.app import make_settings

    path = tmp_path / "routing.yaml"
    path.write_text("routes:\n  - team: cart\n    channel: '#cart'\n    matchers: ['x=~\"(\"']\n")
    settings = make_settings(tmp_path, routing={"file": str(path)})
    with pytest.raises(RoutingFileError, match=r"routing.yaml:4: routes\[0\].matchers\[0\]"):
        create_app(settings, nats_url="nats://127.0.0.1:1")


def test_routes_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good = tmp_path / "good.yaml"
    good.write_text(ROUTING)
    with pytest.raises(SystemExit) as done:
        main(["routes", "check", str(good)])
    assert done.value.code == 0
    assert "OK, 3 rule(s)" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - team: cart\n    channels: ['#Cart']\n")
    with pytest.raises(SystemExit) as done:
        main(["routes", "check", str(bad)])
    assert done.value.code == 1
    assert "bad.yaml:3: routes[0].channels[0]" in capsys.readouterr().out


def test_routes_test_command_says_where_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    with pytest.raises(SystemExit) as done:
        main(["routes", "test", str(path), "namespace=shop", "service=checkoutservice",
              "severity=critical"])  # fmt: skip
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "team:     payments" in out and "channels: #payments" in out
    assert "<!subteam^S0PAY0001> (would page now: yes)" in out
    assert 'rule 1 "cart" (line 6: namespace="shop", service=~"cart.*"): no, ' in out
    assert 'service=~"cart.*" is false (service="checkoutservice")' in out
    assert (
        'rule 2 "payments" (line 14: service=~"(payment|checkout).*")' in out
        and "matched -> payments" in out
    )
    assert "not evaluated" in out  # rule 3 comes after a match without continue

    with pytest.raises(SystemExit):
        main(["routes", "test", str(path), "namespace=kube-system"])
    out = capsys.readouterr().out
    assert "team:     sre" in out and "why:      default route" in out


def test_the_readme_example_is_a_valid_routing_file():
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme[readme.index("### Who gets the draft") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    rules, default = parse_routing(example, "README")
    assert default is not None and [r.team for r in rules] == ["cart", "platform"]
    r = Router(rules, default)
    d = r.route({"namespace": "shop", "service": "cartservice", "severity": "critical"})
    assert [t.team for t in d.targets] == ["cart", "platform"]
