"""The health endpoint: probes, Prometheus text, and a server that a bad client cannot stall."""

from __future__ import annotations

import anyio
import pytest

from edgedev.cli import build_parser
from edgedev.health import Health, HealthServer, Metric, render, respond


def health(ready: bool = True) -> Health:
    return Health(
        live=lambda: (True, "ok"),
        ready=lambda: (ready, "ready" if ready else "queue full"),
        metrics=lambda: [
            Metric("edgedev_queue_messages", "messages waiting", "gauge").add(3),
            Metric("edgedev_device_reads_total", "reads", "counter")
            .add(10, device="default/a")
            .add(0.5, device='we"ird\\name\n'),
        ],
    )


def test_prometheus_text_format():
    text = render(health().metrics())
    assert text.splitlines() == [
        "# HELP edgedev_queue_messages messages waiting",
        "# TYPE edgedev_queue_messages gauge",
        "edgedev_queue_messages 3",
        "# HELP edgedev_device_reads_total reads",
        "# TYPE edgedev_device_reads_total counter",
        'edgedev_device_reads_total{device="default/a"} 10',
        'edgedev_device_reads_total{device="we\\"ird\\\\name\\n"} 0.5',
    ]
    assert text.endswith("\n")


def test_routes():
    assert respond(health(), "GET", "/healthz")[0] == 200
    assert respond(health(), "GET", "/readyz")[0] == 200
    status, _, body = respond(health(ready=False), "GET", "/readyz?verbose")
    assert (status, body) == (503, "queue full\n")
    status, ctype, _ = respond(health(), "GET", "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert respond(health(), "GET", "/nope")[0] == 404
    assert respond(health(), "POST", "/healthz")[0] == 405


async def request(port: int, raw: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(raw)
        data = b""
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return data


async def test_server_answers_over_http_and_refuses_garbage():
    server = HealthServer(health(ready=False), 0, host="127.0.0.1")
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        # a client that connects and never sends does not hold up the others
        async with await anyio.connect_tcp("127.0.0.1", server.port):
            with anyio.fail_after(10):
                ok = await request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                ready = await request(server.port, b"GET /readyz HTTP/1.0\r\n\r\n")
                metrics = await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
                head = await request(server.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
                garbage = await request(server.port, b"\xff\xfe nonsense\r\n\r\n")
        tg.cancel_scope.cancel()
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\nok\n")
    assert ready.startswith(b"HTTP/1.1 503 ")
    assert b"Content-Type: text/plain; version=0.0.4" in metrics
    assert b'edgedev_device_reads_total{device="default/a"} 10' in metrics
    assert head.endswith(b"\r\n\r\n") and b"Content-Length: " in head
    assert garbage.startswith(b"HTTP/1.1 400 ")


def test_run_options_and_their_environment(monkeypatch: pytest.MonkeyPatch):
    args = build_parser().parse_args(["run", "-f", "x.yaml"])
    assert (args.data_dir, args.queue_limit, args.health_port) == (None, 100_000, None)
    monkeypatch.setenv("EDGEDEV_DATA_DIR", "/var/lib/edgedev")
    monkeypatch.setenv("EDGEDEV_QUEUE_LIMIT", "500")
    monkeypatch.setenv("EDGEDEV_HEALTH_PORT", "8080")
    args = build_parser().parse_args(["run", "-f", "x.yaml"])
    assert (args.data_dir, args.queue_limit, args.health_port) == ("/var/lib/edgedev", 500, 8080)
    args = build_parser().parse_args(
        ["run", "-f", "x.yaml", "--data-dir", "d", "--queue-limit", "7", "--health-port", "0"]
    )
    assert (args.data_dir, args.queue_limit, args.health_port) == ("d", 7, 0)


@pytest.mark.parametrize("bad", [["--queue-limit", "0"], ["--health-port", "70000"]])
def test_bad_option_values_are_refused(bad: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "-f", "x.yaml", *bad])
    assert exit_info.value.code == 2
    assert bad[0] in capsys.readouterr().err


@pytest.mark.broker
async def test_the_agent_serves_the_same_endpoints(mqtt_url: str):
    from edgedev.agent import Agent
    from edgedev.health import agent_health, serving

    agent = Agent(broker=mqtt_url, topic_root="health-agent", node="n1")
    async with anyio.create_task_group() as tg:
        async with serving(agent_health(agent), 0, host="127.0.0.1") as server:
            assert server is not None
            starting = await request(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")
            await tg.start(agent.run)
            assert agent.bus is not None
            with anyio.fail_after(10):
                await agent.bus.wait_connected()
            ready = await request(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")
            metrics = await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        tg.cancel_scope.cancel()
    assert starting.startswith(b"HTTP/1.1 503 ") and b"starting" in starting
    assert ready.startswith(b"HTTP/1.1 200 ")
    assert b"edgedev_broker_connected 1" in metrics
    assert b"# TYPE edgedev_agent_messages_total counter" in metrics


def test_public_names_of_the_health_package():
    import edgedev.health

    assert isinstance(edgedev.health.__all__, tuple)
    for name in edgedev.health.__all__:
        assert getattr(edgedev.health, name) is not None, name


async def test_serving_keeps_the_block_s_exception_and_refuses_a_taken_port():
    from edgedev.health import HealthError, serving

    with pytest.raises(KeyError):
        async with serving(health(), 0, host="127.0.0.1"):
            raise KeyError("from the block")
    async with serving(health(), 0, host="127.0.0.1") as server:
        assert server is not None
        with pytest.raises(HealthError, match="cannot serve health"):
            async with serving(health(), server.port, host="127.0.0.1"):
                pass
    async with serving(health(), None) as nothing:
        assert nothing is None


@pytest.mark.needs("edgedev_modbus")
def test_run_with_a_taken_health_port_says_so(tmp_path, capsys: pytest.CaptureFixture[str]):
    import socket

    from edgedev.cli import main
    from reliability_helpers import fleet_docs, write_docs

    file = write_docs(tmp_path, fleet_docs(["p0"]))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["run", "-f", str(file), "--broker", "mqtt://127.0.0.1:1"]
        code = main([*argv, "--health-port", str(port), "--data-dir", str(tmp_path / "d")])
    assert code == 1
    assert "cannot serve health" in capsys.readouterr().err
