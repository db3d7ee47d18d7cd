"""pushMethod and dbMethod sinks end to end: a simulated Modbus device, real servers."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.abc
import pytest

from edgedev import ConfigError, DeviceSpec
from edgedev.bus import Bus
from edgedev.health import mapper_metrics
from edgedev.health._metrics import render
from edgedev.mapper import Mapper, Reading, ReportSink
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.sinks import (
    HttpLayout,
    HttpSink,
    MysqlLayout,
    PushSink,
    Row,
    SinkFactory,
    SinkOptions,
)
from edgedev.testing import (
    Recorder,
    device,
    device_model,
    edgedev_process,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev_modbus import ModbusSimulator
from sink_servers import HttpRecorder, MariaDB, RedisServer, Request, until

pytestmark = pytest.mark.broker

CYCLE_MS = 100
FAST = SinkOptions(linger=0.05)
VISITORS = {
    "temperature": {
        "register": "InputRegister",
        "offset": 0,
        "limit": 1,
        "scale": 0.1,
        "dataType": "int16",
    },
    "level": {"register": "HoldingRegister", "offset": 0, "limit": 1},
}


def docs(
    push: dict[str, Any], names: Sequence[str] = ("boiler-1",), ports: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """A model with a FLOAT and an INT property; devices whose properties push to ``push``."""
    from edgedev.testing import free_port

    out = [
        device_model(
            "boiler",
            "modbus",
            [
                {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly", "unit": "C"},
                {"name": "level", "type": "INT", "accessMode": "ReadWrite"},
            ],
        )
    ]
    out[0]["metadata"]["namespace"] = "plant"
    for i, name in enumerate(names):
        port = ports[i] if i < len(ports) else free_port()
        props = [
            {
                "name": prop,
                "collectCycle": CYCLE_MS,
                "reportCycle": 1000,
                "visitors": {"protocolName": "modbus", "configData": visitor},
                "pushMethod": push,
            }
            for prop, visitor in VISITORS.items()
        ]
        doc = device(name, "boiler", "modbus", {"ip": "127.0.0.1", "port": port}, props)
        doc["metadata"]["namespace"] = "plant"
        out.append(doc)
    return out


@asynccontextmanager
async def running(
    tmp_path: Path,
    mqtt_url: str,
    push: dict[str, Any],
    options: SinkOptions = FAST,
    names: Sequence[str] = ("boiler-1",),
    extra: Sequence[ReportSink] = (),
) -> AsyncIterator[tuple[Mapper, list[PushSink], str]]:
    """A simulated fleet and a mapper with the sinks its files name, until the block ends."""
    specs = load_documents(tmp_path, docs(push, names))
    root = unique_root("sink")
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator(specs).run)
        mapper = Mapper(
            specs,
            transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)],
            sinks=extra,
            sinks_for=SinkFactory(options),  # the targets the devices name, as they start
        )
        await tg.start(mapper.run)
        sinks = [s for s in mapper.sinks if isinstance(s, PushSink)]
        yield mapper, sinks, root
        tg.cancel_scope.cancel()


class Counter(ReportSink):
    """Counts the readings handed to the sinks, and when."""

    def __init__(self) -> None:
        self.values = 0
        self.times: list[float] = []

    def readings(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        self.values += len(readings)
        self.times.append(time.monotonic())


def delivered(sinks: Sequence[PushSink]) -> int:
    return sum(s.stats.delivered for s in sinks)


# -- load time --------------------------------------------------------------------------------


def test_a_push_target_without_its_required_fields_is_a_load_error(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_documents(tmp_path, docs({"dbMethod": {"redis": {"redisClientConfig": {}}}}))
    text = str(info.value)
    assert "devices-" in text and "Device plant/boiler-1" in text
    assert "spec.properties[0].pushMethod.dbMethod.redis.redisClientConfig.addr" in text


def test_a_missing_extra_is_a_load_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from edgedev.config import _push

    monkeypatch.setattr(_push, "installed", lambda module: module != "asyncmy")
    _push.missing_extra.cache_clear()
    push = {"dbMethod": {"mysql": {"mysqlClientConfig": {"addr": "h:3306", "database": "d",
                                                          "userName": "u"}}}}  # fmt: skip
    try:
        with pytest.raises(ConfigError) as info:
            load_documents(tmp_path, docs(push))
    finally:
        _push.missing_extra.cache_clear()
    assert "pip install 'edgedev[mysql]'" in str(info.value)
    assert "pushMethod.dbMethod.mysql" in str(info.value)


@pytest.mark.needs("redis")
def test_properties_naming_one_target_share_one_sink(tmp_path: Path):
    push = {
        "dbMethod": {"redis": {"redisClientConfig": {"addr": "127.0.0.1:6379"}}},
        "http": {"hostName": "http://127.0.0.1", "port": 8080, "requestPath": "/in"},
    }
    specs = load_documents(tmp_path, docs(push, names=("a", "b", "c")))
    factory = SinkFactory()
    started = [sink for spec in specs for sink in factory.arrived(spec).started]
    assert sorted(s.kind for s in started) == ["dbMethod.redis", "http"]


# -- each sink end to end ---------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Any:
    if RedisServer.binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def mariadb() -> Any:
    if MariaDB.binary() is None:
        pytest.skip("mariadbd is not installed (apt-get install mariadb-server)")
    server = MariaDB()
    server.start()
    await server.setup()
    yield server
    server.close()


def redis_push(server: RedisServer) -> dict[str, Any]:
    return {"dbMethod": {"redis": {"redisClientConfig": {"addr": f"127.0.0.1:{server.port}"}}}}


@pytest.mark.needs("redis")
async def test_redis_a_sorted_set_per_device_scored_by_timestamp(
    tmp_path: Path, mqtt_url: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
):
    import redis.asyncio as aioredis

    monkeypatch.setenv("PASSWORD", RedisServer.password)  # upstream's variable
    client = aioredis.Redis(port=redis_server.port, password=RedisServer.password)
    async with running(tmp_path, mqtt_url, redis_push(redis_server)) as (_m, sinks, _r):
        await until(lambda: client.zcard("boiler-1"), timeout=20)
        await until(lambda: delivered(sinks) >= 20)
    members = await client.zrange("boiler-1", 0, -1, withscores=True)
    await client.aclose()
    pattern = re.compile(rb"TimeStamp: (\d+) PropertyName: (temperature|level) data: (-?[\d.]+)")
    seen = set()
    for member, score in members:
        match = pattern.fullmatch(member)
        assert match, member
        assert int(match[1]) == score
        seen.add(match[2])
    assert seen == {b"temperature", b"level"}
    (sink,) = sinks
    # the values of a cycle travel together: one round trip per cycle at most, never per value
    assert sink.stats.requests <= sink.stats.delivered / 2, "values go in batches, not one by one"


@pytest.mark.needs("asyncmy")
@pytest.mark.parametrize("layout", list(MysqlLayout))
async def test_mysql_tables_as_upstream_or_one_table(
    tmp_path: Path,
    mqtt_url: str,
    mariadb: MariaDB,
    monkeypatch: pytest.MonkeyPatch,
    layout: MysqlLayout,
):
    monkeypatch.setenv("PASSWORD", MariaDB.password)
    push = {"dbMethod": {"mysql": {"mysqlClientConfig": {
        "addr": f"127.0.0.1:{mariadb.port}", "database": MariaDB.database,
        "userName": MariaDB.user}}}}  # fmt: skip
    options = SinkOptions(linger=0.05, mysql_layout=layout)
    async with running(tmp_path, mqtt_url, push, options) as (_m, sinks, _r):
        await until(lambda: delivered(sinks) >= 20)
    if layout is MysqlLayout.TABLE_PER_PROPERTY:
        rows = await mariadb.query("SELECT ts, field FROM `plant/boiler-1/temperature`")
        levels = await mariadb.query("SELECT ts, field FROM `plant/boiler-1/level`")
        assert rows and levels
        for ts, field in rows:
            assert ts.year >= 2024
            float(field)
        int(levels[0][1])
    else:
        rows = await mariadb.query(
            "SELECT namespace, device, property, ts, value, type FROM edgedev_readings"
        )
        assert {r[2] for r in rows} == {"temperature", "level"}
        assert {(r[0], r[1]) for r in rows} == {("plant", "boiler-1")}
        assert {r[5] for r in rows} == {"float", "int"}
        assert any(r[3].microsecond for r in rows), "milliseconds kept"


@pytest.mark.parametrize("layout", list(HttpLayout))
async def test_http_posts_to_host_port_path(tmp_path: Path, mqtt_url: str, layout: HttpLayout):
    server = HttpRecorder(reply=lambda _r: (200, b"ok"))
    server.start()
    try:
        push = {"http": {"hostName": "http://127.0.0.1", "port": server.port,
                         "requestPath": "/telemetry"}}  # fmt: skip
        options = SinkOptions(linger=0.3, http_layout=layout)  # 0.3 s: three cycles a request
        async with running(tmp_path, mqtt_url, push, options, names=("b1", "b2")) as (_, s, _r):
            await until(lambda: delivered(s) >= 40)
    finally:
        server.stop()
    requests = server.requests
    assert all(r.path == "/telemetry" for r in requests)
    if layout is HttpLayout.FORM:
        for r in requests:
            assert r.headers["content-type"] == "application/x-www-form-urlencoded"
            form = parse_qs(r.body.decode())
            assert set(form) == {"temperature", "level", "time"}, form
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", form["time"][0])
    else:
        values = [v for r in requests for v in json.loads(r.body)]
        assert {(v["device"], v["property"]) for v in values} == {
            (d, p) for d in ("b1", "b2") for p in ("temperature", "level")
        }
        assert all(v["namespace"] == "plant" and isinstance(v["timestamp"], int) for v in values)
        assert len(requests) < len(values) / 4, "several cycles of both devices in one request"


async def test_influxdb2_line_protocol_over_the_v2_write_api(
    tmp_path: Path, mqtt_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TOKEN", "influx-token")
    server = HttpRecorder()
    server.start()
    try:
        push = {"dbMethod": {"influxdb2": {
            "influxdb2ClientConfig": {"url": server.url, "org": "acme", "bucket": "plant"},
            "influxdb2DataConfig": {"measurement": "boiler data", "tag": {"site": "north,1"},
                                    "fieldKey": "value"}}}}  # fmt: skip
        async with running(tmp_path, mqtt_url, push) as (_m, sinks, _r):
            await until(lambda: delivered(sinks) >= 10)
    finally:
        server.stop()
    request = server.requests[0]
    assert request.path == "/api/v2/write?org=acme&bucket=plant&precision=ms"
    assert request.headers["authorization"] == "Token influx-token"
    lines = [line for r in server.requests for line in r.body.decode().splitlines()]
    pattern = re.compile(r'boiler\\ data,site=north\\,1 value="(-?[\d.]+)" (\d{13})')
    assert all(pattern.fullmatch(line) for line in lines), lines[:3]
    assert len(lines) == delivered(sinks)


async def test_tdengine_sql_over_rest(
    tmp_path: Path, mqtt_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("USERNAME", "root")
    monkeypatch.setenv("PASSWORD", "taos-secret")

    def reply(_r: Request) -> tuple[int, bytes]:
        return 200, b'{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[1]],"rows":1}'

    server = HttpRecorder(reply=reply)
    server.start()
    try:
        push = {"dbMethod": {"TDEngine": {"TDEngineClientConfig": {
            "addr": f"127.0.0.1:{server.port}", "dbName": "plant"}}}}  # fmt: skip
        async with running(tmp_path, mqtt_url, push) as (_m, sinks, _r):
            await until(lambda: delivered(sinks) >= 10)
    finally:
        server.stop()
    import base64

    sqls = [r.body.decode() for r in server.requests]
    assert all(r.path == "/rest/sql/plant" for r in server.requests)
    auth = base64.b64encode(b"root:taos-secret").decode()
    assert all(r.headers["authorization"] == f"Basic {auth}" for r in server.requests)
    assert sqls[0].startswith("CREATE STABLE IF NOT EXISTS plant_boiler_1 (ts timestamp,")
    assert "TAGS (localtion binary(64))" in sqls[0]
    inserts = sqls[1:]
    assert inserts and all(s.startswith("INSERT INTO ") for s in inserts)
    values = re.findall(
        r"\((\d{13}), 'plant/boiler-1', '(\w+)', '(-?[\d.]+)', '(\w+)'\)", inserts[0]
    )
    assert values and {v[1] for v in values} <= {"temperature", "level"}
    assert "plant_boiler_1_temperature USING plant_boiler_1 TAGS ('temperature')" in "".join(
        inserts
    )


@pytest.mark.needs("opentelemetry")
async def test_otel_gauges_over_otlp_http(tmp_path: Path, mqtt_url: str):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    server = HttpRecorder(reply=lambda _r: (200, b""))
    server.start()
    try:
        push = {"otel": {"endpointURL": f"{server.url}/v1/metrics"}}
        async with running(tmp_path, mqtt_url, push, names=("b1", "b2")) as (_m, sinks, _r):
            await until(lambda: delivered(sinks) >= 20)
    finally:
        server.stop()
    points: dict[tuple[str, str], list[float]] = {}
    for r in server.requests:
        assert r.path == "/v1/metrics"
        assert r.headers["content-type"] == "application/x-protobuf"
        message = ExportMetricsServiceRequest.FromString(r.body)
        for rm in message.resource_metrics:
            attrs = {a.key: a.value.string_value for a in rm.resource.attributes}
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    assert metric.WhichOneof("data") == "gauge"
                    for p in metric.gauge.data_points:
                        value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                        assert p.time_unix_nano > 1_700_000_000 * 10**9
                        points.setdefault((attrs["device.id"], metric.name), []).append(value)
    assert set(points) == {
        (f"plant/{d}", p) for d in ("b1", "b2") for p in ("temperature", "level")
    }
    assert sum(len(v) for v in points.values()) == delivered(sinks)


async def test_mqtt_publishes_to_address_topic(tmp_path: Path, mqtt_url: str):
    topic = f"{unique_root('push')}/boiler"
    push = {"mqtt": {"address": mqtt_url, "topic": topic, "qos": 1, "retained": False}}
    async with (
        Bus(mqtt_url) as bus,
        Recorder(bus, topic) as recorder,
        running(tmp_path, mqtt_url, push),
    ):
        await recorder.wait_count(lambda m: True, 10, timeout=20)
    pattern = re.compile(rf"time is \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d  {topic}: (-?[\d.]+)")
    assert all(pattern.fullmatch(m.payload.decode()) for m in recorder.messages)


# -- outages, credentials, metrics ------------------------------------------------------------


@pytest.mark.needs("redis")
async def test_a_sink_down_loses_at_most_its_queue_and_never_delays_the_device(
    tmp_path: Path, mqtt_url: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
):
    import redis.asyncio as aioredis

    monkeypatch.setenv("PASSWORD", RedisServer.password)
    counter = Counter()
    limit = 30
    options = SinkOptions(linger=0.05, queue_limit=limit)
    push = redis_push(redis_server)
    async with running(tmp_path, mqtt_url, push, options, extra=[counter]) as (_m, sinks, _r):
        (sink,) = sinks
        await until(lambda: sink.stats.delivered >= 10)
        redis_server.stop()
        down = len(counter.times)
        await until(lambda: sink.stats.dropped > 0 and not sink.stats.up, timeout=30)
        assert len(sink.delivery) <= limit
        await until(lambda: len(counter.times) >= down + 20, timeout=10)
        outage = counter.times[down:]
        redis_server.start()
        before = sink.stats.delivered
        await until(lambda: sink.stats.up and sink.stats.delivered > before + 10, timeout=40)
        counted = counter.values
        accounted = sink.stats.delivered + sink.stats.dropped + sink.delivery.pending
    gaps = [b - a for a, b in itertools.pairwise(outage)]
    assert max(gaps) < 2 * CYCLE_MS / 1000, f"the device kept its cycle: {gaps}"
    assert accounted == counted, "every value read was delivered, dropped (counted) or is queued"
    client = aioredis.Redis(port=redis_server.port, password=RedisServer.password)
    stored = await client.zcard("boiler-1")  # the restarted server kept nothing from before
    await client.aclose()
    assert stored > 10


@pytest.mark.needs("redis")
async def test_wrong_credentials_give_one_clear_error_line(
    tmp_path: Path,
    mqtt_url: str,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setenv("PASSWORD", "not-the-password")
    caplog.set_level(logging.INFO, logger="edgedev.sinks")
    async with running(tmp_path, mqtt_url, redis_push(redis_server)) as (_m, sinks, _r):
        await until(lambda: sinks[0].stats.failures >= 3, timeout=30)
    errors = [r for r in caplog.records if r.name == "edgedev.sinks"]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "dbMethod.redis" in message and f"127.0.0.1:{redis_server.port}" in message
    assert "PASSWORD" in message and "not-the-password" not in message


@pytest.mark.needs("asyncmy")
async def test_mysql_wrong_password_is_one_clear_line(
    tmp_path: Path,
    mqtt_url: str,
    mariadb: MariaDB,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setenv("EDGEDEV_MYSQL_PASSWORD", "wrong-secret")
    caplog.set_level(logging.INFO, logger="edgedev.sinks")
    push = {"dbMethod": {"mysql": {"mysqlClientConfig": {
        "addr": f"127.0.0.1:{mariadb.port}", "database": MariaDB.database,
        "userName": MariaDB.user}}}}  # fmt: skip
    async with running(tmp_path, mqtt_url, push) as (_m, sinks, _r):
        await until(lambda: sinks[0].stats.failures >= 2, timeout=30)
    errors = [r.getMessage() for r in caplog.records if r.name == "edgedev.sinks"]
    assert len(errors) == 1, errors
    assert "access denied" in errors[0] and "EDGEDEV_MYSQL_PASSWORD" in errors[0]
    assert "wrong-secret" not in errors[0]


async def test_metrics_per_sink(tmp_path: Path, mqtt_url: str):
    server = HttpRecorder()
    server.start()
    try:
        push = {"http": {"hostName": "127.0.0.1", "port": server.port, "requestPath": "/x"}}
        async with running(tmp_path, mqtt_url, push) as (mapper, sinks, _r):
            await until(lambda: delivered(sinks) >= 4)
            text = render(mapper_metrics(mapper))
    finally:
        server.stop()
    target = f'sink="http",target="http://127.0.0.1:{server.port}/x"'
    assert f"edgedev_sink_up{{{target}}} 1" in text
    assert f"edgedev_sink_dropped_total{{{target}}} 0" in text
    assert re.search(rf"edgedev_sink_delivered_total{{{re.escape(target)}}} [1-9]", text)


async def test_stopping_the_mapper_delivers_what_is_queued(tmp_path: Path, mqtt_url: str):
    server = HttpRecorder()
    server.start()
    counter = Counter()
    try:
        push = {"http": {"hostName": "127.0.0.1", "port": server.port, "requestPath": "/x"}}
        options = SinkOptions(linger=60, http_layout=HttpLayout.JSON)  # nothing leaves by itself
        specs = load_documents(tmp_path, docs(push))
        async with anyio.create_task_group() as tg:
            await tg.start(ModbusSimulator(specs).run)
            mapper = Mapper(
                specs,
                transports=[KubeEdgeMqtt(mqtt_url, topic_root=unique_root())],
                sinks=[counter],
                sinks_for=SinkFactory(options),
            )
            async with anyio.create_task_group() as mapper_tg:
                await mapper_tg.start(mapper.run)
                await until(lambda: counter.values >= 10)
                assert not server.requests
                mapper.stop()  # run() returns once it has flushed the sinks
            tg.cancel_scope.cancel()
    finally:
        server.stop()
    values = [v for r in server.requests for v in json.loads(r.body)]
    assert len(values) == counter.values, "every value read was delivered on the way out"


@pytest.mark.needs("asyncmy")
async def test_edgedev_run_serves_the_sinks_its_files_name(
    tmp_path: Path, mqtt_url: str, mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("EDGEDEV_MYSQL_PASSWORD_FILE", str(tmp_path / "password"))
    (tmp_path / "password").write_text(MariaDB.password + "\n")
    push = {"dbMethod": {"mysql": {"mysqlClientConfig": {
        "addr": f"127.0.0.1:{mariadb.port}", "database": MariaDB.database,
        "userName": MariaDB.user}}}}  # fmt: skip
    documents = docs(push)
    path = write_documents(tmp_path, documents)
    specs = load_documents(tmp_path, documents)

    async def rows() -> int:
        try:
            found = await mariadb.query("SELECT COUNT(*) FROM edgedev_readings")
        except Exception:  # the table is not there yet
            return 0
        return int(found[0][0])  # type: ignore[call-overload]

    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator(specs).run)
        args = ("run", "-f", str(path), "--broker", mqtt_url, "--mysql-layout", "single-table")
        with edgedev_process(*args, output=False):
            await until(lambda: rows(), timeout=30)
        tg.cancel_scope.cancel()
    assert await rows() > 0


@pytest.mark.needs("edgedev_modbus")
async def test_a_device_from_edgecore_pushes_where_its_push_method_says(
    tmp_path: Path, mqtt_url: str
):
    """Over DMI (EdgeCore's respelling of pushMethod), its target's sink starts with it."""
    from dmi_helpers import dmi_mapper, socket_dir
    from edgedev.testing.dmi import FakeEdgeCore

    server = HttpRecorder(reply=lambda _r: (200, b"ok"))
    server.start()
    push = {"http": {"hostName": "http://127.0.0.1", "port": server.port, "requestPath": "/in"}}
    model, boiler = docs(push, names=("b1",))
    try:
        with socket_dir() as sockets:
            core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=[boiler], models=[model])
            sim = ModbusSimulator(load_documents(tmp_path, [model, boiler]))
            async with anyio.create_task_group() as tg:
                await tg.start(sim.run)
                async with core, dmi_mapper(mqtt_url, core, sockets) as dmi:
                    with anyio.fail_after(20):
                        await dmi.sources["modbus"].wait_registered()
                    await until(lambda: server.requests, timeout=20)
                    sinks = [s for s in dmi.mapper.sinks if isinstance(s, PushSink)]
                tg.cancel_scope.cancel()
    finally:
        server.stop()
    assert len(sinks) == 1  # made when EdgeCore's device came, after the mapper started
    form = parse_qs(server.requests[0].body.decode())
    assert server.requests[0].path == "/in" and {"temperature", "level"} & set(form)


async def test_a_device_added_while_the_mapper_runs_starts_its_new_targets_sink(
    tmp_path: Path, mqtt_url: str
):
    """As a SIGHUP reload adds it: a target no device named at start is served from then on."""
    server = HttpRecorder(reply=lambda _r: (200, b"ok"))
    server.start()
    push = {"http": {"hostName": "http://127.0.0.1", "port": server.port, "requestPath": "/in"}}
    (tmp_path / "more").mkdir()
    quiet = load_documents(tmp_path, docs({}, names=("b1",)))
    loud = load_documents(tmp_path / "more", docs(push, names=("b2",)))
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(ModbusSimulator([*quiet, *loud]).run)
            factory = SinkFactory(FAST)
            mapper = Mapper(
                quiet,
                transports=[KubeEdgeMqtt(mqtt_url, topic_root=unique_root("sink"))],
                sinks_for=factory,
            )
            await tg.start(mapper.run)
            assert not [s for s in mapper.sinks if isinstance(s, PushSink)]
            assert await mapper.add_device(loud[0])
            await until(lambda: server.requests, timeout=20)
            tg.cancel_scope.cancel()
    finally:
        server.stop()
    assert {r.path for r in server.requests} == {"/in"}


async def test_a_target_no_device_names_any_more_is_delivered_to_then_closed(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
):
    """As EdgeCore removes a device over DMI: its sink delivers what it holds, then goes."""
    server = HttpRecorder(reply=lambda _r: (200, b"ok"))
    server.start()
    push = {"http": {"hostName": "http://127.0.0.1", "port": server.port, "requestPath": "/in"}}
    (spec,) = load_documents(tmp_path, docs(push, names=("b1",)))
    slow = SinkOptions(linger=30)  # values wait in the sink until it is retired
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(ModbusSimulator([spec]).run)
            mapper = Mapper(
                [spec],
                transports=[KubeEdgeMqtt(mqtt_url, topic_root=unique_root("sink"))],
                sinks_for=SinkFactory(slow),
            )
            await tg.start(mapper.run)
            (sink,) = [s for s in mapper.sinks if isinstance(s, HttpSink)]
            await until(lambda: len(sink.delivery) >= 4)  # two cycles of two properties
            assert server.requests == []
            with caplog.at_level(logging.INFO, logger="edgedev.mapper"):
                await mapper.remove_device(spec.id)
                assert sink not in mapper.sinks
                await until(lambda: "1 sink retired" in caplog.text)
            assert len(sink.delivery) == 0 and sink.stats.delivered >= 4
            assert server.requests and sink._client.is_closed

            assert await mapper.add_device(spec)  # named again: a new sink serves it
            (again,) = [s for s in mapper.sinks if isinstance(s, HttpSink)]
            assert again is not sink
            tg.cancel_scope.cancel()
    finally:
        server.stop()


# -- hostile targets (issue 32) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("push", "field", "says"),
    [
        (
            {"dbMethod": {"redis": {"redisClientConfig": {"addr": "127.0.0.1:abc"}}}},
            "addr",
            "'abc'",
        ),
        ({"http": {"hostName": "file:///etc/passwd"}}, "hostName", "'file' is not a scheme"),
        ({"http": {"hostName": "169.254.169.254"}}, "hostName", "cloud metadata address"),
        ({"otel": {"endpointURL": "http://169.254.169.254/v1"}}, "endpointURL", "metadata"),
        ({"otel": {"endpointURL": "http://collector:43x8/v1"}}, "endpointURL", "'43x8'"),
        (
            {
                "dbMethod": {
                    "mysql": {
                        "mysqlClientConfig": {"addr": "db:", "database": "d", "userName": "u"}
                    }
                }
            },
            "addr",
            "port ''",
        ),
        (
            {"mqtt": {"address": "mqtt://metadata.google.internal:1883", "topic": "t"}},
            "address",
            "metadata",
        ),
    ],
)
def test_a_bad_push_target_is_refused_at_load_naming_the_field(
    tmp_path: Path, push: dict[str, Any], field: str, says: str
):
    """On main ``127.0.0.1:abc``, ``file://``, ``169.254.169.254`` and non-numeric ports
    passed ``validate``; ``edgedev run`` then exited 0 having served nothing."""
    with pytest.raises(ConfigError) as info:
        load_documents(tmp_path, docs(push))
    text = str(info.value)
    assert "Device plant/boiler-1" in text and field in text and says in text, text


def test_credentials_in_target_urls_are_warned_and_never_shown(tmp_path: Path):
    from edgedev.loader import load_devices
    from edgedev.testing import write_documents

    url = "http://user:s3cret@127.0.0.1:1/in?token=t0ken&org=plant"
    warnings: list[Any] = []
    path = write_documents(tmp_path, docs({"otel": {"endpointURL": url}}))
    (spec,) = load_devices([path], warnings=warnings)
    text = "\n".join(str(w) for w in warnings)
    assert "user name or password" in text and "looks like a secret" in text
    (sink,) = SinkFactory().arrived(spec).started
    shown = [sink.label, sink.delivery.name, render(mapper_metrics_of([sink]))]
    assert not any("s3cret" in s or "t0ken" in s for s in shown), shown
    assert "***@127.0.0.1:1" in sink.label


def mapper_metrics_of(sinks: Sequence[PushSink]) -> list[Any]:
    """The metric families ``/metrics`` shows for ``sinks``."""
    from edgedev.health._metrics import merged

    return merged(m for sink in sinks for m in sink.metrics())


def test_httpx_and_httpcore_speak_only_at_vv():
    from edgedev._logging import setup_logging

    try:
        for verbosity, level in ((0, logging.WARNING), (1, logging.WARNING), (2, logging.DEBUG)):
            setup_logging(verbosity, default=logging.INFO)
            assert logging.getLogger("httpx").level == level
            assert logging.getLogger("httpcore").level == level
    finally:
        setup_logging(0)


def rows_of(specs: Sequence[DeviceSpec], instants: int) -> list[Row]:
    """One reading of every property of every device, at ``instants`` instants."""
    return [
        Row(spec, prop, Reading(prop.name, 1, "1", 1_700_000_000_000 + t * 1000))
        for t in range(instants)
        for spec in specs
        for prop in spec.properties
    ]


async def _endless_answer(port_ready: Callable[[int], None], sent: list[int]) -> None:
    """Answer every request with 200 and a chunked body that does not end (bounded: 2 GB)."""
    chunk = b"x" * 65536
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                await stream.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(32768):  # 2 GB at most, if nobody closes it
                    await stream.send(frame)
                    sent[0] += len(frame)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        port_ready(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(serve)


async def test_an_endless_answer_is_read_to_a_small_cap_and_closed(tmp_path: Path):
    """On main a target answering 200 with an endless chunked body took the mapper from
    342 MB to 5.4 GB in 32 s."""
    import tracemalloc

    specs = load_documents(tmp_path, docs({"http": {"hostName": "127.0.0.1", "port": 1}}))
    sent = [0]
    async with anyio.create_task_group() as tg:
        ports: list[int] = []
        tg.start_soon(_endless_answer, ports.append, sent)
        await until(lambda: ports)
        sink = HttpSink((f"http://127.0.0.1:{ports[0]}/in", 5000), linger=0)
        tracemalloc.start()
        try:
            with anyio.fail_after(5):
                await sink.send(rows_of(specs, 1))
            grown = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            await sink.close()
        tg.cancel_scope.cancel()
    assert grown < 4 * 1024 * 1024, grown  # the cap is 64 KiB; 2 GB were on offer
    assert sent[0] < 64 * 1024 * 1024  # the connection was closed, not drained


async def test_a_slow_consumer_gets_every_form_once(tmp_path: Path):
    """Upstream's form layout: one POST per device and instant. On main the batch's deadline
    covered all its POSTs: a consumer taking 0.2 s each, with a 0.5 s timeout, had the batch
    cut off after two, and the whole of it sent again, for good."""
    recorder = HttpRecorder(reply=lambda _r: (time.sleep(0.2), (204, b""))[1])
    recorder.start()
    try:
        specs = load_documents(tmp_path, docs({"http": {"hostName": "127.0.0.1"}}, ["a", "b"]))
        rows = rows_of(specs, 5)  # 2 devices x 5 instants: 10 forms, 2 s at the consumer's pace
        sink = HttpSink((recorder.url + "/in", 500), linger=0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sink.run)
            sink.delivery.put(rows)
            await until(lambda: sink.stats.delivered == len(rows), timeout=20)
            tg.cancel_scope.cancel()
        await sink.close()
        bodies = [r.body for r in recorder.requests]
        # each form once: the two devices' forms of one instant are alike, so two of each
        assert len(bodies) == 10 and set(collections.Counter(bodies).values()) == {2}
        assert sink.stats.failures == 0
    finally:
        recorder.stop()
