"""Evidence sources. Each one implements :class:`collectors.contracts.Collector`."""

from collectors.contracts import (
    AlertView,
    Collector,
    Evidence,
    EvidenceItem,
    IncidentView,
    TimeWindow,
)

__all__ = ["AlertView", "Collector", "Evidence", "EvidenceItem", "IncidentView", "TimeWindow"]
