"""What README.md and the docs tell an engineer, an admin or a data scientist to type exists as
written: every command is listed in the README's table, every flag a documented command line
uses is one its `--help` names, and every Debian package `make` installs is named in the README.
Cheap checks (argument parsing only) that a renamed flag or a new command cannot skip."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/ARCHITECTURE.md", "docs/FAULTS.md", "docs/DATASETS.md", "bench/README.md")


@functools.cache
def _help(*path: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mammocad", *path, "--help"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _subcommands(*path: str) -> set[str]:
    """The sub-command names an argparse help lists (indented four spaces under its metavar,
    COMMAND or ACTION, in "positional arguments")."""
    text = _help(*path)
    if not re.search(r"\b(COMMAND|ACTION) \.\.\.", text.split("\n\n")[0]):
        return set()
    return set(re.findall(r"^    ([a-z][a-z-]+)(?:\s|$)", text, re.M))


def _readme_table() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Commands", 1)[1].split("\n## ", 1)[0]


def test_readme_lists_every_command() -> None:
    table = _readme_table()
    missing = [f"mammocad {c}" for c in sorted(_subcommands()) if f"`mammocad {c}" not in table]
    model = re.search(r"`mammocad model ([^`]+)`", table)
    listed = set(model.group(1).split("\\|")) if model else set()
    missing += [f"mammocad model {c}" for c in sorted(_subcommands("model") - listed)]
    assert not missing, f"README.md's command table leaves out {missing}"


def _command_lines() -> list[tuple[str, list[str], str]]:
    """(doc, subcommand path, the rest of the line) for every `mammocad ...` line in the docs."""
    found = []
    for doc in DOCS:
        for m in re.finditer(r"(?:\.venv/bin/)?mammocad((?: [a-z][a-z-]*)+)([^`\n|#]*)", (ROOT / doc).read_text()):
            words = m.group(1).split()
            path: list[str] = []
            for word in words:
                if word not in _subcommands(*path):
                    break
                path.append(word)
            if path:
                found.append((doc, path, " ".join(words[len(path):]) + m.group(2)))
    return found


def test_documented_flags_exist() -> None:
    wrong = [f"{doc}: mammocad {' '.join(path)} {flag}"
             for doc, path, rest in _command_lines()
             for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)
             if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", _help(*path))]
    assert not wrong, f"documented flags the command does not take: {wrong}"


@pytest.mark.parametrize("variable", ["TEST_PKGS", "TOOL_PKGS", "RUN_PKGS"])
def test_readme_names_every_debian_package_make_installs(variable: str) -> None:
    """README promises what `make run`/`make test` install with apt-get: the two must not drift."""
    makefile = (ROOT / "Makefile").read_text()
    packages = re.search(rf"^{variable} := (.*)$", makefile, re.M)
    assert packages, f"Makefile has no {variable}"
    install = (ROOT / "README.md").read_text().split("Both install only what is missing", 1)[1].split("\n\n", 1)[0]
    missing = [p for p in packages.group(1).split() if f"`{p}`" not in install]
    assert not missing, f"README.md's install paragraph does not name {missing} (Makefile {variable})"


def test_readme_says_when_config_check_flags_the_orthanc_walkthrough() -> None:
    """README's Orthanc steps remove the template's `pacs` (PACS@127.0.0.1:4242) before adding
    `orthanc` (ORTHANC@127.0.0.1:4242). It said `config check` warns when both are kept; the check
    compares AE titles too, so it stays silent there, and an admin who trusted it sent twice."""
    from mammocad.config.advice import duplicate_peers
    from mammocad.config.loading import load_settings

    template = load_settings(ROOT / "config" / "mammocad.toml").destinations
    added = re.search(r"mammocad dest add orthanc --ae (\S+) --host (\S+) --port (\d+)", (ROOT / "README.md").read_text())
    assert added, "README.md no longer adds the orthanc destination"
    orthanc = template[0].model_copy(update={"name": "orthanc", "ae_title": added.group(1), "host": added.group(2),
                                             "port": int(added.group(3))})
    warned = bool(duplicate_peers([*template, orthanc]))
    readme = (ROOT / "README.md").read_text()
    assert ("`config check` warns about two destinations that are one peer" in readme) == warned
    assert ('no "same peer" warning' in readme) == warned


def test_architecture_names_the_uid_root_results_use() -> None:
    """docs/ARCHITECTURE.md said result UIDs came from pydicom's generate_uid under its default
    prefix; they are mammocad's own 2.25 root plus a digest (mammocad/results/uids.py)."""
    from mammocad.results.uids import UID_ROOT, product_uid

    section = (ROOT / "docs" / "ARCHITECTURE.md").read_text().split("## Result UIDs", 1)[1].split("\n## ", 1)[0]
    assert f"`{UID_ROOT}`" in section
    assert product_uid("a study", "a kind").startswith(UID_ROOT + ".")
    assert "generate_uid" not in section


def test_docs_say_one_presentation_state_per_image() -> None:
    """build_outputs makes one GSPS per analysed image (mammocad/results/gsps.py); README and
    docs/ARCHITECTURE.md spoke of one presentation state per study, so a PACS admin counting
    objects in Orthanc found four where the README promised one."""
    import mammocad.results.gsps as gsps

    assert "One GSPS per analysed image" in (gsps.__doc__ or "")
    readme = (ROOT / "README.md").read_text()
    assert "a presentation state per\nimage" in readme and "the presentation state." not in readme
    assert "SC and GSPS per image" in (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def test_documented_defaults_are_the_settings_defaults() -> None:
    """"`node.study_timeout_s` (30 s default)" in bench/README.md, against 300 s in the code: every
    "`section.key` (default) N" the docs quote must be the default a fresh Settings() has."""
    from mammocad.config.settings import Settings

    settings = Settings()
    quoted = re.compile(r"`(node|worker|delivery|results|broker|metrics|audit)\.([a-z_]+)`(?:,| is| \()? ?(?:default )?"
                        r"(\d[\d,]*(?:\.\d+)?)( Mpixel)?")
    wrong = []
    for doc in DOCS:
        for m in quoted.finditer((ROOT / doc).read_text()):
            section, key, value, mega = m.groups()
            default = getattr(getattr(settings, section), key)
            if float(value.replace(",", "")) * (1e6 if mega else 1) != float(default):
                wrong.append(f"{doc}: {section}.{key} quoted as {value}{mega or ''}, default {default}")
    assert not wrong, wrong


def test_readme_timing_names_the_weights_it_was_measured_with() -> None:
    """README's end-to-end time came from bench/README's 0.3.0-demo run but was told as "the demo
    weights", which ship as another version with extra orientation passes: the sentence names the
    version measured and the bench table it comes from must exist."""
    readme = (ROOT / "README.md").read_text()
    sentence = readme[readme.index("Within a minute"):].split(") the study", 1)[0]
    measured = re.search(r"with the\s+(\d+\.\d+\.\d+-demo) weights", sentence)
    assert measured, f"README's timing names no weights version: {sentence!r}"
    assert f"demo weights {measured.group(1)}" in (ROOT / "bench" / "README.md").read_text()


def test_makefile_help_describes_the_readme_make_commands() -> None:
    """README's first block is what a new engineer types; the Makefile's header said "two commands"
    and left `make test-faults` (the CI's second step) out."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh", 1)[1].split("```", 1)[0]
    targets = re.findall(r"^make ([a-z-]+)", block, re.M)
    makefile = (ROOT / "Makefile").read_text()
    header = makefile.split("\n\n", 1)[0]
    assert targets and all(re.search(rf"^#\s+make {t}\s", header, re.M) for t in targets), (targets, header)
    assert all(re.search(rf"^{t}:", makefile, re.M) for t in targets)


def test_every_phony_make_target_has_a_rule() -> None:
    """`bench` was declared phony with no rule: `make bench` said nothing to be done and ran nothing."""
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M)
    assert phony is not None
    missing = [t for t in phony.group(1).split() if not re.search(rf"^{re.escape(t)}:", makefile, re.M)]
    assert missing == []
