"""mnistlab's adaptive-seed sweeper: ``hydra/sweeper=seeds``. Hydra takes sweepers only from its plugin package, so the
class is here; the statistics and the rounds are :mod:`mnistlab.reports.sequential` and :mod:`mnistlab.reports.seeds`.

The sweep's non-seed values make the groups. Every group first runs ``min_seeds`` seeds; after each round every
comparison with its baseline is decided (better, worse, no difference that matters) or open, and only open
comparisons give their group and baseline more seeds, up to ``max_seeds``. Each round is one launch of the
configured launcher (here, joblib, one SLURM array). A relaunch into the same ``hydra.sweep.dir`` continues from
the rounds it finished, never running a seed twice.
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
PROGRESS_FILE = "progress.json"  # the sweep's round and its jobs so far, for the per-job progress lines


class SeedSweeper(Sweeper):
    """Adds seeds only where a comparison is still open; every decision is valid however many rounds it took."""

    def __init__(
        self,
        min_seeds: int = 3,
        max_seeds: int = 20,
        alpha: float = 0.05,
        delta: float = 0.1,
        seeds_per_round: int = 2,
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

        try:
            return self._sweep(arguments)
        except UserError as err:  # bad settings, or a sweep directory of other settings: one line, before any job
            log.error("%s", err)
            sys.exit(err.exit_code)

    def _sweep(self, arguments: list[str]) -> Sequence[Any]:
        from mnistlab.config.identity import job_dirname
        from mnistlab.reports import seeds
        from mnistlab.runs.files import has_records, read_summary

        sweep, fixed = self._plan(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        recorded = seeds.SeedSweep.load(sweep_dir)
        if recorded is not None:
            _check_same(recorded, sweep, sweep_dir)
            sweep.rounds = recorded.rounds
            log.info("seeds sweep: continuing %s after round %d", sweep_dir, len(sweep.rounds))

        def job(group: str, seed: int) -> list[str]:
            return [*sweep.groups[group], *fixed, f"seed={seed}"]

        def result(group: str, seed: int) -> float | None:
            try:
                summary = read_summary(sweep_dir / job_dirname(job(group, seed)))
            except ValueError:
                return None
            return summary.get("final_test_acc") if summary.get("status") == "completed" else None

        launched = 0
        counts = sweep.rounds[-1] if sweep.rounds else None  # a relaunch first completes its last round
        while True:
            if counts is None:
                results = seeds.results_of((g, s, result(g, s)) for g in sweep.groups for s in range(seeds.used(sweep)[g]))
                assessed = seeds.assess(sweep, results) if sweep.rounds else {}
                if sweep.rounds:
                    log.info("seeds sweep, after round %d: %s", len(sweep.rounds), seeds.open_comparisons(assessed))
                counts = seeds.next_round(sweep, assessed)
                if counts is None:
                    break
                sweep.rounds.append(counts)
                sweep.save(sweep_dir)
            before = sweep.rounds[-2] if len(sweep.rounds) > 1 else dict.fromkeys(sweep.groups, 0)
            todo = [(g, s) for g in sweep.groups for s in range(before[g] if recorded is None else 0, counts[g]) if result(g, s) is None]
            recorded = None
            if todo:
                overrides = [
                    job(g, s) + (["trainer.resume=true"] if has_records(sweep_dir / job_dirname(job(g, s))) else []) for g, s in todo
                ]
                (sweep_dir / PROGRESS_FILE).write_text(json.dumps({"round": len(sweep.rounds), "jobs": launched + len(todo)}))
                log.info("seeds sweep, round %d: %d jobs (%s)", len(sweep.rounds), len(todo), _span(todo))
                self.launcher.launch(overrides, initial_job_idx=launched)
                launched += len(todo)
            counts = None
        results = seeds.results_of((g, s, result(g, s)) for g in sweep.groups for s in range(seeds.used(sweep)[g]))
        assessed = seeds.assess(sweep, results)
        for group, assessment in assessed.items():
            d = assessment.decision
            when = f"in round {assessment.round}" if assessment.round else f"after {len(sweep.rounds)} rounds"
            log.info("seeds sweep: %s vs %s: %s %s, %d paired seeds", group, sweep.baselines[group], d.state, when, d.seeds)
        return []

    def _plan(self, arguments: list[str]) -> tuple[Any, list[str]]:
        """The groups (the product of the swept non-seed values, in Hydra's order), their baselines, the design and the
        overrides every job gets; checked before anything runs."""
        import pandas as pd
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from mnistlab.errors import ConfigError
        from mnistlab.reports import seeds
        from mnistlab.reports.sequential import Design
        from mnistlab.reports.statistics import choose_baseline

        k = self.keys
        for key in ("min_seeds", "max_seeds", "seeds_per_round"):
            if isinstance(k[key], bool) or not isinstance(k[key], int) or k[key] < (2 if key == "min_seeds" else 1):
                raise ConfigError(f"hydra.sweeper.{key} must be an integer >= {2 if key == 'min_seeds' else 1}, got {k[key]!r}")
        if k["max_seeds"] < k["min_seeds"]:
            raise ConfigError(f"hydra.sweeper.max_seeds must be >= hydra.sweeper.min_seeds ({k['min_seeds']}), got {k['max_seeds']}")
        if not (isinstance(k["alpha"], int | float) and 0 < k["alpha"] < 1):
            raise ConfigError(f"hydra.sweeper.alpha must be > 0 and < 1, got {k['alpha']!r}")
        if not (isinstance(k["delta"], int | float) and k["delta"] > 0):
            raise ConfigError(f"hydra.sweeper.delta must be > 0 (test accuracy points), got {k['delta']!r}")
        given = [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        swept: dict[str, list[str]] = {}
        fixed: dict[str, str] = {}
        for override in OverridesParser.create().parse_overrides(given):
            key = override.get_key_element()
            if key.lstrip("+~") == "seed":
                log.info("seeds sweep: the sweeper chooses the seeds (0, 1, 2, ... in every group); %s is left out", override.input_line)
                continue
            if override.is_sweep_override():
                swept[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
                fixed.pop(key, None)
            else:
                fixed[key] = f"{key}={override.get_value_element_as_str()}"
                swept.pop(key, None)
        if not swept:
            raise ConfigError(
                "hydra/sweeper=seeds compares groups: sweep at least one value besides the seed (e.g. regularization=none,augment)"
            )
        groups = {seeds.group_name(combo): list(combo) for combo in itertools.product(*swept.values())}
        keys = [key.lstrip("+~") for key in swept]
        table = pd.DataFrame([dict(item.split("=", 1) for item in combo) for combo in groups.values()]).rename(
            columns=lambda c: c.lstrip("+~")
        )
        try:
            chosen = choose_baseline(table, keys, self.baseline)
        except ValueError as err:
            raise ConfigError(f"hydra.sweeper.baseline: {err}".replace("--baseline ", "")) from None
        baselines: dict[str, str | None] = {}
        for name, combo in groups.items():
            values = dict(item.split("=", 1) for item in combo)
            stripped = {key.lstrip("+~"): value for key, value in values.items()}
            if chosen is None or stripped[chosen.key] == chosen.value:
                baselines[name] = None
                continue
            target = [f"{key}={chosen.value if key.lstrip('+~') == chosen.key else value}" for key, value in values.items()]
            baselines[name] = seeds.group_name(target) if seeds.group_name(target) in groups else None
        comparisons = sum(base is not None for base in baselines.values())
        design = Design(k["min_seeds"], k["max_seeds"], float(k["alpha"]), float(k["delta"]), max(1, comparisons))
        sweep = seeds.SeedSweep(groups, baselines, design, k["seeds_per_round"], baseline=str(chosen) if chosen else None)
        return sweep, list(fixed.values())


def _check_same(recorded: Any, sweep: Any, sweep_dir: Path) -> None:
    """A relaunch continues the recorded sweep only with its groups and design; any other is refused, naming what differs."""
    from dataclasses import asdict

    from mnistlab.errors import RunDirError

    before = {"groups": sorted(recorded.groups), "seeds_per_round": recorded.seeds_per_round, **asdict(recorded.design)}
    now = {"groups": sorted(sweep.groups), "seeds_per_round": sweep.seeds_per_round, **asdict(sweep.design)}
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
    shown = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    return f"{shown} of {groups} group{'s' if groups > 1 else ''}"
