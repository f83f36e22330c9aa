"""Peak resident memory of a default ``mnistlab`` run (LeNet-5, 15 epochs) in a subprocess.

python benchmarks/memory.py [overrides ...]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    overrides = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        command = [str(Path(sys.executable).parent / "mnistlab"), *overrides, f"hydra.run.dir={tmp}/run"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"mnistlab {' '.join(overrides)}: peak resident memory {peak_kib / 1024**2:.2f} GiB ({peak_kib / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
