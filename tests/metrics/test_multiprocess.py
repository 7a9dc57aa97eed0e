"""prometheus_client's multiprocess mode as a worker uses it: samples written by forked
pool processes are summed by the parent's registry; a stale folder is emptied at start;
importing prometheus_client first is refused instead of silently losing the children's counts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_children_are_summed_and_a_stale_folder_is_emptied(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale from a previous run")
    proc = _python(f"""
        import os
        from pathlib import Path
        from mammocad.metrics import multiprocess
        multiprocess.prepare(Path({str(folder)!r}))
        from mammocad.metrics import definitions as m
        from prometheus_client import generate_latest
        for n in range(3):
            pid = os.fork()
            if pid == 0:
                m.IMAGES_ANALYSED.labels("ok").inc()
                m.MODEL_SECONDS.labels("cpu").observe(1.5)
                os._exit(0)
            os.waitpid(pid, 0)
        print(generate_latest(multiprocess.registry()).decode())
    """)
    assert proc.returncode == 0, proc.stderr
    assert 'mammocad_images_analysed_total{outcome="ok"} 3.0' in proc.stdout
    assert 'mammocad_model_seconds_per_image_count{device="cpu"} 3.0' in proc.stdout
    assert not (folder / "counter_999999.db").exists()


def test_prometheus_client_imported_first_is_refused(tmp_path: Path) -> None:
    proc = _python(f"""
        from pathlib import Path
        import mammocad.metrics.definitions
        from mammocad.metrics import multiprocess
        multiprocess.prepare(Path({str(tmp_path / "m")!r}))
    """)
    assert proc.returncode != 0 and "imported before multiprocess mode" in proc.stderr
