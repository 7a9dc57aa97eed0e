"""``mammocad model average``: the mean of fine-tunes' weights, refused where it means nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mammocad.cli import main
from mammocad.model.averaging import average_checkpoints
from mammocad.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mammocad.model.detector import build_detector
from mammocad.model.standardise import PreprocessSpec
from tests.model.conftest import TINY_META, TINY_SPEC


def _fine_tune(tmp_path: Path, name: str, seed: int, **meta: object) -> Path:
    """A random stand-in for one seed's fine-tune; each run chooses its own operating threshold."""
    torch.manual_seed(seed)
    spec = dataclasses.replace(TINY_SPEC, operating_threshold=0.1 * seed)
    return save_checkpoint(tmp_path / name, build_detector(spec), spec, PreprocessSpec(),
                           {**TINY_META, "version": name, "metrics": {"test": {"x": 1}}, **meta})


def test_the_average_holds_the_mean_of_every_weight_and_says_what_went_in(tmp_path: Path) -> None:
    a = _fine_tune(tmp_path, "a.pt", 1)
    b = _fine_tune(tmp_path, "b.pt", 2, synthetic=False)
    avg = average_checkpoints([a, b])
    sa, sb = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    got = avg.model.state_dict()
    floats = [k for k, v in sa.items() if v.is_floating_point() and not torch.equal(v, sb[k])]
    assert floats, "the two random initialisations must differ for this test to mean anything"
    for key in floats:
        torch.testing.assert_close(got[key], (sa[key] + sb[key]) / 2)
    assert [d["version"] for d in avg.metadata["averaged_from"]] == ["a.pt", "b.pt"]
    assert avg.spec.operating_threshold == load_checkpoint(a).spec.operating_threshold  # calibrate chooses anew
    assert avg.metadata["metrics"] == {}  # the ingredients' metrics do not describe the average
    assert avg.metadata["synthetic"] is False  # one ingredient saw more than synthetic data
    assert average_checkpoints([a, a]).metadata["synthetic"] is True


def test_checkpoints_that_are_not_fine_tunes_of_one_model_are_refused(tmp_path: Path) -> None:
    a = _fine_tune(tmp_path, "a.pt", 1)
    other = dataclasses.replace(TINY_SPEC, box_head_size=32)
    wider = save_checkpoint(tmp_path / "w.pt", build_detector(other), other, PreprocessSpec(), TINY_META)
    coarse = save_checkpoint(tmp_path / "c.pt", build_detector(TINY_SPEC), TINY_SPEC,
                             PreprocessSpec(working_spacing_mm=0.4), TINY_META)
    with pytest.raises(CheckpointError, match="detector spec differs .* in box_head_size"):
        average_checkpoints([a, wider])
    with pytest.raises(CheckpointError, match="preprocessing differs"):
        average_checkpoints([a, coarse])
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([a])


def test_the_command_writes_a_release_file_and_says_to_calibrate_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], logging_restored: None) -> None:
    a, b = _fine_tune(tmp_path, "a.pt", 1), _fine_tune(tmp_path, "b.pt", 2)
    out = tmp_path / "soup.pt"
    assert main(["model", "average", "--weights", str(a), "--weights", str(b), "--out", str(out),
                 "--version", "9.9.9-soup"]) == 0
    printed = capsys.readouterr().out
    assert "model calibrate" in printed and "trained on synthetic data only" in printed
    soup = load_checkpoint(out)
    assert soup.metadata["version"] == "9.9.9-soup"
    assert next(iter(torch.load(out, weights_only=True)["state_dict"].values())).dtype == torch.float16
    assert main(["model", "average", "--weights", str(a), "--weights", str(out), "--out", str(out)]) == 2
    assert "is one of the checkpoints being averaged" in capsys.readouterr().err
