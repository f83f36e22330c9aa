"""The sweep report on synthetic run directories (a failed and an unfinished job included) and on real multiruns."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import run_cli
from mnistlab.commands.report import cli
from mnistlab.reports.sweep import write_report
from mnistlab.training.speed import TORCH_THREADS


def fake_run(sweep, job, overrides, status="completed", acc=99.0, epochs=3, params=61_706, model=None):
    run = sweep / str(job)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if status is None:  # started, nothing written yet
        return run
    rows = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_acc": acc - 3 + e,
            "test_loss": 1.2 / e,
            "test_acc": acc - epochs + e,
            "lr": 0.1,
            "seconds": 1.0,
        }
        for e in range(1, epochs + 1)
    ]
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    summary = {"status": status, "model": model or overrides[0].split("=")[1], "params": params}
    if status == "completed":
        summary |= {
            "final_test_acc": acc,
            "final_test_loss": 1.2 / epochs,
            "best_test_acc": acc,
            "final_train_acc": acc - 3 + epochs,
            "final_train_loss": 1 / epochs,
            "seconds": 2.0,
        }
    if status == "failed":
        summary["error"] = "RuntimeError: out of memory"
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def sweep(tmp_path):
    fake_run(tmp_path, 0, ["model=lenet5", "seed=0"], acc=99.2)
    fake_run(tmp_path, 1, ["model=lenet5", "seed=1"], acc=99.4)
    fake_run(tmp_path, 2, ["model=mlp", "seed=0"], acc=98.0, params=109_386)
    fake_run(tmp_path, 3, ["model=mlp", "seed=1"], status="failed", params=109_386)
    fake_run(tmp_path, 4, ["model=mlp", "seed=2"], status=None)
    return tmp_path


def test_report_groups_over_seeds_and_lists_failures(sweep):
    report, incomplete = write_report([sweep])
    assert incomplete == 2
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 5 and list(summary["status"]) == ["completed", "completed", "completed", "failed", "unfinished"]
    assert summary.loc[3, ["final_test_acc"]].isna().all()
    comparison = pd.read_csv(sweep / "comparison.csv").set_index("model")
    assert comparison.loc["lenet5", "final_test_acc.mean"] == pytest.approx(99.3)
    assert comparison.loc["lenet5", "final_test_acc.std"] == pytest.approx(0.1414, abs=1e-3)
    assert comparison.loc["lenet5", "n"] == 2 and comparison.loc["mlp", "n"] == 1 and comparison.loc["mlp", "jobs"] == 3
    assert comparison.loc["mlp", "params"] == 109_386
    text = report.read_text()
    assert "| lenet5 | 61,706 | 2/2 | 99.30 ± 0.14" in text
    assert "job 3 (model=mlp, seed=1): failed: RuntimeError: out of memory" in text
    assert "job 4 (model=mlp, seed=2): unfinished" in text
    for name in ("curves.png", "comparison.png"):
        assert (sweep / name).stat().st_size > 1000
    epochs = pd.read_csv(sweep / "epochs.csv")
    assert len(epochs) == 4 * 3 and epochs["job"].nunique() == 4  # the unfinished job has no epochs


def test_report_cli_on_explicit_run_dirs(sweep, tmp_path, capsys):
    out = tmp_path / "picked"
    assert cli([str(sweep / "0"), str(sweep / "2"), "-o", str(out)]) == 0
    assert cli([str(sweep)]) == 5  # jobs without a result
    assert "| mlp | 109,386 | 1/1 | 98.00" in capsys.readouterr().out
    assert len(pd.read_csv(out / "summary.csv")) == 2


def test_report_lists_unreadable_run_dirs_with_the_reason_and_reports_the_rest(sweep):
    bad = {
        5: ("summary.json", b"\xff\xfe not utf-8", "summary.json cannot be read (UnicodeDecodeError"),
        6: ("summary.json", b"[1, 2]", "summary.json holds a list, not an object"),
        7: (".hydra/overrides.yaml", b"!!python/object/apply:os.system ['touch pwned']", "overrides.yaml cannot be read (ConstructorError"),
        8: ("metrics.csv", None, "metrics.csv is missing or empty, though the summary says completed"),
        9: ("metrics.csv", b"", "metrics.csv is missing or empty, though the summary says completed"),
        10: ("metrics.csv", b"not,a,metrics,file\n1,2,3,4\n", "metrics.csv cannot be read (ValueError: no epoch column)"),
    }
    for job, (name, content, _) in bad.items():
        run = fake_run(sweep, job, ["model=lenet5", f"seed={job}"], acc=50.0)
        if content is None:
            (run / name).unlink()
        else:
            (run / name).write_bytes(content)
    report, incomplete = write_report([sweep])
    table = pd.read_csv(sweep / "summary.csv").set_index("job")
    assert incomplete == 2 + len(bad) and not (sweep / "pwned").exists()
    for job, (_, _, reason) in bad.items():
        assert table.loc[job, "status"] == "unreadable" and reason in table.loc[job, "error"], job
    comparison = pd.read_csv(sweep / "comparison.csv").set_index("model")
    assert comparison.loc["lenet5", "final_test_acc.mean"] == pytest.approx(99.3)  # the readable runs, unchanged
    assert "job 6 (model=lenet5, seed=6): unreadable: summary.json holds a list" in report.read_text()


def test_report_cli_without_runs_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli([str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"mnistlab-report: no runs (*/.hydra/overrides.yaml) under {tmp_path}")
    assert len(err.strip().splitlines()) == 1


def _assert_sweep_outputs(sweep_dir, jobs, groups):
    assert len(pd.read_csv(sweep_dir / "summary.csv")) == jobs
    comparison = pd.read_csv(sweep_dir / "comparison.csv")
    assert len(comparison) == groups
    for name in ("curves.png", "comparison.png", "report.md"):
        assert (sweep_dir / name).is_file(), name
    return comparison


@pytest.mark.e2e
def test_multirun_writes_the_report(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("-m", "model=lenet5,mlp", "seed=0,1", "trainer.epochs=1", "trainer.limit_batches=60", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = _assert_sweep_outputs(sweep_dir, 4, 2).set_index("model")
    assert comparison.loc["lenet5", "final_test_acc.mean"] > 85 and comparison.loc["mlp", "params"] == 109_386
    job = sweep_dir / "model=lenet5,seed=0"  # named by the keys the sweep varies
    assert (job / "confusion.png").is_file() and (job / "mistakes.png").is_file()
    report_proc = run_cli(str(sweep_dir), script="mnistlab-report")
    assert report_proc.returncode == 0, report_proc.stderr[-3000:]
    assert "| lenet5 | 61,706 | 2/2 |" in report_proc.stdout


@pytest.mark.e2e
def test_multirun_with_joblib_launcher(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "model=lenet5,mlp",
        "trainer.epochs=1",
        "trainer.limit_batches=20",
        "run.plots=false",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_sweep_outputs(sweep_dir, 2, 2)
    threads = {json.loads(path.read_text())["threads"] for path in sweep_dir.glob("*/summary.json")}
    assert threads == {max(1, min(TORCH_THREADS, os.cpu_count() or 1) // 2)}  # two jobs share the cores, not fight over them


@pytest.mark.e2e
def test_an_optuna_study_is_reported_as_trials_and_continues_when_relaunched(tmp_path):
    """No -m needed; SQLite storage (SQLAlchemy 2); a relaunch with n_trials=4 adds trials 2 and 3, new parameters, new dirs."""
    pytest.importorskip("optuna")
    sweep_dir = tmp_path / "sweep"
    launch = (
        "hparams_search=lenet5_optuna",
        "model=mlp",
        "hydra.sweeper.n_trials=2",
        "trainer.epochs=1",
        "trainer.limit_batches=10",
        "run.plots=false",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        f"hydra.sweep.dir={sweep_dir}",
    )
    proc = run_cli(*launch)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = {p.name: (p / "summary.json").read_text() for p in sweep_dir.glob("trial_*")}
    assert sorted(first) == ["trial_0", "trial_1"]
    proc = run_cli(*launch, "hydra.sweeper.n_trials=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "study lenet5_optuna (maximize): 2 of 4 trials finished" in proc.stdout + proc.stderr
    assert {name: (sweep_dir / name / "summary.json").read_text() for name in first} == first  # trials 0 and 1 untouched

    trials = pd.read_csv(sweep_dir / "trials.csv")
    assert sorted(trials["trial"]) == [0, 1, 2, 3]
    assert trials["final_val_acc"].is_monotonic_decreasing  # best first, on the objective: validation accuracy
    assert trials["final_test_acc"].notna().all()  # shown beside it
    sampled = ["optimizer.lr", "regularization.weight_decay", "regularization.dropout", "trainer.batch_size"]
    assert not trials.duplicated(subset=sampled).any()  # the relaunch did not draw trial 0's parameters again
    assert all(len(f"{v:.10g}".lstrip("0.").replace("e-", "")) <= 6 for v in trials["optimizer.lr"])  # 3 significant digits
    report = (sweep_dir / "report.md").read_text()
    best = trials.iloc[0]
    assert "# Optuna study lenet5_optuna" in report and "maximize validation accuracy (%)" in report
    assert f"**Best: trial {best['trial']}**" in report and (sweep_dir / "study.png").stat().st_size > 0
    best_yaml = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best_yaml["best_value"] == pytest.approx(best["final_val_acc"])  # Optuna and the report agree


def test_seed_only_sweep_is_one_group(tmp_path):
    for job in range(3):
        fake_run(tmp_path, job, [f"seed={job}"], acc=99.0 + job / 10, model="lenet5")
    report, incomplete = write_report([tmp_path])
    assert incomplete == 0
    comparison = pd.read_csv(tmp_path / "comparison.csv")
    assert len(comparison) == 1 and comparison.loc[0, "n"] == 3
    assert comparison.loc[0, "final_test_acc.mean"] == pytest.approx(99.1)
    assert "3 jobs, 3 completed" in report.read_text()


def test_a_sweeps_jobs_hold_their_figures_when_it_ends(tmp_path):
    """Figures are left to the sweep's end, never between jobs, and drawn before the sweep returns."""
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "model=mlp", "trainer.epochs=1", "trainer.limit_batches=3", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(jobs) == 2
    for job in jobs:
        for name in ("curves.png", "confusion.png", "mistakes.png"):
            with Image.open(job / name) as image:
                image.load()  # whole


def test_a_killed_figure_process_leaves_no_half_written_png(tmp_path):
    """The process that draws a run's figures, SIGKILLed at moments spread over its work, leaves each PNG whole or
    absent; drawn again, it completes them."""
    run = tmp_path / "run"
    proc = run_cli("model=mlp", "trainer.epochs=1", "trainer.limit_batches=3", "run.plots=false", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from mnistlab.runs import files
    from mnistlab.runs.figures import render

    labels = np.arange(200) % 10
    files.write_figure_data(
        run, "t", labels, (labels + (np.arange(200) % 7 == 0)) % 10, lambda i: np.zeros((len(i), 28, 28)), list("0123456789")
    )
    started = time.perf_counter()
    render(run)
    whole = time.perf_counter() - started
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        (run / name).unlink()
    for fraction in (0.3, 0.8, 1.3):
        drawer = subprocess.Popen([sys.executable, "-m", "mnistlab.runs.figures", str(run)])
        time.sleep(1.0 + fraction * whole)  # past the imports, into the drawing
        drawer.kill()
        drawer.wait()
        for png in run.glob("*.png"):
            with Image.open(png) as image:
                image.load()
    render(run)
    assert sorted(p.name for p in run.glob("*.png")) == ["confusion.png", "curves.png", "mistakes.png"]
