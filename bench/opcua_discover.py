"""Discovery benchmark: ``edgedev discover opcua`` against a server of 10,000 variables.

Starts ``bench/opcua_discover_server.py`` in a process of its own (100 objects x 100 Double
variables by default: half of them PumpType instances with metadata, in folders), then runs
``edgedev discover opcua URL -o FILE`` exactly as a user does, and prints the wall time, the
requests the command counted (its summary) and those the server counted, and what was made.
``edgedev validate`` then checks the file. Run::

    .venv/bin/python bench/opcua_discover.py --objects 100 --variables 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgedev.testing import free_port

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--variables", type=int, default=100)
    parser.add_argument("--per-request", type=int, default=None)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "opcua_discover_server.py"),
            f"--port={port}",
            f"--objects={args.objects}",
            f"--variables={args.variables}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        made = json.loads(server.stdout.readline())["ready"]
        print(f"server: {made} variables in {args.objects} objects")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "plant.yaml"
            command = [
                sys.executable,
                "-m",
                "edgedev",
                "discover",
                "opcua",
                f"opc.tcp://127.0.0.1:{port}/plant",
                "-o",
                str(out),
            ]
            if args.per_request:
                command += ["--per-request", str(args.per_request)]
            start = time.monotonic()
            found = subprocess.run(command, capture_output=True, text=True, check=False)
            seconds = time.monotonic() - start
            server.stdin.write("mark\n")
            server.stdin.flush()
            counted = json.loads(server.stdout.readline())
            print(found.stderr.split("skipped")[0].rstrip())
            print(f"wall time of the command: {seconds:.1f} s (exit {found.returncode})")
            print(f"counted at the server: {counted}")
            start = time.monotonic()
            checked = subprocess.run(
                [sys.executable, "-m", "edgedev", "validate", "-f", str(out)],
                capture_output=True,
                text=True,
                check=False,
            )
            print(f"edgedev validate: {checked.stdout.strip()} in {time.monotonic() - start:.1f} s")
            return found.returncode or checked.returncode
    finally:
        server.stdin.close()
        server.wait(30)


if __name__ == "__main__":
    sys.exit(main())
