"""Every result reproducible from its run directory: its provenance, and mnistlab-reproduce's verdicts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import COUNTING, make_folder, run_cli, write
from mnistlab.commands.reproduce import judge
from mnistlab.runs import provenance

FAST = ("model=mlp", "trainer.limit_batches=5", "run.plots=false")


def reproduce(*args: str, cwd: Path | None = None, env: dict | None = None, fresh: bool = False):
    return run_cli(*map(str, args), script="mnistlab-reproduce", cwd=cwd, env=env, fresh=fresh)


@pytest.fixture(scope="module")
def fifteen(tmp_path_factory) -> Path:
    """A 15-epoch MLP run of 2 steps an epoch."""
    run = tmp_path_factory.mktemp("fifteen") / "run"
    proc = run_cli("model=mlp", "trainer.epochs=15", "trainer.limit_batches=2", "run.plots=false", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


def test_a_run_records_its_code_data_and_machine_and_is_reproduced_bit_for_bit(fifteen, tmp_path):
    summary = json.loads((fifteen / "summary.json").read_text())
    record = summary["provenance"]
    assert record["code"] == provenance.code() and record["code"]["mnistlab"] == summary["versions"]["mnistlab"]
    assert record["data"]["files"] == 4 and all(len(sha) == 64 for sha in record["data"]["sources"].values())
    assert record["machine"]["threads"] == summary["threads"] and record["machine"]["cpu"]["torch_kernels"]
    assert set(record["machine"]["deterministic"]) == {"algorithms", "cudnn_deterministic", "cudnn_benchmark"}
    proc = reproduce(fifteen, "--out", tmp_path / "again")
    assert proc.returncode == 0 and "identical: 15 epochs x " in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len((tmp_path / "again" / "metrics.csv").read_text().splitlines()) == 16


def test_the_first_epochs_of_a_long_run_are_reproduced_with_its_schedule(fifteen, tmp_path):
    proc = reproduce(fifteen, "--epochs", 1, "--out", tmp_path / "first")
    assert proc.returncode == 0 and "identical: 1 epoch x " in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len((tmp_path / "first" / "metrics.csv").read_text().splitlines()) == 2


def test_a_run_whose_data_file_changed_is_refused_naming_it_before_anything_trains(tmp_path):
    make_folder(tmp_path / "shades")
    run = tmp_path / "run"
    proc = run_cli(
        "data=folder", f"data.root={tmp_path / 'shades'}", *FAST, "trainer.epochs=1", "trainer.batch_size=16", f"hydra.run.dir={run}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    changed = tmp_path / "shades" / "train" / "dark" / "3.png"
    Image.new("L", (12, 12), 255).save(changed)
    proc = reproduce(run)
    assert proc.returncode == 2 and proc.stderr.startswith(f"mnistlab-reproduce: the data file {changed} changed since the run"), (
        proc.stderr
    )
    assert not (tmp_path / "run.reproduced").exists()


def test_a_class_of_yours_is_hashed_reproduced_and_its_change_named(tmp_path, monkeypatch):
    code = write(tmp_path / "code", {"counting.py": COUNTING})
    conf = write(
        tmp_path / "conf",
        {"model/counted.yaml": "_target_: counting.CountedMLP\nin_channels: ${data.channels}\nnum_classes: ${data.num_classes}\n"},
    )
    run = tmp_path / "run"
    proc = run_cli(
        "--config-dir", conf, "model=counted", *FAST[1:], "trainer.epochs=1", f"hydra.run.dir={run}", env={"PYTHONPATH": str(code)}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((run / "summary.json").read_text())["provenance"]["user_code"]
    assert record["counting"]["file"] == str((code / "counting.py").resolve()) and len(record["counting"]["sha256"]) == 64
    proc = reproduce(run, "--out", tmp_path / "again")  # no PYTHONPATH: found where the run recorded it
    assert proc.returncode == 0 and "identical" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    (code / "counting.py").write_text((code / "counting.py").read_text() + "\n# changed\n")
    proc = reproduce(run, "--out", tmp_path / "changed")
    assert f"your module counting ({(code / 'counting.py').resolve()}) changed since the run" in proc.stdout
    assert "what differs: code: counting" in proc.stdout
    shutil.rmtree(code)
    proc = reproduce(run, "--out", tmp_path / "gone")
    assert proc.returncode == 2 and "model._target_=counting.CountedMLP cannot be imported" in proc.stderr


def test_a_modified_tree_is_recorded_as_dirty_with_a_hash_of_its_difference(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    clean = provenance.code.__wrapped__(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["diff_sha256"] is None
    (tmp_path / "a.py").write_text("x = 2\n")
    edited = provenance.code.__wrapped__(tmp_path)
    assert edited["commit"] == clean["commit"] and edited["dirty"] is True and len(edited["diff_sha256"]) == 64
    (tmp_path / "b.py").write_text("y = 1\n")
    assert provenance.code.__wrapped__(tmp_path)["diff_sha256"] != edited["diff_sha256"]  # an untracked file counts
    assert provenance.code.__wrapped__(tmp_path / "a.py")["commit"] is None  # not a checkout's top: no commit claimed


def test_other_kernels_give_other_floats_within_the_stated_tolerance(fifteen, tmp_path):
    """torch's scalar kernels (``ATEN_CPU_CAPABILITY=default``) stand in for another CPU: the machine differs, the
    floats move, and the verdict says within tolerance, naming the kernels (identical where the CPU has no others)."""
    proc = reproduce(fifteen, "--out", tmp_path / "scalar", env={"ATEN_CPU_CAPABILITY": "default"}, fresh=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    recorded = json.loads((fifteen / "summary.json").read_text())["provenance"]["machine"]["cpu"]["torch_kernels"]
    if recorded == "DEFAULT":
        assert "identical" in proc.stdout
    else:
        assert f"within tolerance: 15 epochs; what differs: machine: instruction set {recorded} -> DEFAULT" in proc.stdout


def test_a_run_of_mnistlab_0_1_is_composed_again_from_its_overrides_and_reproduced(tmp_path):
    """0.1 recorded no provenance and another config layout (``trainer.plots``, no ``run`` group): its overrides,
    moved keys renamed, compose this version's config, which trains the same numbers."""
    run = tmp_path / "old"
    proc = run_cli("model=mlp", "trainer.epochs=2", "trainer.limit_batches=3", "run.plots=false", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    config["trainer"].update(config.pop("run"))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = ["model=mlp", "trainer.epochs=2", "trainer.limit_batches=3", "trainer.plots=false"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    summary = json.loads((run / "summary.json").read_text())
    del summary["provenance"]
    summary["versions"]["mnistlab"] = "0.1.0"
    (run / "summary.json").write_text(json.dumps(summary))
    proc = reproduce(run, "--out", tmp_path / "again")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "composed again from its overrides (model=mlp trainer.epochs=2 trainer.limit_batches=3 run.plots=false)" in proc.stdout
    assert "identical: 2 epochs" in proc.stdout and "code: not recorded (mnistlab 0.1)" in proc.stdout


def test_other_numbers_are_within_tolerance_only_where_the_machine_or_versions_differ():
    drift = [("epoch 3", "test_acc", 98.91, 98.95)]
    assert judge(drift, [], {"machine": ["threads 2 -> 1"]}, 3, 6).state == "within tolerance"
    assert judge(drift, [], {"code": ["commit a -> b"]}, 3, 6).state == "different"
    assert judge(drift, [], {}, 3, 6).state == "different"  # the same machine, code and data: no excuse
    far = [("epoch 3", "test_acc", 98.91, 97.0)]
    verdict = judge(far, far, {"versions": ["torch 2.14.1 -> 2.13.0"]}, 3, 6)
    assert verdict.state == "different" and verdict.lines[0].startswith("different: epoch 3, test_acc 98.91 (recorded) vs 97.0")


def test_a_sweep_reproduces_the_jobs_its_seed_chooses(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "trainer.epochs=1", "seed=0,1,2", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = __import__("pandas").read_csv(sweep / "summary.csv")
    assert summary["code"].notna().all() and summary["machine"].str.contains("threads").all()
    proc = reproduce(sweep, "--jobs", 2, "--out", tmp_path / "again")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    judged = [line for line in proc.stdout.splitlines() if ": identical:" in line]
    assert len(judged) == 2 and sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(
        Path(line.split(":")[0]).name for line in judged
    )
    assert reproduce(tmp_path / "nothing").returncode == 2
