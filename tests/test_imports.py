"""The import rules of docs/ARCHITECTURE.md, checked on the source (imports inside functions too).

Data flows node → spool → queue → model → results → delivery; the contract between the two
sides of the queue lives below both (``mammocad.spool``, ``mammocad.dicom``), so the node and
the worker never import each other and nothing imports back up the flow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "mammocad"
#: Cross-cutting services every stage may use: logs, listening on a configured port, settings,
#: the audit trail, metrics.
BASE = ("mammocad.logs", "mammocad.listen", "mammocad.config", "mammocad.audit", "mammocad.metrics")

#: package → what its modules may import from mammocad (besides itself, ``mammocad`` for
#: the version, and BASE). More specific packages come first.
ALLOWED: dict[str, tuple[str, ...]] = {
    "mammocad.logs": (),
    "mammocad.listen": (),
    "mammocad.dicom": ("mammocad.logs",),
    "mammocad.audit": ("mammocad.dicom",),
    "mammocad.metrics": ("mammocad.dicom", "mammocad.spool"),
    "mammocad.config": ("mammocad.dicom",),
    "mammocad.spool": ("mammocad.dicom", "mammocad.model.results"),
    "mammocad.node": ("mammocad.dicom", "mammocad.spool"),
    "mammocad.studies": ("mammocad.dicom", "mammocad.spool"),
    "mammocad.model.commands.analyze": ("mammocad.model", "mammocad.dicom", "mammocad.results"),
    "mammocad.model": ("mammocad.dicom",),
    "mammocad.results": ("mammocad.dicom", "mammocad.model.results"),
    "mammocad.worker": ("mammocad.dicom", "mammocad.spool", "mammocad.model", "mammocad.results"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every mammocad import in the file.

    ``from mammocad.model import results`` imports the module ``mammocad.model.results``;
    ``from mammocad import NOT_FOR_DIAGNOSIS`` only the package ``mammocad``.
    """
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                out.append((node.lineno, name if _is_module(name) else node.module))
    return [(line, m) for line, m in out if m == "mammocad" or m.startswith("mammocad.")]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _rule(module: str) -> tuple[str, tuple[str, ...]] | None:
    for package, allowed in ALLOWED.items():
        if _within(module, package):
            return package, allowed
    return None


def _violations() -> list[str]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        rule = _rule(module)
        if rule is None:
            continue
        package, allowed = rule
        home = package if package != "mammocad.model.commands.analyze" else "mammocad.model"
        for line, imported in _imports(path):
            if imported == "mammocad" or _within(imported, home):
                continue
            if any(_within(imported, ok) for ok in (*BASE, *allowed)):
                continue
            out.append(f"{path.relative_to(ROOT.parent)}:{line}: {module} imports {imported}")
    return out


def test_packages_import_only_below_themselves() -> None:
    assert _violations() == []


#: The composition root: the ``mammocad`` command wires every package together.
ENTRY_POINTS = {"mammocad", "mammocad.cli", "mammocad.__main__"}


def test_every_module_has_a_place_in_the_table() -> None:
    """A new package must say what it may import (add it to ALLOWED and docs/ARCHITECTURE.md)."""
    unplaced = sorted(m for m in map(_module_name, ROOT.rglob("*.py")) if m not in ENTRY_POINTS and _rule(m) is None)
    assert unplaced == []


@pytest.mark.parametrize(("importer", "forbidden"), [
    ("mammocad.node", "mammocad.worker"), ("mammocad.worker", "mammocad.node"),
    ("mammocad.model", "mammocad.worker"), ("mammocad.spool", "mammocad.node"),
    ("mammocad.spool", "mammocad.worker"), ("mammocad.results", "mammocad.worker"),
])
def test_acceptance_greps_of_issue_12(importer: str, forbidden: str) -> None:
    """`grep -rn "mammocad.worker" mammocad/node mammocad/model` (and the others) print nothing."""
    folder = ROOT.parent / importer.replace(".", "/")
    hits = [f"{p}:{i}" for p in folder.rglob("*.py")
            for i, text in enumerate(p.read_text().splitlines(), 1) if forbidden in text]
    assert hits == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rule table must be able to fail: a node module importing the worker is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from mammocad.worker.tasks import deliver\n")
    assert (2, "mammocad.worker.tasks") in _imports(bad)
    rule = _rule("mammocad.node.bad")
    assert rule is not None and not any(_within("mammocad.worker.tasks", ok) for ok in rule[1])
