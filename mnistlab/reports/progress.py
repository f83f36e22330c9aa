"""A sweep's progress, one line as each job ends, whatever launches the jobs (here, joblib, SLURM, a study's workers):

    [7/24] regularization=augment,seed=1 completed 99.41% in 61 s · 7 min elapsed · about 17 min left

A thread of the launching process watches the sweep directory for summaries that reach their final status, so a
job that ends in another process or on another node is seen as soon as its summary is, and jobs that end together
each get their line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from mnistlab.runs.files import SUMMARY_FILE, read_summary
from mnistlab.training.clock import duration

RUNNING = ("running",)
ROUND_FILE = "progress.json"  # a sweeper that decides as it goes writes its round and its jobs so far here


def outcome(summary: dict[str, Any]) -> str:
    """``completed 99.41%``, ``collapsed at 9.8%``, ``failed (ConfigError: ...)``: how a job ended, in a few words."""
    status, acc = summary.get("status", "?"), summary.get("final_test_acc")
    if status == "completed" and isinstance(acc, int | float):
        return f"completed {acc:.2f}%"
    if isinstance(acc, int | float) and not summary.get("error"):  # ended on its own: collapsed, a callback's status
        return f"{status} at {acc:.2f}%"
    error = str(summary.get("error") or "").splitlines()[0][:80] if summary.get("error") else ""
    return f"{status} ({error})" if error else status


class SweepProgress:
    """Watches ``sweep_dir``; ``planned``: the job directories of the sweep (their completed runs count as done at the
    start, as a relaunch skips them), ``total``: how many jobs it runs (None: unknown)."""

    def __init__(self, sweep_dir: Path, planned: list[str] | None, total: int | None, out: TextIO | None = None, every: float = 1.0):
        self.sweep_dir, self.total, self.out, self.every = Path(sweep_dir), total, out or sys.stdout, every
        self.started = time.time()
        self.seen: dict[Path, float] = {}  # each summary's modification time when last looked at
        self.done: set[str] = set()
        self.ended_here: set[str] = set()
        for path in self._summaries():
            self.seen[path] = path.stat().st_mtime
            if (planned is None or path.parent.name in planned) and self._status(path) == "completed":
                self.done.add(path.parent.name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)

    def _summaries(self) -> list[Path]:
        return sorted(self.sweep_dir.glob(f"*/{SUMMARY_FILE}"))

    @staticmethod
    def _status(path: Path) -> str | None:
        try:
            return read_summary(path.parent).get("status")
        except ValueError:
            return None

    def poll(self) -> list[str]:
        """The lines of the jobs that ended since the last poll (each also written to ``out``)."""
        ended = []
        for path in self._summaries():
            try:
                mtime = path.stat().st_mtime
                if self.seen.get(path) == mtime:
                    continue
                summary = read_summary(path.parent)
            except (OSError, ValueError):  # being replaced right now: the next poll reads it
                continue
            if summary.get("status") in RUNNING or not summary.get("status"):
                continue
            self.seen[path] = mtime
            ended.append((mtime, path.parent.name, summary))
        lines = []
        for _, name, summary in sorted(ended):  # in the order they ended
            self.done.add(name)
            self.ended_here.add(name)
            lines.append(self.line(name, summary))
        for line in lines:
            print(line, file=self.out, flush=True)
        return lines

    def _round(self, name: str) -> str:
        """`` · round 2``, the round that launched job ``name``, for a sweeper that decides round by round (its jobs so
        far become the total), else nothing."""
        try:
            state = json.loads((self.sweep_dir / ROUND_FILE).read_text())
        except (OSError, ValueError):
            return ""
        self.total = int(state["jobs"]) + len(self.done - self.ended_here)
        return f" · round {state.get('job_rounds', {}).get(name, state['round'])}"

    def line(self, name: str, summary: dict[str, Any]) -> str:
        rounds = self._round(name)
        elapsed = time.time() - self.started
        seconds = summary.get("wall_seconds")
        took = f" in {duration(seconds)}" if isinstance(seconds, int | float) else ""
        count = f"[{len(self.done)}/{self.total}]" if self.total else f"[{len(self.done)}]"
        text = f"{count} {name} {outcome(summary)}{took}{rounds} · {duration(elapsed)} elapsed"
        if self.total and len(self.done) < self.total:
            left = elapsed / len(self.ended_here) * (self.total - len(self.done))
            text += f" · about {duration(left)} left" + (" in this round" if rounds else "")
        return text

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            self.poll()

    def start(self) -> SweepProgress:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching, after a last look (the sweep's last jobs)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.poll()
