"""The mapper's REST API, as KubeEdge's mapper-framework serves it (needs ``edgedev[web]``).

| route | answer |
| --- | --- |
| ``GET /api/v1/ping`` | the server runs |
| ``GET /api/v1/device/{namespace}/{name}/{property}`` | the twin's reported value, type and time |
| ``GET /api/v1/devicemethod/{namespace}/{name}`` | the device's methods, paths and parameters |
| ``GET /api/v1/devicemethod/{ns}/{name}/{method}/{property}/{data}`` | write ``data`` |
| ``PUT``/``POST /api/v1/devicemethod/{ns}/{name}/{method}/{property}`` | write ``{"value": V}`` |
| ``GET /api/v1/meta/model/{namespace}/{name}`` | the device's DeviceModel |

``edgedev run --rest-port PORT`` serves it (see docs/rest-api.md). :class:`RestServer` and
:class:`RestApi` are imported on first use, with Starlette and uvicorn; the rest needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgedev.rest._tls import RestError, TlsFiles

if TYPE_CHECKING:
    from edgedev.rest._api import RestApi
    from edgedev.rest._server import RestServer

DEFAULT_HOST = "127.0.0.1"
"""Loopback: the API writes devices, so it stays off the network unless asked."""
DEFAULT_PORT = 7777
"""Upstream's (mapper-framework server.go:35)."""


def __getattr__(name: str) -> Any:
    if name == "RestServer":
        from edgedev.rest._server import RestServer

        return RestServer
    if name == "RestApi":
        from edgedev.rest._api import RestApi

        return RestApi
    raise AttributeError(f"module 'edgedev.rest' has no attribute {name!r}")


__all__ = ("DEFAULT_HOST", "DEFAULT_PORT", "RestApi", "RestError", "RestServer", "TlsFiles")
