"""Run the real DICOM validators on files and return their complaints, parsed.

* ``dciodvfy`` (dicom3tools): IOD/module/attribute checks; lines starting "Error" count.
* ``dsrdump -v`` (DCMTK): parses the SR tree and checks the IOD's relationship
  constraints; any "E:" / "W:" line counts (warnings about constraints matter for SR).
* PixelMed ``DicomSRValidator``: the only one here that checks templates and context
  groups. ``pixelmed_batch`` runs it over many files in one JVM.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

_JAVA_FLAGS = [
    "-Djdk.xml.xpathExprOpLimit=0",
    "-Djdk.xml.xpathExprGrpLimit=0",
    "-Djdk.xml.xpathTotalOpLimit=0",
    "-Xshare:auto",
    "-XX:TieredStopAtLevel=1",
]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install the test packages with `make test-deps`")
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy prints for one file (warnings ignored)."""
    proc = subprocess.run([_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


#: dsrdump notes that are not about the document: UTF-8 VR checks and template checks it lacks.
DSRDUMP_INFO = ("does not support this Specific Character Set", "Check for template constraints not yet supported")


def dsrdump_problems(path: Path) -> list[str]:
    """Errors and warnings of ``dsrdump -v`` (tree parse and relationship constraints)."""
    proc = subprocess.run([_tool("dsrdump"), "-v", str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    problems = [line for line in lines if line.startswith(("E:", "W:", "F:"))
                and not any(note in line for note in DSRDUMP_INFO)]
    if proc.returncode != 0 and not problems:
        problems.append(f"dsrdump exited {proc.returncode}")
    return problems


def pixelmed_classpath() -> str:
    """The PixelMed jar; its manifest Class-Path pulls in the Debian dependency jars."""
    for pattern in ("/usr/share/java/pixelmed.jar", "/usr/share/java/pixelmed*.jar"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise RuntimeError("PixelMed jar not found: install libpixelmed-java (make test-deps)")


def pixelmed_sr_problems(path: Path) -> list[str]:
    """Errors and warnings from PixelMed's DicomSRValidator (templates, context groups)."""
    cmd = [_tool("java"), *_JAVA_FLAGS, "-cp", pixelmed_classpath(),
           "com.pixelmed.validate.DicomSRValidator", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Exception" in out:
        return [f"DicomSRValidator failed (rc={proc.returncode}): {out[-2000:]}"]
    problems = []
    for line in out.splitlines():
        text = line.strip()
        if text.startswith(("Error", "Warning")) or "Error:" in text or "Warning:" in text:
            problems.append(text)
    return problems


def all_problems(paths: Iterable[Path], *, sr: bool = False, pixelmed: bool = False) -> dict[str, list[str]]:
    """Problems per file name, only for files that have any."""
    out: dict[str, list[str]] = {}
    for path in paths:
        found = dciodvfy_errors(path)
        if sr:
            found += dsrdump_problems(path)
        if pixelmed:
            found += pixelmed_sr_problems(path)
        if found:
            out[path.name] = found
    return out


def pixelmed_sr_problems_many(paths: list[Path], workers: int = 2) -> dict[str, list[str]]:
    """PixelMed on several files, ``workers`` JVMs at a time (one file per JVM)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(pixelmed_sr_problems, paths))
    return {p.name: f for p, f in zip(paths, found, strict=True)}


_BATCH = Path(__file__).parent / "pixelmed" / "BatchSRValidator.java"
#: Verdicts already given in this test session, by SHA-256 of the file's bytes: an SR checked
#: by its own test is not validated again by the end-of-session sweep (tests/results/conftest.py).
_VERDICTS: dict[str, list[str]] = {}


def _cache_root() -> Path:
    """Per-machine cache for test tools: $MAMMOCAD_TEST_CACHE, else $XDG_CACHE_HOME or ~/.cache."""
    if os.environ.get("MAMMOCAD_TEST_CACHE"):
        return Path(os.environ["MAMMOCAD_TEST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mammocad-tests"


def batch_key(source: bytes, jar: Path) -> str:
    """Cache key of the compiled batch validator: its source and the PixelMed jar (path, size)."""
    return hashlib.sha256(source + f"\0{jar}:{jar.stat().st_size}".encode()).hexdigest()[:16]


def batch_validator_classes(cache: Path | None = None) -> Path:
    """The folder holding the compiled ``BatchSRValidator.class``, compiled at most once per
    machine: the cache folder is keyed by the source's hash and the PixelMed jar it was built
    against, so an edit or a new PixelMed compiles again and nothing stale is run. Compiled
    into a private folder and renamed into place, so two sessions never see a half-written one."""
    jar = Path(pixelmed_classpath()).resolve()
    root = cache or _cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home (some CI runners): the machine's temp folder instead
        root = Path(tempfile.gettempdir()) / f"mammocad-tests-{os.getuid()}"
        root.mkdir(parents=True, exist_ok=True)
    target = root / f"pixelmed-batch-{batch_key(_BATCH.read_bytes(), jar)}"
    if (target / "BatchSRValidator.class").is_file():
        return target
    work = Path(tempfile.mkdtemp(prefix=".compiling-", dir=root))
    try:
        proc = subprocess.run([_tool("javac"), "-nowarn", "-cp", str(jar), "-d", str(work), str(_BATCH)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"javac failed on {_BATCH.name}: {proc.stderr[-2000:]}")
        try:
            work.rename(target)
        except OSError:  # another session put it there first
            if not (target / "BatchSRValidator.class").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixelmed_batch(paths: list[Path], timeout_s: float = 1200) -> dict[Path, list[str]]:
    """PixelMed on many files in one JVM (``tests/pixelmed/BatchSRValidator.java``, compiled
    once per machine): errors and warnings per file. A file the validator threw on, or whose
    report was cut off (no "=== DONE" line), gets an error entry, so a crash is never a pass.
    Compiling the template stylesheet is seconds per JVM, a file then well under a second (see
    the Java source for why), so every SR the suite writes is checked in one JVM; files
    already validated in this session (same bytes) are not run again."""
    digests = {p: _digest(p) for p in paths}
    todo = list({digests[p]: p for p in paths if digests[p] not in _VERDICTS}.values())  # one file per content
    if todo:
        classes = batch_validator_classes()
        cmd = [_tool("java"), *_JAVA_FLAGS, "-cp", f"{pixelmed_classpath()}{os.pathsep}{classes}",
               "BatchSRValidator", *map(str, todo)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        for path, found in _parse_batch(proc.stdout, todo).items():
            if found and found[-1] == _NOT_DONE:
                found[-1] = f"DicomSRValidator did not finish this file (rc={proc.returncode}): {proc.stderr[-1500:]}"
            _VERDICTS[digests[path]] = found
    return {p: list(_VERDICTS[digests[p]]) for p in paths}


_NOT_DONE = "\0not done"


def _parse_batch(stdout: str, paths: list[Path]) -> dict[Path, list[str]]:
    """Errors and warnings per file from BatchSRValidator's output; ``_NOT_DONE`` last when the
    file's "=== DONE" line is missing."""
    by_name = {str(p): p for p in paths}
    found: dict[Path, list[str]] = {p: [] for p in paths}
    done: set[Path] = set()
    current: Path | None = None
    for line in stdout.splitlines():
        text = line.strip()
        if text.startswith("=== FILE "):
            current = by_name[text[len("=== FILE "):]]
        elif text.startswith("=== DONE "):
            done.add(by_name[text[len("=== DONE "):]])
            current = None
        elif text.startswith("=== FAILED ") and current is not None:
            found[current].append(f"DicomSRValidator failed: {text}")
        elif current is not None and (text.startswith(("Error", "Warning")) or "Error:" in text
                                      or "Warning:" in text):
            found[current].append(text)
    for path in paths:
        if path not in done:
            found[path].append(_NOT_DONE)
    return found


def pixelmed_errors(problems: list[str]) -> list[str]:
    """Only the errors (the acceptance bar is zero errors; warnings are reviewed by hand)."""
    return [p for p in problems if not p.startswith("Warning")]


#: PixelMed's own tables misspell these meanings ("Failed  Detections" with two spaces,
#: "Individual Impression / Recommendation Analysis"); PS3.16 spells them as we do.
KNOWN_PIXELMED_MEANING_TYPOS = ("Failed  Detections", "Failed  Analyses",
                                "Individual Impression / Recommendation Analysis")


def pixelmed_real_problems(problems: list[str], *, allow_not_in_template: tuple[str, ...] = ()) -> list[str]:
    """Drop warnings caused by PixelMed's table typos or its unparameterised TID 1500 rows."""
    out = []
    for p in problems:
        if p.startswith("Warning") and "different code meaning" in p and any(
                t in p for t in KNOWN_PIXELMED_MEANING_TYPOS):
            continue
        if p.startswith("Warning") and "Content Item not in template" in p and any(
                a in p for a in allow_not_in_template):
            continue
        out.append(p)
    return out


