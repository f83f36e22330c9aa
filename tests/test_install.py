"""The user's path: a fresh venv installed exactly as the README's first command installs (no extras), every command
run from a directory outside the checkout; then the built wheel; then each optional extra alone on top of the base.

Slow (a venv with torch takes minutes): ``pytest -m install``, run by ``.ci/run``. Set ``MNISTLAB_USER_VENV`` to a
venv made with ``pip install -e .`` to reuse it; else one is made here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import mnistlab
from conftest import ROOT
from test_package import build_wheel, overlay_venv, pip_install

pytestmark = pytest.mark.install

REPORT_FILES = ("summary.csv", "comparison.csv", "epochs.csv", "curves.png", "comparison.png", "report.md")
QUICK = ("trainer.epochs=1", "trainer.limit_batches=5")
NOISE = re.compile(r"warning|traceback|error importing|deprecat", re.IGNORECASE)  # what a clean command never prints


def run(bin_dir: Path, command: str, *args: str, cwd: Path, expect: int = 0, timeout: float = 900) -> str:
    """Run an installed console script from ``cwd`` with a clean environment; returns stdout and stderr together,
    after checking the exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNISTLAB_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env |= {"HOME": str(cwd / "home"), "XDG_CACHE_HOME": str(cwd / "cache"), "MPLCONFIGDIR": str(cwd / "mpl")}
    proc = subprocess.run([str(bin_dir / command), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect, f"{command} {' '.join(args)} exited {proc.returncode}, expected {expect}:\n{out[-4000:]}"
    return out


def clean(out: str) -> str:
    """``out``, failing if it has a warning or a traceback in it."""
    noise = [line for line in out.splitlines() if NOISE.search(line)]
    assert not noise, "\n".join(noise[:20])
    return out


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory) -> Path:
    """bin/ of a venv made as the README says: ``python3 -m venv .venv && .venv/bin/pip install -e .``."""
    given = os.environ.get("MNISTLAB_USER_VENV")
    if given:
        return Path(given) / "bin"
    venv = tmp_path_factory.mktemp("user") / ".venv"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", str(ROOT)], check=True, timeout=1800)
    return venv / "bin"


@pytest.fixture(scope="session")
def quickstart(user_venv, tmp_path_factory) -> tuple[Path, str]:
    """The README's main job, shortened: ``mnistlab -m experiment=compare`` from a directory of its own."""
    work = tmp_path_factory.mktemp("work")
    out = run(user_venv, "mnistlab", "-m", "experiment=compare", *QUICK, cwd=work)
    (sweep,) = (work / "outputs" / "sweeps").iterdir()
    return sweep, out


def job_dir(sweep: Path, settings: str) -> Path:
    """The job of ``sweep`` whose directory name holds ``settings`` (``model=mlp,seed=0``)."""
    (found,) = [p for p in sweep.iterdir() if p.is_dir() and settings in p.name]
    return found


def check_sweep_report(sweep: Path, out: str, jobs: int) -> None:
    """Every report file is there, every job completed, and the table was printed."""
    missing = [name for name in REPORT_FILES if not (sweep / name).is_file()]
    assert not missing, f"{sweep} lacks {missing}:\n{out[-3000:]}"
    assert f"{jobs} jobs, {jobs} completed" in (sweep / "report.md").read_text()
    assert "| params | n | test acc (%) | 95% CI |" in out  # the table is printed too


def test_the_base_installs_quickstart_sweep_writes_its_report_and_prints_nothing_alarming(quickstart, user_venv):
    sweep, out = quickstart
    check_sweep_report(sweep, clean(out), jobs=6)
    assert "Δ vs baseline" in (sweep / "report.md").read_text()  # the significance tests ran
    assert not (ROOT / "outputs" / "sweeps" / sweep.name).exists()  # written where the user stands, not in the checkout


def test_every_console_script_of_the_base_install_runs_clean(quickstart, user_venv, tmp_path):
    sweep, _ = quickstart
    run_dir = job_dir(sweep, "model=lenet5,seed=0")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert clean(run(user_venv, "mnistlab", "--version", cwd=tmp_path)).startswith(f"mnistlab {mnistlab.__version__} (python ")
    assert "model: lenet5, mlp" in clean(run(user_venv, "mnistlab", "--help", cwd=tmp_path))
    assert "| model | params |" in clean(run(user_venv, "mnistlab-report", str(sweep), "-o", str(tmp_path / "again"), cwd=tmp_path))
    clean(run(user_venv, "mnistlab-eval", str(run_dir), cwd=tmp_path))
    assert (run_dir / "eval" / "confusion.csv").is_file()
    digit = tmp_path / "digit.png"
    Image.open(run_dir / "mistakes.png").convert("L").resize((56, 56)).save(digit)  # any picture will do
    assert "digit.png" in clean(run(user_venv, "mnistlab-predict", str(run_dir), str(digit), cwd=tmp_path))
    assert "model.pt2" in clean(run(user_venv, "mnistlab-export", str(run_dir), "--format", "pt2", cwd=tmp_path))


@pytest.mark.parametrize(
    "command, extra",
    [
        (("mnistlab", "-m", "model=lenet5,mlp", "hydra/launcher=slurm"), "slurm"),
        (("mnistlab", "-m", "model=mlp", "hydra/launcher=joblib"), "parallel"),
        (("mnistlab", "hparams_search=lenet5_optuna"), "optuna"),
        (("mnistlab", "logger=mlflow"), "mlflow"),
        (("mnistlab", "-m", "logger=csv,tensorboard"), "tensorboard"),
        (("mnistlab-export", "RUN", "--format", "onnx"), "export"),
    ],
)
def test_what_needs_a_missing_extra_is_one_line_naming_it(quickstart, user_venv, tmp_path, command, extra):
    run_dir = job_dir(quickstart[0], "model=mlp,seed=0")
    args = [str(run_dir) if arg == "RUN" else arg for arg in command[1:]]
    out = run(user_venv, command[0], *args, cwd=tmp_path, expect=2)
    assert out.strip().splitlines() == [out.strip()] and f'pip install "mnistlab[{extra}]"' in out, out
    assert not (tmp_path / "outputs").exists()


def test_the_wheel_installed_on_the_base_runs_the_main_job_from_anywhere(user_venv, tmp_path):
    bin_dir = overlay_venv(tmp_path / "venv", user_venv / "python")
    pip_install(bin_dir, "--no-deps", "--no-index", str(build_wheel(tmp_path)))
    work = tmp_path / "work"
    work.mkdir()
    where = run(bin_dir, "python", "-c", "import mnistlab; print(mnistlab.__file__)", cwd=work)
    assert "site-packages" in where and str(ROOT) not in where, where
    out = clean(run(bin_dir, "mnistlab", "-m", "experiment=compare", *QUICK, cwd=work))
    (sweep,) = (work / "outputs" / "sweeps").iterdir()
    check_sweep_report(sweep, out, jobs=6)
    assert f"mnistlab {mnistlab.__version__}" in clean(run(bin_dir, "mnistlab", "--version", cwd=work))


def extra_venv(user_venv: Path, tmp_path: Path, extra: str) -> Path:
    """The base install plus ``pip install -e ".[extra]"`` and nothing else."""
    bin_dir = overlay_venv(tmp_path / "venv", user_venv / "python")
    pip_install(bin_dir, "-e", f"{ROOT}[{extra}]")
    return bin_dir


def test_extra_parallel_alone_runs_a_sweep_with_joblib(user_venv, tmp_path):
    bin_dir = extra_venv(user_venv, tmp_path, "parallel")
    out = clean(run(bin_dir, "mnistlab", "-m", "seed=0,1,2", *QUICK, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path))
    assert "Joblib" in out
    check_sweep_report(next((tmp_path / "outputs" / "sweeps").iterdir()), out, jobs=3)


def test_extra_slurm_alone_runs_a_sweep_with_submitits_local_launcher(user_venv, tmp_path):
    bin_dir = extra_venv(user_venv, tmp_path, "slurm")
    out = clean(run(bin_dir, "mnistlab", "-m", "seed=0,1,2", *QUICK, "hydra/launcher=local", cwd=tmp_path))
    check_sweep_report(next((tmp_path / "outputs" / "sweeps").iterdir()), out, jobs=3)


def test_extra_optuna_alone_runs_and_reports_a_study(user_venv, tmp_path):
    bin_dir = extra_venv(user_venv, tmp_path, "optuna")
    out = run(
        bin_dir,
        "mnistlab",
        "hparams_search=lenet5_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",  # two worker processes through submitit, which the extra brings
        "data.val_size=1000",
        *QUICK,
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        cwd=tmp_path,
    )
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    report = (sweep / "report.md").read_text()
    assert "# Optuna study lenet5_optuna" in report and "2 trials, 2 with a result" in report, out[-3000:]
    assert "Traceback" not in out


def test_extra_tensorboard_alone_logs_a_run_tensorboard_reads_back(user_venv, tmp_path):
    bin_dir = extra_venv(user_venv, tmp_path, "tensorboard")
    clean(run(bin_dir, "mnistlab", "model=mlp", *QUICK, "logger=tensorboard", "hydra.run.dir=run", cwd=tmp_path))
    read = (
        "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E; "
        "e = E('run/tensorboard'); e.Reload(); print(sorted(e.Tags()['scalars']))"
    )
    assert "acc/test" in run(bin_dir, "python", "-c", read, cwd=tmp_path)


def test_extra_mlflow_alone_logs_a_run_its_client_reads_back(user_venv, tmp_path):
    bin_dir = extra_venv(user_venv, tmp_path, "mlflow")
    out = run(bin_dir, "mnistlab", "model=mlp", *QUICK, "logger=mlflow", "hydra.run.dir=run", cwd=tmp_path)
    assert "Traceback" not in out
    read = (
        "import mlflow; c = mlflow.tracking.MlflowClient(tracking_uri='sqlite:///outputs/mlflow.db'); "
        "(r,) = c.search_runs([c.get_experiment_by_name('mnistlab').experiment_id]); print(r.info.status, r.data.metrics['final_test_acc'])"
    )
    status, accuracy = run(bin_dir, "python", "-c", read, cwd=tmp_path).split()[-2:]
    assert status == "FINISHED" and float(accuracy) == json.loads((tmp_path / "run" / "summary.json").read_text())["final_test_acc"]


def test_extra_export_alone_writes_an_onnx_model_that_agrees_with_pytorch(quickstart, user_venv, tmp_path):
    bin_dir = extra_venv(user_venv, tmp_path, "export")
    run_dir = job_dir(quickstart[0], "model=mlp,seed=0")
    out = run(bin_dir, "mnistlab-export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "export"), cwd=tmp_path)
    assert "the same classes" in out and (tmp_path / "export" / "model.onnx").is_file()
