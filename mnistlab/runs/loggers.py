"""Where a run's metrics go besides its own files: the ``logger`` group (csv, tensorboard, mlflow).

Every run writes metrics.csv and summary.json whatever the logger. A logger adds a copy in the tool a
researcher already uses: it starts once a launch is accepted, gets each epoch's metrics row as the epoch
ends, and finishes with the summary, however the run stops. A sweep may also start and finish something
of its own (MLflow's parent run). A logger that fails while training warns once and never stops the run.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from mnistlab import extras

log = logging.getLogger("mnistlab")

SKIP = ("epoch",)  # a metrics row's columns that are not logged as scalars


def scalar_name(column: str) -> str:
    """A metrics row's column as a tool's scalar: ``test_acc`` -> ``acc/test``, ``ema_test_ece`` -> ``ece/ema_test``."""
    prefix, sep, metric = column.rpartition("_")
    return f"{metric}/{prefix}" if sep and column != "lr" else column


def results(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's numeric results (``final_*``, ``best_*``, ``seconds``), every metric included."""
    return {
        key: float(value)
        for key, value in summary.items()
        if (key.startswith(("final_", "best_")) or key == "seconds")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and not math.isnan(value)
    }


STATUS_TO_MLFLOW = {"completed": "FINISHED", "interrupted": "KILLED", "terminated": "KILLED"}  # else FAILED
ARTIFACTS = ("summary.json", "metrics.csv", "curves.png", "confusion.png", "mistakes.png", ".hydra/config.yaml")


def _needs(module: str, extra: str) -> Any:
    import importlib

    extras.require(extra, f"logger={extra}")
    return importlib.import_module(module)


def scalar(value: Any) -> str | float | int | bool:
    """A hyperparameter as a tool can store it: numbers and booleans as they are, anything else as text."""
    if isinstance(value, bool | int | float) and not (isinstance(value, float) and math.isnan(value)):
        return value
    return "null" if value is None else str(value)


class CsvLogger:
    """The default: metrics.csv, summary.json and the figures are the log. Also the base of the other loggers."""

    def start(self, run_dir: Path, params: dict[str, Any], first_epoch: int, sweep_dir: Path | None) -> None:
        """Called once the launch is accepted; ``first_epoch`` is 1, or the epoch a resumed run continues from."""

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One finished epoch's metrics.csv row."""

    def finish(self, summary: dict[str, Any]) -> None:
        """The run's final summary, whatever its status."""

    @classmethod
    def sweep_start(cls, options: dict[str, Any], sweep_dir: Path) -> None:
        """Before a sweep's first job (in the launching process)."""

    @classmethod
    def sweep_end(cls, options: dict[str, Any], sweep_dir: Path) -> None:
        """After the sweep's report is written."""


class TensorBoardLogger(CsvLogger):
    """Event files in ``<run dir>/<subdir>``: ``loss/<split>``, ``acc/<split>`` and ``lr`` per epoch, and the run's
    settings as hyperparameters with its final accuracies, so ``tensorboard --logdir <sweep dir>`` compares a sweep
    in the HParams view. A resumed run drops events after its checkpoint (``purge_step``)."""

    def __init__(self, subdir: str = "tensorboard"):
        self.subdir = subdir
        self.writer: Any = None
        self.params: dict[str, Any] = {}

    def start(self, run_dir: Path, params: dict[str, Any], first_epoch: int, sweep_dir: Path | None) -> None:
        _needs("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.params = {key: scalar(value) for key, value in params.items()}
        self.writer = SummaryWriter(str(run_dir / self.subdir), purge_step=first_epoch if first_epoch > 1 else None)

    def log_epoch(self, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        for column, value in row.items():
            if column not in SKIP and isinstance(value, int | float) and not math.isnan(value):
                self.writer.add_scalar(scalar_name(column), value, epoch)
        self.writer.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = {f"hparams/{k}": v for k, v in results(summary).items() if k.startswith("final_")}
        for summary_proto in hparams(self.params | {"status": summary.get("status", "")}, metrics):
            self.writer.file_writer.add_summary(summary_proto)  # in this run's own event file, not a subfolder
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, int(summary.get("epochs_run") or 0))
        self.writer.close()


class MlflowLogger(CsvLogger):
    """An MLflow run per job: its settings as params, each epoch's metrics, its files as artifacts at the end.

    The default store is a local SQLite file (``sqlite:///outputs/mlflow.db``), artifacts beside it; any tracking
    URI works. A single run goes into ``experiment`` (default ``mnistlab``); a sweep is one experiment, named after
    its directory unless ``experiment`` is set, and its jobs are runs nested under one parent run. A resumed job
    continues its own MLflow run."""

    def __init__(self, tracking_uri: str, experiment: str | None = None):
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.client: Any = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None

    @staticmethod
    def _client(tracking_uri: str) -> Any:
        mlflow = _needs("mlflow", "mlflow")
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)

    @staticmethod
    def _experiment_id(client: Any, name: str, tracking_uri: str) -> str:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if tracking_uri.startswith("sqlite:///"):  # artifacts beside the database, not in ./mlruns
            location = (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
        return client.create_experiment(name, artifact_location=location)

    @staticmethod
    def _sweep_file(sweep_dir: Path) -> Path:
        return sweep_dir / "mlflow.json"

    @classmethod
    def sweep_start(cls, options: dict[str, Any], sweep_dir: Path) -> None:
        record = cls._sweep_file(sweep_dir)
        if record.exists():  # a relaunched sweep keeps its experiment and parent run
            return
        sweep_dir.mkdir(parents=True, exist_ok=True)
        client = cls._client(options["tracking_uri"])
        experiment_id = cls._experiment_id(client, options.get("experiment") or sweep_dir.name, options["tracking_uri"])
        parent = client.create_run(experiment_id, run_name=f"sweep {sweep_dir.name}", tags={"mnistlab.sweep_dir": str(sweep_dir)})
        record.write_text(json.dumps({"experiment_id": experiment_id, "parent_run_id": parent.info.run_id}))

    @classmethod
    def sweep_end(cls, options: dict[str, Any], sweep_dir: Path) -> None:
        record = cls._sweep_file(sweep_dir)
        if not record.exists():
            return
        parent = json.loads(record.read_text())["parent_run_id"]
        client = cls._client(options["tracking_uri"])
        for name in ("report.md", "comparison.csv", "comparison.png", "summary.csv", "trials.csv", "study.png"):
            if (sweep_dir / name).is_file():
                client.log_artifact(parent, str(sweep_dir / name))
        client.set_terminated(parent, "FINISHED")

    def start(self, run_dir: Path, params: dict[str, Any], first_epoch: int, sweep_dir: Path | None) -> None:
        self.client, self.run_dir = self._client(self.tracking_uri), run_dir
        record = self._sweep_file(sweep_dir) if sweep_dir is not None else None
        if record is not None and record.exists():
            sweep = json.loads(record.read_text())
            experiment_id, tags = sweep["experiment_id"], {"mlflow.parentRunId": sweep["parent_run_id"]}
        else:
            experiment_id, tags = self._experiment_id(self.client, self.experiment or "mnistlab", self.tracking_uri), {}
        earlier = self.client.search_runs([experiment_id], filter_string=f"tags.`mnistlab.run_dir` = '{run_dir}'", max_results=1)
        if earlier and first_epoch > 1:
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        run = self.client.create_run(experiment_id, run_name=run_dir.name, tags=tags | {"mnistlab.run_dir": str(run_dir)})
        self.run_id = run.info.run_id
        mlflow = _needs("mlflow", "mlflow")
        items = [mlflow.entities.Param(key, str(scalar(value))[:6000]) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per call
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_epoch(self, row: dict[str, Any]) -> None:
        mlflow = _needs("mlflow", "mlflow")
        epoch = int(row["epoch"])
        metrics = [
            mlflow.entities.Metric(key, float(value), 0, epoch)
            for key, value in row.items()
            if key != "epoch" and isinstance(value, int | float) and not math.isnan(value)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, summary: dict[str, Any]) -> None:
        for key, value in results(summary).items():
            self.client.log_metric(self.run_id, key, value)
        for name in ARTIFACTS:
            path = self.run_dir / name
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path), artifact_path=str(Path(name).parent) if "/" in name else None)
        self.client.set_tag(self.run_id, "mnistlab.status", summary.get("status", ""))
        self.client.set_terminated(self.run_id, STATUS_TO_MLFLOW.get(summary.get("status", ""), "FAILED"))


class GuardedLogger:
    """A logger whose failures after its start warn once and never stop the run: the run's own files are the record,
    and losing a tracking server must not lose an epoch."""

    def __init__(self, logger: Any):
        self.logger, self.started, self.failed = logger, False, False

    def start(self, *args: Any) -> None:
        self.logger.start(*args)  # a logger that cannot start (not installed, bad URI) fails the launch, before training
        self.started = True

    def _guard(self, method: str, *args: Any) -> None:
        if not self.started or self.failed:
            return
        try:
            getattr(self.logger, method)(*args)
        except Exception as err:
            self.failed = True
            log.warning(
                "%s stopped logging (%s: %s); the run goes on, its own files are complete",
                type(self.logger).__name__,
                type(err).__name__,
                err,
            )

    def log_epoch(self, row: dict[str, Any]) -> None:
        self._guard("log_epoch", row)

    def finish(self, summary: dict[str, Any]) -> None:
        self._guard("finish", summary)
