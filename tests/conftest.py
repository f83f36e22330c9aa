"""Shared fixtures: composed configs, tiny synthetic data, the real MNIST, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # pytest -n: each worker (and what it launches) gets its share of the cores
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image  # noqa: E402

from mnistlab.config import register
from mnistlab.config.schema import TrainerSettings
from mnistlab.data import Dataset, Idx
from mnistlab.data.batches import DeviceData, Split, prepare
from mnistlab.data.idx import load_mnist
from mnistlab.models import MLP
from mnistlab.training.schedules import constant
from mnistlab.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
register()  # our typed groups and resolvers, as every entry point does before composing


def pytest_xdist_auto_num_workers(config) -> int | None:
    """``-n auto`` runs the SLURM tests one at a time: they share a one-node cluster and watch its queue."""
    return 1 if "slurm" in (config.option.markexpr or "") and "not slurm" not in config.option.markexpr else None


def compose_config(*overrides: str):
    """Compose the project's config with overrides, as the CLI would (without the hydra node)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def make_cfg():
    """:func:`compose_config`, with Hydra's global state cleared afterwards."""
    yield compose_config
    GlobalHydra.instance().clear()


def settings(**trainer) -> TrainerSettings:
    """The ``trainer`` group for a Trainer built by hand: its fields as keywords (progress bar off, an epoch one pass)."""
    return TrainerSettings(**{"progress": False, "min_steps_per_epoch": None, **trainer})


NOISE = Dataset(channels=1, num_classes=10, mean=[0.0], std=[1.0])  # what tiny_data's 'images' are: already standardized


@pytest.fixture
def tiny_data() -> DeviceData:
    """256 random 'images' with labels in 0..9 for logic tests (not MNIST)."""
    g = torch.Generator().manual_seed(0)
    return DeviceData(
        train=Split(torch.randn(256, 1, 28, 28, generator=g), torch.randint(0, 10, (256,), generator=g)),
        test=Split(torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)),
        dataset=NOISE,
    )


@pytest.fixture(scope="session")
def mnist():
    """The real, checksum-verified MNIST from the repository, as IDX arrays (N, 28, 28)."""
    return load_mnist(ROOT / "data", download=False)


@pytest.fixture(scope="session")
def mnist_on_cpu() -> DeviceData:
    """The real MNIST as a run holds it: normalized tensors (N, 1, 28, 28)."""
    dataset = Idx("mnist", str(ROOT / "data"), download=False)
    return prepare(dataset.load(), dataset, "cpu")


class ForkServer:
    """tests/forkserver.py, started once per test process: each launch is a forked process of it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "forkserver.py")], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def __call__(self, script: str, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out, err = f"{tmp}/out", f"{tmp}/err"
            self.proc.stdin.write(json.dumps([script, list(args), str(cwd), env, timeout, out, err]) + "\n")
            self.proc.stdin.flush()
            code = int(self.proc.stdout.readline())
            stdout, stderr = (Path(f).read_text(errors="replace") if Path(f).exists() else "" for f in (out, err))
        return subprocess.CompletedProcess([script, *args], code, stdout, stderr)


_server: ForkServer | None = None


def run_cli(
    *args: str,
    module: bool = False,
    script: str = "mnistlab",
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict | None = None,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """Run a console script (``mnistlab``, ``mnistlab-report``, ...) in a process of its own, capturing its output: a
    forked process of a server that imported mnistlab once (tests/forkserver.py), or with ``fresh`` (or ``module``:
    ``python -m mnistlab``) a new interpreter."""
    global _server
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if not (fresh or module):
        _server = _server or ForkServer()
        return _server(script, [str(a) for a in args], cwd or ROOT, full_env, timeout)
    exe = Path(sys.executable).parent
    command = [sys.executable, "-m", "mnistlab", *args] if module else [str(exe / script), *args]
    return subprocess.run(command, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


def figures_drawn(run_dir: Path, timeout: float = 120) -> bool:
    """Whether a run's three figures are there within ``timeout`` (a single run draws them in a process of their own)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((run_dir / name).is_file() for name in ("curves.png", "confusion.png", "mistakes.png")):
            return True
        time.sleep(0.1)
    return False


def new_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) and return it: a run directory for ``task.run``."""
    path.mkdir(parents=True)
    return path


def run_interrupted_then_resumed(
    make_cfg, overrides: list[str], run_dir: Path, monkeypatch, resume: bool = True, resume_with: tuple[str, ...] = ()
) -> tuple[dict, dict | None]:
    """Train with a Ctrl-C at the start of epoch 2, then (``resume``) resume in the same dir; returns both summaries."""
    from mnistlab.runs import task
    from mnistlab.training.trainer import Trainer

    original = Trainer.train_epoch

    def interrupt_at_epoch_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    new_dir(run_dir)
    monkeypatch.setattr(Trainer, "train_epoch", interrupt_at_epoch_2)
    stopped = task.run(make_cfg(*overrides), run_dir)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    if not resume:
        return stopped, None
    return stopped, task.run(make_cfg(*overrides, *resume_with, "run.resume=true"), run_dir)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def make_folder(root: Path, size: int = 12) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 40), ("test", 10)):
        for label, shade in (("dark", 40), ("light", 200)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(shade + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


COUNTING = """\
    import torch
    from mnistlab.models import MLP
    from mnistlab.training import Callback
    from mnistlab.training.callbacks.base import Weights

    BUILT = {"model": 0, "callback": 0}


    class CountedMLP(MLP):
        def __init__(self, **kwargs):
            BUILT["model"] += 1
            super().__init__(**kwargs)


    class FirstEpoch(Callback):
        \"\"\"Finishes with the weights of epoch 1, through the one seam that replaces them.\"\"\"

        def __init__(self):
            BUILT["callback"] += 1
            self.first = None

        def on_epoch_end(self, trainer, row):
            if trainer.epoch == 1:
                self.first = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

        def final_weights(self, trainer):
            return Weights(self.first, 1)
    """


def frozen_trainer(data, callback, epochs=6):
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # learns nothing
    return Trainer(
        model, optimizer, constant(optimizer, 1, 1), data, settings(epochs=epochs, batch_size=64), torch.nn.CrossEntropyLoss(),
        callbacks={"chance_level": callback},
    )  # fmt: skip
