"""What produced a run, as its summary.json records it: the code (mnistlab's version, the git commit and a hash of
the uncommitted diff when it runs from a checkout, and each module of yours a ``_target_`` came from), the data (the
SHA-256 of every file read) and the machine (CPU and instruction set, GPU, threads, torch's deterministic settings).

:func:`differences` names what differs between two records, for ``mnistlab-reproduce``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import platform
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import torch

import mnistlab
from mnistlab import paths
from mnistlab.config.targets import locate, targets
from mnistlab.data import Dataset
from mnistlab.runs import files

DATA_FILES = "data_files.json"  # every data file and its SHA-256, beside summary.json, when there are many
LISTED = 50  # at most this many data files are listed in summary.json itself
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "neon", "sve")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode(errors="replace")


@functools.lru_cache(maxsize=4)
def code(root: Path = paths.PACKAGE_DIR.parent) -> dict[str, Any]:
    """mnistlab's version and, where ``root`` (the folder above the package) is a git checkout, its commit, whether
    the tree differs from it, and a hash of that difference (the diff against the commit, and the untracked files'
    names and bytes). Once per process."""
    out: dict[str, Any] = {"mnistlab": mnistlab.__version__, "commit": None}
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != Path(root).resolve():
        return out  # an installed wheel: its version is what there is to know
    commit, status = _git(root, "rev-parse", "HEAD"), _git(root, "status", "--porcelain", "--untracked-files=all")
    if commit is None or status is None:
        return out
    digest = hashlib.sha256((_git(root, "diff", "HEAD", "--binary") or "").encode())
    for line in sorted(status.splitlines()):
        if line.startswith("??"):
            path = Path(top.strip()) / line[3:].strip()
            digest.update(line.encode())
            if path.is_file():
                digest.update(path.read_bytes())
    dirty = bool(status.strip())
    return out | {"commit": commit.strip(), "dirty": dirty, "diff_sha256": digest.hexdigest() if dirty else None}


def _own(path: Path) -> bool:
    """Whether a module file is a user's: neither mnistlab's, nor Python's, nor an installed package's."""
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    resolved = path.resolve()
    return not resolved.is_relative_to(paths.PACKAGE_DIR.resolve()) and not any(resolved.is_relative_to(p) for p in installed)


def user_modules(cfg: Any) -> dict[str, dict[str, str]]:
    """``{module: {"file", "sha256"}}`` for every module of yours that a ``_target_`` of ``cfg`` comes from."""
    out = {}
    for node in targets(cfg).values():
        target = str(node.get("_target_"))
        try:
            module = sys.modules.get(locate(target).__module__) or importlib.import_module(locate(target).__module__)
        except Exception:  # not importable here: the run's own checks have said so
            continue
        file = getattr(module, "__file__", None)
        if file and _own(Path(file)):
            out[module.__name__] = {"file": str(Path(file).resolve()), "sha256": hashlib.sha256(Path(file).read_bytes()).hexdigest()}
    return out


def _cpu() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()
    return {"model": model, "machine": platform.machine(), "isa": [f for f in ISA_FLAGS if f in flags], "torch_kernels": capability}


def machine(device: torch.device, threads: int) -> dict[str, Any]:
    """The CPU and its instruction set, the GPU and its driver if one trains, the threads, torch's deterministic settings."""
    out = {"cpu": _cpu(), "threads": threads, "system": platform.system()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda}
    out["deterministic"] = {
        "algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    return out


def data(dataset: Dataset) -> tuple[dict[str, Any], dict[str, str]]:
    """The record of the data files read (their SHA-256, or for many of them one digest of all and their count) and
    every file's SHA-256 (for ``data_files.json``)."""
    sources = dataset.sources()
    digest = hashlib.sha256("".join(f"{path}:{sha}\n" for path, sha in sorted(sources.items())).encode()).hexdigest()
    record: dict[str, Any] = {"dataset": dataset.name, "files": len(sources), "sha256": digest}
    if len(sources) <= LISTED:
        record["sources"] = sources
    return record, sources


def collect(cfg: Any, dataset: Dataset, device: torch.device, threads: int, run_dir: Path) -> dict[str, Any]:
    """A run's provenance for its summary; many data files' hashes go to ``data_files.json`` in ``run_dir``."""
    record, sources = data(dataset)
    if len(sources) > LISTED:
        files.write_atomic(run_dir / DATA_FILES, (json.dumps(sources, indent=1) + "\n").encode())
    return {
        "code": code(),
        "user_code": user_modules(cfg),
        "data": record,
        "machine": machine(device, threads),
    }


def recorded_sources(run_dir: Path, provenance: dict[str, Any]) -> dict[str, str]:
    """Every data file a run recorded and its SHA-256 (from summary.json, or ``data_files.json`` beside it)."""
    listed = provenance.get("data", {}).get("sources")
    if listed is not None:
        return dict(listed)
    try:
        return json.loads((run_dir / DATA_FILES).read_text())
    except (OSError, ValueError):
        return {}


def _short(value: Any) -> Any:
    return value[:12] if isinstance(value, str) and len(value) in (40, 64) else value  # a commit, a SHA-256


def differences(first: dict[str, Any], second: dict[str, Any]) -> dict[str, list[str]]:
    """What differs between two runs' summaries' provenance (and versions), by kind: code, data, versions, machine."""
    out: dict[str, list[str]] = {"code": [], "data": [], "versions": [], "machine": []}
    recorded = bool(first.get("provenance"))  # mnistlab 0.1 recorded none: nothing to compare but the versions
    if not recorded:
        out["code"].append("not recorded (mnistlab 0.1)")
    before, now = first.get("provenance") or {}, second.get("provenance") or {}
    before, now = before | {"versions": first.get("versions", {})}, now | {"versions": second.get("versions", {})}
    a, b = before.get("code", {}), now.get("code", {})
    for key in ("mnistlab", "commit", "dirty", "diff_sha256") if recorded else []:
        if a.get(key) != b.get(key):
            out["code"].append(f"{key} {_short(a.get(key))} -> {_short(b.get(key))}")
    for module in sorted(set(before.get("user_code", {})) | set(now.get("user_code", {}))):
        x, y = before.get("user_code", {}).get(module, {}), now.get("user_code", {}).get(module, {})
        if x.get("sha256") != y.get("sha256"):
            out["code"].append(f"{module} ({y.get('file') or x.get('file')}) changed")
    if recorded and before.get("data", {}).get("sha256") != now.get("data", {}).get("sha256"):
        out["data"].append("the data files' digest")
    for name in sorted(set(before.get("versions", {})) | set(now.get("versions", {}))):
        if before.get("versions", {}).get(name) != now.get("versions", {}).get(name):
            out["versions"].append(f"{name} {before.get('versions', {}).get(name)} -> {now.get('versions', {}).get(name)}")
    m, n = before.get("machine", {}), now.get("machine", {})
    compared = [
        ("CPU", m.get("cpu", {}).get("model"), n.get("cpu", {}).get("model")),
        ("instruction set", m.get("cpu", {}).get("torch_kernels"), n.get("cpu", {}).get("torch_kernels")),
        ("threads", m.get("threads"), n.get("threads")),
        ("GPU", (m.get("gpu") or {}).get("name"), (n.get("gpu") or {}).get("name")),
        ("deterministic settings", m.get("deterministic"), n.get("deterministic")),
    ]
    for key, x, y in compared if recorded else []:
        if x != y:
            out["machine"].append(f"{key} {x} -> {y}")
    return {kind: items for kind, items in out.items() if items}
