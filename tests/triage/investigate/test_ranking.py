"""Ranking rules an on-call engineer would agree with, on hand-made evidence."""

from __future__ import annotations

from datetime import UTC, datetime

from collectors.contracts import Evidence, EvidenceItem
from tests.support.incidents import firing
from triage.investigate.ranking import rank
from triage.models import IncidentState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def incident(service: str = "web") -> IncidentState:
    labels = {"alertname": "HighErrorRate", "namespace": "shop", "service": service}
    return firing(labels, NOW, fingerprint="f")


def item(id: str, kind: str, subject: str, score: float, text: str = "") -> EvidenceItem:
    return EvidenceItem(id=id, kind=kind, summary=text or id, subject=subject, score=score)


def test_what_several_failing_services_name_is_their_common_cause():
    evidence = [
        Evidence(
            collector="logs",
            status="ok",
            items=[
                item(
                    "l1", "log_pattern", "cart", 0.8, "dial tcp orders-db:5432: connection refused"
                ),
                item("l2", "log_pattern", "checkout", 0.8, "orders-db: connection refused"),
                item("m1", "metric_shift", "cart", 0.9),
                item("m2", "metric_shift", "checkout", 0.9),
                item("m3", "metric_shift", "orders-db", 0.4),
            ],
        )
    ]
    suspects = rank(incident("cart"), evidence)
    assert suspects[0].component == "orders-db"
    assert "common_cause" in suspects[0].breakdown
    assert {"l1", "l2"} <= set(suspects[0].evidence_ids)


def test_a_component_that_only_suffers_ranks_below_one_that_changed_and_fails():
    evidence = [
        Evidence(
            collector="k8s",
            status="ok",
            items=[
                item("rollout-api-7", "rollout", "api", 0.8),
                item("logs-api", "log_pattern", "api", 0.6, "panic: nil map"),
                item("metric-web", "metric_shift", "web", 1.0),
            ],
        )
    ]
    suspects = rank(incident("web"), evidence)
    assert [s.component for s in suspects[:2]] == ["api", "web"]
    assert suspects[0].breakdown["change"] > 0 and suspects[0].evidence_ids[0] == "rollout-api-7"


def test_a_lone_change_counts_less_than_a_corroborated_one():
    lone = rank(
        incident(),
        [Evidence(collector="k", status="ok", items=[item("r1", "rollout", "api", 0.8)])],
    )
    corroborated = rank(
        incident(),
        [
            Evidence(
                collector="k",
                status="ok",
                items=[item("r1", "rollout", "api", 0.8), item("p1", "pod_state", "api", 0.5)],
            )
        ],
    )
    assert lone[0].breakdown["change"] < corroborated[0].breakdown["change"]


def edge_item(id: str, callee: str, callers: list[str], score: float = 1.0) -> EvidenceItem:
    return EvidenceItem(
        id=id, kind="edge_shift", summary=id, subject=callee, score=score, related=callers
    )


def metrics(*items: EvidenceItem, edges: list[tuple[str, str]] | None = None) -> Evidence:
    return Evidence(collector="metrics", status="ok", items=list(items), edges=edges or [])


def test_the_hurting_service_whose_own_calls_succeed_is_where_it_starts():
    # web -> api -> cache: all three hurt, but only the cache's calls (none) are healthy.
    evidence = [
        metrics(
            item("m-web", "metric_shift", "web", 1.0),
            item("m-api", "metric_shift", "api", 1.0),
            item("m-cache", "metric_shift", "cache", 1.0),
            edge_item("e-api", "api", ["web"]),
            edge_item("e-cache", "cache", ["api"]),
            edges=[("web", "api"), ("api", "cache")],
        )
    ]
    suspects = rank(incident("web"), evidence)
    assert suspects[0].component == "cache"
    assert "frontier" in suspects[0].breakdown
    assert "frontier" not in next(s for s in suspects if s.component == "api").breakdown


def test_calls_that_still_succeed_do_not_carry_the_damage_upstream():
    # api's calls to thumbs are measured and fine: thumbs' own trouble does not explain api's.
    evidence = [
        metrics(
            item("m-web", "metric_shift", "web", 1.0),
            item("m-api", "metric_shift", "api", 1.0),
            item("m-thumbs", "metric_shift", "thumbs", 1.0),
            edge_item("e-api", "api", ["web"]),
            edges=[("web", "api"), ("api", "thumbs")],
        )
    ]
    suspects = rank(incident("web"), evidence)
    assert suspects[0].component == "api"
    assert "frontier" in suspects[0].breakdown


def test_one_callers_failing_calls_do_not_make_the_callee_the_culprit():
    # Only payments fails calling the database, right after payments' own config change:
    # its client or credentials, not the database, which serves everyone else.
    evidence = [
        metrics(
            item("m-payments", "metric_shift", "payments", 1.0),
            edge_item("e-db", "db", ["payments"]),
            edges=[("payments", "db"), ("ledger", "db")],
        ),
        Evidence(
            collector="k8s",
            status="ok",
            items=[item("config-payments", "config_change", "payments", 0.8)],
        ),
    ]
    suspects = rank(incident("payments"), evidence)
    assert suspects[0].component == "payments"
    assert "frontier" not in next(s for s in suspects if s.component == "db").breakdown


def test_failing_calls_to_a_callee_that_changed_point_at_the_callee():
    # ledger's calls to the database time out right after a NetworkPolicy on the database.
    evidence = [
        metrics(
            item("m-ledger", "metric_shift", "ledger", 1.0),
            edge_item("e-db", "db", ["ledger"]),
            edges=[("ledger", "db")],
        ),
        Evidence(
            collector="k8s",
            status="ok",
            items=[
                item("netpol-db", "config_change", "db", 0.7),
                item("logs-ledger", "log_pattern", "ledger", 0.65, "connection timeout expired"),
            ],
        ),
    ]
    without_policy = rank(incident("ledger"), evidence[:1])
    suspects = rank(incident("ledger"), evidence)
    assert without_policy[0].component == "ledger"
    assert suspects[0].component == "db"


def test_errors_that_spell_a_workload_with_underscores_still_name_it():
    evidence = [
        Evidence(
            collector="logs",
            status="ok",
            items=[
                item(
                    "l-db",
                    "log_pattern",
                    "orders-db",
                    0.7,
                    'FATAL: password authentication failed for user "warehouse_api"',
                ),
                item("r-wh", "rollout", "warehouse-api", 0.8),
                item("m-wh", "metric_shift", "warehouse-api", 0.9),
            ],
        )
    ]
    suspects = rank(incident("warehouse-api"), evidence)
    warehouse = next(s for s in suspects if s.component == "warehouse-api")
    assert suspects[0].component == "warehouse-api"
    assert "blamed" in warehouse.breakdown and "l-db" in warehouse.evidence_ids


def test_more_traffic_alone_does_not_corroborate_a_change():
    def score(kind: str) -> float:
        evidence = [
            Evidence(
                collector="k",
                status="ok",
                items=[item("r1", "rollout", "api", 0.8), item("m1", kind, "api", 0.7)],
            )
        ]
        return rank(incident("web"), evidence)[0].breakdown["change"]

    assert score("traffic_shift") == score("metric_shift") / 2


def hinted(id: str, kind: str, subject: str, score: float, hint: str) -> EvidenceItem:
    return EvidenceItem(id=id, kind=kind, summary=id, subject=subject, score=score, fault_hint=hint)


def kind_of(*items: EvidenceItem) -> str:
    suspects = rank(incident("api"), [Evidence(collector="k", status="ok", items=list(items))])
    return suspects[0].kind


def test_the_kind_names_the_mechanism_not_the_bare_rollout():
    rollout = hinted("r", "rollout", "api", 0.9, "bad_rollout")
    oom = hinted("p", "pod_state", "api", 0.6, "resource_exhaustion")
    crash = hinted("c", "pod_state", "api", 0.8, "crash_loop")
    config = hinted("cfg", "config_change", "api", 0.9, "config_change")
    dns = hinted("l", "log_pattern", "api", 0.5, "dns_failure")
    secret = hinted("s", "k8s_event", "api", 0.5, "secret_change")
    assert kind_of(rollout, oom) == "resource_exhaustion"
    assert kind_of(rollout, crash) == "bad_rollout"  # it crashes because of the rollout
    assert kind_of(crash) == "crash_loop"
    assert kind_of(config, dns) == "dns_failure"  # the config was the trigger, DNS what broke
    assert kind_of(config, secret) == "secret_change"
    assert kind_of(item("m", "metric_shift", "api", 0.9)) == "unknown"


def test_the_service_every_caller_waits_on_ranks_above_its_waiting_callers():
    # cart and orders both wait longer on tax (a slow link); tax's own handling time is calm,
    # the callers' latency is up only because they wait.
    evidence = [
        metrics(
            item("m-cart", "metric_shift", "cart", 1.0),
            item("m-orders", "metric_shift", "orders", 1.0),
            edge_item("e-tax", "tax", ["cart", "orders"], 0.9),
            edges=[("web", "cart"), ("web", "orders"), ("cart", "tax"), ("orders", "tax")],
        )
    ]
    suspects = rank(incident("web"), evidence)
    assert suspects[0].component == "tax"
    assert "callers_slowed" in suspects[0].breakdown
    for caller in ("cart", "orders"):
        assert next(s for s in suspects if s.component == caller).score < suspects[0].score


def test_one_callers_slow_calls_alone_do_not_blame_a_callee_others_reach_fine():
    # Only cart's calls to tax slowed; orders reaches tax as fast as ever: cart's side.
    evidence = [
        metrics(
            item("m-cart", "metric_shift", "cart", 1.0),
            edge_item("e-tax", "tax", ["cart"], 0.9),
            edges=[("web", "cart"), ("web", "orders"), ("cart", "tax"), ("orders", "tax")],
        )
    ]
    suspects = rank(incident("web"), evidence)
    assert suspects[0].component == "cart"
    assert "callers_slowed" not in next(s for s in suspects if s.component == "tax").breakdown


def test_a_slow_link_is_named_as_network_trouble():
    evidence = [
        metrics(
            item("m-cart", "metric_shift", "cart", 1.0),
            item("m-orders", "metric_shift", "orders", 1.0),
            edge_item("e-tax", "tax", ["cart", "orders"], 0.9).model_copy(
                update={"fault_hint": "network"}
            ),
            edges=[("cart", "tax"), ("orders", "tax")],
        )
    ]
    assert rank(incident("cart"), evidence)[0].kind == "network"


def test_an_oom_kill_outweighs_fresh_rollouts_of_a_whole_app_release():
    # Every workload rolled out in the same release (each rollout discounted by the collector
    # as one of many); only billing's containers are OOMKilled, its callers see 5xx.
    released = "rolled out with 4 others in 30 s: one release of the app"
    k8s = [
        item(f"rollout-{s}", "rollout", s, 0.9 * 0.35, f"{s} {released}")
        for s in ("web", "cart", "orders", "billing", "tax")
    ]
    oom = item("podstate-billing", "pod_state", "billing", 0.87, "2 pod(s) of billing in OOMKilled")
    k8s.append(oom.model_copy(update={"fault_hint": "resource_exhaustion"}))
    evidence = [
        Evidence(collector="k8s", status="ok", items=k8s),
        metrics(
            item("m-web", "metric_shift", "web", 1.0),
            item("m-orders", "metric_shift", "orders", 1.0),
            item("l-orders", "log_pattern", "orders", 0.7, "upstream billing returned 503"),
            edges=[("web", "cart"), ("web", "orders"), ("orders", "billing"), ("cart", "tax")],
        ),
    ]
    suspects = rank(incident("web"), evidence)
    assert suspects[0].component == "billing"
    assert suspects[0].kind == "resource_exhaustion"


def test_a_crash_looping_datastore_the_service_calls_is_its_dependencys_outage():
    """Its own pods say crash loop; to the alerting service it is a dependency that went down.
    A crash loop of the alerting service itself stays a crash loop."""
    items = [
        EvidenceItem(
            id="pod-db",
            kind="pod_state",
            summary="orders-db-0 in CrashLoopBackOff",
            subject="orders-db",
            score=0.8,
            fault_hint="crash_loop",
        ),
        item("m-cart", "metric_shift", "cart", 0.9),
    ]
    graph = [("cart", "orders-db")]
    evidence = [Evidence(collector="k8s", status="ok", items=items)]
    [db, *_] = rank(incident("cart"), evidence, graph)
    assert (db.component, db.kind) == ("orders-db", "dependency_failure")
    alone = [Evidence(collector="k8s", status="ok", items=[items[0]])]
    [itself] = rank(incident("orders-db"), alone, graph)
    assert itself.kind == "crash_loop"
