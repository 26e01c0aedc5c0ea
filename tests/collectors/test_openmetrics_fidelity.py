"""The file backend reads OpenMetrics as Prometheus ingests it (promtool backfill): every sample
line is a point of the series its name and labels name, with its own timestamp, whatever the
family's type. Checked against a real Prometheus over a corpus of every family type with many
timestamped points per series."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from triage_lab.fakes.prometheus import Prometheus

from collectors.sources import FileMetricSource, PrometheusSource, Series, parse_openmetrics

T0 = 1_700_000_000  # Unix seconds; the fake Prometheus keeps any age (100y retention)
POINTS = 30
STEP_S = 15

# Label values Prometheus unescapes (\\, \", \n) and one it keeps as written (\t).
ESCAPED = r"a\\b \"quoted\" line\nbreak tab\t"
UNESCAPED = 'a\\b "quoted" line\nbreak tab\\t'
# The same value in a PromQL string, where \t would be a tab.
IN_PROMQL = UNESCAPED.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ts(i: int) -> str:
    # Whole seconds mostly, some with a fraction: Prometheus keeps milliseconds, truncated.
    return f"{T0 + i * STEP_S}.0005" if i % 7 == 3 else str(T0 + i * STEP_S)


def corpus() -> str:
    """Each family's points written timestamp by timestamp: all of a histogram's buckets, its
    _count and _sum at t, then all of them at t+15s, and so on."""
    lines: list[str] = []
    pods = ("web-1", ESCAPED)

    lines += ["# HELP requests Requests served.", "# TYPE requests counter"]
    for i in range(POINTS):
        for n, pod in enumerate(pods):
            lines.append(
                f'requests_total{{pod="{pod}",code="200"}} {100 * n + 7 * i} {_ts(i)}'
                f' # {{trace_id="t{i}"}} 0.5 {_ts(i)}'  # exemplars are no series
            )
            lines.append(f'requests_created{{pod="{pod}",code="200"}} {T0 - 3600} {_ts(i)}')

    lines += ["# TYPE temperature_celsius gauge", "# UNIT temperature_celsius celsius"]
    for i in range(POINTS):
        value = ("NaN", "+Inf", "-Inf")[i % 3] if i in (10, 11, 12) else f"{20 + 0.25 * i}"
        lines.append(f'temperature_celsius{{room="a",empty=""}} {value} {_ts(i)}')
        lines.append(f'temperature_celsius{{room="{ESCAPED}"}} {-1.5e-3 * i} {_ts(i)}')

    bounds = ("0.005", "0.1", "1", "2.5", "+Inf")
    lines.append("# TYPE latency_seconds histogram")
    for i in range(POINTS):
        for route in ("/", "/api"):
            cum = 0
            for k, le in enumerate(bounds):
                cum += i * (k + 1) + len(route)
                lines.append(f'latency_seconds_bucket{{route="{route}",le="{le}"}} {cum} {_ts(i)}')
            lines.append(f'latency_seconds_count{{route="{route}"}} {cum} {_ts(i)}')
            lines.append(f'latency_seconds_sum{{route="{route}"}} {0.37 * cum} {_ts(i)}')
            lines.append(f'latency_seconds_created{{route="{route}"}} {T0 - 60} {_ts(i)}')

    lines.append("# TYPE rpc_duration_seconds summary")
    for i in range(POINTS):
        for q in ("0.5", "0.9", "0.99"):
            lines.append(
                f'rpc_duration_seconds{{service="{ESCAPED}",quantile="{q}"}} '
                f"{float(q) * (1 + i / 10)} {_ts(i)}"
            )
        lines.append(f'rpc_duration_seconds_count{{service="{ESCAPED}"}} {3 * i} {_ts(i)}')
        lines.append(f'rpc_duration_seconds_sum{{service="{ESCAPED}"}} {1.25 * i} {_ts(i)}')

    # A series that stops early: how long its last point stays visible is Prometheus' lookback.
    lines.append("# TYPE short_lived gauge")
    for i in range(5):
        lines.append(f"short_lived 1 {T0 + i * STEP_S}")
    return "\n".join(lines) + "\n# EOF\n"


def _same(a: list[Series], b: list[Series]) -> bool:
    def norm(series: list[Series]) -> list[tuple[list[tuple[str, str]], list[tuple[float, str]]]]:
        return [
            (
                sorted(s.labels.items()),
                [(t, "NaN" if math.isnan(v) else repr(v)) for t, v in s.points],
            )
            for s in sorted(series, key=lambda s: sorted(s.labels.items()))
        ]

    return norm(a) == norm(b)


# -- without Prometheus ---------------------------------------------------------------------------


HISTOGRAM = """# TYPE h histogram
h_bucket{le="1"} 1 100
h_bucket{le="+Inf"} 2 100
h_count 2 100
h_sum 3.5 100
h_bucket{le="1"} 2 115
h_bucket{le="+Inf"} 4 115
h_count 4 115
h_sum 7 115
h_bucket{le="1"} 2 130
h_bucket{le="+Inf"} 5 130
h_count 5 130
h_sum 9.25 130
# EOF
"""

SUMMARY = """# TYPE s summary
s{quantile="0.5"} 0.1 100
s{quantile="0.9"} 0.4 100
s_count 10 100
s_sum 2 100
s_created 50 100
s{quantile="0.5"} 0.2 115
s{quantile="0.9"} 0.5 115
s_count 20 115
s_sum 4.5 115
s_created 50 115
# EOF
"""


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


async def _points(source: FileMetricSource, query: str) -> list[tuple[float, float]]:
    [series] = await source.query_range(query, _at(100), _at(130), STEP_S)
    return series.points


async def test_a_histogram_with_many_points_keeps_every_point():
    source = FileMetricSource(HISTOGRAM)
    assert await _points(source, 'h_bucket{le="+Inf"}') == [(100, 2), (115, 4), (130, 5)]
    assert await _points(source, 'h_bucket{le="1"}') == [(100, 1), (115, 2), (130, 2)]
    assert await _points(source, "h_count") == [(100, 2), (115, 4), (130, 5)]
    assert await _points(source, "h_sum") == [(100, 3.5), (115, 7), (130, 9.25)]


async def test_a_summary_with_many_points_keeps_every_sum_and_count():
    source = FileMetricSource(SUMMARY)
    assert await _points(source, "s_sum") == [(100, 2), (115, 4.5), (130, 4.5)]
    assert await _points(source, "s_count") == [(100, 10), (115, 20), (130, 20)]
    assert await _points(source, 's{quantile="0.9"}') == [(100, 0.4), (115, 0.5), (130, 0.5)]
    assert await _points(source, "s_created") == [(100, 50), (115, 50), (130, 50)]


def test_every_sample_line_is_a_point_of_its_own_series():
    series = parse_openmetrics(corpus())
    names = {dict(k)["__name__"] for k in series}
    assert names == {
        "requests_total",
        "requests_created",
        "temperature_celsius",
        "latency_seconds_bucket",
        "latency_seconds_count",
        "latency_seconds_sum",
        "latency_seconds_created",
        "rpc_duration_seconds",
        "rpc_duration_seconds_count",
        "rpc_duration_seconds_sum",
        "short_lived",
    }
    assert len(series) == 4 + 2 + 2 * 5 + 2 * 3 + 3 + 2 + 1
    assert all(
        len(points) == POINTS
        for k, points in series.items()
        if ("__name__", "short_lived") not in k
    )
    # Escapes undone as Prometheus undoes them; an empty label value is no label.
    assert (("__name__", "rpc_duration_seconds_sum"), ("service", UNESCAPED)) in series
    assert (("__name__", "temperature_celsius"), ("room", "a")) in series
    # Milliseconds, truncated.
    sums = series[(("__name__", "rpc_duration_seconds_sum"), ("service", UNESCAPED))]
    assert sums[3][0] == (T0 + 3 * STEP_S) * 1000


@pytest.mark.parametrize(
    "text",
    [
        "x 1\n",  # no # EOF
        "x 1 2\n\n# EOF\n",  # blank line
        "x{a=b} 1 2\n# EOF\n",  # unquoted label value
        "x 1_000 2\n# EOF\n",  # Go's parser takes no underscores
        "x 1 NaN\n# EOF\n",  # a timestamp must be finite
        'x{a="1",a="2"} 1 2\n# EOF\n',
        "# a comment\nx 1 2\n# EOF\n",
        'x 1 2 # {trace_id="a"} 1\n# EOF\n',  # exemplars only on _total and _bucket
    ],
)
def test_what_prometheus_rejects_is_rejected(text: str):
    with pytest.raises(ValueError):
        parse_openmetrics(text)


# -- against Prometheus ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prom() -> Iterator[Prometheus]:
    with Prometheus(corpus()) as server:
        yield server


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "start", "end", "step"),
    [
        ('{__name__=~".+"}', T0 - 30, T0 + POINTS * STEP_S + 600, STEP_S),
        # Steps between the points, a fractional start, a step that is not whole seconds.
        ('{__name__=~".+"}', T0 - 7.25, T0 + POINTS * STEP_S + 400, 7.5),
        ('{__name__=~"latency_seconds_.*",le!="+Inf"}', T0, T0 + 3600, 60),
        (f'rpc_duration_seconds{{service="{IN_PROMQL}",quantile=~"0.9.*"}}', T0, T0 + 900, 15),
        ('temperature_celsius{empty=""}', T0, T0 + 900, 15),
    ],
)
async def test_files_backend_returns_what_prometheus_returns(
    prom: Prometheus, query: str, start: float, end: float, step: float
):
    files = await FileMetricSource(corpus()).query_range(query, _at(start), _at(end), step)
    async with httpx.AsyncClient() as client:
        live = await PrometheusSource(prom.url, client).query_range(
            query, _at(start), _at(end), step
        )
    assert live, "Prometheus should hold these series"
    assert {tuple(sorted(s.labels.items())) for s in files} == {
        tuple(sorted(s.labels.items())) for s in live
    }
    assert _same(files, live)
