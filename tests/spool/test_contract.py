"""The node–worker contract: one UID rule on both sides, and the Celery tasks as a contract.

The node sends tasks by name with argument lists from :mod:`mammocad.spool.tasks`; the
workers register functions under those names. These tests bind what the node sends to
the functions the workers run, so a signature change on one side fails here, not in
production with a task stuck in the queue.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mammocad.config import Settings
from mammocad.node.queueing import Dispatcher, TaskSender
from mammocad.node.studies import StudyTracker
from mammocad.spool import tasks as contract
from mammocad.spool.broker import make_celery
from mammocad.spool.layout import InvalidUIDError, Spool, is_uid, validate_uid
from mammocad.spool.studies import StudyFiles
from mammocad.worker import tasks as worker_tasks

# ------------------------------------------------------------------------------ UIDs


@pytest.mark.parametrize("uid", ["1.2.840.10008.5.1.4.1.1.1.2", "1.2.03.4", "1.02", "0.0", "1", "9" * 64,
                                 "2.25.329800735698586629295641978511506172918"])
def test_one_rule_accepts_on_both_sides(uid: str, tmp_path: Path) -> None:
    """Leading zeros in a component are tolerated (documented in docs/ARCHITECTURE.md):
    the node stores such an image, so the worker must find it under the same path."""
    assert validate_uid(uid) == uid
    assert Spool(tmp_path).image_path(uid, uid) == StudyFiles(tmp_path, uid).image(uid)


@pytest.mark.parametrize("uid", ["", " ", "1..2", ".1", "1.", "1.2.a", "1.2 .3", "1/2", "..", "1" * 65,
                                 "1.2\x003", "-1.2", "+1", "1,2"])
def test_one_rule_refuses_on_both_sides(uid: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidUIDError):
        validate_uid(uid)
    with pytest.raises(InvalidUIDError):
        Spool(tmp_path).image_path("1.2", uid)
    with pytest.raises(InvalidUIDError):
        StudyFiles(tmp_path, uid)
    with pytest.raises(InvalidUIDError):
        StudyFiles(tmp_path, "1.2").result(uid)


def test_encoding_padding_is_not_part_of_the_uid(tmp_path: Path) -> None:
    assert validate_uid(" 1.2.3\x00") == "1.2.3"
    assert StudyFiles(tmp_path, "1.2.3\x00").study_uid == "1.2.3"


@given(st.text(alphabet="0123456789.", max_size=70))
def test_a_valid_uid_is_always_a_single_safe_path_component(text: str) -> None:
    if is_uid(text):
        assert "/" not in text and text not in (".", "..") and len(text) <= 64
        assert all(part for part in text.split("."))
    else:
        with pytest.raises(InvalidUIDError):
            validate_uid(text)


# ------------------------------------------------------------------------------ tasks


def _settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"node": {"spool_dir": str(tmp_path)}})


def test_every_contract_task_is_registered_and_routed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    app = make_celery(settings, "memory://")
    worker_tasks.register_tasks(app, settings)
    routes = app.conf.task_routes
    for name, queue in contract.TASK_QUEUES.items():
        assert name in app.tasks
        want = settings.worker.analysis_queue if queue == "analysis" else settings.worker.results_queue
        assert routes[name] == {"queue": want}
    assert {n for n in app.tasks if n.startswith("mammocad.")} == set(contract.TASK_QUEUES)


def _bind(function: Any, args: list[Any], kwargs: dict[str, Any] | None = None) -> inspect.BoundArguments:
    """Bind like Celery does for a ``bind=True`` task: the task itself comes first."""
    return inspect.signature(function).bind(object(), *args, **(kwargs or {}))


def test_argument_builders_fit_the_worker_functions() -> None:
    bound = _bind(worker_tasks.analyze_image, contract.analyze_image_args("/spool", "1.2", "1.2.3"))
    assert dict(bound.arguments, self=None) == {"self": None, "spool_dir": "/spool", "study_uid": "1.2",
                                                "sop_uid": "1.2.3"}
    bound = _bind(worker_tasks.finalize_study, contract.finalize_study_args("/spool", "1.2", ["1.2.4", "1.2.3"]),
                  {"first_try": 1.0})
    assert bound.arguments["sop_uids"] == ["1.2.3", "1.2.4"]
    bound = _bind(worker_tasks.deliver, contract.deliver_args("/spool", "pacs", "item"), {"token": "t"})
    assert (bound.arguments["destination"], bound.arguments["item_id"]) == ("pacs", "item")


class _Recorder:
    """Stands in for the Celery app on the sending side: records what would go to the broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def send_task(self, name: str, args: Any = None, **kwargs: Any) -> None:
        self.sent.append((name, list(args)))


def test_what_the_node_sends_binds_to_what_the_worker_runs(tmp_path: Path) -> None:
    recorder = _Recorder()
    spool = Spool(tmp_path).create()
    dispatcher = Dispatcher(spool, TaskSender(recorder, 1.0), StudyTracker(30.0))
    dispatcher.queue_analysis("1.2", "1.2.3")
    dispatcher.queue_finalize("1.2", ["1.2.4", "1.2.3"])
    functions = {contract.TASK_ANALYZE_IMAGE: worker_tasks.analyze_image,
                 contract.TASK_FINALIZE_STUDY: worker_tasks.finalize_study}
    assert [name for name, _ in recorder.sent] == [contract.TASK_ANALYZE_IMAGE, contract.TASK_FINALIZE_STUDY]
    for name, args in recorder.sent:
        bound = _bind(functions[name], args)
        assert Path(bound.arguments["spool_dir"]) == spool.root
        assert bound.arguments["study_uid"] == "1.2"
