"""Is the breast's texture made of strands or of blobs? The curvature shape of a mammogram.

β and the tissue power are second-order statistics: a field of soft clouds and a mesh of thin
bright strands can share both. Real parenchyma on film is mostly strands: Cooper's ligaments,
ducts, vessels and fibrous trabeculae, crossing at every depth, around dark fat lobules. Synth
v4's film had the films' β and most of their tissue power, yet its texture was clouds, and a
detector trained on it marked the strands' crossings on real film, often as malignant
(MODEL_CARD.md, "Experiments not shipped").

The statistic: the Hessian of the image at ``CURVATURE_SIGMA_MM`` (strands 0.5–1.5 mm wide)
gives two curvatures per pixel. A pixel is on a *line* when its stronger curvature is a
bright ridge (negative) at least ``LINE_RATIO`` times the other, on a *blob* when both are
bright and the weaker is at least ``BLOB_RATIO`` of the stronger. Line share and blob share
are their parts of the summed squared curvatures inside the usable breast, away from its
border by three σ. Shares do not depend on the intensity scale. On the 8 CBIS-DDSM films
(standardised to 0.2 mm) the line share was 0.35–0.44 and the blob share 0.03–0.05; on synth
v4 film (seed 5105), 0.26–0.33 and 0.06–0.11.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mammocad.model.realism import REALISM_SPACING_MM

#: Scale of the curvature (mm): the σ of the Gaussian the Hessian is taken of.
CURVATURE_SIGMA_MM = 0.5
#: A line: stronger curvature a bright ridge at least this many times the weaker one.
LINE_RATIO = 3.0
#: A blob: both curvatures bright, the weaker at least this share of the stronger.
BLOB_RATIO = 0.5
#: Fewer usable pixels than this (about 16 cm² at 0.2 mm) give no figure.
MIN_PIXELS = 4000


def curvature_shape(image: np.ndarray, usable: np.ndarray, spacing_mm: float = REALISM_SPACING_MM
                    ) -> tuple[float, float]:
    """(line share, blob share) of the curvature energy in ``usable``; NaNs when too little is usable."""
    sigma = CURVATURE_SIGMA_MM / spacing_mm
    inner = ndimage.binary_erosion(usable, iterations=int(np.ceil(3 * sigma)))
    if int(inner.sum()) < MIN_PIXELS:
        return float("nan"), float("nan")
    img = np.asarray(image, dtype=np.float64)
    hyy = ndimage.gaussian_filter(img, sigma, order=(2, 0))[inner]
    hxx = ndimage.gaussian_filter(img, sigma, order=(0, 2))[inner]
    hxy = ndimage.gaussian_filter(img, sigma, order=(1, 1))[inner]
    mean, half_diff = (hxx + hyy) / 2, np.sqrt(((hxx - hyy) / 2) ** 2 + hxy ** 2)
    strong, weak = mean - half_diff, mean + half_diff  # strong: the more negative (brighter ridge)
    energy = float((strong ** 2 + weak ** 2).sum())
    if energy <= 0:
        return float("nan"), float("nan")
    line = (strong < 0) & (np.abs(strong) >= LINE_RATIO * np.abs(weak))
    blob = (strong < 0) & (weak < 0) & (np.abs(weak) >= BLOB_RATIO * np.abs(strong))
    return float((strong[line] ** 2).sum()) / energy, float((strong[blob] ** 2 + weak[blob] ** 2).sum()) / energy


__all__ = ["BLOB_RATIO", "CURVATURE_SIGMA_MM", "LINE_RATIO", "MIN_PIXELS", "curvature_shape"]
