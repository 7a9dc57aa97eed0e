"""What the node answers for an image whose identity the results could not cite."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factories
from tests.node.conftest import NodeEnv


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "store_refused"]


@pytest.mark.parametrize("series", [None, "", "1.2.3/../etc"], ids=["absent", "empty", "not-a-uid"])
def test_mammogram_without_a_series_uid_refused(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture, series: str | None) -> None:
    """Every result cites the image's series (GSPS Referenced Series, SR evidence: Type 1), so an
    image without one is refused visibly at receipt, like one without a Study Instance UID."""
    ds = factories.make_mammogram()
    if series is None:
        del ds.SeriesInstanceUID
    else:
        ds.SeriesInstanceUID = series
    good = factories.make_mammogram(study_uid=str(ds.StudyInstanceUID))
    env = start_node()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        result = env.storescu(factories.write(ds, tmp_path / "noseries.dcm"),
                              factories.write(good, tmp_path / "good.dcm"), opts=("-v", "-nh"))
    responses = [line for line in result.stderr.splitlines() if "Received Store Response" in line]
    assert len(responses) == 2 and "Success" in responses[1], result.stderr
    assert "Error: CannotUnderstand" in responses[0], result.stderr  # DCMTK's name for 0xCxxx
    assert not env.spool.image_path(str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)).exists()
    [refused] = _refusals(caplog)
    # The statuses of a missing / malformed Study Instance UID.
    assert refused.status == ("0xC001" if series else "0xC000")  # type: ignore[attr-defined]
    assert "SeriesInstanceUID" in refused.error  # type: ignore[attr-defined]
    assert not series or series not in refused.error  # type: ignore[attr-defined]  # never echoed
    env.settle()
    assert [args[2] for _, args in env.tasks("gpu")] == [str(good.SOPInstanceUID)]


def test_set_aside_object_without_a_series_uid_still_accepted(start_node: Callable[..., NodeEnv],
                                                               tmp_path: Path) -> None:
    """Objects the node only keeps (other modalities, our own SRs sent back) are never cited."""
    ct = factories.make_mammogram(sop_class=factories.CT_IMAGE)
    ct.Modality = "CT"
    del ct.SeriesInstanceUID
    env = start_node()
    result = env.storescu(factories.write(ct, tmp_path / "ct.dcm"), opts=("-v", "-nh"))
    assert "Store Response (Success)" in result.stderr, result.stderr
    assert env.spool.other_path(str(ct.StudyInstanceUID), str(ct.SOPInstanceUID)).exists()


def test_data_set_of_another_instance_than_the_command_refused(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """PS3.7 9.1.1: the data set is the instance the command's Affected SOP Instance UID names;
    one that is not would be stored under a UID the sender did not mean (0xA900, not stored)."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from tests.faults.raw_send import MG, body_of, part10, send_files

    ds = factories.make_mammogram()
    command_uid = generate_uid()
    path = part10(tmp_path / "other.dcm", body_of(ds), sop_uid=command_uid)
    env = start_node()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        assert send_files(env.port, [path], contexts=[(MG, ExplicitVRLittleEndian)]) == [0xA900]
    assert not env.spool.image_path(str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)).exists()
    assert not env.spool.image_path(str(ds.StudyInstanceUID), command_uid).exists()
    [refused] = _refusals(caplog)
    assert "Affected SOP Instance UID" in refused.error  # type: ignore[attr-defined]
    env.settle()
    assert env.tasks("gpu") == []
