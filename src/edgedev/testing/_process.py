"""``edgedev`` commands as child processes, for tests of the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def edgedev_process(
    *args: str, output: bool = True, stop_timeout: float = 15.0
) -> Iterator[subprocess.Popen[str]]:
    """Run ``edgedev ARGS`` in a child process; SIGTERM (then SIGKILL) stops it at the end.

    Args:
        args: the command line after ``edgedev``.
        output: pipe stdout and stderr together to ``proc.stdout``; when false they are
            discarded (a child whose pipe nobody reads would block once it fills).
        stop_timeout: seconds the child has to exit after SIGTERM before it is killed.
    """
    sink = subprocess.PIPE if output else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedev", *args],
        stdout=sink,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
