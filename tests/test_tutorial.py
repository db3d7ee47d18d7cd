"""The README tutorial and the walkthroughs of the docs, run as written.

So the docs cannot drift.

The shell blocks of each tutorial are taken from the Markdown and run line by line, the way
a reader types them into one terminal: a line ending in ``&`` starts a command in the
background (the next line waits until it says it is ready), ``edgedev watch`` and
``edgedev view`` run until Ctrl-C (here: until watch has printed a few lines, and until the
view's page has answered), and a ``# exit N`` comment is the exit code
the reader is promised. The commands use the fixed ports the docs give (1883, 5020, 5021):
they run in a network namespace of their own (``unshare -n``) so that nothing else on the
machine is in their way, and with nothing but edgedev on the ``PATH`` (no mosquitto).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

READY = {
    "edgedev broker": "listening on",
    "edgedev simulate": "Ctrl-C stops",
    "edgedev run": "started",
    "edgedev agent": "serving",
    "edgedev demo": "demo broker:",
}
"""What a background command prints once a reader would see it working."""

SETUP = re.compile(
    r"^(python3 -m venv|\S*pip install|curl |sudo |mkdir |docker |kubectl |edgedev completion )"
)
"""Set-up lines the test does not repeat (the test already runs in an installed clone)."""


@dataclass(frozen=True)
class Step:
    """One line of a tutorial: the command, whether it runs in the background, its exit code."""

    command: str
    background: bool
    exit_code: int | None


def steps(markdown: Path, first: str, last: str) -> list[Step]:
    """The shell lines between the headings ``first`` and ``last`` of ``markdown``."""
    text = markdown.read_text(encoding="utf-8")
    section = text[text.index(first) : text.index(last)]
    found = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for raw in block.splitlines():
            command, _, comment = raw.partition("  #")
            command = command.strip()
            if not command or command.startswith("#") or SETUP.match(command):
                continue
            expected = re.match(r"\s*exit (\d+)", comment)
            background = command.endswith("&")
            found.append(
                Step(
                    command.rstrip("&").strip(),
                    background,
                    int(expected.group(1)) if expected else None,
                )
            )
    return found


RUNNER = r"""
import json, os, re, select, signal, subprocess, sys, time, urllib.request

steps, ready, workdir = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
env = dict(os.environ)
background, results = [], []


def read_until(proc, pattern, seconds):
    # os.read on the descriptor: a buffered readline() would hide lines from select()
    seen, deadline, fd = "", time.monotonic() + seconds, proc.stdout.fileno()
    while pattern not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
    return seen


try:
    for command, is_background, _ in steps:
        if command.startswith("source "):
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
            results.append({"command": command, "code": 0, "output": ""})
            continue
        if command.startswith(".venv/bin/"):
            command = os.path.join(os.path.dirname(sys.executable), command[len(".venv/bin/"):])
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + command], cwd=workdir, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        if is_background:
            pattern = next((v for k, v in ready.items() if command.startswith(k)), "\n")
            output = read_until(proc, pattern, 30)
            background.append(proc)
            results.append({"command": command, "code": None, "output": output,
                            "ready": pattern in output})
        elif command.startswith("edgedev view"):
            output = read_until(proc, "web view: http://", 30)
            url = re.search(r"web view: (http://\S+)", output)
            page = urllib.request.urlopen(url.group(1), timeout=10).read() if url else b""
            proc.send_signal(signal.SIGINT)
            output += proc.communicate(timeout=15)[0].decode(errors="replace")
            results.append({"command": command, "code": proc.returncode, "output": output,
                            "page": len(page)})
        elif command.startswith("edgedev watch"):
            output = ""
            deadline = time.monotonic() + 30
            while output.count("\n") < 3 and time.monotonic() < deadline:
                output += read_until(proc, "\n", 1)
            proc.send_signal(signal.SIGINT)
            output += proc.communicate(timeout=15)[0].decode(errors="replace")
            results.append({"command": command, "code": proc.returncode, "output": output})
        else:
            output = proc.communicate(timeout=120)[0].decode(errors="replace")
            results.append({"command": command, "code": proc.returncode, "output": output})
finally:  # a step that fails must not leave the servers running
    for proc in reversed(background):
        proc.send_signal(signal.SIGTERM)
        try:
            output = proc.communicate(timeout=20)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
        results.append({"command": "stop " + " ".join(proc.args[2:]), "code": proc.returncode,
                        "output": output})
print(json.dumps(results))
"""


def run_tutorial(tmp_path: Path, tutorial: list[Step]) -> list[dict[str, object]]:
    """Run ``tutorial`` in a private network namespace, in a copy of the examples."""
    if sys.platform != "linux" or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs Linux with unshare and ip (iproute2) for a private network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.decode().strip()}")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEDEV_")}
    env["PATH"] = "/usr/bin:/bin"  # no mosquitto, no edgedev until `source .venv/bin/activate`
    proc = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            "-c",
            RUNNER,
            json.dumps([(s.command, s.background, s.exit_code) for s in tutorial]),
            json.dumps(READY),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, object]] = json.loads(proc.stdout.splitlines()[-1])
    return results


def check(tutorial: list[Step], results: list[dict[str, object]]) -> None:
    """Every step did what the docs say; the background commands stopped cleanly."""
    transcript = "\n".join(f"$ {r['command']} -> {r['code']}\n{r['output']}" for r in results)
    for step, result in zip(tutorial, results, strict=False):
        if step.background:
            assert result["ready"], f"{step.command} never became ready\n{transcript}"
        elif step.command.startswith("edgedev watch"):
            lines = str(result["output"]).splitlines()
            assert len(lines) >= 3 and result["code"] == 0, transcript
        elif step.command.startswith("edgedev view"):
            assert result["page"] and result["code"] == 0, transcript
        else:
            want = 0 if step.exit_code is None else step.exit_code
            assert result["code"] == want, f"{step.command}: exit {result['code']}\n{transcript}"
    for result in results[len(tutorial) :]:
        assert result["code"] == 0, f"{result['command']} did not stop cleanly\n{transcript}"


@pytest.mark.needs("edgedev_modbus", "uvicorn")  # the tutorial ends with `edgedev view`
@pytest.mark.slow
def test_the_readme_tutorial_runs_as_written(tmp_path: Path) -> None:
    tutorial = steps(ROOT / "README.md", "## Tutorial", "### Other protocols")
    commands = [s.command for s in tutorial]
    assert "edgedev broker" in commands and any(c.startswith("edgedev twin set") for c in commands)
    assert not any("mosquitto" in c for c in commands), "the tutorial needs no mosquitto"
    results = run_tutorial(tmp_path, tutorial)
    check(tutorial, results)
    outputs = {str(r["command"]): str(r["output"]) for r in results}
    assert "refused (400)" in outputs["edgedev twin set demo/thermostat-1 temperature=3"]
    assert "tcp 127.0.0.1:5020" in outputs["edgedev simulate -f examples/modbus.yaml"]
    assert (
        "started 2 devices"
        in outputs["edgedev run -f examples/modbus.yaml --broker mqtt://127.0.0.1:1883"]
    )


@pytest.mark.needs("edgedev_modbus")
@pytest.mark.slow
def test_getting_started_runs_as_written(tmp_path: Path) -> None:
    tutorial = steps(ROOT / "docs/getting-started.md", "## 1. Install", "## 3. Build the images")
    assert any(s.command.startswith(".venv/bin/edgedev demo") for s in tutorial)
    results = run_tutorial(tmp_path, tutorial)
    check(tutorial, results)


@pytest.mark.needs("edgedev_opcua", "edgedev_modbus")
@pytest.mark.slow
def test_the_discovery_walkthrough_runs_as_written(tmp_path: Path) -> None:
    tutorial = steps(ROOT / "docs/discovery.md", "## Walkthrough", "## What every protocol")
    assert [s.command.split()[1] for s in tutorial if s.background] == [
        "simulate",
        "broker",
        "run",
        "simulate",
        "run",
    ]
    results = run_tutorial(tmp_path, tutorial)
    check(tutorial, results)
    outputs = {str(r["command"]): str(r["output"]) for r in results}
    found = next(v for k, v in outputs.items() if k.startswith("edgedev discover opcua"))
    assert "made 1 DeviceModel, 1 Device and 6 properties" in found
    assert "boiler-1" in (tmp_path / "plant.yaml").read_text()
    assert "boiler-1" in outputs["edgedev watch"]
    found = next(v for k, v in outputs.items() if k.startswith("edgedev discover modbus"))
    assert "probed 1 unit ids: 1 answered (1)" in found
    assert "holding_0" in outputs["edgedev watch default/127-0-0-1-unit-1"]


@pytest.mark.needs("edgedev_gpio")
@pytest.mark.slow
def test_the_gpio_quick_start_runs_as_written(tmp_path: Path) -> None:
    tutorial = steps(ROOT / "docs/protocols/gpio.md", "## Quick start", "Each press of")
    assert [s.command.split()[1] for s in tutorial if s.background] == ["broker", "agent", "run"]
    results = run_tutorial(tmp_path, tutorial)
    check(tutorial, results)
    outputs = {str(r["command"]): str(r["output"]) for r in results}
    assert "refused (400)" in outputs["edgedev twin set demo/pi-panel-1 button=true"]
    assert "demo/pi-panel-1" in outputs["edgedev watch demo/pi-panel-1"]


def test_the_tutorial_steps_are_found() -> None:
    """The parser reads the README the way the reader would (a quick check without a network)."""
    tutorial = steps(ROOT / "README.md", "## Tutorial", "### Other protocols")
    assert tutorial[0] == Step("source .venv/bin/activate", False, None)
    refused = next(s for s in tutorial if "temperature=3" in s.command)
    assert refused.exit_code == 1
    assert [s.command.split()[1] for s in tutorial if s.background] == [
        "simulate",
        "broker",
        "run",
        "agent",
    ]


@pytest.mark.needs("edgedev_modbus")
@pytest.mark.slow
def test_the_sparkplug_walkthrough_runs_as_written(tmp_path: Path) -> None:
    tutorial = steps(ROOT / "docs/sparkplug.md", "## Try it", "## Topics")
    assert [s.command.split()[1] for s in tutorial] == [
        ".venv/bin/activate",
        "broker",
        "demo",
        "watch",
    ]
    results = run_tutorial(tmp_path, tutorial)
    check(tutorial, results)
    watched = next(
        str(r["output"]) for r in results if str(r["command"]).startswith("edgedev watch")
    )
    assert "demo/edge1" in watched, watched
