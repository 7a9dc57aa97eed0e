"""Fuzz a node with mutated data sets and PDU garbage over real associations.

    .venv/bin/python bench/fuzz.py --cases 10000 --seed 1

Starts a private redis-server and ``mammocad node`` (log level DEBUG, to a file), sends
``--cases`` mutated data sets (hypothesis, seeded: the same seed sends the same cases)
and ``--cases / 3`` PDU-garbage connections, then checks that the node still answers and
stores, that every data set it answered Success for is in the spool, and that no patient
name or ID from the cases reached its log at any level. Prints the status counts; exits 1
on any problem. The fault suite runs the same cases, fewer (tests/faults/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._node_bench import start_redis  # noqa: E402
from tests.factories import make_mammogram, write  # noqa: E402
from tests.faults.fuzzing import fuzz_data_sets, fuzz_pdus, node_alive  # noqa: E402
from tests.processes import spawn, stop  # noqa: E402
from tests.services import free_port, wait_for_port  # noqa: E402


def _memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB: the node's resident and peak memory."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="mutated data sets to send (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="hypothesis seed (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (spool, node log)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mammocad-fuzz-"))
    redis, redis_port = start_redis(work)
    port = free_port()
    cfg = work / "mammocad.toml"
    cfg.write_text(f'log_level = "DEBUG"\n[node]\nae_title = "MAMMOCAD"\nhost = "127.0.0.1"\nport = {port}\n'
                   f'spool_dir = "{work / "spool"}"\nrequire_known_callers = false\nassociation_timeout_s = 2\n'
                   f'network_timeout_s = 2\nmax_inflated_mb = 8\n[broker]\nurl = "redis://127.0.0.1:{redis_port}/0"\n')
    log = work / "node.log"
    with open(log, "wb") as out:
        node = spawn([sys.executable, "-m", "mammocad", "--config", str(cfg), "node"], name="mammocad node",
                     stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for_port(redis_port)
        wait_for_port(port, timeout=60)
        idle_mb = _memory_mb(node.pid)[0]
        t0 = time.monotonic()
        report = fuzz_data_sets(port, work / "cases", args.cases, args.seed)
        fuzz_pdus(port, max(1, args.cases // 3), args.seed, report)
        seconds = time.monotonic() - t0
        alive = node.poll() is None and node_alive(port, write(make_mammogram(rows=32, columns=24),
                                                               work / "valid.dcm"))
        problems = report.problems(work / "spool", log.read_text(errors="replace"), alive)
        rss_mb, peak_mb = _memory_mb(node.pid) if node.poll() is None else (float("nan"), float("nan"))
    finally:
        stop(node)
        stop(redis)
    sent = sum(report.statuses.values())
    print(f"data sets: {args.cases} cases, {sent} answered, {report.aborted} associations aborted; "
          f"PDU garbage: {report.pdus} connections; {seconds:.0f} s (seed {args.seed})")
    print(f"node memory: {idle_mb:.0f} MB idle, {rss_mb:.0f} MB at the end, {peak_mb:.0f} MB peak (VmHWM)")
    for status, n in report.statuses.most_common():
        print(f"  status {status}: {n}")
    print("problems: none" if not problems else "problems:\n  " + "\n  ".join(problems))
    if args.keep or problems:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
