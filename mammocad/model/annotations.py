"""Ground truth as every reader, the synthetic generator, training and evaluation share it.

A data set on disk is a folder with a ``manifest.json`` (see :func:`save_manifest`) listing
:class:`AnnotatedImage` entries whose ``image_path`` is relative to that folder. Readers of
public formats (COCO, CBIS-DDSM, INbreast, VinDr-Mammo, mini-MIAS) return the same objects,
so training and evaluation never care where the data came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mammocad.model.results import LesionClass


@dataclass(frozen=True)
class AnnotatedLesion:
    """box: (x1, y1, x2, y2) in the original image's pixel coordinates."""

    box: tuple[float, float, float, float]
    lesion_class: LesionClass
    #: Free text from the source (BI-RADS morphology, distribution...), for reports only.
    description: str = ""

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if not (x1 < x2 and y1 < y2):
            raise ValueError(f"box must be x1 < x2 and y1 < y2, got {self.box}")

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "lesion_class": self.lesion_class.value,
                "description": self.description}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnnotatedLesion:
        return cls(box=tuple(float(v) for v in d["box"]),  # type: ignore[arg-type]
                   lesion_class=LesionClass(d["lesion_class"]),
                   description=d.get("description", ""))


@dataclass(frozen=True)
class AnnotatedImage:
    """One image with its lesions.

    image_path: DICOM, or PGM/PNG for formats without DICOM (mini-MIAS).
    breast_id: identifies the breast (patient + laterality) across its views, for
        breast-level metrics.
    breast_malignant: breast-level truth; None means "derive from lesions" (any malignant).
    pixel_spacing_mm: only for non-DICOM images (DICOM carries its own).
    """

    image_path: Path
    laterality: str
    view: str
    breast_id: str
    lesions: tuple[AnnotatedLesion, ...] = ()
    breast_malignant: bool | None = None
    pixel_spacing_mm: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.laterality not in ("L", "R"):
            raise ValueError(f"laterality must be L or R, got {self.laterality!r} for {self.image_path}")

    @property
    def malignant(self) -> bool:
        if self.breast_malignant is not None:
            return self.breast_malignant
        return any(les.lesion_class is LesionClass.MALIGNANT for les in self.lesions)

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        path = self.image_path
        if root is not None:
            try:
                path = path.relative_to(root)
            except ValueError:
                pass
        return {"image_path": str(path), "laterality": self.laterality, "view": self.view,
                "breast_id": self.breast_id, "lesions": [x.to_dict() for x in self.lesions],
                "breast_malignant": self.breast_malignant,
                "pixel_spacing_mm": self.pixel_spacing_mm, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any], root: Path | None = None) -> AnnotatedImage:
        path = Path(d["image_path"])
        if root is not None and not path.is_absolute():
            path = root / path
        return cls(image_path=path, laterality=d["laterality"], view=d.get("view", ""),
                   breast_id=d["breast_id"],
                   lesions=tuple(AnnotatedLesion.from_dict(x) for x in d.get("lesions", [])),
                   breast_malignant=d.get("breast_malignant"),
                   pixel_spacing_mm=d.get("pixel_spacing_mm"), extra=dict(d.get("extra", {})))


MANIFEST_NAME = "manifest.json"


def save_manifest(folder: Path, images: list[AnnotatedImage], info: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    payload = {"format": "mammocad-manifest/1", "info": info or {},
               "images": [img.to_dict(root=folder) for img in images]}
    path.write_text(json.dumps(payload, indent=1))
    return path


def load_manifest(folder_or_file: Path) -> list[AnnotatedImage]:
    path = folder_or_file / MANIFEST_NAME if folder_or_file.is_dir() else folder_or_file
    if not path.is_file():
        raise FileNotFoundError(f"{folder_or_file} holds no {MANIFEST_NAME}: give a `mammocad model synth` output "
                                "folder, or name a public data set's format (--data-format, or `format` in a "
                                "training config's [data])")
    try:
        payload = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a mammocad manifest (unreadable JSON: {exc})") from exc
    if payload.get("format") != "mammocad-manifest/1":
        raise ValueError(f"{path}: not a mammocad manifest (format {payload.get('format')!r})")
    return [AnnotatedImage.from_dict(d, root=path.parent) for d in payload["images"]]
