"""mammocad: a DICOM node that gives every screening mammogram a second reader.

Not a medical device. Results are a research aid and are not a diagnosis.
"""

__version__ = "0.1.0"

#: Wording every human-readable output carries (SR text, overlays, CLI).
NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSTIC USE - research CAD output, not a diagnosis"
