"""Secured endpoints: Basic256Sha256 with SignAndEncrypt, client certificates made in the
test (with ``cryptography``), and user name and password. A wrong password, or a missing
certificate file, is an error that says so and takes only its own device offline."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anyio
import pytest
import yaml
from opcua_helpers import device, load, model, portal, root, served, state_of, url, visit

from edgedev import Bus, Mapper
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, docs_example
from edgedev_opcua import self_signed

pytestmark = pytest.mark.broker

PAGE = Path(__file__).resolve().parents[3] / "docs" / "protocols" / "opcua.md"


async def test_sign_and_encrypt_works_and_a_wrong_password_or_missing_cert_is_offline(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from asyncua import ua

    cert, key = self_signed("urn:edgedev:test:client", common_name="edgedev test").write(
        tmp_path, "client"
    )
    address = url()
    # the settings of docs/protocols/opcua.md, with this test's certificate and server
    page = yaml.safe_load(docs_example(PAGE, "opcua-security"))["configData"]
    assert (page["userName"], page["password"]) == ("operator", "s3cret")
    secured = {**page, "certificate": str(cert), "privateKey": str(key)}
    del secured["url"], secured["password"]
    props = [
        {"name": "level", "type": "DOUBLE", "accessMode": "ReadOnly"},
        {"name": "limit", "type": "INT"},
    ]
    visits = [visit("level", "ns=2;s=Tank.level"), visit("limit", "ns=2;s=Tank.limit")]
    devices = load(
        tmp_path,
        [
            model("tank", props),
            device("tank", "tank", address, visits, password="s3cret", **secured),
            device("intruder", "tank", address, visits, password="guess", **secured),
            device(
                "unsigned",
                "tank",
                address,
                visits,
                password="s3cret",
                **{**secured, "certificate": str(tmp_path / "missing-cert.pem")},
            ),
        ],
    )
    tank = devices[0]
    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    caplog.set_level(logging.WARNING, logger="edgedev")
    with portal() as p, served([tank], p) as server:  # the server knows only the right password
        endpoints = await anyio.to_thread.run_sync(
            server.call, server.sim.servers[address].get_endpoints
        )
        async with anyio.create_task_group() as tg:
            async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
                await tg.start(mapper.run)
                update = await recorder.wait_for(
                    lambda m: m.topic.endswith("/tank/twin/update"), timeout=20
                )
                await recorder.wait_for(state_of("tank", "online"))
                await recorder.wait_for(state_of("intruder", "offline"), timeout=20)
                await recorder.wait_for(state_of("unsigned", "offline"), timeout=20)
                assert (await mapper.runners["default/tank"].desired.write("limit", "40")).ok
                assert server.sim.get("default/tank", "limit") == 40
                states = [mapper.runners[d.id].state for d in devices]
            mapper.stop()
    # the server offers nothing but Basic256Sha256 with SignAndEncrypt
    assert {(e.SecurityPolicyUri.rsplit("#")[-1], e.SecurityMode) for e in endpoints} == {
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)
    }
    twin = json.loads(update.payload)["twin"]
    assert twin["level"]["metadata"]["type"] == "float"
    float(twin["level"]["actual"]["value"])
    assert states == ["online", "offline", "offline"]
    refusals = [r.getMessage() for r in caplog.records if "default/intruder" in r.getMessage()]
    assert any(
        "refused user 'operator' (BadUserAccessDenied)" in m and "check userName and password" in m
        for m in refusals
    ), refusals
    missing = [r.getMessage() for r in caplog.records if "default/unsigned" in r.getMessage()]
    assert any("missing-cert.pem' cannot be read" in m for m in missing), missing
    # an expected refusal, not a crash: nothing of edgedev's logged as an error
    assert not [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("edgedev")
    ]
