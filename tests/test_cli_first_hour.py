"""What a newcomer sees from the command line: every message says what happened and who to blame."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from edgedev._logging import setup_logging
from edgedev._plugins import install_hint
from edgedev._text import plural
from edgedev.broker import EmbeddedBroker
from edgedev.bus import Bus
from edgedev.bus._topics import Channel, Topics
from edgedev.cli import build_parser, main
from edgedev.cli._watch import describe
from edgedev.testing import Recorder, edgedev_process, free_port
from edgedev.view._state import TwinView
from edgedev.wire import desired_update, state_update, twin_report

ROOT = Path(__file__).resolve().parents[1]
WAIT = 20.0


def edgedev(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgedev", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_counts_read_as_words() -> None:
    assert [plural(n, "device") for n in (0, 1, 2)] == ["0 devices", "1 device", "2 devices"]
    assert plural(1, "property", "properties") == "1 property"
    assert plural(3, "property", "properties") == "3 properties"


@pytest.mark.needs("edgedev_modbus")
def test_validate_says_how_many_in_words() -> None:
    done = edgedev("validate", "-f", str(ROOT / "examples/modbus.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 2 devices, ") and "in 1 file" in done.stdout


def test_install_hints_work_from_a_clone() -> None:
    # this test runs from a clone: the hint is the mapper's folder, installable as it is
    hint = install_hint("modbus")
    assert hint is not None
    assert hint.startswith("pip install ") and hint.endswith("mappers/modbus")
    assert (Path(hint.removeprefix("pip install ")) / "pyproject.toml").is_file()
    mqtt = install_hint("mqtt")  # issue 27: the mapper it names exists
    assert (
        mqtt is not None and (Path(mqtt.removeprefix("pip install ")) / "pyproject.toml").is_file()
    )
    assert install_hint("no-such-protocol") is None  # no edgedev-no-such-protocol to install


def test_logging_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    for argv in (["-q", "validate", "-f", "x"], ["validate", "-f", "x", "-q"]):
        args = parser.parse_args(argv)
        assert args.quiet and args.log_format == "text" and args.verbose == 0
    args = parser.parse_args(["run", "-f", "x", "--log-format", "json", "-v"])
    assert (args.log_format, args.verbose, args.quiet) == ("json", 1, False)


def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(0, log_format="json", default=logging.INFO)
    try:
        logging.getLogger("edgedev.mapper").info("device %s online", "demo/x")
        logging.getLogger("edgedev.mapper").debug("not shown at INFO")
    finally:
        setup_logging(0)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "info" and entry["message"] == "device demo/x online"
    assert entry["logger"] == "edgedev.mapper" and entry["time"].endswith("+00:00")


def test_completion_scripts_know_the_commands() -> None:
    for shell in ("bash", "zsh"):
        done = edgedev("completion", shell)
        assert done.returncode == 0, done.stderr
        for command in ("run", "simulate", "validate", "twin", "watch", "broker"):
            assert command in done.stdout


def test_watch_says_one_line_per_update_with_desired_and_pending_marked() -> None:
    topics = Topics("$hw/events")
    view = TwinView(topics)
    dev = "demo/thermostat-1"

    def line(channel: Channel, payload: bytes) -> str | None:
        return describe(view, topics.device(dev, channel), payload, 0.0)

    report = twin_report([("temperature", "20.5", "float", 1), ("setpoint", "21.0", "float", 1)])
    stamp = dt.datetime.fromtimestamp(0.0).strftime("%H:%M:%S.000")
    assert line(Channel.TWIN_UPDATE, report) == f"{stamp} {dev} temperature=20.5  setpoint=21.0"
    asked = line(Channel.TWIN_UPDATE, desired_update({"setpoint": "24"}, event_id="e1"))
    assert asked is not None and asked.endswith("setpoint: desired 24 asked")
    # the agent's echoes of an accepted update add nothing: no line
    assert line(Channel.TWIN_RESULT, b'{"event_id":"e1","twin":{}}') is None
    delta = b'{"event_id":"d","delta":{"setpoint":"24"},"twin":{}}'
    assert str(line(Channel.TWIN_DELTA, delta)).endswith("delta: write setpoint=24")
    pending = line(Channel.TWIN_UPDATE, twin_report([("setpoint", "21.0", "float", 2)]))
    assert str(pending).endswith("setpoint=21.0 (desired 24, pending)")
    done = line(Channel.TWIN_UPDATE, twin_report([("setpoint", "24.0", "float", 3)]))
    assert str(done).endswith("setpoint=24.0")
    assert str(line(Channel.STATE_UPDATE, state_update("offline"))).endswith(f"{dev} offline")
    refused = b'{"event_id":"e2","code":400,"reason":"property \'temperature\' is ReadOnly"}'
    assert str(line(Channel.TWIN_RESULT, refused)).endswith(
        "refused (400): property 'temperature' is ReadOnly"
    )
    assert str(line(Channel.TWIN_UPDATE, b"{not json")).endswith("a malformed message (9 bytes)")


def test_twin_get_blames_the_broker_when_it_is_down() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    done = edgedev("twin", "get", "demo/thermostat-1", "--broker", url, "--timeout", "1")
    assert done.returncode == 2
    assert f"the MQTT broker at {url} was not reached within 1 s" in done.stderr
    assert "agent" not in done.stderr.split("(")[0]


@pytest.mark.broker
async def test_twin_get_blames_the_agent_when_the_broker_is_up(mqtt_url: str) -> None:
    done = await anyio.to_thread.run_sync(
        lambda: edgedev("twin", "get", "demo/nobody", "--broker", mqtt_url, "--timeout", "1")
    )
    assert done.returncode == 2
    assert "is up, but no twin agent answered for demo/nobody within 1 s" in done.stderr


async def test_the_embedded_broker_keeps_retained_messages_across_restarts(
    tmp_path: Path,
) -> None:
    store = tmp_path / "retained.json"
    topic = "$hw/events/node/n1/membership/updated"
    async with EmbeddedBroker(persistence=store) as broker, Bus(broker.url) as bus:
        await bus.wait_connected()
        bus.publish(topic, b'{"kept":true}', retain=True)
        with anyio.fail_after(WAIT):
            await bus.flush()
    assert store.is_file()
    async with (
        EmbeddedBroker(persistence=store) as broker,
        Bus(broker.url) as bus,
        Recorder(bus, topic) as recorder,
    ):
        message = await recorder.wait_for(lambda m: m.topic == topic, timeout=WAIT)
    assert message.payload == b'{"kept":true}'


def test_broker_command_prints_its_url_and_how_to_attach() -> None:
    port = free_port()
    with edgedev_process("broker", "--port", str(port)) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
    assert lines[0] == f"edgedev broker listening on mqtt://127.0.0.1:{port}\n"
    assert f"edgedev watch --broker mqtt://127.0.0.1:{port}" in lines[2]
    assert proc.returncode == 0


@pytest.mark.needs("edgedev_modbus")
def test_main_runs_a_command_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", str(ROOT / "examples/modbus.yaml"), "-q"]) == 0
    assert capsys.readouterr().out.startswith("ok: 2 devices")


@pytest.mark.broker
async def test_watch_into_a_reader_that_leaves_ends_quietly(mqtt_url: str) -> None:
    # `edgedev watch | head -1`: the reader closes the pipe after one line
    topic = Topics("$hw/events").device("demo/thermostat-1", Channel.TWIN_UPDATE)
    command = [sys.executable, "-m", "edgedev", "watch", "--broker", mqtt_url]
    started = functools.partial(
        subprocess.Popen, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with await anyio.to_thread.run_sync(started) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        async with Bus(mqtt_url) as bus, anyio.create_task_group() as tg:

            async def publish_until_it_ends() -> None:
                # watch prints once it is subscribed, and each new value: one a tick
                for tick in range(10_000):
                    bus.publish(topic, twin_report([("temperature", f"{tick}.5", "float", 1)]))
                    await anyio.sleep(0.05)

            tg.start_soon(publish_until_it_ends)
            with anyio.fail_after(WAIT):
                first = await anyio.to_thread.run_sync(proc.stdout.readline)
                proc.stdout.close()
                returncode = await anyio.to_thread.run_sync(proc.wait)
            tg.cancel_scope.cancel()
        errors = proc.stderr.read()
    assert b"demo/thermostat-1 temperature=" in first
    assert returncode == 141  # as a shell reports a command ended by SIGPIPE
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors


def _bash_blocks(page: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)


def test_the_completion_commands_of_getting_started_work_in_a_new_account(tmp_path: Path) -> None:
    # a new account has no ~/.local/share/bash-completion/completions
    block = next(
        b for b in _bash_blocks(ROOT / "docs/getting-started.md") if "completion bash" in b
    )
    env = {"HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "-e", "-c", block], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".local/share/bash-completion/completions/edgedev"
    loaded = subprocess.run(
        ["bash", "-c", f"source {script} && complete -p edgedev"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "edgedev" in loaded.stdout
