"""Run a preserve command and kill it with SIGKILL at an exact moment: on the Nth call of a
function of preserve's (`python -m tests.killer MODULE:QUALNAME N preserve-args...`).
No clean-up handler, no `finally` runs: what is left is what a power cut or the OOM
killer would leave. The fault tests use it to reach the moments a timer hits by luck."""

from __future__ import annotations

import importlib
import os
import signal
import sys


def arm(target: str, nth: int) -> None:
    module_name, qualname = target.split(":")
    owner = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


if __name__ == "__main__":
    arm(sys.argv[1], int(sys.argv[2]))
    from preserve.cli import main

    main(sys.argv[3:])
