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

from mammocad.config import OutputKind
from mammocad.worker.delivery import store_files
from tests.worker.conftest import StoreSCP

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
