"""Receive speed: the node against DCMTK storescp, same images, same sender, same run.

    .venv/bin/python bench/bench_receive.py [-n 50]

Generates N ≈27 MB mammograms (3328×4096 uint16), sends them with one storescu
association to storescp (bit-preserving, no fsync) and to `mammocad node` (durable:
fsync + rename + directory fsync per image), prints seconds, MB/s and node/storescp.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _node_bench import free_port, make_images, node_process, spawn, stop, wait_for_port  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` (all its threads) has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_send(paths: list[Path], port: int, aec: str, pid: int) -> tuple[float, float]:
    """(wall seconds, receiver CPU seconds) of one send: CPU time does not depend on what
    else the machine runs, wall time does."""
    before = cpu_seconds(pid)
    elapsed = send(paths, port, aec)
    return elapsed, cpu_seconds(pid) - before


def send(paths: list[Path], port: int, aec: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(["storescu", "-aet", "BENCH", "-aec", aec, "127.0.0.1", str(port),
                             *map(str, paths)], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"storescu to {aec} failed:\n{result.stderr[-2000:]}")
    return elapsed


def run_storescp(paths: list[Path], work: Path, pdu: int) -> tuple[float, float]:
    out = work / "storescp-out"
    out.mkdir(parents=True)
    port = free_port()
    proc = spawn(["storescp", "+B", "-pdu", str(pdu), "-od", str(out), "-aet", "STORESCP", str(port)],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        return timed_send(paths, port, "STORESCP", proc.pid)
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--count", type=int, default=50, help="number of images (default 50)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate storescp and node this many times; best round is reported (noisy machines)")
    parser.add_argument("--storescp-pdu", type=int, default=131072, help="storescp max PDU (4096..131072)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mammocad-bench-") as tmp:
        work = Path(tmp)
        paths = make_images(work / "images", args.count)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        dcmtk_runs, node_runs, dcmtk_cpu, node_cpu = [], [], [], []
        for r in range(args.rounds):
            wall, cpu = run_storescp(paths, work / f"scp{r}", args.storescp_pdu)
            dcmtk_runs.append(wall)
            dcmtk_cpu.append(cpu)
            with node_process(work / f"node{r}") as (port, pid):
                wall, cpu = timed_send(paths, port, "MAMMOCAD", pid)
            node_runs.append(wall)
            node_cpu.append(cpu)
            stored = len(list((work / f"node{r}" / "spool" / "studies").glob("*/images/*.dcm")))
            shutil.rmtree(work / f"scp{r}")
            shutil.rmtree(work / f"node{r}")
        dcmtk_s, node_s = min(dcmtk_runs), min(node_runs)
        if args.rounds > 1:
            print("rounds storescp s: " + " ".join(f"{t:.2f}" for t in dcmtk_runs))
            print("rounds node s:     " + " ".join(f"{t:.2f}" for t in node_runs))
    print(f"images: {args.count} × {megabytes / args.count:.1f} MB = {megabytes:.0f} MB over loopback")
    print(f"storescp (+B, no fsync):   {dcmtk_s:7.2f} s  {megabytes / dcmtk_s:7.1f} MB/s")
    print(f"mammocad node (fsync):     {node_s:7.2f} s  {megabytes / node_s:7.1f} MB/s  ({stored} stored)")
    print(f"ratio node/storescp time:  {node_s / dcmtk_s:.2f}  (below 1: node faster)")
    print(f"receiver CPU s (best):     storescp {min(dcmtk_cpu):.2f}, node {min(node_cpu):.2f} "
          f"(ratio {min(node_cpu) / max(min(dcmtk_cpu), 1e-9):.2f}; less sensitive to other load than wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
