"""What a logger costs a CPU run: the seconds spent in its calls against the seconds of training.

Trains LeNet-5 for a few full epochs with each logger (csv, tensorboard, mlflow) into a temporary directory
and times the calls the run makes to its logger: per epoch (against the epoch's training and evaluation),
and once per run (start: imports, connecting, a new MLflow store's schema; finish: artifacts):

    python benchmarks/logger_overhead.py --epochs 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mnistlab import api
from mnistlab.runs import task


def timed_logger_class(totals: dict[str, float]) -> type:
    class Timed(task.GuardedLogger):
        def _time(self, method: str, *args) -> None:
            started = time.perf_counter()
            getattr(super(), method)(*args)
            totals["epochs" if method == "log_epoch" else "once"] += time.perf_counter() - started

        def start(self, *args) -> None:
            self._time("start", *args)

        def log_epoch(self, row) -> None:
            self._time("log_epoch", row)

        def finish(self, summary) -> None:
            self._time("finish", summary)

    return Timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--loggers", nargs="+", default=["csv", "tensorboard", "mlflow"])
    args = parser.parse_args()
    original = task.GuardedLogger
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.loggers:
            totals = {"epochs": 0.0, "once": 0.0}
            task.GuardedLogger = timed_logger_class(totals)
            try:
                cfg = api.compose(
                    f"logger={name}",
                    f"trainer.epochs={args.epochs}",
                    "trainer.progress=false",
                    "run.plots=false",
                    f"hydra.run.dir={tmp}/{name}",
                    *([f"logger.tracking_uri=sqlite:///{tmp}/mlflow.db"] if name == "mlflow" else []),
                )
                result = api.train(cfg, Path(tmp) / name)
            finally:
                task.GuardedLogger = original
            training = result.summary["seconds"]
            print(
                f"{name:12s} epochs {training:6.1f} s; logging per epoch {totals['epochs'] / args.epochs * 1000:6.1f} ms "
                f"({100 * totals['epochs'] / training:.3f}% of an epoch); start and finish once {totals['once']:.2f} s"
            )


if __name__ == "__main__":
    main()
