"""Real servers for the push sink tests, each on a free loopback port in a temporary directory.

Redis (Debian ``redis-server``), MariaDB (Debian ``mariadb-server``: ``mariadb-install-db`` and
``mariadbd``), and a recording HTTP server standing in for an HTTP consumer, InfluxDB 2's write
API, TDengine's REST API and an OTLP/HTTP collector (the tests decode what it receives).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgedev.testing import ServerProcess, find_binary, free_port


class _Process(ServerProcess):
    """A sink's server: a minute to start (MariaDB), twenty seconds to stop."""

    start_timeout = 60.0
    stop_grace = 20.0

    def __init__(self) -> None:
        super().__init__(prefix="edgedev-sink-")


class RedisServer(_Process):
    """``redis-server`` without persistence, with a password."""

    password = "redis-secret"

    @staticmethod
    def binary() -> str | None:
        return find_binary("redis-server")

    def command(self) -> list[str]:
        return [
            str(self.binary()),
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory), "--requirepass", self.password,
        ]  # fmt: skip


class MariaDB(_Process):
    """``mariadbd`` on a data directory initialised by ``mariadb-install-db``, with a user."""

    user = "edge"
    password = "maria-secret"
    database = "telemetry"

    def __init__(self) -> None:
        super().__init__()
        self.data = self.directory / "data"
        install = find_binary("mariadb-install-db", "mysql_install_db")
        assert install is not None
        subprocess.run(
            [
                install, "--no-defaults", f"--datadir={self.data}", "--user=root",
                "--auth-root-authentication-method=normal", "--skip-test-db",
            ],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip

    @staticmethod
    def binary() -> str | None:
        return find_binary("mariadbd", "mysqld")

    def command(self) -> list[str]:
        return [
            str(self.binary()), "--no-defaults", f"--datadir={self.data}", "--user=root",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.directory}/sock",
            f"--pid-file={self.directory}/pid", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
            "--skip-name-resolve",
        ]  # fmt: skip

    async def setup(self) -> None:
        """Create the database and the user the sink logs in as (root has no password)."""
        import asyncmy

        conn = await asyncmy.connect(host="127.0.0.1", port=self.port, user="root", password="")
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            await cur.execute(
                f"CREATE USER IF NOT EXISTS '{self.user}'@'%' IDENTIFIED BY '{self.password}'"
            )
            await cur.execute(f"GRANT ALL ON {self.database}.* TO '{self.user}'@'%'")
        await conn.commit()
        conn.close()

    async def query(self, sql: str) -> list[tuple[object, ...]]:
        import asyncmy

        conn = await asyncmy.connect(
            host="127.0.0.1", port=self.port, user="root", password="", database=self.database
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                return list(await cur.fetchall())
        finally:
            conn.close()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpRecorder:
    """A threaded HTTP server that records every request and answers with ``reply``."""

    reply: Callable[[Request], tuple[int, bytes]] = lambda _r: (204, b"")
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.changed = threading.Condition()

    def start(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                request = Request(
                    "POST",
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                status, body = recorder.reply(request)
                if status < 400:
                    with recorder.changed:
                        recorder.requests.append(request)
                        recorder.changed.notify_all()
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()


async def until(check: Callable[[], object], timeout: float = 20.0, every: float = 0.05) -> None:
    """Wait until ``check()`` (sync or async) is true; TimeoutError after ``timeout`` s."""
    import inspect

    import anyio

    with anyio.fail_after(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(every)
