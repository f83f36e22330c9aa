"""A finished fit as summary.json records it: the final values of every metric on every split (of the weights the run
finishes with), the best per epoch, the callbacks' fields, and the objective."""

from __future__ import annotations

import math
from typing import Any

import torch

from mnistlab.runs import files
from mnistlab.training.evaluation import Evaluation
from mnistlab.training.metrics import declarations
from mnistlab.training.rows import ROW, FitResult
from mnistlab.training.trainer import Trainer


def result_fields(
    history: list[dict[str, float]], final: dict[str, dict[str, float]], metrics: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The summary's results: for each metric (``metrics``, as :func:`declarations` gives them) its ``final`` value on
    each split (``{"test": {...}, "val": {...}}``) and its best test value over the epochs, the last training loss and
    accuracy, and the last value of every column a callback added (``final_<column>``)."""
    if not history:
        return {"epochs_run": 0}
    last = history[-1]
    out: dict[str, Any] = {"epochs_run": int(last["epoch"]), "final_train_loss": last["train_loss"], "final_train_acc": last["train_acc"]}
    for name, declared in metrics.items():
        best = max if declared["higher_is_better"] is not False else min
        out[f"best_test_{name}"] = best(r[f"test_{name}"] for r in history)
        for split, values in final.items():
            out[f"final_{split}_{name}"] = values.get(name, math.nan)
    if "val_acc" in last:
        out["best_val_acc"] = max(r["val_acc"] for r in history)
    standard = {f"{split}_{name}" for split in ("train", "test", "val") for name in metrics}
    out |= {f"final_{key}": value for key, value in last.items() if key not in standard and key not in ROW}
    return out


def final_evaluations(trainer: Trainer, result: FitResult) -> dict[str, Evaluation] | None:
    """The evaluation of each split of the weights a completed run finishes with: the last epoch's, unless a callback
    gave other weights after it (or no epoch ran in this process); None for a run that did not complete."""
    if result.status != "completed" or not result.history:
        return None
    if trainer.evaluations:
        return trainer.evaluations
    splits = {"test": trainer.data.test} | ({"val": trainer.data.val} if trainer.data.val is not None else {})
    return {split: trainer.evaluation(trainer.model, data) for split, data in splits.items()}


def record_result(trainer: Trainer, result: FitResult, title: str, plots: bool) -> dict[str, Any]:
    """The summary fields of a finished fit; with ``plots``, what a completed run's figures are drawn from (titled
    ``title``) in its directory (:mod:`mnistlab.runs.figures` draws them)."""
    evaluations = final_evaluations(trainer, result)
    if evaluations is not None:
        final = {split: evaluation.values for split, evaluation in evaluations.items()}
    elif result.history:  # stopped, diverged, collapsed: the last epoch's values
        last = result.history[-1]
        splits = ("test", "val") if "val_acc" in last else ("test",)
        final = {split: {m.name: last[f"{split}_{m.name}"] for m in trainer.metrics} for split in splits}
    else:
        final = {}
    fields = {
        **result.fields,  # a callback's own fields first: the run's own below are never overwritten
        "status": result.status,
        **result_fields(result.history, final, declarations(trainer.metrics)),
        "seconds": result.seconds,
        "warmup_seconds": result.warmup_seconds,
        **({"weights": result.weights} if result.weights else {}),
        **({"stopped_by": result.stop["by"], "stop_reason": result.stop["reason"]} if result.stop else {}),
    }
    if plots and evaluations is not None and trainer.run_dir is not None:
        test, dataset = trainer.data.test, trainer.data.dataset
        files.write_figure_data(
            trainer.run_dir,
            f"{title}: test accuracy {final['test']['acc']:.2f}%",
            test.labels.cpu().numpy(),
            evaluations["test"].preds.numpy(),
            lambda index: dataset.pixels(test.images[torch.as_tensor(index, dtype=torch.long)]),
            list(dataset.classes or []),
        )
    return fields


def objective(summary: dict[str, Any]) -> float:
    """What sweepers maximise: the summary's objective (final validation accuracy with a validation split, else test)."""
    value = summary.get(summary.get("objective") or "final_test_acc")
    return float(value) if value is not None and summary.get("status") == "completed" else math.nan
