"""The files of a run directory: summary.json, metrics.csv, checkpoint.pt and Hydra's overrides.

A run writes them and the report, the commands and a resume read them, all through this module. Every write replaces its
file in one step (a temporary file, flushed, then renamed), so a killed process leaves each file either
as it was or complete, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from mnistlab.errors import CheckpointError, OutputError

SUMMARY_FILE, METRICS_FILE, CHECKPOINT_FILE = "summary.json", "metrics.csv", "checkpoint.pt"
FIGURE_DATA = "figures.npz"  # what a run's figures are drawn from: its test predictions and its misclassified images
FIGURES = ("curves.png", "confusion.png", "mistakes.png")
RECORD_DIR = Path(".hydra")  # the run's config, Hydra's config and the overrides, written once the launch is accepted
CONFIG_FILE, HYDRA_FILE, OVERRIDES_FILE = RECORD_DIR / "config.yaml", RECORD_DIR / "hydra.yaml", RECORD_DIR / "overrides.yaml"
RECORDS = (SUMMARY_FILE, METRICS_FILE, CHECKPOINT_FILE, CONFIG_FILE, OVERRIDES_FILE)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: a crash leaves the old file, a failed write leaves no temporary file.

    Raises OutputError naming the path and the cause (a full disk, a read-only or forbidden folder).
    """
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # a full disk, or Ctrl-C/SIGTERM mid-write: no temporary file stays
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
        raise


def remove_temporary(run_dir: Path) -> None:
    """Delete the temporary files a process killed mid-write left behind (the files they were for are intact)."""
    for tmp in [*run_dir.glob("*.tmp"), *(run_dir / RECORD_DIR).glob("*.tmp")]:
        tmp.unlink(missing_ok=True)


def discard(run_dir: Path) -> None:
    """Remove what a refused launch wrote into a directory that held no run (its record, summary and lock, Hydra's
    log), and the directory itself when nothing else is in it."""
    for name in (SUMMARY_FILE, "run.lock"):
        (run_dir / name).unlink(missing_ok=True)
    for path in (run_dir / RECORD_DIR).glob("*"):
        path.unlink()
    for path in [run_dir / RECORD_DIR, *run_dir.glob("*.log")]:
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() else path.unlink()
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def has_records(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds a run (any of its record files)."""
    return any((run_dir / name).exists() for name in RECORDS)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    write_atomic(run_dir / SUMMARY_FILE, (json.dumps(summary, indent=2, default=str) + "\n").encode())


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary, ``{}`` if it has none; raises ValueError saying why one cannot be read."""
    path = run_dir / SUMMARY_FILE
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{SUMMARY_FILE} cannot be read ({type(err).__name__}: {err})") from err
    if not isinstance(summary, dict):
        raise ValueError(f"{SUMMARY_FILE} holds a {type(summary).__name__}, not an object")
    return summary


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write every epoch's row so far (the file is small), replacing the file in one step."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, out.getvalue().encode())


def write_figure_data(run_dir: Path, title: str, labels: Any, preds: Any, pixels: Any, classes: list[str], shown: int = 64) -> None:
    """figures.npz: the test labels and predictions (the confusion matrix), and the first ``shown`` misclassified test
    images in [0, 1] (``pixels``: a callable giving them for indices), so the figures can be drawn in another process."""
    import numpy as np

    wrong = np.flatnonzero(labels != preds)[:shown]
    out = io.BytesIO()
    np.savez_compressed(
        out, title=title, labels=labels, preds=preds, wrong=wrong, wrong_pixels=pixels(wrong), classes=np.array(classes, dtype=str)
    )
    write_atomic(run_dir / FIGURE_DATA, out.getvalue())


def figures_missing(run_dir: Path) -> bool:
    """Whether a run has the data of its figures but not all of them."""
    return (run_dir / FIGURE_DATA).exists() and not all((run_dir / name).exists() for name in FIGURES)


def read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialize in memory, then write atomically: a crash or a full disk leaves the previous checkpoint intact."""
    import torch  # here, not at the top: the command line composes configs without loading torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, loaded with ``weights_only=True`` (no pickled code runs)."""
    if not path.exists():
        raise CheckpointError(f"there is no checkpoint at {path}: the run trained no epoch, or had run.checkpoint=false")
    try:
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} cannot be loaded ({type(err).__name__}: {err}); it is corrupt or not a mnistlab checkpoint") from err


def write_record(run_dir: Path, config: DictConfig, overrides: list[str], hydra_config: DictConfig | None = None) -> None:
    """The run's ``.hydra/`` files, as Hydra writes them: config.yaml, overrides.yaml and (under Hydra) hydra.yaml."""
    try:
        (run_dir / RECORD_DIR).mkdir(exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot write {run_dir / RECORD_DIR}: {err.strerror or err}") from err
    write_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(config).encode())
    if hydra_config is not None:
        write_atomic(run_dir / HYDRA_FILE, OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_config})).encode())
    write_atomic(run_dir / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))).encode())


def read_config(run_dir: Path) -> DictConfig | None:
    """The config recorded when the run was launched, or None if it has none."""
    path = run_dir / CONFIG_FILE
    return OmegaConf.load(path) if path.exists() else None


def read_overrides(run_dir: Path) -> dict[str, str]:
    """The run's command-line overrides as ``{key: value}``, Hydra's own (``hydra.*``) left out.

    Raises ValueError saying why, when the file is not a YAML list (or uses tags safe loading refuses).
    """
    try:
        items = yaml.safe_load((run_dir / OVERRIDES_FILE).read_bytes().decode("utf-8")) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{OVERRIDES_FILE} cannot be read ({type(err).__name__}: {str(err).splitlines()[0]})") from err
    if not isinstance(items, list):
        raise ValueError(f"{OVERRIDES_FILE} holds a {type(items).__name__}, not a list of overrides")
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra."):
            out[key] = value
    return out


def versions() -> dict[str, str]:
    """The library versions that produced a run, for its summary (read from package metadata, nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    import mnistlab

    out = {"python": platform.python_version(), "mnistlab": mnistlab.__version__}
    for package in ("torch", "torchvision", "hydra-core", "numpy"):
        try:
            out[package.removesuffix("-core")] = version(package)
        except PackageNotFoundError:
            out[package.removesuffix("-core")] = "not installed"
    return out
