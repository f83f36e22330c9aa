"""Launch mnistlab's console scripts as forked processes of a server that imported them once (the tests' ``run_cli``).

``python tests/forkserver.py`` imports mnistlab, Hydra, torch and its optimizers' torch._dynamo (about 3 s a
process), then serves launches: each line on stdin is a JSON ``[script, args, cwd, env, timeout, out, err]``. A
forked child takes the environment, the working directory and ``PYTHONPATH`` given, writes its stdout and stderr
to the files ``out`` and ``err``, and runs the script's entry point as the console script would, with its own
PID, its own Hydra and fresh state; its exit code (minus the signal that ended it) comes back as one line.
Tests that need the interpreter itself (``python -m mnistlab``, signals, the installed scripts) start a real one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

SCRIPTS = {
    "mnistlab": "mnistlab.commands.main:cli",
    "mnistlab-report": "mnistlab.commands.report:cli",
    "mnistlab-eval": "mnistlab.commands.score:cli",
    "mnistlab-predict": "mnistlab.commands.predict:cli",
    "mnistlab-export": "mnistlab.commands.export:cli",
    "mnistlab-reproduce": "mnistlab.commands.reproduce:cli",
}


def child(script: str, args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    code = 1
    try:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        module, name = SCRIPTS[script].split(":")
        import importlib

        sys.argv = [script, *args]
        entry = getattr(importlib.import_module(module), name)
        result = entry()
        code = result if isinstance(result, int) else 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def launch(script: str, args: list[str], cwd: str, env: dict[str, str], timeout: float, out: str, err: str) -> int:
    pid = os.fork()
    if pid == 0:
        child(script, args, cwd, env, out, err)
    timer = threading.Timer(timeout, os.kill, (pid, signal.SIGKILL))
    timer.start()
    _, status = os.waitpid(pid, 0)
    timer.cancel()
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


if __name__ == "__main__":
    import torch

    import mnistlab.training.speed  # noqa: F401  (it notes torch's own thread count first)

    torch.set_num_threads(1)  # nothing here starts a thread pool a forked child could inherit half of
    import torch._dynamo  # noqa: F401  (what every run's optimizer imports)

    import mnistlab.commands.main  # noqa: F401
    import mnistlab.runs.task  # noqa: F401
    from mnistlab.data.idx import load_mnist

    load_mnist()  # read once: every forked run finds it in its process
    for line in sys.stdin:
        request = json.loads(line)
        print(launch(*request), flush=True)
