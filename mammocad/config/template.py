"""The commented file a first ``mammocad aet add`` / ``dest add`` writes when there is none.

Written by hand, it drifted from the code: it set ``study_timeout_s = 30`` (the default is
300 s, and docs/FAULTS.md explains why 30 s turns partial studies into amended reports) and
said workers read destinations only at start (they re-read them at every task). So every
value here is the settings' own default, and the sentence about live reloads is made from
:data:`NODE_RELOADS` and :data:`WORKER_RELOADS`, which tests/config/test_template.py checks
against what a running node and worker actually take from an edited file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from mammocad.config.schema import Settings

__all__ = ["NODE_RELOADS", "TEMPLATE", "WORKER_RELOADS", "default_value", "reload_note", "render_template"]

#: What a running node takes from the edited file without a restart (mammocad/node/associations.py,
#: CallerPolicy): dotted keys, a whole list or section by its name.
NODE_RELOADS: tuple[str, ...] = ("callers", "node.require_known_callers")
#: What running workers take from the edited file at their next task (mammocad/worker/tasks.py).
WORKER_RELOADS: tuple[str, ...] = ("destinations", "delivery")

#: The keys the template writes, section by section, with the comment each one gets. The
#: values are not here: they are the defaults (:func:`default_value`).
_KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("node", (
        ("ae_title", "the AE title the node answers to and sends results from"),
        ("host", 'loopback; "0.0.0.0" to accept images from other machines'),
        ("port", ""),
        ("require_known_callers", "reject associations from AEs not listed under [[callers]]"),
        ("study_timeout_s", "a study without its four views is complete after this long without a new image"),
        ("spool_dir", "a relative path (here or in any path key) is relative to this file's folder"),
        ("retention_days", "delivered studies leave the spool after this many days; 0 keeps all"),
        ("pruned_record_days", "what pruned studies' reports covered is forgotten after this; 0 keeps it"),
    )),
    ("broker", (
        ("url", "empty: `mammocad serve` runs a private redis-server"),
    )),
    ("worker", (
        ("weights", "empty: the demo weights (synthetic data, not for clinical use)"),
        ("device", "auto | cpu | cuda | cuda:N"),
    )),
    ("delivery", (
        ("retry_initial_s", "first wait after a failed delivery; doubles at each failure"),
        ("retry_max_s", "... up to this"),
        ("deadline_s", "not delivered after this long: the dead-letter folder"),
    )),
)

#: Column where a key's comment starts, as in config/mammocad.toml.
_COMMENT_COLUMN = 31


def default_value(section: str, key: str) -> Any:
    """The default of ``[section] key``, as the model holds it (without reading the environment)."""
    model = Settings.model_fields[section].get_default(call_default_factory=True)
    return getattr(model, key)


def _toml_value(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 300, not 300.0: the float field reads it back as 300.0
    return tomlkit.item(value).as_string()


def _name(key: str) -> str:
    """How the file spells a reloaded key: ``[[callers]]``, ``[delivery]`` or ``node.port``."""
    if "." in key:
        return key
    default = Settings.model_fields[key].get_default(call_default_factory=True)
    return f"[[{key}]]" if isinstance(default, list) else f"[{key}]"


def _names(keys: tuple[str, ...]) -> str:
    names = [_name(k) for k in keys]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def reload_note() -> list[str]:
    """The template's lines about what running services pick up from an edit."""
    return [
        f"# A running node re-reads {_names(NODE_RELOADS)} when this file changes;",
        f"# workers re-read {_names(WORKER_RELOADS)} at their next task: `aet`/`dest` edits need no restart.",
        "# Everything else is read at start: restart the services after changing it.",
    ]


def render_template() -> str:
    """The template text: header, then each section's keys at their default values."""
    lines = [
        "# mammocad configuration. Edit by hand or with `mammocad aet ...` / `mammocad dest ...`.",
        *reload_note(),
        "# Check it with `mammocad config check`; docs/ADMIN.md describes every key. The values below",
        "# are the defaults. Environment overrides: MAMMOCAD_NODE__PORT=11113, "
        "MAMMOCAD_BROKER__URL=redis://host:6379/0 ...",
    ]
    for section, keys in _KEYS:
        lines += ["", f"[{section}]"]
        for key, comment in keys:
            line = f"{key} = {_toml_value(default_value(section, key))}"
            lines.append(f"{line.ljust(_COMMENT_COLUMN - 1)} # {comment}" if comment else line)
    return "\n".join(lines) + "\n"


#: Written when ``add`` finds no config file: the structure of config/mammocad.toml.
TEMPLATE = render_template()
