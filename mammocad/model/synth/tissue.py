"""The anatomical background of one view: where the fibroglandular tissue is, and thin structures.

Returned as physical quantities, for the projection (``views``) to turn into attenuation:
- ``glandular``: the fraction of the adipose+glandular path that is fibroglandular, 0..1;
- ``extra_mm``: extra glandular-equivalent path (mm) of thin structures — Cooper's ligaments
  (septa between fat lobules, seen edge-on as thin bright arcs), fibrous strands (septa and
  trabeculae at every depth, the mesh of lines real film shows), ducts converging on the
  nipple, and vessels (long tortuous tubes; blood attenuates about like gland).

The model follows the virtual-clinical-trial phantoms (VICTRE breastPhantom, OpenVCT) in
spirit, written afresh and in 2-D for speed: the breast is fat compartments (lobules) wrapped
by septa, with fibroglandular tissue concentrated behind the nipple and away from the skin and
the chest wall; its texture has a power-law spectrum so the final image has β ≈ 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from mammocad.model.synth.anatomy import Breast, ViewMaps
from mammocad.model.synth.texture import (
    lobule_cells,
    power_law_field,
    radial_field,
    smooth_field,
    tubes,
    upsample,
    wander,
)

#: Coarsest grid (mm) the background is built on; finer output spacings get it interpolated.
TISSUE_GRID_MM = 0.1
#: The glandular cloud's spectrum: power law of this β, flat below 1/(a floor drawn in this range, mm).
#: 3.7 until synth v15, whose refit (GLAND_PEAK) made it steeper: with 3.7 a trial gland 0.6×, lines 0.7×
#: gave a tissue power 5 % higher, blob share 0.002 higher and β 0.03 lower on the test views.
CLOUD_BETA = 4.0
CLOUD_FLOOR_MM = (5.0, 12.0)
#: Fibroglandular fraction of the path where the cloud is gland: drawn in this range, plus this
#: × density. Synth v7 lowered it from 0.6-0.85 + 0.15 × density (0.7×): on a 12-study film
#: drawing that put tissue power at the CBIS-DDSM films' (1.0×, was 1.7×) and brought β from
#: 3.37 to 3.13 (films 3.15) and the line share nearer theirs (DATASETS.md, "Gland contrast").
#: Synth v15 refitted it (v7-v14: 0.40-0.56 + 0.105 × density), with the septa and strands 0.63×
#: (SEPTA_PATH_MM, STRAND_DEPTH_MM) and a steeper cloud (CLOUD_BETA 4.0): its scatter behind the
#: grid (SPR 0.06-0.23, was 0.2-0.6) no longer washes the anatomy out. On seed 5105's 12
#: lesion-free film views (``test_film_tissue_contrast…``) tissue power went 2.30× the films' →
#: 1.07×, line / blob share 0.351 / 0.053 → 0.354 / 0.056 (films 0.373 / 0.044), β 3.07 → 3.08
#: (films 3.15). Everything 0.66× put the blob share at that test's limit (0.059-0.061); the peak
#: 0.6× at every density (0.24-0.34 + 0.063 × density) left a dense breast so little gland that a
#: cyst showed 0.86× as much as in a fatty one (``test_synth_soft_tissue``; v14 0.65×), hence
#: the steeper rise with density: the mean peak is v14's 0.43× at BI-RADS A (0.1), 0.58× at B,
#: 0.75× at C, 0.90× at D (cyst 0.77×) (DATASETS.md, "Gland contrast", synth v15).
GLAND_PEAK = (0.13, 0.21)
GLAND_PEAK_PER_DENSITY = 0.42
#: Fibrous strands (``_trabeculae``), set (synth v5) so film's curvature shape, β and tissue power
#: come near the CBIS-DDSM films' (DATASETS.md, "Strands").
STRAND_DENSITY = 0.1  # strand length per breast area, mm/mm² (0.45 until synth v12)
STRAND_LENGTH_MM = (8.0, 30.0)
STRAND_RADIUS_MM = (0.15, 0.35)
STRAND_DEPTH_MM = (1.25, 3.8)  # path along the beam of a septum seen edge-on (2-6 until v15: GLAND_PEAK)
STRAND_SPREAD_RAD = 0.5  # sd of a strand's heading about the direction to the nipple
STRAND_TORTUOSITY = 0.07
#: Dense regions and fatty ones (synth v11, ``_layout``): a smooth field of unit sd, part a
#: Gaussian blur of white noise (σ in this range, mm; no power in β's band), LAYOUT_POWER_SHARE of
#: its variance a power law (β 4) flat beyond a scale in LAYOUT_LARGEST_MM (ragged outlines; it
#: also keeps β where it was). Scaled by 4·d·(1 − d) for the breast's density d, it moves the
#: cloud's coverage by LAYOUT_COVERAGE per sd on the logit scale and the gland's peak fraction by
#: exp(LAYOUT_PEAK per sd). Chosen on 12 film views drawn at 0.2 mm (DATASETS.md, "Dense regions"):
#: patch contrast 0.031 → 0.063 (the CBIS films' 0.084) with β, tissue power and curvature shape
#: about where they were; a larger peak factor (0.6) put clusters in dense regions so near white
#: on DR displays that a large rod-like cluster stood only 0.05 above its surroundings.
LAYOUT_SIGMA_MM = (6.0, 12.0)
LAYOUT_LARGEST_MM = (30.0, 60.0)
LAYOUT_POWER_SHARE = 0.6
LAYOUT_COVERAGE = 3.0
LAYOUT_PEAK = 0.5
#: The fat lobules thin out in dense regions and gather in fatty ones: their holes in the gland
#: scale by 2·expit(−LAYOUT_LOBULE_FAT × patchiness × layout) (synth v16; ``_glandular``): the
#: breast's mean lobule fat kept, a BI-RADS D breast's (patchiness 0.51) nearly even so a cyst
#: there still hides (``test_synth_soft_tissue``; exp(−2 × layout) gave 0.90×, wanted under 0.8).
#: With synth v15's lower GLAND_PEAK the film views' dense regions were fainter than the CBIS
#: films' (seed 5105's 8 views: patch contrast 0.67×, intensity p95 0.73 against 0.87). Raising
#: LAYOUT_PEAK to 1.4 brought them to 0.91× and 0.85 but took the DR views' β from 3.16 to 3.45
#: (reverted); filling the lobules in the dense regions adds low-frequency brightness while taking
#: the lobules' edges out of them: patch 0.81×, p95 0.79, DR β 3.16 → 3.25 (test seed 360), film
#: β 3.19 → 3.24 (films 3.15) (DATASETS.md, "Lobules in dense regions").
LAYOUT_LOBULE_FAT = 3.0
#: The septa between fat lobules (synth v12, ``_septa``): each wall of ``_glandular``'s lobule
#: layers is a fibrous sheet; seen edge-on it is a line of SEPTA_PATH_MM glandular-equivalent
#: path (the wall's extent along the beam) and a half-width drawn in SEPTA_WIDTH_MM (a 0.25 mm
#: sheet 6 mm deep, blurred), fragmented by a smooth field (a wall tilted to the beam adds
#: little). Chosen with the strands thinned from 0.45 to 0.1 mm/mm², the gland's peak lowered
#: from 0.42-0.595, the layout's coverage raised from 2.5 and its peak from 0.45 (DATASETS.md,
#: "Septa"). On seed 5105's 12 film views (``test_film_tissue_contrast…``) line share 0.332 →
#: 0.351 (the CBIS films' 0.373), β 2.97 → 3.12 (films 3.15), tissue power 1.20× → 1.37×.
SEPTA_PATH_MM = 3.8  # 6.0 until synth v15 (GLAND_PEAK)
SEPTA_WIDTH_MM = (0.2, 0.4)


@dataclass(frozen=True)
class Tissue:
    glandular: np.ndarray  # fibroglandular fraction of the tissue path, 0..1
    extra_mm: np.ndarray  # glandular-equivalent path of ligaments, ducts and vessels, mm


def build_tissue(breast: Breast, view: str, maps: ViewMaps, shape: tuple[int, int], spacing: float,
                 rng: np.random.Generator, layout_rng: np.random.Generator | None = None) -> Tissue:
    """Background of ``view`` on the output grid (``shape`` at ``spacing`` mm).

    layout_rng: the stream of the dense regions (``_layout``); ``generate_study`` gives each view
    one of its own so the rest of a seed's draws stay as synth v10 made them. Without it, it is
    taken from ``rng``.
    """
    if layout_rng is None:
        layout_rng = np.random.default_rng(rng.integers(2 ** 63))
    step = max(spacing, TISSUE_GRID_MM)
    grid = (max(int(round(shape[0] * spacing / step)), 8), max(int(round(shape[1] * spacing / step)), 8))
    edge = _on_grid(maps.edge_mm, grid)
    nipple = (maps.nipple[0] * spacing, maps.nipple[1] * spacing)  # mm
    half = maps.half_height_px * spacing
    layout = _layout(grid, step, layout_rng)
    # The septa draw from the layout's stream after it: every synth v11 draw stays as it was.
    gland, septa = _glandular(breast, edge, nipple, half, grid, step, rng, layout,
                              np.random.default_rng(layout_rng.integers(2 ** 63)))
    extra = septa + _ligaments(breast, edge, grid, step, rng)
    extra += _ducts(breast, nipple, half, grid, step, rng)
    extra += _vessels(breast, view, nipple, half, grid, step, rng)
    # Their own stream: how many strands a breast holds must not shift what is drawn after them.
    extra += _trabeculae(edge, nipple, grid, step, np.random.default_rng(rng.integers(2 ** 63)))
    if grid != shape:
        gland, extra = upsample(gland, shape), upsample(extra, shape)
    return Tissue(glandular=np.clip(gland, 0.0, 1.0).astype(np.float32), extra_mm=extra.astype(np.float32))


def _on_grid(values: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    if values.shape == grid:
        return values
    rows = (np.arange(grid[0]) * values.shape[0] / grid[0]).astype(int)
    cols = (np.arange(grid[1]) * values.shape[1] / grid[1]).astype(int)
    return values[np.ix_(rows, cols)]


def _envelope(breast: Breast, edge: np.ndarray, nipple: tuple[float, float], half: float,
              shape: tuple[int, int], step: float, rng: np.random.Generator) -> np.ndarray:
    """Probability of gland: a cone behind the nipple, a subcutaneous fat layer, retromammary fat."""
    rows, cols = shape
    r_mm = (np.arange(rows, dtype=np.float32)[:, None] + 0.5) * step
    c_mm = (np.arange(cols, dtype=np.float32)[None, :] + 0.5) * step
    offset = rng.uniform(-0.25, 0.15) * half
    across = np.exp(-(((r_mm - nipple[0] - offset) / (rng.uniform(0.55, 0.85) * half)) ** 2))
    along = np.clip(c_mm / max(nipple[1], 1.0), 0.0, 1.0)
    along = np.clip(np.sin(np.pi * (0.12 + 0.8 * along)), 0.0, None) ** 0.6
    subcut = 1.0 - np.exp(-edge / rng.uniform(4.0, 12.0))
    return (across * along * subcut).astype(np.float32)


def _layout(shape: tuple[int, int], step: float, rng: np.random.Generator) -> np.ndarray:
    """Where the gland gathers: a smooth zero-mean field of unit sd (see LAYOUT_SIGMA_MM).

    Fibroglandular tissue is not spread evenly through a breast: it lies in dense regions with
    fatty ones between, so at one distance from the skin a film shows near-white tissue beside
    dark fat. Synth v2-v10 spread it evenly (patch contrast 0.4× the CBIS-DDSM films',
    ``realism_layout``). The Gaussian part carries the regions without adding power at the
    1-7 mm periods β is fitted on; the power-law part gives them ragged outlines.
    """
    coarse = (max(int(shape[0] * step), 8), max(int(shape[1] * step), 8))  # about 1 mm pixels
    pixel_mm = shape[0] * step / coarse[0]
    blur = ndimage.gaussian_filter(rng.standard_normal(coarse), rng.uniform(*LAYOUT_SIGMA_MM) / pixel_mm)
    blur = upsample((blur / max(float(blur.std()), 1e-9)).astype(np.float32), shape)
    ragged = smooth_field(shape, step, 4.0, rng, largest_mm=rng.uniform(*LAYOUT_LARGEST_MM))
    return (np.sqrt(1.0 - LAYOUT_POWER_SHARE) * blur + np.sqrt(LAYOUT_POWER_SHARE) * ragged).astype(np.float32)


def _glandular(breast: Breast, edge: np.ndarray, nipple: tuple[float, float], half: float,
               shape: tuple[int, int], step: float, rng: np.random.Generator, layout: np.ndarray,
               septa_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(fibroglandular fraction, the lobules' septa in mm): soft power-law clouds and strands,
    holed by layers of fat lobules, the walls between lobules fibrous septa (``_septa``).

    Along each ray the beam crosses several layers of fat lobules (5–15 mm spheres wrapped in
    fibrous septa). Each layer removes a sphere's chord of gland (the dark round lobules), and
    its cell walls are the septa (the bright rims; ``_septa`` draws them from ``septa_rng`` so
    the lobules' own draws stay as synth v11 made them). ``layout`` (``_layout``)
    gathers the gland into dense regions: more of the cloud is gland there, and denser gland.
    """
    env = _envelope(breast, edge, nipple, half, shape, step, rng)
    coverage = np.clip(breast.density * 1.6 * env, 0.005, 0.97)
    # BI-RADS B and C are the patchy ones ("scattered areas", "heterogeneously dense"); an almost
    # entirely fatty or an extremely dense breast is much the same throughout.
    patchiness = 4.0 * breast.density * (1.0 - breast.density)
    layout = patchiness * layout
    coverage = special.expit(special.logit(coverage) + LAYOUT_COVERAGE * layout)
    # Synth v5: the cloud is steeper (β 3.7) and flat only below 1/(5-12 mm), so its power sits at
    # lobule scales; the thin strands of ``_trabeculae`` carry the fine structure. v4's cloud (β 3.0,
    # floor 9-21 mm) had the films' β but made the texture soft clouds: line share 0.29 against
    # the films' 0.37, blob share 0.070 against 0.044 (DATASETS.md, "Strands").
    cloud = power_law_field(shape, step, CLOUD_BETA, rng, largest_mm=rng.uniform(*CLOUD_FLOOR_MM),
                            aniso=rng.uniform(1.0, 1.6))
    strands = radial_field(shape, step, nipple, 3.0, rng, stretch=rng.uniform(2.5, 5.0))
    mix = rng.uniform(0.15, 0.5)
    cloud = (np.sqrt(1 - mix) * cloud + np.sqrt(mix) * strands).astype(np.float32)
    tissue = special.expit((cloud - special.ndtri(1.0 - coverage)) / rng.uniform(0.6, 1.1))
    layers = int(rng.integers(2, 4))
    lobule_fat = rng.uniform(0.4, 0.7) * (1.0 - 0.7 * breast.density)
    holes = np.zeros(shape, dtype=np.float32)
    septa = np.zeros(shape, dtype=np.float32)
    for _ in range(layers):
        cell_mm = rng.uniform(8.0, 20.0)
        cells = lobule_cells(shape, step, cell_mm, rng, warp=0.25)
        holes += cells.chord
        septa += _septa(cells.gap_mm, cell_mm, shape, step, septa_rng)
    # Fewer lobules where the gland gathers, more where it thins (LAYOUT_LOBULE_FAT).
    holes *= lobule_fat / (0.67 * layers) * (2.0 * special.expit(-LAYOUT_LOBULE_FAT * patchiness * layout))
    gland = tissue * np.clip(1.0 - holes, 0.0, 1.0)
    # The projection sums many layers: most pixels hold some gland and some fat.
    peak = (rng.uniform(*GLAND_PEAK) + GLAND_PEAK_PER_DENSITY * breast.density) * np.exp(LAYOUT_PEAK * layout)
    septa *= np.clip(edge / 6.0, 0.0, 1.0)
    return (peak * gland + 0.04 * env).astype(np.float32), septa.astype(np.float32)


def _septa(gap_mm: np.ndarray, cell_mm: float, shape: tuple[int, int], step: float,
           rng: np.random.Generator) -> np.ndarray:
    """Glandular-equivalent path (mm) of the fibrous septa between one layer of fat lobules.

    Real films show the fat lobules outlined by bright curved lines that meet and cross where
    lobules touch and layers overlap (VICTRE and OpenVCT build the breast from such fat
    compartments wrapped in fibrous walls). Synth v2-v11 drew the lobules only as holes in the
    gland, so fat showed flat and the lines were long straight strands: an arc junction on a
    real film was a pattern the detector had never seen as background, and it marked them.
    Each wall is a sheet; edge-on it adds SEPTA_PATH_MM along the beam in a line of half-width
    SEPTA_WIDTH_MM. A wall tilted to the beam spreads that path thin, so a smooth field (on the
    lobules' own scale) fades whole stretches of wall. A round shell (a sphere's wall: path
    2R(√(1 − s²) − √((1 − t/R)² − s²))) was tried first: its long inward tails put the power at
    lobule scales and took β to 3.4.
    """
    line = SEPTA_PATH_MM * np.exp(-((gap_mm / rng.uniform(*SEPTA_WIDTH_MM)) ** 2))
    visible = np.clip(0.35 + 0.8 * smooth_field(shape, step, 3.0, rng, largest_mm=2.0 * cell_mm), 0.0, None)
    return (line * visible).astype(np.float32)


def _ligaments(breast: Breast, edge: np.ndarray, shape: tuple[int, int], step: float,
               rng: np.random.Generator) -> np.ndarray:
    """Cooper's ligaments: septa of larger fat compartments, seen as thin bright arcs.

    A septum ~0.1–0.3 mm thick seen edge-on has a path of several mm along the beam, so its
    projection is a thin line of a few mm of glandular-equivalent path; they show best in the
    subcutaneous fat and fade towards the thin edge.
    """
    out = np.zeros(shape, dtype=np.float32)
    for _ in range(int(rng.integers(1, 3))):
        cells = lobule_cells(shape, step, rng.uniform(15.0, 35.0), rng, warp=0.25)
        width = rng.uniform(0.35, 0.7)
        strength = power_law_field(shape, step, 3.0, rng, largest_mm=30.0)
        line = np.exp(-((cells.gap_mm / width) ** 2)) * np.clip(0.5 + 0.7 * strength, 0.0, None)
        out += rng.uniform(0.6, 1.8) * line
    return (out * np.clip(edge / 8.0, 0.0, 1.0)).astype(np.float32)


def _trabeculae(edge: np.ndarray, nipple: tuple[float, float], shape: tuple[int, int], step: float,
                rng: np.random.Generator) -> np.ndarray:
    """Fibrous strands: septa and trabeculae seen edge-on, long thin bright lines, crossing.

    On film most of the parenchyma's fine structure is such strands at every depth, running
    roughly towards the nipple and crossing at shallow angles. Each is a smooth curve of
    ``STRAND_LENGTH_MM`` with a half-width of ``STRAND_RADIUS_MM`` tapering at its ends; being a
    sheet seen edge-on, its path along the beam is its depth (``STRAND_DEPTH_MM``), not a tube's
    chord. ``STRAND_DENSITY`` is their length per breast area (mm/mm²).
    """
    inside = np.argwhere(edge > 2.0)
    out = np.zeros(shape, dtype=np.float32)
    if not len(inside):
        return out
    n = int(STRAND_DENSITY * len(inside) * step * step / float(np.mean(STRAND_LENGTH_MM)))
    picks = inside[rng.integers(0, len(inside), n)]
    groups: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in range(3)]
    for r, c in picks:
        start = (np.array([r, c], dtype=np.float64) + 0.5) * step
        heading = float(np.arctan2(nipple[0] - start[0], nipple[1] - start[1])) + rng.normal(0.0, STRAND_SPREAD_RAD)
        half = rng.uniform(*STRAND_LENGTH_MM) / 2
        fwd = wander(rng, start, heading, half, step, STRAND_TORTUOSITY)
        back = wander(rng, start, heading + np.pi, half, step, STRAND_TORTUOSITY)
        path = np.concatenate([back[::-1], start[None, :], fwd])
        taper = np.sin(np.linspace(0.1, np.pi - 0.1, len(path))) ** 0.5
        k = int(rng.integers(0, 3))
        groups[k][0].append(path)
        groups[k][1].append(rng.uniform(*STRAND_RADIUS_MM) * taper)
    lo, hi = STRAND_DEPTH_MM
    for k, (paths, radii) in enumerate(groups):
        if paths:  # three depth classes: one blur pass per class, not per strand
            chord = 2 * float(np.mean(np.concatenate(radii)))
            out += tubes(shape, step, paths, radii) * ((lo + (hi - lo) * (k + 0.5) / 3) / chord)
    return (out * np.clip(edge / 6.0, 0.0, 1.0)).astype(np.float32)


def _ducts(breast: Breast, nipple: tuple[float, float], half: float, shape: tuple[int, int], step: float,
           rng: np.random.Generator) -> np.ndarray:
    """Lactiferous ducts: a few trunks from the nipple back into the breast, branching and thinning."""
    paths, radii = [], []
    start = np.array(nipple) - np.array([0.0, 3.0])
    for _ in range(int(rng.integers(5, 11))):
        heading = np.pi + rng.normal(0.0, 0.45)  # towards the chest wall
        length = rng.uniform(0.25, 0.55) * nipple[1]
        path = wander(rng, start, heading, length, step * 0.5, 0.08)
        r = np.linspace(rng.uniform(0.5, 1.0), 0.15, len(path))
        paths.append(path)
        radii.append(r)
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(len(path) // 4, len(path) - 1))
            branch = wander(rng, path[k], heading + rng.choice([-1, 1]) * rng.uniform(0.3, 0.8),
                            length * rng.uniform(0.2, 0.5), step * 0.5, 0.1)
            paths.append(branch)
            radii.append(np.linspace(r[k] * 0.8, 0.1, len(branch)))
    return tubes(shape, step, paths, radii) * rng.uniform(0.6, 1.2)


def _vessels(breast: Breast, view: str, nipple: tuple[float, float], half: float, shape: tuple[int, int],
             step: float, rng: np.random.Generator) -> np.ndarray:
    """Vessels: long tortuous tubes entering from the chest wall / axilla and running towards the nipple."""
    paths, radii = [], []
    for _ in range(int(rng.integers(2, 7))):
        row0 = nipple[0] + rng.uniform(-1.0, 0.8) * half
        if view == "MLO" and rng.random() < 0.5:
            row0 = rng.uniform(0.05, 0.4) * nipple[0]
        start = np.array([row0, rng.uniform(0.0, 0.15) * nipple[1]])
        heading = np.arctan2(nipple[0] - row0, nipple[1]) + rng.normal(0.0, 0.25)
        path = wander(rng, start, heading, rng.uniform(0.5, 1.0) * nipple[1], step * 0.5, 0.25)
        r0 = rng.uniform(0.4, 1.4)
        paths.append(path)
        radii.append(np.linspace(r0, r0 * 0.5, len(path)))
    return tubes(shape, step, paths, radii) * 1.05
