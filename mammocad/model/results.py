"""Plain typed results of the detector: what the worker turns into DICOM.

Coordinates are always in the *original* image's pixel frame (column x, row y, 0-based,
pixel centres at integer positions), whatever standardisation the model applied. These
objects are JSON-serialisable (``to_dict`` / ``from_dict``) because Celery tasks pass
JSON only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mammocad.dicom.header import breast_view

if TYPE_CHECKING:  # pydicom loads numpy and Pillow: not at import (tests/test_cli_help.py)
    from pydicom.dataset import Dataset

#: A box is called malignant when probability_malignant >= the checkpoint's cut-off
#: (metadata["malignant_threshold"], chosen on validation lesions); this when it has none:
#: the larger of the two lesion-class probabilities.
DEFAULT_MALIGNANT_THRESHOLD = 0.5


class LesionClass(StrEnum):
    """Detector classes (label 1 and 2; 0 is background)."""

    BENIGN = "benign"
    MALIGNANT = "malignant"

    @property
    def label(self) -> int:
        return 1 if self is LesionClass.BENIGN else 2

    @classmethod
    def from_label(cls, label: int) -> LesionClass:
        if label == 1:
            return cls.BENIGN
        if label == 2:
            return cls.MALIGNANT
        raise ValueError(f"label must be 1 (benign) or 2 (malignant), got {label}")


class LesionType(StrEnum):
    """What the box holds: a cluster of calcifications or a single one (CID 6014)."""

    CALCIFICATION_CLUSTER = "calcification_cluster"  # SCT 129769006
    INDIVIDUAL_CALCIFICATION = "individual_calcification"  # SCT 129770007


@dataclass(frozen=True)
class Lesion:
    """One detected lesion.

    box: (x1, y1, x2, y2) in original pixel coordinates, x1 < x2, y1 < y2.
    probability: the model's probability that the lesion is malignant, in [0, 1].
    score: detection confidence of the box (class-agnostic), in [0, 1].
    """

    box: tuple[float, float, float, float]
    lesion_class: LesionClass
    probability_malignant: float
    score: float
    lesion_type: LesionType = LesionType.CALCIFICATION_CLUSTER

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if not (x1 < x2 and y1 < y2):
            raise ValueError(f"box must be x1 < x2 and y1 < y2, got {self.box}")
        for name in ("probability_malignant", "score"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["box"] = list(self.box)
        d["lesion_class"] = self.lesion_class.value
        d["lesion_type"] = self.lesion_type.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lesion:
        return cls(
            box=tuple(float(v) for v in d["box"]),  # type: ignore[arg-type]
            lesion_class=LesionClass(d["lesion_class"]),
            probability_malignant=float(d["probability_malignant"]),
            score=float(d["score"]),
            lesion_type=LesionType(d.get("lesion_type", LesionType.CALCIFICATION_CLUSTER.value)),
        )


@dataclass(frozen=True)
class ImageRef:
    """Which DICOM image a result belongs to, with what a report needs to cite it."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    laterality: str  # "L" or "R" ("" when unknown)
    view: str  # "CC", "MLO", ... ("" when unknown)
    rows: int
    columns: int

    @classmethod
    def from_header(cls, ds: Dataset) -> ImageRef:
        """What a report needs to cite the image, from its header alone (no pixel decoding).

        Laterality and view come from the one header rule (:func:`mammocad.dicom.header.breast_view`:
        Patient Orientation's breast when it names one), as the node's four-views rule and the
        standardiser read them, so an image that fails before its pixels are read is cited as the
        breast it would have been analysed as.
        """
        laterality, view = breast_view(ds)
        return cls(study_uid=str(ds.get("StudyInstanceUID", "")), series_uid=str(ds.get("SeriesInstanceUID", "")),
                   sop_instance_uid=str(ds.get("SOPInstanceUID", "")), sop_class_uid=str(ds.get("SOPClassUID", "")),
                   laterality=laterality, view=view, rows=int(ds.get("Rows", 0) or 0),
                   columns=int(ds.get("Columns", 0) or 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRef:
        return cls(**d)


@dataclass(frozen=True)
class ImageResult:
    """The outcome of analysing one image. ``error`` set means the detector failed on it."""

    image: ImageRef
    lesions: tuple[Lesion, ...] = ()
    model_name: str = ""
    model_version: str = ""
    device: str = ""
    seconds: float = 0.0
    error: str | None = None

    @property
    def analysed(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image.to_dict(),
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "device": self.device,
            "seconds": self.seconds,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageResult:
        return cls(
            image=ImageRef.from_dict(d["image"]),
            lesions=tuple(Lesion.from_dict(x) for x in d.get("lesions", [])),
            model_name=d.get("model_name", ""),
            model_version=d.get("model_version", ""),
            device=d.get("device", ""),
            seconds=float(d.get("seconds", 0.0)),
            error=d.get("error"),
        )


@dataclass(frozen=True)
class BreastRisk:
    """Malignancy risk of one breast aggregated over all its views."""

    laterality: str  # "L" or "R"
    risk: float  # in [0, 1]
    malignant: bool  # risk >= the checkpoint's operating threshold
    threshold: float
    n_images: int

    def __post_init__(self) -> None:
        if self.laterality not in ("L", "R"):
            raise ValueError(f"laterality must be L or R, got {self.laterality!r}")
        if not 0.0 <= self.risk <= 1.0:
            raise ValueError(f"risk must be in [0, 1], got {self.risk}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BreastRisk:
        return cls(**d)


@dataclass(frozen=True)
class StudyResult:
    """Everything the results builders need for one study."""

    study_uid: str
    images: tuple[ImageResult, ...]
    breasts: tuple[BreastRisk, ...]
    model_name: str
    model_version: str
    #: True when the weights were trained on synthetic data only (the demo weights).
    synthetic_weights: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: 0 for the first report on these images with this model; N for the N-th re-analysis
    #: an admin asked for (``mammocad studies reanalyse``): new result UIDs, an amended report.
    revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "revision": self.revision,
            "images": [r.to_dict() for r in self.images],
            "breasts": [b.to_dict() for b in self.breasts],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "synthetic_weights": self.synthetic_weights,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        return cls(
            study_uid=d["study_uid"],
            images=tuple(ImageResult.from_dict(x) for x in d["images"]),
            breasts=tuple(BreastRisk.from_dict(x) for x in d["breasts"]),
            model_name=d["model_name"],
            model_version=d["model_version"],
            synthetic_weights=bool(d.get("synthetic_weights", False)),
            extra=dict(d.get("extra", {})),
        )
