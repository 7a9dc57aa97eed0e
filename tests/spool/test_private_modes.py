"""Patient data at rest: nothing the node or the workers write under the spool is readable by
others or writable by the group, whatever the umask of the process that writes it.

The units set ``UMask=0027`` and ``mammocad serve``/``node`` set umask 027 themselves, but a
worker started by hand (``mammocad worker``) keeps the shell's umask (often 002, sometimes 000):
every writer must pass its own mode (files 0640, folders 0750, docs/ADMIN.md "The spool on disk").
Here everything runs under umask 000, so a writer that relies on the umask shows at once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mammocad.config import Destination
from mammocad.config.settings import OutputKind
from mammocad.spool import leases
from mammocad.spool.layout import InstanceLock, Spool
from mammocad.spool.outbox import Outbox
from mammocad.spool.studies import StudyFiles, keep_outputs
from tests.factories import CT_IMAGE, make_four_view_study, make_mammogram, write
from tests.node.conftest import NodeEnv
from tests.services import free_port, wait_until
from tests.worker.conftest import StoreSCP, make_settings

#: Bits no spool entry may have: group write, and every bit for others.
FORBIDDEN = 0o027


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def too_open(root: Path) -> list[str]:
    """Entries under ``root`` (and ``root``) with a forbidden mode bit, as "0o777 path"."""
    return [f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p}" for p in [root, *root.rglob("*")]
            if stat.S_IMODE(p.lstat().st_mode) & FORBIDDEN]


def test_every_spool_writer_is_private_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    """A worker that is the first to touch a fresh spool (a GPU box's new NFS mount, a study folder
    the retention just pruned) made ``spool/``, ``tmp/``, ``studies/`` and the study folder 0777:
    ``Outbox.put`` and ``StudyFiles.finalize_lock`` used ``mkdir(parents=True)``, which takes the umask."""
    root = tmp_path / "spool"
    study, sop = "1.2.3", "1.2.3.4"
    outbox = Outbox(root)
    item = outbox.put("pacs", "k1", [make_mammogram(rows=16, columns=16, study_uid=study)])
    assert item is not None
    outbox.save(item)
    item = outbox.revive("pacs", outbox.dead_letter(item).item_id)
    files = StudyFiles(tmp_path / "spool2", study)
    with files.finalize_lock() as got:
        assert got
    files = StudyFiles(root, study)
    files.bump_attempts(sop)
    with leases.held(leases.lease_path(files.layout, study, sop), files.layout.tmp, 60):
        assert too_open(root) == []
    keep_outputs(files, "key", [(OutputKind.SECONDARY_CAPTURE, make_mammogram(rows=16, columns=16, study_uid=study))],
                 {}, ())
    outbox.drop(item, study)
    InstanceLock(root).acquire().release()
    Spool(root).create()
    assert too_open(root) == [] and too_open(tmp_path / "spool2") == []
    assert {p.name for p in (root / "studies" / study).iterdir()} >= {"results", "outputs", "dropped"}


def test_node_and_workers_leave_nothing_open_under_umask_000(
        tmp_path: Path, umask_000: None, start_node: Callable[..., NodeEnv], celery_worker: Callable[..., Any],
        random_weights: Path) -> None:
    """The whole path, in this process under umask 000: pynetdicom streaming into ``tmp/`` (our
    receive file), images, a non-mammogram set aside in ``other/``, the completion, results,
    attempts, leases, reports, kept outputs, outbox items, a dead letter."""
    env = start_node()
    study = make_four_view_study(rows=256, columns=200)
    ct = make_mammogram(sop_class=CT_IMAGE)
    ct.Modality = "CT"
    sent = [write(ds, tmp_path / "sent" / f"{i}.dcm") for i, ds in enumerate([*study, ct])]
    with StoreSCP(tmp_path / "pacs") as pacs:
        down = Destination(name="down", ae_title="DOWN", host="127.0.0.1", port=free_port(), outputs=["mammo-cad-sr"])
        celery_worker(make_settings(env.spool.root, [pacs.destination("pacs"), down], delivery={"deadline_s": 1.0},
                                    worker={"weights": str(random_weights)}))
        result = env.storescu(*sent)
        assert result.returncode == 0, result.stderr
        uid = str(study[0].StudyInstanceUID)
        wait_until(lambda: env.spool.reports(uid), 120, "the study report")
        wait_until(lambda: list(env.spool.deadletter.glob("down/*/item.json"))
                   and not list(env.spool.outbox.glob("*/*/item.json")), 60, "delivery and the dead letter")
    written = {p.relative_to(env.spool.root).parts[0] for p in env.spool.root.rglob("*")}
    assert written >= {"tmp", "studies", "other", "outbox", "deadletter"}, written
    assert too_open(env.spool.root) == []


def test_retention_and_the_audit_file_are_private_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    """Retention's first prune of a fresh spool made ``tmp/`` with ``mkdir(parents=True)``
    (0777 under umask 000), and the audit trail its folder the same way."""
    from mammocad.audit import AuditTrail, Identity, events
    from mammocad.spool.retention import prune

    root = tmp_path / "spool"
    prune(root, 30 * 86400.0)
    assert (root / "tmp").is_dir() and too_open(root) == []
    audit = tmp_path / "log" / "mammocad" / "audit.log"
    trail = AuditTrail(Identity.make("MAMMOCAD", program="mammocad-test"), file=audit)
    trail.emit(events.application_activity(trail.identity, started=True))
    trail.close()
    assert audit.is_file() and too_open(audit.parent) == []
