"""A finished fit as summary.json records it: final and best values of every metric and column, and the objective."""

from __future__ import annotations

import math
from typing import Any

from mnistlab.training.evaluation import evaluate
from mnistlab.training.metrics import declarations
from mnistlab.training.trainer import ROW, FitResult, Trainer


def result_fields(
    history: list[dict[str, float]], final: dict[str, float], metrics: dict[str, dict[str, Any]], selected_epoch: int | None
) -> dict[str, Any]:
    """The summary's results from the metrics rows: for each metric (``metrics``, as :func:`declarations` gives them)
    its ``final`` and best test value, the selected epoch's validation values, the last training loss and accuracy,
    and the last value of every column a callback added (``final_<column>``)."""
    if not history:
        return {"epochs_run": 0}
    last = history[-1]
    out: dict[str, Any] = {"epochs_run": int(last["epoch"]), "final_train_loss": last["train_loss"], "final_train_acc": last["train_acc"]}
    for name, declared in metrics.items():
        best = max if declared["higher_is_better"] else min
        out |= {f"final_test_{name}": final.get(name, math.nan), f"best_test_{name}": best(r[f"test_{name}"] for r in history)}
    if "val_acc" in last and not math.isnan(last["val_acc"]):
        chosen = next((r for r in history if r["epoch"] == selected_epoch), last)
        out |= {f"final_val_{name}": chosen[f"val_{name}"] for name in metrics}
        out["best_val_acc"] = max(r["val_acc"] for r in history)
    standard = {f"{split}_{name}" for split in ("train", "test", "val") for name in metrics}
    out |= {f"final_{key}": value for key, value in last.items() if key not in standard and key not in ROW}
    return out


def record_result(trainer: Trainer, result: FitResult, title: str, plots: bool) -> dict[str, Any]:
    """The summary fields of a finished fit; a completed run's kept weights are evaluated once more and, with
    ``plots``, drawn under ``title`` into the run directory."""
    preds, final = None, {}
    if result.status == "completed":  # the kept weights (the best val epoch with keep_best)
        test, s = trainer.data.test, trainer.settings
        evaluation = evaluate(trainer.model, test.images, test.labels, trainer.metrics, s.eval_batch_size, s.channels_last)
        final, preds = evaluation.values, evaluation.preds
    elif result.history:
        final = {m.name: result.history[-1][f"test_{m.name}"] for m in trainer.metrics}
    fields = {
        "status": result.status,
        **result_fields(result.history, final, declarations(trainer.metrics), result.fields.get("selected_epoch")),
        "seconds": result.seconds,
        "warmup_seconds": result.warmup_seconds,
        **result.fields,
    }
    if plots and preds is not None and trainer.run_dir is not None:
        from mnistlab.runs.figures import run_figures  # matplotlib and pandas load only when figures are drawn

        test, dataset = trainer.data.test, trainer.data.dataset
        run_figures(
            trainer.run_dir,
            f"{title}: test accuracy {final['acc']:.2f}%",
            result.history,
            dataset.pixels(test.images),
            test.labels.cpu().numpy(),
            preds.numpy(),
            list(dataset.classes or []),
        )
    return fields


def objective(summary: dict[str, Any]) -> float:
    """What sweepers maximise: final validation accuracy if there is a validation split, else test accuracy."""
    value = summary.get("final_val_acc", summary.get("final_test_acc"))
    return float(value) if value is not None and summary.get("status") == "completed" else math.nan
