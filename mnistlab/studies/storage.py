"""Where a study lives and how it samples and prunes: its storage (a journal file or a database), sampler and pruner."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistlab.errors import UserError

if TYPE_CHECKING:
    import optuna

JOURNAL_FILE = "optuna.journal"  # the study's storage in its sweep directory unless hydra.sweeper.storage says otherwise
SAMPLERS = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "gp": "optuna.samplers.GPSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
}
PRUNERS = {
    "median": "optuna.pruners.MedianPruner",
    "hyperband": "optuna.pruners.HyperbandPruner",
    "none": "optuna.pruners.NopPruner",
}


def storage_address(storage: str | None, sweep_dir: Path) -> str:
    """A database URL as it is, else a journal file (the default: the sweep directory's ``optuna.journal``)."""
    if storage is None or str(storage).strip() == "":
        return str((sweep_dir / JOURNAL_FILE).resolve())
    text = str(storage)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def open_storage(address: str) -> optuna.storages.BaseStorage:
    """A URL (``sqlite:///study.db``, ``mysql+pymysql://...``) opens a database; a path, a journal file, which is
    safe on a shared filesystem where SQLite is not."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in address:
        return optuna.storages.RDBStorage(address)
    Path(address).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(address))


def component(spec: Any, names: Mapping[str, str], key: str, **extra: Any) -> Any:
    """A sampler or pruner from a name (``tpe``, ``median``) or a ``_target_`` node; ``extra`` fills its arguments."""
    from hydra.utils import get_class

    if isinstance(spec, str):
        if spec not in names:
            raise UserError(f"{key}: {spec!r} is not one of {', '.join(names)} (or a node with _target_)")
        spec = {"_target_": names[spec]}
    spec = dict(spec or {})
    target = spec.pop("_target_", None)
    if target is None:
        raise UserError(f"{key}: give a name ({', '.join(names)}) or a node with _target_")
    spec.pop("_recursive_", None)
    if target not in names and "." not in str(target):
        raise UserError(f"{key}: {target!r} is not one of {', '.join(names)} (or a class path)")
    target = names.get(target, target)
    try:
        return get_class(target)(**{**spec, **extra})
    except (ImportError, TypeError, ValueError) as err:
        raise UserError(f"{key} ({target}): {err}") from None


def make_sampler(spec: Any, stored: int, worker: int) -> optuna.samplers.BaseSampler:
    """The sampler, its seed drawn from (seed, trials stored, worker index): a continued study or a second worker
    never repeats the draws another sampler already made. The first launch's single worker keeps the seed as set."""
    import numpy as np

    spec = {"_target_": spec} if isinstance(spec, str) else dict(spec or {"_target_": "tpe"})
    seed = spec.pop("seed", None)
    if seed is not None and (stored, worker) != (0, 0):
        seed = int(np.random.SeedSequence([int(seed), stored, worker]).generate_state(1)[0])
    extra = {"seed": int(seed)} if seed is not None else {}
    return component(spec, SAMPLERS, "hydra.sweeper.sampler", **extra)
