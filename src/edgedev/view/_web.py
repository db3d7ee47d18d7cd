"""The web view: a page over a :class:`TwinView` fed from the bus, served on the event loop.

Starlette makes the routes, uvicorn serves them from the process's own anyio task group (its
signal handling left to the command). Both come with the ``edgedev[web]`` extra.

| route                                   | answer                                               |
| --------------------------------------- | ---------------------------------------------------- |
| ``GET /``                               | the page (``static/index.html``)                     |
| ``GET /static/...``                     | its script, style and uPlot, served from the package |
| ``GET /api/fleet``                      | every device in a line, and whether writes are on    |
| ``GET /api/devices/{ns}/{name}``        | one device, every property, history (``?since=S``)   |
| ``GET /api/events?open=NS/N,...``       | server-sent events: ``snapshot``, then ``update``    |
| ``POST /api/devices/{ns}/{name}/desired`` | ``{"property", "value"}`` to the twin agent        |

Updates are coalesced: the feed marks devices dirty, and each page gets at most one event per
``redraw`` seconds, carrying the summaries of the devices that changed and the detail (new
history points included) of the devices the page has open.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from edgedev._asgi import bind_tcp
from edgedev._asgi import server as asgi_server
from edgedev._http_guard import (
    BodyRefused,
    ConnectionGuard,
    InFlightLimit,
    read_body,
    refusal_headers,
)
from edgedev.agent._client import ask_on, desired_request
from edgedev.agent._input import device_id_problem
from edgedev.bus._client import Bus
from edgedev.bus._outbox import Message
from edgedev.bus._topics import Channel, Topics
from edgedev.bus._url import BrokerURL
from edgedev.config._spec import DeviceSpec
from edgedev.view._errors import ViewError
from edgedev.view._state import TwinView
from edgedev.wire import new_event_id, twin_get

log = logging.getLogger("edgedev.view")

STATIC = Path(__file__).parent / "static"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088

MAX_OPEN = 32
"""Devices one page may have open (detail pushed live) at once."""

MAX_REQUESTS = 64
"""Requests served at once (event streams not counted); more are answered 503."""

MAX_STREAMS = 64
"""Event streams open at once (each open page holds one); more are answered 503."""

MAX_BODY = 4096
"""Bytes a write request may carry."""

_CHANNELS = (
    Channel.TWIN_UPDATE,
    Channel.TWIN_DOCUMENT,
    Channel.TWIN_DELTA,
    Channel.TWIN_GET_RESULT,
    Channel.STATE_UPDATE,
    Channel.STATE_CURRENT,
)
"""What the view listens to. Not ``twin/update/result``: the agent's answer to every mapper
report repeats the report, and the view asks for its own answers (writes) separately."""


class ViewFeed(Protocol):
    """Where the twins of a view come from when not from KubeEdge's topics (Sparkplug B).

    The view subscribes to :meth:`filters` and hands each message to :meth:`apply`, which
    updates the :class:`TwinView` (``report``, ``set_state``, ``describe_property``) and may
    answer on the bus (``publish(topic, payload)``: a Sparkplug host asks for a rebirth).
    Such a view is read-only: writes go through the twin agent, on KubeEdge's topics.
    """

    def filters(self) -> Sequence[str]:
        """The topic filters to follow."""
        ...

    def apply(
        self,
        view: TwinView,
        topic: str,
        payload: bytes,
        now: float,
        publish: Callable[[str, bytes], None],
    ) -> bool:
        """Take one message into ``view``; whether it changed anything."""
        ...


class _Client:
    """One page's event stream: what changed since its last event."""

    __slots__ = ("dirty", "open", "sent", "wake")

    def __init__(self, open_: Sequence[str]) -> None:
        self.open = set(open_)
        self.dirty: set[str] = set()
        self.sent: dict[str, float] = {}
        self.wake = anyio.Event()


def _event(name: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {data}\n\n".encode()


class ViewServer:
    """The web view of every twin on one broker.

    Run it in a task group (``await tg.start(server.run)``); :attr:`port` is then the port it
    listens on and :attr:`url` its address.

    Args:
        broker: the MQTT broker URL.
        topic_root: the topic root.
        host: the address to listen on (loopback by default: put an authenticating proxy in
            front to expose it).
        port: the port; ``0`` picks a free one.
        allow_writes: whether the page may set desired values (off by default).
        devices: device descriptions, for protocol, model, units, access and ranges.
        window: seconds of history per numeric property.
        points: slots in that window.
        redraw: seconds between two events to a page, at least.
        timeout: seconds to wait for the twin agent's answer to a write.
        feed: where the twins come from instead of KubeEdge's topics (then read-only).
    """

    def __init__(
        self,
        broker: str | BrokerURL,
        topic_root: str,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        allow_writes: bool = False,
        devices: Iterable[DeviceSpec] = (),
        window: float = 600.0,
        points: int = 300,
        redraw: float = 0.25,
        timeout: float = 5.0,
        feed: ViewFeed | None = None,
    ) -> None:
        if feed is not None and allow_writes:
            raise ViewError("a view fed from elsewhere than KubeEdge's topics is read-only")
        self.feed = feed
        self.broker = broker
        self.topics = Topics(topic_root)
        self.host = host
        self.port = port
        self.allow_writes = allow_writes
        self.redraw = redraw
        self.timeout = timeout
        self.view = TwinView(self.topics, window=window, points=points)
        self.view.describe(devices)
        self._clients: set[_Client] = set()
        self._changed = anyio.Event()
        self._closing = anyio.Event()
        self.bus: Bus | None = None
        """The connection the view follows, while it runs."""
        middleware = []
        if _loopback(host):  # a page elsewhere rebinding its name to 127.0.0.1 is refused
            hosts = ["127.0.0.1", "localhost", "::1", "[::1]"]
            middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
        self.guard = ConnectionGuard("web view", log)
        """The connections: a deadline for each request head, idle ones closed for new ones."""
        self.routes = Starlette(
            middleware=middleware,
            routes=[
                Route("/", self._page),
                Route("/api/fleet", self._fleet),
                Route("/api/events", self._events),
                Route("/api/devices/{ns}/{name}", self._device),
                Route("/api/devices/{ns}/{name}/desired", self._desired, methods=["POST"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ],
        )
        self.app = InFlightLimit(
            self.routes, limit=MAX_REQUESTS, streams=_is_stream, stream_limit=MAX_STREAMS
        )
        """The application served: the routes behind a limit on requests in flight."""

    @property
    def url(self) -> str:
        """The page's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # serving --------------------------------------------------------------------------------
    def bind(self) -> socket.socket:
        """Listen on ``host:port``; :attr:`port` becomes the bound port.

        Raises:
            ViewError: the address cannot be bound (in use, not allowed, unknown).
        """
        try:
            sock = bind_tcp(self.host, self.port)
        except OSError as exc:
            raise ViewError(f"cannot serve the view on {self.host}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        return sock

    async def run(
        self,
        *,
        bus: Bus | None = None,
        sock: socket.socket | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the bus and serve the page until cancelled.

        Args:
            bus: a connection to use (the demo's); a new one to :attr:`broker` by default.
            sock: the listening socket from :meth:`bind`; bound here by default.
            task_status: started once the page is served.

        Raises:
            ViewError: the address cannot be bound.
        """
        if sock is None:
            sock = self.bind()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if bus is None:
                    client_id = f"edgedev-view-{new_event_id()[:12]}"
                    bus = await stack.enter_async_context(Bus(self.broker, client_id=client_id))
                self.bus = bus
                filters = (
                    list(self.feed.filters())
                    if self.feed is not None
                    else [
                        self.topics.mapper_filter(),  # retained: which devices, and who runs
                        *(self.topics.device_filter(c) for c in _CHANNELS),
                    ]
                )
                messages = await stack.enter_async_context(bus.subscribe(*filters))
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._feed, bus, messages)
                    tg.start_soon(self._push)
                    await tg.start(self._serve, sock)
                    log.info("web view on %s (writes %s)", self.url, self._writes_word)
                    task_status.started()
        finally:
            self.bus = None
            sock.close()

    @property
    def _writes_word(self) -> str:
        return "on" if self.allow_writes else "off"

    async def _serve(
        self, sock: socket.socket, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        server = asgi_server(self.app, guard=self.guard)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve, [sock])
                task_status.started()  # the socket listens already: connections wait in it
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(3):
                self._closing.set()
                for client in self._clients:
                    client.wake.set()
                if server.started:
                    await server.shutdown([sock])
        raise ViewError("the web server stopped")

    async def _feed(self, bus: Bus, messages: AsyncIterator[Message]) -> None:
        view = self.view
        feed = self.feed
        if feed is not None:
            async for message in messages:
                if feed.apply(view, message.topic, message.payload, time.time(), bus.publish):
                    self._changed.set()
            return
        async for message in messages:
            if view.apply(message.topic, message.payload):
                self._changed.set()
            for device_id in view.take_new():  # ask the agent what it knows of a newcomer
                bus.publish(self.topics.device(device_id, Channel.TWIN_GET), twin_get())

    async def _push(self) -> None:
        """Hand the changed devices to every page, at most once per ``redraw`` seconds."""
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            dirty = self.view.take_dirty()
            for client in self._clients:
                client.dirty |= dirty
                client.wake.set()
            await anyio.sleep(self.redraw)

    # routes ---------------------------------------------------------------------------------
    async def _page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def _fleet_body(self) -> dict[str, Any]:
        view = self.view
        return {
            "writes": self.allow_writes,
            "window": view.window,
            "now": time.time(),
            "devices": [view.summary(d) for d in sorted(view.devices)],
        }

    async def _fleet(self, request: Request) -> Response:
        return JSONResponse(self._fleet_body())

    async def _device(self, request: Request) -> Response:
        device_id = _path_device(request)
        if isinstance(device_id, Response):
            return device_id
        if device_id not in self.view.devices:
            return _refusal(404, f"device {device_id} is unknown")
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            return _refusal(400, "since must be a finite number of seconds")
        return JSONResponse({**self.view.detail(device_id, since), "now": time.time()})

    async def _events(self, request: Request) -> Response:
        wanted = [d for d in request.query_params.get("open", "").split(",") if d]
        for device_id in wanted:
            problem = device_id_problem(device_id)
            if problem is not None:
                return _refusal(400, f"open: {problem}")
        client = _Client(wanted[:MAX_OPEN])
        return StreamingResponse(
            self._stream(client),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, client: _Client) -> AsyncIterator[bytes]:
        view = self.view
        self._clients.add(client)
        try:
            now = time.time()
            body = self._fleet_body()
            body["open"] = [view.detail(d) for d in sorted(client.open) if d in view.devices]
            client.sent = dict.fromkeys(client.open, now)
            yield _event("snapshot", body)
            while not self._closing.is_set():
                with anyio.move_on_after(15):
                    await client.wake.wait()
                if self._closing.is_set():
                    break
                if not client.wake.is_set():
                    yield b": keep-alive\n\n"
                    continue
                client.wake = anyio.Event()
                dirty, client.dirty = client.dirty, set()
                now = time.time()
                known = sorted(d for d in dirty if d in view.devices)
                opened = []
                for d in known:
                    if d in client.open:
                        since = client.sent.get(d, 0.0) - 2 * view.window / view.points
                        opened.append(view.detail(d, since))
                        client.sent[d] = now
                update = {
                    "now": now,
                    "devices": [view.summary(d) for d in known],
                    "open": opened,
                }
                yield _event("update", update)
        finally:
            self._clients.discard(client)

    async def _desired(self, request: Request) -> Response:
        if not self.allow_writes:
            return _refusal(403, "writes are off: start the view with --allow-writes")
        refused = _cross_site(request)
        if refused is not None:
            return refused
        device_id = _path_device(request)
        if isinstance(device_id, Response):
            return device_id
        try:
            body = await read_body(request, MAX_BODY)
        except BodyRefused as error:
            return _refusal(error.status, error.reason, refusal_headers())
        try:
            data = json.loads(body)
            name, value = data["property"], data["value"]
            if not isinstance(name, str) or not (value is None or isinstance(value, str)):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _refusal(400, 'send {"property": NAME, "value": TEXT or null}')
        bus = self.bus
        if bus is None:
            return _refusal(503, "the view is not connected to the bus")
        request_ = desired_request({name: value})
        answer = await ask_on(
            bus, self.topics, device_id, request_, Channel.TWIN_RESULT, self.timeout
        )
        if answer is None:
            return _refusal(504, f"no answer from a twin agent within {self.timeout:g} s")
        code = answer.get("code")
        if code is not None:
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            return _refusal(status, str(answer.get("reason", "")))
        return JSONResponse({"twin": answer.get("twin") or {}})


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _refusal(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "reason": reason}, status_code=status, headers=headers)


def _path_device(request: Request) -> str | Response:
    """The device id of the path, or the 400 answer when it is not ``namespace/name``."""
    device_id = f"{request.path_params['ns']}/{request.path_params['name']}"
    problem = device_id_problem(device_id)
    return device_id if problem is None else _refusal(400, problem)


def _is_stream(scope: Scope) -> bool:
    return bool(scope.get("path") == "/api/events")


def _cross_site(request: Request) -> JSONResponse | None:
    """A write must come from the page itself: JSON, and from the page's own origin."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _refusal(415, "a write is sent as application/json")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        return _refusal(403, "a write must come from the view's own page")
    return None
