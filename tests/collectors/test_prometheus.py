"""The metrics collector on the alerts' own expressions, through PrometheusSource, against a
real Prometheus backfilled with a known incident; and the PromQL helpers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import httpx
import pytest
from triage_lab.fakes.process import free_port
from triage_lab.fakes.prometheus import Prometheus

from collectors.contracts import Evidence, TimeWindow
from collectors.golden import REQUEST_LABELS
from collectors.metrics import MetricsCollector
from collectors.prometheus import expr_from_generator_url, rule_selectors, shift_score
from collectors.sources import PrometheusSource
from triage.models import AlertSnapshot, IncidentState

# Two hours of 1-minute samples ending a day ago; the incident starts half way through.
END = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
START = END - timedelta(hours=2)
ONSET = START + timedelta(hours=1)
WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=30), onset=ONSET, end=ONSET + timedelta(minutes=10)
)
JUMPING = 'checkout_error_ratio{service="checkoutservice"}'


def _openmetrics() -> str:
    lines = [
        "# HELP checkout_error_ratio Share of failed requests.",
        "# TYPE checkout_error_ratio gauge",
    ]
    minutes = int((END - START).total_seconds() // 60)
    for service in ("cartservice", "checkoutservice"):
        for i in range(minutes + 1):
            t = START + timedelta(minutes=i)
            value = 0.01 + 0.001 * math.sin(i * 1.7)  # a little deterministic noise
            if service == "checkoutservice" and t >= ONSET:
                value += 0.2
            lines.append(
                f'checkout_error_ratio{{service="{service}"}} {value:.6f} {t.timestamp():.0f}'
            )
    return "\n".join([*lines, "# EOF"])


@pytest.fixture(scope="module")
def prom() -> Iterator[Prometheus]:
    with Prometheus(_openmetrics()) as server:
        yield server


def incident(*exprs: str) -> IncidentState:
    alerts = {
        f"fp{n}": AlertSnapshot(
            status="firing",
            labels={"alertname": "HighErrorRate", "service": "checkoutservice"},
            starts_at=ONSET,
            generator_url=f"http://prometheus:9090/graph?g0.expr={quote_plus(e)}&g0.tab=1"
            if e
            else "",
        )
        for n, e in enumerate(exprs)
    }
    return IncidentState(
        incident_id="inc-test",
        group_key='{}:{alertname="HighErrorRate"}',
        status="firing",
        first_seen=ONSET,
        updated_at=ONSET,
        alerts=alerts,
    )


async def collect(url: str, state: IncidentState) -> Evidence:
    async with httpx.AsyncClient() as client:
        # No golden-signal templates: only what the alerts' links say.
        collector = MetricsCollector(PrometheusSource(url, client), step_s=60, selectors=())
        return await collector.collect(state, WINDOW)


@pytest.mark.slow
async def test_a_series_that_jumps_at_the_onset_scores_high_near_the_onset(prom: Prometheus):
    evidence = await collect(prom.url, incident(JUMPING))

    assert evidence.status == "ok", evidence.error
    [item] = evidence.items
    assert item.kind == "metric_shift"
    assert item.subject == "checkoutservice"
    assert item.score > 0.8
    assert item.timestamp is not None
    assert abs((item.timestamp - ONSET).total_seconds()) <= 120


@pytest.mark.slow
async def test_a_flat_series_is_not_evidence(prom: Prometheus):
    evidence = await collect(prom.url, incident('checkout_error_ratio{service="cartservice"}'))

    assert evidence.status == "no_data"
    assert evidence.error == "1 series, none moved at the onset"  # the draft says why
    assert evidence.items == []


@pytest.mark.slow
async def test_only_the_series_that_moved_of_a_query_is_an_item_with_a_stable_id(prom: Prometheus):
    state = incident("checkout_error_ratio")

    first = await collect(prom.url, state)
    second = await collect(prom.url, state)

    assert [i.subject for i in first.items] == ["checkoutservice"]
    assert first.items[0].score > 0.8
    assert [i.id for i in first.items] == [i.id for i in second.items]


@pytest.mark.slow
async def test_an_expression_matching_no_series_is_no_data(prom: Prometheus):
    evidence = await collect(prom.url, incident("metric_that_does_not_exist"))

    assert evidence.status == "no_data"
    assert evidence.items == []


@pytest.mark.slow
async def test_invalid_promql_is_reported_as_an_error(prom: Prometheus):
    evidence = await collect(prom.url, incident("rate(checkout_error_ratio[5m]"))

    assert evidence.status == "error"
    assert evidence.error is not None and "parse error" in evidence.error


async def test_unreachable_prometheus_is_reported_as_an_error():
    evidence = await collect(f"http://127.0.0.1:{free_port()}", incident(JUMPING))

    assert evidence.status == "error"
    assert evidence.error
    assert evidence.items == []


async def test_alerts_without_an_expression_give_no_data_without_querying():
    # The port is closed: had the collector queried anything, it would report an error.
    evidence = await collect(f"http://127.0.0.1:{free_port()}", incident(""))

    assert evidence.status == "no_data"
    assert evidence.items == []


@pytest.mark.parametrize(
    ("url", "expr"),
    [
        (
            "http://prom:9090/graph?g0.expr=sum%28rate%28http_requests_total%7Bcode%3D~%225..%22"
            "%7D%5B5m%5D%29%29+%3E+0.05&g0.tab=1",
            'sum(rate(http_requests_total{code=~"5.."}[5m])) > 0.05',
        ),
        ("http://prom:9090/graph?g0.tab=1", None),
        ("", None),
    ],
)
def test_expr_from_generator_url(url: str, expr: str | None):
    assert expr_from_generator_url(url) == expr


@pytest.mark.parametrize(
    ("rule", "selectors"),
    [
        ('service_error_ratio{service="cart"} > 0.05', ['service_error_ratio{service="cart"}']),
        (  # the ratio needs every status of the counter, once
            'sum(rate(http_requests_total{job="cart",code=~"5.."}[5m])) by (job)'
            ' / sum(rate(http_requests_total{job="cart"}[5m])) by (job) > 0.05',
            ['http_requests_total{job="cart"}'],
        ),
        (
            'histogram_quantile(0.99, sum by (le) (rate(http_server_duration_bucket{le!="+Inf",'
            'service_name="cart"}[5m]))) > 0.5 and on() up{job=~"a|b"} offset 5m',
            ['http_server_duration_bucket{service_name="cart"}', 'up{job=~"a|b"}'],
        ),
        ('{__name__=~"x|y", pod="p"}', ['{__name__=~"x|y",pod="p"}']),
        ("sum(rate(x[5m]", ["sum(rate(x[5m]"]),  # asked as it is: a Prometheus will say why
    ],
)
def test_rule_selectors_are_the_raw_series_a_rule_reads(rule: str, selectors: list[str]):
    assert rule_selectors(rule, REQUEST_LABELS | {"le"}) == selectors


def test_shift_score_is_zero_without_data_on_either_side():
    assert shift_score([], [1.0]) == (0.0, 0.0)
    assert shift_score([1.0], []) == (0.0, 0.0)


def test_shift_score_ignores_an_unchanged_series():
    z, score = shift_score([10.0, 10.2, 9.8, 10.1, 9.9], [10.0, 10.1, 9.9])
    assert abs(z) < 1
    assert score < 0.2


def test_shift_score_flags_jumps_and_drops_from_any_baseline():
    up_z, up = shift_score([10.0, 10.2, 9.8, 10.1, 9.9], [30.0, 31.0, 29.0])
    down_z, down = shift_score([10.0, 10.2, 9.8, 10.1, 9.9], [1.0, 1.2, 0.8])
    zero_z, from_zero = shift_score([0.0] * 10, [1.0, 1.0])
    assert up_z > 0 > down_z
    assert min(up, down, from_zero) > 0.9
    assert zero_z > 0


def test_shift_score_grows_with_the_size_of_the_shift():
    base = [10.0, 10.2, 9.8, 10.1, 9.9]
    scores = [shift_score(base, [10.0 + d])[1] for d in (0.5, 1, 2, 4)]
    assert scores == sorted(scores)
    assert scores[0] < scores[-1]
