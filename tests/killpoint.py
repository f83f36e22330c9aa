"""Launch ``mnistlab`` runs and SIGKILL them at chosen points, for the fault-injection tests.

``python tests/killpoint.py [--swap-writes]`` imports mnistlab once, then serves launches: each line on stdin is
a JSON ``[point, n, delay, args]``. A forked child runs ``mnistlab ARGS`` and is killed the n-th time it reaches
``point`` (or by the server after ``delay`` seconds); the child's exit status and the launch's wall time in
seconds come back as one line. ``--swap-writes`` makes every child write metrics.csv before checkpoint.pt, the
order training must never use, so that a test can show the fault test catches it.

- ``step``: before a training step (inside an epoch);
- ``evaluate``: before an evaluation pass (test or validation split);
- ``checkpoint``: after checkpoint.pt is written, before metrics.csv;
- ``metrics``: after metrics.csv is written (an epoch fully recorded);
- ``mid-write``: half-way through writing a run file (its temporary copy);
- ``none``: never.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, n: int) -> None:
    from mnistlab.runs import files, recorder
    from mnistlab.training import trainer

    calls = 0

    def due() -> bool:
        nonlocal calls
        calls += 1
        return calls == n

    def before(fn):
        def wrapped(*args, **kwargs):
            if due():
                kill()
            return fn(*args, **kwargs)

        return wrapped

    def after(fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            if due():
                kill()
            return out

        return wrapped

    def half_written(fn):
        def wrapped(path, data):
            if due():
                path.with_name(f"{path.name}.tmp").write_bytes(data[: len(data) // 2])
                kill()
            return fn(path, data)

        return wrapped

    if point == "step":
        trainer.Trainer.train_step = before(trainer.Trainer.train_step)
    elif point == "evaluate":
        trainer.evaluate = before(trainer.evaluate)
    elif point == "checkpoint":
        recorder.save_checkpoint = after(recorder.save_checkpoint)
    elif point == "metrics":
        recorder.write_metrics = after(recorder.write_metrics)
    elif point == "mid-write":
        files.write_atomic = half_written(files.write_atomic)
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")


def swap_writes() -> None:
    """Write each epoch's metrics.csv row first and its checkpoint after it (kill points stay where they are)."""
    from mnistlab.runs import recorder

    save, write = recorder.save_checkpoint, recorder.write_metrics
    pending = []

    def write_then_save(path, rows):
        write(path, rows)
        while pending:
            save(*pending.pop(0))

    recorder.save_checkpoint = lambda path, state: pending.append((path, state))
    recorder.write_metrics = write_then_save


def launch(point: str, n: int, delay: float | None, args: list[str], swap: bool = False) -> int:
    """Fork one run; returns its exit code, or minus the signal that ended it."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            arm(point, n)
            if swap:
                swap_writes()
            from mnistlab.commands.main import cli

            sys.argv = ["mnistlab", *args]
            cli()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        finally:
            os._exit(code)
    timer = threading.Timer(delay, os.kill, (pid, signal.SIGKILL)) if delay is not None else None
    if timer:
        timer.start()
    _, status = os.waitpid(pid, 0)
    if timer:
        timer.cancel()
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


if __name__ == "__main__":
    import torch

    import mnistlab.training.speed  # noqa: F401  (it notes torch's own thread count first)

    torch.set_num_threads(1)  # no OpenMP pool here: a forked child would wait forever on its missing threads
    import torch._dynamo  # noqa: F401  (every run imports it with its optimizer: 2 s, paid once here)

    import mnistlab.commands.main  # noqa: F401  (Hydra and mnistlab imported once, before any fork)
    import mnistlab.runs.task  # noqa: F401  (and torch)
    from mnistlab.data.idx import load_mnist

    load_mnist()  # read once here: every forked run finds it in its process

    swap = "--swap-writes" in sys.argv[1:]
    for line in sys.stdin:
        point, n, delay, args = json.loads(line)
        started = time.perf_counter()
        code = launch(point, n, delay, args, swap)
        print(code, time.perf_counter() - started, flush=True)
