"""Time to 99% test accuracy with the ``experiment=speedrun`` recipe (or another), seeds 0-4.

Each run stops as soon as test accuracy reaches ``callback.target_accuracy.target`` (evaluated after every epoch);
the time is the training loop's wall time including those evaluations. Loading the data and starting
the interpreter are excluded; with ``--warmup-runs 1`` so is a GPU's one-off start-up (CUDA context,
library handles, kernel loading), paid by an untimed run first.

    python benchmarks/time_to_target.py [--experiment speedrun_gpu] [--seeds 0 1 2 3 4] [--warmup-runs N] [overrides ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from mnistlab.paths import config_dir
from mnistlab.runs.task import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--experiment", default="speedrun", help="the recipe: a preset in conf/experiment")
    parser.add_argument("--warmup-runs", type=int, default=0, help="untimed runs first (seed 0)")
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. trainer.threads=2")
    args = parser.parse_args()
    rows = []
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"), tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate([None] * args.warmup_runs + args.seeds):
            overrides = [
                f"experiment={args.experiment}",
                f"seed={seed or 0}",
                "run.plots=false",
                "run.checkpoint=false",
                *args.overrides,
            ]
            cfg = compose(config_name="config", overrides=overrides)
            run_dir = Path(tmp) / str(i)
            run_dir.mkdir()
            summary = run(cfg, run_dir)
            if seed is None:
                continue
            rows.append((seed, summary["time_to_target"], summary["final_test_acc"], summary["epochs_run"]))
    target = cfg.callback.target_accuracy.target
    print(f"\ntarget {target}% test accuracy on {summary['device']}, recipe experiment={args.experiment} {' '.join(args.overrides)}")
    print(f"{'seed':>4} {'seconds':>8} {'test acc':>9} {'epochs':>6}")
    for seed, seconds, acc, epochs in rows:
        print(f"{seed:>4} {seconds if seconds is not None else float('nan'):>8.2f} {acc:>8.2f}% {epochs:>6}")
    times = [r[1] for r in rows if r[1] is not None]
    print(
        f"reached by {len(times)}/{len(rows)} seeds; median {statistics.median(times) if times else float('nan'):.2f} s, max {max(times) if times else float('nan'):.2f} s"
    )


if __name__ == "__main__":
    main()
