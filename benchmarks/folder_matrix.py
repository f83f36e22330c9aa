"""Do the defaults train your own images? Folders of MNIST and Fashion-MNIST images, from 2 to 10 classes, 100 to
1,000 training images per class, 16 to 64 px, grey and colour, each trained by ``mnistlab data=folder
data.root=DIR`` with LeNet-5 and the MLP, seeds 0-2, on 1 and 2 threads, and with a small learning-rate sweep
(seed 0, 1 thread) to say how far each default run is from the best rate found for its folder.

    python benchmarks/folder_matrix.py outputs/folder_matrix             # folders, then every run (about an hour on 2 cores)
    python benchmarks/folder_matrix.py outputs/folder_matrix --sweep-only   # beside --no-sweep: two processes, half the time
    python benchmarks/folder_matrix.py outputs/folder_matrix --table     # the tables from the results so far
    python benchmarks/folder_matrix.py outputs/folder_matrix --label before --extra trainer.min_steps_per_epoch=null

Results go to ``<out>/results.jsonl``, one line per run; a relaunch skips the runs it already has.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from colour_folder import write_folder  # beside this file: Python puts a script's folder on the path

from mnistlab import api

FOLDERS = {  # name: how it is made (benchmarks/colour_folder.py)
    "A": {"source": "mnist", "classes": 3, "size": 48, "train": 300, "test": 200, "colour": True},
    "B": {"source": "fashion_mnist", "classes": 4, "size": 28, "train": 150, "test": 200, "colour": False},
    "C": {"source": "mnist", "classes": 2, "size": 16, "train": 100, "test": 100, "colour": False},
    "D": {"source": "fashion_mnist", "classes": 10, "size": 64, "train": 1000, "test": 100, "colour": True},
    "E": {"source": "mnist", "classes": 10, "size": 32, "train": 100, "test": 100, "colour": False},
    "F": {"source": "fashion_mnist", "classes": 6, "size": 24, "train": 500, "test": 200, "colour": True},
    "G": {"source": "mnist", "classes": 3, "size": 48, "train": 500, "test": 200, "colour": True},  # docs/datasets.md's colour folder
}
MODELS, SEEDS, THREADS = ("lenet5", "mlp"), (0, 1, 2), (1, 2)
RATES = (0.01, 0.02, 0.05, 0.1, 0.2)


def describe(name: str) -> str:
    f = FOLDERS[name]
    kind = "colour" if f["colour"] else "grey"
    return f"{name}: {f['source']}, {f['classes']} classes x {f['train']}, {f['size']} px {kind}"


def runs(folders: list[str], threads: list[int], matrix: bool, sweep: bool) -> list[dict]:
    """Every run of the matrix and of the learning-rate sweep (seed 0, 1 thread), as ``{folder, model, seed, threads, lr}``."""
    todo = [{"folder": f, "model": m, "seed": s, "threads": t, "lr": None} for f in folders for m in MODELS for s in SEEDS for t in threads]
    todo = todo if matrix else []
    if sweep:
        todo += [{"folder": f, "model": m, "seed": 0, "threads": 1, "lr": lr} for f in folders for m in MODELS for lr in RATES]
    return todo


def train(out: Path, run: dict, extra: list[str]) -> dict:
    root = out / "folders" / run["folder"]
    overrides = [
        "data=folder",
        f"data.root={root}",
        f"model={run['model']}",
        f"seed={run['seed']}",
        f"trainer.threads={run['threads']}",
        "run.plots=false",
        "trainer.progress=false",
        *([f"optimizer.lr={run['lr']}"] if run["lr"] is not None else []),
        *extra,
    ]
    name = "_".join(f"{k}{v}" for k, v in run.items()) + ("_" + re.sub(r"[^\w.-]", "-", "_".join(extra)) if extra else "")
    result = api.train(api.compose(*overrides, f"hydra.run.dir={out}/runs/{name}"))
    summary = result.summary
    return run | {"status": summary["status"], "final_test_acc": summary.get("final_test_acc"), "seconds": summary.get("seconds")}


def cells(runs: list[dict]) -> str:
    """Accuracies in seed order, each with its status where it did not complete."""
    return ", ".join(f"{r['final_test_acc']:.1f}" + ("" if r["status"] == "completed" else f" ({r['status']})") for r in runs)


def table(results: list[dict]) -> str:
    """Per folder and model: each cell's accuracy (seeds 0, 1, 2 on 1 and 2 threads), the worst, and the best rate's."""
    lines = [
        "| folder | model | 1 thread | 2 threads | worst | best lr (seed 0) | worst − best |",
        "|---|---|---|---|---|---|---|",
    ]
    for folder in FOLDERS:
        for model in MODELS:
            by_threads = {r["threads"]: [] for r in results}
            found = [r for r in results if r["folder"] == folder and r["model"] == model and r["lr"] is None]
            if not found:
                continue
            for r in sorted(found, key=lambda r: r["seed"]):
                by_threads[r["threads"]].append(r)
            worst = min(r["final_test_acc"] for r in found)
            sweep = [r for r in results if r["folder"] == folder and r["model"] == model and r["lr"] is not None]
            best = max(sweep, key=lambda r: r["final_test_acc"]) if sweep else None
            best_cell = f"{best['final_test_acc']:.1f} (lr {best['lr']})" if best else ""
            gap = f"{worst - best['final_test_acc']:+.1f}" if best else ""
            lines.append(
                f"| {describe(folder)} | {model} | {cells(by_threads.get(1, []))} | {cells(by_threads.get(2, []))} | {worst:.1f} | {best_cell} | {gap} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--label", default="default", help="a name for this set of runs (default: the defaults, with the lr sweep)")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides every run of this label gets")
    parser.add_argument("--folders", nargs="+", choices=list(FOLDERS), default=list(FOLDERS))
    parser.add_argument("--threads", nargs="+", type=int, default=list(THREADS))
    parser.add_argument("--no-sweep", action="store_true", help="leave out the learning-rate sweep")
    parser.add_argument(
        "--sweep-only", action="store_true", help="only the learning-rate sweep (a second process beside one with --no-sweep)"
    )
    parser.add_argument("--table", action="store_true", help="print the tables of the results so far, and run nothing")
    args = parser.parse_args()
    path = args.out / "results.jsonl"
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if args.table:
        for label in dict.fromkeys(r["label"] for r in done):
            results = [r for r in done if r["label"] == label]
            seconds = statistics.median(r["seconds"] for r in results if r.get("seconds"))
            print(f"\n{label} ({len(results)} runs, median {seconds:.0f} s of training):\n\n{table(results)}")
        return
    for name, spec in FOLDERS.items():
        if not (args.out / "folders" / name).exists():
            write_folder(
                args.out / "folders" / name,
                spec["classes"],
                spec["size"],
                spec["train"],
                spec["test"],
                source=spec["source"],
                colour=spec["colour"],
            )
    seen = {json.dumps({k: r[k] for k in ("folder", "model", "seed", "threads", "lr")}) for r in done if r["label"] == args.label}
    for run in runs(args.folders, args.threads, not args.sweep_only, not args.no_sweep):
        if json.dumps(run) in seen:
            continue
        result = train(args.out, run, args.extra) | {"label": args.label, "extra": args.extra}
        print(json.dumps(result), flush=True)
        with path.open("a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
