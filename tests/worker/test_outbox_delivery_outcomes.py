"""Every outcome of a delivery attempt is reported through ``mammocad.worker.observer``.

``superseded`` was counted by ``outbox_delivery`` itself, beside the observer that counts
``delivered``, ``retry`` and ``dead``: one outcome the observer did not see. Real spool, report
records and kept objects (tests/studies/test_resend.py's study); the count itself is checked
at the metrics endpoint by tests/metrics/test_delivery_counts.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.config import Destination
from mammocad.spool.outbox import Outbox
from mammocad.spool.studies import StudyFiles
from mammocad.studies.actions import resend
from mammocad.worker import observer
from mammocad.worker.outbox_delivery import attempt
from tests.services import free_port
from tests.studies.test_resend import STUDY, _own_item, spool  # noqa: F401  (fixture)
from tests.worker.conftest import make_settings


def test_a_superseded_item_is_reported_by_the_observer(
        spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    outbox = Outbox(spool)
    own = _own_item(outbox, StudyFiles(spool, STUDY))  # past its deadline
    settings = make_settings(spool, [Destination(name="pacs", ae_title="PACS", host="127.0.0.1",
                                                 port=free_port())])  # nothing listens: the attempt fails
    (copy,) = resend(settings, STUDY, ["pacs"])
    outbox.complete(copy)  # the copy confirmed: it carried all r2 holds
    seen: list[str] = []
    monkeypatch.setattr(observer, "superseded", seen.append)
    monkeypatch.setattr(observer, "dead", lambda *args, **kwargs: seen.append("dead"))
    assert attempt(settings, outbox, own) == ("superseded", None)
    assert seen == ["pacs"]  # once, as superseded, not dead
