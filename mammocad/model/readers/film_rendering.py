"""A scan shown as public film sets ship their scans: a coarser pitch and fewer bits.

mini-MIAS, for one, is 50 µm film scans reduced to 0.2 mm, 8 bits. A pixel of such a set is the
mean of the finer scan's pixels under it, so it keeps more fine detail (noise, grain, the edges
of specks) than the standardiser's anti-aliased resize of the same scan, whose tent is one
output pixel wide on each side. A detector that never saw such images marks them differently:
a synth v4 retrain that put 0.88 marks per image on the 8 CBIS-DDSM films through the node's
path put 2.38 on the block means of the same films at 0.2 mm, 16 bits (MODEL_CARD.md,
"Experiments not shipped"). Three users need the same rendering: training on real backgrounds
(``real_background``, options ``render_spacing_mm`` / ``render_bits``), training on synthetic
folders shown the same way (:class:`SourceRendering`, the same option names) and the realism
report's marks on rendered images (``mammocad model realism --marks-rendered``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.readers.background_maps import block_mean

#: Header attributes that carry the pixel size; each present one is scaled by the block size.
SPACING_KEYWORDS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")


def block_factor(spacing_mm: float, render_spacing_mm: float) -> int:
    """Whole pixels per block side that bring ``spacing_mm`` nearest ``render_spacing_mm`` (at least 1)."""
    if spacing_mm <= 0 or render_spacing_mm <= 0:
        raise ValueError(f"spacings must be positive, got {spacing_mm} and {render_spacing_mm}")
    return max(1, round(render_spacing_mm / spacing_mm))


def render_coarser(ds: Dataset, stored: np.ndarray, factor: int, bits: int | None,
                   spacing_mm: float | None = None) -> Dataset:
    """``ds`` with ``stored`` (its stored values) as a coarser, shallower scan of the same film.

    The values are rounded to ``2**bits`` levels but kept in the stored range and bit depth, so
    the header's Modality LUT, VOI LUT and windows still apply unchanged: only levels are lost.
    Spacing attributes in the header are scaled by ``factor``; a header without any (digitised
    film often has none) gets Nominal Scanned Pixel Spacing from ``spacing_mm``, the scan's
    pitch, so a reader does not apply its fallback for the original scan to the rendering.
    ``ds`` is changed in place and returned.
    """
    arr = block_mean(stored, factor)
    stored_bits = int(ds.get("BitsStored", 16))
    if bits and bits < stored_bits:
        step = (2 ** stored_bits - 1) / (2 ** bits - 1)
        arr = np.round(arr / step) * step
    limits = np.iinfo(stored.dtype)
    out = np.clip(np.round(arr), limits.min, limits.max).astype(stored.dtype)
    present = [keyword for keyword in SPACING_KEYWORDS if keyword in ds]
    for keyword in present:
        setattr(ds, keyword, [float(v) * factor for v in ds.get(keyword)])
    if not present and spacing_mm:
        ds.NominalScannedPixelSpacing = [float(spacing_mm) * factor] * 2
    ds.set_pixel_data(out, str(ds.PhotometricInterpretation), stored_bits, generate_instance_uid=False)
    return ds


def rendered_coordinate(value: float, factor: int) -> float:
    """A position in the scan's pixels → the rendering's, pixel centres at integers in both
    (``frame.py``, ``results.py``): the block of scan pixels ``k·factor .. k·factor + factor − 1``
    becomes rendered pixel ``k``, so its centre ``k·factor + (factor − 1)/2`` maps to ``k``.
    Dividing by ``factor`` alone would put every truth ``(factor − 1) / (2·factor)`` of a rendered
    pixel up and left of its speck (0.375 px at 0.05 → 0.2 mm)."""
    return (value + 0.5) / factor - 0.5


def rendered_lesions(lesions: Sequence[AnnotatedLesion], factor: int) -> tuple[AnnotatedLesion, ...]:
    """Truth boxes in a rendering's pixels (:func:`rendered_coordinate`), kept at ≥ 0 like the scan's."""
    def moved(v: float) -> float:
        return max(rendered_coordinate(v, factor), 0.0)

    return tuple(replace(les, box=(moved(les.box[0]), moved(les.box[1]), moved(les.box[2]), moved(les.box[3])))
                 for les in lesions)


def rendered_specks(specks: Sequence[dict[str, Any]], factor: int) -> list[dict[str, Any]]:
    """Speck truth (``{"x", "y", ...}`` in stored pixels) in a rendering's pixels."""
    return [{**sp, "x": rendered_coordinate(sp["x"], factor), "y": rendered_coordinate(sp["y"], factor)}
            for sp in specks]


#: Where :class:`SourceRendering` keeps an item's block size and bits, for ``decode_image``.
RENDER_KEY = "render"


@dataclass(frozen=True)
class SourceRendering:
    """A synthetic source's images shown as public film sets ship theirs (``[data] options``:
    ``render_spacing_mm``, ``render_bits``, ``render_acquisitions``).

    Why: a detector trained only on synthetic film as drawn puts more marks on the same film at
    0.2 mm / 8 bits (synthetic as real: MODEL_CARD.md, "Experiments not shipped"); training on
    renderings is the way to teach it those images. Only views of ``acquisitions`` (film by
    default: DR is not shipped as 8-bit scans) are rendered; the rest pass as drawn. Truth moves
    into the rendered pixels, and the breast gets its own id so that a folder listed twice, as
    drawn and rendered, does not merge two copies of a breast into one.
    """

    spacing_mm: float
    bits: int | None = None
    acquisitions: tuple[str, ...] = ("film",)

    OPTION_NAMES = ("render_spacing_mm", "render_bits", "render_acquisitions")

    def __post_init__(self) -> None:
        if not 0.01 <= self.spacing_mm <= 1.0:
            raise ValueError(f"render_spacing_mm must be 0.01..1.0 mm, got {self.spacing_mm}")
        if self.bits is not None and not 6 <= self.bits <= 16:
            raise ValueError(f"render_bits must be 6..16, got {self.bits}")
        unknown = sorted(set(self.acquisitions) - {"film", "dr"})
        if not self.acquisitions or unknown:
            raise ValueError(f"render_acquisitions lists film and/or dr, got {list(self.acquisitions)}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SourceRendering | None:
        """The rendering a synthetic source's options ask for; None without ``render_spacing_mm``."""
        unknown = sorted(set(options) - set(cls.OPTION_NAMES))
        if unknown:
            raise ValueError(f"unknown options for a synthetic source: {', '.join(unknown)} "
                             f"(known: {', '.join(cls.OPTION_NAMES)})")
        if options.get("render_spacing_mm") is None:
            if options:
                raise ValueError("render_bits and render_acquisitions need render_spacing_mm (e.g. 0.2)")
            return None
        bits = options.get("render_bits")
        acquisitions = options.get("render_acquisitions", ["film"])
        if isinstance(acquisitions, str):
            acquisitions = [acquisitions]
        return cls(float(options["render_spacing_mm"]), None if bits is None else int(bits),
                   tuple(str(a) for a in acquisitions))

    def label(self) -> str:
        return f"{self.spacing_mm:g}mm" + (f"-{self.bits}bit" if self.bits else "")

    def apply(self, item: AnnotatedImage, spacing_mm: float) -> AnnotatedImage:
        """``item`` as :func:`render_coarser` will show it, or as it is when its acquisition is not
        rendered; ``spacing_mm`` is its drawn pitch."""
        if item.extra.get("acquisition") not in self.acquisitions:
            return item
        factor = block_factor(spacing_mm, self.spacing_mm)
        extra = dict(item.extra)
        if extra.get("specks"):
            extra["specks"] = rendered_specks(extra["specks"], factor)
        extra[RENDER_KEY] = {"factor": factor, **({"bits": self.bits} if self.bits else {})}
        return replace(item, lesions=rendered_lesions(item.lesions, factor),
                       breast_id=f"{item.breast_id}@{self.label()}", extra=extra)


__all__ = ["RENDER_KEY", "SPACING_KEYWORDS", "SourceRendering", "block_factor", "render_coarser",
           "rendered_coordinate", "rendered_lesions", "rendered_specks"]
