"""Results tests: PixelMed checks every SR the session wrote, in one JVM, at the end."""

from __future__ import annotations

import pytest

from tests import validators as V
from tests.results.outputs_fixtures import WRITTEN_SRS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when PixelMed finds an error in any SR a results test wrote."""
    paths = [p for p in dict.fromkeys(WRITTEN_SRS) if p.exists()]
    if not paths:
        return
    errors = {str(p): e for p, found in V.pixelmed_batch(paths).items() if (e := V.pixelmed_errors(found))}
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = f"PixelMed DicomSRValidator: {len(paths)} SR(s) written by the results tests, {len(errors)} with errors"
    if reporter is not None:
        reporter.write_line(line)
        for path, found in errors.items():
            reporter.write_line(f"  {path}:")
            for text in found[:20]:
                reporter.write_line(f"    {text[:400]}")
    if errors:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
