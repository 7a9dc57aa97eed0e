"""Where the breast is in a mammogram, and what in it is not tissue.

Digitised film carries burned-in labels, tape, markers and bright film borders; an MLO view
carries the pectoral muscle. Two users, on a standardised image (bright = dense, chest wall at
column 0, as ``mammocad.model.standardise`` makes it):

- the realism report (:func:`breast_mask`): a region of interest that includes a label
  measures text edges, not breast tissue;
- the detector (:func:`inside_breast`): a calcification lies in the breast. A mark on a
  burned-in letter or on a lead marker in the air beside the breast is a false mark a
  radiologist sees at once (0.7.0-demo put 4 of its 10 marks on the 8 CBIS-DDSM films there),
  so marks centred outside the breast are not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mammocad.model.segment import BREAST_CUT, STRIP_MM, dilate, erode, mm_to_px, segment_breast


@dataclass(frozen=True)
class BreastMask:
    """Boolean masks [H, W] of one image.

    breast: the largest bright component (Otsu on a lightly smoothed copy), holes filled,
        thin strips (film borders touching the breast) opened away.
    artefacts: bright things that are not the breast (labels, markers, tape, film borders),
        grown by a margin.
    pectoral: the pectoral muscle when one was found (:func:`pectoral_mask`), else all False.
    usable: breast, minus a band along the image edges, minus the grown artefacts and the
        pectoral muscle, minus a thin rim inside the skin line: where regions of interest and
        histograms may look.
    """

    breast: np.ndarray
    artefacts: np.ndarray
    usable: np.ndarray
    pectoral: np.ndarray


def breast_mask(image: np.ndarray, spacing_mm: float, *, edge_mm: float = 1.0, artefact_margin_mm: float = 5.0,
                rim_mm: float = 1.0, strip_mm: float = 2.0, pectoral_margin_mm: float = 3.0) -> BreastMask:
    """Segment the breast of a standardised image and mark what ROIs must avoid.

    Digitised film carries burned-in labels, tape and bright film borders that touch the
    breast; a region that includes one has a spectrum of text edges, not of tissue. Bright
    components other than the breast become artefacts; strips narrower than ``2·strip_mm``
    are opened off the breast first, so a film border joined to the chest wall is one too.
    """
    img = np.asarray(image, dtype=np.float32)
    def px(mm: float) -> int:
        return mm_to_px(mm, spacing_mm)

    foreground, breast = segment_breast(img, spacing_mm, strip_mm, cut=0.5)
    if not breast.any():
        empty = np.zeros(img.shape, dtype=bool)
        return BreastMask(empty, foreground, empty, empty)
    # What the opening cut off near the breast is its own ragged rim; farther out, a strip.
    near = dilate(breast, px(strip_mm) + 1)
    artefacts = dilate(_bright_components(img, foreground & ~near, breast, px(5.0)), px(artefact_margin_mm))
    edge = _edge_bands(foreground, px(edge_mm), max_strip_px=px(10.0), margin_px=px(2.0))
    inner = erode(breast, px(rim_mm))
    pectoral = pectoral_mask(img, breast, spacing_mm)
    usable = inner & ~artefacts & ~edge & ~dilate(pectoral, px(pectoral_margin_mm))
    return BreastMask(breast=breast, artefacts=artefacts | (edge & foreground), usable=usable, pectoral=pectoral)


def inside_breast(boxes: np.ndarray, image: np.ndarray, spacing_mm: float, *, margin_mm: float = 2.0,
                  min_breast_fraction: float = 0.02, strip_mm: float = STRIP_MM, cut: float = BREAST_CUT,
                  border_margin_mm: float = 1.0, pectoral_depth_mm: float = 5.0) -> np.ndarray:
    """[N] bool: the box's centre lies in the breast of ``image`` grown by ``margin_mm``, and
    not deep in the pectoral muscle.

    The breast here is everything just above the background (``cut`` = 5 % of the way to
    Otsu's threshold, not the realism mask's 50 %) that is connected to the largest object:
    film burns the thin periphery out almost to black, and an image cropped so tightly that
    it holds no air has fat as its darkest tenth. At 50 %, 10 of the 330 clusters of five
    synth v2 seeds fell outside (measured before the crop fix); at 5 %, none that lay in the
    image. Letters and markers
    stand apart in the air, so they stay separate objects. The margin keeps skin and
    skin-line calcifications. When no breast is found (it covers under
    ``min_breast_fraction`` of the image: a blank or inverted image), every box is kept: a
    segmentation failure must not hide findings.

    A film border (a bright strip of one width along a quarter or more of an image edge,
    :func:`_edge_bands`, plus ``border_margin_mm``) is not breast even where it joins it: at
    this low cut the strip and the breast are one object, and the opening keeps a strip that
    lies on the image edge. It holds no image of the patient, yet its straight edge drew marks:
    0.7.0-demo marked the top border of a CBIS-DDSM film (1-280, score 0.86).

    The pectoral muscle of an MLO view (:func:`pectoral_mask`) is not breast tissue either: a
    mark centred ``pectoral_depth_mm`` or more inside it is dropped. Its fibres and the film
    grain over it drew 0.7.0-demo's marks in the upper chest-wall corner of real film (1-131,
    16.8 mm inside the muscle; 1-281 where a mini-MIAS-style clip cuts the muscle at the top
    edge), and every mini-MIAS image is an MLO. The depth keeps findings at the muscle's edge,
    which the straight-line estimate of that edge may cut by a few mm. What this hides:
    calcifications of axillary lymph nodes projected over the muscle (rare, mostly benign;
    docs/ARCHITECTURE.md).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    img = np.asarray(image, dtype=np.float32)
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    foreground, breast = segment_breast(img, spacing_mm, strip_mm, cut=cut)
    if breast.mean() < min_breast_fraction:
        return np.ones(len(boxes), dtype=bool)
    # A quarter of the edge, not the realism mask's 5 %: the skin line leaving an edge at a
    # shallow angle also starts lines with short runs, and here a wrong band hides findings.
    border = _edge_bands(foreground, 0, max_strip_px=mm_to_px(10.0, spacing_mm),
                         margin_px=mm_to_px(border_margin_mm, spacing_mm), min_share=0.25)
    grown = dilate(breast, mm_to_px(margin_mm, spacing_mm)) & ~border
    pectoral = pectoral_mask(img, breast, spacing_mm)
    if pectoral.any():
        grown &= ndimage.distance_transform_edt(pectoral) * spacing_mm < pectoral_depth_mm
    rows, cols = grown.shape
    x = np.clip(np.floor((boxes[:, 0] + boxes[:, 2]) / 2), 0, cols - 1).astype(np.int64)
    y = np.clip(np.floor((boxes[:, 1] + boxes[:, 3]) / 2), 0, rows - 1).astype(np.int64)
    return np.asarray(grown[y, x], dtype=bool)


def _bright_components(image: np.ndarray, candidates: np.ndarray, breast: np.ndarray, near_px: int) -> np.ndarray:
    """The components of ``candidates`` that are not breast: labels, markers, tape, film edges.

    Faint islands hugging the breast are its own thin periphery, cut off by the threshold (a
    fatty or underexposed skin zone); calling them artefacts would eat the breast. A component
    is an artefact when it lies farther than ``near_px`` from the breast, or when it is bright
    (90th percentile at the breast's upper quartile: burned-in text next to the skin line).
    """
    labels, n = ndimage.label(candidates)
    if n == 0 or not breast.any():
        return np.zeros(candidates.shape, dtype=bool)
    index = np.arange(1, n + 1)
    distance = ndimage.distance_transform_edt(~breast)
    far = np.asarray(ndimage.minimum(distance, labels, index)) > near_px
    level = float(np.percentile(image[breast], 75))
    bright = np.asarray(ndimage.mean(image >= level, labels, index)) >= 0.1  # its 90th percentile reaches it
    keep = np.concatenate([[False], far | bright])
    return np.asarray(keep[labels])


def _edge_bands(foreground: np.ndarray, edge_px: int, *, max_strip_px: int, margin_px: int,
                min_share: float = 0.05) -> np.ndarray:
    """A band along each image edge: ``edge_px`` wide (none at 0), wider where a film border runs along it.

    A film border is a bright strip a few mm wide along an edge. Where it meets the breast it
    cannot be told from tissue by brightness, but along the rest of that edge it stands
    alone: many lines (at least ``min_share`` of them) start with a short bright run of one
    width. The band then covers the widest such run plus ``margin_px``.
    """
    band = np.zeros(foreground.shape, dtype=bool)
    views = ((foreground, lambda w: (slice(None), slice(0, w))),
             (foreground[:, ::-1], lambda w: (slice(None), slice(foreground.shape[1] - w, None))),
             (foreground.T, lambda w: (slice(0, w), slice(None))),
             (foreground.T[:, ::-1], lambda w: (slice(foreground.shape[0] - w, None), slice(None))))
    for lines, where in views:
        # Length of the bright run that starts at the edge, per line (the whole line when all bright).
        runs = np.where(lines.all(axis=1), lines.shape[1], np.argmin(lines, axis=1))
        short = runs[(runs > 0) & (runs <= max_strip_px)]
        width = edge_px
        if short.size:
            # A border has one width; the breast's own outline crossing the edge has all widths.
            median = float(np.median(short))
            strip = short[np.abs(short - median) <= max(2.0, 0.3 * median)]
            if strip.size >= min_share * len(runs):
                width = max(width, int(np.percentile(strip, 95)) + margin_px)
        band[where(width)] = True
    return band


def pectoral_mask(image: np.ndarray, breast: np.ndarray, spacing_mm: float, *, min_contrast: float = 0.03
                  ) -> np.ndarray:
    """The pectoral muscle of an MLO view as a triangle in the upper chest-wall corner, or nothing.

    Headers of digitised film often do not say the view, so the pixels decide: the muscle is
    a brighter triangle whose base is the chest wall (column 0) and whose apex edge meets the
    top of the image, bounded by a nearly straight edge. Every line from (row 0, column a) to
    (row b, column 0) is tried on a 2 mm grid; the one with the largest mean brightness step
    across it (8 mm bands either side, inside the breast) wins when the step is at least
    ``min_contrast`` and the muscle side is brighter along at least 4 of 5 stretches of the
    line. A CC view, whose breast does not run along the top edge, never has one.
    """
    step = mm_to_px(2.0, spacing_mm)
    grid_mm = step * spacing_mm
    rows, cols = image.shape
    small = ndimage.uniform_filter(np.asarray(image, dtype=np.float32), step)[::step, ::step]
    tissue = breast[::step, ::step]
    # The muscle needs the breast to run along the top edge from the chest wall.
    top = tissue[min(2, tissue.shape[0] - 1)]
    run = int(np.argmin(top)) if not top.all() else len(top)
    if run * grid_mm < 15.0:
        return np.zeros((rows, cols), dtype=bool)
    yy, xx = np.mgrid[0:small.shape[0], 0:small.shape[1]].astype(np.float32) * np.float32(grid_mm)
    band = 8.0
    best = (0.0, 0.0, 0.0)
    for a in np.arange(15.0, run * grid_mm * 0.95, 4.0):
        for b in np.arange(20.0, small.shape[0] * grid_mm * 0.9, 4.0):
            dist = (xx / a + yy / b - 1.0) / np.sqrt(1.0 / a**2 + 1.0 / b**2)  # signed, mm
            inner = tissue & (dist > -band) & (dist < 0)
            outer = tissue & (dist > 0) & (dist < band)
            if inner.sum() < 20 or outer.sum() < 20:
                continue
            contrast = float(small[inner].mean() - small[outer].mean())
            if contrast > best[0]:
                best = (contrast, a, b)
    contrast, a, b = best
    if contrast < min_contrast or not _consistent_edge(small, tissue, xx, yy, a, b, band):
        return np.zeros((rows, cols), dtype=bool)
    ry, rx = np.mgrid[0:rows, 0:cols].astype(np.float32) * np.float32(spacing_mm)
    return np.asarray((rx / a + ry / b < 1.0) & breast)


def _consistent_edge(small: np.ndarray, tissue: np.ndarray, xx: np.ndarray, yy: np.ndarray, a: float, b: float,
                     band: float) -> bool:
    """The muscle side is brighter along at least 4 of 5 stretches of the edge (not one blob)."""
    dist = (xx / a + yy / b - 1.0) / np.sqrt(1.0 / a**2 + 1.0 / b**2)
    along = np.clip(yy / b, 0.0, 1.0)  # 0 at the top of the edge, 1 at the chest wall
    brighter = 0
    for k in range(5):
        part = tissue & (along >= k / 5) & (along < (k + 1) / 5)
        inner, outer = part & (dist > -band) & (dist < 0), part & (dist > 0) & (dist < band)
        if inner.sum() >= 5 and outer.sum() >= 5 and small[inner].mean() > small[outer].mean():
            brighter += 1
    return brighter >= 4
