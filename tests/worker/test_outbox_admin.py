"""`mammocad outbox drop|retry` run by an admin whose audit record cannot be written.

The audit file belongs to the services' user (tests/audit/unwritable.py makes an admin who
cannot append to it). Such a command must change nothing and say why in one line, with
the command to run instead: no traceback, and no item dropped or queued unaudited.
"""

from __future__ import annotations

from pathlib import Path

from mammocad.spool.outbox import Outbox
from tests.audit.unwritable import mammocad_as_admin, owned_by_the_service, refused_in_one_line
from tests.factories import make_four_view_study


def _setup(tmp_path: Path, dead: bool) -> tuple[Path, Path, Path]:
    """A spool with one item for `pacs` (waiting, or dead-lettered), and the service-owned audit file."""
    spool = tmp_path / "spool"
    outbox = Outbox(spool)
    item = outbox.put("pacs", "item1", make_four_view_study(rows=64, columns=48)[:2])
    assert item is not None
    if dead:
        outbox.dead_letter(item)
    audit = tmp_path / "log" / "audit.log"
    owned_by_the_service(audit)
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(f'[node]\nspool_dir = "{spool}"\n\n[audit]\nfile = "{audit}"\n\n'
                   '[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 104\n')
    return spool, cfg, audit


def test_a_drop_that_cannot_be_audited_drops_nothing(tmp_path: Path) -> None:
    """The item was deleted first and its record failed after: results given up with no trace."""
    spool, cfg, audit = _setup(tmp_path, dead=False)
    done = mammocad_as_admin(cfg, "outbox", "drop", "pacs/item1")
    assert [i.item_id for i in Outbox(spool).items()] == ["item1"]
    assert len(Outbox(spool).items()[0].pending_files()) == 2
    line = refused_in_one_line(done, audit)
    assert line.startswith("mammocad outbox drop: ") and "nothing was dropped" in line


def test_a_retry_that_cannot_be_audited_says_so_in_one_line(tmp_path: Path) -> None:
    """It queued nothing already, but ended in a traceback."""
    spool, cfg, audit = _setup(tmp_path, dead=True)
    done = mammocad_as_admin(cfg, "outbox", "retry", "--all")
    assert Outbox(spool).items() == [] and [i.item_id for i in Outbox(spool).items(dead=True)] == ["item1"]
    line = refused_in_one_line(done, audit)
    assert line.startswith("mammocad outbox retry: ") and "no dead letter was queued again" in line
