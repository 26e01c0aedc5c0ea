"""New version against old version of the same service at the same moment.

During a rolling update both versions serve the same traffic at the same time, so comparing
them minute by minute cancels load, time of day and trouble elsewhere. What separates a
defective rollout from a benign one that happened nearby:

- errors before latency: a new version that fails requests says more than one that is a little
  slower, and a fresh pod's cold start (JIT, empty caches) inflates its latency for its first
  minutes without making it fail; latency samples of a pod younger than ``COLD_START_S`` are
  left out, failures are not;
- effect size, not only significance: the gap is measured against how much the old version
  varied before the change (median/MAD) with a floor proportional to the level, and a latency
  gap must also be a real ratio (sub-millisecond jitter can be many MADs);
- sample counts: trust grows with the number of minutes both versions served together;
- a rollout whose new pods were measured and serve no worse than the old ones is benign-looking:
  it gets a ``version_same`` item that the ranking uses to discount the bare change.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from collectors.contracts import EvidenceItem
from collectors.sources import Series

# Seconds of a new pod's life whose latency is cold start rather than the version's own.
COLD_START_S = 120.0
# A latency gap must also be at least this ratio of new to old to count as a real effect.
MIN_LATENCY_RATIO = 1.5
# Minutes both versions served together before a comparison is trusted at all.
MIN_MATCHED = {"errors": 1, "latency": 2}
# Golden-signal families; errors/success rates come before latency.
_ERRORS = ("success", "error", "fail", "5xx", "availability")
_LATENCY = ("latency", "duration", "p99(", "p50(", "mean(")
_LOWER_IS_WORSE = ("success", "availability")
FAMILY_WEIGHT = {"errors": 1.0, "latency": 0.6}


def family(metric: str) -> str | None:
    name = metric.lower()
    if name.startswith("node_") or "_node" in name:
        return None
    if any(w in name for w in _ERRORS):
        return "errors"
    if any(w in name for w in _LATENCY):
        return "latency"
    return None


@dataclass
class Comparison:
    service: str
    metric: str
    family: str
    old: str
    new: str
    gap: float  # robust standardized difference, positive = new worse
    ratio: float  # new/old in the bad direction (>= 1 worse)
    matched: int  # minutes compared
    new_median: float
    old_median: float

    @property
    def worse(self) -> bool:
        if self.gap <= 2:
            return False
        return self.family == "errors" or self.ratio >= MIN_LATENCY_RATIO

    @property
    def support(self) -> float:
        return 1 - math.exp(-self.matched / 4)

    @property
    def score(self) -> float:
        effect = 1 - math.exp(-self.gap / 4)
        if self.family == "latency":
            # The ratio is the effect a user feels: 1.5x is little, 5x is a lot.
            effect *= min(1.0, math.log(self.ratio) / math.log(5))
        return effect * FAMILY_WEIGHT[self.family] * self.support


def _version_key(version: str) -> tuple[int, str]:
    digits = "".join(c for c in version if c.isdigit())
    return (int(digits) if digits else -1, version)


def compare(series: list[Series], onset: float) -> list[Comparison]:
    """Per service and golden metric, its newest version's pods against its oldest one's,
    matched by timestamp."""
    # (service, metric) -> version -> pod -> points
    groups: dict[tuple[str, str], dict[str, dict[str, list[tuple[float, float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for s in series:
        svc, version = s.labels.get("service"), s.labels.get("version")
        metric = s.labels.get("__name__", "")
        if not svc or not version or family(metric) is None:
            continue
        pod = s.labels.get("pod", "")
        groups[(svc, metric)][version][pod].extend((t, v) for t, v in s.points if math.isfinite(v))
    out = []
    for (svc, metric), by_version in sorted(groups.items()):
        if len(by_version) < 2:
            continue
        fam = family(metric)
        assert fam is not None
        versions = sorted(by_version, key=_version_key)
        old_pods, new_pods = by_version[versions[0]], by_version[versions[-1]]
        born = min(t for pts in new_pods.values() for t, _ in pts)
        new_at: dict[float, list[float]] = defaultdict(list)
        for pts in new_pods.values():
            start = min(t for t, _ in pts)
            for t, v in pts:
                if fam == "latency" and t - start < COLD_START_S:
                    continue  # a fresh pod's first minutes are slow whatever its code
                new_at[t].append(v)
        old_at: dict[float, list[float]] = defaultdict(list)
        for pts in old_pods.values():
            for t, v in pts:
                old_at[t].append(v)
        # The same service before the change; where both versions served all along, the old
        # version before the trouble.
        before = [v for t, vs in old_at.items() if t < born for v in vs]
        if len(before) < 5:
            before = [v for t, vs in old_at.items() if t < onset for v in vs]
        # While both served: the same minutes, the same load; once the trouble began.
        times = sorted(t for t in new_at if t in old_at and t >= max(born, onset))
        if len(before) < 5 or len(times) < MIN_MATCHED[fam]:
            continue
        direction = -1 if any(w in metric.lower() for w in _LOWER_IS_WORSE) else 1
        center = statistics.median(before)
        mad = statistics.median([abs(v - center) for v in before]) * 1.4826
        spread = max(mad, abs(center) * 0.05, 1e-9)
        diffs = [statistics.median(new_at[t]) - statistics.median(old_at[t]) for t in times]
        m_new = statistics.median([v for t in times for v in new_at[t]])
        m_old = statistics.median([v for t in times for v in old_at[t]])
        gap = statistics.median(diffs) / spread * direction
        if direction > 0:
            ratio = m_new / m_old if m_old > 0 else (math.inf if m_new > 0 else 1.0)
        else:
            ratio = m_old / m_new if m_new > 0 else (math.inf if m_old > 0 else 1.0)
        out.append(
            Comparison(
                svc, metric, fam, versions[0], versions[-1], gap, ratio, len(times), m_new, m_old
            )
        )
    return out


def version_items(series: list[Series], onset: float) -> list[EvidenceItem]:
    """``version_split`` where the new version serves worse than the old at the same moment;
    ``version_same`` where it was measured and serves no worse on any golden signal."""
    by_service: dict[str, list[Comparison]] = defaultdict(list)
    for c in compare(series, onset):
        by_service[c.service].append(c)
    items = []
    for svc, comps in sorted(by_service.items()):
        worse = [c for c in comps if c.worse]
        for c in worse:
            items.append(
                EvidenceItem(
                    id="version-" + hashlib.sha256(f"{svc}|{c.metric}".encode()).hexdigest()[:10],
                    kind="version_split",
                    summary=f"{svc} {c.new} pods are worse than {c.old} pods on {c.metric} at "
                    f"the same moments: median {c.new_median:.4g} vs {c.old_median:.4g} "
                    f"over {c.matched} min (robust gap {c.gap:.1f})",
                    subject=svc,
                    score=round(c.score, 4),
                    fault_hint="bad_rollout",
                    change=f"{svc} {c.old} -> {c.new}",
                )
            )
        if not worse:
            c = min(comps, key=lambda c: c.support)
            items.append(
                EvidenceItem(
                    id="version-same-" + hashlib.sha256(svc.encode()).hexdigest()[:10],
                    kind="version_same",
                    summary=f"{svc} {c.new} pods serve no worse than {c.old} pods at the same "
                    f"moments ({', '.join(sorted({x.metric for x in comps}))})",
                    subject=svc,
                    score=round(c.support, 4),
                    change=f"{svc} {c.old} -> {c.new}",
                )
            )
    return items
