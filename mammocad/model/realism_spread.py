"""How far a side's figures would move with other exams: per-image sd and a bootstrap over exams.

The realism report sets one figure per side beside the other's: the mean over images of the
patch and roll-off contrast, percentiles of the pooled intensity histogram. On a handful of
exams that figure is mostly the exams drawn: the 8 CBIS-DDSM films are two exams whose own
roll-off contrasts are 0.109 and 0.142, and two-exam draws of one synthetic set range
0.081-0.142 (docs/DATASETS.md, "Roll-off"), so a 0.76x ratio on 2 exams says nothing about the
generator. Each figure therefore comes with

- ``sd``: its spread over images (per image: the image's own value, or its own percentile);
- ``ci95``: a percentile bootstrap interval over *exams*: exams drawn with replacement, as many
  as the side holds, the figure recomputed on their images exactly as the report computes it
  (mean over images, or percentiles of the equally weighted pooled histogram). Views of one
  exam share the breast, the exposure and the film: they are not independent samples, so
  images are never resampled one by one. Two sides whose intervals overlap do not differ by
  more than their exams do. With one exam there is nothing to resample: ``ci95`` is null.

Deterministic: the draws come from a fixed seed and depend only on the number of exams.

An exam is the images sharing a StudyInstanceUID. Where every study holds one image (the
CBIS-DDSM files: each view has its own study) the images are grouped by patient instead, and
CBIS-DDSM's PatientID names the view too (``Mass-Test_P_00173_LEFT_CC``): its patient is
``P_00173``. Raster files have no header: they are grouped by the patient their source names
(``realism_sources``: the reader's patient, or mini-MIAS's file pairs, mdb001 and mdb002 being
one woman's). Where nothing names an exam each image is one, ``grouped_by`` says so
(``PER_IMAGE``), and the interval is too narrow wherever views share an exam.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bootstrap replicates: the interval's ends move by well under 0.001 between seeds at this count.
BOOTSTRAP_REPLICATES = 2000
#: Fixed, so that one input always gives one report.
BOOTSTRAP_SEED = 20261206
#: Central coverage of the interval.
INTERVAL = 0.95
#: Intensity percentiles that get a spread (the table's p5 / p50 / p95).
SPREAD_PERCENTILES = (5, 50, 95)
#: ``grouped_by`` of images that no header or source groups: each its own exam.
PER_IMAGE = "image (no exam named)"
#: ``grouped_by`` of raster files grouped by the patient their source names.
BY_SOURCE = "patient named by the source"

# CBIS-DDSM: "<Calc|Mass>-<Training|Test>_P_<number>_<LEFT|RIGHT>_<CC|MLO>" (crops and ROIs add "_<n>").
_CBIS_PATIENT = re.compile(r"^(?:(?:Calc|Mass)-(?:Training|Test)_)?(P_\d+)_(?:LEFT|RIGHT)_(?:CC|MLO)(?:_\d+)?$")


def patient_key(patient_id: str) -> str:
    """The patient a PatientID names: CBIS-DDSM's ``Mass-Test_P_00173_LEFT_CC`` is ``P_00173``
    (its Calc and Mass sets name one patient's exam alike); any other ID is itself."""
    found = _CBIS_PATIENT.match(patient_id.strip())
    return found.group(1) if found else patient_id.strip()


@dataclass(frozen=True)
class ExamGroups:
    """Which exam each image belongs to.

    index: per image, its exam's number (0-based, in order of first appearance).
    grouped_by: "StudyInstanceUID", "PatientID", ``BY_SOURCE`` (raster files) or ``PER_IMAGE``
    (no identifier: an exam per image).
    """

    index: tuple[int, ...]
    grouped_by: str

    @property
    def n(self) -> int:
        return max(self.index) + 1 if self.index else 0


def exam_groups(ids: Sequence[tuple[str, str]], named: Sequence[str] | None = None) -> ExamGroups:
    """Exams of images given as (StudyInstanceUID, PatientID) each, "" where unknown; ``named``:
    per image, the exam its source names where it has no header (raster files), "" elsewhere.

    By study when some study holds more than one image; else by patient (``patient_key``)
    when the images carry a PatientID; else by the source's names; else one exam per image.
    An image without the chosen identifier is an exam of its own.
    """
    named = list(named) if named is not None else ["" for _ in ids]
    if len(named) != len(ids):
        raise ValueError(f"one named exam per image is needed: {len(named)} for {len(ids)} images")
    studies = [s for s, _ in ids if s]
    if len(set(studies)) < len(studies):
        basis, keys = "StudyInstanceUID", [s for s, _ in ids]
    elif any(p for _, p in ids):
        basis, keys = "PatientID", [patient_key(p) if p else "" for _, p in ids]
    elif any(named):
        basis, keys = BY_SOURCE, named
    else:
        basis, keys = PER_IMAGE, ["" for _ in ids]
    numbers: dict[str, int] = {}
    index = []
    for k, key in enumerate(keys):
        index.append(numbers.setdefault(key or f"\0image {k}", len(numbers)))
    return ExamGroups(index=tuple(index), grouped_by=basis)


def exam_draws(n_exams: int, replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(replicates, n_exams) counts: how often each exam is drawn in each bootstrap replicate
    (``n_exams`` draws with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_exams, np.full(n_exams, 1.0 / n_exams), size=replicates)


def _interval(replicates: np.ndarray) -> list[float] | None:
    finite = replicates[np.isfinite(replicates)]
    if not finite.size:
        return None
    tail = (1.0 - INTERVAL) / 2.0
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return [float(lo), float(hi)]


def mean_spread(values: Sequence[float], groups: ExamGroups) -> dict[str, object]:
    """Spread of the mean over images of ``values`` (one per image, NaN where not measured,
    left out as the report leaves it out): ``sd`` over images, ``ci95`` over exams."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (len(groups.index),):
        raise ValueError(f"one value per image is needed: {v.shape[0]} values for {len(groups.index)} images")
    ok = np.isfinite(v)
    sd = float(np.std(v[ok], ddof=1)) if ok.sum() > 1 else None
    if groups.n < 2 or not ok.any():
        return {"sd": sd, "ci95": None}
    weights = exam_draws(groups.n)[:, np.asarray(groups.index)[ok]].astype(np.float64)
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(total > 0, weights @ v[ok] / total, np.nan)  # a draw of exams without a value: none
    return {"sd": sd, "ci95": _interval(means)}


def _pooled_percentiles(pooled: np.ndarray, percentile: float) -> np.ndarray:
    """Per row of ``pooled`` (unnormalised histograms over [0, 1]), the percentile's bin centre,
    as ``realism_stats.histogram_percentiles`` reads one histogram."""
    cdf = np.cumsum(pooled, axis=1)
    total = cdf[:, -1:]
    bins = pooled.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        index = (cdf / total < percentile / 100.0).sum(axis=1)
    centres = (np.minimum(index, bins - 1) + 0.5) / bins
    return np.where(total[:, 0] > 0, centres, np.nan)


def percentile_spread(hists: Sequence[np.ndarray | None], groups: ExamGroups,
                      percentiles: tuple[int, ...] = SPREAD_PERCENTILES) -> dict[str, dict[str, object]]:
    """Spread of the pooled intensity percentiles (each image's normalised histogram weighing
    the same, as the report pools them); ``hists``: one per image, None or empty where not
    measured. ``sd``: of the images' own percentiles; ``ci95``: over exams."""
    if len(hists) != len(groups.index):
        raise ValueError(f"one histogram per image is needed: {len(hists)} for {len(groups.index)} images")
    kept = [k for k, h in enumerate(hists) if h is not None and float(np.sum(h)) > 0]
    out: dict[str, dict[str, object]] = {}
    if not kept:
        return {f"p{p}": {"sd": None, "ci95": None} for p in percentiles}
    own = np.stack([hists[k] for k in kept]).astype(np.float64)  # type: ignore[misc]
    own /= own.sum(axis=1, keepdims=True)
    pooled = None
    if groups.n >= 2:
        weights = exam_draws(groups.n)[:, np.asarray(groups.index)[kept]].astype(np.float64)
        pooled = weights @ own
    for p in percentiles:
        per_image = _pooled_percentiles(own, p)
        out[f"p{p}"] = {"sd": float(np.std(per_image, ddof=1)) if len(kept) > 1 else None,
                        "ci95": None if pooled is None else _interval(_pooled_percentiles(pooled, p))}
    return out


def side_spread(ids: Sequence[tuple[str, str]], layouts: Sequence[tuple[float, float]],
                hists: Sequence[np.ndarray | None], named: Sequence[str] | None = None) -> dict[str, Any]:
    """What the realism report adds to one side, JSON-ready (4 decimals, NaN as null), from its
    measured images' (StudyInstanceUID, PatientID), (patch, roll-off contrast), histograms and
    exams named by the source (``exam_groups``): ``exams`` (n, grouped_by), the layout means'
    ``*_ci95``, ``intensity_spread`` (sd and ci95 of p5/p50/p95) and ``exam_of`` (each image's
    exam, numbered from 1)."""
    groups = exam_groups(ids, named)
    patch = mean_spread([v[0] for v in layouts], groups)
    rolloff = mean_spread([v[1] for v in layouts], groups)
    intensity = percentile_spread(hists, groups)
    return {"exams": {"n": groups.n, "grouped_by": groups.grouped_by},
            "patch_contrast_ci95": _rounded(patch["ci95"]), "rolloff_contrast_ci95": _rounded(rolloff["ci95"]),
            "intensity_spread": {k: {"sd": _rounded(v["sd"]), "ci95": _rounded(v["ci95"])} for k, v in intensity.items()},
            "exam_of": [k + 1 for k in groups.index]}


def _rounded(value: Any) -> Any:
    """4 decimals; lists element-wise; None, NaN and infinities as None."""
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def method() -> dict[str, object]:
    """The bootstrap's fixed parameters, for the report's ``method``."""
    return {"replicates": BOOTSTRAP_REPLICATES, "seed": BOOTSTRAP_SEED, "interval": INTERVAL,
            "unit": "exam: images sharing a StudyInstanceUID; by patient (PatientID, CBIS-DDSM's view suffix "
                    "dropped) where every study holds one image; raster files by the patient their source names "
                    "(reader, mini-MIAS file pairs), else an exam each",
            "intensity_percentiles": [f"p{p}" for p in SPREAD_PERCENTILES]}


__all__ = ["BOOTSTRAP_REPLICATES", "BOOTSTRAP_SEED", "BY_SOURCE", "INTERVAL", "PER_IMAGE", "SPREAD_PERCENTILES",
           "ExamGroups", "exam_draws",
           "exam_groups", "mean_spread", "method", "patient_key", "percentile_spread", "side_spread"]
