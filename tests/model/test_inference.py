"""The Detector on CPU with a tiny random checkpoint: contracts, not accuracy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless

from mammocad.config import OutputKind
from mammocad.model.checkpoint import CheckpointError
from mammocad.model.inference import Detector
from mammocad.model.results import ImageResult, StudyResult
from mammocad.model.standardise import standardise
from mammocad.results.outputs import build_outputs
from tests.factories import make_four_view_study, make_mammogram, write
from tests.model.conftest import TINY_META
from tests.model.turned_films import turned, turned_boxes


def test_load_exposes_model_identity(tiny_detector: Detector) -> None:
    assert tiny_detector.model_name == TINY_META["model_name"]
    assert tiny_detector.model_version == TINY_META["version"]
    assert tiny_detector.synthetic_weights is True and tiny_detector.device == "cpu"


def test_lesions_are_in_original_pixels_of_the_image(tiny_detector: Detector) -> None:
    # Random weights put their boxes where they please, often on the padded image edge, which
    # the breast rule then drops (breast_mask.inside_breast): take the first image size that
    # leaves some. In float32 (CPU inference since 2026-12-04) 400x300 leaves none.
    for rows, columns in ((400, 300), (500, 360), (450, 330), (360, 280)):
        ds = make_mammogram(laterality="L", rows=rows, columns=columns)
        result = tiny_detector.analyze_dataset(ds)
        if result.lesions:
            break
    assert result.error is None and result.model_version == TINY_META["version"]
    assert result.image.sop_instance_uid == ds.SOPInstanceUID and result.image.laterality == "L"
    assert (result.image.rows, result.image.columns) == (rows, columns)
    assert result.lesions, "random weights with score threshold 0.05 find boxes in one of these breasts"
    std = standardise(ds, tiny_detector.preprocess)
    for lesion in result.lesions:
        x1, y1, x2, y2 = lesion.box
        assert 0 <= x1 < x2 <= columns - 1 and 0 <= y1 < y2 <= rows - 1
        # The model saw this box inside its (flipped, cropped, resampled) frame.
        mx1, my1, mx2, my2 = std.transform.to_model(np.array([lesion.box]))[0]
        assert -1 <= mx1 and mx2 <= std.image.shape[1] and -1 <= my1 and my2 <= std.image.shape[0]
        assert 0 <= lesion.probability_malignant <= 1 and 0 <= lesion.score <= 1
        assert (lesion.lesion_class.label == 2) == (lesion.probability_malignant >= 0.5)
    assert ImageResult.from_dict(result.to_dict()) == result


def test_predict_standardised_for_evaluation(tiny_detector: Detector) -> None:
    image = standardise(make_mammogram(rows=300, columns=240)).image
    boxes, labels, scores, p_mal = tiny_detector.predict_standardised(image)
    assert boxes.shape[1] == 4 and len(boxes) == len(labels) == len(scores) == len(p_mal)
    assert set(labels.tolist()) <= {1, 2}
    assert (boxes[:, 2] <= image.shape[1] - 1).all() and (boxes[:, 3] <= image.shape[0] - 1).all()


def test_negative_image_gives_no_lesion_and_low_risk(tiny_detector: Detector) -> None:
    ds = make_mammogram(laterality="R", rows=200, columns=160)
    air = np.random.default_rng(0).integers(0, 3, (200, 160))  # nothing but air: detector noise
    ds.PixelData = air.astype(np.uint16).tobytes()
    result = tiny_detector.analyze_dataset(ds)
    assert result.error is None and result.lesions == ()
    (breast,) = tiny_detector.breast_risks([result])
    assert breast.laterality == "R" and breast.risk == 0.0 and not breast.malignant


def test_a_blank_view_is_an_error_and_leaves_its_breasts_risk_alone(tiny_detector: Detector) -> None:
    """All-zero pixel data is a broken image, not a view without findings: counted as analysed, it
    would be a zero in the breast's two-view mean."""
    ds = make_mammogram(laterality="R", rows=200, columns=160)
    ds.PixelData = bytes(len(ds.PixelData))
    result = tiny_detector.analyze_dataset(ds)
    assert not result.analysed and result.error and "blank image" in result.error
    assert result.image.sop_instance_uid == ds.SOPInstanceUID and result.lesions == ()


def test_an_image_that_fails_before_analysis_names_the_breast_it_would_have_been_analysed_as(
        tiny_detector: Detector) -> None:
    """A standardisation failure cited the image by Image Laterality alone: a left breast in its own
    layout (A\\R) labelled "R" was analysed as left when readable, but reported as right when not."""
    ds = make_mammogram(laterality="R", rows=200, columns=160)
    ds.PatientOrientation = ["A", "R"]
    ds.PixelData = bytes(len(ds.PixelData))
    result = tiny_detector.analyze_dataset(ds)
    assert result.error and result.image.laterality == "L"


def _codes(item: Dataset) -> set[str]:
    """Every code value in an SR content tree (concept names and coded values)."""
    found = set()
    for keyword in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
        found |= {str(code.CodeValue) for code in item.get(keyword, [])}
    for child in item.get("ContentSequence", []):
        found |= _codes(child)
        for modifier in child.get("ConceptCodeSequence", []):
            found |= _codes(modifier)
    return found


def test_reports_cite_the_breast_the_image_was_analysed_as(tiny_detector: Detector,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A left breast stored as A\\R (chest wall at column 0, as the pixels say) but labelled "R":
    standardisation placed it as a left breast (Patient Orientation), while the results cited Image
    Laterality, so the SRs, SC and GSPS and the breast risk named the right breast for marks placed
    on the left one. They all name the left breast now, and the conflict is one WARNING line
    without patient data."""
    ds = make_mammogram(laterality="L", rows=220, columns=170)
    ds.PatientOrientation, ds.ImageLaterality, ds.Laterality = ["A", "R"], "R", "R"
    with caplog.at_level(logging.INFO):
        result = tiny_detector.analyze_dataset(ds)
    assert result.error is None and result.image.laterality == "L"
    conflicts = [r for r in caplog.records if r.getMessage() == "orientation_conflict"]
    assert len(conflicts) == 1 and conflicts[0].levelno == logging.WARNING
    assert (conflicts[0].laterality, conflicts[0].used) == ("R", "L")  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "PID-TEST" in str(r.__dict__) or "Doe" in str(r.__dict__)]
    breasts = tiny_detector.breast_risks([result])
    assert [b.laterality for b in breasts] == ["L"]
    study = StudyResult(study_uid=str(ds.StudyInstanceUID), images=(result,), breasts=breasts,
                        model_name=result.model_name, model_version=result.model_version, synthetic_weights=True)
    outputs = build_outputs(study, {str(ds.SOPInstanceUID): ds}, list(OutputKind), device="cpu")
    assert {str(o.Modality) for o in outputs} >= {"SR", "PR", "MG"}
    for out in outputs:
        if "Laterality" in out:  # SC and GSPS: one series per breast
            assert out.Laterality == "L", out.SOPClassUID
        codes = _codes(out)
        assert not codes & {"73056007", "24028007"}, out.SOPClassUID  # SCT right breast / right
    assert "80248007" in _codes(next(o for o in outputs if o.SOPClassUID.endswith(".88.50")))  # left breast


@pytest.mark.parametrize("k", [1, -1])
def test_lesions_of_an_image_stored_turned_are_reported_in_its_stored_pixels(tiny_detector: Detector, k: int) -> None:
    """An image stored turned by 90 degrees (Patient Orientation L\\A: the chest wall at the top) is
    analysed as the upright one, and its marks come back in the turned stored grid: the same
    marks, each where the turn puts it (``tests/model/test_standardise.py`` does it on a real film)."""
    for rows, columns in ((500, 360), (450, 330), (600, 450)):  # random weights: one that leaves marks
        upright = make_mammogram(laterality="R", rows=rows, columns=columns, seed=5)
        up = tiny_detector.analyze_dataset(upright)
        if up.lesions:
            break
    assert up.lesions, "random weights find boxes in one of these breasts"
    stored = turned(upright, k)
    result = tiny_detector.analyze_dataset(stored)
    assert result.error is None and (result.image.rows, result.image.columns) == (columns, rows)
    assert result.image.laterality == "R"
    expected = turned_boxes(np.array([les.box for les in up.lesions]), (rows, columns), k)
    np.testing.assert_allclose([les.box for les in result.lesions], expected, atol=1e-4)
    assert [les.score for les in result.lesions] == pytest.approx([les.score for les in up.lesions])


def test_bad_images_become_errors_not_exceptions(tiny_detector: Detector, tmp_path: Path) -> None:
    ds = make_mammogram()
    del ds.PixelData
    result = tiny_detector.analyze_dataset(ds)
    assert result.error and "Pixel Data" in result.error and result.image.sop_instance_uid == ds.SOPInstanceUID
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 10)
    assert "not a readable DICOM" in (tiny_detector.analyze_file(junk).error or "")


def test_four_view_study_compressed_files(tiny_detector: Detector, tmp_path: Path) -> None:
    paths = [write(ds, tmp_path / f"{i}.dcm")
             for i, ds in enumerate(make_four_view_study(rows=160, columns=128, transfer_syntax=JPEG2000Lossless))]
    results = [tiny_detector.analyze_file(p) for p in paths]
    assert all(r.error is None for r in results)
    breasts = tiny_detector.breast_risks(results)
    assert [b.laterality for b in breasts] == ["L", "R"] and all(b.n_images == 2 for b in breasts)


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Detector.load(str(tmp_path / "none.pt"), device="cpu")


def test_only_lesions_at_the_reporting_threshold_are_reported(tiny_checkpoint: Path) -> None:
    det = Detector.load(str(tiny_checkpoint), device="cpu")
    ds = make_mammogram(laterality="L", rows=600, columns=450, seed=5)
    everything = det.analyze_dataset(ds)
    scores = sorted(les.score for les in everything.lesions)
    assert len(scores) >= 2 and scores[0] < scores[-1]
    top = det.with_lesion_threshold(scores[-1])
    reported = top.analyze_dataset(ds)
    assert reported.lesions == tuple(les for les in everything.lesions if les.score >= scores[-1])
    assert det.lesion_score_threshold < scores[0] and det.analyze_dataset(ds).lesions == everything.lesions  # untouched
    assert det.with_lesion_threshold(1.01).breast_risks([everything])[0].risk == 0.0
    assert det.breast_risks([everything])[0].risk > 0.0


def test_unknown_or_absent_device_is_a_clear_error(tiny_checkpoint: Path) -> None:
    from mammocad.model.devices import DeviceError, resolve_device

    with pytest.raises(DeviceError, match="cuda:63"):
        Detector.load(str(tiny_checkpoint), device="cuda:63")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("auto") in ("cpu", "cuda")


def test_header_only_info_reports_like_the_detector(tiny_checkpoint: Path) -> None:
    """Results workers use DetectorInfo (no network in memory): same identity, same risks."""
    from mammocad.model.info import DetectorInfo

    det = Detector.load(str(tiny_checkpoint), device="cpu")
    info = DetectorInfo.read(str(tiny_checkpoint))
    assert info == det.info
    assert (info.model_name, info.model_version) == (det.model_name, det.model_version)
    results = [det.analyze_dataset(make_mammogram(laterality=lat, rows=600, columns=450, seed=s))
               for lat, s in (("L", 5), ("R", 6))]
    assert info.breast_risks(results) == det.breast_risks(results)
    assert [b.laterality for b in info.breast_risks(results)] == ["L", "R"]


def test_malignant_cut_off_from_the_checkpoint_decides_each_class(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """metadata["malignant_threshold"] (chosen on validation) replaces 0.5, in the Detector and its info."""
    from mammocad.model.checkpoint import load_checkpoint, save_checkpoint
    from mammocad.model.info import DetectorInfo

    ds = make_mammogram(laterality="L", rows=600, columns=450, seed=5)
    plain = Detector.load(str(tiny_checkpoint), device="cpu").analyze_dataset(ds)
    probs = sorted(les.probability_malignant for les in plain.lesions)
    assert len(probs) >= 2 and probs[0] < probs[-1]
    cut = (probs[0] + probs[-1]) / 2
    ckpt = load_checkpoint(tiny_checkpoint)
    path = save_checkpoint(tmp_path / "cut.pt", ckpt.model, ckpt.spec, ckpt.preprocess,
                           {**ckpt.metadata, "malignant_threshold": cut})
    det = Detector.load(str(path), device="cpu")
    assert det.info.malignant_threshold == cut == DetectorInfo.read(path).malignant_threshold
    result = det.analyze_dataset(ds)
    assert [les.probability_malignant for les in result.lesions] == [les.probability_malignant for les in plain.lesions]
    assert all((les.lesion_class.label == 2) == (les.probability_malignant >= cut) for les in result.lesions)
    assert {les.lesion_class.label for les in result.lesions} == {1, 2}


def test_with_preprocess_reads_images_differently_and_leaves_the_original_untouched(tiny_checkpoint: Path) -> None:
    """The realism report analyses headerless film at a stated spacing; the detector it was given
    must not change underneath other callers, and a lesion threshold chosen for it must carry over."""
    det = Detector.load(str(tiny_checkpoint), device="cpu").with_lesion_threshold(0.123)
    before = det.preprocess
    other = det.with_preprocess(fallback_spacing_mm=0.05, fallback_field_mm=0.0)
    assert det.preprocess is before and det.checkpoint.preprocess is before
    assert (other.preprocess.fallback_spacing_mm, other.preprocess.fallback_field_mm) == (0.05, 0.0)
    assert other.checkpoint.preprocess == other.preprocess and other.model is det.model
    assert other.lesion_score_threshold == 0.123
    ds = make_mammogram(laterality="L", rows=600, columns=450, seed=5)
    first = [les.box for les in det.analyze_dataset(ds).lesions]
    other.analyze_dataset(ds)
    assert [les.box for les in det.analyze_dataset(ds).lesions] == first


def test_with_spec_changes_analysis_settings_only_and_keeps_the_thresholds(tiny_checkpoint: Path) -> None:
    """calibrate analyses in other orientations with a copy; the copy must keep a lesion threshold
    chosen for the detector, report the breast rule it was given, and refuse settings the loaded
    network cannot change (they would be reported but not used)."""
    det = Detector.load(str(tiny_checkpoint), device="cpu").with_lesion_threshold(0.2)
    other = det.with_spec(test_time_orientations=2, operating_threshold=0.7)
    assert (other.spec.test_time_orientations, other.info.operating_threshold) == (2, 0.7)
    assert other.lesion_score_threshold == 0.2 and other.model is det.model
    assert other.checkpoint.spec == other.spec
    assert (det.spec.test_time_orientations, det.info.operating_threshold) != (2, 0.7)
    with pytest.raises(ValueError, match="box_score_thresh.*built into the loaded network"):
        det.with_spec(box_score_thresh=0.5)
