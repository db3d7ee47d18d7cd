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
from edgedev.wire import state_update, twin_report
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
