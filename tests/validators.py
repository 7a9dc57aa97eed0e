"""Run the real DICOM validators on files and return their complaints, parsed.

* ``dciodvfy`` (dicom3tools): IOD/module/attribute checks; lines starting "Error" count.
* ``dsrdump -v`` (DCMTK): parses the SR tree and checks the IOD's relationship
  constraints; any "E:" / "W:" line counts (warnings about constraints matter for SR).
* PixelMed ``DicomSRValidator``: the only one here that checks templates and context
  groups. ``pixelmed_batch`` runs it over many files in one JVM.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
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


def pixelmed_batch(paths: list[Path], timeout_s: float = 3600) -> dict[Path, list[str]]:
    """PixelMed on many files in one JVM (``tests/pixelmed/BatchSRValidator.java``, run by the
    JDK's source launcher): errors and warnings per file, a "failed" entry when one could not
    be validated. Loading the compiled templates is most of a run, so this is how every SR
    the suite writes gets checked."""
    if not paths:
        return {}
    cmd = [_tool("java"), *_JAVA_FLAGS, "-cp", pixelmed_classpath(), str(_BATCH), *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    found: dict[Path, list[str]] = {}
    current: Path | None = None
    by_name = {str(p): p for p in paths}
    for line in proc.stdout.splitlines():
        text = line.strip()
        if text.startswith("=== FILE "):
            current = by_name[text[len("=== FILE "):]]
            found[current] = []
        elif text.startswith("=== FAILED ") and current is not None:
            found[current].append(f"DicomSRValidator failed: {text}")
        elif current is not None and (text.startswith(("Error", "Warning")) or "Error:" in text
                                      or "Warning:" in text):
            found[current].append(text)
    for path in paths:
        if path not in found:
            found[path] = [f"DicomSRValidator did not report (rc={proc.returncode}): {proc.stderr[-1500:]}"]
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


