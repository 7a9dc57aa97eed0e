"""Every user-facing command answers --help (the brief's rule), found by walking the parser."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from mammocad.cli import build_parser


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, prefix + (name,))
    return paths


PATHS = _command_paths(build_parser())


def test_the_expected_commands_exist() -> None:
    names = {" ".join(p) for p in PATHS}
    expected = {
        "serve", "node", "worker", "analyze",
        "aet list", "aet add", "aet remove",
        "dest list", "dest add", "dest remove", "dest echo",
        "config check",
        "outbox list", "outbox retry", "outbox drop",
        "studies list", "studies show", "studies resend", "studies reanalyse",
        "model synth", "model train", "model evaluate", "model calibrate", "model average", "model realism",
    }
    missing = expected - names
    assert not missing, f"commands missing from the CLI: {sorted(missing)}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "mammocad")
def test_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mammocad")
    assert "not implemented" not in out
    assert "%%" not in out and "%(" not in out  # an escaped or unexpanded percent sign reads as a typo


def test_console_script_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "mammocad", "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("mammocad ")


#: The scientific stack: seconds to import, and not needed to print help or edit the config.
HEAVY = ("numpy", "torch", "pydicom", "PIL", "pynetdicom", "celery")

_IMPORTS_AFTER_HELP = """
import sys
from mammocad.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("loaded:", *(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("path", [(), ("studies", "list"), ("config", "check"), ("dest", "list")],
                         ids=lambda p: " ".join(p) or "mammocad")
def test_help_does_not_import_the_scientific_stack(path: tuple[str, ...]) -> None:
    """``--help`` must stay fast on an admin's shell: none of the heavy packages may load."""
    code = _IMPORTS_AFTER_HELP.format(heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code, *path, "--help"], capture_output=True, text=True,
                          check=True)
    assert "usage: mammocad" in proc.stdout
    loaded = proc.stdout.rstrip().splitlines()[-1].removeprefix("loaded:").strip()
    assert loaded == "", f"`mammocad {' '.join(path)} --help` imported {loaded}"


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
            ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(prefix, parser)]
    return [leaf for a in subs for name, sub in a.choices.items() for leaf in _leaves(sub, (*prefix, name))]


def _minimal_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for what ``parser`` requires: positionals, required options, and
    one option of each required either/or group."""
    out: list[str] = []
    for action in parser._actions:
        value = str(next(iter(action.choices))) if action.choices else "1"
        if action.option_strings and action.required:
            out += [action.option_strings[0], value]
        elif not action.option_strings and action.nargs not in ("?", "*"):
            out.append(value)
    for group in parser._mutually_exclusive_groups:
        if group.required:
            out += [group._group_actions[0].option_strings[0], "1"]
    return out


@pytest.mark.parametrize(("path", "sub"), _leaves(build_parser()), ids=lambda p: " ".join(p) if isinstance(p, tuple)
                         else "")
def test_global_config_before_and_after_every_command(path: tuple[str, ...], sub: argparse.ArgumentParser) -> None:
    """``--config`` goes before or after any command, nested ones included (``mammocad dest
    add NAME ... --config F``). ``model train --config`` is that command's training file, so
    there only the global place applies."""
    rest = _minimal_arguments(sub)
    assert build_parser().parse_args(["--config", "X", *path, *rest]).config == "X"
    own = [a for a in sub._actions if "--config" in a.option_strings and a.dest != "config"]
    if own:
        assert path == ("model", "train"), f"`mammocad {' '.join(path)}` redefines --config"
        return
    assert build_parser().parse_args([*path, *rest, "--config", "X"]).config == "X"
