"""The mapper's REST API with a real HTTP client, a running mapper and simulated Modbus devices.

The expected bodies follow KubeEdge's mapper-framework (kubeedge/kubeedge, commit 16cd8548e,
``staging/src/github.com/kubeedge/mapper-framework/pkg``): the keys each Go response type
gives, in the order Go's encoding/json writes them (below, per shape, with the file and line).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from edgedev import DeviceSpec, Mapper
from edgedev.cli import main
from edgedev.mapper import Reading, ReportSink
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.rest import RestServer, TlsFiles
from edgedev.testing import (
    device,
    device_model,
    device_property,
    edgedev_process,
    free_port,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev.twin import DeviceState
from tls_helpers import make_pki

pytestmark = [pytest.mark.broker, pytest.mark.needs("edgedev_modbus", "starlette", "uvicorn")]

# responsetype.go:10-14 BaseResponse, embedded first in every response
BASE = ["apiVersion", "statusCode", "timeStamp"]
PING = [*BASE, "Message"]  # responsetype.go:25-28 PingResponse
WRITE = [*BASE, "Message"]  # responsetype.go:30-33 DeviceWriteResponse
READ = [*BASE, "Data"]  # responsetype.go:35-38 DeviceReadResponse
# common/datamodel.go:4-14 DataModel (no JSON tags: the field names)
DATA_MODEL = ["DeviceName", "PropertyName", "Namespace", "Value", "Type", "TimeStamp"]
METHODS = [*BASE, "Data"]  # responsetype.go:40-43 DeviceMethodReadResponse
DATA_METHOD = ["Methods"]  # common/datamethod.go:20-22
METHOD = ["Name", "Path", "Parameters"]  # datamethod.go:24-28
PARAMETER = ["PropertyName", "ValueType"]  # datamethod.go:30-33
# responsetype.go:45-48 MetaGetModelResponse embeds common.DeviceModel (configmaptype.go:36-42,
# JSON tags id, name, namespace, description, properties, each omitempty)
MODEL = [*BASE, "id", "name", "namespace", "properties"]
MODEL_PROPERTY = ["name", "dataType", "description", "accessMode", "minimum", "maximum", "unit"]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")  # Go time.RFC3339

DEVICE_ID = "default/thermo-1"
WRITES = frozenset({5, 6, 15, 16})


def documents(port: int) -> list[dict[str, Any]]:
    model = device_model(
        "thermo",
        "modbus",
        [
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly", "unit": "degC"},
            {"name": "setpoint", "type": "INT", "minimum": "10", "maximum": "30"},
            {"name": "heating", "type": "BOOLEAN", "description": "the heater relay"},
            {"name": "counter", "type": "INT"},
        ],
    )
    thermo = device(
        "thermo-1",
        "thermo",
        "modbus",
        {"ip": "127.0.0.1", "port": port},
        [
            device_property(
                "temperature",
                "modbus",
                200,
                {"register": "InputRegister", "offset": 0, "dataType": "int16", "scale": 0.1},
            ),
            device_property(
                "setpoint", "modbus", 200, {"register": "HoldingRegister", "offset": 0}
            ),
            device_property("heating", "modbus", 200, {"register": "CoilRegister", "offset": 0}),
            device_property("counter", "modbus", 200, {"register": "HoldingRegister", "offset": 1}),
        ],
    )
    thermo["spec"]["methods"] = [
        {"name": "SetTemperature", "description": "the setpoint", "propertyNames": ["setpoint"]},
        {"name": "Heat", "propertyNames": ["heating", "temperature"]},
        {"name": "Raw", "propertyNames": ["counter"]},
    ]
    return [model, thermo]


class Twins(ReportSink):
    """The mapper's twin reports, to wait for a value or a change of state."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, dict[str, str]]] = []
        self._changed = anyio.Event()

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        self.reports.append((device.id, {r.name: r.text for r in readings}))
        self._note()

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        self._note()

    def _note(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    def last(self, device_id: str, prop: str) -> str | None:
        found = [r[prop] for d, r in self.reports if d == device_id and prop in r]
        return found[-1] if found else None


@dataclass
class Running:
    server: RestServer
    mapper: Mapper
    twins: Twins
    sim: Any


@asynccontextmanager
async def running(
    tmp_path: Path, mqtt_url: str, *, tls: TlsFiles | None = None, **server: Any
) -> AsyncIterator[Running]:
    from edgedev_modbus import ModbusSimulator

    specs = load_documents(tmp_path, documents(free_port()))
    sim = ModbusSimulator(specs)
    twins = Twins()
    root = unique_root()
    mapper = Mapper(
        specs, transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)], name=f"m-{root}", sinks=[twins]
    )
    rest = RestServer(mapper, port=0, tls=tls, **server)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        sim.freeze(DEVICE_ID)  # exact values
        sim.set(DEVICE_ID, "temperature", 21.5)
        sim.set(DEVICE_ID, "setpoint", 20)
        await tg.start(mapper.run)
        await tg.start(rest.run)
        await twins.wait_for(lambda: twins.last(DEVICE_ID, "setpoint") == "20")
        yield Running(rest, mapper, twins, sim)
        tg.cancel_scope.cancel()


def writes(sim: Any) -> int:
    return sum(1 for r in sim.requests if r.device == DEVICE_ID and r.function in WRITES)


def keys(body: Mapping[str, Any]) -> list[str]:
    return list(body)


async def test_ping_read_methods_and_model_have_upstreams_shapes(tmp_path: Path, mqtt_url: str):
    async with (
        running(tmp_path, mqtt_url) as run,
        httpx.AsyncClient(base_url=run.server.url) as http,
    ):
        ping = await http.get("/ping")
        assert ping.status_code == 200
        assert ping.headers["content-type"] == "application/json"
        body = ping.json()
        assert keys(body) == PING
        assert body["apiVersion"] == "v1" and body["statusCode"] == 200
        assert RFC3339.match(body["timeStamp"])
        assert (
            body["Message"] == "This is v1 API, the server is running normally."
        )  # callback.go:18

        read = (await http.get("/device/default/thermo-1/temperature")).json()
        assert keys(read) == READ and keys(read["Data"]) == DATA_MODEL
        data = read["Data"]
        assert (data["DeviceName"], data["PropertyName"], data["Namespace"]) == (
            "thermo-1",
            "temperature",
            "default",
        )
        assert (data["Value"], data["Type"]) == ("21.5", "float")  # the model's type, lowered
        assert isinstance(data["TimeStamp"], int) and data["TimeStamp"] > 1_600_000_000_000

        methods = (await http.get("/devicemethod/default/thermo-1")).json()
        assert keys(methods) == METHODS and keys(methods["Data"]) == DATA_METHOD
        listed = methods["Data"]["Methods"]
        assert [keys(m) for m in listed] == [METHOD] * 3
        assert [keys(p) for m in listed for p in m["Parameters"]] == [PARAMETER] * 4
        assert listed[0] == {
            "Name": "SetTemperature",
            # callback.go:83: the placeholders stay in the path
            "Path": "/api/v1/devicemethod/default/thermo-1/SetTemperature/{propertyName}/{data}",
            "Parameters": [{"PropertyName": "setpoint", "ValueType": "int"}],
        }
        assert listed[1]["Parameters"] == [
            {"PropertyName": "heating", "ValueType": "boolean"},
            {"PropertyName": "temperature", "ValueType": "float"},
        ]

        model = (await http.get("/meta/model/default/thermo-1")).json()
        assert keys(model) == MODEL  # no description: upstream never fills it
        assert (model["id"], model["name"], model["namespace"]) == (
            "default/thermo",
            "thermo",
            "default",
        )
        props = {p["name"]: p for p in model["properties"]}
        assert all(keys(p) == [k for k in MODEL_PROPERTY if k in p] for p in props.values())
        assert props["setpoint"] == {
            "name": "setpoint",
            "dataType": "INT",
            "accessMode": "ReadWrite",
            "minimum": "10",
            "maximum": "30",
        }
        assert props["temperature"]["unit"] == "degC"
        assert props["heating"]["description"] == "the heater relay"


async def test_a_method_call_writes_once_and_answers_when_the_device_holds_it(
    tmp_path: Path, mqtt_url: str
):
    async with (
        running(tmp_path, mqtt_url) as run,
        httpx.AsyncClient(base_url=run.server.url) as http,
    ):
        before = writes(run.sim)
        answer = await http.get("/devicemethod/default/thermo-1/SetTemperature/setpoint/25")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert keys(body) == WRITE
        assert body["Message"] == "Write data 25 to device default/thermo-1 successfully."
        # answered once the device holds it: written once, read back, and reported
        assert run.sim.get(DEVICE_ID, "setpoint") == 25
        assert writes(run.sim) == before + 1
        await run.twins.wait_for(lambda: run.twins.last(DEVICE_ID, "setpoint") == "25")
        read = (await http.get("/device/default/thermo-1/setpoint")).json()
        assert read["Data"]["Value"] == "25"

        # PUT and POST with a JSON body, a boolean through the other method
        put = await http.put("/devicemethod/default/thermo-1/Heat/heating", json={"value": True})
        assert put.status_code == 200, put.text
        assert run.sim.get(DEVICE_ID, "heating") is True
        post = await http.post(
            "/devicemethod/default/thermo-1/SetTemperature/setpoint", json={"value": 27}
        )
        assert post.status_code == 200, post.text
        assert post.json()["Message"] == "Write data 27 to device default/thermo-1 successfully."
        assert run.sim.get(DEVICE_ID, "setpoint") == 27
        assert writes(run.sim) == before + 3

        # a value the device holds already is answered at once, not written again
        again = await http.get("/devicemethod/default/thermo-1/SetTemperature/setpoint/27")
        assert again.status_code == 200
        assert writes(run.sim) == before + 3


REFUSALS = [
    # (path, status, words in the reason)
    ("/devicemethod/default/nobody/SetTemperature/setpoint/20", 404, "not served"),
    ("/devicemethod/default/thermo-1/Cool/setpoint/20", 404, "no method 'Cool'"),
    ("/devicemethod/default/thermo-1/SetTemperature/heating/1", 404, "does not write 'heating'"),
    ("/devicemethod/default/thermo-1/Heat/temperature/30", 403, "ReadOnly"),
    ("/devicemethod/default/thermo-1/SetTemperature/setpoint/warm", 422, "not an integer"),
    ("/devicemethod/default/thermo-1/SetTemperature/setpoint/20.5", 422, "not an integer"),
    ("/devicemethod/default/thermo-1/SetTemperature/setpoint/31", 422, "above the maximum 30"),
    ("/devicemethod/default/thermo-1/Heat/heating/maybe", 422, "not a boolean"),
    ("/devicemethod/default/thermo-1/Heat/heating/1", 422, "give true or false"),
    ("/device/default/thermo-1/humidity", 404, "no property 'humidity'"),
    ("/device/default/nobody/temperature", 404, "not served"),
    ("/meta/model/default/nobody", 404, "not served"),
    ("/devicemethod/default/nobody", 404, "not served"),
    ("/no/such/route", 404, "Not Found"),
]


async def test_each_refusal_has_its_status_its_reason_and_writes_nothing(
    tmp_path: Path, mqtt_url: str
):
    async with (
        running(tmp_path, mqtt_url) as run,
        httpx.AsyncClient(base_url=run.server.url) as http,
    ):
        before = writes(run.sim)
        for path, status, words in REFUSALS:
            answer = await http.get(path, headers={"X-Correlation-ID": "req-42"})
            assert answer.status_code == status, (path, answer.text)
            body = answer.json()
            assert keys(body) == WRITE, path  # the shape of the other answers
            assert body["statusCode"] == status
            assert words in body["Message"], (path, body["Message"])
            assert answer.headers["X-Correlation-ID"] == "req-42", path  # errors included
        # the body forms
        path = "/devicemethod/default/thermo-1/SetTemperature/setpoint"
        for kwargs, status in [
            ({"content": b'{"value": 20}'}, 415),  # not application/json: no preflight
            ({"json": {"v": 20}}, 400),
            ({"json": {"value": None}}, 400),
            ({"json": {"value": [20]}}, 400),
            ({"json": ["value", 20]}, 400),
            ({"content": b"{", "headers": {"content-type": "application/json"}}, 400),
            ({"json": {"value": "x" * 5000}}, 413),
            ({"json": {"value": 9}}, 422),  # below the minimum
        ]:
            answer = await http.post(path, **kwargs)
            assert answer.status_code == status, (kwargs, answer.text)
        deleted = await http.delete(path)
        assert deleted.status_code == 405
        assert set(deleted.headers["allow"].split(", ")) == {"PUT", "POST"}
        assert writes(run.sim) == before


async def test_writes_from_web_pages_are_refused(tmp_path: Path, mqtt_url: str):
    async with (
        running(tmp_path, mqtt_url) as run,
        httpx.AsyncClient(base_url=run.server.url) as http,
    ):
        path = "/devicemethod/default/thermo-1/SetTemperature/setpoint/26"
        before = writes(run.sim)
        for headers in [
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},  # another port of the same host
        ]:
            answer = await http.get(path, headers=headers)
            assert answer.status_code == 403, (headers, answer.text)
            assert "web pages" in answer.json()["Message"]
        body_path = "/devicemethod/default/thermo-1/SetTemperature/setpoint"
        refused = await http.put(body_path, json={"value": 26}, headers={"Origin": "http://x"})
        assert refused.status_code == 403
        # a page whose name its owner rebinds to 127.0.0.1 names itself in Host
        rebound = await http.get(path, headers={"Host": "evil.example:7777"})
        assert rebound.status_code == 400
        rebound = await http.get("/ping", headers={"Host": "evil.example"})
        assert rebound.status_code == 400
        assert writes(run.sim) == before
        # an operator's browser, typing the address, is not refused
        typed = await http.get(path, headers={"Sec-Fetch-Site": "none"})
        assert typed.status_code == 200, typed.text
        assert writes(run.sim) == before + 1


async def test_a_device_that_cannot_take_the_write_is_the_devices_error(
    tmp_path: Path, mqtt_url: str
):
    async with (
        running(tmp_path, mqtt_url, write_timeout=0.5) as run,
        httpx.AsyncClient(base_url=run.server.url) as http,
    ):
        # its driver says beforehand that the register holds no 70000 (an int16): the
        # caller's mistake, 422, nothing written
        refused = await http.get("/devicemethod/default/thermo-1/Raw/counter/70000")
        assert refused.status_code == 422, refused.text
        assert "counter" in refused.json()["Message"] and "int16" in refused.json()["Message"]

        # the device answers slower than the API waits: 504; the write goes on
        # (1 s per request: a write and its read-back fit the device's 3 s deadline)
        run.sim.slow(DEVICE_ID, 1.0)
        slow = await http.get("/devicemethod/default/thermo-1/SetTemperature/setpoint/22")
        assert slow.status_code == 504, slow.text
        assert "stays desired" in slow.json()["Message"]
        await run.twins.wait_for(lambda: run.twins.last(DEVICE_ID, "setpoint") == "22", timeout=30)
        run.sim.slow(DEVICE_ID, None)

        # the device answers every request with an exception: unhealthy, 503
        run.sim.fail(DEVICE_ID, 4)
        runner = run.mapper.runners[DEVICE_ID]
        await run.twins.wait_for(lambda: runner.state == "unhealthy")
        sick = await http.get("/devicemethod/default/thermo-1/SetTemperature/setpoint/23")
        assert sick.status_code == 503, sick.text
        assert "unhealthy" in sick.json()["Message"]
        unread = await http.get("/device/default/thermo-1/setpoint")
        assert unread.status_code == 503 and "unhealthy" in unread.json()["Message"]


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
async def test_tls_and_client_certificates(tmp_path: Path, mqtt_url: str, mutual: bool):
    pki = make_pki(tmp_path / "pki")
    tls = TlsFiles(str(pki.server_cert), str(pki.server_key), str(pki.ca) if mutual else None)
    async with running(tmp_path, mqtt_url, tls=tls) as run:
        assert run.server.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(pki.ca))
        if mutual:
            async with httpx.AsyncClient(base_url=run.server.url, verify=trusting) as stranger:
                with pytest.raises(httpx.TransportError):
                    await stranger.get("/ping")  # no client certificate: no answer
            trusting.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        async with httpx.AsyncClient(base_url=run.server.url, verify=trusting) as http:
            assert (await http.get("/ping")).status_code == 200
            write = await http.get("/devicemethod/default/thermo-1/SetTemperature/setpoint/24")
            assert write.status_code == 200, write.text
        assert run.sim.get(DEVICE_ID, "setpoint") == 24
        async with httpx.AsyncClient(base_url=run.server.url) as untrusting:
            with pytest.raises(httpx.ConnectError):  # the server's certificate is unknown
                await untrusting.get("/ping")


async def test_edgedev_run_serves_the_api_in_file_mode(tmp_path: Path, mqtt_url: str):
    from edgedev_modbus import ModbusSimulator

    docs = documents(free_port())
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    path = write_documents(tmp_path, docs)
    port = free_port()
    args = ["run", "-f", str(path), "--broker", mqtt_url, "--topic-root", unique_root()]
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        with edgedev_process(*args, "--rest-port", str(port), output=False):
            base = f"http://127.0.0.1:{port}/api/v1"
            async with httpx.AsyncClient(base_url=base) as http:
                with anyio.fail_after(30):
                    while True:  # another process: ask until it answers with a value
                        try:
                            read = await http.get("/device/default/thermo-1/setpoint")
                        except httpx.TransportError:
                            read = None
                        if read is not None and read.status_code == 200:
                            break
                        await anyio.sleep(0.1)
                method = "/devicemethod/default/thermo-1/SetTemperature/setpoint"
                answer = await http.put(method, json={"value": "19"})
                assert answer.status_code == 200, answer.text
        assert sim.get(DEVICE_ID, "setpoint") == 19
        tg.cancel_scope.cancel()


def test_rest_options_that_cannot_work_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = write_documents(tmp_path, documents(free_port()))
    run = ["run", "-f", str(path), "--broker", "mqtt://127.0.0.1:1", "--rest-port", "0"]
    assert main([*run, "--rest-cert-file", "server.pem"]) == 2
    assert "--rest-key-file" in capsys.readouterr().err
    assert main([*run, "--rest-ca-file", "ca.pem"]) == 2
    assert "--rest-cert-file" in capsys.readouterr().err
    missing = ["--rest-cert-file", str(tmp_path / "no.pem"), "--rest-key-file", "no.key"]
    assert main([*run, *missing]) == 1
    err = capsys.readouterr().err
    assert "cannot load the REST API's certificate" in err and "no.pem" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = ["--rest-port", str(taken.getsockname()[1])]
        assert main([*run[:-2], *busy]) == 1
    assert "cannot serve the REST API on 127.0.0.1:" in capsys.readouterr().err


DOCS = Path(__file__).resolve().parents[1] / "docs" / "rest-api.md"


def without_times(body: Any) -> Any:
    """``body`` with the values of its timestamps left out (the keys stay, in order)."""
    if isinstance(body, dict):
        times = ("timeStamp", "TimeStamp")
        return [(k, None if k in times else without_times(v)) for k, v in body.items()]
    if isinstance(body, list):
        return [without_times(item) for item in body]
    return body


async def test_the_examples_of_the_docs_are_the_answers(tmp_path: Path, mqtt_url: str):
    text = DOCS.read_text(encoding="utf-8")
    pairs = re.findall(r"```http\n(\w+) (\S+)\n```\n\n```json\n(.*?)```", text, flags=re.S)
    assert len(pairs) == 5
    async with (
        running(tmp_path, mqtt_url) as run,
        httpx.AsyncClient(base_url=run.server.url.removesuffix("/api/v1")) as http,
    ):
        for method, path, expected in pairs:
            answer = await http.request(method, path)
            assert answer.status_code == 200, (path, answer.text)
            assert without_times(answer.json()) == without_times(json.loads(expected)), path


def _held(port: int, count: int, first: bytes) -> list[socket.socket]:
    """``count`` connections that send ``first`` (nothing, or half a head) and wait."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        if first:
            sock.sendall(first)
        socks.append(sock)
    return socks


def _answer_to_head(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


async def test_idle_sockets_and_huge_bodies_leave_the_api_answering(tmp_path: Path, mqtt_url: str):
    """The shared server rules (edgedev._http_guard): requests counted, not sockets."""
    async with (
        running(tmp_path, mqtt_url) as run,
        httpx.AsyncClient(base_url=run.server.url) as http,
    ):
        run.server.guard.max_connections = 40
        port = run.server.port
        held = await anyio.to_thread.run_sync(_held, port, 30, b"")
        held += await anyio.to_thread.run_sync(_held, port, 30, b"GET / HTTP/1.1\r\n")
        try:
            for _ in range(5):
                with anyio.fail_after(2):
                    assert (await http.get("/ping")).status_code == 200
            base = run.server.url.split("://", 1)[1].partition("/")[2].rstrip("/")
            path = f"/{base}/devicemethod/default/thermo-1/SetTemperature/setpoint"
            head = (
                f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: 300000000\r\n\r\n"
            ).encode()
            with anyio.fail_after(2):  # answered before the body, which never comes
                answer = await anyio.to_thread.run_sync(_answer_to_head, port, head)
            assert answer.startswith(b"HTTP/1.1 413"), answer
        finally:
            for sock in held:
                sock.close()
