"""One line per event in the worker's log when a PACS stalls: the product's, not pynetdicom's too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mammocad.logs import configure_logging
from mammocad.worker.delivery import store_files
from tests.factories import make_mammogram
from tests.worker.conftest import StoreSCP


@pytest.fixture
def product_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The services' logging setup, writing to the test's captured stderr, undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    filters = logging.getLogger("pynetdicom.association").filters[:]
    configure_logging("INFO")
    yield
    logging.getLogger("pynetdicom.association").filters[:] = filters
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_a_stalled_pacs_is_one_line_and_other_pynetdicom_errors_still_show(
        tmp_path: Path, product_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for i in range(2):
        path = tmp_path / "out" / f"{i}.dcm"
        path.parent.mkdir(exist_ok=True)
        make_mammogram(rows=32, columns=24, seed=i).save_as(path, enforce_file_format=True)
        files.append(path)
    with StoreSCP(tmp_path / "rx", args=("--fork", "--sleep-during", "5")) as scp:
        statuses = store_files(scp.destination(), files, calling_ae="MAMMOCAD", timeout_s=1)
    assert "no C-STORE response" in (statuses[0].error or ""), statuses
    err = capsys.readouterr().err
    assert "DIMSE timeout reached" not in err, err
    # An error pynetdicom reports and the product does not (a handler that raised) still shows.
    logging.getLogger("pynetdicom.association").error("Exception in the handler bound to 'evt.EVT_C_STORE'")
    assert "Exception in the handler bound to" in capsys.readouterr().err
