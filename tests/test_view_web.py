"""The web view over HTTP, no browser: its JSON API, its event stream, its writes.

A real broker, a real twin agent, the view served by uvicorn on a free port, and httpx.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from edgedev.bus._client import Bus
from edgedev.bus._topics import Channel, Topics
from edgedev.cli import main
from edgedev.view import History, TwinView
from edgedev.view._web import ViewServer
from edgedev.wire import desired_update, request, state_update, twin_report
from reliability_helpers import eventually
from twin_helpers import DEVICE, agent_running, root, thermostat

pytestmark = pytest.mark.broker


@asynccontextmanager
async def serving(url: str, topic_root: str, **kwargs: Any) -> AsyncIterator[ViewServer]:
    server = ViewServer(url, topic_root, port=0, **kwargs)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        assert server.bus is not None
        with anyio.fail_after(10):
            await server.bus.wait_connected()
        yield server
        tg.cancel_scope.cancel()


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The server-sent events of a streamed response, as ``(name, body)``."""
    name, data = "", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            yield name, json.loads(data)
            name, data = "", ""


async def until(http: httpx.AsyncClient, device: str, prop: str, key: str, value: str) -> None:
    """Follow the event stream until ``device``'s ``prop`` has ``key`` equal to ``value``."""
    with anyio.fail_after(10):
        async with http.stream("GET", "/api/events", params={"open": device}) as response:
            async for _name, body in events(response):
                for opened in body["open"]:
                    if any(p["name"] == prop and p[key] == value for p in opened["props"]):
                        return


def report(topics: Topics, bus: Bus, value: float, device: str = DEVICE) -> None:
    body = twin_report([("temp", str(value), "float", 1), ("mode", "auto", "string", 1)])
    bus.publish(topics.device(device, Channel.TWIN_UPDATE), body)


async def test_the_api_lists_devices_with_state_since_units_and_history(mqtt_url, tmp_path):
    topic_root = root()
    topics = Topics(topic_root)
    devices, _ = thermostat(tmp_path)
    async with (
        serving(mqtt_url, topic_root, devices=devices) as server,
        Bus(mqtt_url) as bus,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        bus.publish(topics.device(DEVICE, Channel.STATE_UPDATE), state_update("online"))
        for value in (20.5, 21.0):
            report(topics, bus, value)
        await until(http, DEVICE, "temp", "reported", "21.0")

        page = await http.get("/")
        assert page.status_code == 200 and "edgedev" in page.text
        assert (await http.get("/static/uPlot.iife.min.js")).status_code == 200

        fleet = (await http.get("/api/fleet")).json()
        assert fleet["writes"] is False
        (summary,) = fleet["devices"]
        assert summary["id"] == DEVICE and summary["protocol"] == "modbus"
        assert summary["state"] == "online" and summary["since"] > 0

        detail = (await http.get(f"/api/devices/{DEVICE}")).json()
        props = {p["name"]: p for p in detail["props"]}
        assert props["temp"]["reported"] == "21.0" and props["temp"]["numeric"]
        assert props["temp"]["history"][-1][1] == 21.0
        assert props["setpoint"]["writable"] and props["setpoint"]["maximum"] == 30
        assert props["temp"]["writable"] is False
        assert props["mode"]["changes"][-1][1] == "auto" and not props["mode"]["numeric"]
        assert "config" not in json.dumps(detail)  # connection settings never leave the process

        assert (await http.get("/api/devices/plant/nothing")).status_code == 404
        # a page whose name was rebound to 127.0.0.1 is not the view's own
        rebound = await http.get("/api/fleet", headers={"Host": "evil.example:8088"})
        assert rebound.status_code == 400


async def test_events_push_changes_coalesced_to_a_few_a_second(mqtt_url):
    topic_root = root()
    topics = Topics(topic_root)
    async with (
        serving(mqtt_url, topic_root, redraw=0.25) as server,
        Bus(mqtt_url) as bus,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        with anyio.fail_after(10):
            await bus.wait_connected()
        async with http.stream("GET", "/api/events", params={"open": DEVICE}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            name, body = await anext(stream)
            assert name == "snapshot" and body["devices"] == []

            report(topics, bus, 1.0)
            with anyio.fail_after(5):
                name, body = await anext(stream)
            assert name == "update"
            assert [d["id"] for d in body["devices"]] == [DEVICE]
            (opened,) = body["open"]
            assert {p["name"]: p["reported"] for p in opened["props"]}["temp"] == "1.0"

            # a burst of 300 reports: at most a few events a second reach the page
            for i in range(300):
                report(topics, bus, 2.0 + i)
            seen = 0
            last = ""
            with anyio.move_on_after(1.5):
                async for _name, body in stream:
                    seen += 1
                    for p in body["open"][0]["props"] if body["open"] else []:
                        if p["name"] == "temp":
                            last = p["reported"]
                    if last == "301.0":
                        break
            assert last == "301.0"  # the last value arrives, whatever was coalesced
            assert seen <= 1.5 / 0.25 + 1, f"{seen} events in 1.5 s"


async def test_writes_go_through_the_agent_with_its_checks(mqtt_url, tmp_path):
    topic_root = root()
    devices, _ = thermostat(tmp_path)
    async with (
        agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices),
        serving(mqtt_url, topic_root, devices=devices, allow_writes=True, timeout=5) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        url = f"/api/devices/{DEVICE}/desired"
        ok = await http.post(url, json={"property": "setpoint", "value": "22.5"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["twin"]["setpoint"]["expected"]["value"] == "22.5"
        # the agent's document tells the view the new desired value
        await until(http, DEVICE, "setpoint", "desired", "22.5")

        high = await http.post(url, json={"property": "setpoint", "value": "99"})
        assert high.status_code == 400
        assert "maximum 30" in high.json()["reason"]
        assert server.view.devices[DEVICE].properties["setpoint"].desired == "22.5"

        read_only = await http.post(url, json={"property": "temp", "value": "1"})
        assert read_only.status_code == 400 and "temp" in read_only.json()["reason"]

        unknown = await http.post(
            "/api/devices/plant/ghost/desired", json={"property": "x", "value": "1"}
        )
        assert unknown.status_code == 404

        # what a page on another site could send is refused before it reaches the agent
        forged = await http.post(
            url,
            json={"property": "setpoint", "value": "11"},
            headers={"Origin": "http://evil.example"},
        )
        assert forged.status_code == 403
        form = await http.post(
            url,
            content=b'{"property": "setpoint", "value": "11"}',
            headers={"Content-Type": "text/plain"},
        )
        assert form.status_code == 415
        bad = await http.post(url, json={"property": "setpoint"})
        assert bad.status_code == 400


async def test_without_allow_writes_nothing_is_written_and_no_agent_means_504(mqtt_url):
    topic_root = root()
    async with (
        serving(mqtt_url, topic_root) as ro,
        serving(mqtt_url, topic_root, allow_writes=True, timeout=0.5) as rw,
        Bus(mqtt_url) as bus,
        bus.subscribe(f"{topic_root}/#") as seen,
        httpx.AsyncClient() as http,
    ):
        body = {"property": "setpoint", "value": "20"}
        refused = await http.post(ro.url + f"api/devices/{DEVICE}/desired", json=body)
        assert refused.status_code == 403
        assert "--allow-writes" in refused.json()["reason"]
        with anyio.move_on_after(0.3):
            async for message in seen:
                pytest.fail(f"a read-only view published {message.topic}")

        silent = await http.post(rw.url + f"api/devices/{DEVICE}/desired", json=body)
        assert silent.status_code == 504 and "no answer" in silent.json()["reason"]


async def test_edgedev_view_serves_what_the_bus_carries(mqtt_url, tmp_path):
    from edgedev.testing import free_port
    from edgedev.testing._process import edgedev_process

    topic_root = root()
    topics = Topics(topic_root)
    _, path = thermostat(tmp_path)
    port = free_port()
    args = ["view", "--broker", mqtt_url, "--topic-root", topic_root, "--port", str(port)]
    with edgedev_process(*args, "-f", str(path)) as proc:
        assert proc.stdout is not None
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
        assert line.startswith(f"web view: http://127.0.0.1:{port}/ (read-only"), line
        async with (
            Bus(mqtt_url) as bus,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            with anyio.fail_after(10):
                await bus.wait_connected()
            assert (await http.get("/api/fleet")).json()["devices"][0]["protocol"] == "modbus"

            async def reports() -> None:  # the view may still be connecting: report each 0.2 s
                while True:
                    report(topics, bus, 7.5)
                    await anyio.sleep(0.2)

            async with anyio.create_task_group() as tg:
                tg.start_soon(reports)
                await until(http, DEVICE, "temp", "reported", "7.5")
                tg.cancel_scope.cancel()


def test_view_reports_a_taken_port(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["view", "--broker", "mqtt://127.0.0.1:1", "--port", str(port)])
    assert code == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


# the state behind every view, without I/O ------------------------------------------------


def test_history_keeps_a_bounded_window_of_slots():
    history = History(window=10.0, points=5)  # 2 s slots
    for t in range(100, 131):
        history.add(float(t), float(t))
    points = history.points()
    assert len(points) == 5  # 30 s of values, 5 slots kept
    assert points[-1] == (130.0, 130.0) and points[0][0] == 122.0
    history.add(110.0, -1.0)  # older than the window: dropped
    assert -1.0 not in [v for _, v in history.points()]
    history.add(139.0, 9.0)  # a silence of 8 s: the slots in between are empty
    assert history.points() == [(130.0, 130.0), (138.0, 9.0)]
    assert history.points(since=131) == [(138.0, 9.0)]


def test_view_takes_desired_values_from_the_agent_and_states_with_their_time():
    from edgedev.wire import desired_update, dumps

    topics = Topics("r")
    view = TwinView(topics, window=60, points=30)
    dev = "plant/thermo"
    view.apply(topics.device(dev, Channel.STATE_UPDATE), state_update("online", timestamp=5000))
    view.apply(topics.device(dev, Channel.STATE_UPDATE), state_update("online", timestamp=9000))
    assert (view.devices[dev].state, view.devices[dev].since) == ("online", 5.0)

    # an app's request is not the twin: a refused one must not show as desired
    view.apply(topics.device(dev, Channel.TWIN_UPDATE), desired_update({"sp": "99"}), now=1)
    assert view.devices[dev].properties["sp"].desired is None
    document = {
        "twin": {"sp": {"current": {"expected": {"value": "22"}, "metadata": {"type": "float"}}}}
    }
    view.apply(topics.device(dev, Channel.TWIN_DOCUMENT), dumps(document), now=2)
    report = twin_report([("sp", "20", "float", 1)])
    view.apply(topics.device(dev, Channel.TWIN_UPDATE), report, now=3)
    prop = view.devices[dev].properties["sp"]
    assert (prop.desired, prop.reported, prop.pending) == ("22", "20", True)
    assert view.take_dirty() == {dev} and view.take_dirty() == set()
    assert view.detail(dev)["props"][0]["history"] == [(2.0, 20.0)]
    assert not math.isnan(prop.history.points()[0][1])  # type: ignore[union-attr]


def test_static_files_and_their_notice_ship_in_the_package():
    static = Path(__file__).resolve().parents[1] / "src" / "edgedev" / "view" / "static"
    notice = (static / "NOTICE").read_text()
    assert "uPlot 1.6.32" in notice and "MIT" in notice
    for name in ("index.html", "view.js", "view.css", "uPlot.iife.min.js", "uPlot.min.css"):
        assert (static / name).is_file(), name


# hostile clients (issue 32) ---------------------------------------------------------------


def _idle(port: int, count: int, first: bytes = b"") -> list[socket.socket]:
    """``count`` connections that send ``first`` (nothing, or part of a request) and wait."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        if first:
            sock.sendall(first)
        socks.append(sock)
    return socks


async def test_idle_and_slow_sockets_never_lock_the_page_out(mqtt_url):
    """On main 64 idle sockets made the view answer 503 for as long as they stayed open."""
    async with (
        serving(mqtt_url, root()) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        server.guard.max_connections = 40
        idle = await anyio.to_thread.run_sync(_idle, server.port, 30)
        slow = await anyio.to_thread.run_sync(
            _idle, server.port, 30, b"GET /api/fleet HTTP/1.1\r\n"
        )
        try:
            for _ in range(10):
                with anyio.fail_after(2):
                    assert (await http.get("/api/fleet")).status_code == 200
            assert server.guard.evicted >= 20  # idle ones made room, the busy were kept
        finally:
            for sock in idle + slow:
                sock.close()


async def test_a_request_head_that_never_ends_is_cut_off(mqtt_url):
    async with serving(mqtt_url, root()) as server:
        server.guard.head_timeout = 0.3
        (slow,) = await anyio.to_thread.run_sync(_idle, server.port, 1, b"GET / HTTP/1.1\r\nX: ")
        try:
            slow.settimeout(5)
            assert await anyio.to_thread.run_sync(slow.recv, 100) == b"", "closed by the view"
        finally:
            slow.close()
        assert server.guard.timed_out == 1


@pytest.mark.parametrize(
    "path",
    [
        f"/api/devices/{DEVICE}?since=inf",
        f"/api/devices/{DEVICE}?since=nan",
        f"/api/devices/{DEVICE}?since=-1e999",
        "/api/devices/t/a+b",
        "/api/devices/t/a%23b",
        "/api/devices/t/a%00b",
        "/api/devices/T/Upper",
        "/api/events?open=t/a%2Bb",
        "/api/events?open=nobody",
    ],
)
async def test_malformed_parameters_and_ids_are_400_with_a_reason(mqtt_url, path):
    topic_root = root()
    async with (
        serving(mqtt_url, topic_root) as server,
        Bus(mqtt_url) as bus,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        report(Topics(topic_root), bus, 1.0)
        await until(http, DEVICE, "temp", "reported", "1.0")
        answer = await http.get(path)
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] and "Traceback" not in answer.text


async def test_writes_naming_a_malformed_device_are_refused_before_the_bus(mqtt_url):
    """On main ``t/a%00b`` went out as a topic: the broker cut the view's connection for a
    malformed packet, and the bus sent it again ~10 times a second for good."""
    topic_root = root()
    async with (
        serving(mqtt_url, topic_root, allow_writes=True, timeout=0.5) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        body = {"property": "setpoint", "value": "20"}
        for device in ("t/a%00b", "t/a+b", "t/a%23b", "t/" + "x" * 300):
            answer = await http.post(f"/api/devices/{device}/desired", json=body)
            assert answer.status_code == 400, (device, answer.text)
        assert server.bus is not None and server.bus.connected
        assert len(server.bus.outbox) == 0


def _post_head(port: int, head: bytes) -> bytes:
    """Send a request head (and no body) on a raw socket; the answer, read until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


async def test_an_oversized_body_is_refused_before_it_is_read(mqtt_url):
    """On main the view read a whole 300 MB body before answering 413."""
    async with serving(mqtt_url, root(), allow_writes=True) as server:
        head = (
            f"POST /api/devices/{DEVICE}/desired HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
        ).encode()
        with anyio.fail_after(2):  # the body never comes: the answer must not wait for it
            answer = await anyio.to_thread.run_sync(_post_head, server.port, head)
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert b"connection: close" in answer.lower()

        chunk = b" " * 5000  # no Content-Length (chunked): read up to the limit, no further
        head = head.replace(b"Content-Length: 300000000", b"Transfer-Encoding: chunked")
        head += b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n"
        with anyio.fail_after(2):
            answer = await anyio.to_thread.run_sync(_post_head, server.port, head)
        assert answer.startswith(b"HTTP/1.1 413"), answer


async def test_refused_writes_for_unknown_devices_add_no_rows(mqtt_url, tmp_path):
    topic_root = root()
    devices, _ = thermostat(tmp_path)
    async with (
        agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices),
        serving(mqtt_url, topic_root, allow_writes=True, timeout=5) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for i in range(20):
            body = {"property": "x", "value": "1"}
            answer = await http.post(f"/api/devices/plant/ghost-{i}/desired", json=body)
            assert answer.status_code == 404
        # the view saw every request go by on the bus; none of them declares a device
        await eventually(lambda: server.view.ignored.get("request", 0) >= 20, 10)
        assert (await http.get("/api/fleet")).json()["devices"] == []


async def test_requests_from_any_client_for_unknown_devices_add_no_rows(mqtt_url, tmp_path):
    """Any client may ask for a device, as ``edgedev twin get`` and ``twin set`` do, and the
    agent answers 404 for one it does not know: the view sees the requests and the answers it
    listens to (``twin/update``, ``twin/get/result``), and none declares a device."""
    topic_root = root()
    topics = Topics(topic_root)
    devices, _ = thermostat(tmp_path)
    ghosts = [f"plant/ghost-{i}" for i in range(10)]
    async with (
        agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices),
        serving(mqtt_url, topic_root) as server,
        Bus(mqtt_url) as client,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        await client.wait_connected()
        async with client.subscribe(f"{topic_root}/device/plant/+/twin/+/result") as answers:
            for ghost in ghosts:
                client.publish(topics.device(ghost, Channel.TWIN_GET), request())
                client.publish(
                    topics.device(ghost, Channel.TWIN_UPDATE), desired_update({"x": "1"})
                )
            with anyio.fail_after(10):
                for _ in range(2 * len(ghosts)):
                    answer = await answers.receive()
                    assert json.loads(answer.payload)["code"] == 404, answer.payload
        await eventually(lambda: server.view.ignored.get("request", 0) >= 2 * len(ghosts), 10)
        assert (await http.get("/api/fleet")).json()["devices"] == []


def test_the_views_memory_is_bounded_in_total_whatever_is_published():
    """On main the caps (20,000 devices x 1,000 properties, 300 points each) allowed ~40 GB;
    here 400 devices x 300 numeric properties stay under the documented budget."""
    import tracemalloc

    from edgedev.view import _state

    topics = Topics("r")
    view = TwinView(topics, window=600, points=300)
    entries = [(f"p{i}", "1.5", "float", 1) for i in range(300)]
    payload = twin_report(entries)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for d in range(400):
            view.apply(topics.device(f"ns/d{d}", Channel.TWIN_UPDATE), payload, now=1.0)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    charted = sum(1 for dev in view.devices.values() for p in dev.properties.values() if p.history)
    assert charted * 300 * 8 <= _state.MAX_HISTORY_BYTES
    assert view.ignored["history"] == _state.MAX_TOTAL_PROPERTIES - charted
    assert view.ignored["property"] == 120_000 - _state.MAX_TOTAL_PROPERTIES
    assert sum(len(dev.properties) for dev in view.devices.values()) == _state.MAX_TOTAL_PROPERTIES
    # histories within their budget, plus about 600 bytes for each property kept
    assert grown < _state.MAX_HISTORY_BYTES + _state.MAX_TOTAL_PROPERTIES * 600, grown


def test_junk_ids_names_and_texts_are_left_out_or_cut():
    from edgedev.view import _state

    topics = Topics("r")
    view = TwinView(topics)
    report = twin_report([("ok", "x" * 100_000, "string", 1), ("bad name", "1", "int", 1)])
    assert view.apply(topics.device("ns/dev", Channel.TWIN_UPDATE), report)
    props = view.devices["ns/dev"].properties
    assert list(props) == ["ok"] and len(props["ok"].reported or "") == _state.MAX_TEXT
    assert not view.apply(topics.device("NS/Dev", Channel.TWIN_UPDATE), report)
    assert list(view.devices) == ["ns/dev"]
    assert view.ignored == {"property": 1, "id": 1}
