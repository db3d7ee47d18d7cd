"""Real MQTT brokers for tests: a mosquitto process, or the embedded broker in a thread."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from edgedev._ports import free_port

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from edgedev.broker import EmbeddedBroker


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Return once ``host:port`` accepts TCP connections.

    Raises:
        TimeoutError: it did not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


class BrokerHandle(Protocol):
    """A broker a test can stop and start again on the same port."""

    url: str
    port: int

    def start(self) -> None:
        """Start (again) and return once it accepts connections."""

    def stop(self) -> None:
        """Stop; clients see their connection drop."""

    def close(self) -> None:
        """Stop for good and clean up."""


def find_binary(*names: str) -> str | None:
    """The path of the first of ``names`` installed, or ``None``.

    Found on PATH, or in /usr/sbin or /usr/bin: Debian puts servers in /usr/sbin, which a
    user's PATH may lack.
    """
    for name in names:
        found = shutil.which(name) or next(
            (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d, name)).exists()), None
        )
        if found:
            return found
    return None


class ServerProcess:
    """A server process on a free loopback port that a test stops and starts again.

    A subclass says how to run the server (:meth:`command`); :attr:`directory` is a scratch
    directory for its files, removed by :meth:`close`, and :attr:`output_file` gets what it
    prints. Use as a context manager, or call :meth:`start` and :meth:`close`.

    Attributes:
        port: the port the server listens on (the same after a restart).
        start_timeout: how long :meth:`start` waits for the port, in seconds.
        stop_grace: how long :meth:`stop` waits after SIGTERM before SIGKILL, in seconds.
    """

    start_timeout = 10.0
    stop_grace = 5.0

    def __init__(self, port: int | None = None, *, prefix: str = "edgedev-server-") -> None:
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        self.directory = Path(self._dir.name)
        self.output_file = self.directory / "output.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The server's command line (called at each start)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the server (if stopped) and wait until it accepts connections."""
        if self._proc is not None:
            return
        command = self.command()
        with self.output_file.open("ab") as output:
            self._proc = subprocess.Popen(command, stdout=output, stderr=output)
        try:
            wait_for_port("127.0.0.1", self.port, timeout=self.start_timeout)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after :attr:`stop_grace` seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(self.stop_grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop and remove :attr:`directory`."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Mosquitto(ServerProcess):
    """A mosquitto process on a free loopback port (``mosquitto`` must be on PATH).

    ``settings`` are the listener's configuration lines (default ``allow_anonymous true``): a
    password file, TLS files, ``require_certificate true``; with ``tls`` the URL is
    ``mqtts://localhost:PORT`` (a server certificate names ``localhost``). :attr:`directory`
    is a scratch directory for such files; :attr:`log_file` holds mosquitto's log.
    """

    def __init__(
        self, port: int | None = None, *, settings: str | None = None, tls: bool = False
    ) -> None:
        binary = find_binary("mosquitto")
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed")
        super().__init__(port, prefix="edgedev-mosquitto-")
        self._binary = binary
        self.url = f"mqtts://localhost:{self.port}" if tls else f"mqtt://127.0.0.1:{self.port}"
        self.log_file = self.directory / "mosquitto.log"
        self.settings = "allow_anonymous true\n" if settings is None else settings
        self._conf = self.directory / "mosquitto.conf"

    @staticmethod
    def available() -> bool:
        """Whether a mosquitto binary can be found."""
        return find_binary("mosquitto") is not None

    def command(self) -> list[str]:
        """Write the configuration (the listener and :attr:`settings`); mosquitto's command."""
        self._conf.write_text(
            "per_listener_settings true\npersistence false\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n"
            f"log_dest file {self.log_file}\nlog_type error\nlog_type warning\n"
            "log_type notice\nconnection_messages true\n"
            # as root, mosquitto would switch to its own user, who cannot read our files
            + ("user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else "")
            + f"listener {self.port} 127.0.0.1\n{self.settings.strip()}\n"
        )
        return [self._binary, "-c", str(self._conf)]


class EmbeddedBrokerThread:
    """edgedev's embedded broker, served from its own event loop in a thread."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._broker_cm: contextlib.AbstractContextManager[EmbeddedBroker] | None = None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        if self._portal_cm is not None:
            return
        from anyio.from_thread import start_blocking_portal

        from edgedev.broker import EmbeddedBroker

        self._portal_cm = start_blocking_portal()
        portal = self._portal_cm.__enter__()
        self._broker_cm = portal.wrap_async_context_manager(EmbeddedBroker("127.0.0.1", self.port))
        self._broker_cm.__enter__()

    def stop(self) -> None:
        """Stop the broker and its thread."""
        portal_cm, broker_cm = self._portal_cm, self._broker_cm
        if portal_cm is None:
            return
        if broker_cm is not None:
            with contextlib.suppress(Exception):
                broker_cm.__exit__(None, None, None)
        portal_cm.__exit__(None, None, None)
        self._portal_cm = self._broker_cm = None

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> EmbeddedBrokerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


BROKER_ENV = "EDGEDEV_TEST_BROKER"
"""Environment variable choosing the tests' broker: ``mosquitto``, ``embedded`` or unset."""


def make_broker(port: int | None = None) -> BrokerHandle:
    """Make a broker, not yet started: see :data:`BROKER_ENV`.

    ``EDGEDEV_TEST_BROKER=embedded`` gives the embedded broker, ``=mosquitto`` requires
    mosquitto; unset, mosquitto where installed, else the embedded broker.

    Raises:
        ValueError: the variable holds something else.
        FileNotFoundError: mosquitto was asked for and is not installed.
    """
    choice = os.environ.get(BROKER_ENV, "").strip().lower()
    if choice == "embedded":
        return EmbeddedBrokerThread(port)
    if choice == "mosquitto" or (not choice and Mosquitto.available()):
        return Mosquitto(port)
    if choice:
        raise ValueError(f"{BROKER_ENV}={choice!r}: expected 'mosquitto' or 'embedded'")
    return EmbeddedBrokerThread(port)
