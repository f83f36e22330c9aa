"""The wheel: built from the checkout, installed into a fresh venv, run from a directory of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mnistlab
from conftest import CONF, ROOT

SOURCES = ("pyproject.toml", "README.md", "mnistlab", "conf", "data", "hydra_plugins")


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


PLUGINS = ["LocalLauncher", "SeedSweeper", "SlurmLauncher", "StudySweeper"]


def _plugins(python: Path, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """mnistlab's plugins as Hydra's plugin scan finds them from ``cwd``."""
    code = "from hydra.core.plugins import Plugins; print(*sorted(k.rsplit('.', 1)[1] for k in Plugins.instance().class_name_to_class if '.mnistlab_' in k))"
    return _run([str(python), "-c", code], cwd, env).stdout.split()


def test_hydra_finds_mnistlabs_plugins_from_any_directory_in_this_install(tmp_path):
    assert _plugins(Path(sys.executable), tmp_path) == PLUGINS  # an editable install too: not only from the checkout


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def build_wheel(tmp: Path) -> Path:
    """The wheel, built from a copy of the sources (nothing is written into the checkout)."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    build = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)], tmp)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return next((tmp / "dist").glob("mnistlab-*.whl"))


def overlay_venv(venv: Path, base_python: Path) -> Path:
    """A fresh venv that also sees ``base_python``'s installed libraries, but not its mnistlab (an editable install's
    path hook lives in a .pth file, which is read only in the base's own site-packages); returns its bin/."""
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv.parent).returncode == 0
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(_run([str(venv / "bin" / "python"), "-c", where], venv.parent).stdout.strip())
    (purelib / "_dependencies.pth").write_text(_run([str(base_python), "-c", where], venv.parent).stdout.strip() + "\n")
    return venv / "bin"


def pip_install(bin_dir: Path, *args: str) -> None:
    """``pip install ARGS`` into the venv of ``bin_dir`` (with this environment's pip: the venv may have none)."""
    pip = _run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", *args], bin_dir, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the fresh venv's bin/): the wheel installed without its dependencies into a venv that sees the test
    environment's libraries (torch, Hydra) but not its mnistlab."""
    tmp = tmp_path_factory.mktemp("package")
    wheel = build_wheel(tmp)
    bin_dir = overlay_venv(tmp / "venv", Path(sys.executable))
    pip_install(bin_dir, "--no-deps", "--no-index", str(wheel))
    return wheel, bin_dir


def test_the_wheel_carries_every_config_and_the_data(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"mnistlab/conf/{p.relative_to(CONF)}" for p in CONF.rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    assert {f"mnistlab/bundled/MNIST/raw/{p.name}" for p in (ROOT / "data" / "MNIST" / "raw").glob("*.gz")} <= names


@pytest.mark.e2e
def test_installed_mnistlab_trains_from_any_directory_and_writes_nothing_into_site_packages(installed, tmp_path):
    _, bin_dir = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNISTLAB_", "PYTHONPATH"))}
    env |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}
    where = _run([str(bin_dir / "python"), "-c", "import mnistlab, pathlib; print(pathlib.Path(mnistlab.__file__).parent)"], tmp_path, env)
    package = Path(where.stdout.strip())
    assert package.parent.name == "site-packages" and str(ROOT) not in str(package), where.stdout + where.stderr
    before = _tree(package)

    work = tmp_path / "work"
    work.mkdir()
    for args in (["--help"], ["--version"], ["--cfg", "job", "model=mlp"]):
        proc = _run([str(bin_dir / "mnistlab"), *args], work, env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"mnistlab {mnistlab.__version__}" in _run([str(bin_dir / "mnistlab"), "--version"], work, env).stdout
    assert _plugins(bin_dir / "python", work, env) == PLUGINS

    proc = _run([str(bin_dir / "mnistlab"), "model=mlp", "trainer.epochs=1", "trainer.limit_batches=50", "run.plots=false"], work, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (work / "outputs" / "runs").iterdir()  # Hydra's convention: under the current directory
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final_test_acc"] > 80
    assert _tree(package) == before  # no data folder, no outputs, nothing created in the installed package

    elsewhere = tmp_path / "elsewhere"
    proc = _run(
        [str(bin_dir / "mnistlab"), "model=mlp", "trainer.epochs=1", "trainer.limit_batches=5", "run.plots=false"],
        work,
        env | {"MNISTLAB_OUTPUTS": str(elsewhere)},
    )
    assert proc.returncode == 0 and len(list((elsewhere / "runs").iterdir())) == 1, proc.stderr[-3000:]

    proc = _run(
        [str(bin_dir / "mnistlab"), "data=fashion_mnist", f"data.root={tmp_path / 'none'}", "data.download=false", "trainer.epochs=1"],
        work,
        env,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Fashion-MNIST files missing in" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
HELP_ALL = """
import contextlib, io, json, os, runpy, sys
out = {}
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    sys.path.insert(0, os.path.dirname(script))  # as Python does for a script
    stdout, stderr, code = io.StringIO(), io.StringIO(), None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as stop:
            code = stop.code
        except BaseException as err:
            code = repr(err)
    out[script] = [code, stdout.getvalue(), stderr.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, list]:
    """Every benchmark's ``--help``, run in one interpreter (one import of torch for all)."""
    scripts = [str(ROOT / "benchmarks" / name) for name in BENCHMARKS]
    proc = _run([sys.executable, "-c", HELP_ALL, *scripts], ROOT, {**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {Path(script).name: result for script, result in json.loads(proc.stdout.splitlines()[-1]).items()}


@pytest.mark.parametrize("script", BENCHMARKS)
def test_every_benchmark_starts_against_the_package(script, helps):
    """Each benchmark imports what it uses of the package and reads its arguments: a name that moved fails here."""
    code, stdout, stderr = helps[script]
    assert code == 0 and stdout.startswith("usage: "), (code, stderr[-2000:])
