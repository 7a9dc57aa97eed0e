"""What a report needs from a checkpoint besides the network: names, thresholds, risk rule.

The results side of the worker (finalising a study, building the DICOM outputs) needs the
model's name and version and the breast-risk rule, never its weights. ``DetectorInfo``
carries exactly that, read from the checkpoint header, so a results worker does not hold
a detector in memory and a study's risks are computed by the same rule as ``Detector``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.model import risk
from mammocad.model.detector import DetectorSpec
from mammocad.model.results import DEFAULT_MALIGNANT_THRESHOLD, BreastRisk, ImageResult


@dataclass(frozen=True)
class DetectorInfo:
    """Identity and reporting rule of one checkpoint."""

    model_name: str
    model_version: str
    synthetic_weights: bool
    #: Breast-level operating threshold (chosen on validation data at training or by ``calibrate``).
    operating_threshold: float
    risk_method: str
    #: Boxes below this score are not reported and do not count towards breast risk.
    lesion_score_threshold: float
    #: A box is called malignant when its probability_malignant is at or above this
    #: (metadata["malignant_threshold"], chosen on validation lesions).
    malignant_threshold: float = DEFAULT_MALIGNANT_THRESHOLD

    @classmethod
    def from_header(cls, spec: DetectorSpec, metadata: dict[str, Any]) -> DetectorInfo:
        return cls(model_name=str(metadata["model_name"]), model_version=str(metadata["version"]),
                   synthetic_weights=bool(metadata["synthetic"]), operating_threshold=spec.operating_threshold,
                   risk_method=spec.risk_method,
                   lesion_score_threshold=float(metadata.get("lesion_score_threshold", spec.box_score_thresh)),
                   malignant_threshold=float(metadata.get("malignant_threshold", DEFAULT_MALIGNANT_THRESHOLD)))

    @classmethod
    def read(cls, weights: str | Path | None) -> DetectorInfo:
        """From a checkpoint path (None/"": the demo weights); raises CheckpointError."""
        from mammocad.model.checkpoint import read_header, resolve_weights

        spec, _, metadata, _ = read_header(resolve_weights(weights))
        return cls.from_header(spec, metadata)

    def breast_risks(self, results: Iterable[ImageResult]) -> tuple[BreastRisk, ...]:
        """Per-breast risk over all views at the operating threshold (reported lesions only)."""
        return risk.breast_risks(results, threshold=self.operating_threshold, method=self.risk_method,
                                 min_score=self.lesion_score_threshold)
