"""A production bus: strict URLs, TLS with client certificates, passwords from files, refusals.

Against mosquitto configured per case (tls_helpers.py, the configuration docs/reliability.md
shows) and against the embedded broker made to refuse with a given CONNACK code.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from edgedev import Bus
from edgedev._backoff import Backoff
from edgedev.broker import EmbeddedBroker
from edgedev.bus import BrokerConfigError, BrokerURL, Channel, Message, Topics, bus_metrics
from edgedev.cli import main
from edgedev.health._metrics import render
from edgedev.testing import Recorder, edgedev_process, free_port, unique_root
from edgedev.wire import twin_get
from edgedev_modbus import ModbusSimulator
from reliability_helpers import (
    Gate,
    eventually,
    fleet_docs,
    load_docs,
    readings,
    start_mapper,
    stop_process,
    write_docs,
)
from test_reliability_process import wait_http
from tls_helpers import USER, make_pki, password_file, secure_mosquitto

# -- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt://broker.local:1884", ("broker.local", 1884, False)),
        ("mqtts://broker.local", ("broker.local", 8883, True)),
        ("mqtt://127.0.0.1", ("127.0.0.1", 1883, False)),
        ("mqtt://[::1]:1883/", ("::1", 1883, False)),
        ("10.0.0.5:1999", ("10.0.0.5", 1999, False)),
    ],
)
def test_good_broker_urls(text: str, expected: tuple[str, int, bool]):
    url = BrokerURL.parse(text)
    assert (url.host, url.port, url.tls) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("mqtt//127.0.0.1:1883", "is not a broker URL"),
        ("http://127.0.0.1:1883", "unknown scheme 'http'"),
        ("mqtt://127.0.0.1:0", "port must be a number from 1 to 65535"),
        ("mqtt://127.0.0.1:70000", "port must be a number from 1 to 65535"),
        ("mqtt://127.0.0.1:x", "port must be a number from 1 to 65535"),
        ("mqtt://127.0.0.1:", "port must be a number from 1 to 65535"),
        ("mqtt://:1883", "no host"),
        ("mqtt://bad_host!:1883", "not a host name"),
        ("mqtt://127.0.0.1:1883/topic", "unexpected path"),
        ("mqtt://127.0.0.1:1883?x=1", "unexpected path"),
    ],
)
def test_bad_broker_urls_are_refused_saying_what_is_wrong(text: str, says: str):
    with pytest.raises(ValueError, match=says):
        BrokerURL.parse(text)


def test_the_password_is_never_shown():
    url = BrokerURL.parse("mqtt://edge:hunter2@broker:1883")
    assert url.password == "hunter2"
    assert "hunter2" not in str(url) and "hunter2" not in repr(url)
    with pytest.raises(ValueError) as refused:
        BrokerURL.parse("mqtt://edge:hunter2@broker:99999")
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value)


def test_a_malformed_broker_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]):
    assert main(["twin", "get", "default/x", "--broker", "mqtt//127.0.0.1:1883"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--broker" in err and "mqtt//127.0.0.1:1883" in err
    assert main(["watch", "--broker", "mqtt://u:hunter2@h:0"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and err.count("\n") == 1


def test_unusable_tls_settings_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    pki = make_pki(tmp_path / "pki")
    file = write_docs(tmp_path, fleet_docs(["p0"]))
    run = ["run", "-f", str(file), "--broker", "mqtts://localhost:1"]
    assert main([*run, "--ca-file", str(tmp_path / "missing.pem")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: CA file {tmp_path / 'missing.pem'} does not exist\n"
    mismatch = ["--cert-file", str(pki.client_cert), "--key-file", str(pki.stranger_key)]
    assert main([*run, "--ca-file", str(pki.ca), *mismatch]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "client certificate" in err and "cannot be used" in err
    plain = ["agent", "--db", ":memory:", "--broker", "mqtt://127.0.0.1:1"]
    assert main([*plain, "--ca-file", str(pki.ca)]) == 1
    assert "use mqtts://" in capsys.readouterr().err
    missing = tmp_path / "no-password"
    assert main([*plain, "--username", "u", "--password-file", str(missing)]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot read the password file {missing}")


def test_security_options_and_their_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from edgedev.cli import build_parser
    from edgedev.cli._common import resolve_bus_options

    pki = make_pki(tmp_path)
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("EDGEDEV_BROKER", "mqtts://localhost:8884")
    monkeypatch.setenv("EDGEDEV_CA_FILE", str(pki.ca))
    monkeypatch.setenv("EDGEDEV_CERT_FILE", str(pki.client_cert))
    monkeypatch.setenv("EDGEDEV_KEY_FILE", str(pki.client_key))
    monkeypatch.setenv("EDGEDEV_USERNAME", USER)
    monkeypatch.setenv("EDGEDEV_PASSWORD_FILE", str(secret))
    for command in (["watch"], ["twin", "get", "default/a"], ["agent"], ["run", "-f", "x"]):
        args = build_parser().parse_args(command)
        assert resolve_bus_options(args) is None
        url = args.broker
        assert (url.host, url.port, url.tls, url.username) == ("localhost", 8884, True, USER)
        assert (url.ca_file, url.cert_file, url.key_file) == tuple(
            map(str, (pki.ca, pki.client_cert, pki.client_key))
        )
        assert url.read_password() == "s3cret"
    monkeypatch.delenv("EDGEDEV_PASSWORD_FILE")
    monkeypatch.setenv("EDGEDEV_PASSWORD", "from-env")
    args = build_parser().parse_args(["watch", "--username", "other"])
    assert resolve_bus_options(args) is None
    assert (args.broker.username, args.broker.read_password()) == ("other", "from-env")
    # a password on the command line works, with a warning that says where it shows
    monkeypatch.delenv("EDGEDEV_PASSWORD")
    args = build_parser().parse_args(["watch", "--broker", "mqtts://u:p4ss@localhost"])
    with caplog.at_level(logging.WARNING, "edgedev.cli"):
        assert resolve_bus_options(args) is None
    assert "visible to every user" in caplog.text and "p4ss" not in caplog.text
    # the demo keeps its embedded broker unless told otherwise
    args = build_parser().parse_args(["demo"])
    assert resolve_bus_options(args) is None and args.broker is None


def test_bus_refuses_unusable_tls_files_at_once(tmp_path: Path):
    with pytest.raises(BrokerConfigError, match="does not exist"):
        Bus(BrokerURL("localhost", 8883, tls=True, ca_file=str(tmp_path / "nope.pem")))


# -- refusals ------------------------------------------------------------------------------


async def test_connack_3_then_success_loses_no_message(caplog: pytest.LogCaptureFixture):
    """The broker says 'server unavailable' three times: the bus retries, keeps the queue."""
    attempts: list[str | None] = []

    def flaky(client_id: str, username: str | None, password: bytes | None) -> int:
        if client_id.startswith("refused"):
            attempts.append(username)
            return 3 if len(attempts) <= 3 else 0
        return 0

    root = unique_root("connack")
    async with (
        EmbeddedBroker(authenticate=flaky) as broker,
        Bus(broker.url) as watcher,
        Recorder(watcher, f"{root}/#") as recorder,
    ):
        url = BrokerURL.parse(broker.url)
        with caplog.at_level(logging.WARNING, "edgedev.bus"):
            async with Bus(url, client_id="refused-1") as bus:
                for i in range(100):
                    bus.publish(f"{root}/n", str(i))
                with anyio.fail_after(20):
                    await bus.wait_connected()
                    await bus.flush()
                assert bus.connect_failures == 3 and bus.last_error is None
        await recorder.wait_for(lambda m: m.payload == b"99", timeout=10)
    assert [m.payload for m in recorder.messages] == [str(i).encode() for i in range(100)]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals and "Server unavailable" in refusals[0]
    assert len(refusals) == 1, "the same cause is logged once, not at every attempt"
    assert any("connected to broker" in r.getMessage() for r in caplog.records)


async def test_a_clean_exit_says_disconnect(caplog: pytest.LogCaptureFixture):
    """The broker sees DISCONNECT: no will, no 'closed without DISCONNECT' in its log."""
    from edgedev.bus import Message

    root = unique_root("bye")
    async with (
        EmbeddedBroker() as broker,
        Bus(broker.url) as watcher,
        Recorder(watcher, f"{root}/#") as recorder,
    ):
        with caplog.at_level(logging.DEBUG, "edgedev.broker"):
            async with Bus(
                broker.url, client_id="polite", will=Message(f"{root}/will", b"dead")
            ) as bus:
                with anyio.fail_after(10):
                    await bus.wait_connected()
                bus.publish(f"{root}/hello", "hi")
                with anyio.fail_after(10):
                    await bus.flush()
            await eventually(lambda: "polite" not in broker.client_ids)
        await recorder.wait_for(lambda m: m.payload == b"hi", timeout=10)
    said = [r.getMessage() for r in caplog.records if "'polite'" in r.getMessage()]
    assert any("sent DISCONNECT" in line for line in said), said
    assert not any("without DISCONNECT" in line for line in said)
    assert not any(m.topic.endswith("/will") for m in recorder.messages)


# -- mosquitto with TLS, client certificates and passwords ---------------------------------


def _security_args(pki_dir: Path, secret: Path) -> list[str]:
    return [
        "--ca-file",
        str(pki_dir / "ca.pem"),
        "--cert-file",
        str(pki_dir / "client.pem"),
        "--key-file",
        str(pki_dir / "client.key"),
        "--username",
        USER,
        "--password-file",
        str(secret),
    ]


async def agent_listens(bus: Bus, recorder: Recorder, root: str, device: str) -> None:
    """Return once the agent answers ``twin/get`` (a 404 will do): it is subscribed."""
    topics = Topics(root)
    with anyio.fail_after(60):
        while True:
            start = len(recorder.messages)
            bus.publish(topics.device(device, Channel.TWIN_GET), twin_get(event_id="ready"))
            try:
                await recorder.wait_for(
                    lambda m: m.topic.endswith("/twin/get/result"), timeout=1, after=start
                )
            except TimeoutError:
                continue  # not subscribed yet: ask again
            return


async def test_mosquitto_with_tls_client_certificates_and_a_password_file(tmp_path: Path):
    """A mapper, an agent and the twin CLI all reach mosquitto over mutual TLS."""
    pki = make_pki(tmp_path / "pki")
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    broker = secure_mosquitto(pki, password_file(tmp_path / "passwd", USER, "s3cret"))
    docs = fleet_docs(["tls0"], cycle_ms=200)
    file = write_docs(tmp_path, docs)
    root = unique_root("tls")
    sim = ModbusSimulator(load_docs(tmp_path, docs))
    url = BrokerURL(
        "localhost",
        broker.port,
        tls=True,
        username=USER,
        password_file=str(secret),
        ca_file=str(pki.ca),
        cert_file=str(pki.client_cert),
        key_file=str(pki.client_key),
    )
    common = [
        "--broker",
        broker.url,
        "--topic-root",
        root,
        *_security_args(tmp_path / "pki", secret),
    ]
    with broker:
        async with anyio.create_task_group() as tg:
            await tg.start(sim.run)
            async with Bus(url) as bus, Recorder(bus, f"{root}/#") as recorder:
                with edgedev_process("agent", "--db", ":memory:", *common, output=False):
                    # the agent learns the device from the mapper's announcement: it must be
                    # listening before the mapper starts (see agent_listens)
                    await agent_listens(bus, recorder, root, "default/tls0")
                    mapper = edgedev_process("run", "-f", str(file), *common, output=False)
                    with mapper:
                        report = await recorder.wait_for(
                            lambda m: m.topic.endswith("/tls0/twin/update"),
                            timeout=60,  # two processes start and shake hands
                        )
                        assert "actual" in json.loads(report.payload)["twin"]["n"]
                        await recorder.wait_for(
                            lambda m: m.topic.endswith("/tls0/twin/update/document"), timeout=60
                        )
                        with anyio.fail_after(60):
                            got = await anyio.run_process(
                                [
                                    sys.executable,
                                    "-m",
                                    "edgedev",
                                    "twin",
                                    "get",
                                    "default/tls0",
                                    "--timeout",
                                    "30",
                                    *common,
                                ],
                                check=False,
                            )
                        assert got.returncode == 0, got.stderr.decode()
                        assert b"tls0" in got.stdout or b"n" in got.stdout
            tg.cancel_scope.cancel()
        log = broker.log_file.read_text()
    # every edgedev client said DISCONNECT on its way out (SIGTERM is a clean exit)
    unclean = [line for line in log.splitlines() if "closed its connection" in line]
    assert all("<unknown>" in line for line in unclean), unclean
    said_bye = [
        line for line in log.splitlines() if "Client edgedev-" in line and "disconn" in line
    ]
    assert len(said_bye) == 3, log  # the agent, the mapper and 'twin get'


async def test_tls_failures_are_states_with_their_cause(tmp_path: Path):
    """No client certificate, or a server certificate for another name: retried, cause kept."""
    pki = make_pki(tmp_path / "pki")
    with secure_mosquitto(pki, None) as broker:
        async with Bus(BrokerURL("localhost", broker.port, tls=True, ca_file=str(pki.ca))) as bus:
            await eventually(lambda: bus.connect_failures >= 2)
            assert not bus.connected
            assert bus.last_error is not None and "before answering CONNECT" in bus.last_error
    elsewhere = make_pki(tmp_path / "elsewhere", server_name="broker.elsewhere.example")
    with secure_mosquitto(elsewhere, None) as broker:
        url = BrokerURL(
            "localhost",
            broker.port,
            tls=True,
            ca_file=str(elsewhere.ca),
            cert_file=str(elsewhere.client_cert),
            key_file=str(elsewhere.client_key),
        )
        async with Bus(url) as bus:
            await eventually(lambda: bus.connect_failures >= 2)
            assert not bus.connected
            assert bus.last_error is not None and "certificate was refused" in bus.last_error
            assert "localhost" in bus.last_error  # the name that did not match
        async with Bus(replace(url, tls_insecure=True)) as bus:  # the chain is still checked
            with anyio.fail_after(20):
                await bus.wait_connected()


async def test_wrong_password_keeps_running_and_delivers_the_queue_once_fixed(tmp_path: Path):
    """mosquitto refuses the mapper's password; the mapper waits, logs, and catches up.

    A gate in front of mosquitto holds the mapper back after the fix until the watcher has
    subscribed, so that the test sees every queued reading.
    """
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    passwd = password_file(tmp_path / "passwd", USER, "not-what-the-mapper-has")
    broker = secure_mosquitto(None, passwd)
    docs = fleet_docs(["pw0"], cycle_ms=100)
    file = write_docs(tmp_path, docs)
    root = unique_root("pw")
    sim = ModbusSimulator(load_docs(tmp_path, docs))
    gate = Gate(broker.port)
    health = free_port()
    watcher_url = BrokerURL("127.0.0.1", broker.port, username=USER, password_file=str(secret))
    with broker:
        async with anyio.create_task_group() as tg:
            await tg.start(sim.run)
            await tg.start(gate.run)
            proc = start_mapper(
                [file],
                "--broker",
                gate.url,
                "--topic-root",
                root,
                "--username",
                USER,
                "--password-file",
                str(secret),
                "--data-dir",
                str(tmp_path / "data"),
                "--health-port",
                str(health),
            )
            try:
                with anyio.fail_after(30):
                    while True:
                        body = await wait_http(health, "/readyz", 503)
                        if "refused the connection: not authori" in body.lower():
                            break
                        await anyio.sleep(0.2)
                await sim.wait_requests(len(sim.requests) + 20, timeout=20)
                assert proc.poll() is None, "a refusal is not an exit"
                refused_until = time.time() * 1000
                gate.close()
                password_file(passwd, USER, "s3cret")
                broker.stop()
                broker.start()
                async with Bus(watcher_url) as bus, Recorder(bus, f"{root}/#") as recorder:
                    gate.open()

                    def caught_up() -> bool:
                        got = readings(recorder.messages).get("pw0", [])
                        return any(ts > refused_until + 500 for _, ts in got)

                    with anyio.fail_after(40):
                        while not caught_up():
                            await recorder.wait_for(
                                lambda m: True, after=len(recorder.messages), timeout=40
                            )
                assert "connected" in await wait_http(health, "/readyz", 200)
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=30)
            finally:
                stop_process(proc)
            tg.cancel_scope.cancel()
    said = err.decode().lower()
    assert said.count("refused the connection: not authori") == 1, said  # once, not per try
    assert "connected to broker" in said and "again" in said
    assert proc.returncode == 0
    stamps = [ts for _, ts in readings(recorder.messages)["pw0"]]
    queued = [ts for ts in stamps if ts <= refused_until]
    assert len(queued) >= 10, "readings taken while refused arrived once the password worked"
    assert stamps == sorted(stamps)


@pytest.mark.needs("edgedev_mqtt")
async def test_mqtt_devices_reach_their_broker_with_tls_client_certificates_and_a_password(
    tmp_path: Path,
):
    """An MQTT device's broker takes the bus's settings: CA, client certificate, password file."""
    from edgedev import Mapper
    from edgedev.mapper import StateChanges
    from edgedev.mqtt import KubeEdgeMqtt
    from edgedev.testing import device, device_model, load_documents
    from edgedev_mqtt import MqttSimulator

    pki = make_pki(tmp_path / "pki")
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    broker = secure_mosquitto(pki, password_file(tmp_path / "passwd", USER, "s3cret"))
    config = {
        "brokerURL": f"mqtts://localhost:{broker.port}",
        "caFile": str(pki.ca),
        "certFile": str(pki.client_cert),
        "keyFile": str(pki.client_key),
        "username": USER,
        "passwordFile": str(secret),
    }
    visit = {"protocolName": "mqtt", "configData": {"topic": "secure/level"}}
    docs = [
        device_model("tank", "mqtt", [{"name": "level", "type": "INT"}]),
        device("tank-1", "tank", "mqtt", config, [{"name": "level", "visitors": visit}]),
    ]
    specs = load_documents(tmp_path, docs)
    root = unique_root("mqtt-tls")
    with broker:
        url = BrokerURL(
            "localhost",
            broker.port,
            tls=True,
            username=USER,
            password_file=str(secret),
            ca_file=str(pki.ca),
            cert_file=str(pki.client_cert),
            key_file=str(pki.client_key),
        )
        mapper = Mapper(specs, transports=[KubeEdgeMqtt(url, topic_root=root)], name=f"m-{root}")
        async with (
            anyio.create_task_group() as tg,
            Bus(url) as bus,
            Recorder(bus, f"{root}/#") as recorder,
        ):
            await tg.start(MqttSimulator(specs).run)  # the device, a client of the same broker
            await tg.start(mapper.run)
            report = await recorder.wait_for(
                lambda m: m.topic.endswith("/tank-1/twin/update"), timeout=20
            )
            assert "level" in json.loads(report.payload)["twin"]
            tg.cancel_scope.cancel()

        # a wrong password: the device is offline, and says why
        wrong = tmp_path / "wrong"
        wrong.write_text("nope\n")
        docs[1]["spec"]["protocol"]["configData"]["passwordFile"] = str(wrong)
        specs = load_documents(tmp_path, docs)
        changes = StateChanges()
        mqtt = KubeEdgeMqtt(url, topic_root=root)
        mapper = Mapper(specs, transports=[mqtt], name=f"m2-{root}", sinks=[changes])
        async with anyio.create_task_group() as tg:
            await tg.start(mapper.run)
            runner = mapper.runners["default/tank-1"]
            with anyio.fail_after(20):
                await changes.wait_until(lambda: runner.state == "offline")
            assert "refused the connection" in (runner.reason or ""), runner.reason
            tg.cancel_scope.cancel()


# messages that would cost the connection (issue 32) ---------------------------------------


async def test_messages_no_broker_takes_are_dropped_at_publish_and_counted(
    caplog: pytest.LogCaptureFixture,
):
    """On main ``t/a\\x00b`` went out: the broker cut the connection for a malformed packet and
    the bus sent it again ~10 times a second for good."""
    root = unique_root("refused")
    async with (
        EmbeddedBroker(port=0) as broker,
        Bus(broker.url, max_packet_size=64 * 1024) as bus,
        Recorder(bus, f"{root}/#") as recorder,
    ):
        await bus.wait_connected()
        for topic in (f"{root}/a\x00b", f"{root}/a+b", f"{root}/a/#", "", f"{root}/\udc80"):
            bus.publish(topic, b"x")
        bus.publish(f"{root}/big", b"x" * 64 * 1024)  # with its header: over the limit
        bus.publish(f"{root}/ok", b"fine")
        await recorder.wait_for(lambda m: m.topic == f"{root}/ok")
        assert bus.refused == 6 and bus.reconnects == 0
        assert [m.topic for m in recorder.messages] == [f"{root}/ok"]
        metrics = render(bus_metrics(bus))
        assert "edgedev_publish_refused_total 6" in metrics
    # one line per reason (both wildcards are one)
    assert caplog.text.count("dropped a message to") == 5


async def test_a_message_that_costs_the_connection_is_dropped_after_three_tries(
    caplog: pytest.LogCaptureFixture,
):
    """The broker's limit is lower than the bus knows: the message passes publish() and the
    broker cuts the connection each time it comes. On main it was re-sent for good (the agent
    reconnected ~15 times a second and answered nobody)."""
    root = unique_root("poison")
    backoff = Backoff(0.01, 0.05)
    async with (
        EmbeddedBroker(port=0, max_packet_size=32 * 1024) as broker,
        Bus(broker.url) as watcher,
        Recorder(watcher, f"{root}/#") as recorder,
        Bus(broker.url, backoff=backoff) as bus,
    ):
        await bus.wait_connected()
        await watcher.wait_connected()
        for i in range(20):
            bus.publish(f"{root}/before", str(i))
        bus.publish(f"{root}/poison", b"x" * 40 * 1024)
        for i in range(20):
            bus.publish(f"{root}/after", str(i))
        await recorder.wait_count(lambda m: m.topic == f"{root}/after", 20, timeout=20)
        with anyio.fail_after(10):
            await bus.flush()
        assert bus.poisoned == 1
        assert bus.reconnects <= 2 * 3  # a few tries, not a loop
        # nothing else lost, in order: at least once (a resend may repeat one)
        befores = [int(m.payload) for m in recorder.messages if m.topic.endswith("/before")]
        assert sorted(set(befores)) == list(range(20))
        afters = [int(m.payload) for m in recorder.messages if m.topic.endswith("/after")]
        assert afters == list(range(20))
        assert not any(m.topic.endswith("/poison") for m in recorder.messages)
    assert caplog.text.count("closed the connection each of the 3 times") == 1


async def test_every_command_that_connects_takes_the_broker_s_packet_size(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """``--max-packet-size`` (env ``EDGEDEV_MAX_PACKET_SIZE``) reaches each command's bus."""
    from edgedev.cli import build_parser
    from edgedev.cli._common import resolve_bus_options

    commands = (["watch"], ["twin", "get", "default/a"], ["agent"], ["run", "-f", "x"], ["view"])
    for command in commands:
        args = build_parser().parse_args([*command, "--max-packet-size", "4096"])
        assert resolve_bus_options(args) is None
        assert Bus(args.broker).max_packet_size == 4096
    args = build_parser().parse_args(["watch"])
    assert resolve_bus_options(args) is None
    assert Bus(args.broker).max_packet_size == 16 * 1024 * 1024
    monkeypatch.setenv("EDGEDEV_MAX_PACKET_SIZE", "1000")
    for command in commands:
        args = build_parser().parse_args(command)
        assert resolve_bus_options(args) is None
        assert args.broker.max_packet_size == 1000
    args = build_parser().parse_args(["watch", "--max-packet-size", "2000"])
    assert resolve_bus_options(args) is None and args.broker.max_packet_size == 2000
    # the demo reads no broker setting from the environment; told one, it takes the option
    args = build_parser().parse_args(["demo", "--broker", "mqtt://127.0.0.1:1"])
    assert resolve_bus_options(args) is None and args.broker.max_packet_size is None
    args = build_parser().parse_args(["demo", "--max-packet-size", "3000", "--broker", "h"])
    assert resolve_bus_options(args) is None and args.broker.max_packet_size == 3000
    # wrong values: one line naming where they came from
    monkeypatch.setenv("EDGEDEV_MAX_PACKET_SIZE", "64k")
    assert main(["watch"]) == 2
    said = capsys.readouterr().err
    assert said == "error: EDGEDEV_MAX_PACKET_SIZE: not a number of bytes: '64k'\n"
    for bad in ("0", "268435461", "-5", "1.5"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(["watch", "--max-packet-size", bad])
        assert exit_info.value.code == 2
        assert "--max-packet-size" in capsys.readouterr().err


async def test_a_report_over_mosquitto_s_max_packet_size_is_dropped_and_the_rest_arrive(
    tmp_path: Path,
):
    """mosquitto set with ``max_packet_size`` cuts the connection of a client that sends a
    bigger packet (and, MQTT 3.1.1, says nothing of its limit in CONNACK). Told the limit, the
    mapper drops the one report over it, counts it and stays connected; the next arrive."""
    from edgedev.testing import Mosquitto, device, device_model, load_documents, write_documents

    if not Mosquitto.available():
        pytest.skip("mosquitto is not installed")
    limit = 450  # a report of this device: ~340 bytes, ~530 with a 200-character label

    def visit(**config: object) -> dict[str, object]:
        return {"protocolName": "modbus", "configData": {"register": "HoldingRegister", **config}}

    docs = [
        device_model(
            "panel",
            "modbus",
            [
                {"name": "label", "type": "STRING", "accessMode": "ReadWrite"},
                {"name": "n", "type": "INT", "accessMode": "ReadOnly"},
            ],
        ),
        device(
            "panel-1",
            "panel",
            "modbus",
            {"ip": "127.0.0.1", "port": free_port()},
            [
                {
                    "name": "label",
                    "collectCycle": 100,
                    "reportCycle": 100,
                    "visitors": visit(offset=10, limit=100, dataType="string"),
                },
                {"name": "n", "collectCycle": 100, "reportCycle": 100, "visitors": visit(offset=0)},
            ],
        ),
    ]
    file = write_documents(tmp_path, docs)
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    root = unique_root("packet")
    health = free_port()

    def label(message: Message) -> str | None:
        if not message.topic.endswith("/panel-1/twin/update"):
            return None
        value: str = json.loads(message.payload)["twin"]["label"]["actual"]["value"]
        return value

    with Mosquitto(settings=f"allow_anonymous true\nmax_packet_size {limit}") as broker:
        async with anyio.create_task_group() as tg:
            await tg.start(sim.run)
            async with Bus(broker.url) as bus, Recorder(bus, f"{root}/#") as recorder:
                await bus.wait_connected()
                sim.set("default/panel-1", "label", "short")
                proc = start_mapper(
                    [file],
                    *("--broker", broker.url, "--topic-root", root),
                    *("--max-packet-size", str(limit), "--health-port", str(health)),
                )
                try:
                    await recorder.wait_for(lambda m: label(m) == "short", timeout=30)
                    sim.set("default/panel-1", "label", "x" * 200)
                    with anyio.fail_after(20):
                        while True:
                            metrics = await wait_http(health, "/metrics", 200)
                            if _sample(metrics, "edgedev_publish_refused_total") >= 5:
                                break
                            await anyio.sleep(0.2)
                    sim.set("default/panel-1", "label", "back")
                    # the next reports arrive, on the same connection
                    await recorder.wait_count(lambda m: label(m) == "back", 5, timeout=20)
                    metrics = await wait_http(health, "/metrics", 200)
                    assert proc.poll() is None
                    proc.send_signal(signal.SIGTERM)
                    _, err = proc.communicate(timeout=30)
                finally:
                    stop_process(proc)
            tg.cancel_scope.cancel()
        mosquitto_log = broker.log_file.read_text()
    labels = [label(m) for m in recorder.messages]
    assert "x" * 200 not in labels  # none went out
    assert labels.count("back") >= 5
    assert _sample(metrics, "edgedev_broker_reconnects_total") == 0
    assert _sample(metrics, "edgedev_publish_poisoned_total") == 0
    refused = _sample(metrics, 'edgedev_values_dropped_total{reason="publish_refused"}')
    assert refused >= 2 * 5  # both of the device's values in each report dropped
    # one connection for the mapper's whole run: mosquitto never had to cut it
    assert "oversize packet" not in mosquitto_log, mosquitto_log
    assert mosquitto_log.count(" as edgedev-modbus-") == 1, mosquitto_log
    said = err.decode()
    assert said.count(f"is over the broker's limit of {limit}") == 1, said  # once a minute


def _sample(metrics: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels) in a /metrics text; 0 when absent."""
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    return 0.0
