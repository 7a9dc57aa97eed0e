"""Edits keep the admin's comments and layout, and an invalid edit never reaches the file."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from mammocad.config import OutputKind, load_settings
from mammocad.config.editing import (
    TEMPLATE,
    EditError,
    add_caller,
    add_destination,
    remove_caller,
    remove_destination,
)


def _comments(text: str) -> list[str]:
    return [m.group(0).strip() for m in re.finditer(r"#.*", text)]


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_add_keeps_every_comment_and_line(config_file: Path, clean_env: None) -> None:
    before = config_file.read_text()
    settings = add_caller(config_file, "MODALITY1", "10.0.0.5")
    after = config_file.read_text()
    assert _comments(after) == _comments(before)
    # Everything that was there is still there, in the same order.
    old_lines = [ln for ln in before.splitlines() if ln.strip()]
    new_lines = [ln for ln in after.splitlines() if ln.strip()]
    it = iter(new_lines)
    assert all(line in it for line in old_lines)
    # The new caller sits with the other callers, above the destinations heading.
    assert after.index('ae_title = "MODALITY1"') < after.index("# Where results are sent.")
    assert settings.caller_allowed("MODALITY1", "10.0.0.5")
    assert load_settings(config_file).caller_allowed("MODALITY1", "10.0.0.5")


def test_add_then_remove_restores_file_byte_for_byte(config_file: Path, clean_env: None) -> None:
    before = config_file.read_text()
    add_caller(config_file, "NEW")
    add_destination(config_file, "ris", "RIS", "ris.example", 104, ["sc", "gsps"])
    text = config_file.read_text()
    assert tomllib.loads(text)["destinations"][1] == {
        "name": "ris", "ae_title": "RIS", "host": "ris.example", "port": 104, "outputs": ["sc", "gsps"]}
    remove_destination(config_file, "ris")
    remove_caller(config_file, "NEW")
    assert config_file.read_text() == before


def test_remove_middle_and_last_keep_headings(config_file: Path, clean_env: None) -> None:
    remove_caller(config_file, "STORESCU")
    text = config_file.read_text()
    assert "STORESCU" not in text
    assert "# AEs allowed to send images." in text and "# Where results are sent." in text
    remove_caller(config_file, "ECHOSCU")  # the last one: its following heading must stay
    text = config_file.read_text()
    assert text.index('ae_title = "PACS"') < text.index("# Where results are sent.") < text.index("\n[[destinations]]")
    remove_destination(config_file, "pacs")  # the only one: the key goes, [broker] stays intact
    data = tomllib.loads(config_file.read_text())
    assert "destinations" not in data and data["broker"] == {"url": ""}
    assert load_settings(config_file).destinations == []


def test_duplicate_caller_refused_file_untouched(config_file: Path, clean_env: None) -> None:
    before = _snapshot(config_file)
    with pytest.raises(EditError, match="caller 'PACS' from host 127.0.0.1 is already listed"):
        add_caller(config_file, "PACS", "127.0.0.1")
    assert _snapshot(config_file) == before
    add_caller(config_file, "PACS", "10.1.1.1")  # same AE from a second address is allowed
    assert load_settings(config_file).caller_allowed("PACS", "10.1.1.1")


def test_duplicate_destination_refused_file_untouched(config_file: Path, clean_env: None) -> None:
    before = _snapshot(config_file)
    with pytest.raises(EditError, match="destination 'pacs' already exists"):
        add_destination(config_file, "pacs", "OTHER", "h", 104)
    assert _snapshot(config_file) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 70000}, r"destinations\[1\]\.port: .*1-65535"),
        ({"port": 0}, r"destinations\[1\]\.port"),
        ({"ae_title": "TOO_LONG_AE_TITLE_X"}, "destination AE title: AE title must be 1-16"),
        ({"name": "bad name!"}, r"destinations\[1\]\.name"),
        ({"outputs": ["pdf"]}, "unknown output kind 'pdf'"),
        ({"host": " "}, "host must not be empty"),
    ],
)
def test_invalid_destination_rejected_file_untouched(
    config_file: Path, clean_env: None, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"name": "ris", "ae_title": "RIS", "host": "h", "port": 104, **kwargs}
    before = _snapshot(config_file)
    with pytest.raises(EditError, match=message):
        add_destination(config_file, **args)  # type: ignore[arg-type]
    assert _snapshot(config_file) == before
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["mammocad.toml"]  # no temp file left


def test_invalid_caller_ae_rejected(config_file: Path, clean_env: None) -> None:
    before = _snapshot(config_file)
    for bad, reason in [("A\\B", "backslash"), ("X" * 17, "1-16"), ("A\x01", "control")]:
        with pytest.raises(EditError, match=reason):
            add_caller(config_file, bad)
    assert _snapshot(config_file) == before


def test_edit_refused_when_rest_of_file_is_invalid(config_file: Path, clean_env: None) -> None:
    config_file.write_text(config_file.read_text().replace("port = 11112", "port = 99999"))
    before = _snapshot(config_file)
    with pytest.raises(EditError, match=r"(?s)left unchanged:\n.*node\.port: .*1-65535"):
        add_caller(config_file, "NEW")
    assert _snapshot(config_file) == before


def test_environment_does_not_block_edits(config_file: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMOCAD_NODE__PORT", "99999")
    add_caller(config_file, "NEW")
    assert 'ae_title = "NEW"' in config_file.read_text()


def test_unknown_names_listed(config_file: Path, clean_env: None) -> None:
    with pytest.raises(EditError, match=r"no caller 'NOPE' .*listed: ECHOSCU, PACS, STORESCU"):
        remove_caller(config_file, "NOPE")
    with pytest.raises(EditError, match=r"no destination named 'nope' .*configured: pacs"):
        remove_destination(config_file, "nope")


def test_not_toml_is_refused(config_file: Path, clean_env: None) -> None:
    config_file.write_text("[node\nport = 1\n")
    with pytest.raises(EditError, match="is not valid TOML"):
        add_caller(config_file, "NEW")
    assert config_file.read_text() == "[node\nport = 1\n"


def test_missing_file_created_from_template(tmp_path: Path, clean_env: None) -> None:
    path = tmp_path / "new" / "mammocad.toml"
    with pytest.raises(EditError, match="does not exist"):
        remove_caller(path, "X")
    assert not path.exists()
    add_destination(path, "pacs", "PACS", "pacs.example", 4242)
    add_caller(path, "PACS")
    add_caller(path, "CT1", "10.0.0.7")
    text = path.read_text()
    for comment in _comments(TEMPLATE):
        assert comment in text
    settings = load_settings(path)
    assert settings.node.ae_title == "MAMMOCAD" and settings.node.port == 11112
    assert [c.ae_title for c in settings.callers] == ["PACS", "CT1"]
    assert settings.destination("pacs").outputs == list(OutputKind)
    assert oct(path.stat().st_mode & 0o777) == oct(0o664)  # deploy/README.md's mode


def test_file_mode_preserved(config_file: Path, clean_env: None) -> None:
    os.chmod(config_file, 0o640)
    add_caller(config_file, "NEW")
    assert config_file.stat().st_mode & 0o777 == 0o640


def test_concurrent_edits_lose_nothing(config_file: Path, clean_env: None) -> None:
    """Two admins at once: the folder lock serialises read-modify-write, no edit is lost."""
    from concurrent.futures import ThreadPoolExecutor

    names = [f"AE{i}" for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda ae: add_caller(config_file, ae), names))
    listed = {c.ae_title for c in load_settings(config_file).callers}
    assert set(names) <= listed


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_deploy_mode_and_the_folders_group(tmp_path: Path, clean_env: None, umask: int) -> None:
    """deploy/README.md installs the TOML file 0664 in group mammocad (the folder's group, setgid):
    a file the CLI created was 0644 in the admin's own group, so other admins could not edit it."""
    folder = tmp_path / "etc"
    folder.mkdir()
    others = [g for g in os.getgroups() if g != os.getegid()]
    if os.geteuid() == 0:
        os.chown(folder, -1, 4242)  # not setgid: the kernel would give the creator's group
    elif others:
        os.chown(folder, -1, others[0])
    else:
        pytest.skip("needs root or a second group to give the folder another group than the creator's")
    path = folder / "mammocad.toml"
    old = os.umask(umask)
    try:
        add_caller(path, "PACS")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o7777) == oct(0o664)
    assert path.stat().st_gid == folder.stat().st_gid
