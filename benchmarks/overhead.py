"""What short work costs beyond its training, against an earlier commit, side by side in one run.

Each workload is launched as a user launches it (``python -m mnistlab ...``, a fresh process each time), alternately
with the code of this checkout and of each ``--baseline`` commit (a git worktree of it, importing the same installed
libraries). For each it prints the total wall time, the training time the runs' summaries record (their
``seconds``: the epochs with their evaluations), and the overhead, the rest: start-up, set-up, data, figures on the
way, and for a sweep its report; the sweep's overhead per job too, and what each job beyond the sixth adds (the
12-job sweep against the 6-job one). Medians over ``--repeats``.

    python benchmarks/overhead.py --baseline 4e5424c --repeats 5

A single run's figures are drawn in a process of their own after this checkout's runs: the script waits for them
and says when they were there. The decoded copy of MNIST in the user's cache (made by the first launch) serves
every later one; the first launch of a machine pays ~0.4 s more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "single: model=mlp trainer.epochs=3": ["model=mlp", "trainer.epochs=3"],
    "sweep: 6 jobs of 100 batches (model=mlp)": ["-m", "model=mlp", "seed=0,1,2,3,4,5", "trainer.epochs=1", "trainer.limit_batches=100"],
    "single: model=lenet5 trainer.epochs=1": ["model=lenet5", "trainer.epochs=1"],
    "sweep: 12 jobs of 100 batches (model=mlp)": [
        "-m",
        "model=mlp",
        f"seed={','.join(map(str, range(12)))}",
        "trainer.epochs=1",
        "trainer.limit_batches=100",
    ],
}
SIX, TWELVE = "sweep: 6 jobs of 100 batches (model=mlp)", "sweep: 12 jobs of 100 batches (model=mlp)"


def jobs_of(workload: list[str]) -> int:
    """How many jobs a workload launches (the seeds it sweeps; 1 for a single run)."""
    seeds = next((arg for arg in workload if arg.startswith("seed=")), None)
    return len(seeds.split(",")) if "-m" in workload and seeds else 1


def baseline_python(ref: str, folder: Path) -> Path:
    """A Python that imports mnistlab from a worktree of ``ref`` and every other library from this one's site-packages."""
    tree = folder / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), ref], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    site = Path(
        subprocess.check_output(
            [str(folder / "venv" / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "baseline.pth").write_text(f"{tree}\n{sysconfig.get_paths()['purelib']}\n")
    return folder / "venv" / "bin" / "python"


def launch(python: Path, args: list[str], out: Path) -> tuple[float, float, list[Path]]:
    """Wall seconds of one launch, the training seconds its runs record, and its run directories."""
    where = ["hydra.sweep.dir=" + str(out)] if "-m" in args else ["hydra.run.dir=" + str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.run([str(python), "-m", "mnistlab", *args, *where], cwd=out.parent, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{python} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    runs = [p.parent for p in out.glob("**/summary.json")]
    return wall, sum(json.loads((r / "summary.json").read_text())["seconds"] for r in runs), runs


def figures_after(runs: list[Path], timeout: float = 120) -> float | None:
    """Seconds until every run has its three PNGs (None: not within ``timeout``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if all((r / name).exists() for r in runs for name in ("curves.png", "confusion.png", "mistakes.png")):
            return time.perf_counter() - started
        time.sleep(0.05)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", nargs="*", default=[], help="git refs to compare with (a worktree each)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="overhead-"))
    pythons = {"this checkout": Path(sys.executable)}
    try:
        for ref in args.baseline:
            pythons[ref] = baseline_python(ref, scratch / f"base-{ref}")
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        figure_wait: list[float | None] = []
        launches = 0
        for repeat in range(args.repeats):
            for name, workload in WORKLOADS.items():
                for label, python in pythons.items():
                    launches += 1
                    out = scratch / f"{label.replace(' ', '_')}-{repeat}-{launches}" / "out"
                    out.parent.mkdir(parents=True)
                    wall, train, runs = launch(python, workload, out)
                    results.setdefault((name, label), []).append((wall, train))
                    if label == "this checkout" and "-m" not in workload:
                        figure_wait.append(figures_after(runs))
                    print(f"  {name} [{label}] run {repeat + 1}: {wall:.2f} s, training {train:.2f} s", file=sys.stderr, flush=True)
        print(f"medians of {args.repeats} launches, alternating; overhead = total - training")
        print("| workload | code | total (s) | training (s) | overhead (s) | overhead per job (s) |")
        print("|---|---|---|---|---|---|")
        for name, workload in WORKLOADS.items():
            jobs = jobs_of(workload)
            for label in pythons:
                walls, trains = zip(*results[(name, label)], strict=True)
                wall, train = statistics.median(walls), statistics.median(trains)
                over = statistics.median(w - t for w, t in results[(name, label)])
                print(f"| {name} | {label} | {wall:.2f} | {train:.2f} | {over:.2f} | {over / jobs:.2f} |")
        for label in pythons:  # what one more job costs: the 12-job sweep's overhead beyond the 6-job one's, per job
            over = {name: statistics.median(w - t for w, t in results[(name, label)]) for name in (SIX, TWELVE)}
            print(f"{label}: each job beyond the sixth adds {(over[TWELVE] - over[SIX]) / 6:.2f} s of overhead")
        waits = [w for w in figure_wait if w is not None]
        print(
            f"a single run's figures were all there {statistics.median(waits):.1f} s after it returned (median)"
            if waits
            else "figures: not drawn"
        )
        if len(waits) < len(figure_wait):
            print(f"{len(figure_wait) - len(waits)} single run(s) lacked a figure after 120 s")
    finally:
        for ref in args.baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(scratch / f"base-{ref}" / "tree")], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
