"""Optuna studies on mnistlab's sweeper: the search space, pruning, relaunches, workers here, dead workers' trials
retried, and optuna-dashboard reading a study in a real browser."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from conftest import ROOT, run_cli  # noqa: E402
from mnistlab.errors import UserError  # noqa: E402
from mnistlab.runs.lock import Holder  # noqa: E402
from mnistlab.studies.space import distribution, search_space  # noqa: E402
from mnistlab.studies.storage import JOURNAL_FILE, PRUNERS, component, make_sampler, open_storage  # noqa: E402
from mnistlab.studies.trials import fail_abandoned, finished, retried_from  # noqa: E402

STUDY = ("hparams_search=lenet5_optuna", "model=mlp", "run.plots=false")
SAMPLED = ["optimizer.lr", "regularization.weight_decay", "regularization.dropout", "trainer.batch_size"]


def stored(sweep_dir: Path, name: str = "lenet5_optuna") -> list:
    return optuna.load_study(study_name=name, storage=open_storage(str(sweep_dir / JOURNAL_FILE))).trials


def summaries(sweep_dir: Path) -> dict[int, dict]:
    return {int(p.parent.name.split("_")[1]): json.loads(p.read_text()) for p in sweep_dir.glob("trial_*/summary.json")}


# -- the search space


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    assert distribution("a", "tag(log, interval(0.005, 0.3))") == FloatDistribution(0.005, 0.3, log=True)
    assert distribution("a", "interval(0, 0.5)") == FloatDistribution(0.0, 0.5)
    assert distribution("a", "tag(int, interval(1, 10))") == IntDistribution(1, 10)
    assert distribution("a", "range(2, 10, 2)") == IntDistribution(2, 8, step=2)
    assert distribution("a", "tag(log, range(1, 100))") == IntDistribution(1, 99, log=True)
    assert distribution("a", "choice(64, 128, adam)") == CategoricalDistribution([64, 128, "adam"])
    assert distribution("a", "0.1") is None
    with pytest.raises(UserError, match=r"hydra.sweeper.params.a: cannot read"):
        distribution("a", "interval(0.1")


def test_the_command_line_adds_ranges_and_fixed_values_replace_ranges():
    params = {"optimizer.lr": "tag(log, interval(0.005, 0.3))", "trainer.batch_size": "choice(64, 128)", "seed": "3"}
    space, fixed = search_space(params, ["regularization.dropout=interval(0, 0.5)", "trainer.batch_size=256"])
    assert set(space) == {"optimizer.lr", "regularization.dropout"}
    assert fixed == ["seed=3", "trainer.batch_size=256"]


def test_samplers_and_pruners_by_name_or_target_and_bad_names_name_the_key():
    assert isinstance(component("median", PRUNERS, "k"), optuna.pruners.MedianPruner)
    assert isinstance(component({"_target_": "optuna.pruners.NopPruner"}, PRUNERS, "k"), optuna.pruners.NopPruner)
    with pytest.raises(UserError, match=r"hydra.sweeper.pruner: 'mean' is not one of median, hyperband, none"):
        component("mean", PRUNERS, "hydra.sweeper.pruner")
    with pytest.raises(UserError, match=r"hydra.sweeper.pruner \(optuna.pruners.MedianPruner\)"):
        component({"_target_": "median", "n_startup_trials": -1}, PRUNERS, "hydra.sweeper.pruner")
    # one worker of a first launch keeps its seed; every other (stored, worker) draws another stream
    x = FloatDistribution(0, 1)
    draws = {
        make_sampler({"_target_": "random", "seed": 0}, s, w).sample_independent(None, None, "x", x)
        for s, w in [(0, 0), (0, 1), (1, 0), (2, 1)]
    }
    assert len(draws) == 4
    first = make_sampler({"_target_": "random", "seed": 0}, 0, 0).sample_independent(None, None, "x", x)
    assert first == optuna.samplers.RandomSampler(seed=0).sample_independent(None, None, "x", x)


# -- dead workers


def test_a_running_trial_whose_worker_died_is_failed_and_its_parameters_queued_again(tmp_path):
    storage = open_storage(str(tmp_path / "s.journal"))
    s = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    space = {"x": FloatDistribution(0, 1)}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lost, running = s.ask(space), s.ask(space)
        lost.set_user_attr("worker", {**Holder().__dict__, "pid": dead.pid})
        running.set_user_attr("worker", {**Holder().__dict__, "pid": alive.pid})
        assert fail_abandoned(s, max_retry=1) == 1
        trials = s.get_trials()
        assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
        assert retried_from(trials[2]) == 0
        retry = s.ask(space)
        assert retry.number == 2 and retry.params == lost.params
        s.tell(retry, 0.5)
        assert finished(s.get_trials()) == 1  # trial 0 counts through its retry
    finally:
        alive.kill()


# -- studies from the command line


def test_a_study_prunes_reports_and_a_relaunch_trains_only_what_is_missing(tmp_path):
    """In-process worker; the median pruner from the second trial on; the default journal storage."""
    sweep_dir = tmp_path / "sweep"
    launch = (
        *STUDY,
        "trainer.epochs=3",
        "trainer.limit_batches=5",
        "data.val_size=2000",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.pruner={_target_: median, n_startup_trials: 1}",
        f"hydra.sweep.dir={sweep_dir}",
    )
    proc = run_cli(*launch)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = stored(sweep_dir)
    states = [t.state for t in trials]
    assert len(trials) == 4 and TrialState.PRUNED in states and TrialState.COMPLETE in states, states
    runs = summaries(sweep_dir)
    for t in trials:
        run = runs[t.number]
        reported = t.intermediate_values
        assert sorted(reported) == list(range(1, run["epochs_run"] + 1))  # each epoch's validation accuracy, reported
        assert reported[run["epochs_run"]] == pytest.approx(
            json.loads((sweep_dir / f"trial_{t.number}" / "summary.json").read_text())["final_val_acc"]
        )
        if t.state == TrialState.PRUNED:
            assert run["status"] == "pruned" and run["epochs_run"] < 3 and run["pruned_at_epoch"] == run["epochs_run"]
        else:
            assert run["status"] == "completed" and run["epochs_run"] == 3
            assert t.value == pytest.approx(run["final_val_acc"])
    table = pd.read_csv(sweep_dir / "trials.csv")
    pruned = table[table["status"] == "pruned"]
    assert len(pruned) == states.count(TrialState.PRUNED) and (pruned["epochs"] < 3).all()
    report = (sweep_dir / "report.md").read_text()
    assert f"{len(pruned)} pruned" in report and "| pruned |" in report

    before = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("trial_*/*")}
    proc = run_cli(*launch)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 of 4 trials finished" in proc.stderr + proc.stdout
    assert {p: p.stat().st_mtime_ns for p in sweep_dir.glob("trial_*/*")} == before  # nothing retrained, pruned or not

    proc = run_cli(*launch[:-2], "hydra.sweeper.n_trials=6", launch[-1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(summaries(sweep_dir)) == list(range(6)) and len(stored(sweep_dir)) == 6
    table = pd.read_csv(sweep_dir / "trials.csv")
    assert not table.duplicated(subset=SAMPLED).any()  # the continued study drew new parameters


def test_bad_sweeper_settings_fail_before_any_trial_naming_the_key(tmp_path):
    for bad, message in [
        ("hydra.sweeper.pruner=mean", "hydra.sweeper.pruner: 'mean' is not one of median, hyperband, none"),
        ("hydra.sweeper.n_jobs=0", "hydra.sweeper.n_jobs: must be an integer >= 1"),
        ("hydra.sweeper.sampler=bayes", "hydra.sweeper.sampler: 'bayes' is not one of tpe, random"),
    ]:
        proc = run_cli(*STUDY, bad, f"hydra.sweep.dir={tmp_path / 'sweep'}")
        assert proc.returncode == 2 and message in proc.stdout and "Traceback" not in proc.stdout + proc.stderr, (bad, proc.stdout[-2000:])
        assert not list((tmp_path / "sweep").glob("*")), bad  # Hydra made the directory; nothing is in it


@pytest.mark.e2e
def test_two_workers_here_run_every_trial_once_with_their_share_of_the_cores(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        *STUDY, "trainer.epochs=2", "trainer.limit_batches=20", "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.pruner=none", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = stored(sweep_dir)
    assert [t.number for t in trials] == list(range(6)) and all(t.state == TrialState.COMPLETE for t in trials)
    runs = summaries(sweep_dir)
    assert sorted(runs) == list(range(6))
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) == 2 and os.getpid() not in workers  # two processes, neither of them the sweep's own
    cores = min(os.cpu_count() or 1, len(os.sched_getaffinity(0)))
    assert {run["threads"] for run in runs.values()} == {max(1, cores // 2)}
    params = pd.DataFrame([t.params for t in trials])
    assert not params.duplicated().any()
    assert "2 workers as processes on this machine" in proc.stdout
    ended = sorted(int(line[1]) for line in proc.stdout.splitlines() if line.startswith("[") and "/6] trial_" in line)
    assert ended == [1, 2, 3, 4, 5, 6]  # a line as each trial ends, from the workers' processes


@pytest.mark.e2e
def test_a_killed_study_fails_its_running_trial_and_a_relaunch_retries_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    launch = (
        str(Path(sys.executable).parent / "mnistlab"), *STUDY, "trainer.epochs=20", "trainer.limit_batches=30",
        "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=none", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    proc = subprocess.Popen(launch, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = sweep_dir / "trial_0" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not metrics.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "trial 0 never wrote an epoch"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (killed,) = stored(sweep_dir)
    assert killed.state == TrialState.RUNNING  # nothing could tell the study

    done = run_cli(*launch[1:])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"trial 0 failed: PID {proc.pid} no longer runs on {socket.gethostname()}" in done.stdout + done.stderr
    trials = stored(sweep_dir)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    retry = next(t for t in trials if retried_from(t) == 0)
    assert retry.params == killed.params
    assert summaries(sweep_dir)[retry.number]["status"] == "completed"
    table = pd.read_csv(sweep_dir / "trials.csv").set_index("trial")
    assert table.loc[0, "status"] == f"retried as trial {retry.number}"  # the killed trial's run is listed, and why


# -- optuna-dashboard in a browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_the_documented_optuna_dashboard_command_serves_the_study(tmp_path):
    """`optuna-dashboard <sweep>/optuna.journal`, as the README says, serves the study our sweeper wrote there."""
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    if not dashboard.exists():
        pytest.skip("needs optuna-dashboard (the optuna extra)")
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(*STUDY, "trainer.epochs=1", "trainer.limit_batches=10", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    port = free_port()
    server = subprocess.Popen(
        [str(dashboard), str(sweep_dir / "optuna.journal"), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    studies = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "optuna-dashboard did not start"
                time.sleep(0.2)
    finally:
        server.kill()
    assert [study["study_name"] for study in studies["study_summaries"]] == ["lenet5_optuna"]
