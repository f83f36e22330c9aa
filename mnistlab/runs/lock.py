"""A lock on a run directory: whatever trains in it (a run, a sweep's job, the Python API) holds ``run.lock``.

The lock file names its holder: host, PID, SLURM job (if any) and when it started. A second launch into the
directory is refused before it writes anything, naming the holder. A holder that is gone is taken over with
one log line: a PID that no longer runs on this host, a SLURM job that no longer runs (``squeue``), or this
very SLURM job, requeued. A holder this host cannot check (another host, no SLURM) is taken as alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mnistlab.errors import OutputError, RunDirError

log = logging.getLogger("mnistlab")

LOCK_FILE = "run.lock"
# squeue's states of a job that may still run: any other (COMPLETED, CANCELLED, FAILED, ...) or none means it has ended
ACTIVE = frozenset(
    [
        "PENDING",
        "RUNNING",
        "SUSPENDED",
        "COMPLETING",
        "CONFIGURING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    ]
)


def slurm_job_id() -> str | None:
    """The SLURM job running this process as ``squeue`` shows it (``<array>_<task>`` for an array task), or None."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
    return env.get("SLURM_JOB_ID")


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    slurm_job: str | None = field(default_factory=slurm_job_id)
    since: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    def __str__(self) -> str:
        job = f", SLURM job {self.slurm_job}" if self.slurm_job else ""
        return f"host {self.host}, PID {self.pid}{job}, since {self.since}"

    def is_me(self) -> bool:
        me = Holder()
        return (self.host, self.pid) == (me.host, me.pid) or (self.slurm_job is not None and self.slurm_job == me.slurm_job)

    def gone(self) -> str | None:
        """Why the holder no longer runs, or None when it runs or this host cannot tell."""
        if self.slurm_job:
            state = _slurm_state(self.slurm_job)
            if state is not None:
                return None if state in ACTIVE else f"SLURM job {self.slurm_job} no longer runs ({state or 'not in the queue'})"
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return f"PID {self.pid} no longer runs on {self.host}"
        except PermissionError:  # another user's live process
            return None
        return None


def _slurm_state(job: str) -> str | None:
    """The job's state as ``squeue`` shows it ("" when it no longer runs), or None without a working ``squeue``."""
    if shutil.which("squeue") is None:
        return None
    try:
        proc = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return "" if "Invalid job id" in proc.stderr else None
    return proc.stdout.strip()


def read_holder(run_dir: Path) -> Holder | None:
    """The holder recorded in ``run_dir``'s lock, or None when it has none (or an unreadable one)."""
    try:
        return Holder(**json.loads((Path(run_dir) / LOCK_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def in_use(run_dir: Path) -> Holder | None:
    """The live holder of ``run_dir``, if something other than this process trains in it."""
    holder = read_holder(run_dir)
    return holder if holder is not None and not holder.is_me() and holder.gone() is None else None


def _write_new(path: Path, holder: Holder) -> bool:
    """Create the lock file holding ``holder``, complete from its first moment (a hard link of a written file);
    False when it exists."""
    tmp = path.with_name(f"{path.name}.{holder.host}.{holder.pid}")
    try:
        tmp.write_text(json.dumps(asdict(holder)))
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return True


@contextlib.contextmanager
def hold(run_dir: Path) -> Iterator[Holder]:
    """Hold ``run_dir`` while the block runs; raises RunDirError naming the holder when another process holds it."""
    path, me = Path(run_dir) / LOCK_FILE, Holder()
    while not _write_new(path, me):
        holder = read_holder(path.parent)
        if holder is not None and not holder.is_me():
            why = holder.gone()
            if why is None:
                raise RunDirError(
                    f"{run_dir} is in use by another launch ({holder}); wait for it to finish, stop it, "
                    f"or delete {path} if you know it is gone"
                )
            log.info("%s: taking over the lock of %s: %s", run_dir, holder, why)
        elif holder is not None:
            log.info("%s: taking over the lock of this job's earlier run (%s)", run_dir, holder)
        with contextlib.suppress(FileNotFoundError):  # two launches taking over at once: one of them creates it anew
            if read_holder(path.parent) == holder:
                path.unlink()
    try:
        yield me
    finally:
        if read_holder(path.parent) == me:
            with contextlib.suppress(OSError):
                path.unlink()
