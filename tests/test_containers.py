"""The images, built by ``deploy/build-images`` and run for real (marked ``container``).

The default ``pytest`` run deselects these (``-m "not container"`` in pyproject); run them with
``pytest -m container``. The engine comes from ``deploy/docker-engine``: Debian's Docker
engine with overlay2 storage where the kernel allows it, and ``docker-here`` (the shared tool
beside the repository, ``../shared/tools`` or ``../../shared/tools``) for an offline stand-in
for ``python:3.11-slim``; without docker-here, a running Docker engine
with registry access (the official base image) does. Where neither is to be had, every test
skips with the reason. Containers share the host's network: mosquitto runs on the host on a
free port, and the simulator's Modbus servers listen on the host's loopback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from edgedev import Backoff, Bus
from edgedev.bus import Message
from edgedev.testing import BrokerHandle, Recorder, device, device_model, free_port, unique_root

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
VERSION = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]  # type: ignore[index]
PROTOCOLS = ("modbus", "opcua", "ble", "gpio", "mqtt")
UID = "10001"
# What our layers may add to the base image, in MB (docs/containers.md, "Size").
BUDGET_MB = {"": 25, "modbus": 60, "opcua": 110, "ble": 60, "gpio": 65, "mqtt": 60}
STOP_TIMEOUT = 10  # seconds `docker stop` gives before SIGKILL
DATA = "/var/lib/edgedev"
BOXES = ("box-1", "box-2")  # the simulated devices
OFFLINE = "offline"  # the state a stopped mapper reports (edgedev.twin.DeviceState, issue 19)
DEVICES = "/etc/edgedev/devices.yaml"


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Docker:
    """A docker client and what `deploy/build-images` needs to build on this engine."""

    binary: str
    env: dict[str, str]
    build_options: list[str]
    base: str
    cleanup: list[list[str]] = field(default_factory=list)

    @property
    def here(self) -> bool:
        """Whether the engine is docker-here's (offline, its stand-in base image)."""
        return self.build_options == ["--here"]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
        return done

    async def run(self, *args: str, timeout: float = 120, check: bool = True) -> Any:
        """The same, off the event loop."""
        return await anyio.to_thread.run_sync(
            partial(self, *args, timeout=timeout, check=check), abandon_on_cancel=True
        )

    def container(self, *args: str) -> str:
        """``docker run -d --network host ARGS``: a container removed after the test."""
        name = f"edgedev-test-{uuid.uuid4().hex[:8]}"
        self.cleanup.append(["rm", "-f", "-v", name])
        self("run", "-d", "--name", name, "--network", "host", *args)
        return name

    def volume(self) -> str:
        """A named volume, removed after the test (after the containers that use it)."""
        name = f"edgedev-test-{uuid.uuid4().hex[:8]}"
        self("volume", "create", name)
        self.cleanup.append(["volume", "rm", "-f", name])
        return name

    def logs(self, name: str) -> str:
        done = self("logs", name, check=False)
        return tail(done.stdout + done.stderr, 40)


def start_engine() -> Docker:
    """An engine from docker-here, else a running one; skips with the reason otherwise."""
    # deploy/docker-engine: overlay2 storage where the kernel allows it, then docker-here's
    # base image; exit 3 when docker-here is absent
    engine = ROOT / "deploy" / "docker-engine"
    try:
        done = subprocess.run([str(engine)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{engine} did not start an engine within 15 minutes")
    if done.returncode == 0:  # Debian's client, with BuildKit built in (as build-images uses)
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        return Docker("/usr/bin/docker", env, ["--here"], "python:3.11-slim")
    if done.returncode != 3:
        pytest.skip(f"{engine} could not start an engine: {tail(done.stderr, 5)}")
    absent = tail(done.stderr, 2)
    binary = shutil.which("docker")
    if binary is None:
        pytest.skip(f"no container engine: {absent}; and no docker")
    done = subprocess.run([binary, "info"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(
            f"no container engine: {absent}; and `docker info` fails: {tail(done.stderr, 3)}"
        )
    return Docker(binary, {**os.environ, "DOCKER_BUILDKIT": "1"}, [], "python:3.12-slim")


@pytest.fixture(scope="module")
def built() -> Docker:
    """The engine, with every image built (sequentially, on the build cache)."""
    engine = start_engine()
    done = subprocess.run(
        [str(ROOT / "deploy" / "build-images"), *engine.build_options],
        capture_output=True,
        text=True,
        env=engine.env,
        timeout=1800,
    )
    assert done.returncode == 0, f"deploy/build-images failed:\n{tail(done.stderr, 40)}"
    return engine


@pytest.fixture
def docker(built: Docker) -> Iterator[Docker]:
    """The engine; the containers and volumes a test makes are removed after it."""
    engine = dataclasses.replace(built, cleanup=[])
    yield engine
    for args in reversed(engine.cleanup):
        engine(*args, check=False)


def image(mapper: str = "") -> str:
    return f"edgedev{'-' if mapper else ''}{mapper}:{VERSION}"


def thermostat_docs(ports: Sequence[int]) -> list[dict[str, Any]]:
    """Modbus thermostats ``plant/box-1``, ``box-2``… at ``127.0.0.1:port``, one per port.

    Each has a counter it reports and a setpoint to write.
    """
    model = device_model(
        "box-thermostat",
        "modbus",
        [
            {"name": "n", "type": "INT", "accessMode": "ReadOnly"},
            {"name": "setpoint", "type": "INT", "accessMode": "ReadWrite"},
        ],
    )
    props = [
        {
            "name": name,
            "collectCycle": 100,
            "reportCycle": 100,
            "visitors": {
                "protocolName": "modbus",
                "configData": {"register": table, "offset": 0, "limit": 1},
            },
        }
        for name, table in (("n", "InputRegister"), ("setpoint", "HoldingRegister"))
    ]
    docs = [model]
    for number, port in enumerate(ports, 1):
        config = {"ip": "127.0.0.1", "port": port}
        docs.append(device(f"box-{number}", "box-thermostat", "modbus", config, props))
    for doc in docs:
        doc["metadata"]["namespace"] = "plant"
    return docs


def devices_file(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False), encoding="utf-8")
    path.chmod(0o644)  # readable by uid 10001
    return path


@dataclass
class Fleet:
    """A devices file served by a simulator container, and the broker settings of one test."""

    file: Path
    ports: list[int]
    broker: str = ""
    root: str = ""

    def mount(self) -> list[str]:
        return ["-v", f"{self.file}:{DEVICES}:ro"]

    def bus_env(self) -> list[str]:
        return ["-e", f"EDGEDEV_BROKER={self.broker}", "-e", f"EDGEDEV_TOPIC_ROOT={self.root}"]

    def twin_updates(self, message: Message) -> bool:
        return message.topic == f"{self.root}/device/plant/box-1/twin/update"

    def topic(self, name: str, channel: str) -> Callable[[Message], bool]:
        """Matches the messages on ``channel`` (e.g. ``state/update``) of device ``name``."""
        return lambda message: message.topic == f"{self.root}/device/plant/{name}/{channel}"


@pytest.fixture(scope="module")
def simulator(built: Docker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """`edgedev simulate` in a container of the modbus image, shared by the module's tests."""
    ports = [free_port() for _ in BOXES]
    fleet = Fleet(devices_file(tmp_path_factory.mktemp("fleet"), thermostat_docs(ports)), ports)
    engine = dataclasses.replace(built, cleanup=[])
    try:
        sim = engine.container(*fleet.mount(), image("modbus"), "simulate", "-f", DEVICES)
        for port in ports:
            wait_listening(engine, sim, port)
        yield fleet
    finally:
        for args in reversed(engine.cleanup):
            engine(*args, check=False)


@pytest.fixture
def fleet(simulator: Fleet, fresh_broker: BrokerHandle) -> Fleet:
    """The simulated fleet, with a broker and a topic root of the test's own."""
    return dataclasses.replace(simulator, broker=fresh_broker.url, root=unique_root("box"))


def wait_listening(docker: Docker, name: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                message = f"{name} serves nothing on {port}:\n{docker.logs(name)}"
                raise AssertionError(message) from None
            time.sleep(0.1)


def reported(message: Message, prop: str) -> str | None:
    twin = json.loads(message.payload).get("twin", {})
    value = twin.get(prop, {}).get("actual", {}).get("value")
    return value if isinstance(value, str) else None


def pid1_uid(docker: Docker, name: str) -> str:
    status = docker("exec", name, "cat", "/proc/1/status").stdout
    return re.search(r"^Uid:\s+(\d+)", status, re.M)[1]  # type: ignore[index]


# --- the images ------------------------------------------------------------------------------


@pytest.mark.parametrize("mapper", ["", *PROTOCOLS])
def test_container_image_is_unprivileged_labelled_and_validates_its_devices(
    docker: Docker, mapper: str, tmp_path: Path
) -> None:
    """Each image: uid 10001, OCI labels, no compiler, no pip cache, and its driver loads.

    A mapper image accepts the devices of its ConfigMap (``mappers/*/deploy/devices.yaml``),
    which imports its driver (gpio: with lgpio); the core image the Modbus example's models.
    """
    ref = image(mapper)
    cfg = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", ref).stdout)
    assert cfg["User"] == f"{UID}:{UID}"
    assert cfg["Entrypoint"] == ["edgedev"]
    assert cfg["Cmd"] == (["run", "-f", DEVICES] if mapper else ["agent"])
    assert cfg.get("Healthcheck") is None  # kubelet probes the health port instead
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.title"] == ref.split(":")[0]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert "org.opencontainers.image.source" in labels
    size, base = (
        int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout)
        for ref in (ref, docker.base)
    )
    assert (size - base) / 1e6 <= BUDGET_MB[mapper], f"{ref}: {(size - base) / 1e6:.1f} MB"
    if mapper:
        deploy = ROOT / "mappers" / mapper / "deploy"
        (configmap,) = yaml.safe_load_all((deploy / "devices.yaml").read_text(encoding="utf-8"))
        text = configmap["data"]["devices.yaml"]
    else:  # the core has no driver: a file of DeviceModels only
        docs = yaml.safe_load_all((ROOT / "examples" / "modbus.yaml").read_text(encoding="utf-8"))
        text = yaml.safe_dump_all([d for d in docs if d["kind"] == "DeviceModel"])
    path = tmp_path / "devices.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    script = (
        "id -u; command -v gcc cc swig || echo no-compiler;"
        " ls -A /root/.cache/pip ~/.cache/pip 2>/dev/null | wc -l;"
        f" edgedev validate -f {DEVICES} >&2 && echo valid"
    )
    done = docker(
        "run", "--rm", "-v", f"{path}:{DEVICES}:ro", "--entrypoint", "/bin/sh", ref, "-c", script,
        check=False,
    )  # fmt: skip
    assert done.stdout.split() == [UID, "no-compiler", "0", "valid"], done.stderr


# --- running them ----------------------------------------------------------------------------


async def test_container_mapper_reports_twins_and_goes_offline_on_docker_stop(
    docker: Docker, fleet: Fleet, fresh_broker: BrokerHandle
) -> None:
    """Simulator and mapper in containers: twins arrive; `docker stop` → offline, exit 0."""
    async with Bus(fresh_broker.url) as bus, Recorder(bus, f"{fleet.root}/#") as recorder:
        mapper = docker.container(
            "--stop-timeout", str(STOP_TIMEOUT), *fleet.mount(), *fleet.bus_env(), image("modbus")
        )
        try:
            for name in BOXES:
                await recorder.wait_for(fleet.topic(name, "twin/update"), timeout=60)
        except TimeoutError:
            raise AssertionError(docker.logs(mapper)) from None
        assert pid1_uid(docker, mapper) == UID
        start = time.monotonic()
        await docker.run("stop", mapper)
        stopped = time.monotonic() - start

        def offline(name: str) -> Callable[[Message], bool]:
            def match(message: Message) -> bool:
                is_state = fleet.topic(name, "state/update")(message)
                return is_state and json.loads(message.payload)["state"] == OFFLINE

            return match

        for name in BOXES:  # published before the process exited
            await recorder.wait_for(offline(name), timeout=5)
    state = docker("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", mapper)
    assert state.stdout.split() == ["0", "false"], docker.logs(mapper)
    assert stopped < STOP_TIMEOUT, f"docker stop took {stopped:.1f} s: SIGTERM was not honoured"
    print(f"figures: docker stop of the mapper took {stopped:.1f} s")


async def test_container_agent_and_twin_set_write_the_simulators_register(
    docker: Docker, fleet: Fleet, fresh_broker: BrokerHandle
) -> None:
    """The agent image plus `edgedev twin set` from a container: the device is written."""
    from pymodbus.client import AsyncModbusTcpClient

    volume = docker.volume()
    async with Bus(fresh_broker.url) as bus, Recorder(bus, f"{fleet.root}/#") as recorder:
        # as the manifest runs it: no devices file, it learns the twins the mapper reports
        agent = docker.container(
            "--read-only", "-v", f"{volume}:{DATA}", *fleet.bus_env(), image()
        )  # fmt: skip
        mapper = docker.container(*fleet.mount(), *fleet.bus_env(), image("modbus"))
        document = f"{fleet.root}/device/plant/box-1/twin/update/document"
        try:
            await recorder.wait_for(lambda m: m.topic == document, timeout=60)
        except TimeoutError:
            raise AssertionError(f"{docker.logs(agent)}\n{docker.logs(mapper)}") from None
        done = await docker.run(
            "run", "--rm", "--network", "host", *fleet.bus_env(), image(),
            "twin", "set", "plant/box-1", "setpoint=42", "--timeout", "20", check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{docker.logs(agent)}"
        message = await recorder.wait_for(
            lambda m: fleet.twin_updates(m) and reported(m, "setpoint") == "42", timeout=30
        )
        assert message
    client = AsyncModbusTcpClient("127.0.0.1", port=fleet.ports[0])
    await client.connect()
    try:
        answer = await client.read_holding_registers(0, count=1, device_id=1)
    finally:
        client.close()
    assert answer.registers == [42]
    assert pid1_uid(docker, agent) == UID
    # the agent keeps its twins in the volume, the only place it may write
    listing = docker("exec", agent, "ls", DATA).stdout.split()
    assert "twins.db" in listing


async def test_container_queue_on_a_volume_survives_docker_kill(
    docker: Docker, fleet: Fleet, fresh_broker: BrokerHandle
) -> None:
    """Readings queued on disk during an outage by a killed container arrive from the next."""
    volume = docker.volume()
    mountpoint = docker("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout
    queue = Path(mountpoint.strip()) / "outbox.sqlite3"
    args = ["--read-only", "-v", f"{volume}:{DATA}", *fleet.mount(), *fleet.bus_env()]
    subscriber = Bus(fresh_broker.url, backoff=Backoff(0.05, 0.2))
    async with subscriber, Recorder(subscriber, f"{fleet.root}/#") as recorder:
        first = docker.container(*args, image("modbus"))
        try:
            await recorder.wait_count(fleet.twin_updates, 2, timeout=60)
        except TimeoutError:
            raise AssertionError(docker.logs(first)) from None
        fresh_broker.stop()
        with anyio.fail_after(60):  # the queue is a file: polled
            while True:
                if len(queued_readings(queue)) >= 10:
                    break
                await anyio.sleep(0.2)
        await docker.run("kill", first)
        survived = queued_readings(queue)  # what the killed container left on the volume
        assert len(survived) >= 10
        print(f"figures: {len(survived)} queued readings survived docker kill")
        docker("rm", first)
        fresh_broker.start()
        with anyio.fail_after(30):
            await subscriber.wait_connected()
        second = docker.container(*args, image("modbus"))

        def missing() -> set[tuple[str, int]]:
            reports = (m for m in recorder.messages if m.topic.endswith("/twin/update"))
            return survived - {(m.topic, stamp(json.loads(m.payload))) for m in reports}

        try:
            with anyio.fail_after(60):
                while missing():
                    await recorder.wait_for(
                        fleet.twin_updates, after=len(recorder.messages), timeout=60
                    )
        except TimeoutError:
            raise AssertionError(
                f"{len(missing())} of {len(survived)} queued readings did not arrive\n"
                f"{docker.logs(second)}"
            ) from None


def stamp(payload: dict[str, Any]) -> int:
    """When the counter ``n`` in a twin/update payload was read (0 when absent)."""
    entry = payload.get("twin", {}).get("n", {})
    return int(entry.get("actual", {}).get("metadata", {}).get("timestamp", 0))


def queued_readings(path: Path) -> set[tuple[str, int]]:
    """Topic and read time of ``n`` of each twin/update in a mapper's on-disk queue."""
    query = "SELECT topic, payload FROM outbox WHERE topic LIKE '%/twin/update'"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute(query).fetchall()
    except sqlite3.Error:
        return set()
    readings = {(topic, stamp(json.loads(payload))) for topic, payload in rows}
    return {(topic, ts) for topic, ts in readings if ts}


@pytest.mark.slow
def test_container_arm64_image_validates_under_emulation(docker: Docker) -> None:
    """The modbus image for arm64, built and run under QEMU user emulation."""
    build = ["--platform", "linux/arm64", "--build-arg", "MAPPER=modbus"]
    if docker.here:  # no registry: an arm64 stand-in for the base image, made here
        tool = ROOT / "tests" / "tools" / "arm64-standin"
        done = subprocess.run(
            [str(tool)], capture_output=True, text=True, env=docker.env, timeout=1800
        )
        if done.returncode == 3:
            pytest.skip(tail(done.stderr, 3))
        assert done.returncode == 0, tail(done.stderr)
        build += [
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={tail(done.stdout, 1).split()[1]}",
        ]
    ref = f"edgedev-modbus:{VERSION}-arm64"
    docker("build", *build, "-t", ref, str(ROOT), timeout=1800)
    assert (
        docker("image", "inspect", "--format", "{{.Architecture}}", ref).stdout.strip() == "arm64"
    )
    machine = docker("run", "--rm", "--platform", "linux/arm64", "--entrypoint", "uname", ref, "-m")
    assert machine.stdout.strip() == "aarch64"
    example = ROOT / "examples" / "modbus.yaml"
    done = docker(
        "run", "--rm", "--platform", "linux/arm64", "-v", f"{example}:{DEVICES}:ro", ref,
        "validate", "-f", DEVICES,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    host = subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-f", str(example)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == host.stdout  # the same devices and properties found
