"""``pushMethod.http``: a POST to ``hostName:port/requestPath``.

``form`` (the default, upstream's body): ``application/x-www-form-urlencoded``
``property=value&time=YYYY-MM-DD HH:MM:SS``; edgedev sends the properties of one device read
at one instant in one body (``a=1&b=2&time=...``), so a reader of upstream's single-value body
keeps working. ``json``: one POST per batch with every value queued, as a JSON array of
``{"namespace","device","property","value","type","timestamp"}`` (timestamp in ms).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Unpack
from urllib.parse import urlencode

import anyio

from edgedev.config._crd import HttpPush, PushMethod
from edgedev.sinks._base import ConfigT, PushSink, Row, TargetT, wall_time
from edgedev.sinks._delivery import (
    DeliveryOptions,
    PartlyDelivered,
    Refused,
    SinkError,
    describe,
    seconds,
)
from edgedev.twin import Quality
from edgedev.wire import type_name

if TYPE_CHECKING:
    pass


class HttpLayout(enum.StrEnum):
    """The body of the HTTP sink's requests."""

    FORM = "form"
    JSON = "json"


def url_of(config: HttpPush) -> str:
    """``hostName:port/requestPath``; ``http://`` when ``hostName`` names no scheme."""
    host = config.host_name if "://" in config.host_name else f"http://{config.host_name}"
    return f"{host.rstrip('/')}:{config.port}{config.request_path}"


def forms(rows: Sequence[Row]) -> list[tuple[bytes, list[Row]]]:
    """One form body per device and instant, ``p=v&q=w&time=...``, each with its rows."""
    groups: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.device.id, row.reading.timestamp), []).append(row)
    return [
        (
            urlencode(
                [*((r.reading.name, r.reading.text) for r in group), ("time", wall_time(ts))]
            ).encode(),
            group,
        )
        for (_, ts), group in groups.items()
    ]


def json_body(rows: Sequence[Row]) -> bytes:
    """The ``json`` layout: every row of the batch in one array.

    A value the device gave as Uncertain carries ``"quality": "Uncertain"``.
    """
    return json.dumps([_json_row(r) for r in rows], separators=(",", ":")).encode()


def _json_row(row: Row) -> dict[str, object]:
    entry: dict[str, object] = {
        "namespace": row.device.namespace,
        "device": row.device.name,
        "property": row.prop.name,
        "value": row.reading.text,
        "type": type_name(row.prop.type),
        "timestamp": row.reading.timestamp,
    }
    if row.reading.quality is not Quality.GOOD:
        entry["quality"] = row.reading.quality.value
    return entry


MAX_ANSWER = 64 * 1024
"""Bytes of an answer's body read at most; the rest is never read (the connection closes)."""


class HttpClientSink(PushSink[ConfigT, TargetT]):
    """A base for sinks that POST with one shared ``httpx.AsyncClient`` per target.

    Each request has its own deadline (the target's timeout), so that one slow request fails
    alone and the requests of a batch that went through before it are counted and never sent
    again; an answer's body is read up to :data:`MAX_ANSWER` bytes, then the response is
    closed (an endless body costs nothing).
    """

    deadline_per_request = True

    def __init__(self, target: TargetT, **delivery: Unpack[DeliveryOptions]) -> None:
        super().__init__(target, **delivery)
        import httpx  # the 'http' extra (and of influxdb, tdengine, otel)

        self._client = httpx.AsyncClient(timeout=self.delivery.timeout)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> bytes:
        """POST ``body`` under the deadline; the answer's body, at most :data:`MAX_ANSWER`.

        Raises:
            SinkError: a refusal (4xx/5xx), with the status; :class:`Refused` when the data
                itself was refused.
            TimeoutError: no whole answer within the target's timeout.
        """
        with anyio.fail_after(self.delivery.timeout):
            async with self._client.stream("POST", url, content=body, headers=headers) as answer:
                status = answer.status_code
                kept = bytearray()
                async for chunk in answer.aiter_bytes():
                    kept += chunk
                    if len(kept) >= MAX_ANSWER:
                        break  # leaving the block closes the response, and its connection
        if status >= 400:
            hint = " (check the credentials)" if status in (401, 403) else ""
            text = " ".join(bytes(kept[:400]).decode("utf-8", "replace").split())[:200]
            if status < 500 and status not in (401, 403, 404, 408, 429):
                raise Refused(f"HTTP {status}: {text}")  # the data itself: retrying cannot help
            raise SinkError(f"HTTP {status}{hint}: {text}")
        return bytes(kept)

    async def close(self) -> None:
        """Close the connections."""
        await self._client.aclose()


class HttpSink(HttpClientSink[HttpPush, tuple[str, int]]):
    """Readings POSTed to ``hostName:port/requestPath``.

    Args:
        target: ``(url, timeout_ms)``.
        layout: :class:`HttpLayout`.
        delivery: queue and retry settings.
    """

    kind = "http"

    def __init__(
        self,
        target: tuple[str, int],
        *,
        layout: HttpLayout = HttpLayout.FORM,
        **delivery: Unpack[DeliveryOptions],
    ) -> None:
        delivery.setdefault("timeout", seconds(target[1]))  # the config's, unless given
        super().__init__(target, **delivery)
        self.layout = HttpLayout(layout)

    @classmethod
    def config_of(cls, push: PushMethod) -> HttpPush | None:
        """``pushMethod.http``."""
        return push.http

    @classmethod
    def target_of(cls, config: HttpPush) -> tuple[str, int]:
        """The URL and the timeout."""
        return (url_of(config), config.timeout)

    async def send(self, rows: Sequence[Row]) -> int | None:
        """``json``: one POST; ``form``: one POST per device and instant, in order."""
        url = self.target[0]
        if self.layout is HttpLayout.JSON:
            await self.post(url, json_body(rows), {"content-type": "application/json"})
            return None
        bodies = forms(rows)
        for done, (body, _) in enumerate(bodies):  # each under its own deadline
            try:
                await self.post(url, body, {"content-type": "application/x-www-form-urlencoded"})
            except Exception as exc:
                if not done:
                    raise
                # what was accepted is not sent again
                remaining = [row for _, group in bodies[done:] for row in group]
                raise PartlyDelivered(describe(exc), remaining) from None
        return len(bodies)
