"""``mnistlab-reproduce RUN``: re-run a run from its own record and say whether its numbers come out again.

The run is trained again from its recorded config (your classes included) into a new directory next to it, for
its full length or its first ``--epochs K``, with the thread count it recorded. Every column of the new
metrics.csv but time, and the summary's results, are compared with the recorded ones:

- **identical**: bit for bit (exit 0);
- **within tolerance**: where the machine, the threads or the library versions differ (named), every value within
  the tolerance stated (exit 0);
- **different**: the first epoch and column that differ, and what differs in the provenance (exit 1).

A run that cannot be reproduced says why in one line before anything trains (exit 2): a data file changed or
missing since, a class of yours that cannot be imported, a directory that is not a run. On a sweep,
``--jobs N`` re-runs N of its completed jobs, chosen by ``--seed``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistlab import paths
from mnistlab.commands.mistakes import COMPOSING, one_line
from mnistlab.config.hydra_setup import register
from mnistlab.config.schema import MOVED
from mnistlab.config.targets import build, import_target, targets
from mnistlab.errors import EXIT_BAD_INPUT, UserError
from mnistlab.runs import files, provenance
from mnistlab.runs.trained import current
from mnistlab.runs.verdict import TIMES, Verdict, compare, judge


class NotReproducible(UserError):
    """What makes a run impossible to reproduce, said before anything trains."""


def read_run(run_dir: Path) -> tuple[DictConfig, dict[str, Any], list[dict[str, float]]]:
    """A run's recorded config, summary and metrics rows; NotReproducible when it is not a run that trained."""
    cfg = files.read_config(run_dir)
    try:
        summary = files.read_summary(run_dir)
    except ValueError as err:
        raise NotReproducible(f"{run_dir}: {err}") from None
    rows = files.read_metrics(run_dir / files.METRICS_FILE)
    if cfg is None or not summary or not rows:
        raise NotReproducible(
            f"{run_dir} is not a run that trained: it needs {files.CONFIG_FILE}, {files.SUMMARY_FILE} and {files.METRICS_FILE}"
        )
    return cfg, summary, rows


def upgrade(run_dir: Path, cfg: DictConfig, summary: dict[str, Any]) -> tuple[DictConfig, list[str]]:
    """A run of mnistlab 0.1, whose config this version cannot read (no ``run`` group), composed again from its
    overrides (moved keys renamed) on this version's config; notes naming it and every value that came out otherwise."""
    if "run" in cfg:
        return cfg, []
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    try:
        overrides = [f"{MOVED.get(key, key)}={value}" for key, value in files.read_overrides(run_dir).items()]
    except (OSError, ValueError) as err:
        raise NotReproducible(f"{run_dir} was made by mnistlab 0.1 and its overrides cannot be read: {err}") from None
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(paths.config_dir()), version_base="1.3"):
            new = compose(config_name="config", overrides=overrides)
    except COMPOSING as err:
        raise NotReproducible(f"{run_dir} was made by mnistlab 0.1; its overrides do not compose here: {one_line(err)}") from None
    finally:
        GlobalHydra.instance().clear()
    version = summary.get("versions", {}).get("mnistlab", "0.1")
    notes = [
        f"the run was made by mnistlab {version}, whose config this version cannot read: composed again from its overrides ({' '.join(overrides) or 'none'})"
    ]
    then, now = _leaves(cfg), _leaves(new)
    settled = lambda value: value is not None and not (isinstance(value, str) and "${" in value)  # noqa: E731  (filled in at run time)
    moved = [
        f"{key} {then[key]!r} then, {now[key]!r} now"
        for key in sorted(then.keys() & now.keys())
        if settled(now[key]) and then[key] != now[key]
    ]
    if moved:
        notes.append("values that came out otherwise: " + "; ".join(moved))
    return new, notes


def _leaves(cfg: DictConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return flat


def check_classes(cfg: DictConfig, summary: dict[str, Any]) -> list[str]:
    """Every class the run named, importable here (your modules looked for where the run found them); notes on your
    modules that moved or changed since."""
    user = summary.get("provenance", {}).get("user_code", {})
    for record in user.values():
        folder = str(Path(record["file"]).parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
    for key, node in targets(cfg).items():
        try:
            import_target(current(node), key)
        except UserError as err:
            raise NotReproducible(str(err)) from None
    notes = []
    for module, record in user.items():
        path = Path(record["file"])
        if not path.is_file():
            notes.append(f"your module {module} is no longer at {path}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != record["sha256"]:
            notes.append(f"your module {module} ({path}) changed since the run")
    return notes


def check_data(run_dir: Path, cfg: DictConfig, summary: dict[str, Any]) -> None:
    """Every data file the run recorded, present with the same SHA-256 (NotReproducible naming the first that is not)."""
    recorded = provenance.recorded_sources(run_dir, summary.get("provenance", {}))
    if not recorded:
        return
    dataset = build(current(cfg.data), "data")
    if hasattr(dataset, "download"):
        dataset.download = False
    try:
        now = dataset.sources()
    except (OSError, UserError) as err:
        raise NotReproducible(f"the run's data cannot be found or read: {err}") from None
    tail = lambda path: Path(path).parts[-3:]  # noqa: E731  (a file found elsewhere: the same last folders and name)
    by_tail = {tail(path): sha for path, sha in now.items()}
    hashes = set(now.values())
    for path, sha in recorded.items():
        if sha in hashes:
            continue
        found = now.get(path) or by_tail.get(tail(path))
        if found is None:
            raise NotReproducible(f"the data file {path} the run read is missing: it cannot be reproduced without it")
        raise NotReproducible(f"the data file {path} changed since the run (SHA-256 {sha[:12]}... then, {found[:12]}... now)")


def first_lines(cfg: DictConfig, summary: dict[str, Any]) -> list[str]:
    """What is known up front about the code the run came from."""
    code = summary.get("provenance", {}).get("code")
    if not code:
        return ["the run recorded no provenance (mnistlab before 0.2): its code, data and machine cannot be compared"]
    if not code.get("commit"):
        return [f"the run recorded no commit (mnistlab {code.get('mnistlab')} outside a git checkout): the code is compared by version"]
    return (
        [f"the run's tree was modified from commit {code['commit'][:12]} (diff {code['diff_sha256'][:12]}...)"] if code.get("dirty") else []
    )


def rerun(cfg: DictConfig, summary: dict[str, Any], out: Path, epochs: int | None) -> dict[str, Any]:
    """Train the recorded config again into ``out``: the recorded thread count, stopped after ``epochs`` if given."""
    from mnistlab.runs.task import run

    cfg = cfg.copy()
    OmegaConf.set_readonly(cfg, False)
    with open_dict(cfg):
        cfg.run.resume, cfg.run.plots = False, False  # the numbers are what is compared
        threads = summary.get("provenance", {}).get("machine", {}).get("threads") or summary.get("threads")
        if threads:
            cfg.trainer.threads = int(threads)
        if epochs is not None:
            cfg.callback["reproduce_stop"] = {"_target_": "mnistlab.training.callbacks.StopAfter", "epochs": epochs}
    try:
        out.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise NotReproducible(f"{out} exists: reproduce into a new directory (--out)") from None
    except OSError as err:
        raise NotReproducible(f"cannot create {out}: {err.strerror or err}") from None
    return run(cfg, out)


def reproduce(run_dir: Path, out: Path | None = None, epochs: int | None = None) -> Verdict:
    """Re-run ``run_dir`` into ``out`` (default: next to it) and judge whether its numbers come out again."""
    cfg, summary, recorded = read_run(run_dir)
    if epochs is not None and epochs > len(recorded):
        raise NotReproducible(f"--epochs {epochs}: the run recorded {len(recorded)} epochs")
    cfg, upgraded = upgrade(run_dir, cfg, summary)
    notes = upgraded + check_classes(cfg, summary) + first_lines(cfg, summary)
    check_data(run_dir, cfg, summary)
    for note in notes:
        print(f"mnistlab-reproduce: {note}")
    out = out or _next_to(run_dir)
    print(
        f"mnistlab-reproduce: training {run_dir} again into {out}"
        + (f" (its first {epochs} epochs)" if epochs and epochs > 1 else " (its first epoch)" if epochs else ""),
        flush=True,
    )
    again = rerun(cfg, summary, out, epochs)
    new = files.read_metrics(out / files.METRICS_FILE)
    exact, loose = compare(recorded, new, summary, again, full=epochs is None)
    columns = len([c for c in (recorded[0] if recorded else {}) if c not in TIMES])
    return judge(exact, loose, provenance.differences(summary, again), len(new), columns)


def _next_to(run_dir: Path) -> Path:
    for n in range(1, 1000):
        candidate = run_dir.with_name(f"{run_dir.name}.reproduced" + (f"-{n}" if n > 1 else ""))
        if not candidate.exists():
            return candidate
    raise NotReproducible(f"too many reproductions beside {run_dir}")


def sweep_jobs(sweep_dir: Path, count: int, seed: int) -> list[Path]:
    """``count`` of a sweep's completed jobs, chosen by ``seed`` (the same choice every time)."""
    jobs = sorted(p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml"))
    done = [job for job in jobs if _completed(job)]
    if not done:
        raise NotReproducible(f"{sweep_dir} holds no completed run to reproduce")
    return sorted(random.Random(seed).sample(done, min(count, len(done))))


def _completed(job: Path) -> bool:
    try:
        return files.read_summary(job).get("status") == "completed"
    except ValueError:
        return False


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mnistlab-reproduce", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("path", type=Path, help="a run directory, or a sweep directory (with --jobs)")
    parser.add_argument("--epochs", type=int, help="reproduce only the first K epochs (the schedule stays the run's)")
    parser.add_argument("--out", type=Path, help="where the new run goes (default: <run>.reproduced beside it)")
    parser.add_argument("--jobs", type=int, default=1, help="on a sweep: how many of its completed jobs to re-run (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="on a sweep: which jobs (the same seed, the same jobs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    code = 0
    try:
        if (args.path / files.CONFIG_FILE).is_file():
            runs = [(args.path, args.out)]
        elif args.path.is_dir():
            chosen = sweep_jobs(args.path, args.jobs, args.seed)
            runs = [(job, (args.out / job.name) if args.out else None) for job in chosen]
        else:
            raise NotReproducible(f"{args.path} is not a run or a sweep directory")
        for run_dir, out in runs:
            verdict = reproduce(run_dir, out, args.epochs)
            for line in verdict.lines:
                print(f"{run_dir}: {line}" if len(runs) > 1 else line)
            code = max(code, verdict.exit_code)
    except UserError as err:
        print(f"mnistlab-reproduce: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code)
