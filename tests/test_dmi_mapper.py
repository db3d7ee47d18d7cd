"""edgedev as a KubeEdge DMI mapper: a fake EdgeCore on a unix socket, real simulated devices.

The fake EdgeCore (``edgedev.testing.dmi``) refuses requests as EdgeCore does: over 1/s
sustained (burst 100), twins without observedDesired or reported, reports without a namespace.
"""

from __future__ import annotations

import copy
import itertools
import logging
from pathlib import Path

import anyio
import grpc
import pytest
from grpc import aio

from dmi_helpers import dmi_mapper, modbus_device, modbus_model, reported, socket_dir
from edgedev.dmi import pb
from edgedev.testing import device, device_model, device_property, free_port, load_documents
from edgedev.testing.dmi import FakeEdgeCore, edgecore_device, edgecore_model
from edgedev_modbus import ModbusSimulator
from edgedev_modbus.codec import Table
from edgedev_opcua import OpcuaSimulator

WRITES = frozenset({5, 6, 15, 16})


def writes(sim: ModbusSimulator, device: str) -> int:
    return sum(1 for r in sim.requests if r.device == device and r.function in WRITES)


def requests(sim: ModbusSimulator, device: str) -> int:
    return sum(1 for r in sim.requests if r.device == device)


@pytest.fixture
def sockets():
    with socket_dir() as path:
        yield path


async def test_register_with_data_runs_the_devices_and_reports_their_twins(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    docs = [modbus_model(), modbus_device("t1", free_port()), modbus_device("t2", free_port())]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        sim.set("default/t1", "setpoint", 21.5)
        async with dmi_mapper(mqtt_url, core, sockets) as dmi:
            await core.wait_for(lambda: core.reported("default/t1").get("setpoint") == "21.5")
            await core.wait_for(lambda: "temperature" in core.reported("default/t2"))
            await core.wait_for(lambda: core.state_of("default/t2") == "online")
            [registration] = core.registrations
            assert registration.withData
            assert registration.mapper.protocol == "modbus"
            assert registration.mapper.address == f"{sockets}/modbus.sock".encode()
            assert dmi.sources["modbus"].registered
            status = core.statuses[-1]
            twin = status.reportedDevice.twins[0]
            assert status.deviceNamespace == "default"
            assert twin.observedDesired.value == ""
            assert twin.reported.metadata["type"] == "float"
            assert int(twin.reported.metadata["timestamp"]) > 0
            assert not core.invalid and not core.limited
        tg.cancel_scope.cancel()


async def test_one_mapper_registers_for_modbus_and_opcua_and_reports_both(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    opcua_url = f"opc.tcp://127.0.0.1:{free_port()}/edgedev/dmi"
    opcua_model = device_model("valve", "opcua", [{"name": "position", "type": "DOUBLE"}])
    opcua_device = reported(
        device(
            "valve-1",
            "valve",
            "opcua",
            {"url": opcua_url},
            [device_property("position", "opcua", 200, {"nodeID": "ns=2;s=Valve.position"})],
        )
    )
    docs = [modbus_model(), modbus_device("t1", free_port()), opcua_model, opcua_device]
    specs = load_documents(tmp_path, docs)
    modbus_sim = ModbusSimulator([s for s in specs if s.protocol == "modbus"])
    opcua_sim = OpcuaSimulator([s for s in specs if s.protocol == "opcua"])
    core = FakeEdgeCore(
        f"{sockets}/dmi.sock", devices=[docs[1], docs[3]], models=[docs[0], docs[2]]
    )
    async with anyio.create_task_group() as tg, core:
        await tg.start(modbus_sim.run)
        await tg.start(opcua_sim.run)
        await opcua_sim.set("default/valve-1", "position", 42.5)
        async with dmi_mapper(mqtt_url, core, sockets, "modbus", "opcua") as dmi:
            await core.wait_for(lambda: "temperature" in core.reported("default/t1"))
            await core.wait_for(
                lambda: core.reported("default/valve-1").get("position") == "42.5", timeout=20
            )
            assert sorted(r.mapper.protocol for r in core.registrations) == ["modbus", "opcua"]
            assert set(dmi.mapper.runners) == {"default/t1", "default/valve-1"}
            assert dmi.sources["opcua"].specs["default/valve-1"].protocol == "opcua"
        tg.cancel_scope.cancel()


async def test_devices_added_updated_and_removed_at_run_time(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    ports = [free_port(), free_port()]
    docs = [modbus_model(), modbus_device("a", ports[0]), modbus_device("b", ports[1])]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:2], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        async with dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
            await core.wait_for(lambda: "temperature" in core.reported("default/a"))
            assert requests(sim, "default/b") == 0

            # RegisterDevice at run time starts that one device, and no other restarts
            runner_a = dmi.mapper.runners["default/a"]
            answer = await client.RegisterDevice(
                pb.RegisterDeviceRequest(device=edgecore_device(docs[2]))
            )
            assert (answer.deviceName, answer.deviceNamespace) == ("b", "default")
            await core.wait_for(lambda: "temperature" in core.reported("default/b"))
            assert dmi.mapper.runners["default/a"] is runner_a

            # UpdateDevice with a desired value: written once, however often it comes again
            before = writes(sim, "default/b")
            wanted = edgecore_device(modbus_device("b", ports[1], setpoint="22.5"))
            await client.UpdateDevice(pb.UpdateDeviceRequest(device=wanted))
            await core.wait_for(lambda: core.reported("default/b").get("setpoint") == "22.5")
            assert sim.words("default/b", Table.HOLDING, 0, 1) == [225]
            assert writes(sim, "default/b") == before + 1
            await client.UpdateDevice(pb.UpdateDeviceRequest(device=wanted))
            reports = len(core.statuses)
            await core.wait_for(lambda: len(core.statuses) > reports + 2)
            assert writes(sim, "default/b") == before + 1
            assert dmi.mapper.runners["default/a"] is runner_a
            observed = [
                t.observedDesired.value
                for s in core.statuses[reports:]
                if s.deviceName == "b"
                for t in s.reportedDevice.twins
                if t.propertyName == "setpoint"
            ]
            assert observed and set(observed) == {"22.5"}

            # GetDevice: the device with its reported twins
            got = await client.GetDevice(
                pb.GetDeviceRequest(deviceName="b", deviceNamespace="default")
            )
            twins = {t.propertyName: t.reported.value for t in got.device.status.twins}
            assert twins["setpoint"] == "22.5"
            assert got.device.spec.properties[1].desired.value == "22.5"

            # RemoveDevice: no more requests reach it; it is reported offline
            await client.RemoveDevice(
                pb.RemoveDeviceRequest(deviceName="b", deviceNamespace="default")
            )
            assert "default/b" not in dmi.mapper.runners
            await core.wait_for(lambda: core.state_of("default/b") == "offline")
            count = requests(sim, "default/b")
            reads_a = requests(sim, "default/a")
            await core.wait_for(lambda: requests(sim, "default/a") > reads_a + 3, timeout=10)
            assert requests(sim, "default/b") == count
            # an unknown device is no error: EdgeCore forgets a device only on success
            await client.RemoveDevice(
                pb.RemoveDeviceRequest(deviceName="b", deviceNamespace="default")
            )
        tg.cancel_scope.cancel()


async def test_update_device_model_restarts_its_devices_with_the_new_model(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    docs = [modbus_model(), modbus_device("m", free_port())]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        async with dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
            await core.wait_for(lambda: "setpoint" in core.reported("default/m"))
            runner = dmi.mapper.runners["default/m"]
            narrower = [MODBUS_SETPOINT_READONLY, MODBUS_TEMPERATURE]
            await client.UpdateDeviceModel(
                pb.UpdateDeviceModelRequest(model=edgecore_model(modbus_model(props=narrower)))
            )
            restarted = dmi.mapper.runners["default/m"]
            assert restarted is not runner
            assert not restarted.spec.property("setpoint").writable
            assert (
                await restarted.desired.write("setpoint", "20")
            ).reason == "property 'setpoint' is ReadOnly"
        tg.cancel_scope.cancel()


MODBUS_TEMPERATURE = {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"}
MODBUS_SETPOINT_READONLY = {"name": "setpoint", "type": "FLOAT", "accessMode": "ReadOnly"}


async def test_a_fleet_from_edgecore_is_warned_about_once_as_its_file_would_be(
    mqtt_url: str, sockets: str, caplog: pytest.LogCaptureFixture
):
    nanoseconds = 5 * 10**9  # old KubeEdge's unit: loads, but deserves a look
    docs = [modbus_model(), *(modbus_device(n, free_port(), cycle=nanoseconds) for n in "ab")]
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    with caplog.at_level(logging.WARNING, logger="edgedev.config"):
        async with core, dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
            await dmi.sources["modbus"].wait_registered()
            again = edgecore_device(modbus_device("a", free_port(), cycle=nanoseconds))
            await client.UpdateDevice(pb.UpdateDeviceRequest(device=again))
    warned = [r.getMessage() for r in caplog.records if r.name == "edgedev.config"]
    assert [w.split(": ")[1] for w in warned] == [
        "document 2 (Device default/a), field spec.properties[0].collectCycle",
        "document 2 (Device default/a), field spec.properties[1].collectCycle",
    ]  # the fleet, and the update, once: as a file's devices sharing one property list
    assert all(w.startswith("dmi: ") and "nanoseconds" in w for w in warned)


async def test_invalid_devices_are_refused_with_the_field_named(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    docs = [modbus_model(), modbus_device("ok", free_port())]
    core = FakeEdgeCore(f"{sockets}/dmi.sock", models=docs[:1])
    async with core, dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
        # EdgeCore answers a registration with the models of its devices only (there are
        # none): the model comes as CreateDeviceModel (dtmanager/dmiworker.go:169-171)
        await client.CreateDeviceModel(pb.CreateDeviceModelRequest(model=edgecore_model(docs[0])))
        bad = edgecore_device(modbus_device("bad", free_port()))
        del bad.spec.protocol.configData.data["ip"]
        with pytest.raises(aio.AioRpcError) as caught:
            await client.RegisterDevice(pb.RegisterDeviceRequest(device=bad))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "default/bad" in (caught.value.details() or "")
        assert "spec.protocol.configData" in (caught.value.details() or "")

        orphan = edgecore_device(modbus_device("orphan", free_port(), model="nowhere"))
        with pytest.raises(aio.AioRpcError) as caught:
            await client.RegisterDevice(pb.RegisterDeviceRequest(device=orphan))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert "spec.deviceModelReference" in (caught.value.details() or "")

        other = edgecore_device(modbus_device("other", free_port()))
        other.spec.protocol.protocolName = "opcua"
        with pytest.raises(aio.AioRpcError) as caught:
            await client.RegisterDevice(pb.RegisterDeviceRequest(device=other))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "spec.protocol.protocolName" in (caught.value.details() or "")

        with pytest.raises(aio.AioRpcError) as caught:
            await client.GetDevice(pb.GetDeviceRequest(deviceName="bad", deviceNamespace="default"))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert dmi.mapper.runners == {}
        await client.RegisterDevice(pb.RegisterDeviceRequest(device=edgecore_device(docs[1])))
        assert list(dmi.mapper.runners) == ["default/ok"]


async def test_calls_that_overtake_the_registration_answer_are_not_undone_by_it(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    """EdgeCore's own calls made while its registration answer is on the way are newer.

    The answer lists device ``old``; before it arrives EdgeCore creates a model, registers a
    device of it and removes ``old``. The mapper ends with what the calls left: ``new``.
    """
    core = FakeEdgeCore(
        f"{sockets}/dmi.sock", devices=[modbus_device("old", free_port())], models=[modbus_model()]
    )
    core.hold = anyio.Event()
    async with core, dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
        await core.wait_for(lambda: len(core.registrations) == 1)  # answered, held on the way
        other = modbus_model("meter")
        await client.CreateDeviceModel(pb.CreateDeviceModelRequest(model=edgecore_model(other)))
        new = edgecore_device(modbus_device("new", free_port(), model="meter"))
        await client.RegisterDevice(pb.RegisterDeviceRequest(device=new))
        await client.RemoveDevice(
            pb.RemoveDeviceRequest(deviceName="old", deviceNamespace="default")
        )
        assert list(dmi.mapper.runners) == ["default/new"]
        core.hold.set()
        source = dmi.sources["modbus"]
        with anyio.fail_after(10):
            await source.wait_registered()
        assert list(dmi.mapper.runners) == ["default/new"]
        assert set(source.models) == {("default", "thermo"), ("default", "meter")}


async def test_a_restarted_edgecore_gets_a_new_registration_and_a_resync(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    docs = [modbus_model(), modbus_device("stay", free_port()), modbus_device("go", free_port())]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        async with dmi_mapper(mqtt_url, core, sockets) as dmi:
            await core.wait_for(lambda: "temperature" in core.reported("default/go"))
            stay = dmi.mapper.runners["default/stay"]
            await core.stop()
            del core.devices["default/go"]  # deleted in the cloud meanwhile
            await core.start()
            await core.wait_for(lambda: len(core.registrations) == 2, timeout=20)
            await core.wait_for(lambda: "default/go" not in dmi.mapper.runners)
            assert dmi.mapper.runners["default/stay"] is stay  # unchanged: not restarted
            reports = len(core.statuses)
            await core.wait_for(lambda: len(core.statuses) > reports)
        tg.cancel_scope.cancel()


async def test_stopping_reports_every_device_offline(tmp_path: Path, mqtt_url: str, sockets: str):
    docs = [modbus_model(), modbus_device("s1", free_port()), modbus_device("s2", free_port())]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        async with dmi_mapper(mqtt_url, core, sockets):
            await core.wait_for(lambda: core.state_of("default/s1") == "online")
            await core.wait_for(lambda: core.state_of("default/s2") == "online")
        assert core.state_of("default/s1") == "offline"
        assert core.state_of("default/s2") == "offline"
        tg.cancel_scope.cancel()


async def test_a_desired_value_the_device_already_holds_is_not_written(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    port = free_port()
    docs = [modbus_model(), modbus_device("held", port, setpoint="21.50")]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        sim.set("default/held", "setpoint", 21.5)  # "21.50" and 21.5: the same value
        async with dmi_mapper(mqtt_url, core, sockets) as dmi:
            # reported in the desired value's own text, as EdgeCore compares strings
            await core.wait_for(lambda: core.reported("default/held").get("setpoint") == "21.50")
            writer = dmi.mapper.writer("default/held")
            assert not writer.pending
            reads = requests(sim, "default/held")
            await core.wait_for(lambda: requests(sim, "default/held") > reads + 3)
            assert writes(sim, "default/held") == 0
            assert writer.attempts == 0
        tg.cancel_scope.cancel()


async def test_devices_from_files_run_beside_and_are_not_reported_over_dmi(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    docs = [
        modbus_model(),
        modbus_device("dmi-1", free_port()),
        modbus_device("file-1", free_port()),
    ]
    specs = load_documents(tmp_path, docs)
    sim = ModbusSimulator(specs)
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:2], models=docs[:1])
    files = [s for s in specs if s.name == "file-1"]
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        async with dmi_mapper(mqtt_url, core, sockets, files=files) as dmi:
            await core.wait_for(lambda: "temperature" in core.reported("default/dmi-1"))
            file_runner = dmi.mapper.runners["default/file-1"]
            await core.wait_for(lambda: file_runner.state == "online" and file_runner.reads > 3)
            assert core.reported("default/file-1") == {}
            assert core.state_of("default/file-1") is None
        tg.cancel_scope.cancel()


async def test_methods_and_commands_arrive_and_survive_an_update_device(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    port = free_port()
    methods = [{"name": "Tune", "description": "set the setpoint", "propertyNames": ["setpoint"]}]

    def document(setpoint: str | None = None) -> dict:
        doc = modbus_device("meth", port, setpoint=setpoint)
        doc["spec"]["methods"] = methods
        return doc

    model = edgecore_model(modbus_model())
    command = pb.DeviceCommand(name="reset", url="/reset", method="POST", status_code=["200"])
    model.spec.commands.append(command)  # the CRD has none: sent as a DMI client may
    sim = ModbusSimulator(load_documents(tmp_path, [modbus_model(), document()]))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=[document()], models=[model])
    assert [m.name for m in core.devices["default/meth"].spec.methods] == ["Tune"]
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        async with dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
            await core.wait_for(lambda: "setpoint" in core.reported("default/meth"))
            runner = dmi.mapper.runners["default/meth"]
            [tune] = runner.spec.methods
            assert (tune.name, tune.description, tune.property_names) == (
                "Tune",
                "set the setpoint",
                ["setpoint"],
            )
            assert [c.name for c in runner.spec.commands] == ["reset"]

            wanted = edgecore_device(document(setpoint="22.5"))
            await client.UpdateDevice(pb.UpdateDeviceRequest(device=wanted))
            await core.wait_for(lambda: core.reported("default/meth").get("setpoint") == "22.5")
            assert dmi.mapper.runners["default/meth"] is runner  # a desired value: no restart
            assert dmi.sources["modbus"].specs["default/meth"].methods == runner.spec.methods
            got = await client.GetDevice(
                pb.GetDeviceRequest(deviceName="meth", deviceNamespace="default")
            )
            assert list(got.device.spec.methods) == list(wanted.spec.methods)

            # an update that restarts the device keeps them too
            moved = document(setpoint="22.5")
            moved["spec"]["properties"][0]["collectCycle"] = 300
            await client.UpdateDevice(pb.UpdateDeviceRequest(device=edgecore_device(moved)))
            restarted = dmi.mapper.runners["default/meth"]
            assert restarted is not runner
            assert restarted.spec.methods == runner.spec.methods
            assert restarted.spec.commands == runner.spec.commands
        tg.cancel_scope.cancel()


async def test_state_report_says_whether_states_go_to_edgecore_and_how_often(
    tmp_path: Path, mqtt_url: str, sockets: str, caplog: pytest.LogCaptureFixture
):
    """v1.23's stateReport, as the reference mapper has it (mapper-framework
    _template/mapper/device/devicestatus.go:60-77): none unless reportToCloud; then every
    reportCycle."""
    silent = modbus_device("silent", free_port())
    silent["spec"]["stateReport"] = {"reportToCloud": False, "reportCycle": 1000}
    unsaid = modbus_device("unsaid", free_port())
    del unsaid["spec"]["stateReport"]  # EdgeCore sends false: no state either
    ticking = modbus_device("ticking", free_port())
    ticking["spec"]["stateReport"] = {"reportToCloud": True, "reportCycle": 2000}
    detecting = modbus_device("detecting", free_port())
    detecting["spec"]["properties"][0]["pushMethod"] = {"anomalyDetection": {"url": "http://ad"}}
    docs = [modbus_model(), silent, unsaid, ticking, detecting]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        with caplog.at_level(logging.WARNING, logger="edgedev.config"):
            async with dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
                # a state about every 2 s, never more often
                await core.wait_for(lambda: len(states_of(core, "ticking")) >= 4, timeout=30)
                times = states_of(core, "ticking")
                gaps = [b - a for a, b in itertools.pairwise(times)]
                assert min(gaps) >= 1.9, gaps
                for name in ("silent", "unsaid"):
                    assert f"default/{name}" in dmi.mapper.runners
                    assert "temperature" in core.reported(f"default/{name}")  # twins go
                    assert states_of(core, name) == []  # states do not
                # an update of the device: still nothing, and anomalyDetection said once
                await client.UpdateDevice(pb.UpdateDeviceRequest(device=edgecore_device(detecting)))
        assert core.state_of("default/silent") is None  # not even offline when it stops
        assert not core.limited and not core.invalid
        tg.cancel_scope.cancel()
    said = [
        m
        for m in (r.getMessage() for r in caplog.records)
        if m.startswith("dmi:") and "anomalyDetection" in m  # not the file's (simulator)
    ]
    assert len(said) == 1 and "default/detecting" in said[0] and "not served" in said[0]


def states_of(core: FakeEdgeCore, name: str) -> list[float]:
    """When each state of ``default/NAME`` reached EdgeCore (anyio time)."""
    return [t for t, s in core.state_times if s.deviceName == name]


async def test_a_bad_push_target_over_dmi_is_refused_and_leaves_no_phantom(
    tmp_path: Path, mqtt_url: str, sockets: str
):
    """Issue 32: on main a redis ``addr: 127.0.0.1:abc`` over DMI made a device that failed
    when its sink was built and could not be registered again."""
    docs = [modbus_model(), modbus_device("pushy", free_port())]
    core = FakeEdgeCore(f"{sockets}/dmi.sock", models=docs[:1])
    async with core, dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
        await client.CreateDeviceModel(pb.CreateDeviceModelRequest(model=edgecore_model(docs[0])))
        for addr, expected in (("127.0.0.1:abc", "'abc'"), ("169.254.169.254:6379", "metadata")):
            bad = copy.deepcopy(docs[1])
            redis = {"redisClientConfig": {"addr": addr}}
            bad["spec"]["properties"][0]["pushMethod"] = {"dbMethod": {"redis": redis}}
            with pytest.raises(aio.AioRpcError) as caught:
                await client.RegisterDevice(pb.RegisterDeviceRequest(device=edgecore_device(bad)))
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            details = caught.value.details() or ""
            assert "default/pushy" in details and "addr" in details and expected in details
            assert dmi.mapper.runners == {}
        # the same device, fixed, registers: nothing of the refused one is left in the way
        await client.RegisterDevice(pb.RegisterDeviceRequest(device=edgecore_device(docs[1])))
        assert list(dmi.mapper.runners) == ["default/pushy"]


async def test_a_desired_value_the_device_cannot_hold_is_refused_and_the_device_runs_on(
    tmp_path: Path, mqtt_url: str, sockets: str, caplog: pytest.LogCaptureFixture
):
    """EdgeCore sends 22.55555 for a register in tenths: refused with the reason, not written.

    The device is not refused whole for it: it keeps running and reporting, and a value it
    can hold is written at the next UpdateDevice (docs/twin.md, "One rule").
    """
    port = free_port()
    docs = [modbus_model(), modbus_device("odd", port)]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
    async with anyio.create_task_group() as tg, core:
        await tg.start(sim.run)
        async with dmi_mapper(mqtt_url, core, sockets) as dmi, core.mapper() as client:
            await core.wait_for(lambda: "setpoint" in core.reported("default/odd"))
            runner = dmi.mapper.runners["default/odd"]
            before = writes(sim, "default/odd")
            for odd in ("22.55555", "22.5 "):
                wanted = edgecore_device(modbus_device("odd", port, setpoint=odd))
                with caplog.at_level(logging.WARNING, "edgedev.mapper"):
                    await client.UpdateDevice(pb.UpdateDeviceRequest(device=wanted))
                    reports = len(core.statuses)
                    await core.wait_for(lambda reports=reports: len(core.statuses) > reports + 2)
                assert dmi.mapper.runners["default/odd"] is runner  # no restart, no refusal
                assert writes(sim, "default/odd") == before
            assert "the nearest value it holds is 22.6" in caplog.text
            assert "has white space around it" in caplog.text
            good = edgecore_device(modbus_device("odd", port, setpoint="22.6"))
            await client.UpdateDevice(pb.UpdateDeviceRequest(device=good))
            await core.wait_for(lambda: core.reported("default/odd").get("setpoint") == "22.6")
            assert sim.words("default/odd", Table.HOLDING, 0, 1) == [226]
        tg.cancel_scope.cancel()
