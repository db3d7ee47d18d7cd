"""A fake EdgeCore for tests of DMI mappers (needs the ``dmi`` extra).

:class:`FakeEdgeCore` serves ``DeviceManagerService`` on a unix socket the way EdgeCore's
DMI server does (kubeedge/kubeedge ``edge/pkg/devicetwin/dmiserver/server.go``, cited per
rule below as of commit 16cd8548e), records every report, and calls the mapper's
``DeviceMapperService`` as EdgeCore's DMI client does. :func:`edgecore_device` and
:func:`edgecore_model` encode Device and DeviceModel documents as EdgeCore sends them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import grpc
from google.protobuf import any_pb2, wrappers_pb2
from google.protobuf.message import Message
from grpc import aio

from edgedev.dmi._limiter import TokenBucket
from edgedev.dmi._link import unix_target
from edgedev.dmi._pb import api_pb2 as pb
from edgedev.dmi._pb import api_pb2_grpc as pb_grpc

LIMIT_PER_SECOND = 1.0
"""dmiserver/server.go:55 ``Limit = 1000`` (ms per token) and :245 ``rate.Every(Limit*ms)``."""
BURST = 100
"""dmiserver/server.go:56 ``Burst = 100``."""
STATES = frozenset({"ok", "online", "offline", "unknown", "unhealthy"})
"""States EdgeCore takes (dtmanager/device.go:101-105, dtcommon/common.go:126-130)."""


def _any(value: Any) -> any_pb2.Any:
    """One JSON value as EdgeCore's dtcommon/util.go ``dataToAny`` wraps it (:184-260)."""
    message: Message
    if isinstance(value, str):
        message = wrappers_pb2.StringValue(value=value)
    elif isinstance(value, bool):
        message = wrappers_pb2.BoolValue(value=value)
    elif isinstance(value, int | float):
        # a decoded JSON number is a float64, sent as a float32 wrapper (util.go:235-241)
        message = wrappers_pb2.FloatValue(value=float(value))
    else:
        raise TypeError(f"EdgeCore cannot send {type(value).__name__} values (util.go:258-259)")
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _config(data: Mapping[str, Any] | None) -> pb.CustomizedValue:
    return pb.CustomizedValue(data={k: _any(v) for k, v in (data or {}).items()})


def edgecore_model(document: Mapping[str, Any]) -> pb.DeviceModel:
    """A DeviceModel document as EdgeCore sends it (dtcommon/util.go:168 ConvertDeviceModel)."""
    meta = document["metadata"]
    props = [
        pb.ModelProperty(
            name=p["name"],
            description=p.get("description", ""),
            type=p.get("type", ""),
            accessMode=p.get("accessMode", ""),
            minimum=str(p.get("minimum", "")),
            maximum=str(p.get("maximum", "")),
            unit=p.get("unit", ""),
        )
        for p in document["spec"].get("properties", [])
    ]
    return pb.DeviceModel(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        spec=pb.DeviceModelSpec(properties=props),
    )


def go_unmarshal(data: Mapping[str, Any], message: Message) -> None:
    """Fill ``message`` from the JSON object ``data`` as Go's ``encoding/json`` fills EdgeCore's.

    EdgeCore turns a Device into its DMI message by a JSON round trip (dtcommon/util.go:67
    ConvertDevice: ``json.Marshal`` of the CRD object, ``json.Unmarshal`` into the generated
    struct). Go matches object keys to the struct's JSON names (the proto field names)
    without regard to case, and drops keys that match none: the CRD's ``hostName`` lands in
    ``hostname``, ``TDEngine`` in ``tdengine``.
    """
    fields = {f.name.lower(): f for f in message.DESCRIPTOR.fields}
    for key, value in data.items():
        field = fields.get(key.lower())
        if field is None or value is None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, field.name).update({str(k): str(v) for k, v in value.items()})
        elif isinstance(value, list):  # a repeated field (Device.spec.methods ...)
            repeated = getattr(message, field.name)
            for item in value:
                if field.message_type is not None:
                    go_unmarshal(item, repeated.add())
                else:
                    repeated.append(item)
        elif field.message_type is not None:
            sub = getattr(message, field.name)
            sub.SetInParent()
            go_unmarshal(value, sub)
        else:
            setattr(message, field.name, value)


def edgecore_device(document: Mapping[str, Any]) -> pb.Device:
    """A Device document as EdgeCore sends it (dtcommon/util.go:67 ConvertDevice).

    Every property carries ``desired`` ("" when unset), and ``reportToCloud`` false when the
    document leaves it out (a Go bool with ``omitempty``: device_instance_types.go:123), as
    EdgeCore's JSON round trip does. ``status`` is always there: the CRD's ``status``
    (``DeviceStatusOld``, device_instance_types.go:55-62), replaced by ``spec.stateReport``
    when the Device has one (util.go:111-120).
    """
    meta, spec = document["metadata"], document["spec"]
    props = []
    for p in spec.get("properties", []):
        desired = (p.get("desired") or {}).get("value")
        visitors = p.get("visitors") or {}
        props.append(
            pb.DeviceProperty(
                name=p["name"],
                desired=pb.TwinProperty(value="" if desired is None else str(desired)),
                visitors=pb.VisitorConfig(
                    protocolName=visitors.get("protocolName", ""),
                    configData=_config(visitors.get("configData")),
                ),
                reportCycle=p.get("reportCycle", 0),
                collectCycle=p.get("collectCycle", 0),
                reportToCloud=p.get("reportToCloud", False),
            )
        )
        push = p.get("pushMethod")
        if push:
            plain = {k: v for k, v in push.items() if k != "anomalyDetection"}
            go_unmarshal(plain, props[-1].pushMethod)
            anomaly = push.get("anomalyDetection")
            if anomaly is not None:  # util.go:148-164: each value wrapped as dataToAny does
                detection = props[-1].pushMethod.anomalyDetection
                detection.SetInParent()
                for key, value in anomaly.items():
                    detection.data[key].CopyFrom(_any(value))
    protocol = spec.get("protocol") or {}
    old = document.get("status") or {}
    state = spec.get("stateReport")
    reporting = old if state is None else state
    message = pb.Device(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        spec=pb.DeviceSpec(
            deviceModelReference=spec["deviceModelRef"]["name"],
            protocol=pb.ProtocolConfig(
                protocolName=protocol.get("protocolName", ""),
                configData=_config(protocol.get("configData")),
            ),
            properties=props,
        ),
        status=pb.DeviceStatus(
            reportToCloud=bool(reporting.get("reportToCloud", False)),
            reportCycle=int(reporting.get("reportCycle", 0)),
        ),
    )
    # spec.methods goes through the JSON round trip unchanged (util.go:72-82; the CRD's
    # DeviceMethod and the message share their JSON names)
    go_unmarshal({"methods": spec.get("methods")}, message.spec)
    return message


class FakeEdgeCore(pb_grpc.DeviceManagerServiceServicer):
    """EdgeCore's DMI side: ``DeviceManagerService`` on ``socket``, and a client of mappers.

    Args:
        socket: the unix socket path to serve.
        devices: Device documents (or messages) EdgeCore holds for this node.
        models: DeviceModel documents (or messages).
        rate: requests per second its limiter lets through (EdgeCore: 1).
        burst: the limiter's burst (EdgeCore: 100).

    Attributes:
        registrations: every accepted ``MapperRegister`` request.
        statuses: every accepted ``ReportDeviceStatus`` request.
        states: every accepted ``ReportDeviceStates`` request.
        state_times: each of them with the time it came (``anyio.current_time()``).
        requests: the time (``anyio.current_time()``) of every request, accepted or not.
        limited: requests refused by the limiter.
        refused_at: when each of those came (``anyio.current_time()``).
        invalid: requests refused as invalid, with the reason.
        hold: when set to an event, a ``MapperRegister`` answer waits for it after it is
            made (what EdgeCore holds at that moment), as a busy EdgeCore's may: its own calls
            to the mapper can then overtake the answer.
    """

    def __init__(
        self,
        socket: str,
        *,
        devices: Iterable[Mapping[str, Any] | pb.Device] = (),
        models: Iterable[Mapping[str, Any] | pb.DeviceModel] = (),
        rate: float = LIMIT_PER_SECOND,
        burst: int = BURST,
    ) -> None:
        self.socket = socket
        self.devices: dict[str, pb.Device] = {}
        self.models: dict[str, pb.DeviceModel] = {}
        for d in devices:
            self.put_device(d)
        for m in models:
            self.put_model(m)
        self._rate, self._burst = rate, burst
        self.limiter = TokenBucket(rate, burst)
        self.registrations: list[pb.MapperRegisterRequest] = []
        self.statuses: list[pb.ReportDeviceStatusRequest] = []
        self.states: list[pb.ReportDeviceStatesRequest] = []
        self.state_times: list[tuple[float, pb.ReportDeviceStatesRequest]] = []
        self.requests: list[float] = []
        self.limited = 0
        self.refused_at: list[float] = []
        self.invalid: list[str] = []
        self.hold: anyio.Event | None = None
        self._changed = anyio.Event()
        self._server: aio.Server | None = None

    # what EdgeCore holds ---------------------------------------------------------------------
    def put_device(self, device: Mapping[str, Any] | pb.Device) -> pb.Device:
        """Hold a Device (a document is encoded as EdgeCore does)."""
        message = device if isinstance(device, pb.Device) else edgecore_device(device)
        self.devices[f"{message.namespace}/{message.name}"] = message
        return message

    def put_model(self, model: Mapping[str, Any] | pb.DeviceModel) -> pb.DeviceModel:
        """Hold a DeviceModel (a document is encoded as EdgeCore does)."""
        message = model if isinstance(model, pb.DeviceModel) else edgecore_model(model)
        self.models[f"{message.namespace}/{message.name}"] = message
        return message

    # serving ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve the socket (again, after :meth:`stop`: a restarted EdgeCore, fresh limiter)."""
        if os.path.exists(self.socket):  # noqa: ASYNC240 (a stat, once per start)
            os.unlink(self.socket)
        self.limiter = TokenBucket(self._rate, self._burst)
        server = aio.server()
        pb_grpc.add_DeviceManagerServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(unix_target(self.socket))
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Stop serving (EdgeCore stopped)."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(None)

    async def __aenter__(self) -> FakeEdgeCore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.stop()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once ``condition()`` holds, checked after every request received.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _admit(self, context: aio.ServicerContext[Any, Any], what: str) -> None:
        """Count the request; refuse it as EdgeCore's limiter does (server.go:67-69 ...)."""
        now = anyio.current_time()
        self.requests.append(now)
        if not self.limiter.take(now):
            self.limited += 1
            self.refused_at.append(now)
            self._note()
            # a plain Go error: gRPC code UNKNOWN with this text (server.go:68, :139, :161)
            await context.abort(
                grpc.StatusCode.UNKNOWN, f"fail to {what} because of too many request"
            )

    async def _invalid(self, context: aio.ServicerContext[Any, Any], reason: str) -> None:
        self.invalid.append(reason)
        self._note()
        await context.abort(grpc.StatusCode.UNKNOWN, reason)

    # DeviceManagerService ---------------------------------------------------------------------
    async def MapperRegister(
        self, request: pb.MapperRegisterRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.MapperRegisterResponse:
        """Record the mapper; answer with the devices of its protocol and their models."""
        await self._admit(context, f"register mapper {request.mapper.name}")
        if not request.mapper.protocol:  # server.go:71-74
            await self._invalid(context, f"mapper {request.mapper.name}: the protocol is nil")
        self.registrations.append(request)
        self._note()
        if not request.withData:  # server.go:85-87
            return pb.MapperRegisterResponse()
        response = pb.MapperRegisterResponse()
        for device in self.devices.values():
            if device.spec.protocol.protocolName != request.mapper.protocol:  # server.go:105
                continue
            model = self.models.get(f"{device.namespace}/{device.spec.deviceModelReference}")
            if model is None:  # server.go:99-103: the device is skipped
                continue
            response.deviceList.append(device)  # server.go:121-122: one model per device
            response.modelList.append(model)
        if self.hold is not None:
            await self.hold.wait()
        return response

    async def ReportDeviceStatus(
        self, request: pb.ReportDeviceStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ReportDeviceStatusResponse:
        """Record the reported twins of one device, refusing what EdgeCore cannot take."""
        await self._admit(context, f"report device status {request.deviceName}")
        if not request.HasField("reportedDevice") or not request.reportedDevice.twins:
            # server.go:142, :152
            await self._invalid(context, "ReportDeviceStatusRequest does not have twin data")
        if not request.deviceNamespace:
            # the twin topic is built from namespace/name (server.go:179): without a namespace
            # the report lands on another device
            await self._invalid(context, f"device {request.deviceName}: no deviceNamespace")
        for twin in request.reportedDevice.twins:
            # server.go:209-210 dereferences both without a nil check: EdgeCore would panic
            if not twin.HasField("observedDesired") or not twin.HasField("reported"):
                await self._invalid(
                    context, f"twin {twin.propertyName}: observedDesired and reported are required"
                )
        self.statuses.append(request)
        self._note()
        return pb.ReportDeviceStatusResponse()

    async def ReportDeviceStates(
        self, request: pb.ReportDeviceStatesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ReportDeviceStatesResponse:
        """Record one device's state, refusing states EdgeCore ignores."""
        await self._admit(context, f"report device states {request.deviceName}")
        if not request.state or not request.deviceName:  # server.go:164, :172
            await self._invalid(context, "ReportDeviceStatesRequest is invalid data")
        if request.state.lower() not in STATES:
            await self._invalid(context, f"device {request.deviceName}: state {request.state!r}")
        self.states.append(request)
        self.state_times.append((anyio.current_time(), request))
        self._note()
        return pb.ReportDeviceStatesResponse()

    # what was received -------------------------------------------------------------------------
    def reported(self, device: str) -> dict[str, str]:
        """The latest reported value of each property of ``namespace/name``."""
        ns, name = device.split("/", 1)
        out: dict[str, str] = {}
        for status in self.statuses:
            if status.deviceNamespace == ns and status.deviceName == name:
                for twin in status.reportedDevice.twins:
                    out[twin.propertyName] = twin.reported.value
        return out

    def state_of(self, device: str) -> str | None:
        """The latest state reported for ``namespace/name``."""
        ns, name = device.split("/", 1)
        found = [s.state for s in self.states if s.deviceNamespace == ns and s.deviceName == name]
        return found[-1] if found else None

    def max_in_window(self, window: float = 1.0) -> int:
        """The most requests received within any ``window`` seconds (refused ones too)."""
        times, best, start = self.requests, 0, 0
        for end in range(len(times)):
            while times[end] - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # EdgeCore as the mapper's client -----------------------------------------------------------
    @asynccontextmanager
    async def mapper(
        self, address: str | None = None
    ) -> AsyncIterator[pb_grpc.DeviceMapperServiceStub]:
        """A client of the mapper's ``DeviceMapperService`` (at the last registration's address).

        Without ``address``, it waits for a registration first (TimeoutError after 10 s).

        As EdgeCore's dmiclient/client.go:58-64 dials ``MapperInfo.address`` as a unix path.
        """
        if address is None:
            await self.wait_for(lambda: bool(self.registrations))
            address = self.registrations[-1].mapper.address.decode()
        async with aio.insecure_channel(unix_target(address)) as channel:
            yield pb_grpc.DeviceMapperServiceStub(channel)  # type: ignore[no-untyped-call]


__all__ = ["BURST", "LIMIT_PER_SECOND", "FakeEdgeCore", "edgecore_device", "edgecore_model"]
