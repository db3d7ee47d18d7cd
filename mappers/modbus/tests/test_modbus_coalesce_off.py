"""``coalesce: false``: one Modbus request per property, for devices that refuse block reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modbus_helpers import device, fleet, free_port, load, model, root, visit

from edgedev.testing import topic_endswith

pytestmark = pytest.mark.broker


async def test_coalesce_off_reads_each_property_alone(tmp_path: Path, mqtt_url: str):
    props = [{"name": n, "type": "INT", "accessMode": "ReadOnly"} for n in ("a", "b", "c")]
    visits = [
        visit("a", register="HoldingRegister", offset=0),
        visit("b", register="HoldingRegister", offset=1, limit=2),
        visit("c", register="HoldingRegister", offset=3),
    ]
    spec = device("solo", "solo", free_port(), visits, coalesce=False)
    devices = load(tmp_path, [model("solo", props), spec])
    async with fleet(devices, mqtt_url, root()) as (sim, _, recorder):
        update = await recorder.wait_for(topic_endswith("/twin/update"), timeout=20)
        first = [(r.address, r.count) for r in sim.requests if r.is_read][:3]
    assert first == [(0, 1), (1, 2), (3, 1)]
    assert set(json.loads(update.payload)["twin"]) == {"a", "b", "c"}
