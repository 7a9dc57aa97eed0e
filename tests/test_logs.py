from __future__ import annotations

import json
import logging

import pytest

from mammocad.logs import KeyValueFormatter, log_event


def _record(logger_name: str, event: str, **fields: object) -> logging.LogRecord:
    logger = logging.getLogger(logger_name)
    records: list[logging.LogRecord] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Grab()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log_event(logger, event, logging.INFO, **fields)
    finally:
        logger.removeHandler(handler)
    assert len(records) == 1
    return records[0]


def test_key_value_line_is_one_line_with_quoted_values() -> None:
    rec = _record("t.kv", "store", sop="1.2.3", comment="has space", status=0)
    line = KeyValueFormatter().format(rec)
    assert "\n" not in line
    assert "event=store" in line and "sop=1.2.3" in line and 'comment="has space"' in line and "status=0" in line


def test_json_lines() -> None:
    rec = _record("t.json", "reject", calling_ae="EVIL", reason="unknown caller")
    payload = json.loads(KeyValueFormatter(json_lines=True).format(rec))
    assert payload["msg"] == "reject" and payload["calling_ae"] == "EVIL" and payload["level"] == "INFO"


def test_third_party_lines_keep_the_format() -> None:
    """Celery/highdicom/warnings text becomes event=log msg="..." (issue 10: they broke the format)."""
    celery = logging.LogRecord("celery.worker.consumer", logging.INFO, __file__, 1, "Connected to redis://x", (), None)
    line = KeyValueFormatter().format(celery)
    assert 'event=log msg="Connected to redis://x"' in line and "\n" not in line
    warning = logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, "highdicom: value\ntruncated", (), None)
    assert 'event=warning msg="highdicom: value truncated"' in KeyValueFormatter().format(warning)
    own = logging.LogRecord("mammocad.node", logging.INFO, __file__, 1, "store", (), None)
    assert " event=store" in KeyValueFormatter().format(own)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failing = logging.LogRecord("mammocad.x", logging.ERROR, __file__, 1, "store_error", (), sys.exc_info())
    formatted = KeyValueFormatter().format(failing)
    assert "\n" not in formatted and 'exc="Traceback' in formatted


def test_celery_task_context_is_redacted() -> None:
    """Celery logs a failed task with the exception and traceback in ``extra={"data": ...}``;
    a pydicom message there may quote a patient name."""
    record = logging.LogRecord("celery.app.trace", logging.ERROR, __file__, 1, "Task %(name)s[%(id)s] raised", (),
                               None)
    record.data = {"id": "1", "name": "mammocad.finalize_study",
                   "exc": "ValueError(\"Invalid value for VR PN: 'DOE^JANE'\")",
                   "traceback": "Traceback ...\nValueError: 'Mass-Test_P_00173_LEFT_CC' is not a valid name"}
    for json_lines in (False, True):
        line = KeyValueFormatter(json_lines=json_lines).format(record)
        assert "DOE" not in line and "P_00173" not in line and "<redacted>" in line


def test_the_root_handler_leaves_a_closed_stderr_for_the_current_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run in-process under a captured stderr (closed after its test) must not leave
    the root logger writing into that closed stream: later lines go to stderr as it is then."""
    import io
    import sys

    from mammocad.logs import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        configure_logging("INFO")
        log_event(logging.getLogger("t.stderr"), "first_line")
        monkeypatch.setattr(sys, "stderr", second)
        log_event(logging.getLogger("t.stderr"), "still_first")  # an open stream is kept
        assert "event=still_first" in first.getvalue() and not second.getvalue()
        first.close()  # as pytest closes a test's capture
        log_event(logging.getLogger("t.stderr"), "second_line")
        assert "event=second_line" in second.getvalue()
        assert "Logging error" not in second.getvalue()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_numbers_that_identify_a_patient_are_redacted_uids_and_addresses_kept() -> None:
    """A quoted all-digit value passed as a "UID": pydicom's error for a bad birth date kept it
    ('19501301'), as it kept a numeric patient ID or accession number. A PACS's error comment is
    free text that names the patient without quotes; it reaches the log as ``comment=`` and in
    the delivery ``error=``."""
    from pydicom import config
    from pydicom.valuerep import validate_value

    from mammocad.logs import redact, safe_error

    try:
        validate_value("DA", "19501301", config.RAISE)
    except ValueError as exc:
        pydicom_error = safe_error(exc)
    assert "Invalid value for VR DA" in pydicom_error and "19501301" not in pydicom_error
    comment = "Patient ID 00123456 (other ID 'PID-7781234') accession A2024-00042 born 1950-01-01 or 01.02.1950"
    for json_lines in (False, True):
        line = KeyValueFormatter(json_lines=json_lines).format(
            _record("t.peer", "store_refused", comment=comment, error=f"status 0xA700 {comment}", sop="1.2.3.4"))
        for secret in ("00123456", "7781234", "A2024-00042", "1950-01-01", "01.02.1950"):
            assert secret not in line, (secret, line)
        assert "1.2.3.4" in line and "0xA700" in line
    ours = ("'1.2.840.10008.5.1.4.1.1.88.50' via PACS@127.0.0.1:11112 status 0xA700 tag (0010,0030) "
            "item 3fa85f6471a2b3c4d5e6f708192a3b4c.r1 task 8c1b5a9e-4f2d-4e0b-9b7a-1d2e3f4a5b6c after 20 s.")
    assert redact(ours) == ours


def test_a_repaired_source_attribute_is_logged_without_its_value(caplog: pytest.LogCaptureFixture) -> None:
    """Copying the patient module into a result, an invalid birth date or age is left out and
    logged at INFO as ``source_attribute_repaired`` with pydicom's reason, which quotes the value
    ("Invalid value for VR DA: '19501301'"); ``reason`` was not a redacted field."""
    from pydicom.dataset import Dataset

    from mammocad.results.sanitize import copy_patient_study
    from tests.factories import make_mammogram

    source = make_mammogram(rows=16, columns=16)
    source.PatientBirthDate, source.PatientAge = "19501301", "92 Y"
    with caplog.at_level(logging.INFO, logger="mammocad"):
        copy_patient_study(Dataset(), source)
    repairs = [r for r in caplog.records if r.getMessage() == "source_attribute_repaired"]
    assert {r.attribute for r in repairs} >= {"PatientBirthDate", "PatientAge"}  # type: ignore[attr-defined]
    for json_lines in (False, True):
        lines = "\n".join(KeyValueFormatter(json_lines=json_lines).format(r) for r in repairs)
        assert "19501301" not in lines and "92 Y" not in lines and "Invalid value for VR DA" in lines, lines
