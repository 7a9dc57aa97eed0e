"""The results worker's outbox sweep retires dead letters that confirmed resend copies carried.

Real spool, real report records and kept objects (tests/studies/test_resend.py's study: r1,
then the late report r2 whose own item for `pacs` is the one that died).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from mammocad.config import Destination
from mammocad.spool.outbox import Outbox
from mammocad.spool.studies import StudyFiles
from mammocad.spool.superseded import retire_superseded_dead_letters
from mammocad.studies.actions import resend
from tests.services import free_port
from tests.studies.test_resend import R2, STUDY, _own_item, spool  # noqa: F401  (fixture)
from tests.worker.conftest import make_settings


@pytest.mark.parametrize("extra", [False, True])
def test_the_sweep_at_worker_start_retires_a_dead_letter_a_confirmed_copy_carried(
        spool: Path, extra: bool, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """r2 was dead-lettered by a version without the supersede logic, after its resend copy
    r2.s1 was confirmed: nothing ever looked at it again, so it stayed until an admin ran
    `outbox drop` and retention kept the study. The worker's first sweep now retires it, with
    the line a confirmation writes; one holding an object no copy carried (``extra``: r1's
    withdrawn SR) stays, as nothing vouches for it."""
    from mammocad.spool.retention import DAY_S, prune
    from mammocad.studies.status import study_status

    outbox = Outbox(spool)
    own = _own_item(outbox, StudyFiles(spool, STUDY), extra)
    settings = make_settings(spool, [Destination(name="pacs", ae_title="PACS", host="127.0.0.1",
                                                 port=free_port())])
    (copy,) = resend(settings, STUDY, ["pacs"])
    outbox.complete(copy)  # confirmed: r2 was still in the outbox, so nothing retired it
    outbox.dead_letter(own)  # its deadline, under the old version
    with caplog.at_level(logging.INFO, logger="mammocad.spool.outbox"):
        assert retire_superseded_dead_letters(outbox) == (0 if extra else 1)
    said = [(r.getMessage(), vars(r)["item"], vars(r)["copy"], vars(r).get("via"), vars(r).get("objects"))
            for r in caplog.records]
    later = time.time() + 60 * DAY_S  # old enough: only its items can keep the study
    if extra:
        assert said == [] and [i.item_id for i in outbox.items(dead=True)] == ["r2"]
        assert prune(spool, 30 * DAY_S, now=later).kept == {STUDY: "results for pacs still in deadletter/"}
    else:
        assert said == [("deadletter_superseded", "r2", "r2.s1", "sweep", len(R2))]
        assert outbox.items(dead=True) == [] and outbox.items() == []
        assert study_status(spool, STUDY).destinations == {"pacs": "delivered"}
        assert prune(spool, 30 * DAY_S, now=later).studies == [STUDY]


def test_the_outbox_row_of_the_architecture_says_when_the_dead_letter_sweep_runs() -> None:
    """docs/ARCHITECTURE.md's spool layout row for ``outbox/``, ``deadletter/`` said how a
    confirmed copy retires dead letters but not that the results worker sweeps for those it
    could not, at start and every DEAD_SWEEP_INTERVAL_S; the interval here follows the constant."""
    from mammocad.worker.outbox_delivery import DEAD_SWEEP_INTERVAL_S

    architecture = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
    (row,) = [line for line in architecture.read_text().splitlines() if line.startswith("| `outbox/`, `deadletter/` |")]
    assert "retire_superseded_dead_letters" in row and "at its start" in row
    assert f"every {DEAD_SWEEP_INTERVAL_S / 60:g} min (`DEAD_SWEEP_INTERVAL_S`)" in row


def test_the_architecture_flow_diagram_says_the_sweeper_runs_the_dead_letter_sweep() -> None:
    """The Flow diagram's ``sweeper thread`` line named the requeue and the prune only, not the
    dead-letter sweep ``start_sweeper`` also runs, at start and every DEAD_SWEEP_INTERVAL_S."""
    from mammocad.worker.outbox_delivery import DEAD_SWEEP_INTERVAL_S

    architecture = (Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md").read_text()
    diagram = architecture.split("## Flow", 1)[1].split("```")[1]
    sweeper = diagram.split("sweeper thread", 1)[1]
    assert "retire_superseded_dead_letters" in sweeper and "at start" in sweeper
    assert f"every {DEAD_SWEEP_INTERVAL_S / 60:g} min (DEAD_SWEEP_INTERVAL_S)" in sweeper
