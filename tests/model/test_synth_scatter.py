"""Scatter in the synthetic projection: made by tissue, in proportion to what the beam loses."""

from __future__ import annotations

import numpy as np

from mammocad.model.synth.acquisition import exposure_of


def test_a_breast_with_no_tissue_in_the_beam_scatters_nothing() -> None:
    """Air in the breast outline (L = 0) passes the open beam and adds no scatter anywhere.

    Synth v2–v6 spread SPR × primary from every pixel of the outline, tissue or not, so the
    thin rim of a fatty breast sent the most scatter of all into a skin marker's shadow.
    """
    mask = np.zeros((200, 160), dtype=np.float32)
    mask[20:180, :120] = 1.0
    exposure = exposure_of(np.zeros(mask.shape, dtype=np.float32), mask, 0.2, 0.5, 20.0)
    np.testing.assert_allclose(exposure, 1.0, atol=1e-6)


def test_thick_tissue_gives_the_set_scatter_to_primary_ratio() -> None:
    """In the middle of a thick, uniform breast scatter / primary is SPR × (1 − e^(−L)) ≈ SPR."""
    shape, spacing, spr, line = (600, 600), 0.2, 0.4, 3.0
    mask = np.ones(shape, dtype=np.float32)
    exposure = exposure_of(np.full(shape, line, dtype=np.float32), mask, spacing, spr, 15.0)
    primary = np.exp(-line)
    ratio = (exposure[300, 300] - primary) / primary
    assert abs(ratio - spr * (1 - np.exp(-line))) < 0.01
    assert 0.9 * spr < ratio < spr


def test_scatter_falls_as_the_rim_thins() -> None:
    """Per unit of primary, a thin rim scatters less than the thick middle: its source is primary × (1 − e^(−L))."""
    shape, spacing, spr = (400, 800), 0.2, 0.5
    cols = np.arange(shape[1])
    line = np.broadcast_to(np.where(cols < 400, 3.0, np.maximum(3.0 * (799 - cols) / 399, 0.0)), shape)
    mask = np.ones(shape, dtype=np.float32)
    exposure = exposure_of(line.astype(np.float32), mask, spacing, spr, 2.0)  # narrow: local sources dominate
    primary = np.exp(-line)
    spr_middle = (exposure[200, 200] - primary[200, 200]) / primary[200, 200]
    spr_rim = (exposure[200, 790] - primary[200, 790]) / primary[200, 790]
    assert spr_rim < 0.3 * spr_middle
