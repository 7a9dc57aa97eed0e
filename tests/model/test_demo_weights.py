"""The shipped demo weights as a fresh clone has them: labelled honestly, and they work.

``mammocad analyze`` runs without ``--weights`` (the packaged file) on a synthetic study
the test generates: the first study of its seed with one malignant breast and a benign
finding, whatever kinds they are. Every breast with calcifications must get a reported mark
on one of its clusters. 0.15.0-demo finds about two thirds of synth v13's held-out clusters at
1 false mark per image and calls benign/malignant weakly (MODEL_CARD.md), so class and breast
calls are not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammocad.model.checkpoint import default_weights_path, read_header
from mammocad.model.synth.generate import generate_study
from tests.model.test_analyze_cli import run_cli

#: The first study of seed 424242 with one malignant breast and a benign finding: an amorphous
#: cluster (the faintest kind) on left CC and MLO, round/punctate calcifications on right CC.
STUDY_SEED, STUDY_INDEX = 424242, 5


def test_demo_weights_are_labelled_and_described_by_their_card() -> None:
    path = default_weights_path()
    spec, preprocess, meta, _ = read_header(path)
    assert path.stat().st_size <= 25 * 2**20
    assert meta["synthetic"] is True and "synthetic data only" in meta["not_for_diagnosis"]
    assert meta["version"].endswith("-demo")
    # Thresholds come from validation images: at training, or by `calibrate` on a training config's.
    chosen_on = meta["thresholds"]["chosen_on"]
    assert chosen_on == "validation" or chosen_on.startswith("[[validation]] of config/train-"), chosen_on
    card = (path.parent / "MODEL_CARD.md").read_text()
    assert "NOT FOR CLINICAL USE" in card and f"`{meta['version']}`" in card
    if chosen_on != "validation":
        assert chosen_on.split(":")[0].removeprefix("[[validation]] of ") in card
    # The card says how many orientations each image is analysed in, and on what.
    if spec.test_time_orientations > 1:
        assert f"{spec.test_time_orientations} orientations" in card
        assert not spec.orientation_crop_size or f"{spec.orientation_crop_size}-px crops" in card
    # The card states the thresholds and the rule the file really uses.
    for value in (meta["lesion_score_threshold"], meta["malignant_threshold"], spec.operating_threshold):
        assert f"{value:.3f}" in card, value
    assert f"`{spec.risk_method}`" in card and f"{preprocess.working_spacing_mm:g} mm/pixel" in card


@pytest.mark.slow
def test_analyze_finds_a_synthetic_studys_calcifications_with_the_shipped_weights(tmp_path: Path) -> None:
    study = generate_study(STUDY_INDEX, seed=STUDY_SEED)
    folder = tmp_path / "study"
    for ds, ann in zip(study.datasets, study.annotations, strict=True):
        (folder / ann.image_path).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / ann.image_path, enforce_file_format=True)
    truth = {ann.extra["sop_instance_uid"]: ann for ann in study.annotations}
    assert len({ann.laterality for ann in study.annotations if ann.breast_malignant}) == 1
    assert any(les.lesion_class.value == "benign" for ann in study.annotations for les in ann.lesions)

    proc = run_cli(["analyze", str(folder), "--json", "--device", "cpu"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["synthetic_weights"] is True and report["model_version"].endswith("-demo")
    (result,) = report["studies"]
    found: dict[str, bool] = {}
    for image in result["images"]:
        ann = truth[image["image"]["sop_instance_uid"]]
        for gt in ann.lesions:
            x1, y1, x2, y2 = gt.box
            hit = any(x1 <= (les["box"][0] + les["box"][2]) / 2 <= x2 and y1 <= (les["box"][1] + les["box"][3]) / 2 <= y2
                      for les in image["lesions"])
            found[ann.laterality] = found.get(ann.laterality, False) or hit
    assert found and all(found.values()), found
