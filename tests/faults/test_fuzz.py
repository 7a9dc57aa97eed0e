"""Fuzzed data sets and PDUs over real associations (the suite's share; bench/fuzz.py runs 10,000+)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from mammocad.logs import KeyValueFormatter
from tests.factories import make_mammogram, write
from tests.faults.fuzzing import fuzz_data_sets, fuzz_pdus, node_alive

pytestmark = pytest.mark.faults

CASES = int(os.environ.get("MAMMOCAD_FUZZ_CASES", "300"))
SEED = int(os.environ.get("MAMMOCAD_FUZZ_SEED", "12"))


def test_fuzzed_data_sets_and_pdus(tmp_path: Path, start_node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = start_node(extra_node="association_timeout_s = 2\nnetwork_timeout_s = 2\nmax_inflated_mb = 8")
    report = fuzz_data_sets(env.port, tmp_path / "cases", CASES, SEED)
    fuzz_pdus(env.port, CASES // 3, SEED, report)
    alive = node_alive(env.port, write(make_mammogram(rows=32, columns=24), tmp_path / "valid.dcm"))
    logs = "\n".join(KeyValueFormatter().format(r) for r in caplog.records)
    assert report.problems(env.spool.root, logs, alive) == []
    assert sum(report.statuses.values()) + report.aborted >= CASES // 2, report  # the cases were really sent
    assert report.statuses["0x0000"] > 0 and len(report.statuses) > 1, report.statuses  # both outcomes seen
