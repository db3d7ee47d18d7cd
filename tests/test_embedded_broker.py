"""The embedded broker that `edgedev demo` and brokerless test runs rely on."""

from __future__ import annotations

import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from edgedev import BrokerURL, Bus
from edgedev.broker import EmbeddedBroker
from edgedev.broker._codec import (
    SUBACK_FAILURE,
    Connect,
    Parser,
    Publish,
    SubAck,
    Subscribe,
    Will,
    encode,
)
from edgedev.broker._passwords import PasswordFile, add_user
from edgedev.broker._sessions import topic_matches
from edgedev.testing import Recorder, edgedev_process, free_port


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("$hw/events/device/+/twin/update", "$hw/events/device/ns.a/twin/update", True),
        ("$hw/events/device/+/twin/update", "$hw/events/device/a/twin/update/delta", False),
        ("$hw/events/#", "$hw/events/node/n/membership/get", True),
        ("a/#", "a", True),
        ("+/x", "$SYS/x", False),  # wildcards at the start never match $-topics
        ("#", "$hw/events/x", False),
        ("a/+/c", "a//c", True),
    ],
)
def test_topic_filters_match_as_mqtt_says(topic_filter: str, topic: str, expected: bool):
    assert topic_matches(topic_filter, topic) is expected


def test_parser_reassembles_packets_fed_byte_by_byte():
    packets = [
        Connect("m1", will=Will("$hw/events/node/n/mapper/state", b'{"state":"offline"}', 1)),
        Publish("$hw/events/device/a/twin/update", b"x" * 300, qos=1, packet_id=7),
        Subscribe(9, (("a/#", 1), ("$hw/events/+", 0))),
    ]
    parser = Parser()
    received = []
    for byte in b"".join(encode(p) for p in packets):
        received += parser.feed(bytes([byte]))
    assert received == packets
    assert parser.buffered == 0


async def test_dollar_topics_flow_in_order_and_retained_messages_reach_late_subscribers():
    async with (
        EmbeddedBroker(port=0) as broker,
        Bus(broker.url) as publisher,
        Bus(broker.url) as subscriber,
    ):
        await subscriber.wait_connected()
        async with Recorder(subscriber, "$hw/events/device/+/twin/update") as recorder:
            for i in range(300):
                publisher.publish("$hw/events/device/d/twin/update", str(i))
            with anyio.fail_after(10):
                await publisher.flush()
            await recorder.wait_count(lambda m: True, 300)
        assert [int(m.payload) for m in recorder.messages] == list(range(300))

        publisher.publish("$hw/events/device/d/state", b"online", retain=True)
        with anyio.fail_after(10):
            await publisher.flush()
        async with Recorder(subscriber, "$hw/events/device/+/state") as late:
            message = await late.wait_for(lambda m: True)
        assert message.payload == b"online"


async def test_a_client_that_vanishes_has_its_last_will_published():
    async with EmbeddedBroker(port=0) as broker, Bus(broker.url) as watcher:
        await watcher.wait_connected()
        async with Recorder(watcher, "$hw/events/node/+/mapper/state") as recorder:
            will = Will("$hw/events/node/n1/mapper/state", b'{"state":"offline"}', qos=1)
            stream = await anyio.connect_tcp("127.0.0.1", broker.port)
            await stream.send(encode(Connect("doomed-mapper", will=will)))
            parser = Parser()
            with anyio.fail_after(5):
                while not parser.feed(await stream.receive()):
                    pass  # wait for CONNACK
            await stream.aclose()  # no DISCONNECT: the broker must publish the will
            message = await recorder.wait_for(lambda m: True)
    assert message.payload == b'{"state":"offline"}'


def _subscriber(port: int, client_id: str, filters: list[str], per_packet: int = 1000) -> list[int]:
    """Subscribe ``filters`` on a raw blocking socket (in a worker thread); the SUBACK codes.

    The socket is left open (closed by the caller through the returned list's owner)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    _open_sockets.append(sock)
    sock.sendall(encode(Connect(client_id, keepalive=0)))
    parser = Parser()
    while not parser.feed(sock.recv(4)):
        pass
    packets = [filters[i : i + per_packet] for i in range(0, len(filters), per_packet)]
    sock.sendall(
        b"".join(
            encode(Subscribe(n + 1, tuple((f, 0) for f in chunk)))
            for n, chunk in enumerate(packets)
        )
    )
    codes: list[int] = []
    acks = 0
    while acks < len(packets):
        for packet in parser.feed(sock.recv(65536)):
            assert isinstance(packet, SubAck)
            codes += packet.return_codes
            acks += 1
    return codes


_open_sockets: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while _open_sockets:
        _open_sockets.pop().close()


async def test_one_clients_100000_wildcard_filters_do_not_slow_the_others():
    """Issue 32: on main each new topic was matched against every wildcard filter of every
    client (265 ms a message with 100,000 of them); now against the few that can match."""
    async with (
        EmbeddedBroker(port=0, max_subscriptions=200_000) as broker,
        Bus(broker.url) as publisher,
        Bus(broker.url) as subscriber,
    ):
        filters = [f"a{i}/+/#" for i in range(100_000)]
        codes = await anyio.to_thread.run_sync(_subscriber, broker.port, "greedy", filters)
        assert codes == [0] * 100_000
        await subscriber.wait_connected()
        async with Recorder(subscriber, "$hw/events/device/+/+/twin/update") as recorder:
            with anyio.fail_after(2):  # each message on a topic never seen before
                for i in range(300):
                    publisher.publish(f"$hw/events/device/ns/d{i}/twin/update", str(i))
                await recorder.wait_count(lambda m: True, 300)


async def test_a_client_holds_at_most_max_subscriptions_filters(
    caplog: pytest.LogCaptureFixture,
):
    async with EmbeddedBroker(port=0, max_subscriptions=100) as broker:
        filters = [f"f/{i}/#" for i in range(150)]
        codes = await anyio.to_thread.run_sync(_subscriber, broker.port, "many", filters, 40)
        assert codes == [0] * 100 + [SUBACK_FAILURE] * 50
        assert broker.refused_subscriptions == 50
        # one line per connection, however many SUBSCRIBEs went over
        assert caplog.text.count("the most one client may") == 1
        # a filter already held is not a new one: its QoS may still change
        again = await anyio.to_thread.run_sync(_subscriber, broker.port, "many", filters[:1])
        assert again == [0]


def test_password_files_of_mosquitto_passwd_and_ours_are_one_format(tmp_path: Path):
    ours = tmp_path / "ours"
    add_user(ours, "alice", "s3cret")
    add_user(ours, "bob", "other")
    add_user(ours, "alice", "n3w")  # replaces alice's line
    assert stat.S_IMODE(ours.stat().st_mode) == 0o600
    users = PasswordFile.read(ours)
    assert len(users) == 2
    assert users.check("alice", b"n3w") and users.check("bob", b"other")
    assert not users.check("alice", b"s3cret") and not users.check("carol", b"n3w")
    binary = shutil.which("mosquitto_passwd")
    if binary is not None:  # the reverse: a file of mosquitto_passwd read by us
        theirs = tmp_path / "theirs"
        subprocess.run([binary, "-b", "-c", str(theirs), "carol", "pw"], check=True)
        assert PasswordFile.read(theirs).check("carol", b"pw")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("alice:s3cret", "plain text"),
        ("alice:$6$c2FsdA==$aGFzaA==", "only $7$"),
        ("alice:$7$abc$c2FsdA==$aGFzaA==", "malformed"),
        ("no colon here", "expected 'username:hash'"),
    ],
)
def test_a_bad_password_file_is_refused_naming_file_and_line(tmp_path: Path, line: str, says: str):
    path = tmp_path / "passwd"
    path.write_text(f"# users\n{line}\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2:")) as raised:
        PasswordFile.read(path)
    assert says in str(raised.value)


async def test_broker_with_a_password_file_on_every_address_warns_and_refuses_strangers(
    tmp_path: Path,
):
    passwd = tmp_path / "passwd"
    added = await anyio.to_thread.run_sync(_add_user_command, passwd, "mapper", "s3cret")
    assert added.returncode == 0, added.stderr
    assert "s3cret" not in passwd.read_text()
    port = free_port()
    args = ["broker", "--host", "0.0.0.0", "--port", str(port), "--password-file", str(passwd)]
    with edgedev_process(*args) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert f"listening on mqtt://0.0.0.0:{port}" in lines[0], lines
        assert "does not encrypt" in lines[1], lines
        assert not any("no --password-file" in line for line in lines)
        secret = tmp_path / "secret"
        secret.write_text("s3cret\n")
        good = BrokerURL("127.0.0.1", port, username="mapper", password_file=str(secret))
        async with Bus(good) as bus:
            with anyio.fail_after(10):
                await bus.wait_connected()
        for user, password in (("mapper", b"guess"), (None, None), ("nobody", b"s3cret")):
            code = 5 if user is None else 4
            assert await anyio.to_thread.run_sync(_connack, port, user, password) == code


def test_broker_on_every_address_without_a_password_file_says_anyone_can_use_it():
    port = free_port()
    with edgedev_process("broker", "--host", "0.0.0.0", "--port", str(port)) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
    assert f"listening on mqtt://0.0.0.0:{port}" in lines[0]
    assert "reachable from other machines, with no --password-file" in lines[1]


def _add_user_command(passwd: Path, user: str, password: str) -> subprocess.CompletedProcess[str]:
    command = ["broker", "--password-file", str(passwd), "--add-user", user]
    return subprocess.run(
        [sys.executable, "-m", "edgedev", *command],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=False,
    )


def _connack(port: int, user: str | None, password: bytes | None) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode(Connect("stranger", username=user, password=password)))
        data = sock.recv(4)
    assert data[:2] == b"\x20\x02", data
    return data[3]
