"""The command line in a subprocess: run files, help, errors and exit codes."""

import json

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import mnistlab
from conftest import CONF, figures_drawn, run_cli
from mnistlab.training.speed import cpu_has_native_bf16


def test_single_run_writes_all_run_files(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("model=mlp", "trainer.epochs=2", "trainer.limit_batches=10", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert figures_drawn(run_dir)  # in a process of their own, after the run returned
    for name in (
        "metrics.csv",
        "summary.json",
        "figures.npz",
        "checkpoint.pt",
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
    ):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["model"] == "mlp" and summary["params"] == 109_386
    assert summary["overrides"] == ["model=mlp", "trainer.epochs=2", "trainer.limit_batches=10"]
    assert {"torch", "hydra", "python"} <= set(summary["versions"])
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    assert "fc1  (784+1)*128 = 100,480" in proc.stdout + proc.stderr


def test_module_entry_and_help_from_another_directory(tmp_path):
    proc = run_cli("--help", module=True, cwd=tmp_path)
    assert proc.returncode == 0
    for line in (
        "model: lenet5, mlp",
        "optimizer: adam, adamw, sgd",
        "regularization: all, augment,",
        "scheduler:",
        "trainer: default",
        "data: digits, fashion_mnist, folder, mnist",
        "loss: cross_entropy",
    ):
        assert line in proc.stdout


def test_version_is_mnistlabs(tmp_path):
    proc = run_cli("--version", module=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith(f"mnistlab {mnistlab.__version__} (python ")
    assert "torch " in proc.stdout and "Hydra" not in proc.stdout


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["regularization.dropout=1.5"], "mnistlab: regularization.dropout must be < 1, got 1.5"),
        (
            ["data=folder", "data.root=/nowhere"],
            "mnistlab: /nowhere/train is missing: data=folder reads /nowhere/train/<class>/ and /nowhere/test/<class>/",
        ),
    ],
)
def test_a_refused_run_is_one_line_and_leaves_no_directory(tmp_path, overrides, message):
    run_dir = tmp_path / "bad"
    proc = run_cli(*overrides, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2 and proc.stderr.strip() == message
    assert not run_dir.exists()


def test_two_runs_in_the_same_second_get_distinct_directories(tmp_path):
    def resolved(key: str) -> str:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return OmegaConf.select(compose(config_name="config", return_hydra_config=True), key)

    try:
        runs, sweeps = [resolved("hydra.run.dir") for _ in range(2)], [resolved("hydra.sweep.dir") for _ in range(2)]
    finally:
        GlobalHydra.instance().clear()
    assert "outputs/runs/" in runs[0] and runs[0] != runs[1]
    assert "outputs/sweeps/" in sweeps[0] and sweeps[0] != sweeps[1]


@pytest.mark.e2e
def test_accelerator_options_are_accepted_on_cpu(tmp_path):
    proc = run_cli(
        "model=lenet5",
        "trainer.epochs=1",
        "trainer.limit_batches=100",
        "run.plots=false",
        "trainer.device=cpu",
        "trainer.amp=true",
        "trainer.compile=true",
        "trainer.channels_last=true",
        "trainer.cuda_graph=true",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert (
        "trainer.compile applies on CUDA only; ignored on cpu" in text and "trainer.cuda_graph applies on CUDA only; ignored on cpu" in text
    )
    assert ("trainer.amp (bf16 autocast) needs CUDA or a CPU with native bf16; ignored on cpu" in text) is not cpu_has_native_bf16()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final_test_acc"] > 90


def test_a_users_own_model_from_a_config_dir(tmp_path):
    """The README's recipe: a module on PYTHONPATH, a model YAML in --config-dir, regularization by interpolation."""
    (tmp_path / "mymodels.py").write_text(
        "from torch import nn\n\n\n"
        "class SmallCNN(nn.Module):\n"
        "    def __init__(self, width=8, dropout=0.0, batch_norm=False):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),\n"
        "                                 nn.Dropout(dropout), nn.Linear(width * 14 * 14, 10))\n\n"
        "    def forward(self, x):\n"
        "        return self.net(x)\n"
    )
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "smallcnn.yaml").write_text(
        "_target_: mymodels.SmallCNN\nwidth: 8\ndropout: ${regularization.dropout}\nbatch_norm: ${regularization.batch_norm}\n"
    )
    run_dir = tmp_path / "run"
    proc = run_cli(
        "--config-dir",
        str(tmp_path / "myconf"),
        "model=smallcnn",
        "regularization=dropout",
        "trainer.epochs=1",
        "trainer.limit_batches=20",
        "run.plots=false",
        f"hydra.run.dir={run_dir}",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "smallcnn" and summary["params"] == 8 * 10 + 8 * 14 * 14 * 10 + 10 and summary["status"] == "completed"
    assert "dropout: 0.2" in (run_dir / ".hydra" / "config.yaml").read_text()
