"""Node memory under load: four concurrent senders of ≈30 MB mammograms.

    .venv/bin/python bench/bench_node_memory.py [-n 5] [--senders 4]

Runs `mammocad node` as a subprocess, starts four storescu processes at once (each
its own association with n images of 3328×4608 uint16 ≈30.7 MB), then prints the node's
peak resident memory (VmHWM from /proc/PID/status) next to its idle RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _node_bench import make_images, node_process, peak_rss_mb, spawn  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--count", type=int, default=5, help="images per sender (default 5)")
    parser.add_argument("--senders", type=int, default=4, help="concurrent storescu processes (default 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mammocad-bench-") as tmp:
        work = Path(tmp)
        batches = [make_images(work / f"images{s}", args.count, rows=4608, prefix=f"s{s}-")
                   for s in range(args.senders)]
        image_mb = batches[0][0].stat().st_size / 1e6
        with node_process(work / "node") as (port, pid):
            _, idle_rss = peak_rss_mb(pid)
            start = time.perf_counter()
            senders = [spawn(["storescu", "-aet", f"BENCH{s}", "-aec", "MAMMOCAD", "127.0.0.1",
                              str(port), *map(str, batch)], stderr=subprocess.PIPE, text=True)
                       for s, batch in enumerate(batches)]
            failures = [p.communicate()[1][-500:] for p in senders if p.wait() != 0]
            elapsed = time.perf_counter() - start
            peak, rss = peak_rss_mb(pid)
        stored = len(list((work / "node" / "spool" / "studies").glob("*/images/*.dcm")))
    total = args.senders * args.count
    print(f"senders: {args.senders} concurrent × {args.count} images × {image_mb:.1f} MB "
          f"({stored}/{total} stored in {elapsed:.1f} s, {total * image_mb / elapsed:.0f} MB/s)")
    print(f"node RSS idle: {idle_rss:.0f} MB   peak (VmHWM): {peak:.0f} MB   after: {rss:.0f} MB")
    print(f"peak above idle per concurrent sender: {(peak - idle_rss) / args.senders:.0f} MB "
          f"({(peak - idle_rss) / args.senders / image_mb:.1f} × image size)")
    if failures:
        print("sender failures:\n" + "\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
