"""The alerting series around the onset as a PNG, rollouts and other changes marked: what people
look at first when a draft blames a change."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")  # no display in a service; must precede pyplot's import

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from triage.models import MetricSeries

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DAY_S = 86400.0  # matplotlib's time axis counts days since 1970


def _x(when: datetime | float) -> float:
    ts = when.timestamp() if isinstance(when, datetime) else when
    return ts / DAY_S


def _hhmm(x: float, _pos: int | None) -> str:
    return datetime.fromtimestamp(x * DAY_S, UTC).strftime("%H:%M")


def render_png(series: MetricSeries) -> bytes:
    """CPU-bound (tens of ms): call it off the event loop."""
    # Figure, not pyplot: no global state, safe from several threads at once.
    fig = Figure(figsize=(8, 3.2), dpi=100)
    ax = fig.add_subplot()
    times = [_x(t) for t, _ in series.points]
    ax.plot(times, [v for _, v in series.points], color="#1f77b4", linewidth=1.5)
    ax.axvline(
        _x(series.onset), color="#d62728", linestyle="--", linewidth=1.2, label="alert onset"
    )
    for n, change in enumerate(series.changes):
        ax.axvline(
            _x(change.at),
            color="#ff7f0e",
            linewidth=1.2,
            label="change" if n == 0 else None,
        )
        ax.annotate(
            change.label[:40],
            xy=(_x(change.at), 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="#ff7f0e",
        )
    ax.set_title(series.title[:90], fontsize=9)
    ax.xaxis.set_major_formatter(FuncFormatter(_hhmm))
    ax.set_xlabel("UTC", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
