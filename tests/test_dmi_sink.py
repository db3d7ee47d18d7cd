"""The DMI report sink on its own: what goes first when EdgeCore's budget is short."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from dmi_helpers import modbus_device, modbus_model, socket_dir
from edgedev.dmi import DmiSink, EdgeCoreLink
from edgedev.mapper import Reading
from edgedev.testing import free_port, load_documents
from edgedev.testing.dmi import FakeEdgeCore
from edgedev.twin import DeviceState, WriteFailure

pytestmark = pytest.mark.needs("edgedev_modbus")


async def test_states_go_first_then_changed_values_then_refreshes(tmp_path: Path):
    docs = [modbus_model(), *(modbus_device(n, free_port()) for n in ("a", "b", "c"))]
    a, b, c = load_documents(tmp_path, docs)
    with socket_dir() as sockets:
        async with FakeEdgeCore(f"{sockets}/dmi.sock") as core, anyio.create_task_group() as tg:
            sink = DmiSink(EdgeCoreLink(core.socket), lambda d: {"setpoint": "20"})
            sink.activate()
            sink.twin(a, [Reading("setpoint", 20.0, "20", 1)])
            await sink.flush()
            assert len(core.statuses) == 1

            sink.deactivate()  # EdgeCore away: everything waits, newest wins
            tg.start_soon(sink.run)
            sink.twin(a, [Reading("setpoint", 20.0, "20", 2)])  # unchanged: a refresh
            sink.twin(b, [Reading("setpoint", 21.0, "21", 2)])  # changed
            sink.twin(b, [Reading("setpoint", 22.0, "22", 3)])  # ...and changed again
            sink.state(c, DeviceState.ONLINE, None)
            sink.twin(a, [Reading("temperature", 19.5, "19.5", 3)])  # a changed too, later
            assert sink.pending == 4  # c's state; b and a changed; a's refresh joins it
            sink.activate()
            await core.wait_for(lambda: len(core.statuses) == 3 and len(core.states) == 1)
            tg.cancel_scope.cancel()
    order = [core.states[0].deviceName, *(s.deviceName for s in core.statuses[1:])]
    assert order == ["c", "b", "a"]
    b_twins = {t.propertyName: t.reported.value for t in core.statuses[1].reportedDevice.twins}
    assert b_twins == {"setpoint": "22"}  # one request, the newest value
    a_twins = {t.propertyName: t.reported.value for t in core.statuses[2].reportedDevice.twins}
    assert a_twins == {"setpoint": "20", "temperature": "19.5"}  # one request per device
    assert {t.observedDesired.value for t in core.statuses[2].reportedDevice.twins} == {
        "20",
        "",
    }
    assert core.limited == 0 and sink.limited == 0


async def test_a_value_edgecore_would_refuse_is_left_out_and_counted(tmp_path: Path):
    # EdgeCore refuses a whole report for one bad entry, over DMI as over MQTT: the DMI sink
    # filters through the same TwinFilter as the MQTT twin sink
    a = load_documents(tmp_path, [modbus_model(), modbus_device("a", free_port())])[0]
    with socket_dir() as sockets:
        async with FakeEdgeCore(f"{sockets}/dmi.sock") as core:
            sink = DmiSink(EdgeCoreLink(core.socket), lambda d: {})
            sink.activate()
            bad = Reading("setpoint", 1e300, "1e+300", 1)  # '+' is outside EdgeCore's charset
            sink.twin(a, [bad, Reading("temperature", 19.5, "19.5", 1)])
            await sink.flush()
    assert len(core.statuses) == 1
    twins = {t.propertyName: t.reported.value for t in core.statuses[0].reportedDevice.twins}
    assert twins == {"temperature": "19.5"}
    assert sink.refused[a.id] == 1 and sink.failed == 0


async def test_a_failed_write_is_logged_as_dmi_has_no_write_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    a = load_documents(tmp_path, [modbus_model(), modbus_device("a", free_port())])[0]
    with socket_dir() as sockets:
        async with FakeEdgeCore(f"{sockets}/dmi.sock") as core:
            sink = DmiSink(EdgeCoreLink(core.socket), lambda d: {})
            sink.activate()
            failure = WriteFailure("99", "above the maximum 30", 1, False)
            with caplog.at_level(logging.INFO, logger="edgedev.dmi"):
                sink.write_failed(a, {"setpoint": failure})
            assert sink.pending == 0  # no request: DMI's Twin has no error to carry
            await sink.flush()
            assert core.statuses == []
    assert "setpoint=99: above the maximum 30" in caplog.text
    assert "DMI has no write error" in caplog.text


class _StalledEdgeCore:
    """A link whose EdgeCore takes each report and never answers (a busy or hung EdgeCore)."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = anyio.Event()
        self.stub = self

    async def ReportDeviceStates(self, request: object, timeout: float) -> None:
        self.calls += 1
        self.called.set()
        await anyio.sleep_forever()


async def test_a_report_cut_short_by_the_sender_stopping_is_sent_again(tmp_path: Path):
    """The mapper stops: ``Dmi.flush`` cancels the running sender, whose request was on its
    way, and sends what waits itself. That request must wait too, not vanish (a device's
    ``offline`` state was lost that way)."""
    docs = [modbus_model(), modbus_device("a", free_port())]
    (a,) = load_documents(tmp_path, docs)
    link = _StalledEdgeCore()
    sink = DmiSink(link, lambda d: {})  # type: ignore[arg-type]
    sink.activate()
    sink.state(a, DeviceState.OFFLINE, None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.run)
        with anyio.fail_after(5):
            await link.called.wait()
        assert sink.pending == 0  # taken: on its way
        tg.cancel_scope.cancel()
    assert sink.pending == 1  # back in the queue, for flush to send
