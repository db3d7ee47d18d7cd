"""A test double of KubeEdge EdgeCore's DeviceTwin, written from its Go source.

Source: kubeedge/kubeedge at v1.23.0-beta.0-150-g16cd8548e (the rules are the same since
v1.15). Only what a mapper meets on MQTT is modelled: ``twin/update`` (refused whole, or
applied and followed by a delta), ``twin/get``. Each rule cites the Go file and line.

:class:`EdgeCoreTwins` is pure (payload in, replies out); :func:`edgecore_running` serves it
on a real broker for a mapper under test.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from edgedev import Bus
from edgedev.bus._topics import Channel, DeviceTopic, Topics

# edge/pkg/devicetwin/dtcommon/util.go:55 (ValidateTwinKey) and :62 (ValidateTwinValue)
KEY = re.compile(r"^[a-zA-Z0-9-_.,:/@#]{1,128}$")
VALUE = re.compile(r"^[a-zA-Z0-9-_.,:/@#]{1,512}$")
GO_INT = re.compile(r"^[+-]?[0-9]+$")


def validate_value(type_: str, value: str) -> str | None:
    """dtcommon/util.go:22-51 ValidateValue: the error text, or ``None``."""
    if type_ in ("", "string", "deleted"):  # util.go:24-27, :46
        return None
    if type_ in ("int", "integer"):  # util.go:29-34: strconv.ParseInt(value, 10, 64)
        ok = bool(GO_INT.match(value)) and -(2**63) <= int(value) < 2**63
        return None if ok else "the value is not int or integer"
    if type_ == "float":  # util.go:35-40: strconv.ParseFloat(value, 64)
        try:
            float(value)
        except ValueError:
            return "the value is not float"
        return None if value.strip() == value and "_" not in value else "the value is not float"
    if type_ == "boolean":  # util.go:41-45: exactly "true" or "false"
        return None if value in ("true", "false") else "the bool value must be true or false"
    return "the value type is not allowed"  # util.go:48-49: "double", "bytes" ... refused


def _go_int64(value: Any) -> bool:
    """Whether Go's encoding/json puts JSON ``value`` into an int64 (an integer literal)."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _go_types(msg: Any) -> str | None:
    """What of a ``MsgTwin`` Go's json.Unmarshal cannot put in its typed field, or ``None``.

    dttype/types.go:124-153: ``metadata`` is ``TypeMetadata{Type string}``, ``expected``
    and ``actual`` are ``TwinValue{Value *string, Metadata *ValueMetadata}``,
    ``ValueMetadata{Timestamp int64}``. A field of another JSON type fails the whole
    unmarshal (types.go:262-265); keys the structs do not have are ignored (encoding/json
    drops unknown fields), such as edgedev's ``error``, ``quality`` and
    ``actual.metadata.quality``.
    """
    if not isinstance(msg, dict):
        return "a twin that is not an object"
    meta = msg.get("metadata")
    if meta is not None and (
        not isinstance(meta, dict) or not isinstance(meta.get("type", ""), str)
    ):
        return "metadata"
    for part in ("expected", "actual"):
        entry = msg.get(part)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("value", ""), str | None):
            return part
        stamp = (entry.get("metadata") or {}).get("timestamp")
        if stamp is not None and not _go_int64(stamp):
            return f"{part} timestamp {stamp!r}"
    return None


@dataclass
class Twin:
    """One stored twin property (dttype.MsgTwin): values and the stored ``attr_type``."""

    type: str
    expected: str | None = None
    actual: str | None = None
    optional: bool = True


@dataclass
class EdgeCoreTwins:
    """The DeviceTwin rules over a set of known devices.

    Attributes:
        devices: device id -> property -> twin.
        refused: the reasons of refused twin/update messages, in order.
        accepted: twin/update messages applied.
        reporters: devices with at least one applied twin/update.
        deltas: deltas published.
    """

    devices: dict[str, dict[str, Twin]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    accepted: int = 0
    reporters: set[str] = field(default_factory=set)
    deltas: int = 0
    _changed: anyio.Event = field(default_factory=anyio.Event, repr=False)

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Return once ``condition()`` holds after an update; TimeoutError after ``timeout``."""
        with anyio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    def add_device(self, device_id: str, desired: dict[str, tuple[str, str]] | None = None) -> None:
        """A device as the cloud sends it: desired values with their twin type."""
        self.devices[device_id] = {
            name: Twin(type_, expected=value) for name, (type_, value) in (desired or {}).items()
        }

    def update(
        self, device_id: str, payload: bytes
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A ``twin/update``: the result, and the delta EdgeCore would publish (or ``None``)."""
        try:
            return self._update(device_id, payload)
        finally:
            self._changed.set()
            self._changed = anyio.Event()

    def _update(
        self, device_id: str, payload: bytes
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        try:
            body = json.loads(payload)
        except ValueError:
            return self._refuse("unmarshal"), None
        reason = self._unmarshal_error(body)
        if reason is not None:  # dtmanager/twin.go:177-184: 400, nothing applied
            return self._refuse(reason), None
        twins = self.devices.get(device_id)
        if twins is None:  # twin.go:199-207: 404
            return {"code": 404, "reason": "device not found"}, None
        staged = {k: Twin(**vars(v)) for k, v in twins.items()}
        for key, msg in body["twin"].items():  # twin.go:1012-1031 DealMsgTwin
            error = self._apply(staged, key, msg)
            if error is not None:  # twin.go:223-234: rollback (SyncDeviceFromSqlite), 400
                return self._refuse(f"{key}: {error}"), None
        self.devices[device_id] = staged
        self.accepted += 1
        self.reporters.add(device_id)
        return {"event_id": body.get("event_id", ""), "code": 200}, self._delta(staged)

    def get(self, device_id: str, event_id: str) -> dict[str, Any]:
        """``twin/get/result``: the whole twin."""
        twins = self.devices.get(device_id, {})
        return {"event_id": event_id, "twin": {k: self._msg(t) for k, t in twins.items()}}

    def _refuse(self, reason: str) -> dict[str, Any]:
        self.refused.append(reason)
        return {"code": 400, "reason": reason}

    @staticmethod
    def _unmarshal_error(body: Any) -> str | None:
        """dttype/types.go:260-298 UnmarshalDeviceTwinUpdate."""
        if not isinstance(body, dict) or body.get("twin") is None:  # types.go:266-268
            return "twin missing"
        for key, value in body["twin"].items():
            if not KEY.match(key):  # types.go:270-273: the whole message
                return f"key {key!r}"
            if value is None:
                continue
            typing = _go_types(value)  # types.go:262-265: json.Unmarshal, typed fields
            if typing is not None:
                return f"{typing} of {key}"
            for part in ("expected", "actual"):  # types.go:275-294; "" is not checked
                text = (value.get(part) or {}).get("value")
                if text and not VALUE.match(text):
                    return f"{part} value {text!r} of {key}"
        return None

    @staticmethod
    def _apply(twins: dict[str, Twin], key: str, msg: dict[str, Any] | None) -> str | None:
        twin = twins.get(key)
        if msg is None:  # twin.go:1017 and :435 dealTwinDelete: an optional twin is removed
            if twin is not None and twin.optional:
                twin.type, twin.expected, twin.actual = "deleted", None, None
            return None
        msg_type = (msg.get("metadata") or {}).get("type", "string")
        if twin is None or twin.type == "deleted":  # twin.go:816-920 dealTwinAdd: msg type
            twin = twins[key] = Twin(msg_type if msg.get("metadata") else "string")
        type_ = twin.type  # twin.go:564-571: an existing twin keeps its stored type
        for part in ("expected", "actual"):
            entry = msg.get(part)
            if entry is None or entry.get("value") is None:
                continue
            error = validate_value(type_, entry["value"])  # twin.go:574, :863, :902
            if error is not None:
                return error
            setattr(twin, part, entry["value"])
        return None

    def _delta(self, twins: dict[str, Twin]) -> dict[str, Any] | None:
        """dttype/types_helper.go:308-344 BuildDeviceTwinDelta, sent after every update
        (dtmanager/twin.go:270-276): desired and reported compared as strings."""
        delta = {}
        for key, twin in twins.items():
            if twin.type == "deleted" or not twin.expected:  # types_helper.go:312-321
                continue
            if twin.expected != (twin.actual or ""):  # types_helper.go:326
                delta[key] = twin.expected
        if not delta:
            return None
        self.deltas += 1
        return {"twin": {k: self._msg(t) for k, t in twins.items()}, "delta": delta}

    @staticmethod
    def _msg(twin: Twin) -> dict[str, Any]:
        msg: dict[str, Any] = {"metadata": {"type": twin.type}, "optional": twin.optional}
        if twin.expected is not None:
            msg["expected"] = {"value": twin.expected, "metadata": {"timestamp": 1}}
        if twin.actual is not None:
            msg["actual"] = {"value": twin.actual, "metadata": {"timestamp": 1}}
        return msg


@asynccontextmanager
async def edgecore_running(
    url: str, topic_root: str, core: EdgeCoreTwins
) -> AsyncIterator[EdgeCoreTwins]:
    """Serve ``core`` on the broker at ``url`` under ``topic_root`` until the block ends."""
    topics = Topics(topic_root)

    async def serve(bus: Bus, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        filters = (
            topics.device_filter(Channel.TWIN_UPDATE),
            topics.device_filter(Channel.TWIN_GET),
        )
        async with bus.subscribe(*filters) as messages:
            task_status.started()
            async for message in messages:
                topic = topics.parse(message.topic)
                if not isinstance(topic, DeviceTopic):
                    continue
                device = topic.device_id
                if topic.channel is Channel.TWIN_GET:
                    event_id = json.loads(message.payload).get("event_id", "")
                    reply = core.get(device, event_id)
                    bus.publish(
                        topics.device(device, Channel.TWIN_GET_RESULT), json.dumps(reply).encode()
                    )
                    continue
                result, delta = core.update(device, message.payload)
                bus.publish(topics.device(device, Channel.TWIN_RESULT), json.dumps(result).encode())
                if delta is not None:
                    bus.publish(
                        topics.device(device, Channel.TWIN_DELTA), json.dumps(delta).encode()
                    )

    async with Bus(url) as bus, anyio.create_task_group() as tg:
        await tg.start(serve, bus)
        yield core
        tg.cancel_scope.cancel()
