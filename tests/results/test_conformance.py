"""docs/CONFORMANCE.md names every SOP class and transfer syntax the code registers or writes."""

from __future__ import annotations

from pathlib import Path

from mammocad.dicom import network, sop_classes
from mammocad.results import cad_sr, gsps, overlay_sc, tid1500
from mammocad.results.uids import IMPLEMENTATION_CLASS_UID, UID_ROOT

STATEMENT = Path(__file__).resolve().parents[2] / "docs" / "CONFORMANCE.md"


def _uids_in_statement() -> set[str]:
    text = STATEMENT.read_text(encoding="utf-8")
    return {cell.strip() for line in text.splitlines() if line.startswith("|") for cell in line.split("|")}


def test_every_accepted_sop_class_and_transfer_syntax_is_in_the_statement() -> None:
    cells = _uids_in_statement()
    ae = network.storage_scp("MAMMOCAD", max_pdu_size=0, max_associations=1)
    registered = {str(cx.abstract_syntax) for cx in ae.supported_contexts}
    syntaxes = {str(ts) for cx in ae.supported_contexts for ts in cx.transfer_syntax}
    assert registered >= {str(u) for u in sop_classes.storage_sop_classes()} | {str(sop_classes.VERIFICATION)}
    assert sorted(registered - cells) == []
    assert sorted(syntaxes - cells) == []
    assert sorted({str(ts) for ts in sop_classes.TRANSFER_SYNTAXES} - cells) == []


def test_every_created_object_and_its_syntaxes_are_in_the_statement() -> None:
    text = STATEMENT.read_text(encoding="utf-8")
    created = {cad_sr.MAMMO_CAD_SR, tid1500.COMPREHENSIVE_3D_SR, overlay_sc.SECONDARY_CAPTURE, gsps.GSPS_SOP_CLASS}
    assert sorted(u for u in created if u not in text) == []
    written = {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.80"}
    assert sorted(u for u in written if u not in text) == []
    assert UID_ROOT in text and str(IMPLEMENTATION_CLASS_UID) in text
    for heading in ("## 4 Networking", "## 6 Support of character sets", "## 7 Security", "## 8 Annexes",
                    "benign/malignant", "Rendering Intent", "graphics_only", "[node.tls]"):
        assert heading in text, heading
