"""Turn any mammogram into the one picture the detector was trained on.

Output: float32 [H, W] in [0, 1], bright = dense tissue, chest wall at column 0 (breast on
the left of the frame), cropped to the breast and resampled to ``working_spacing_mm`` so a
calcification has the same size in pixels whatever the vendor. Every step is recorded in a
:class:`~mammocad.model.frame.FrameTransform` so detections map back to the exact original
pixels.

Pipeline for DICOM: Modality LUT (rescale or LUT sequence) → VOI LUT (window or LUT
sequence; percentile window when absent or for For Processing images, after a log for the
latter) → MONOCHROME1 inversion → orientation (flips) → breast crop → resampling.
Orientation: an image whose Patient Orientation puts the anterior-posterior axis down the
columns (stored turned by 90 degrees) is transposed first (``stored_turned``); the chest wall's
side comes from the pixels when they are clear, else Patient Orientation's row direction, else
the laterality convention; the top of a CC from Patient
Orientation when it names a breast (``header.breast_from_orientation``: a conventional CC
layout, an oblique in any) and the pixels agree with its chest wall side, else Image Laterality. A header
whose Image Laterality names the other breast is logged once (``orientation_conflict``), and the
breast analysed (``meta["laterality"]``, which the results cite) is Patient Orientation's.
Multi-frame images: only the first frame is analysed (mammography is single-frame; a
multi-frame object here is usually a secondary capture or a tomosynthesis slab).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

from mammocad.dicom import header as dicom_header
from mammocad.logs import log_event
from mammocad.model.frame import FrameTransform
from mammocad.model.segment import BREAST_CUT, STRIP_MM, segment_breast

#: Pixel size assumed when a header gives none and the image's size says nothing better.
FALLBACK_SPACING_MM = 0.1
#: A header-less image (digitised film, mostly) is taken to span this many mm along its longer
#: side: screening films and detectors are 24 × 30 or 18 × 24 cm, and film digitisers scan them
#: whole (CBIS-DDSM: ~4700 px at 0.05 mm = 235 mm; mini-MIAS: 1024 px at 0.2 mm = 205 mm). A fixed
#: pixel size would be 2× wrong for both; this estimate is within ~15 %.
FALLBACK_FIELD_MM = 230.0
#: Estimated pixel sizes outside this range are clipped (no mammogram is finer or coarser).
ESTIMATED_SPACING_RANGE_MM = (0.03, 0.3)
#: A pixel size that makes an image span more than this (twice the largest 24 × 30 cm cassette or
#: detector), or a pixel finer than MIN_SPACING_MM, is a wrong header: converters write 1\\1 mm as a
#: placeholder, and a 4000-row film read at 1 mm would be resampled to 20,000 rows (GBs, minutes).
MAX_FIELD_MM = 600.0
MIN_SPACING_MM = 0.005

logger = logging.getLogger(__name__)


class StandardiseError(ValueError):
    """The image cannot be standardised; the message says which attribute is wrong."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How images are standardised; stored in every checkpoint so inference matches training.

    working_spacing_mm: pixel size of the model frame (0.15 mm keeps a 0.3 mm
        calcification at 2 pixels while a 2800×3500 field shrinks to ~1900×2300).
    fallback_spacing_mm: used when neither Imager Pixel Spacing nor Pixel Spacing exists and
        ``fallback_field_mm`` is 0.
    fallback_field_mm: without a spacing in the header, the pixel size is estimated so that the
        image's longer side spans this many mm (0: use ``fallback_spacing_mm``).
    crop_breast: crop to the largest bright component plus ``crop_margin_mm``.
    percentiles: the window used when the image carries no VOI (or is For Processing).
    """

    working_spacing_mm: float = 0.15
    crop_breast: bool = True
    fallback_spacing_mm: float = FALLBACK_SPACING_MM
    fallback_field_mm: float = FALLBACK_FIELD_MM
    crop_margin_mm: float = 5.0
    percentiles: tuple[float, float] = (0.5, 99.8)

    def __post_init__(self) -> None:
        if self.working_spacing_mm <= 0 or self.fallback_spacing_mm <= 0:
            raise ValueError("working_spacing_mm and fallback_spacing_mm must be positive")
        if self.fallback_field_mm < 0:
            raise ValueError(f"fallback_field_mm must be >= 0 (0: off), got {self.fallback_field_mm}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must be 0 <= low < high <= 100, got {self.percentiles}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        d = dict(d)
        if "percentiles" in d:
            d["percentiles"] = tuple(float(v) for v in d["percentiles"])
        return cls(**d)


@dataclass(frozen=True)
class Standardised:
    """image: float32 [H, W] in [0, 1], chest wall at x = 0, bright = dense."""

    image: np.ndarray
    transform: FrameTransform
    meta: dict[str, Any] = field(default_factory=dict)


def standardise(ds: Dataset, spec: PreprocessSpec | None = None, *,
                spacing_mm: float | None = None) -> Standardised:
    """Standardise a DICOM image (pixel data decoded by pydicom's plugins).

    spacing_mm: the pixel size a caller knows for an image whose header has none (a data set's
    documentation, e.g. DDSM's 0.05 mm), as the pixels' width (Pixel Aspect Ratio makes them
    taller); a spacing in the header always wins.
    """
    spec = spec or PreprocessSpec()
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise StandardiseError("the data set has no Pixel Data (7FE0,0010): nothing to analyse")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise StandardiseError(f"Samples per Pixel is {ds.SamplesPerPixel}: only grayscale images can be analysed")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise StandardiseError(f"Photometric Interpretation {photometric!r} is not MONOCHROME1/2")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        # Multi-frame: decode only the first frame (and leave ds's own pixel options alone).
        pixels = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array
    except Exception as exc:  # decoder missing, truncated data...
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise StandardiseError(f"cannot decode the pixel data (transfer syntax {ts}): {exc}") from exc
    if pixels.ndim == 3 and frames > 1:
        pixels = pixels[0]
    if pixels.ndim != 2:
        raise StandardiseError(f"expected a 2-D grayscale image, got pixel array shape {pixels.shape}")

    for_processing = "PROCESSING" in str(ds.get("PresentationIntentType", "")).upper() or str(
        ds.get("SOPClassUID", "")).endswith(".1.2.1")
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    _check_not_blank(values, f"after the Modality LUT ({_modality_source(ds)})")
    image, voi_source = _apply_voi(values, ds, for_processing, spec)
    if photometric == "MONOCHROME1":
        image = 1.0 - image

    laterality, lat_source = dicom_header.laterality_from_header(ds)
    view, view_source = dicom_header.view_from_header(ds)
    spacing, spacing_source = _spacing(ds, pixels.shape, spec, spacing_mm)
    row_dir, col_dir = dicom_header.orientation_from_header(ds)
    meta = {"laterality": laterality, "laterality_source": lat_source, "view": view, "view_source": view_source,
            "photometric": photometric, "voi": voi_source, "for_processing": for_processing,
            "frames": frames, "patient_orientation": [row_dir, col_dir]}
    std = _finish(image, laterality=laterality, view=view, row_dir=row_dir, col_dir=col_dir,
                  spacing=spacing, spacing_source=spacing_source, spec=spec, meta=meta)
    conflict = std.meta.get("orientation_conflict")
    if conflict:
        log_event(logger, "orientation_conflict", logging.WARNING, sop=str(ds.get("SOPInstanceUID", "")), view=view,
                  **conflict)
    return std


def _check_not_blank(values: np.ndarray, where: str) -> None:
    """Raise :class:`StandardiseError` for an image with one value everywhere, or with NaN/infinity.

    Why an error and not an empty result: a blank image (a failed export, a placeholder, Rescale
    Slope 0) would come back as a view analysed with no finding, and its breast's risk counts that
    view (``risk.py``: ``two_view`` averages the two best views, so a blank view halves a real
    finding's risk). NaN would pass every threshold test as False and give the same silent answer.
    """
    lo, hi = float(np.min(values)), float(np.max(values))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise StandardiseError(f"the pixel values {where} are not all finite numbers (NaN or infinity): "
                               "nothing to analyse; check the image's header at its source")
    if lo == hi:
        raise StandardiseError(f"every pixel is {lo:g} {where}: a blank image holds nothing to analyse; "
                               "check the image at its source and send it again")


def _modality_source(ds: Dataset) -> str:
    """How stored values became modality values, for error messages."""
    if ds.get("ModalityLUTSequence"):
        return "Modality LUT Sequence"
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return f"Rescale Slope {ds.get('RescaleSlope', 1)}, Rescale Intercept {ds.get('RescaleIntercept', 0)}"
    return "none: stored values"


def _spacing(ds: Dataset, shape: tuple[int, ...], spec: PreprocessSpec,
             known_mm: float | None) -> tuple[tuple[float, float], str]:
    """The header's pixel size; else the caller's; else one estimated from the image's size.

    A header's or caller's pixel size that no mammogram has is an error naming where it came from.
    Without a spacing in the header, Pixel Aspect Ratio (PS3.3 C.7.6.3.1.7: present exactly when
    the pixels are not square and no spacing says so) makes the estimated or fixed pixel that
    much taller than wide; read square, a scanned film's calcifications came out stretched.
    """
    spacing, source = dicom_header.spacing_from_header(ds, spec.fallback_spacing_mm)
    if source != "fallback":
        return _plausible(spacing, shape, source), source
    aspect = dicom_header.pixel_aspect_ratio(ds)
    if known_mm:  # the pixels' width, as the fallback's: Pixel Aspect Ratio makes them taller
        return _plausible((float(known_mm) * aspect, float(known_mm)), shape, "the given pixel size"), "given"
    if spec.fallback_field_mm > 0:
        lo, hi = ESTIMATED_SPACING_RANGE_MM
        width = float(np.clip(spec.fallback_field_mm / max(shape[0] * aspect, shape[1]), lo, hi))
        return (width * aspect, width), "estimated_from_size"
    return (spacing[0] * aspect, spacing[1]), source



def _plausible(spacing: tuple[float, float], shape: tuple[int, ...], source: str) -> tuple[float, float]:
    """``spacing`` when an image of ``shape`` (rows, cols) could be a mammogram at it; else a StandardiseError."""
    rows_mm, cols_mm = shape[0] * spacing[0], shape[1] * spacing[1]
    if min(spacing) < MIN_SPACING_MM or max(rows_mm, cols_mm) > MAX_FIELD_MM:
        raise StandardiseError(
            f"{source} {spacing[0]:g}\\{spacing[1]:g} mm makes this {shape[0]} x {shape[1]} image "
            f"{rows_mm:.0f} x {cols_mm:.0f} mm; no mammogram has pixels under {MIN_SPACING_MM:g} mm or spans over "
            f"{MAX_FIELD_MM:.0f} mm: correct the pixel size at the source")
    return spacing


def standardise_array(
    pixels: np.ndarray,
    *,
    laterality: str,
    spacing_mm: float | tuple[float, float] | None,
    photometric: str = "MONOCHROME2",
    view: str = "",
    spec: PreprocessSpec | None = None,
) -> Standardised:
    """Standardise a non-DICOM image (PNG/PGM of public data sets, synthetic arrays).

    The array holds stored values (any integer or float range); a percentile window maps it
    to [0, 1]. ``spacing_mm`` None uses ``spec.fallback_spacing_mm``.
    """
    spec = spec or PreprocessSpec()
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., :3].mean(axis=2)
    if arr.ndim != 2:
        raise StandardiseError(f"expected a 2-D grayscale image, got shape {arr.shape}")
    values = arr.astype(np.float64)
    _check_not_blank(values, "in the array")
    image = _percentile_window(values, spec)
    if photometric.upper() == "MONOCHROME1":
        image = 1.0 - image
    if spacing_mm is None:
        spacing, source = (spec.fallback_spacing_mm, spec.fallback_spacing_mm), "fallback"
    else:
        pair = spacing_mm if isinstance(spacing_mm, tuple) else (spacing_mm, spacing_mm)
        spacing, source = _plausible((float(pair[0]), float(pair[1])), arr.shape, "the given pixel size"), "given"
    meta: dict[str, Any] = {
        "laterality": laterality if laterality in ("L", "R") else "", "laterality_source": "given",
        "view": view, "view_source": "given", "photometric": photometric.upper(), "voi": "percentile",
        "for_processing": False, "frames": 1, "patient_orientation": ["", ""]}
    return _finish(image, laterality=meta["laterality"], view=view, row_dir="", col_dir="", spacing=spacing,
                   spacing_source=source, spec=spec, meta=meta)


def _apply_voi(values: np.ndarray, ds: Dataset, for_processing: bool, spec: PreprocessSpec) -> tuple[np.ndarray, str]:
    """Map modality values to [0, 1] with the image's own VOI when it has one."""
    if for_processing:
        # Raw detector signal is ~exponential in attenuation: log first, then a percentile window.
        return _percentile_window(np.log1p(np.maximum(values - values.min(), 0.0)), spec), "log+percentile"
    fallback = "percentile"
    if ds.get("VOILUTSequence"):
        lut_data = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
        # The LUT is indexed by (integer) modality values; pydicom warns on float input.
        indices = np.rint(values).astype(np.int64)
        out = np.asarray(apply_voi_lut(indices, ds, index=0, prefer_lut=True), dtype=np.float64)
        lo, hi = float(lut_data.min()), float(lut_data.max())
        if hi > lo and _has_contrast(out):
            return ((out - lo) / (hi - lo)).clip(0, 1), "VOILUTSequence"
        fallback = "percentile (the VOI LUT maps every pixel to one value)"
    if "WindowCenter" in ds and "WindowWidth" in ds:
        y_min, y_max = _window_output_range(ds)
        try:
            out = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=False), dtype=np.float64)
        except ValueError:  # a width PS3.3 C.11.2.1.2 forbids (under 1 for LINEAR, 0 for LINEAR_EXACT)
            return _percentile_window(values, spec), "percentile (the window's width is not allowed)"
        if y_max != y_min and _has_contrast(out):
            return ((out - y_min) / (y_max - y_min)).clip(0, 1), "window"
        fallback = "percentile (the window maps every pixel to one value)"
    return _percentile_window(values, spec), fallback


def _has_contrast(out: np.ndarray) -> bool:
    """The image's own VOI leaves more than one finite value.

    Why: a window lying wholly outside the image's values (a wrong Window Center, a window copied
    from another modality) makes a black or white frame, which the detector would report as a
    view without findings although the image itself is fine (``_check_not_blank``); the
    percentile window shows it.
    """
    lo, hi = float(np.min(out)), float(np.max(out))
    return math.isfinite(lo) and math.isfinite(hi) and hi > lo


def _window_output_range(ds: Dataset) -> tuple[float, float]:
    """What pydicom's windowing writes for values below and above the window (PS3.3 C.11.2.1.2:
    the stored range, rescaled).

    Kept in that order, not sorted: with a negative Rescale Slope the first is the larger, and
    sorting them turned the window's output upside down (dense tissue dark, the chest wall then
    found on the wrong side) while the percentile window of the same image was the right way up.
    """
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        y_min, y_max = 0.0, float(2**bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None and not ds.get("ModalityLUTSequence"):
        y_min, y_max = y_min * float(slope) + float(intercept), y_max * float(slope) + float(intercept)
    return y_min, y_max


def _percentile_window(values: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    lo, hi = np.percentile(sample, spec.percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return ((values - lo) / (hi - lo)).clip(0, 1)


def _finish(image: np.ndarray, *, laterality: str, view: str, row_dir: str, col_dir: str,
            spacing: tuple[float, float], spacing_source: str, spec: PreprocessSpec,
            meta: dict[str, Any]) -> Standardised:
    """Orientation, crop and resampling shared by DICOM and array sources."""
    rows, cols = image.shape
    transpose = stored_turned(row_dir, col_dir)
    if transpose:  # from here on the image, its directions and its pixel size are the transposed ones
        image, (row_dir, col_dir), spacing = image.T, (col_dir, row_dir), (spacing[1], spacing[0])
    chest_left, orient_source = _chest_wall_left(image, laterality, row_dir)
    if not laterality:
        # Without any header, the side the breast is attached to is the best evidence:
        # standard orientation puts a left breast's chest wall at column 0.
        laterality = "L" if chest_left else "R"
        meta["laterality"], meta["laterality_source"] = laterality, "pixels"
    flip_h = not chest_left
    oriented = _oriented_breast(laterality, view, row_dir, col_dir, chest_left, meta)
    flip_v = dicom_header.needs_vertical_flip(oriented, view, col_dir)
    if flip_h:
        image = image[:, ::-1]
    if flip_v:
        image = image[::-1, :]
    crop = _breast_box(image, spacing, spec) if spec.crop_breast else (0, 0, image.shape[1], image.shape[0])
    x0, y0, x1, y1 = crop
    cropped = np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32)
    out_rows = max(1, round((y1 - y0) * spacing[0] / spec.working_spacing_mm))
    out_cols = max(1, round((x1 - x0) * spacing[1] / spec.working_spacing_mm))
    resampled = _resize(cropped, out_rows, out_cols)
    transform = FrameTransform(original_shape=(rows, cols), flip_h=flip_h, flip_v=flip_v, crop=crop,
                               scale=(out_cols / (x1 - x0), out_rows / (y1 - y0)),
                               model_shape=(out_rows, out_cols), transpose=transpose)
    meta.update({"spacing_mm": [spacing[0], spacing[1]], "spacing_source": spacing_source,
                 "working_spacing_mm": spec.working_spacing_mm, "transpose": transpose, "flip_h": flip_h,
                 "flip_v": flip_v, "orientation_source": orient_source, "crop": list(crop)})
    return Standardised(image=resampled, transform=transform, meta=meta)


def stored_turned(row_dir: str, col_dir: str) -> bool:
    """Patient Orientation says the image is stored turned by 90 degrees: the anterior-posterior
    axis runs down the columns (column direction A or P, e.g. ``R\\P``, ``FR\\P``, ``L\\A``;
    the chest wall at the top or the bottom) instead of along the rows.

    Why from Patient Orientation: it is the attribute that gives the directions of the rows and
    columns (PS3.3 C.7.6.1.1.1), and mammograms are trained and analysed with the chest wall at a
    side. Transposed, such an image is a conventional one possibly mirrored, which the flips
    (pixels and the same Patient Orientation, its values swapped) then put right.
    """
    return any(c in col_dir for c in "AP") and not any(c in row_dir for c in "AP")


def _oriented_breast(laterality: str, view: str, row_dir: str, col_dir: str, chest_left: bool,
                     meta: dict[str, Any]) -> str:
    """The breast whose lateral side the vertical flip puts at the top of a CC.

    Patient Orientation wins over Image Laterality when it names a breast (``view``: an SIO or
    ISO lies in the other breast's oblique plane) and the image agrees with its chest wall side
    (``header.breast_from_orientation`` says which layouts name one, and why); a header
    that disagrees with itself that way is recorded in ``meta["orientation_conflict"]`` (logged
    by :func:`standardise`), and ``meta["laterality"]`` becomes the breast the image was analysed
    as: the results cite it (``inference.Detector.analyze_dataset``), so a report never names one
    breast for marks placed as on the other. A Patient Orientation the pixels contradict is no
    evidence here.
    """
    named = dicom_header.breast_from_orientation(row_dir, col_dir, view=view)
    if not named or (row_dir == "A") != chest_left:
        return laterality
    if laterality and laterality != named:
        meta["orientation_conflict"] = {"laterality": laterality, "laterality_source": meta.get("laterality_source", ""),
                                        "patient_orientation": f"{row_dir}\\{col_dir}", "used": named}
        meta["laterality"], meta["laterality_source"] = named, "PatientOrientation"
    return named


def _chest_wall_left(image: np.ndarray, laterality: str, row_dir: str) -> tuple[bool, str]:
    """Which side the breast is attached to: pixels when decisive, else the header.

    Pixels win when they are clear because the output promise is geometric (breast on the
    left) and headers are sometimes wrong (flipped acquisitions, digitiser conventions);
    a disagreement is recorded in the source string.
    """
    header_left, header_source = dicom_header.chest_wall_left_from_header(laterality, row_dir)
    band = max(1, image.shape[1] // 5)
    left, right = float(image[:, :band].mean()), float(image[:, -band:].mean())
    decisive = abs(left - right) >= 0.05 and max(left, right) >= 1.25 * min(left, right)
    if decisive:
        pixel_left = left > right
        if header_left is None or header_left == pixel_left:
            return pixel_left, "pixels" if header_left is None else f"pixels+{header_source}"
        return pixel_left, f"pixels (overrides {header_source})"
    if header_left is not None:
        return header_left, header_source
    return True, "default"


def _breast_box(image: np.ndarray, spacing: tuple[float, float], spec: PreprocessSpec) -> tuple[int, int, int, int]:
    """Bounding box of the breast (``segment.segment_breast`` on a small copy) + margin.

    The cut sits just above the background (5 % of the way to Otsu's threshold), with strips
    narrower than 4 mm opened away. Otsu's threshold itself picked the brightest object, not
    the breast: a film border along the bottom edge of a dim film (a 53-row strip kept, the
    breast thrown away) or the pectoral muscle of a DR MLO (the breast beyond it cut off): 5
    of 330 synth v2 clusters were cropped out of their images that way.
    """
    rows, cols = image.shape
    step = max(1, int(max(rows, cols) // 512))
    small = np.ascontiguousarray(image[::step, ::step], dtype=np.float32)
    _, breast = segment_breast(small, min(spacing) * step, STRIP_MM, cut=BREAST_CUT)
    if breast.sum() < 0.01 * breast.size:
        return (0, 0, cols, rows)
    ys, xs = np.nonzero(breast)
    my = int(round(spec.crop_margin_mm / spacing[0])) + step
    mx = int(round(spec.crop_margin_mm / spacing[1])) + step
    x0 = max(0, int(xs.min()) * step - mx)
    y0 = max(0, int(ys.min()) * step - my)
    x1 = min(cols, (int(xs.max()) + 1) * step + mx)
    y1 = min(rows, (int(ys.max()) + 1) * step + my)
    return (x0, y0, x1, y1)


def _resize(image: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """Half-pixel-aligned resize (antialiased when shrinking), matching FrameTransform."""
    if image.shape == (out_rows, out_cols):
        return image.astype(np.float32, copy=False)
    t = torch.from_numpy(image)[None, None]
    shrinking = out_rows < image.shape[0] or out_cols < image.shape[1]
    out = F.interpolate(t, size=(out_rows, out_cols), mode="bilinear", align_corners=False, antialias=shrinking)
    return out[0, 0].clamp_(0, 1).numpy()
