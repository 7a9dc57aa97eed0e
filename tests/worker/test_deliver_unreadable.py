"""``tasks.deliver`` on an outbox item whose ``item.json`` cannot be read.

It let the :class:`RecordError` out: the Celery task failed with a traceback while the sweeper
(``Outbox.items``) says the same thing on one ``outbox_item_unreadable`` line. The task now
logs that line and ends its chain. The real task runs (Celery's ``apply``, in this process)
on a real spool; it sends nothing, so no broker is reached.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mammocad.spool.broker import make_celery
from mammocad.spool.outbox import Outbox
from mammocad.spool.tasks import TASK_DELIVER, deliver_args
from mammocad.worker.tasks import register_tasks
from tests.factories import make_mammogram, put_new
from tests.services import free_port
from tests.worker.conftest import make_settings


def _truncated(text: str) -> str:  # a copy or a disk that stopped halfway
    return text[: len(text) // 2]


def _newer(text: str) -> str:  # written by a newer release sharing the spool
    return json.dumps({**json.loads(text), "version": 99})


@pytest.mark.parametrize("damage", [_truncated, _newer], ids=["truncated", "newer-version"])
def test_deliver_logs_an_unreadable_item_once_instead_of_failing(
        tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    settings = make_settings(spool)
    app = make_celery(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")  # never reached
    register_tasks(app, settings)
    item = put_new(Outbox(spool), "pacs", "rep", [make_mammogram(rows=32, columns=24, seed=0)])
    item_json = item.path / "item.json"
    item_json.write_text(damage(item_json.read_text()))  # type: ignore[operator]

    with caplog.at_level(logging.INFO):
        result = app.tasks[TASK_DELIVER].apply(args=deliver_args(str(spool), "pacs", "rep"),
                                               kwargs={"token": item.token})
    assert result.successful(), result.traceback
    assert result.get() == "unreadable"
    lines = [r for r in caplog.records if r.name.startswith("mammocad")]
    assert [(r.getMessage(), r.levelno) for r in lines] == [("outbox_item_unreadable", logging.ERROR)]
    assert vars(lines[0])["item"] == str(item.path) and "item.json" in vars(lines[0])["error"]
    assert item_json.exists()  # left for the admin: `mammocad outbox list` names it
