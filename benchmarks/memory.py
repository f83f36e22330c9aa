"""Peak resident memory (and time) of a default ``mnistlab`` run (LeNet-5, 15 epochs) in a subprocess.

python benchmarks/memory.py [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="mnistlab overrides, e.g. model=mlp trainer.epochs=2")
    overrides = parser.parse_args().overrides
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "mnistlab", *overrides, f"hydra.run.dir={tmp}/run"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"mnistlab {' '.join(overrides)}: peak resident memory {peak_kib / 1024**2:.2f} GiB ({peak_kib / 1024:.0f} MiB)")
    print(
        f"test accuracy {summary['final_test_acc']:.2f}%, training {summary['seconds']:.2f} s"
        f" (after {summary['warmup_seconds']:.2f} s of warm-up), whole job {summary['wall_seconds']:.1f} s, on {summary['device']} ({summary['threads']} threads)"
    )


if __name__ == "__main__":
    main()
