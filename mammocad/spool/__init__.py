"""The node–worker contract: everything both sides of the queue agree on.

The node writes the spool and queues tasks; the workers read the spool, write results,
reports and outbox items, and deliver. Neither side imports the other: they meet here.

- :mod:`~mammocad.spool.layout`: paths of the spool, UID validation (one rule for every
  UID that becomes a path component) and durable writes.
- :mod:`~mammocad.spool.tasks`: Celery task names, queues and argument signatures.
- :mod:`~mammocad.spool.studies`: one study's files (results, reports, locks).
- :mod:`~mammocad.spool.outbox`: delivery items and the dead-letter folder.
- :mod:`~mammocad.spool.retention`: pruning of delivered studies (the pass), with
  :mod:`~mammocad.spool.retention_moves` (folders through ``tmp/``),
  :mod:`~mammocad.spool.retention_recovery` (what a killed pass left) and
  :mod:`~mammocad.spool.prune_lock` (one pass at a time).
- :mod:`~mammocad.spool.catch_up`: which kept SC/GSPS still stand, and which a destination lacks.

See docs/ARCHITECTURE.md for the layout and the rules.
"""

from mammocad.spool.layout import (
    InvalidUIDError,
    Spool,
    atomic_write_bytes,
    atomic_write_json,
    ensure_dir,
    fsync_dir,
    validate_uid,
)

__all__ = ["InvalidUIDError", "Spool", "atomic_write_bytes", "atomic_write_json", "ensure_dir", "fsync_dir",
           "validate_uid"]
