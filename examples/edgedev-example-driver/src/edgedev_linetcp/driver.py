"""The ``linetcp`` driver: every due property in one ``READ`` line, writes as ``WRITE``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anyio
from anyio.streams.buffered import BufferedByteStream
from pydantic import Field

from edgedev.drivers import (
    DeviceError,
    Driver,
    PropertySpec,
    ProtocolConfig,
    VisitorConfig,
    WriteRefused,
)
from edgedev.twin import Value, format_value, parse_value


class LineProtocol(ProtocolConfig):
    """``spec.protocol.configData``: where the device listens."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class LineVisitor(VisitorConfig):
    """``visitors.configData``: the device's name for the property."""

    key: str = Field(pattern=r"^\S+$")


class LineDriver(Driver[LineProtocol, LineVisitor]):
    """One TCP connection to one ``linetcp`` device."""

    protocol_config = LineProtocol
    visitor_config = LineVisitor
    _stream: BufferedByteStream | None = None

    async def connect(self) -> None:
        """Open the TCP connection."""
        self._stream = BufferedByteStream(
            await anyio.connect_tcp(self.config.host, self.config.port)
        )

    async def close(self) -> None:
        """Close the connection, if open."""
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def _ask(self, request: str, refused: type[Exception]) -> list[str]:
        if self._stream is None:
            raise DeviceError("not connected")
        await self._stream.send(request.encode() + b"\n")
        answer, *words = (await self._stream.receive_until(b"\n", 65536)).decode().split() or [""]
        if answer != "OK":
            raise refused(f"{request!r} refused: {' '.join(words)}")
        return words

    async def read(self, properties: Sequence[PropertySpec[LineVisitor]]) -> Mapping[str, Value]:
        """Read every property with a single ``READ`` request."""
        words = await self._ask("READ " + " ".join(p.visitor.key for p in properties), DeviceError)
        if len(words) != len(properties):
            raise DeviceError(f"asked for {len(properties)} values, got {len(words)}")
        return {p.name: parse_value(w, p.type) for p, w in zip(properties, words, strict=True)}

    async def write(self, prop: PropertySpec[LineVisitor], value: Value) -> None:
        """Write one property; the device's ``ERR`` becomes :class:`WriteRefused`."""
        await self._ask(f"WRITE {prop.visitor.key} {format_value(value, prop.type)}", WriteRefused)
