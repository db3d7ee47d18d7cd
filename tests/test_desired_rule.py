"""One rule for desired values, at the agent, the mapper, the REST API and validate.

The cases of issues 31 and 32, each as it was met: ``twin set ... heating=1`` on a BOOLEAN
(accepted, written, then never reported: pending for good), ``setpoint=22.55555`` on a
register with scale 0.1 (accepted, then the register held 22.6: pending for good), and
``opening="40 "`` (accepted, written, then left out of every report). Each is refused before
anything is stored or written, with the reason and, where there is one, the value to give.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from edgedev import DeviceSpec, WriteRefused, load_devices
from edgedev.agent import AgentCore
from edgedev.bus._outbox import Message
from edgedev.bus._topics import Channel, Topics
from edgedev.drivers import Driver, check_desired, drivers
from edgedev.mapper import DesiredWriter, ReportSink
from edgedev.testing import device as make_device
from edgedev.testing import device_model, device_property, free_port, load_documents
from edgedev.twin import WriteFailure
from edgedev.wire import desired_refusal, desired_update
from edgedev_modbus import ModbusDriver, ModbusSimulator
from edgedev_modbus.codec import Table
from twin_helpers import (
    DEVICE,
    agent_running,
    mapper_running,
    observer,
    root,
    thermostat_docs,
    write_yaml,
)

pytestmark = pytest.mark.needs("edgedev_modbus")

T = Topics("r")
WAIT = 20
ROOT = Path(__file__).resolve().parents[1]


def docs(port: int) -> list[Any]:
    """The thermostat of twin_helpers with a BOOLEAN on a coil, as the demo's ``heating``."""
    found = thermostat_docs(port)
    found[0]["spec"]["properties"].append({"name": "heating", "type": "BOOLEAN"})
    found[1]["spec"]["properties"].append(
        {
            "name": "heating",
            "collectCycle": 200,
            "visitors": {
                "protocolName": "modbus",
                "configData": {"register": "CoilRegister", "offset": 0, "limit": 1},
            },
        }
    )
    return found


def device(tmp_path: Path, **setpoint: Any) -> DeviceSpec:
    """The device; ``setpoint``: keys of the setpoint's visitor to change, ``None`` drops one."""
    found = docs(free_port())
    config = found[1]["spec"]["properties"][0]["visitors"]["configData"]
    config.update(setpoint)
    for key in [k for k, v in config.items() if v is None]:
        del config[key]
    if setpoint:
        del found[0]["spec"]["properties"][0]["maximum"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (spec,) = load_devices([write_yaml(tmp_path, found)])
    return spec


# the rule, pure -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("heating", "1", "'1' is not a boolean: give true or false"),
        ("heating", "True", "'True' is not a boolean: give true or false"),
        (
            "setpoint",
            "22.55555",
            "the device cannot hold 22.55555 exactly; the nearest value it holds is 22.6",
        ),
        ("level", "40 ", "'40 ' has white space around it (give '40')"),
        ("level", " 40", "' 40' has white space around it (give '40')"),
        ("level", "40.0", "EdgeCore refuses '40.0' as an int"),
        ("level", "1_0", "EdgeCore refuses '1_0' as an int"),
        ("setpoint", "2.25E+1", "EdgeCore refuses the character '+'"),
        ("level", "101", "101 is above the maximum 100"),
        ("temp", "20", "property 'temp' is ReadOnly"),
    ],
)
def test_the_rule_refuses_what_could_never_be_reported(
    tmp_path: Path, name: str, text: str, why: str
):
    spec = device(tmp_path)
    with pytest.raises(WriteRefused) as refused:
        check_desired(spec.id, name, spec.property(name), text, ModbusDriver)
    assert why in str(refused.value)


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("heating", "true", True),
        ("heating", "false", False),
        ("setpoint", "22.6", 22.6),
        ("setpoint", "22.60", 22.6),  # reported back in its own text: "22.60"
        ("setpoint", "2.26e1", 22.6),
        ("level", "40", 40),
        ("level", "-0", 0),
    ],
)
def test_the_rule_takes_what_the_device_holds_and_a_report_carries(
    tmp_path: Path, name: str, text: str, value: object
):
    spec = device(tmp_path)
    assert check_desired(spec.id, name, spec.property(name), text, ModbusDriver) == value


def test_a_driver_without_the_hook_holds_any_value_and_texts_are_checked_anyway(tmp_path: Path):
    spec = device(tmp_path)
    assert check_desired(spec.id, "setpoint", spec.property("setpoint"), "22.55555") == 22.55555
    assert Driver.held_value(spec.property("setpoint"), 1.5) == 1.5
    assert desired_refusal("heat pump", "STRING") is not None  # a space: no report carries it
    assert desired_refusal("heat-pump", "STRING") is None


def test_float32_and_integer_ranges_say_what_the_register_holds(tmp_path: Path):
    f32 = device(tmp_path / "f32", scale=None, dataType="float32", limit=2)
    setpoint = f32.property("setpoint")
    assert ModbusDriver.held_value(setpoint, 22.55555) == 22.55555  # float32 keeps 7 digits
    with pytest.raises(WriteRefused, match=r"nearest value it holds is 31\.415926$"):
        check_desired(f32.id, "setpoint", setpoint, "31.4159265", ModbusDriver)
    int16 = device(tmp_path / "int16", scale=0.1)  # no maximum: the register's range decides
    with pytest.raises(WriteRefused, match="does not fit int16"):
        check_desired(int16.id, "setpoint", int16.property("setpoint"), "3276.8", ModbusDriver)


# the agent --------------------------------------------------------------------------------------
def agent(tmp_path: Path, with_files: bool = True) -> AgentCore:
    core = AgentCore(T, "edge-1")
    if with_files:
        core.adopt([device(tmp_path)], now=500)
    return core


def update(core: AgentCore, desired: dict[str, str], **types: str) -> dict[str, Any]:
    body = json.loads(desired_update(desired, event_id="e"))
    for name, type_ in types.items():
        body["twin"][name]["metadata"] = {"type": type_}
    replies = core.handle(
        Message(T.device(DEVICE, Channel.TWIN_UPDATE), json.dumps(body).encode()), 1000
    )
    (result,) = [
        json.loads(r.message.payload) for r in replies if r.message.topic.endswith("/result")
    ]
    return result


def test_the_agent_refuses_each_case_with_400_and_stores_nothing(tmp_path: Path):
    core = agent(tmp_path)
    for desired, why in (
        ({"heating": "1"}, "heating: '1' is not a boolean: give true or false"),
        ({"setpoint": "22.55555"}, "nearest value it holds is 22.6"),
        ({"level": "40 "}, "level: '40 ' has white space around it (give '40')"),
        ({"level": "40", "heating": "1"}, "give true or false"),  # all or nothing
    ):
        result = update(core, desired)
        assert result["code"] == 400 and why in result["reason"], result
    twin = core.records[DEVICE].twin.properties
    assert all(twin[n].desired is None for n in ("heating", "setpoint", "level"))
    assert core.refused["desired"] == 4
    assert update(core, {"heating": "true", "setpoint": "22.6", "level": "40"}).get("code") is None


def test_an_agent_without_files_still_refuses_texts_no_report_carries(tmp_path: Path):
    """It knows no model nor driver: the text rule by the stated type; the mapper does the rest."""
    core = agent(tmp_path, with_files=False)
    core.handle(
        Message(
            T.mapper("edge-1", "m"),
            json.dumps(
                {"mapper": "m", "state": "online", "devices": [DEVICE], "started": 1}
            ).encode(),
        ),
        900,
    )
    assert update(core, {"level": "40 "})["code"] == 400
    assert update(core, {"heating": "1"}, heating="boolean")["code"] == 400
    assert update(core, {"setpoint": "22.55555"}, setpoint="float").get("code") is None


# the mapper's writer ------------------------------------------------------------------------------
class Failures(ReportSink):
    def __init__(self) -> None:
        self.failures: dict[str, WriteFailure] = {}

    def write_failed(self, device: DeviceSpec, failures: Any) -> None:
        self.failures.update(failures)


def test_the_mapper_refuses_what_its_driver_cannot_hold_before_writing(tmp_path: Path):
    spec = device(tmp_path)
    sink = Failures()
    writer = DesiredWriter(spec, [sink], driver=ModbusDriver, clock=lambda: 0.0)
    writer.state_changed("online", None)  # type: ignore[arg-type]
    writer.update({"setpoint": "22.55555", "heating": "1", "level": "40 ", "temp": "1"})
    assert writer.due() == []  # nothing to write: every value refused
    assert "nearest value it holds is 22.6" in sink.failures["setpoint"].reason
    assert "give true or false" in sink.failures["heating"].reason
    assert "white space" in sink.failures["level"].reason
    assert not any(f.retry for f in sink.failures.values())
    with pytest.raises(WriteRefused, match=r"22\.6"):
        writer.check("setpoint", "22.55555")


# end to end: the command line, the agent, the mapper, a Modbus server ---------------------------
async def cli(*args: str) -> tuple[int, str]:
    done = await anyio.run_process([sys.executable, "-m", "edgedev", *args], check=False, stderr=-2)
    return done.returncode, done.stdout.decode()


def reports(name: str) -> Any:
    def check(m: Message) -> bool:
        if not m.topic.endswith(f"/device/{DEVICE}/twin/update"):
            return False
        entry = json.loads(m.payload)["twin"].get(name) or {}
        return isinstance(entry.get("actual"), dict)

    return check


async def test_twin_set_refuses_the_cases_and_reports_go_on(tmp_path: Path, mqtt_url: str):
    spec = device(tmp_path)
    topic_root = root()
    common = ["--broker", mqtt_url, "--topic-root", topic_root]
    sim = ModbusSimulator([spec])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with (
            observer(mqtt_url, topic_root) as (_bus, recorder),
            agent_running(mqtt_url, topic_root, tmp_path / "twins.db", [spec]),
            mapper_running(mqtt_url, topic_root, [spec]),
        ):
            await recorder.wait_for(reports("level"), timeout=WAIT)
            for assignment, why in (
                ("heating=1", "give true or false"),
                ("setpoint=22.55555", "the nearest value it holds is 22.6"),
                ("level=40 ", "white space around it (give '40')"),
            ):
                code, out = await cli("twin", "set", DEVICE, assignment, *common)
                assert code != 0 and why in out, out
            # the device was never written; every property, level included, goes on reporting
            assert sim.words(DEVICE, Table.HOLDING, 3, 1) == [0]
            start = len(recorder.messages)
            for name in ("heating", "setpoint", "temp", "level"):
                await recorder.wait_for(reports(name), after=start, timeout=WAIT)
            code, out = await cli("twin", "set", DEVICE, "heating=true", "level=40", *common)
            assert code == 0, out
            await recorder.wait_for(
                lambda m: (
                    reports("level")(m)
                    and json.loads(m.payload)["twin"]["level"]["actual"]["value"] == "40"
                ),
                timeout=WAIT,
            )
        tg.cancel_scope.cancel()


async def test_a_mapper_whose_agent_has_no_files_refuses_with_the_nearest_value(
    tmp_path: Path, mqtt_url: str
):
    """EdgeCore (or an agent without files) takes 22.55555: the mapper says why it won't."""
    spec = device(tmp_path)
    topic_root = root()
    sim = ModbusSimulator([spec])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with (
            observer(mqtt_url, topic_root) as (_bus, recorder),
            agent_running(mqtt_url, topic_root, tmp_path / "twins.db"),
            mapper_running(mqtt_url, topic_root, [spec]),
        ):
            await recorder.wait_for(reports("setpoint"), timeout=WAIT)
            common = ["--broker", mqtt_url, "--topic-root", topic_root]
            code, out = await cli("twin", "set", DEVICE, "setpoint=22.55555", *common)
            assert code == 0, out  # the agent knows no driver for it
            error = await recorder.wait_for(
                lambda m: (
                    m.topic.endswith(f"/device/{DEVICE}/twin/update")
                    and "error" in (json.loads(m.payload)["twin"].get("setpoint") or {})
                ),
                timeout=WAIT,
            )
            failure = json.loads(error.payload)["twin"]["setpoint"]["error"]
            assert "nearest value it holds is 22.6" in failure["reason"]
            assert failure["retry"] is False
            assert sim.words(DEVICE, Table.HOLDING, 0, 1) != [226]
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("index", "text", "why"),
    [
        (0, "22.55555", "desired value: the device cannot hold 22.55555 exactly; the nearest"),
        (3, "1", "desired value: '1' is not a boolean: give true or false"),
        (2, "40 ", "desired value: '40 ' has white space around it (give '40')"),
    ],
)
def test_validate_refuses_a_file_s_desired_value_by_the_same_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], index: int, text: str, why: str
):
    from edgedev.cli import main

    bad = docs(free_port())
    bad[1]["spec"]["properties"][index]["desired"] = {"value": text}
    path = write_yaml(tmp_path, bad)
    assert main(["validate", "-f", str(path)]) == 1
    out = capsys.readouterr()
    assert f"spec.properties[{index}].desired.value: {why}" in out.out + out.err


async def test_the_examples_of_docs_twin_md_answer_as_written(mqtt_url: str, tmp_path: Path):
    """docs/twin.md's "One rule" session, against an agent with examples/modbus.yaml."""
    text = (ROOT / "docs/twin.md").read_text(encoding="utf-8")
    section = text[text.index("## One rule for desired values") : text.index("## Topics")]
    (block,) = re.findall(r"```console\n(.*?)```", section, flags=re.S)
    session: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            session.append((line[2:], []))
        else:
            session[-1][1].append(line)
    assert len(session) == 4
    topic_root = root()
    devices = load_devices([ROOT / "examples/modbus.yaml"])
    async with agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices):
        for command, expected in session:
            args = [*shlex.split(command)[1:], "--broker", mqtt_url, "--topic-root", topic_root]
            code, out = await cli(*args)
            if expected:
                assert code == 1 and out.strip() == "\n".join(expected), (command, out)
            else:
                assert code == 0, (command, out)


# what each driver holds, through the value keys of issue 30 -----------------------------------
PROTOCOLS = {
    "modbus": {"ip": "127.0.0.1", "port": 5020},
    "ble": {"macAddress": "c4:7c:8d:6a:00:01"},
    "opcua": {"url": "opc.tcp://127.0.0.1:4840"},
}


def one_property(tmp_path: Path, protocol: str, type_: str, visitor: dict[str, Any]) -> Any:
    """The one property of a device of ``protocol``, ``visitor`` its configData."""
    docs = [
        device_model("m", protocol, [{"name": "p", "type": type_}]),
        make_device(
            "d", "m", protocol, PROTOCOLS[protocol], [device_property("p", protocol, 1000, visitor)]
        ),
    ]
    (spec,) = load_documents(tmp_path, docs)
    return spec


@pytest.mark.parametrize(
    ("protocol", "type_", "visitor", "text", "nearest"),
    [
        # Modbus: an unsigned register in tenths above -40 (EdgeX's offset)
        (
            "modbus",
            "FLOAT",
            {
                "register": "HoldingRegister",
                "offset": 0,
                "dataType": "uint16",
                "scale": 0.1,
                "valueOffset": -40,
            },
            "21.55",
            "21.6",
        ),
        (
            "modbus",
            "FLOAT",
            {
                "register": "HoldingRegister",
                "offset": 0,
                "dataType": "uint16",
                "scale": 0.1,
                "valueOffset": -40,
            },
            "21.5",
            None,
        ),
        ("modbus", "BOOLEAN", {"register": "HoldingRegister", "offset": 0, "bit": 3}, "true", None),
        (
            "modbus",
            "STRING",
            {
                "register": "HoldingRegister",
                "offset": 0,
                "mapping": {0: "Off", 1: "Heat"},
                "strict": True,
            },
            "Heat",
            None,
        ),
        (
            "modbus",
            "STRING",
            {
                "register": "HoldingRegister",
                "offset": 0,
                "mapping": {0: "Off", 1: "Heat"},
                "strict": True,
            },
            "Cool",
            "error",
        ),
        # BLE: a little-endian int16 in hundredths
        (
            "ble",
            "FLOAT",
            {"characteristicUUID": "2A6E", "format": "int16le", "scale": 0.01},
            "21.555",
            "21.56",
        ),
        (
            "ble",
            "FLOAT",
            {"characteristicUUID": "2A6E", "format": "int16le", "scale": 0.01},
            "21.55",
            None,
        ),
        # OPC-UA: the node's type when dataType names it; else the value keys alone (a float)
        (
            "opcua",
            "FLOAT",
            {"nodeID": "ns=2;s=P", "dataType": "UInt16", "scale": 0.1, "valueOffset": -40},
            "21.55",
            "21.6",
        ),
        ("opcua", "FLOAT", {"nodeID": "ns=2;s=P", "dataType": "Float"}, "31.4159265", "31.415926"),
        ("opcua", "FLOAT", {"nodeID": "ns=2;s=P", "scale": 0.1, "valueOffset": -40}, "21.55", None),
        ("opcua", "INT", {"nodeID": "ns=2;s=P", "dataType": "Int16"}, "40000", "error"),
    ],
)
def test_each_driver_says_what_it_holds(
    tmp_path: Path,
    protocol: str,
    type_: str,
    visitor: dict[str, Any],
    text: str,
    nearest: str | None,
):
    pytest.importorskip(f"edgedev_{protocol}")
    spec = one_property(tmp_path, protocol, type_, visitor)
    driver = drivers.get(spec.protocol)
    prop = spec.property("p")
    if nearest is None:
        check_desired(spec.id, "p", prop, text, driver)
    elif nearest == "error":
        with pytest.raises(WriteRefused, match="cannot be written"):
            check_desired(spec.id, "p", prop, text, driver)
    else:
        with pytest.raises(
            WriteRefused, match=f"the nearest value it holds is {re.escape(nearest)}$"
        ):
            check_desired(spec.id, "p", prop, text, driver)
