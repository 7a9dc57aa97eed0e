from __future__ import annotations

import json
import logging

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
        log_event(logger, event, **fields)
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
