"""The template a first `aet add` / `dest add` writes says only true things: its values are the
defaults, and what it says about live reloads is what the node and workers do."""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import tomlkit

from mammocad.config import load_settings
from mammocad.config.editing import TEMPLATE
from mammocad.config.template import NODE_RELOADS, WORKER_RELOADS, default_value, reload_note
from mammocad.config.watch import ConfigWatcher
from mammocad.node.associations import CallerPolicy
from mammocad.worker import tasks
from tests.config.conftest import Runner, leaves


def test_every_value_in_the_template_is_the_default() -> None:
    written = leaves(tomllib.loads(TEMPLATE))
    assert written, TEMPLATE
    wrong = {}
    for dotted, value in written.items():
        section, key = dotted.split(".")
        default = default_value(section, key)
        if value != (str(default) if isinstance(default, Path) else default):
            wrong[dotted] = (value, default)
    assert not wrong, f"template value != Settings default: {wrong}"


def test_first_add_then_config_show_prints_the_default_study_timeout(mammocad: Runner, tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    assert mammocad("aet", "add", "PACS", config=path).returncode == 0
    shown = mammocad("config", "show", config=path)
    assert shown.returncode == 0, shown.stderr
    assert tomllib.loads(shown.stdout)["node"]["study_timeout_s"] == 300.0


def test_the_template_says_what_reloads_in_its_own_words() -> None:
    header = [line for line in TEMPLATE.splitlines() if line.startswith("#")]
    note = reload_note()
    assert header[1:1 + len(note)] == note
    lowered = TEMPLATE.lower()
    # Claims about reloading or restarting are only in the generated note.
    rest = "\n".join(line for line in TEMPLATE.splitlines() if line not in note).lower()
    for word in ("restart", "re-read", "at start", "reload"):
        assert word not in rest, f"{word!r} outside the generated reload note"
    assert "[[callers]]" in lowered and "[[destinations]]" in lowered


def _config(tmp_path: Path) -> dict[str, Any]:
    data = tomllib.loads(TEMPLATE)
    data["node"]["spool_dir"] = str(tmp_path / "spool")
    data["callers"] = [{"ae_title": "PACS"}]
    data["destinations"] = [{"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242}]
    return data


def _edited(data: dict[str, Any]) -> dict[str, Any]:
    """One change in every section (and in each reloaded key): what an admin might edit."""
    new = copy.deepcopy(data)
    new["node"].update(port=11113, study_timeout_s=60, require_known_callers=False, ae_title="OTHER")
    new["callers"] = [{"ae_title": "PACS"}, {"ae_title": "MG1"}]
    new["destinations"] = [{"name": "pacs2", "ae_title": "PACS2", "host": "127.0.0.1", "port": 4243}]
    new["broker"]["url"] = "redis://127.0.0.1:6390/3"
    new["worker"]["device"] = "cpu"
    new["delivery"].update(retry_initial_s=1, retry_max_s=7, deadline_s=99)
    new["results"] = {"sc_jpeg_quality": 50}
    new["metrics"] = {"port": 9999}
    new["audit"] = {"site_id": "HOSPITAL"}
    new["log_level"] = "DEBUG"
    return new


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomlkit.dumps(data))
    os.replace(tmp, path)  # a new inode: the watcher sees the change whatever the clock


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    old, new = leaves(before), leaves(after)
    return {key for key in old if old[key] != new[key]}


def _covered(changed: set[str], claimed: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """(changed keys no claim covers, claims with no changed key)."""
    def claims(key: str, item: str) -> bool:
        return key == item or key.startswith(item + ".")
    unclaimed = {k for k in changed if not any(claims(k, c) for c in claimed)}
    silent = {c for c in claimed if not any(claims(k, c) for k in changed)}
    return unclaimed, silent


def test_node_reloads_what_the_template_says(tmp_path: Path, clean_env: None) -> None:
    path = tmp_path / "mammocad.toml"
    data = _config(tmp_path)
    _write(path, data)
    settings = load_settings(path)
    before = settings.model_dump(mode="json")
    policy = CallerPolicy(settings, path)
    _write(path, _edited(data))
    policy.refresh()
    assert _covered(_changed(before, policy.settings.model_dump(mode="json")), NODE_RELOADS) == (set(), set())


def test_workers_reload_what_the_template_says(tmp_path: Path, clean_env: None) -> None:
    path = tmp_path / "mammocad.toml"
    data = _config(tmp_path)
    _write(path, data)
    settings = load_settings(path)
    before = settings.model_dump(mode="json")
    app = SimpleNamespace(mammocad_settings=settings, mammocad_watcher=ConfigWatcher(settings, path))
    _write(path, _edited(data))
    seen = tasks._settings(SimpleNamespace(app=app))  # type: ignore[arg-type]
    assert _covered(_changed(before, seen.model_dump(mode="json")), WORKER_RELOADS) == (set(), set())
