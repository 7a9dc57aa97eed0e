"""Results tests: PixelMed checks every SR the session wrote, in one JVM, at the end (per
pytest-xdist worker: each checks what its own tests wrote; the controller reports and fails)."""

from __future__ import annotations

import pytest

from tests import validators as V
from tests.process_plugin import report_at_session_end
from tests.results.outputs_fixtures import WRITTEN_SRS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when PixelMed finds an error in any SR a results test wrote."""
    paths = [p for p in dict.fromkeys(WRITTEN_SRS) if p.exists()]
    if not paths:
        return
    errors = {str(p): e for p, found in V.pixelmed_batch(paths).items() if (e := V.pixelmed_errors(found))}
    lines = [f"PixelMed DicomSRValidator: {len(paths)} SR(s) written by the results tests, {len(errors)} with errors"]
    for path, found in errors.items():
        lines.append(f"  {path}:")
        lines += [f"    {text[:400]}" for text in found[:20]]
    report_at_session_end(session, lines, failed=bool(errors))
