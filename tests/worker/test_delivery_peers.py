"""Delivery to PACSes that accept less than we propose (real DCMTK storescp profiles).

Each profile is a storescp association configuration (``-xf FILE PROFILE``): a PACS that
stores no GSPS, one that takes Implicit VR Little Endian only, one that knows Basic Text SR
and nothing else. Per object the outcome must say which SOP class the peer refused, and the
objects it took must arrive in a syntax it accepted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from mammocad.config import Destination, OutputKind
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.worker.delivery import store_files
from mammocad.worker.outbox_delivery import attempt
from tests.factories import make_mammogram
from tests.worker.conftest import StoreSCP, make_settings

GSPS = "1.2.840.10008.5.1.4.1.1.11.1"

PROFILES = """[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[Implicit]
TransferSyntax1 = LittleEndianImplicit
[[PresentationContexts]]
[NoGSPS]
PresentationContext1 = VerificationSOPClass\\\\Uncompressed
PresentationContext2 = SecondaryCaptureImageStorage\\\\Uncompressed
PresentationContext3 = MammographyCADSRStorage\\\\Uncompressed
PresentationContext4 = Comprehensive3DSRStorage\\\\Uncompressed
[ImplicitOnly]
PresentationContext1 = SecondaryCaptureImageStorage\\\\Implicit
PresentationContext2 = MammographyCADSRStorage\\\\Implicit
PresentationContext3 = Comprehensive3DSRStorage\\\\Implicit
PresentationContext4 = GrayscaleSoftcopyPresentationStateStorage\\\\Implicit
[TextOnly]
PresentationContext1 = BasicTextSRStorage\\\\Uncompressed
[[Profiles]]
[NoGSPS]
PresentationContexts = NoGSPS
[ImplicitOnly]
PresentationContexts = ImplicitOnly
[TextOnly]
PresentationContexts = TextOnly
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One study's full result set: CAD SR, TID 1500 SR, 4 JPEG secondary captures, 4 GSPS."""
    from mammocad.results.outputs import build_outputs
    from tests.results.outputs_fixtures import make_case, write_all

    study, sources = make_case((2, 0))
    return write_all(build_outputs(study, sources, list(OutputKind)), tmp_path_factory.mktemp("results"))


def pacs(tmp_path: Path, profile: str) -> StoreSCP:
    config = tmp_path / "profiles.cfg"
    config.write_text(PROFILES.replace("\\\\", "\\"))
    return StoreSCP(tmp_path / profile, accept_compressed=False, args=("-xf", str(config), profile))


def test_a_pacs_without_gsps_gets_the_rest_and_each_gsps_says_why(tmp_path: Path, results: list[Path],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The GSPS are refused by name and UID (pynetdicom's own message, redacted in the logs,
    read "No presentation context for '<redacted>'"), without an ERROR line per object from
    pynetdicom; the JPEG secondary captures are decompressed without one either."""
    with caplog.at_level(logging.INFO), pacs(tmp_path, "NoGSPS") as scp:
        statuses = store_files(scp.destination(), results, calling_ae="MAMMOCAD", timeout_s=5)
        received = {str(dcmread(p).SOPInstanceUID) for p in scp.received()}
    by_class = {str(dcmread(s.path).SOPInstanceUID): (str(dcmread(s.path).SOPClassUID), s) for s in statuses}
    refused = {uid for uid, (cls, s) in by_class.items() if not s.ok}
    assert refused == {uid for uid, (cls, _) in by_class.items() if cls == GSPS} and len(refused) == 4
    assert received == set(by_class) - refused
    for uid in refused:
        error = by_class[uid][1].error or ""
        assert "Grayscale Softcopy Presentation State Storage" in error and GSPS in error, error
        assert "abstract syntax not supported" in error, error
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_implicit_vr_only_pacs_gets_every_object_in_implicit_vr(tmp_path: Path, results: list[Path]) -> None:
    with pacs(tmp_path, "ImplicitOnly") as scp:
        statuses = store_files(scp.destination(), results, calling_ae="MAMMOCAD", timeout_s=5)
        got = [dcmread(p) for p in scp.received()]
    assert all(s.ok for s in statuses), statuses
    assert len(got) == len(results)
    assert {str(d.file_meta.TransferSyntaxUID) for d in got} == {"1.2.840.10008.1.2"}


class StatusSCP:
    """A pynetdicom Storage SCP answering every C-STORE with one ``status`` and ``comment``.

    storescp and Orthanc cannot be made to answer a chosen failure or warning status (Orthanc
    answers Success for an instance its filter drops); pynetdicom is a real DICOM peer here.
    """

    def __init__(self, status: int, comment: str = "", *, maximum_associations: int = 10) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.presentation import AllStoragePresentationContexts

        from tests.services import free_port

        self.status, self.comment, self.port, self.calls = status, comment, free_port(), 0
        self.ae = AE(ae_title="PACS")
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.ae.maximum_associations = maximum_associations
        server = self.ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        assert server is not None  # None only with block=True
        self.server = server

    def _on_store(self, event: object) -> object:
        from pydicom.dataset import Dataset

        self.calls += 1
        rsp = Dataset()
        rsp.Status = self.status
        if self.comment:
            rsp.ErrorComment = self.comment
        return rsp

    def destination(self, name: str = "pacs") -> Destination:
        return Destination(name=name, ae_title="PACS", host="127.0.0.1", port=self.port)

    def __enter__(self) -> StatusSCP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


def _attempt(tmp_path: Path, dest: Destination, datasets: list[Dataset]) -> tuple[str, OutboxItem]:
    """One delivery attempt of an item holding ``datasets``; returns its outcome and the item
    as the attempt left it (as it was sent, when delivered and so removed)."""
    spool = tmp_path / "spool"
    outbox = Outbox(spool)
    item = outbox.put(dest.name, "rep", datasets)
    assert item is not None
    outcome, _ = attempt(make_settings(spool, [dest], delivery={"deadline_s": 3600}), outbox, item)
    after = outbox.get(dest.name, "rep") or outbox.get(dest.name, "rep", dead=True)
    assert (after is None) == (outcome == "delivered")  # a delivered item is removed
    return outcome, after or item


@pytest.mark.parametrize(("status", "outcome"), [(0xA700, "retry"), (0xA7FE, "retry"), (0x0110, "retry"),
                                                  (0xA900, "dead"), (0xC000, "dead"), (0x0122, "dead")])
def test_failure_status_out_of_resources_is_retried_data_set_errors_are_given_up(tmp_path: Path, status: int,
                                                                                  outcome: str) -> None:
    """A PACS out of resources may take the object later; one that cannot understand it
    (A9xx, Cxxx) or does not support its class will refuse it every time: that item goes to
    the dead letters at once, naming the status, not after an hour of identical refusals."""
    with StatusSCP(status) as scp:
        got, item = _attempt(tmp_path, scp.destination(), [make_mammogram(rows=32, columns=24)])
    assert got == outcome and item.dead == (outcome == "dead"), (got, item.last_error)
    assert f"0x{status:04X}" in (item.last_error or "")
    assert ("not retried" in (item.last_error or "")) == (outcome == "dead")


def test_a_pacs_without_gsps_dead_letters_only_the_gsps_at_once(tmp_path: Path, results: list[Path]) -> None:
    """The objects the PACS stored are recorded as delivered (never sent again); the GSPS it
    will never accept are given up at the first attempt with the reason and what to do."""
    with pacs(tmp_path, "NoGSPS") as scp:
        got, item = _attempt(tmp_path, scp.destination(), [dcmread(p) for p in results])
        assert len(scp.received()) == len(results) - 4
    assert got == "dead" and item.dead and len(item.delivered) == len(results) - 4
    assert [str(dcmread(p).SOPClassUID) for p in item.pending_files()] == [GSPS] * 4
    assert "Grayscale Softcopy Presentation State Storage" in (item.last_error or "")
    assert "mammocad outbox retry" in (item.last_error or "")


@pytest.mark.parametrize("peer", ["TextOnly", "--refuse"])
def test_permanent_association_failures_dead_letter_at_once(tmp_path: Path, peer: str) -> None:
    """A PACS that accepts none of our SOP classes, or rejects the association permanently
    (PS3.8 result 1), gets the same answer on every retry."""
    scp = pacs(tmp_path, peer) if peer == "TextOnly" else StoreSCP(tmp_path / "rx", args=(peer,))
    with scp:
        got, item = _attempt(tmp_path, scp.destination(), [make_mammogram(rows=32, columns=24)])
    assert got == "dead", item.last_error
    assert ("no-context" if peer == "TextOnly" else "rejected-permanent") in (item.last_error or "")


def test_a_transient_association_rejection_is_retried_and_delivers_once_the_peer_has_room(tmp_path: Path) -> None:
    """A PACS at its association limit rejects with PS3.8 result 2 (rejected-transient, local limit
    exceeded): the item must stay queued, not be dead-lettered, and go on the next attempt."""
    from pydicom.uid import SecondaryCaptureImageStorage
    from pynetdicom import AE

    with StatusSCP(0x0000, maximum_associations=1) as scp:
        holder = AE(ae_title="OTHER")
        holder.add_requested_context(SecondaryCaptureImageStorage)
        held = holder.associate("127.0.0.1", scp.port, ae_title="PACS")
        assert held.is_established
        try:
            got, item = _attempt(tmp_path, scp.destination(), [make_mammogram(rows=32, columns=24)])
        finally:
            held.release()
        assert got == "retry" and not item.dead, item.last_error
        assert "rejected-transient" in (item.last_error or "") and scp.calls == 0
        outcome, _ = attempt(make_settings(tmp_path / "spool", [scp.destination()], delivery={"deadline_s": 3600}),
                             Outbox(tmp_path / "spool"), item)
    assert outcome == "delivered" and scp.calls == 1


_NAME_COMMENT = "Patient JOHN SMITH born 1950 exists"  # no caret, no quotes: redaction cannot see it


def _logged_at_info(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [" ".join(map(str, r.__dict__.values())) for r in caplog.records if r.levelno >= logging.INFO]


@pytest.mark.parametrize("status", [0xB000, 0xB007, 0xB006])
def test_a_warning_status_is_delivered_and_logged_once_without_the_comment(
        tmp_path: Path, status: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), StatusSCP(status, _NAME_COMMENT) as scp:
        got, item = _attempt(tmp_path, scp.destination(), [make_mammogram(rows=32, columns=24)])
    assert got == "delivered" and scp.calls == 1
    warnings = [r for r in caplog.records if r.getMessage() == "store_warning"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].__dict__["status"] == f"0x{status:04X}" and warnings[0].__dict__["meaning"]
    assert not [line for line in _logged_at_info(caplog) if "SMITH" in line]
    assert [r for r in caplog.records if r.getMessage() == "store_comment" and r.levelno == logging.DEBUG]


def test_a_failure_comment_reaches_the_admin_not_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The comment is in the item's error (``outbox list``, ``studies show``), and at DEBUG;
    the WARNING lines say the status and what it means."""
    with caplog.at_level(logging.DEBUG), StatusSCP(0xA700, _NAME_COMMENT) as scp:
        got, item = _attempt(tmp_path, scp.destination(), [make_mammogram(rows=32, columns=24)])
    assert got == "retry"
    assert "0xA700 (Refused: Out of Resources)" in (item.last_error or "") and _NAME_COMMENT in (item.last_error or "")
    assert not [line for line in _logged_at_info(caplog) if "SMITH" in line]
    refused = [r for r in caplog.records if r.getMessage() == "store_refused"]
    assert len(refused) == 1 and refused[0].__dict__["meaning"] == "Refused: Out of Resources"


def test_an_association_of_refused_objects_only_names_their_sop_class(
        tmp_path: Path, results: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    """With several associations, one may carry only GSPS (the outbox's files are spread by
    position): the peer accepts none of its contexts, and its objects' error named no SOP
    class ("accepted none of the proposed presentation contexts") after an ERROR line of
    pynetdicom's own. Files are given so that the second association holds GSPS only."""
    sc = next(p for p in results if str(dcmread(p).SOPClassUID) == "1.2.840.10008.5.1.4.1.1.7")
    gsps = next(p for p in results if str(dcmread(p).SOPClassUID) == GSPS)
    with caplog.at_level(logging.INFO), pacs(tmp_path, "NoGSPS") as scp:
        statuses = store_files(scp.destination(), [sc, gsps], calling_ae="MAMMOCAD", timeout_s=5, associations=2)
    assert [s.ok for s in statuses] == [True, False] and statuses[1].permanent
    error = statuses[1].error or ""
    assert "Grayscale Softcopy Presentation State Storage" in error and GSPS in error, error
    assert "abstract syntax not supported" in error, error
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(("peer", "says"), [
    (("--abort-during",), "aborted by pacs (PACS@127.0.0.1:{port}) during a C-STORE: source 0"),
    (("--abort-after",), "aborted by pacs (PACS@127.0.0.1:{port}) during a C-STORE: source 0"),
    (("--fork", "--sleep-during", "5"), "no C-STORE response from pacs (PACS@127.0.0.1:{port}) within 1 s"),
])
def test_a_peer_that_aborts_or_stalls_mid_transfer_is_named_and_retried(
        tmp_path: Path, peer: tuple[str, ...], says: str) -> None:
    """It said "no response (timeout or connection lost)" for each object, and sent the
    next object on the association that had just gone. Nothing was confirmed, so the item
    is retried (a PACS that stored the object before aborting gets it again: same UID)."""
    datasets = [make_mammogram(rows=32, columns=24, seed=i) for i in range(3)]
    with StoreSCP(tmp_path / "rx", args=peer) as scp:
        spool = tmp_path / "spool"
        outbox = Outbox(spool)
        item = outbox.put("pacs", "rep", datasets)
        assert item is not None
        settings = make_settings(spool, [scp.destination(associations=1)],
                                 delivery={"deadline_s": 3600, "network_timeout_s": 1})
        assert attempt(settings, outbox, item)[0] == "retry"
        after = outbox.get("pacs", "rep")
        assert after is not None and not after.delivered
        assert says.format(port=scp.port) in (after.last_error or ""), after.last_error
        statuses = store_files(scp.destination(), after.pending_files(), calling_ae="MAMMOCAD", timeout_s=1)
    assert [s.error for s in statuses[1:]] == ["association ended before sending"] * 2, statuses
