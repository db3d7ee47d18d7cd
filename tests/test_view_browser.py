"""``edgedev demo --web`` in a real browser: Debian's chromium driven by Playwright.

The demo runs as a child process on its embedded broker; the test reads the demo's own device
files (written under ``TMPDIR``) to reach the simulated Modbus thermostat directly, so that it
can change a register behind the mapper's back and read what a write from the page did.
The run saves the screenshot shown in docs/web-view.md.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgedev.config._spec import DeviceSpec
from edgedev.loader import load_devices
from edgedev.testing._brokers import free_port
from edgedev.testing._process import edgedev_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The picture in docs/web-view.md is taken by this test when EDGEDEV_SCREENSHOTS=1 (a run in
# CI leaves the checkout as it found it).
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "view.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser: {CHROMIUM} is absent"),
    pytest.mark.needs("edgedev_modbus", "uvicorn"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


class Demo:
    """A running ``edgedev demo --web`` and what it printed."""

    def __init__(self, url: str, devices: list[DeviceSpec]) -> None:
        self.url = url
        self.devices = devices

    def device(self, device_id: str) -> DeviceSpec:
        return next(d for d in self.devices if d.id == device_id)


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """Every line the child prints, from a thread that keeps its pipe drained."""
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    return lines


@pytest.fixture
def demo_web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """Start ``edgedev demo --web`` (``--allow-writes`` when the test is parametrised so)."""

    @contextlib.contextmanager
    def start(*extra: str) -> Iterator[Demo]:
        monkeypatch.setenv("TMPDIR", str(tmp_path))  # the demo writes its device files here
        port = free_port()
        with edgedev_process("demo", "--web", "--port", str(port), *extra) as proc:
            lines = _lines(proc)
            deadline = time.monotonic() + 60
            seen = []
            while True:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    pytest.fail(f"the demo did not serve its page within 60 s: {seen}")
                seen.append(line)
                match = re.match(r"web view: (\S+)", line)
                if match:
                    break
            files = sorted(str(p) for p in tmp_path.glob("edgedev-demo-*/*.yaml"))
            yield Demo(match.group(1), load_devices(files))

    return start


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _open(page, device_id: str) -> None:
    page.locator(f'tr.device[data-device="{device_id}"] button.toggle').click()
    page.locator(f'tr.device[data-device="{device_id}"] + tr.detail .prop').first.wait_for()


def _card(page, device_id: str, prop: str):
    return page.locator(f'tr.device[data-device="{device_id}"] + tr.detail [data-prop="{prop}"]')


def _modbus(spec: DeviceSpec):
    from pymodbus.client import ModbusTcpClient

    config = spec.config
    client = ModbusTcpClient(config.ip, port=config.port)  # type: ignore[attr-defined]
    assert client.connect()
    return client


def test_the_page_shows_the_fleet_move_and_sets_a_value(demo_web, browser):
    expect = sync_api.expect
    with demo_web("--allow-writes") as demo:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(demo.url)

        # every demo device is listed, with its protocol and state
        for spec in demo.devices:
            row = page.locator(f'tr.device[data-device="{spec.id}"]')
            expect(row).to_be_visible(timeout=15_000)
            expect(row.locator("td.protocol")).to_have_text(spec.protocol)
        thermostat = demo.device("demo/thermostat-1")
        expect(page.locator('tr[data-device="demo/thermostat-1"] span.state')).to_have_text(
            "online", timeout=10_000
        )
        _open(page, thermostat.id)
        heating = _card(page, thermostat.id, "heating")
        expect(heating.locator(".reported")).to_have_text("false", timeout=10_000)

        # the simulator changes (a coil written behind the mapper's back): on screen within 2 s
        client = _modbus(thermostat)
        try:
            assert not client.write_coil(0, True, device_id=1).isError()
            expect(heating.locator(".reported")).to_have_text("true", timeout=2_000)

            # a chart has points: uPlot drew the temperature's history on a canvas
            chart = _card(page, thermostat.id, "temperature").locator(".chart")
            expect(chart.locator("canvas")).to_have_count(1)
            expect(chart).to_have_attribute("data-points", re.compile(r"^([2-9]|\d\d+)$"))

            # a desired value set from the page reaches the simulated register
            heating.locator(".write input").fill("false")
            heating.locator(".write button[type=submit]").click()
            expect(heating.locator(".write .reason")).to_have_text("accepted")
            deadline = time.monotonic() + 10
            while client.read_coils(0, count=1, device_id=1).bits[0]:
                assert time.monotonic() < deadline, "the page's write never reached the coil"
                time.sleep(0.1)
            expect(heating.locator(".reported")).to_have_text("false", timeout=5_000)
        finally:
            client.close()

        # a refused value shows the agent's 400 reason next to the field
        setpoint = _card(page, thermostat.id, "setpoint")
        setpoint.locator(".write input").fill("99")
        setpoint.locator(".write button[type=submit]").click()
        expect(setpoint.locator(".write .reason")).to_have_text(
            re.compile(r"refused \(400\): .*maximum 30")
        )

        # the filters narrow the list
        page.select_option("select[name=protocol]", "modbus")
        expect(page.locator("tr.device:visible")).to_have_count(
            sum(1 for d in demo.devices if d.protocol == "modbus")
        )
        page.select_option("select[name=protocol]", "")

        # the picture in the docs: the thermostat and the meter open, with their charts
        if os.environ.get("EDGEDEV_SCREENSHOTS") == "1":
            _open(page, "demo/meter-1")
            time.sleep(1.0)  # let the charts take a few more points for the picture
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

        # a phone-sized screen: no sideways scrolling, the cards still readable
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(demo.url)
        expect(phone.locator('tr.device[data-device="demo/thermostat-1"]')).to_be_visible()
        _open(phone, thermostat.id)
        expect(_card(phone, thermostat.id, "temperature").locator("canvas")).to_have_count(1)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px screen"


def test_without_allow_writes_the_page_cannot_write(demo_web, browser):
    expect = sync_api.expect
    with demo_web() as demo:
        page = browser.new_page()
        page.goto(demo.url)
        expect(page.locator("#mode")).to_have_text("read-only", timeout=15_000)
        _open(page, "demo/thermostat-1")
        expect(_card(page, "demo/thermostat-1", "setpoint").locator(".reported")).not_to_be_empty()
        expect(page.locator(".write, input[name=value]")).to_have_count(0)
        answer = page.request.post(
            demo.url + "api/devices/demo/thermostat-1/desired",
            data={"property": "setpoint", "value": "20"},
        )
        assert answer.status == 403
        assert "--allow-writes" in answer.json()["reason"]
