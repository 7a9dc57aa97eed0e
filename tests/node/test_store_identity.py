"""What the node answers for an image whose identity the results could not cite."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset

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


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_mammogram_whose_uid_has_a_leading_zero_refused(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture, keyword: str) -> None:
    """A component with a leading zero passes the spool's rule but not PS3.5 9.1: the results
    cite the UID as received, so they could not be valid; the sender is told at once (0xC001)
    rather than the image being analysed for a report that is never built."""
    ds = factories.make_mammogram()
    bad = "1.2.826.0.1.3680043.8.498.012345"
    setattr(ds, keyword, bad)
    good = factories.make_mammogram(study_uid=None if keyword == "StudyInstanceUID" else str(ds.StudyInstanceUID))
    env = start_node()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        result = env.storescu(factories.write(ds, tmp_path / "zero.dcm"), factories.write(good, tmp_path / "good.dcm"),
                              opts=("-v", "-nh"))
    responses = [line for line in result.stderr.splitlines() if "Received Store Response" in line]
    assert len(responses) == 2 and "Success" in responses[1], result.stderr
    assert "Error: CannotUnderstand" in responses[0], result.stderr
    assert not env.spool.image_path(str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)).exists()
    [refused] = _refusals(caplog)
    assert refused.status == "0xC001"  # type: ignore[attr-defined]
    assert keyword in refused.error and "leading zero" in refused.error  # type: ignore[attr-defined]
    assert bad not in refused.error  # type: ignore[attr-defined]  # never echoed
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


def _store_with_affected_class(port: int, datasets: list[Dataset], affected: dict[str, str]) -> list[int]:
    """C-STORE each data set on one association (pynetdicom SCU), the command's Affected SOP
    Class UID replaced by ``affected[sop]`` where given: what a sender with a broken command
    encoder sends (no real peer lets a test choose it)."""
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE
    from pynetdicom.dimse_primitives import C_STORE

    ae = AE(ae_title="STORESCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(factories.MG_PRESENTATION, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="MAMMOCAD")
    assert assoc.is_established, "association refused"
    send_msg = assoc.dimse.send_msg

    def send(primitive: object, context_id: int) -> None:
        if isinstance(primitive, C_STORE) and str(primitive.AffectedSOPInstanceUID) in affected:
            primitive.AffectedSOPClassUID = affected[str(primitive.AffectedSOPInstanceUID)]
        send_msg(primitive, context_id)  # type: ignore[arg-type]

    assoc.dimse.send_msg = send  # type: ignore[method-assign]
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def test_command_of_another_sop_class_than_the_data_set_refused(start_node: Callable[..., NodeEnv],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """PS3.4 B.2.3 / PS3.7 9.1.1: a request whose Affected SOP Class UID (CT) differs from its
    presentation context and data set (MG) does not say what it stores: 0xA900 with a
    log line, not stored; the valid image after it on the same association is stored."""
    from pydicom.uid import ExplicitVRLittleEndian

    bad, good = factories.make_mammogram(), factories.make_mammogram(view="MLO")
    for ds in (bad, good):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    env = start_node()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        statuses = _store_with_affected_class(env.port, [bad, good], {str(bad.SOPInstanceUID): factories.CT_IMAGE})
    assert statuses == [0xA900, 0x0000]
    assert not env.spool.image_path(str(bad.StudyInstanceUID), str(bad.SOPInstanceUID)).exists()
    assert not env.spool.other_path(str(bad.StudyInstanceUID), str(bad.SOPInstanceUID)).exists()
    assert env.spool.image_path(str(good.StudyInstanceUID), str(good.SOPInstanceUID)).exists()
    [refused] = _refusals(caplog)
    assert refused.status == "0xA900"  # type: ignore[attr-defined]
    assert "Affected SOP Class UID" in refused.error and factories.CT_IMAGE in refused.error  # type: ignore[attr-defined]
    env.settle()
    assert [args[2] for _, args in env.tasks("gpu")] == [str(good.SOPInstanceUID)]
