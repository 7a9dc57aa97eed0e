"""The coded concept (value, coding scheme, meaning) that every mammocad output writes.

One type for the DICOM result objects (``mammocad.results.codes``) and the audit messages
(``mammocad.audit.codes``): both write the same triple, and both must refuse an empty field or a
meaning that the default character set would garble (pydicom's dictionary has ~80 non-ASCII
meanings; DCM 111034 holds a zero-width space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


@dataclass(frozen=True)
class Code:
    """A coded concept: ``Code("111036", "DCM", "Mammography CAD Report")``."""

    value: str
    scheme: str
    meaning: str

    def __post_init__(self) -> None:
        for name in ("value", "scheme", "meaning"):
            if not getattr(self, name).strip():
                raise ValueError(f"Code.{name} must not be empty, got {getattr(self, name)!r}")
        if not self.meaning.isascii():
            raise ValueError(f"code meaning must be ASCII, got {self.meaning!r} for {self.value}")

    def to_dataset(self) -> Dataset:
        from pydicom.dataset import Dataset  # here: pydicom loads numpy and Pillow (tests/test_cli_help.py)

        """A Code Sequence item (Basic Coded Entry Attributes)."""
        ds = Dataset()
        ds.CodeValue = self.value
        ds.CodingSchemeDesignator = self.scheme
        ds.CodeMeaning = self.meaning
        return ds

    def to_hd(self):  # type: ignore[no-untyped-def]
        """The same concept as a highdicom CodedConcept."""
        from highdicom.sr import CodedConcept

        return CodedConcept(self.value, self.scheme, self.meaning)
