"""Helpers for the results-builder tests: a realistic study plus detector results for it.

Kept out of conftest.py so other engineers' fixtures in tests/worker/ stay independent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from mammocad.model.results import (
    BreastRisk,
    ImageRef,
    ImageResult,
    Lesion,
    LesionClass,
    LesionType,
    StudyResult,
)
from tests.factories import make_four_view_study

MODEL_NAME = "mammocad-frcnn"
MODEL_VERSION = "0.3.0-test"


def image_ref(ds: Dataset) -> ImageRef:
    return ImageRef(
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        laterality=str(ds.get("ImageLaterality", "")),
        view=str(ds.get("ViewPosition", "")),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
    )


def lesions_for(ds: Dataset, n: int, seed: int = 0) -> tuple[Lesion, ...]:
    """``n`` boxes inside the image, alternating benign/malignant and cluster/individual."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = rng.integers(8, 30, size=2)
        x1 = float(rng.integers(0, int(ds.Columns) - w - 1))
        y1 = float(rng.integers(0, int(ds.Rows) - h - 1))
        malignant = i % 2 == 0
        out.append(Lesion(
            box=(x1, y1, x1 + float(w), y1 + float(h)),
            lesion_class=LesionClass.MALIGNANT if malignant else LesionClass.BENIGN,
            probability_malignant=round(float(rng.uniform(0.5, 0.99) if malignant else rng.uniform(0.01, 0.4)), 4),
            score=round(float(rng.uniform(0.3, 0.99)), 4),
            lesion_type=LesionType.CALCIFICATION_CLUSTER if i % 3 else LesionType.INDIVIDUAL_CALCIFICATION,
        ))
    return tuple(out)


def make_case(
    lesions_per_image: tuple[int, ...] = (1, 2, 0, 1),
    *,
    failed: tuple[int, ...] = (),
    photometric: str = "MONOCHROME2",
    synthetic: bool = True,
    study_uid: str | None = None,
    datasets: Sequence[Dataset] | None = None,
) -> tuple[StudyResult, dict[str, Dataset]]:
    """A four-view study and a StudyResult with the given lesion counts per image."""
    datasets = datasets or make_four_view_study(study_uid=study_uid, photometric=photometric)
    results = []
    for i, ds in enumerate(datasets):
        if i in failed:
            results.append(ImageResult(image=image_ref(ds), model_name=MODEL_NAME, model_version=MODEL_VERSION,
                                       device="cpu", error="RuntimeError: out of memory"))
        else:
            n = lesions_per_image[i] if i < len(lesions_per_image) else 0
            results.append(ImageResult(image=image_ref(ds), lesions=lesions_for(ds, n, seed=i),
                                       model_name=MODEL_NAME, model_version=MODEL_VERSION, device="cpu",
                                       seconds=1.5))
    breasts = []
    for lat in ("L", "R"):
        probs = [le.probability_malignant for r in results if r.image.laterality == lat for le in r.lesions]
        risk = max(probs, default=0.02)
        breasts.append(BreastRisk(laterality=lat, risk=risk, malignant=risk >= 0.5, threshold=0.5,
                                  n_images=sum(r.image.laterality == lat and r.analysed for r in results)))
    study = StudyResult(
        study_uid=str(datasets[0].StudyInstanceUID),
        images=tuple(results),
        breasts=tuple(breasts),
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        synthetic_weights=synthetic,
    )
    return study, {str(ds.SOPInstanceUID): ds for ds in datasets}


#: Every SR file the results tests write; PixelMed validates them all at the end of the
#: session in one JVM (conftest.py), so no SR the suite produces goes unchecked.
WRITTEN_SRS: list[Path] = []


def write_all(datasets: list[Dataset], folder: Path) -> list[Path]:
    """Write each output as a Part 10 file (as the outbox will) and return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        path = folder / f"{i:03d}_{ds.Modality}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        if ds.Modality == "SR":
            WRITTEN_SRS.append(path)
    return paths


def resolve(sr: Dataset, position: list[int] | tuple[int, ...]) -> Dataset:
    """The content item at a by-reference position ([1, 2, 3] = root's 2nd child's 3rd child)."""
    item = sr
    for k in list(position)[1:]:
        item = item.ContentSequence[int(k) - 1]
    return item


def content_items(ds: Dataset, position: tuple[int, ...] = (1,)) -> Iterator[tuple[tuple[int, ...], Dataset]]:
    """Every SR content item below ``ds`` with its position (root = (1,))."""
    for i, item in enumerate(ds.get("ContentSequence", []), 1):
        pos = (*position, i)
        yield pos, item
        yield from content_items(item, pos)


def concept(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeValue) if seq else ""
