"""One side's summary of the realism report, and the comparison of two sides' summaries.

A summary is a JSON-ready dict whose keys are stable (``realism_report.FORMAT``): means and
sds over ROIs or images, the spread over exams (``realism_spread``), the CNR by speck size and
the marks per image; NaN becomes null. The pooled intensity histogram rides along under the
private key ``_histogram`` (for ``compare``) and ``public`` drops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mammocad.model import realism_spread, realism_stats
from mammocad.model.realism_measure import ImageMeasure


def _num(value: float | np.floating | None, digits: int = 4) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def summarise(label: str, source: str, measures: list[ImageMeasure]) -> dict[str, Any]:
    """One side's summary (the JSON schema's ``sets.<label>``); the layout and intensity figures
    carry their spread over images and exams (``realism_spread``)."""
    ok = [m for m in measures if m.histogram is not None]
    spread = realism_spread.side_spread([(m.study_uid, m.patient_id) for m in ok], [m.layout for m in ok],
                                        [m.histogram for m in ok], named=[m.named_exam for m in ok])
    exam_of = {id(m): k for m, k in zip(ok, spread["exam_of"], strict=True)}
    betas = [b for m in ok for b in m.spectrum.betas if np.isfinite(b)]
    nps = [v for m in ok for v in m.spectrum.nps_hf if np.isfinite(v)]
    fine = [v for m in ok for v in m.nps_fine if np.isfinite(v)]
    tissue = [v for m in ok for v in m.tissue_power if np.isfinite(v)]
    shaped = [m.curvature for m in ok if np.isfinite(m.curvature[0])]
    laid = [m.layout for m in ok if np.isfinite(m.layout[0])]
    hists = [m.histogram for m in ok if m.histogram is not None and m.histogram.sum() > 0]
    pooled = np.mean(hists, axis=0) if hists else np.zeros(realism_stats.HIST_BINS)
    centres = (np.arange(realism_stats.HIST_BINS) + 0.5) / realism_stats.HIST_BINS
    intensity: dict[str, Any] = {k: _num(v) for k, v in realism_stats.histogram_percentiles(pooled).items()}
    intensity["mean"] = _num(float((pooled * centres).sum())) if hists else None
    marks = [(m.marks, m.malignant_marks) for m in ok if m.marks is not None]
    rendered = [(m.rendered_marks, m.rendered_malignant_marks) for m in ok if m.rendered_marks is not None]
    return {
        "label": label, "source": source, "n_images": len(measures), "n_measured": len(ok),
        "failed": [{"path": m.path, "error": m.error} for m in measures if m.error],
        "beta": {**_mean_sd(betas, 4), "n_rois": len(betas),
                 "n_images_with_roi": sum(1 for m in ok if m.spectrum.n)},
        "nps_hf": {**_mean_sd(nps, 9), "n_rois": len(nps)},
        "nps_fine": {**_mean_sd(fine, 9), "n_rois": len(fine), "n_images": sum(1 for m in ok if m.nps_fine)},
        # Median too: a few ROIs across the pectoral edge or a dense/fatty border dominate the mean.
        "tissue_power": {**_mean_sd(tissue, 9), "median": _num(float(np.median(tissue)), 9) if tissue else None,
                         "n_rois": len(tissue)},
        "curvature": {"line_share": _mean_sd([c[0] for c in shaped], 4),
                      "blob_share": _mean_sd([c[1] for c in shaped], 4), "n_images": len(shaped)},
        "layout": {"patch_contrast": {**_mean_sd([c[0] for c in laid], 4), "ci95": spread["patch_contrast_ci95"]},
                   "rolloff_contrast": {**_mean_sd([c[1] for c in laid], 4), "ci95": spread["rolloff_contrast_ci95"]},
                   "n_images": len(laid)},
        "intensity": intensity,
        "intensity_spread": spread["intensity_spread"],
        "exams": spread["exams"],
        "cnr": _cnr_summary(ok),
        "marks": _marks_summary(marks),
        "marks_rendered": _marks_summary(rendered),
        "per_image": [_per_image(m, exam_of.get(id(m))) for m in measures],
        "_histogram": pooled,
    }


def _mean_sd(values: list[float], digits: int) -> dict[str, float | None]:
    return {"mean": _num(float(np.mean(values)), digits) if values else None,
            "sd": _num(float(np.std(values, ddof=1)), digits) if len(values) > 1 else None}


def _cnr_summary(ok: list[ImageMeasure]) -> dict[str, Any]:
    specks = [s for m in ok for s in m.speck_cnr]
    boxes = [b for m in ok for b in m.box_cnr]
    by_class: dict[str, Any] = {}
    for cls in sorted({c for c, _ in boxes}):
        values = np.array([v for c, v in boxes if c == cls and np.isfinite(v)])
        by_class[cls] = {"n": int(values.size), "cnr_median": _num(np.median(values) if values.size else None, 2)}
    rows = realism_stats.cnr_by_size([d for d, _ in specks], [c for _, c in specks]) if specks else []
    for row in rows:
        row["cnr_median"] = _num(row["cnr_median"], 2)  # type: ignore[arg-type]
        row["detectable_fraction"] = _num(row["detectable_fraction"], 3)  # type: ignore[arg-type]
    basis = "specks" if specks else "boxes" if boxes else None
    return {"basis": basis, "detectable_cnr": realism_stats.DETECTABLE_CNR, "by_size": rows, "boxes_by_class": by_class}


def _marks_summary(counts: Sequence[tuple[int | None, int | None]]) -> dict[str, Any] | None:
    """Summary of per-image (marks, malignant marks)."""
    if not counts:
        return None
    marks = np.array([c[0] for c in counts], dtype=np.float64)
    malignant = np.array([c[1] for c in counts], dtype=np.float64)
    return {"n_images": len(counts), "per_image_mean": _num(marks.mean(), 3), "per_image_max": int(marks.max()),
            "malignant_per_image_mean": _num(malignant.mean(), 3),
            "images_with_marks": int((marks > 0).sum())}


def _per_image(m: ImageMeasure, exam: int | None) -> dict[str, Any]:
    return {"path": m.path, "exam": exam, "n_rois": m.spectrum.n, "beta_mean": _num(m.spectrum.beta_mean, 3),
            "nps_hf_mean": _num(float(np.mean(m.spectrum.nps_hf)) if m.spectrum.nps_hf else None, 9),
            "nps_fine_mean": _num(float(np.mean(m.nps_fine)) if m.nps_fine else None, 9),
            "tissue_power_median": _num(float(np.median(m.tissue_power)) if m.tissue_power else None, 9),
            "line_share": _num(m.curvature[0]), "blob_share": _num(m.curvature[1]),
            "patch_contrast": _num(m.layout[0]), "rolloff_contrast": _num(m.layout[1]),
            "spacing_mm": _num(m.spacing_mm), "spacing_source": m.spacing_source, "marks": m.marks,
            "malignant_marks": m.malignant_marks, "mark_boxes": m.mark_boxes, "rendered_marks": m.rendered_marks,
            "rendered_malignant_marks": m.rendered_malignant_marks, "marks_picture": m.marks_picture,
            "rendered_marks_picture": m.rendered_marks_picture, "error": m.error}


def compare(synthetic: dict[str, Any], real: dict[str, Any]) -> dict[str, Any]:
    """Differences synthetic − real, and distances between the intensity distributions."""
    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 4)

    def ratio(key: str, stat: str = "mean", part: str | None = None) -> float | None:
        a, b = (synthetic[key][stat], real[key][stat]) if part is None else (
            synthetic[key][part][stat], real[key][part][stat])
        return round(a / b, 3) if a and b else None

    distances = realism_stats.histogram_distances(synthetic["_histogram"], real["_histogram"])
    return {"beta_difference": diff(synthetic["beta"]["mean"], real["beta"]["mean"]),
            "nps_hf_ratio": ratio("nps_hf"), "nps_fine_ratio": ratio("nps_fine"),
            "tissue_power_ratio": ratio("tissue_power", "median"),
            "line_share_difference": diff(synthetic["curvature"]["line_share"]["mean"],
                                          real["curvature"]["line_share"]["mean"]),
            "blob_share_difference": diff(synthetic["curvature"]["blob_share"]["mean"],
                                          real["curvature"]["blob_share"]["mean"]),
            "patch_contrast_ratio": ratio("layout", part="patch_contrast"),
            "rolloff_contrast_ratio": ratio("layout", part="rolloff_contrast"),
            "intensity_wasserstein": _num(distances["wasserstein"]), "intensity_ks": _num(distances["ks"])}


def public(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without private keys (the pooled histogram array)."""
    return {k: v for k, v in summary.items() if not k.startswith("_")}
