"""The desired writer on its own: no runner, no driver, no broker; a clock the test moves.

The writer decides every write and the runner only performs them, so the rules can be seen
here by playing the runner: tell it the state, ask it what is due, hand back the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from edgedev import DeviceSpec
from edgedev._backoff import Backoff
from edgedev.mapper import DesiredWriter, Reading, ReportSink
from edgedev.mapper import _desired as desired_module
from edgedev.twin import DeviceState, WriteFailure
from twin_helpers import thermostat

pytestmark = pytest.mark.needs("edgedev_modbus")  # twin_helpers.thermostat is a Modbus device


class Failures(ReportSink):
    """Records each batch handed to :meth:`ReportSink.write_failed`."""

    def __init__(self) -> None:
        self.batches: list[dict[str, WriteFailure]] = []

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:
        self.batches.append(dict(failures))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spec(tmp_path: Path) -> DeviceSpec:
    """setpoint: FLOAT 10..30; temp: FLOAT, ReadOnly; level: INT 0..100."""
    return thermostat(tmp_path)[0][0]


class Rig:
    def __init__(self, spec: DeviceSpec) -> None:
        self.sink = Failures()
        self.clock = Clock()
        self.last: dict[str, Reading] = {}
        self.wakes = 0
        self.writer = DesiredWriter(
            spec, [self.sink], last=self.last, wake=self.wake, clock=self.clock
        )

    def wake(self) -> None:
        self.wakes += 1

    def reasons(self) -> list[dict[str, str]]:
        return [{n: f.reason for n, f in batch.items()} for batch in self.sink.batches]


@pytest.fixture
def rig(spec: DeviceSpec) -> Rig:
    return Rig(spec)


def test_a_delta_s_refusals_go_out_in_one_batch_once_and_each_value_is_checked_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
):
    checked: list[str] = []
    check = desired_module.check_device_write

    def counting(spec: DeviceSpec, name: str, text: str, driver: object) -> tuple[object, object]:
        checked.append(name)
        return check(spec, name, text, driver)  # type: ignore[arg-type]

    monkeypatch.setattr(desired_module, "check_device_write", counting)
    delta = {"setpoint": "99", "temp": "3", "level": "5"}
    rig.writer.replace(delta)
    assert [set(b) for b in rig.sink.batches] == [{"setpoint", "temp"}]  # one batch
    failures = rig.sink.batches[0]
    assert "maximum" in failures["setpoint"].reason and "ReadOnly" in failures["temp"].reason
    assert not failures["setpoint"].retry and failures["setpoint"].value == "99"
    assert rig.writer.pending == delta  # refused values stay, shown as pending

    rig.writer.replace(delta)  # the same delta again: nothing new to say, nothing re-checked
    assert len(rig.sink.batches) == 1
    rig.writer.state_changed(DeviceState.ONLINE, None)
    [write] = rig.writer.due()
    assert (write.prop.name, write.value, write.text) == ("level", 5, "5")
    rig.writer.written(write, "5")
    assert sorted(checked) == ["level", "setpoint", "temp"]  # once per desired value
    assert rig.writer.pending == {"setpoint": "99", "temp": "3"}
    assert rig.writer.attempts == 1


def test_a_value_the_device_holds_is_not_written_but_reported_in_its_own_text(rig: Rig):
    rig.last["setpoint"] = Reading("setpoint", 24.0, "24.0", 1)
    rig.writer.state_changed(DeviceState.ONLINE, None)
    rig.writer.update({"setpoint": "24"})
    assert rig.writer.pending == {} and rig.writer.held == 1
    assert rig.wakes >= 1 and rig.writer.take_reports() == ["setpoint"]
    assert rig.writer.take_reports() == []
    assert rig.writer.due() == [] and rig.writer.attempts == 0
    prop = rig.writer.spec.property("setpoint")
    assert rig.writer.text(prop, 24.0) == "24"  # reported as desired: EdgeCore compares text
    assert rig.writer.text(prop, 25.0) == "25.0"


def test_values_wait_while_the_device_is_away_and_are_written_when_it_is_back(rig: Rig):
    rig.writer.update({"level": "12"})  # not yet connected: it waits, nothing to say
    assert rig.sink.batches == [] and rig.writer.next_due() == float("inf")
    rig.writer.state_changed(DeviceState.OFFLINE, "timeout, no answer within 3000 ms")
    assert rig.reasons() == [
        {"level": "device plant/thermo is offline: timeout, no answer within 3000 ms"}
    ]
    assert rig.sink.batches[0]["level"].retry
    rig.writer.update({"level": "12"})  # a repeated delta: the same reason is not said again
    assert len(rig.sink.batches) == 1
    rig.writer.state_changed(DeviceState.ONLINE, None)
    assert rig.wakes >= 1 and rig.writer.next_due() == 0.0
    [write] = rig.writer.due()
    rig.writer.written(write, "12")
    assert rig.writer.pending == {} and len(rig.sink.batches) == 1


def test_a_property_is_written_at_most_once_per_min_interval_newest_value_first(rig: Rig):
    rig.writer.min_interval = 1.5
    rig.writer.state_changed(DeviceState.ONLINE, None)
    rig.writer.update({"setpoint": "21"})
    [first] = rig.writer.due()
    rig.writer.written(first, "21")
    for value in ("22", "23", "24"):  # a burst
        rig.clock.now += 0.1
        rig.writer.update({"setpoint": value})
        assert rig.writer.due() == []
    assert rig.writer.next_due() == 101.5
    rig.clock.now = 101.5
    [second] = rig.writer.due()
    assert second.text == "24" and rig.writer.attempts == 2


def test_a_failed_write_is_retried_with_backoff_and_said_once_per_reason(rig: Rig):
    rig.writer.backoff = lambda: Backoff(0.5, 30.0, jitter=0)
    rig.writer.min_interval = 0  # the rate bound aside
    rig.writer.state_changed(DeviceState.ONLINE, None)
    rig.writer.update({"level": "7"})
    [write] = rig.writer.due()
    rig.writer.failed(write, "write failed: connection reset by the device", retry=True)
    assert rig.writer.next_due() == 100.5  # 0.5 s, then doubling
    rig.clock.now = 100.5
    [again] = rig.writer.due()
    rig.writer.failed(again, "write failed: connection reset by the device", retry=True)
    assert rig.writer.next_due() == 101.5
    assert len(rig.sink.batches) == 1  # the same reason: said once
    # the runner goes offline after such a failure: then the value waits for the device
    rig.writer.state_changed(DeviceState.OFFLINE, "connection reset by the device")
    assert rig.writer.next_due() == float("inf") and len(rig.sink.batches) == 2
    rig.writer.state_changed(DeviceState.ONLINE, None)
    [last] = rig.writer.due()
    rig.writer.written(last, "7")
    assert rig.writer.pending == {}


def test_a_refusal_by_the_device_or_a_different_read_back_waits_for_a_new_value(rig: Rig):
    rig.writer.state_changed(DeviceState.ONLINE, None)
    rig.writer.replace({"level": "7", "setpoint": "21"})
    writes = rig.writer.due()
    assert [w.prop.name for w in writes] == ["level", "setpoint"]
    rig.writer.failed(writes[0], "illegal data value", retry=False)
    rig.writer.written(writes[1], "20")
    assert rig.reasons() == [
        {"level": "illegal data value"},
        {"setpoint": "the device holds 20 after writing 21"},
    ]
    rig.clock.now += 60
    rig.writer.state_changed(DeviceState.ONLINE, None)
    assert rig.writer.due() == [] and rig.writer.pending == {"level": "7", "setpoint": "21"}
    rig.writer.update({"level": "8"})  # a new value is a new request
    assert [w.text for w in rig.writer.due()] == ["8"]


def test_an_outcome_for_a_value_replaced_meanwhile_is_ignored(rig: Rig):
    rig.writer.state_changed(DeviceState.ONLINE, None)
    rig.writer.update({"level": "7"})
    [old] = rig.writer.due()
    rig.writer.update({"level": "9"})  # arrives while the runner writes 7
    rig.writer.written(old, "7")
    assert rig.writer.pending == {"level": "9"}
    rig.clock.now += 1
    assert [w.text for w in rig.writer.due()] == ["9"]


def test_after_close_nothing_more_is_reported(rig: Rig):
    rig.writer.update({"level": "7"})
    rig.writer.close()
    rig.writer.state_changed(DeviceState.OFFLINE, None)  # the mapper says offline when stopping
    assert rig.sink.batches == []


async def test_write_gives_the_first_outcome(rig: Rig):
    refused = await rig.writer.write("temp", "3")
    assert (refused.ok, refused.retry, refused.reason) == (
        False,
        False,
        "property 'temp' is ReadOnly",
    )
    rig.writer.state_changed(DeviceState.OFFLINE, "connection refused")
    away = await rig.writer.write("level", "4")
    assert not away.ok and away.retry and "connection refused" in (away.reason or "")
    rig.last["setpoint"] = Reading("setpoint", 21.5, "21.5", 1)
    held = await rig.writer.write("setpoint", "21.50")
    assert (held.ok, held.value) == (True, "21.50")
