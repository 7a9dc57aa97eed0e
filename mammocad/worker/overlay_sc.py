"""Secondary Capture per analysed image: the mammogram as the PACS shows it, boxes burned in.

For PACS and viewers that show neither SR nor presentation states. The image is windowed
with its own VOI (first window, else its VOI LUT, else full range), MONOCHROME1 is
inverted so it looks as on the modality, then converted to RGB. Lesions are boxed
(malignant red, benign cyan) with their probability of cancer, and a banner on top names
the model, the breast risks and "NOT FOR DIAGNOSTIC USE".

Images wider or taller than ``MAX_SIDE`` pixels are downscaled (aspect kept) so a SC
stays a few MB instead of ~80 MB RGB for a 4k x 3k mammogram; boxes are scaled with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from mammocad.model.results import ImageResult, LesionClass
from mammocad.worker.uids import OutputContext, copy_patient_study, set_common

KIND = "sc"
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


def _scaled_width(rows: int, columns: int) -> int:
    return max(1, round(columns * min(1.0, MAX_SIDE / max(rows, columns))))


def font_size_for(rows: int, columns: int) -> int:
    """Banner/label font size: about 45 characters across the (scaled) image."""
    return max(10, _scaled_width(rows, columns) // 45)


def layout(rows: int, columns: int, n_lines: int) -> Layout:
    """Geometry of the SC for a ``rows`` x ``columns`` image with ``n_lines`` banner lines."""
    scale = min(1.0, MAX_SIDE / max(rows, columns))
    width = _scaled_width(rows, columns)
    height = max(1, round(rows * scale))
    font_size = font_size_for(rows, columns)
    top = n_lines * (font_size + 4) + 6
    return Layout(scale, top, width, height + top, font_size)


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
    """8-bit grey image as displayed: modality LUT, VOI window/LUT, MONOCHROME1 inverted."""
    arr = ds.pixel_array
    if arr.ndim == 3:  # multi-frame: show the first frame
        arr = arr[0]
    values = apply_modality_lut(arr, ds).astype(np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center = float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter)
        width = float(ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth)
        scaled = (values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5
    else:
        if "VOILUTSequence" in ds:
            values = apply_voi_lut(arr, ds).astype(np.float64)
        lo, hi = float(values.min()), float(values.max())
        scaled = (values - lo) / max(hi - lo, 1.0)
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


def render(result: ImageResult, source: Dataset, ctx: OutputContext) -> tuple[np.ndarray, Layout]:
    """The RGB pixels (H, W, 3 uint8) of the SC and the layout used."""
    rows, columns = int(source.Rows), int(source.Columns)
    font = _font(font_size_for(rows, columns))
    lines = wrap(banner_lines(result, ctx), font, _scaled_width(rows, columns))
    lay = layout(rows, columns, len(lines))
    gray = Image.fromarray(display_gray(source), mode="L")
    if lay.scale < 1.0:
        gray = gray.resize((lay.width, lay.height - lay.top), Image.Resampling.LANCZOS)
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
    return np.asarray(canvas, dtype=np.uint8), lay


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


def build_secondary_capture(result: ImageResult, source: Dataset, ctx: OutputContext, index: int) -> Dataset:
    """One RGB Secondary Capture for an analysed image (needs the source's pixels)."""
    if "PixelData" not in source:
        raise ValueError(
            f"secondary capture of {result.image.sop_instance_uid} needs pixel data: load the "
            "source without stop_before_pixels"
        )
    pixels, _ = render(result, source, ctx)
    ds = Dataset()
    copy_patient_study(ds, source)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SECONDARY_CAPTURE
    set_common(ds, ctx, KIND, modality="OT", what="CAD overlay", index=index)
    ds.ConversionType = "WSD"
    ds.DateOfSecondaryCapture = ds.ContentDate
    ds.TimeOfSecondaryCapture = ds.ContentTime
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"
    ds.DerivationDescription = "mammogram windowed as displayed, CAD marks burned in, may be downscaled"
    ds.ImageComments = ctx.comment()[:10240]
    ds.PatientOrientation = source.get("PatientOrientation", "") or ""
    # Laterality (General Series), not ImageLaterality: dciodvfy rejects Laterality beside it.
    for keyword in ("BodyPartExamined", "ViewPosition", "ViewCodeSequence"):
        if keyword in source:
            ds[keyword] = source[keyword]
    lat = result.image.laterality or str(source.get("ImageLaterality", source.get("Laterality", "")))
    ds.Laterality = lat if lat in ("L", "R") else ""
    ds.SourceImageSequence = _source_image_sequence(source)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    return ds
