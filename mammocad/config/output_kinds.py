"""The kinds of result object mammocad builds and a destination can ask for."""

from __future__ import annotations

from enum import StrEnum


class OutputKind(StrEnum):
    """Result objects a destination can receive: the one list of output kinds.

    The config names them (``destinations.outputs``), the results builders build them
    (``mammocad.results.outputs``), the reports record them (``mammocad.spool.records``),
    and a built object's kind is always carried with it, never recovered from its SOP class.
    """

    MAMMO_CAD_SR = "mammo-cad-sr"
    TID1500_SR = "tid1500-sr"
    SECONDARY_CAPTURE = "sc"
    GSPS = "gsps"

    @property
    def is_report(self) -> bool:
        """A structured report: a new version cites the earlier one as its predecessor."""
        return self in (OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR)
