"""Secondary Capture per analysed image: the mammogram as the PACS shows it, boxes burned in.

For PACS and viewers that show neither SR nor presentation states. The image is windowed
with its own VOI (first window, else its VOI LUT, else full range), MONOCHROME1 is
inverted so it looks as on the modality, then converted to RGB. Lesions are boxed
(malignant red, benign cyan) with their probability of cancer, and a banner on top names
the model, the breast risks and "NOT FOR DIAGNOSTIC USE".

Images wider or taller than ``MAX_SIDE`` pixels are reduced by the smallest integer factor
that fits (a box filter: cheap, and exact for the marks' geometry); boxes are scaled with
them. The pixels are then stored as JPEG baseline (``OutputContext.sc_jpeg_quality``, 4:2:2,
marked lossy): a full-field overlay is ~0.5 MB instead of ~7 MB of RGB in the spool, on the
network and in the PACS. ``results.sc_lossless`` stores JPEG-LS lossless instead (about
half the RGB size), quality 0 uncompressed; delivery decompresses for a PACS that refuses
the compressed syntax. The SC is a display aid labelled not for diagnostic use.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless

from mammocad.config.settings import OutputKind
from mammocad.model.results import ImageResult, LesionClass
from mammocad.results import codes as C
from mammocad.results.sanitize import copy_patient_study, first_number, patient_orientation
from mammocad.results.uids import OutputContext, set_common

KIND = OutputKind.SECONDARY_CAPTURE
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MAX_SIDE = 2048
MALIGNANT_RGB = (255, 32, 32)
BENIGN_RGB = (0, 200, 255)
BANNER_RGB = (255, 255, 0)
_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


@dataclass(frozen=True)
class Layout:
    """Where the source image lands in the SC: ``scale`` then shifted down by ``top`` rows."""

    scale: float
    top: int
    width: int
    height: int
    font_size: int

    def to_sc(self, x: float, y: float) -> tuple[float, float]:
        return x * self.scale, y * self.scale + self.top


def reduction(rows: int, columns: int) -> int:
    """Integer downscale factor so that neither side exceeds MAX_SIDE."""
    return max(1, -(-max(rows, columns) // MAX_SIDE))


def _scaled_width(rows: int, columns: int) -> int:
    return -(-columns // reduction(rows, columns))


def font_size_for(rows: int, columns: int) -> int:
    """Banner/label font size: about 45 characters across the (scaled) image."""
    return max(10, _scaled_width(rows, columns) // 45)


def layout(rows: int, columns: int, n_lines: int) -> Layout:
    """Geometry of the SC for a ``rows`` x ``columns`` image with ``n_lines`` banner lines."""
    k = reduction(rows, columns)
    width = _scaled_width(rows, columns)
    height = -(-rows // k)
    font_size = font_size_for(rows, columns)
    top = n_lines * (font_size + 4) + 6
    return Layout(1.0 / k, top, width, height + top, font_size)


def wrap(lines: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Break banner lines at spaces so none is wider than ``width`` pixels."""
    out: list[str] = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}".strip()
            if current and font.getlength(candidate) > width - 8:
                out.append(current)
                current = word
            else:
                current = candidate
        out.append(current)
    return out


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def display_gray(ds: Dataset) -> np.ndarray:
    """8-bit grey image as displayed: modality LUT, VOI window/LUT, MONOCHROME1 inverted.

    The whole chain maps one stored value to one grey level, so it is computed once per
    stored value present in the range (at most 65,536) and applied as a lookup table: a
    full-field mammogram costs one indexing pass instead of four float64 passes.
    """
    arr = ds.pixel_array
    if arr.ndim == 3:  # multi-frame: show the first frame
        arr = arr[0]
    if arr.dtype.kind not in "ui" or arr.dtype.itemsize > 2:
        return _grey_levels(arr, ds, arr)
    lo, hi = int(arr.min()), int(arr.max())
    if arr.dtype.kind == "u":
        offset = arr - arr.dtype.type(lo) if lo else arr  # stays unsigned: arr >= lo
    else:
        offset = arr.astype(np.int32) - lo
    values = np.arange(lo, hi + 1).astype(arr.dtype)
    return _grey_levels(values, ds, values[[0, -1]])[offset]


def _grey_levels(values: np.ndarray, ds: Dataset, present: np.ndarray) -> np.ndarray:
    """Display grey level (uint8) of each stored value in ``values``.

    ``present``: stored values whose display values set the full-range scaling used when
    the image has no window (the image's lowest and highest stored values; exact for the
    monotonic LUTs of real images).
    """
    out_values = apply_modality_lut(values, ds).astype(np.float64)
    center, width = first_number(ds, "WindowCenter"), first_number(ds, "WindowWidth")
    if center is not None and width is not None and width > 0:
        scaled = (out_values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5
    else:
        if "VOILUTSequence" in ds:
            out_values = apply_voi_lut(values, ds).astype(np.float64)
            ref = apply_voi_lut(present, ds).astype(np.float64)
        else:
            ref = apply_modality_lut(present, ds).astype(np.float64)
        lo, hi = float(ref.min()), float(ref.max())
        scaled = (out_values - lo) / max(hi - lo, 1.0)
    out = np.clip(scaled, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        out = 1.0 - out
    return np.round(out * 255.0).astype(np.uint8)


def banner_lines(result: ImageResult, ctx: OutputContext) -> list[str]:
    s = ctx.study
    lines = [f"NOT FOR DIAGNOSTIC USE - CAD {ctx.model_label}"]
    risks = [f"{'Right' if b.laterality == 'R' else 'Left'} breast risk {b.risk * 100:.0f}%"
             f"{' MALIGNANT' if b.malignant else ''}" for b in sorted(s.breasts, key=lambda b: b.laterality,
                                                                    reverse=True)]
    view = " ".join(v for v in (result.image.laterality, result.image.view) if v)
    lines.append(" | ".join([view or "image", *risks, f"{len(result.lesions)} lesion(s)"]))
    if s.synthetic_weights:
        lines.append("demo weights trained on synthetic data")
    return lines


def render(result: ImageResult, source: Dataset, ctx: OutputContext) -> tuple[Image.Image, Layout]:
    """The SC as an RGB image and the layout used."""
    rows, columns = int(source.Rows), int(source.Columns)
    font = _font(font_size_for(rows, columns))
    lines = wrap(banner_lines(result, ctx), font, _scaled_width(rows, columns))
    lay = layout(rows, columns, len(lines))
    gray = Image.fromarray(display_gray(source), mode="L")
    k = reduction(rows, columns)
    if k > 1:
        gray = gray.reduce(k)
    canvas = Image.new("RGB", (lay.width, lay.height), (0, 0, 0))
    canvas.paste(gray.convert("RGB"), (0, lay.top))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, 3 + i * (lay.font_size + 4)), line, fill=BANNER_RGB, font=font)
    line_w = max(2, lay.width // 400)
    for lesion in result.lesions:
        colour = MALIGNANT_RGB if lesion.lesion_class is LesionClass.MALIGNANT else BENIGN_RGB
        x1, y1 = lay.to_sc(lesion.box[0], lesion.box[1])
        x2, y2 = lay.to_sc(lesion.box[2], lesion.box[3])
        draw.rectangle((round(x1), round(y1), round(x2), round(y2)), outline=colour, width=line_w)
        label = f"{lesion.probability_malignant * 100:.0f}%"
        ty = y1 - lay.font_size - 2 if y1 - lay.font_size - 2 >= lay.top else y2 + 2
        draw.text((round(x1), round(ty)), label, fill=colour, font=font)
    return canvas, lay


def jpeg_baseline(image: Image.Image, quality: int) -> bytes:
    """One JPEG baseline frame, chroma halved horizontally (Photometric Interpretation YBR_FULL_422)."""
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, subsampling=1)
    return out.getvalue()


def _source_image_sequence(source: Dataset) -> list[Dataset]:
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    purpose = Dataset()
    purpose.CodeValue = "121322"
    purpose.CodingSchemeDesignator = "DCM"
    purpose.CodeMeaning = "Source image for image processing operation"
    ref.PurposeOfReferenceCodeSequence = [purpose]
    return [ref]


#: Hanging order of the screening views: instance numbers follow it (RCC, LCC, RMLO, LMLO).
VIEW_ORDER = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def instance_index(result: ImageResult, all_results: list[ImageResult]) -> int:
    """0-based instance position: screening views first in RCC, LCC, RMLO, LMLO order,
    other images after them in the study's order (stable across re-runs)."""
    key = (result.image.laterality, result.image.view)
    if key in VIEW_ORDER:
        return VIEW_ORDER.index(key)
    others = [r for r in all_results if (r.image.laterality, r.image.view) not in VIEW_ORDER]
    return len(VIEW_ORDER) + others.index(result)


def _positioning(ds: Dataset, result: ImageResult) -> None:
    """Laterality (General Series, one breast per SC series) and the view as SCT code.

    The view is written from the header reader's result, so a source's SRT or empty view
    sequences never reach the SC; View Position helps hanging protocols that read it.
    """
    lat = result.image.laterality
    ds.Laterality = lat if lat in ("L", "R") else None
    ds.BodyPartExamined = "BREAST"
    view = C.VIEWS.get(result.image.view)
    if view is not None:
        ds.ViewCodeSequence = [view.to_dataset()]
    if result.image.view in ("CC", "MLO", "ML", "LM", "XCCL", "XCCM", "FB", "SIO"):
        ds.ViewPosition = result.image.view


#: Image Pixel attributes (Type 1) without which the source's pixels cannot be decoded.
_PIXEL_DESCRIPTION = ("PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "PixelRepresentation",
                      "SamplesPerPixel")


def build_secondary_capture(result: ImageResult, source: Dataset, ctx: OutputContext, index: int) -> Dataset:
    """One colour Secondary Capture for an analysed image (needs the source's pixels).

    Modality MG and one series per breast (Laterality R or L), so mammography hanging
    protocols place it beside the originals; Image Type DERIVED\\SECONDARY, Burned In
    Annotation YES and the series description say what it is. With ``ctx.sc_lossless`` the
    pixels are JPEG-LS lossless; otherwise JPEG baseline at ``ctx.sc_jpeg_quality`` (> 0)
    or uncompressed RGB.
    """
    if "PixelData" not in source:
        raise ValueError(
            f"secondary capture of {result.image.sop_instance_uid} needs pixel data: load the "
            "source without stop_before_pixels"
        )
    missing = [k for k in _PIXEL_DESCRIPTION if source.get(k) in (None, "")]
    if missing:  # pydicom's decoder failed with AttributeError naming a tag, the image unnamed
        raise ValueError(
            f"secondary capture of {result.image.sop_instance_uid}: the image's {', '.join(missing)} "
            "is missing, so its pixels cannot be shown; correct the header at the sender, or ask this "
            "destination for GSPS or SR output only"
        )
    image, _ = render(result, source, ctx)
    ds = Dataset()
    copy_patient_study(ds, source)
    ds.SOPClassUID = SECONDARY_CAPTURE
    lat = result.image.laterality if result.image.laterality in ("L", "R") else ""
    side = {"R": "right breast", "L": "left breast"}.get(lat, "")
    set_common(ds, ctx, KIND, modality="MG", what=f"CAD overlay {side}".strip(), index=index, series_key=lat)
    ds.ConversionType = "WSD"
    ds.DateOfSecondaryCapture = ds.ContentDate
    ds.TimeOfSecondaryCapture = ds.ContentTime
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"
    ds.DerivationDescription = "mammogram windowed as displayed, CAD marks burned in, may be downscaled"
    ds.ImageComments = ctx.comment()[:10240]
    orientation = patient_orientation(source)
    ds.PatientOrientation = list(orientation) if orientation else None
    _positioning(ds, result)
    ds.SourceImageSequence = _source_image_sequence(source)
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = image.height, image.width
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    _pixels(ds, image, ctx)
    return ds


def _pixels(ds: Dataset, image: Image.Image, ctx: OutputContext) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if ctx.sc_lossless:
        ds.PhotometricInterpretation = "RGB"
        ds.LossyImageCompression = "00"
        ds.PixelData = image.tobytes()
        ds.compress(JPEGLSLossless, np.asarray(image), encoding_plugin="pyjpegls")
        ds.DerivationDescription += "; JPEG-LS lossless"
    elif ctx.sc_jpeg_quality > 0:
        frame = jpeg_baseline(image, ctx.sc_jpeg_quality)
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{3 * image.width * image.height / len(frame):.2f}"[:16]
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.DerivationDescription += "; JPEG baseline (lossy)"
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    else:
        ds.PhotometricInterpretation = "RGB"
        ds.LossyImageCompression = "00"
        ds.PixelData = image.tobytes()
