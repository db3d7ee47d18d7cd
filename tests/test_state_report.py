"""stateReport: the policy a Device's settings make, and the periodic schedule (pure)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import anyio
import pytest

from edgedev import DeviceSpec
from edgedev.mapper import Periodic, StatePolicy, state_policy
from edgedev.testing import device, device_model, device_property, free_port, load_documents

pytestmark = pytest.mark.needs("edgedev_modbus")


def spec(tmp_path: Path, **state_report: object) -> DeviceSpec:
    doc = device(
        "d",
        "m",
        "modbus",
        {"ip": "127.0.0.1"},
        [device_property("t", "modbus", 0, {"register": "HoldingRegister", "offset": 0})],
    )
    if state_report:
        doc["spec"]["stateReport"] = state_report
    [loaded] = load_documents(
        tmp_path, [device_model("m", "modbus", [{"name": "t", "type": "INT"}]), doc]
    )
    return loaded


def test_the_policy_follows_upstream_and_a_file_without_state_report_reports_changes(
    tmp_path: Path,
):
    assert state_policy(spec(tmp_path)) == StatePolicy(True, None)
    assert state_policy(spec(tmp_path, reportToCloud=False, reportCycle=5000)) == StatePolicy(
        False, None
    )
    assert state_policy(spec(tmp_path, reportToCloud=True, reportCycle=2000)) == StatePolicy(
        True, 2.0
    )
    # a cycle of 0 (or none) is upstream's default, 1 s (mapper-framework const.go:41)
    assert state_policy(spec(tmp_path, reportToCloud=True, reportCycle=0)).cycle == 1.0
    assert state_policy(spec(tmp_path, reportCycle=3000)) == StatePolicy(True, 3.0)  # files: true
    # a collectCycle of 0 is the default 1 s too (devicetwin.go uses DefaultCollectCycle)
    assert spec(tmp_path).properties[0].collect_cycle == 1.0


def test_periodic_spreads_first_reports_then_keeps_the_cycle_after_each_report():
    periodic = Periodic()
    ids = [f"default/c{i}" for i in range(200)]
    for device_id in ids:
        periodic.set(device_id, 2.0, now=0.0)
    firsts = []
    now = 0.0
    while len(firsts) < 200:
        now = periodic.next_deadline()
        for device_id in periodic.pop_due(now):
            firsts.append(now)
            periodic.reported(device_id, now)
    assert max(firsts) < 2.0
    assert max(firsts) - min(firsts) > 1.5  # spread over the cycle, not a burst
    # after a report the next one is a cycle later
    periodic.reported("default/c0", 10.0)
    assert "default/c0" not in periodic.pop_due(11.9)
    assert "default/c0" in periodic.pop_due(12.0)
    # not reported (the budget held it back): due again a cycle later, not at every wake-up
    assert "default/c0" not in periodic.pop_due(12.5)
    assert "default/c0" in periodic.pop_due(14.0)
    periodic.forget("default/c0")
    assert "default/c0" not in periodic.pop_due(100.0)
    assert periodic.next_deadline() < math.inf
    for device_id in ids:
        periodic.set(device_id, None, now=0.0)
    assert periodic.next_deadline() == math.inf and len(periodic) == 0


@pytest.mark.broker
async def test_over_mqtt_state_report_silences_or_repeats_state_updates(
    tmp_path: Path, mqtt_url: str
):
    from edgedev import Bus, Mapper
    from edgedev.mqtt import KubeEdgeMqtt
    from edgedev.testing import unique_root
    from edgedev_modbus import ModbusSimulator

    def thermo(name: str, **state_report: object) -> dict[str, object]:
        prop = device_property("t", "modbus", 1000, {"register": "HoldingRegister", "offset": 0})
        doc = device(name, "m", "modbus", {"ip": "127.0.0.1", "port": free_port()}, [prop])
        doc["spec"]["stateReport"] = state_report
        return doc

    model = device_model("m", "modbus", [{"name": "t", "type": "INT"}])
    docs = [model, thermo("quiet", reportToCloud=False), thermo("ticking", reportCycle=1000)]
    specs = load_documents(tmp_path, docs)
    root = unique_root()
    mapper = Mapper(specs, transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)])
    seen: list[tuple[float, str]] = []
    async with anyio.create_task_group() as tg, Bus(mqtt_url) as bus:
        async with bus.subscribe(
            f"{root}/device/+/+/state/update", f"{root}/device/+/+/twin/update"
        ) as messages:
            await tg.start(ModbusSimulator(specs).run)
            await tg.start(mapper.run)
            with anyio.fail_after(20):
                async for message in messages:
                    seen.append((anyio.current_time(), message.topic))
                    ticks = [t for t, topic in seen if "/ticking/state/" in topic]
                    quiet_twin = any("/quiet/twin/" in topic for _, topic in seen)
                    if len(ticks) >= 4 and quiet_twin:
                        break
        tg.cancel_scope.cancel()
    ticks = [t for t, topic in seen if "/ticking/state/" in topic]
    assert min(b - a for a, b in itertools.pairwise(ticks)) >= 0.9
    assert not [topic for _, topic in seen if "/quiet/state/" in topic]
