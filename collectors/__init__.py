"""Evidence sources. Each one implements :class:`collectors.base.Collector`."""

from collectors.contracts import Collector, Evidence, EvidenceItem, TimeWindow

__all__ = ["Collector", "Evidence", "EvidenceItem", "TimeWindow"]
