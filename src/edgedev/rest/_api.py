"""The mapper's REST API: mapper-framework's routes over a running :class:`~edgedev.Mapper`.

The routes, paths and bodies are KubeEdge's (``mapper-framework/pkg/httpserver``:
``router.go``, ``restapi.go``; bodies in :mod:`edgedev.rest._shapes`), so that a client
written for a Go mapper works unchanged. What differs is on purpose:

- errors: a status that says whose mistake it is (4xx the caller's, 5xx the device's), and a
  JSON body of the same shape as the others (upstream answers every error with 500 and text);
- writes: checked as every desired value is (the method exists and names the property, the
  property is writable, the value is of its type and within its range), then written by the
  device's one :class:`~edgedev.mapper.DesiredWriter` (written, read back, reported), and
  answered when the device holds the value;
- a write may also be a ``PUT`` or ``POST`` with a JSON body ``{"value": ...}``; the ``GET``
  form stays for compatibility, but no write is taken from a browser page on another site
  (a request with an ``Origin``, or a ``Sec-Fetch-Site`` other than ``none``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgedev._errors import WriteRefused
from edgedev._http_guard import BodyRefused, read_body, refusal_headers
from edgedev.config._crd import DeviceMethod
from edgedev.config._spec import PropertySpec
from edgedev.mapper._device import DeviceRunner
from edgedev.mapper._mapper import Mapper
from edgedev.rest import _shapes as shapes
from edgedev.twin._state import DeviceState
from edgedev.twin._values import check_writable, format_value

log = logging.getLogger("edgedev.rest")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CORRELATION_HEADER = "X-Correlation-ID"
"""restapi.go ``CorrelationHeader``: echoed on every answer (upstream: on successes only)."""
MAX_CORRELATION = 256
"""Characters an ``X-Correlation-ID`` may have."""
MAX_BODY = 4096
"""Bytes the body of a write may carry."""
WRITE_TIMEOUT = 10.0
"""Seconds a write may take before it is answered 504 (server.go:42 ``WriteTimeout``)."""
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def refusal(status: int, text: str) -> JSONResponse:
    """An error answer: the shape of the others, with the reason as ``Message``."""
    return JSONResponse(shapes.message(status, text), status_code=status)


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without the port (``[::1]:7777`` is ``::1``)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _Guard:
    """Around every request: the correlation id echoed, the ``Host`` checked, no crash.

    Bound to a loopback address, the API answers only requests that name it (``127.0.0.1``,
    ``localhost``, ``::1``): a web page whose name its owner rebinds to 127.0.0.1 is refused.
    A handler that fails is logged and answered 500; the server goes on.
    """

    def __init__(self, app: ASGIApp, *, loopback: bool) -> None:
        self.app = app
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        correlation = headers.get(b"x-correlation-id")
        echo: list[tuple[bytes, bytes]] = []
        early: JSONResponse | None = None
        if correlation is not None:
            if len(correlation) > MAX_CORRELATION or not correlation.isascii():
                limit = f"{MAX_CORRELATION} ASCII characters at most"
                early = refusal(400, f"{CORRELATION_HEADER} has {limit}")
            else:
                echo.append((b"x-correlation-id", correlation))
        if early is None and self.loopback:
            host = headers.get(b"host", b"").decode("latin-1")
            if _host_name(host) not in LOOPBACK_NAMES:
                early = refusal(400, f"Host {host!r} is not this address (127.0.0.1, localhost)")
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *echo]
            await send(message)

        if early is not None:
            await early(scope, receive, send_with_id)
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("REST request %s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                await refusal(500, "the request failed (logged)")(scope, receive, send_with_id)


def _cross_site(request: Request) -> JSONResponse | None:
    """Refuse a write that a browser sends from a page: no such page belongs to the API."""
    origin = request.headers.get("origin")
    if origin is not None:
        return refusal(403, f"writes are not taken from web pages (Origin: {origin[:100]})")
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "none":
        return refusal(403, f"writes are not taken from web pages (Sec-Fetch-Site: {fetch_site})")
    return None


def _json_text(value: Any, prop: PropertySpec) -> str | None:
    """A JSON body's ``value`` as a wire string (``None`` when it is not a plain value)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return format_value(value, prop.type)
    return None


class RestApi:
    """The Starlette app of the REST API over ``mapper``.

    Args:
        mapper: the running mapper whose devices are served.
        loopback: the server listens on a loopback address (the ``Host`` is checked).
        write_timeout: seconds a write may take before it is answered 504.
    """

    def __init__(
        self, mapper: Mapper, *, loopback: bool = True, write_timeout: float = WRITE_TIMEOUT
    ) -> None:
        self.mapper = mapper
        self.write_timeout = write_timeout
        base = shapes.API_BASE
        device = "{namespace}/{name}"
        routes = [
            Route(f"{base}/ping", self._ping, methods=["GET"]),
            Route(f"{base}/device/{device}/{{property}}", self._read, methods=["GET"]),
            Route(f"{base}/devicemethod/{device}", self._methods, methods=["GET"]),
            Route(
                f"{base}/devicemethod/{device}/{{method}}/{{property}}/{{data}}",
                self._write_path,
                methods=["GET"],
            ),
            Route(
                f"{base}/devicemethod/{device}/{{method}}/{{property}}",
                self._write_body,
                methods=["PUT", "POST"],
            ),
            Route(f"{base}/meta/model/{device}", self._model, methods=["GET"]),
            Route(f"{base}/database/{device}", self._database, methods=["GET"]),
        ]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        self.app: ASGIApp = _Guard(app, loopback=loopback)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # helpers -------------------------------------------------------------------------------
    @staticmethod
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        answer = refusal(exc.status_code, exc.detail)
        answer.headers.update(exc.headers or {})  # the Allow of a 405
        return answer

    def _runner(self, request: Request) -> DeviceRunner:
        """The running device the request names (404 unknown, 503 not running yet)."""
        device_id = f"{request.path_params['namespace']}/{request.path_params['name']}"
        runner = self.mapper.runners.get(device_id)
        if runner is not None:
            return runner
        if self.mapper.serving(device_id):
            raise HTTPException(503, f"device {device_id} is not running yet")
        raise HTTPException(404, f"device {device_id} is not served by this mapper")

    @staticmethod
    def _property(runner: DeviceRunner, name: str) -> PropertySpec:
        spec = runner.spec
        if not spec.has_property(name):
            names = ", ".join(p.name for p in spec.properties)
            raise HTTPException(404, f"device {spec.id} has no property {name!r} (it has {names})")
        return spec.property(name)

    @staticmethod
    def _method(runner: DeviceRunner, name: str, prop: str) -> DeviceMethod:
        spec = runner.spec
        method = next((m for m in spec.methods if m.name == name), None)
        if method is None:
            names = ", ".join(m.name for m in spec.methods) or "none"
            raise HTTPException(
                404, f"device {spec.id} has no method {name!r} (its methods: {names})"
            )
        if prop not in method.property_names:
            names = ", ".join(method.property_names) or "none"
            raise HTTPException(
                404, f"method {name!r} of device {spec.id} does not write {prop!r} ({names} only)"
            )
        return method

    # routes --------------------------------------------------------------------------------
    async def _ping(self, request: Request) -> Response:
        return JSONResponse(shapes.ping())

    async def _read(self, request: Request) -> Response:
        """The twin's reported value of a property, with its type and when it was read."""
        runner = self._runner(request)
        prop = self._property(runner, request.path_params["property"])
        if runner.state != DeviceState.ONLINE:
            why = f": {runner.reason}" if runner.reason else ""
            raise HTTPException(503, f"device {runner.spec.id} is {runner.state}{why}")
        bad = runner.bad.get(prop.name)
        if bad is not None:  # the device gives no value now: not the last one as if it did
            raise HTTPException(503, f"device {runner.spec.id}: {prop.name} is Bad: {bad.reason}")
        held = runner.last.get(prop.name)  # in the text the twin was last told
        if held is None:
            raise HTTPException(503, f"device {runner.spec.id}: no value of {prop.name} yet")
        return JSONResponse(shapes.device_read(runner.spec, prop, held.text, held.timestamp))

    async def _methods(self, request: Request) -> Response:
        return JSONResponse(shapes.device_methods(self._runner(request).spec))

    async def _model(self, request: Request) -> Response:
        return JSONResponse(shapes.meta_model(self._runner(request).spec))

    async def _database(self, request: Request) -> Response:
        raise HTTPException(
            501, "edgedev serves no database API: read the values where dbMethod stores them"
        )

    async def _write_path(self, request: Request) -> Response:
        """``GET .../{method}/{property}/{data}``: upstream's form of a write."""
        refused = _cross_site(request)
        if refused is not None:
            return refused
        runner = self._runner(request)
        name = request.path_params["property"]
        self._method(runner, request.path_params["method"], name)
        prop = self._property(runner, name)
        return await self._write(runner, prop, request.path_params["data"])

    async def _write_body(self, request: Request) -> Response:
        """``PUT``/``POST .../{method}/{property}`` with ``{"value": ...}``."""
        refused = _cross_site(request)
        if refused is not None:
            return refused
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return refusal(415, 'send the value as application/json: {"value": ...}')
        runner = self._runner(request)
        name = request.path_params["property"]
        self._method(runner, request.path_params["method"], name)
        prop = self._property(runner, name)
        try:  # Content-Length checked first; no further than the limit; under a deadline
            body = await read_body(request, MAX_BODY)
        except BodyRefused as error:
            answer = refusal(error.status, error.reason)
            answer.headers.update(refusal_headers())
            return answer
        try:
            data = json.loads(body)
            text = _json_text(data["value"], prop) if isinstance(data, dict) else None
        except (ValueError, KeyError):
            text = None
        if text is None:
            return refusal(400, 'send {"value": V}, V a string, number or boolean')
        return await self._write(runner, prop, text)

    async def _write(self, runner: DeviceRunner, prop: PropertySpec, text: str) -> Response:
        """Check, write through the device's desired writer, answer once it holds the value."""
        spec = runner.spec
        try:
            check_writable(spec.id, prop.name, prop)
        except WriteRefused as exc:
            return refusal(403, f"device {spec.id}: {exc}")
        try:  # the one rule for desired values, the device's driver's included
            runner.desired.check(prop.name, text)
        except WriteRefused as exc:
            return refusal(422, f"device {spec.id}: {exc}")
        with anyio.move_on_after(self.write_timeout):
            result = await runner.desired.write(prop.name, text)
            if result.ok:
                return JSONResponse(shapes.written(spec.id, text))
            if result.superseded:
                return refusal(409, f"device {spec.id}: {prop.name}: {result.reason}")
            status = 503 if result.retry else 502
            return refusal(status, f"device {spec.id}: {prop.name}: {result.reason}")
        return refusal(
            504,
            f"device {spec.id}: {prop.name} not written within {self.write_timeout:g} s; "
            "it stays desired and is written when the device can take it",
        )
