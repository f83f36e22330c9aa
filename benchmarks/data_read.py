"""What reading MNIST costs a launch: from the gzip files (decompressed and SHA-256-verified), from the decoded
copy in the user's cache, and again in the same process (a sweep's later jobs).

Each way is timed in a fresh interpreter with a cache folder of its own (``XDG_CACHE_HOME``), alternating; medians
over ``--repeats``.

    python benchmarks/data_read.py --repeats 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import time
from mnistlab.data.idx import load_mnist
started = time.perf_counter()
load_mnist(download=False)
first = time.perf_counter() - started
started = time.perf_counter()
load_mnist(download=False)
print(first, time.perf_counter() - started)
"""


def timed(cache: Path) -> tuple[float, float]:
    """The first and the second read of one fresh process whose user cache is ``cache``."""
    env = {"XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env).stdout
    first, again = map(float, out.split())
    return first, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cold, warm, again = [], [], []
    for _ in range(args.repeats):
        cache = Path(tempfile.mkdtemp(prefix="data-read-"))
        try:
            first, second = timed(cache)  # an empty cache: the gzip files, decompressed and verified
            cold.append(first)
            again.append(second)
            warm.append(timed(cache)[0])  # the decoded copy the first process left
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    print(f"medians of {args.repeats}, seconds to read MNIST (60,000 + 10,000 images)")
    print("| read | seconds |")
    print("|---|---|")
    print(f"| from the gzip files, decompressed and SHA-256-verified | {statistics.median(cold):.3f} |")
    print(f"| from the decoded copy in the user's cache | {statistics.median(warm):.4f} |")
    print(f"| again in the same process (a sweep's later jobs) | {statistics.median(again):.5f} |")


if __name__ == "__main__":
    main()
