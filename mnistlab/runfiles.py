"""The files of a run directory: summary.json, metrics.csv, checkpoint.pt and Hydra's overrides.

Training writes them and the report reads them, both through this module. Every write is atomic
(a temporary file replaced in one step) or an appended, flushed row, so a killed process leaves each
file either as it was or complete.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import torch
import yaml

from mnistlab.errors import CheckpointError

SUMMARY_FILE, METRICS_FILE, CHECKPOINT_FILE = "summary.json", "metrics.csv", "checkpoint.pt"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"


def _replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    tmp = run_dir / f"{SUMMARY_FILE}.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _replace(tmp, run_dir / SUMMARY_FILE)


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary, or ``{}`` if it has none (yet) or it cannot be parsed."""
    try:
        return json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one row (header first if the file is new), flushed to disk."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


def truncate_metrics(path: Path, last_epoch: int) -> list[dict[str, float]]:
    """Keep only rows up to ``last_epoch`` (rows of an epoch whose checkpoint never landed go)."""
    rows = [r for r in read_metrics(path) if r["epoch"] <= last_epoch]
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    for row in rows:
        append_metrics(tmp, {k: int(v) if k == "epoch" else v for k, v in row.items()})
    if rows:
        os.replace(tmp, path)
    else:
        path.unlink(missing_ok=True)
    return rows


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a killed process leaves the previous checkpoint intact."""
    tmp = path.with_name(f"{path.name}.tmp")
    torch.save(state, tmp)
    _replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, loaded with ``weights_only=True`` (no pickled code runs)."""
    if not path.exists():
        raise CheckpointError(
            f"trainer.resume=true but there is no checkpoint at {path}; start a new run without trainer.resume, or point hydra.run.dir at the run to resume"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} cannot be loaded ({type(err).__name__}: {err}); it is corrupt or not a mnistlab checkpoint") from err


def read_overrides(run_dir: Path) -> dict[str, str]:
    """The run's command-line overrides as ``{key: value}``, Hydra's own (``hydra.*``) left out."""
    items = yaml.safe_load((run_dir / OVERRIDES_FILE).read_text()) or []
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

    out = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "hydra-core", "mnistlab"):
        try:
            out[package.removesuffix("-core")] = version(package)
        except PackageNotFoundError:
            out[package.removesuffix("-core")] = "not installed"
    return out


def result_fields(history: list[dict[str, float]], final_loss: float, final_acc: float, best_epoch: int | None) -> dict[str, Any]:
    """The summary's results: final and best losses and accuracies (validation: the selected epoch's, if any)."""
    if not history:
        return {"epochs_run": 0}
    last = history[-1]
    out: dict[str, Any] = {
        "epochs_run": int(last["epoch"]),
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
        "final_test_loss": final_loss,
        "final_test_acc": final_acc,
        "best_test_acc": max(r["test_acc"] for r in history),
        "best_test_loss": min(r["test_loss"] for r in history),
    }
    if "val_acc" in last and not math.isnan(last["val_acc"]):
        chosen = next((r for r in history if r["epoch"] == best_epoch), last)
        out |= {
            "final_val_loss": chosen["val_loss"],
            "final_val_acc": chosen["val_acc"],
            "best_val_acc": max(r["val_acc"] for r in history),
        }
    return out
