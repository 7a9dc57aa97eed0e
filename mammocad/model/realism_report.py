"""The realism report: one side's images → per-image statistics → one summary per side.

Every image is read once, standardised to 0.2 mm with the project's standardisation
(``crop_breast`` off: the mask is :func:`mammocad.model.realism.breast_mask`), measured, and
optionally shown to the detector (which standardises it its own way, as in production).
The summary is a JSON-ready dict whose keys are stable (``FORMAT``); NaN becomes null.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mammocad.logs import log_event
from mammocad.model import realism, realism_layout, realism_shape, realism_spread, realism_stats
from mammocad.model.realism_sources import RealismImage, is_raster
from mammocad.model.standardise import PreprocessSpec, Standardised, standardise, standardise_array

logger = logging.getLogger(__name__)

FORMAT = "mammocad-realism/1"


@dataclass
class ImageMeasure:
    """What one image contributed (``error`` set when it could not be measured)."""

    path: str
    spectrum: realism.SpectrumStats = field(default_factory=realism.SpectrumStats)
    #: Noise power in FINE_NPS_BAND at FINE_SPACING_MM, per ROI; empty when acquired coarser.
    nps_fine: tuple[float, ...] = ()
    #: Power in TISSUE_BAND of each 128-px ROI (tissue contrast at 2.5-5 mm periods).
    tissue_power: tuple[float, ...] = ()
    #: (line share, blob share) of the curvature energy (``realism_shape``): strands or clouds.
    curvature: tuple[float, float] = (float("nan"), float("nan"))
    #: (patch contrast, roll-off contrast) (``realism_layout``): where the dense tissue lies.
    layout: tuple[float, float] = (float("nan"), float("nan"))
    histogram: np.ndarray | None = None
    speck_cnr: list[tuple[float, float]] = field(default_factory=list)  # (diameter mm, CNR)
    box_cnr: list[tuple[str, float]] = field(default_factory=list)  # (class, CNR)
    spacing_mm: float | None = None
    spacing_source: str = ""
    marks: int | None = None
    malignant_marks: int | None = None
    #: The reported lesions' boxes (x1, y1, x2, y2, score) in original pixels: where the marks fell.
    mark_boxes: list[list[float]] = field(default_factory=list)
    #: Marks on the image rendered as a public film set (``Rendering``), when one was asked for.
    rendered_marks: int | None = None
    rendered_malignant_marks: int | None = None
    #: PNGs of the image (and its rendering) with the marks drawn, when pictures were asked for.
    marks_picture: str | None = None
    rendered_marks_picture: str | None = None
    error: str | None = None
    #: Which exam the image belongs to (``realism_spread.exam_groups``); identifiers, so kept out
    #: of the JSON (``per_image[].exam`` numbers the exams) and of reprs.
    study_uid: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)


@dataclass(frozen=True)
class Rendering:
    """Count marks a second time on each image as public film sets ship it (``film_rendering``).

    The node's path standardises a 0.05 mm scan with an anti-aliased resize; a set that was
    reduced to 0.2 mm by block means is sharper, and a detector can mark it several times as
    often (MODEL_CARD.md, "Experiments not shipped"), so the report shows both.
    """

    spacing_mm: float
    bits: int | None = None

    def __post_init__(self) -> None:
        if not self.spacing_mm > 0:
            raise ValueError(f"the rendering's spacing must be positive, got {self.spacing_mm}")
        if self.bits is not None and not 6 <= self.bits <= 16:
            raise ValueError(f"the rendering's bits must be 6..16, got {self.bits}")

    @classmethod
    def parse(cls, text: str) -> Rendering:
        """``"0.2"`` or ``"0.2:8"`` (spacing in mm, then bits)."""
        spacing, _, bits = text.partition(":")
        try:
            return cls(float(spacing), int(bits) if bits else None)
        except ValueError as exc:
            raise ValueError(f"a rendering is MM or MM:BITS, e.g. 0.2:8 (mini-MIAS); got {text!r}: {exc}") from exc

    def label(self) -> str:
        return f"{self.spacing_mm:g} mm" + (f", {self.bits} bits" if self.bits else "")

    def to_dict(self) -> dict[str, Any]:
        return {"spacing_mm": self.spacing_mm, "bits": self.bits}


def read_standardised(item: RealismImage, spec: PreprocessSpec) -> tuple[Standardised, Any]:
    """(standardised image, the DICOM data set or None for raster files)."""
    if is_raster(item.path):
        return standardise_array(_raster(item), laterality=item.laterality or "L", spacing_mm=item.pixel_spacing_mm,
                                 view=item.view, spec=spec), None
    import pydicom

    ds = pydicom.dcmread(item.path)
    return standardise(ds, spec), ds


def _raster(item: RealismImage) -> np.ndarray:
    from PIL import Image

    with Image.open(item.path) as im:
        return np.asarray(im)


def realism_spec(assumed_spacing_mm: float) -> PreprocessSpec:
    """How every realism statistic sees an image: at 0.2 mm, uncropped (the breast mask, not the
    detector's crop, picks the regions), ``assumed_spacing_mm`` where the header has no pixel size."""
    return PreprocessSpec(working_spacing_mm=realism.REALISM_SPACING_MM, crop_breast=False,
                          fallback_spacing_mm=assumed_spacing_mm, fallback_field_mm=0.0)


def measure_image(item: RealismImage, assumed_spacing_mm: float, detector: Any = None,
                  rendering: Rendering | None = None, picture: Path | None = None) -> ImageMeasure:
    """All statistics of one image; failures come back as ``error`` (one bad file is not fatal).

    detector: a :class:`mammocad.model.inference.Detector`, shown the image when it has no
    lesion; give it the same fallback spacing (:func:`with_fallback_spacing`). rendering: also
    show it the image rendered so (:func:`_count_rendered_marks`). picture: where to write a PNG
    of the marks (``marks_picture``; the rendering's gets ``-rendered`` added to its name).
    """
    spec = realism_spec(assumed_spacing_mm)
    out = ImageMeasure(path=str(item.path))
    try:
        std, ds = read_standardised(item, spec)
    except Exception as exc:  # not DICOM, undecodable pixels...: report it and go on
        out.error = f"{type(exc).__name__}: {exc}"
        log_event(logger, "realism_image_failed", logging.WARNING, path=str(item.path), error=out.error)
        return out
    if ds is not None:
        out.study_uid, out.patient_id = str(ds.get("StudyInstanceUID", "")), str(ds.get("PatientID", ""))
    image = std.image
    mask = realism.breast_mask(image, realism.REALISM_SPACING_MM)
    out.spectrum = realism.spectrum_stats(image, mask.usable)
    out.tissue_power = realism.tissue_power(image, mask.usable)
    out.curvature = realism_shape.curvature_shape(image, mask.usable)
    out.layout = realism_layout.layout_contrast(image, mask.breast, mask.usable)
    out.histogram = realism_stats.intensity_histogram(image, mask.usable)
    out.spacing_mm = float(std.meta["spacing_mm"][0])
    out.spacing_source = str(std.meta["spacing_source"])
    if out.spacing_mm <= realism.FINE_SPACING_MM + 1e-6:
        out.nps_fine = _fine_noise_power(item, ds, spec)
    _measure_cnr(out, item, std)
    if detector is not None and item.negative:
        _count_marks(out, item, ds, detector, assumed_spacing_mm, picture)
        if rendering is not None and out.error is None:
            _count_rendered_marks(out, ds, detector, rendering, picture)
    return out


def _fine_noise_power(item: RealismImage, ds: Any, spec: PreprocessSpec) -> tuple[float, ...]:
    """Per-ROI noise power in the fine band, the image standardised to 0.1 mm instead of 0.2 mm."""
    fine = dataclasses.replace(spec, working_spacing_mm=realism.FINE_SPACING_MM)
    std = standardise(ds, fine) if ds is not None else read_standardised(item, fine)[0]
    usable = realism.breast_mask(std.image, realism.FINE_SPACING_MM).usable
    return realism.spectrum_stats(std.image, usable, spacing_mm=realism.FINE_SPACING_MM,
                                  nps_band=realism.FINE_NPS_BAND).nps_hf


def _measure_cnr(out: ImageMeasure, item: RealismImage, std: Standardised) -> None:
    spacing = realism.REALISM_SPACING_MM
    if item.specks:
        centres = np.array([[x, y, x, y] for x, y, _ in item.specks], dtype=np.float64)
        model = std.transform.to_model(centres)
        for (_, _, d_mm), (mx, my, _, _) in zip(item.specks, model, strict=True):
            speck = realism_stats.Speck(x=float(mx), y=float(my), diameter_px=d_mm / spacing)
            out.speck_cnr.append((d_mm, realism_stats.speck_cnr(std.image, speck, spacing)))
    if item.boxes:
        boxes = std.transform.to_model(np.array(item.boxes, dtype=np.float64))
        for cls, box in zip(item.classes, boxes, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            out.box_cnr.append((cls, realism_stats.box_cnr(std.image, (x1, y1, x2, y2), spacing)))


def _count_marks(out: ImageMeasure, item: RealismImage, ds: Any, detector: Any, assumed_spacing_mm: float,
                 picture: Path | None = None) -> None:
    """Marks the detector reports at its shipped operating point (its own lesion score threshold).

    A DICOM image goes through ``analyze_dataset`` as in the node. A raster file (mini-MIAS
    PGM, PNG) goes through ``standardise_array``, the path ``evaluate`` takes for such sets:
    public film sets come as rasters, and their false marks are the ones to know.
    """
    if ds is not None:
        result = detector.analyze_dataset(ds)
        if result.error:
            out.error = f"detector: {result.error}"
            return
        lesions = result.lesions
    else:
        try:
            std = standardise_array(_raster(item), laterality=item.laterality or "L", view=item.view,
                                    spacing_mm=item.pixel_spacing_mm or assumed_spacing_mm, spec=detector.preprocess)
            lesions = detector.reported_lesions(std)
        except Exception as exc:  # as analyze_dataset: one bad image is reported, not fatal
            out.error = f"detector: {type(exc).__name__}: {exc}"
            return
    out.marks = len(lesions)
    out.malignant_marks = sum(1 for les in lesions if les.lesion_class.value == "malignant")
    out.mark_boxes = [[round(v, 1) for v in les.box] + [round(les.score, 3)] for les in lesions]
    if picture is not None:
        pixels = ds.pixel_array if ds is not None else _raster(item)
        out.marks_picture = _picture(out, picture, pixels, ds, lesions, detector)


def _picture(out: ImageMeasure, path: Path, pixels: np.ndarray, ds: Any, lesions: Sequence[Any],
             detector: Any) -> str | None:
    """Write the marks' picture; a failure to write is reported on the image, not fatal."""
    from mammocad.model.marks_picture import save_marks_picture

    malignant = sum(1 for les in lesions if les.lesion_class.value == "malignant")
    caption = (f"{len(lesions)} marks ({malignant} malignant) | {detector.model_name} {detector.model_version}"
               + (" | trained on synthetic data" if detector.synthetic_weights else "")
               + " | research use, not a diagnosis")
    monochrome1 = ds is not None and str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1"
    try:
        return str(save_marks_picture(path, pixels, lesions, monochrome1=monochrome1, caption=caption))
    except OSError as exc:
        out.error = f"marks picture {path}: {exc}"
        log_event(logger, "realism_picture_failed", logging.WARNING, path=str(path), error=str(exc))
        return None


def _count_rendered_marks(out: ImageMeasure, ds: Any, detector: Any, rendering: Rendering,
                          picture: Path | None = None) -> None:
    """Marks on the DICOM image as block means to about ``rendering.spacing_mm``, rounded to its bits.

    A raster file already is a rendering (that is how public film sets ship): its marks are
    the ones counted on it as it is.
    """
    if ds is None:
        out.rendered_marks, out.rendered_malignant_marks = out.marks, out.malignant_marks
        out.rendered_marks_picture = out.marks_picture
        return
    import copy

    from mammocad.model.readers.film_rendering import block_factor, render_coarser

    spacing = float(out.spacing_mm or rendering.spacing_mm)
    rendered = render_coarser(copy.deepcopy(ds), ds.pixel_array, block_factor(spacing, rendering.spacing_mm),
                              rendering.bits, spacing_mm=spacing)
    result = detector.analyze_dataset(rendered)
    if result.error:
        out.error = f"detector, rendered at {rendering.label()}: {result.error}"
        return
    out.rendered_marks = len(result.lesions)
    out.rendered_malignant_marks = sum(1 for les in result.lesions if les.lesion_class.value == "malignant")
    if picture is not None:
        out.rendered_marks_picture = _picture(out, picture.with_name(picture.stem + "-rendered.png"),
                                              rendered.pixel_array, rendered, result.lesions, detector)


def with_fallback_spacing(detector: Any, spacing_mm: float) -> Any:
    """The detector (a new object; the given one is untouched), analysing images without a
    pixel size at ``spacing_mm``.

    Its checkpoint's fallback is an estimate from the image's size (the longer side taken as
    ``fallback_field_mm``, 230 mm: 0.049 mm for the CBIS-DDSM scans); the report shows the
    detector each image at the spacing the user states for the archive, so the node's figures
    and the report's can differ by that estimate. Headers with a spacing win.
    """
    return detector.with_preprocess(fallback_spacing_mm=spacing_mm, fallback_field_mm=0.0)


def measure_set(items: Sequence[RealismImage], assumed_spacing_mm: float, *, detector: Any = None,
                rendering: Rendering | None = None, desc: str = "images", progress: bool = True,
                pictures: Path | None = None) -> list[ImageMeasure]:
    """Every image of one side; ``pictures``: a folder for the marks' PNGs, named
    ``<desc>-<number>-<file stem>.png`` so that two sides and equal file names never collide."""
    from tqdm import tqdm

    return [measure_image(item, assumed_spacing_mm, detector, rendering,
                          None if pictures is None else pictures / f"{desc}-{k:03d}-{Path(item.path).stem}.png")
            for k, item in enumerate(tqdm(items, desc=desc, unit="img", file=sys.stderr,
                                          disable=not progress or None), start=1)]


def _num(value: float | np.floating | None, digits: int = 4) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def summarise(label: str, source: str, measures: list[ImageMeasure]) -> dict[str, Any]:
    """One side's summary (the JSON schema's ``sets.<label>``); the layout and intensity figures
    carry their spread over images and exams (``realism_spread``)."""
    ok = [m for m in measures if m.histogram is not None]
    spread = realism_spread.side_spread([(m.study_uid, m.patient_id) for m in ok], [m.layout for m in ok],
                                        [m.histogram for m in ok])
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


def method() -> dict[str, Any]:
    """The fixed parameters of every figure (part of the JSON so a number is never orphaned)."""
    return {"spacing_mm": realism.REALISM_SPACING_MM, "roi_px": realism.ROI_PX,
            "beta_band_cycles_per_mm": list(realism.BETA_BAND), "nps_band_cycles_per_mm": list(realism.NPS_BAND),
            "nps_fine_band_cycles_per_mm": list(realism.FINE_NPS_BAND), "nps_fine_spacing_mm": realism.FINE_SPACING_MM,
            "tissue_band_cycles_per_mm": list(realism.TISSUE_BAND), "tissue_roi_px": realism.TISSUE_ROI_PX,
            "curvature_sigma_mm": realism_shape.CURVATURE_SIGMA_MM, "curvature_line_ratio": realism_shape.LINE_RATIO,
            "curvature_blob_ratio": realism_shape.BLOB_RATIO,
            "layout_sigma_mm": realism_layout.LAYOUT_SIGMA_MM, "layout_band_mm": realism_layout.BAND_MM,
            "layout_max_depth_mm": realism_layout.MAX_DEPTH_MM,
            "nps_units": "intensity^2 mm^2 on the standardised [0, 1] scale",
            "intensity_scale": "mammocad.model.standardise at 0.2 mm, inside the usable breast mask",
            "cnr": "(peak - ring median) / (1.4826 MAD of ring), see mammocad/model/realism_stats.py",
            "detectable_cnr": realism_stats.DETECTABLE_CNR, "bootstrap": realism_spread.method()}


def public(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without private keys (the pooled histogram array)."""
    return {k: v for k, v in summary.items() if not k.startswith("_")}
