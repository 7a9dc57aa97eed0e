"""Project one view: path lengths of each material → line integral of attenuation ``L = ∫µ dl``.

The anatomy gives path lengths in mm (adipose+glandular tissue, skin, pectoral muscle), the
background gives the glandular fraction and thin structures, and the calcifications arrive as
a map of hydroxyapatite path length (mm); soft-tissue findings (``soft_tissue``) displace fat
with gland-equivalent tissue. ``physics`` turns them into one dimensionless line
integral at the image's effective energy; the acquisition (``acquisition``/``film``) then makes
exposure, noise, blur and stored values from it, so specks and tissue share one chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mammocad.model.synth import physics
from mammocad.model.synth.anatomy import Breast, ViewMaps, view_maps
from mammocad.model.synth.calcifications import ClusterSpec
from mammocad.model.synth.raster import Box, render_cluster
from mammocad.model.synth.soft_tissue import SoftFinding, draw_findings
from mammocad.model.synth.tissue import build_tissue


@dataclass(frozen=True)
class Projection:
    """One view before acquisition, in the canonical frame."""

    line_integral: np.ndarray  # ∫µ dl per pixel (0 outside the breast)
    maps: ViewMaps
    energy_kev: float
    boxes: list[Box | None]  # one per requested cluster (None when not drawn)


def project_view(breast: Breast, view: str, shape: tuple[int, int], spacing: float,
                 rng: np.random.Generator, clusters: list[tuple[ClusterSpec, tuple[float, float]]],
                 energy_kev: float, findings: Sequence[tuple[SoftFinding, tuple[float, float]]] = (),
                 layout_rng: np.random.Generator | None = None) -> Projection:
    """Line integral of ``view`` with ``clusters`` ((spec, centre (row, col) in mm) pairs) inside it,
    and soft-tissue ``findings`` (the same pairs) that carry no truth. layout_rng: see ``build_tissue``."""
    maps = view_maps(breast, view, shape, spacing)
    tissue = build_tissue(breast, view, maps, shape, spacing, rng, layout_rng)
    gland_mm = tissue.glandular * maps.tissue_mm + tissue.extra_mm * maps.mask * np.clip(maps.tissue_mm / 10.0, 0, 1)
    if findings:  # they displace fat: bold in a fatty breast, half hidden in a dense one
        gland_mm += draw_findings(shape, spacing, list(findings), view) * maps.mask * (1.0 - tissue.glandular)
    thick = maps.tissue_mm
    fraction = np.divide(gland_mm, thick, out=np.zeros_like(thick), where=thick > 1e-3)
    line = physics.tissue_line_integral(thick, np.clip(fraction, 0.0, 1.0), energy_kev)
    line += np.float32(physics.attenuation_per_mm("skin", energy_kev)) * maps.skin_mm
    line += np.float32(physics.attenuation_per_mm("muscle", energy_kev)) * maps.muscle_mm
    calcium = np.zeros(shape, dtype=np.float32)
    boxes = []
    for spec, (row_mm, col_mm) in clusters:
        centre_px = (row_mm / spacing - 0.5, col_mm / spacing - 0.5)
        boxes.append(render_cluster(calcium, spec, view, centre_px, spacing))
    if clusters:
        line += physics.calcification_line_integral(calcium, energy_kev)
    return Projection(line_integral=line.astype(np.float32), maps=maps, energy_kev=energy_kev, boxes=boxes)
