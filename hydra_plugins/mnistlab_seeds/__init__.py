"""mnistlab's adaptive-seed sweeper: ``hydra/sweeper=seeds``. Hydra takes sweepers only from its plugin package, so the
class is here; the statistics and the rounds are :mod:`mnistlab.reports.sequential` and :mod:`mnistlab.reports.seeds`.

The sweep's non-seed values make the groups. Every group first runs ``min_seeds`` seeds; after each round every
comparison with its baseline that reached a planned look is decided or stays open, and only open comparisons give
their group and baseline more seeds, up to ``max_seeds``. Each round is one launch of the configured launcher
(here, joblib, one SLURM array). A relaunch into the same ``hydra.sweep.dir`` first completes the round it was in,
keeps every decision recorded, and goes on, never running a seed twice.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("mnistlab")
PROGRESS_FILE = "progress.json"  # the sweep's round, its jobs so far and each job's round, for the per-job progress lines
MAX_SEEDS = 100


class SeedSweeper(Sweeper):
    """Adds seeds only where a comparison is still open; every decision is valid however many rounds it took."""

    def __init__(
        self,
        min_seeds: int = 3,
        max_seeds: int = 20,
        alpha: float = 0.05,
        delta: float = 0.1,
        seeds_per_round: int = 1,
        baseline: str | None = None,
        params: Any = None,
    ):
        self.keys = {"min_seeds": min_seeds, "max_seeds": max_seeds, "alpha": alpha, "delta": delta, "seeds_per_round": seeds_per_round}
        self.baseline = baseline
        self.params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else dict(params or {})

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Sequence[Any]:
        from mnistlab.errors import UserError
        from mnistlab.runs.launch import discard_new_sweep

        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            return self._sweep(arguments, sweep_dir)
        except UserError as err:  # bad settings, or a sweep directory of other settings: one line, before any job
            discard_new_sweep()  # a refused sweep leaves no directory
            print(f"mnistlab: {err}", file=sys.stderr)
            sys.exit(err.exit_code)

    def _sweep(self, arguments: list[str], sweep_dir: Path) -> Sequence[Any]:
        from mnistlab.reports import seeds

        sweep, fixed = self._plan(arguments)
        recorded = seeds.SeedSweep.load(sweep_dir)
        if recorded is not None:
            _check_same(recorded, sweep, sweep_dir)
            sweep = recorded  # its rounds, its decisions (final) and its relaunches
            log.info("seeds sweep: continuing %s in round %d", sweep_dir, len(sweep.rounds))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        names = Jobs(sweep, fixed, sweep_dir)
        launched, assessed, resumed = 0, {}, bool(sweep.rounds)
        while True:
            if not resumed:  # a relaunch first completes the round it was in
                counts = seeds.next_round(sweep, assessed, names.results())
                if counts is None:
                    break
                sweep.rounds.append(counts)
                sweep.save(sweep_dir)
            todo = seeds.to_launch(sweep, names.results())  # a relaunch of a failed run is recorded once it has run
            if todo:
                round_ = len(sweep.rounds)
                names.record_round(todo, round_, launched)
                log.info("seeds sweep, round %d: %d jobs (%s)", round_, len(todo), _span(todo))
                self.launcher.launch([names.overrides(g, s) for g, s in todo], initial_job_idx=launched)
                launched += len(todo)
                sweep.save(sweep_dir)
            results = names.results()
            sweep.step = names.step() or sweep.step or seeds.infer_step(results)
            assessed, resumed = seeds.assess(sweep, results), False
            sweep.save(sweep_dir)
            log.info("seeds sweep, after round %d: %s", len(sweep.rounds), seeds.open_comparisons(assessed))
        for group, assessment in assessed.items():
            d = assessment.decision
            when = f"in round {assessment.round}" if assessment.round else f"after {len(sweep.rounds)} rounds"
            log.info("seeds sweep: %s vs %s: %s %s, %d paired seeds", group, sweep.baselines[group], d.state, when, d.seeds)
        return []

    def _plan(self, arguments: list[str]) -> tuple[Any, list[str]]:
        """The groups (the product of the swept non-seed values, in Hydra's order), their baselines, the design and the
        overrides every job gets; checked before anything runs or is written."""
        import pandas as pd

        from mnistlab.config.identity import override_key, sweep_values
        from mnistlab.errors import ConfigError
        from mnistlab.reports import seeds
        from mnistlab.reports.sequential import Design, check_alpha
        from mnistlab.reports.statistics import choose_baseline

        k = self.keys
        for key in ("min_seeds", "max_seeds", "seeds_per_round"):
            if isinstance(k[key], bool) or not isinstance(k[key], int) or k[key] < (2 if key == "min_seeds" else 1):
                raise ConfigError(f"hydra.sweeper.{key} must be an integer >= {2 if key == 'min_seeds' else 1}, got {k[key]!r}")
        if k["max_seeds"] < k["min_seeds"]:
            raise ConfigError(f"hydra.sweeper.max_seeds must be >= hydra.sweeper.min_seeds ({k['min_seeds']}), got {k['max_seeds']}")
        if k["max_seeds"] > MAX_SEEDS:
            raise ConfigError(f"hydra.sweeper.max_seeds must be <= {MAX_SEEDS}, got {k['max_seeds']}")
        problem = check_alpha(k["alpha"])
        if problem:
            raise ConfigError(f"hydra.sweeper.alpha {problem}")
        if not (isinstance(k["delta"], int | float) and not isinstance(k["delta"], bool) and k["delta"] > 0):
            raise ConfigError(f"hydra.sweeper.delta must be > 0 (accuracy points), got {k['delta']!r}")
        values = sweep_values(self.params, arguments)
        if any(override_key(key) == "seed" and len(v) > 1 for key, v in values.items()):
            log.info("seeds sweep: the sweeper chooses the seeds (0, 1, 2, ... in every group); the seed sweep given is left out")
        swept = {key: v for key, v in values.items() if len(v) > 1 and override_key(key) != "seed"}
        fixed = [v[0] for key, v in values.items() if len(v) == 1 and override_key(key) != "seed"]
        if not swept:
            raise ConfigError(
                "hydra/sweeper=seeds compares groups: sweep at least one value besides the seed (e.g. regularization=none,augment)"
            )
        groups = {seeds.group_name(combo): list(combo) for combo in itertools.product(*swept.values())}
        keys = [override_key(key) for key in swept]
        table = pd.DataFrame([{override_key(item): item.split("=", 1)[1] for item in combo} for combo in groups.values()])
        try:
            chosen = choose_baseline(table, keys, self.baseline)
        except ValueError as err:
            raise ConfigError(f"hydra.sweeper.baseline: {err}".replace("--baseline ", "")) from None
        baselines: dict[str, str | None] = {}
        for name, combo in groups.items():
            stripped = {override_key(item): item.split("=", 1)[1] for item in combo}
            if chosen is None or stripped[chosen.key] == chosen.value:
                baselines[name] = None
                continue
            target = [f"{item.split('=', 1)[0]}={chosen.value}" if override_key(item) == chosen.key else item for item in combo]
            baselines[name] = seeds.group_name(target) if seeds.group_name(target) in groups else None
        families = tuple(n for n in (sum(b == base for b in baselines.values()) for base in groups) if n)
        design = Design(k["min_seeds"], k["max_seeds"], float(k["alpha"]), float(k["delta"]), families or (1,), k["seeds_per_round"])
        sweep = seeds.SeedSweep(groups, baselines, design, baseline=str(chosen) if chosen else None)
        return sweep, fixed


class Jobs:
    """The sweep's runs on disk: each job's overrides and directory, their results, and the progress file."""

    def __init__(self, sweep: Any, fixed: list[str], sweep_dir: Path):
        from mnistlab.config.identity import override_key

        self.sweep, self.fixed, self.sweep_dir = sweep, fixed, sweep_dir
        self.swept = {override_key(item) for combo in sweep.groups.values() for item in combo} | {"seed"}
        self.rounds: dict[str, int] = {}

    def job(self, group: str, seed: int) -> list[str]:
        return [*self.sweep.groups[group], *self.fixed, f"seed={seed}"]

    def dir(self, group: str, seed: int) -> Path:
        from mnistlab.config.identity import job_dirname

        return self.sweep_dir / job_dirname(self.job(group, seed), self.swept)

    def overrides(self, group: str, seed: int) -> list[str]:
        """A job's overrides; one whose directory holds a run resumes it (a relaunch, or a run launched again)."""
        from mnistlab.runs.files import has_records

        return self.job(group, seed) + (["run.resume=true"] if has_records(self.dir(group, seed)) else [])

    def summary(self, group: str, seed: int) -> dict[str, Any]:
        from mnistlab.runs.files import read_summary

        try:
            return read_summary(self.dir(group, seed))
        except ValueError:
            return {"status": "unreadable"}

    def results(self) -> dict[str, dict[int, Any]]:
        """``{group: {seed: outcome}}`` of every seed launched so far (:func:`mnistlab.reports.seeds.outcome`)."""
        from mnistlab.reports import seeds

        counts = seeds.used(self.sweep)
        return seeds.results_of((g, s, seeds.outcome(self.summary(g, s))) for g in self.sweep.groups for s in range(counts[g]))

    def step(self) -> float | None:
        """The resolution of the metric the runs are compared on: the coarsest their summaries report."""
        from mnistlab.reports import seeds

        counts = seeds.used(self.sweep)
        found = [seeds.resolution(self.summary(g, s)) for g in self.sweep.groups for s in range(counts[g])]
        return max((r for r in found if r is not None), default=None)

    def record_round(self, todo: list[tuple[str, int]], round_: int, launched: int) -> None:
        """progress.json: the round, the jobs launched by its end, and each job's own round, for the progress lines."""
        self.rounds |= {self.dir(g, s).name: round_ for g, s in todo}
        state = {"round": round_, "jobs": launched + len(todo), "job_rounds": self.rounds}
        (self.sweep_dir / PROGRESS_FILE).write_text(json.dumps(state))


def _check_same(recorded: Any, sweep: Any, sweep_dir: Path) -> None:
    """A relaunch continues the recorded sweep only with its groups and design; any other is refused, naming what differs."""
    from dataclasses import asdict

    from mnistlab.errors import RunDirError

    before = {"groups": sorted(recorded.groups), **asdict(recorded.design)}
    now = {"groups": sorted(sweep.groups), **asdict(sweep.design)}
    changed = [f"{key}: {before[key]} -> {now[key]}" for key in before if before[key] != now[key]]
    if changed:
        raise RunDirError(
            f"{sweep_dir} holds an adaptive-seed sweep of other settings ({'; '.join(changed)}); relaunch it with its own, "
            "or sweep into a new hydra.sweep.dir"
        )


def _span(jobs: list[tuple[str, int]]) -> str:
    """``seeds 3-4 of 5 groups``: what a round launches."""
    seeds = sorted({s for _, s in jobs})
    groups = len({g for g, _ in jobs})
    shown = (
        f"seed {seeds[0]}"
        if len(seeds) == 1
        else f"seeds {seeds[0]}-{seeds[-1]}"
        if seeds == list(range(seeds[0], seeds[-1] + 1))
        else "seeds " + ", ".join(map(str, seeds))
    )
    return f"{shown} of {groups} group{'s' if groups > 1 else ''}"
