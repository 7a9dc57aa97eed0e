"""A scan shown as public film sets ship their scans: a coarser pitch and fewer bits.

mini-MIAS, for one, is 50 µm film scans reduced to 0.2 mm, 8 bits. A pixel of such a set is the
mean of the finer scan's pixels under it, so it keeps more fine detail (noise, grain, the edges
of specks) than the standardiser's anti-aliased resize of the same scan, whose tent is one
output pixel wide on each side. A detector that never saw such images marks them differently:
a synth v4 retrain that put 0.88 marks per image on the 8 CBIS-DDSM films through the node's
path put 2.38 on the block means of the same films at 0.2 mm, 16 bits (MODEL_CARD.md,
"Experiments not shipped"). Two users need the same rendering: training on real backgrounds
(``real_background``, options ``render_spacing_mm`` / ``render_bits``) and the realism report's
marks on rendered real images (``mammocad model realism --marks-rendered``).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

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


__all__ = ["SPACING_KEYWORDS", "block_factor", "render_coarser"]
