"""KubeEdge DMI as a device source: EdgeCore says which devices to run, the mapper runs them.

A :class:`DmiSource` (one per protocol, part of :class:`~edgedev.dmi.Dmi`) serves
``DeviceMapperService`` on the mapper's unix socket, registers with EdgeCore
(``MapperRegister`` with ``withData``), and turns what EdgeCore sends into
:meth:`~edgedev.mapper.MapperView.add_device`, ``update_device`` and ``remove_device`` calls;
desired values go to the device's :class:`~edgedev.mapper.DesiredWriter`, those of one
message together (their refusals in one batch). When EdgeCore's socket goes away and comes
back, it registers again and resyncs: devices EdgeCore no longer lists stop, new ones start,
changed ones restart.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING

import anyio
import grpc
from anyio.abc import TaskStatus
from grpc import aio

from edgedev._backoff import Backoff
from edgedev._errors import ConfigError, PluginError, Problem
from edgedev._version import __version__
from edgedev.config._spec import DeviceSpec
from edgedev.dmi._convert import device_id, to_device, to_spec
from edgedev.dmi._link import EdgeCoreLink, unix_target
from edgedev.dmi._pb import api_pb2 as pb
from edgedev.dmi._pb import api_pb2_grpc as pb_grpc
from edgedev.dmi._sink import DmiSink
from edgedev.dmi._socket import claim_socket, restrict_socket
from edgedev.twin._values import format_value
from edgedev.wire import type_name

if TYPE_CHECKING:
    from edgedev._plugins import Registry
    from edgedev.drivers import AnyDriver
    from edgedev.mapper import MapperView

log = logging.getLogger("edgedev.dmi")
config_log = logging.getLogger("edgedev.config")  # where the files' warnings go, too

MAX_WARNED = 10_000
"""Distinct warnings remembered so as to be said once; beyond, each is said again."""

API_VERSION = "v1beta1"
LOG_EVERY = 60.0
"""Seconds between two log lines saying that EdgeCore is still absent."""


def default_mapper_socket(protocol: str) -> str:
    """``/etc/kubeedge/edgedev-<protocol>.sock``."""
    return f"/etc/kubeedge/edgedev-{protocol}.sock"


class Refused(Exception):
    """A request from EdgeCore that cannot be carried out: its gRPC status and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _without_desired(spec: DeviceSpec) -> DeviceSpec:
    props = tuple(dataclasses.replace(p, desired=None) for p in spec.properties)
    return dataclasses.replace(spec, properties=props, source="")


def _model_key(namespace: str, name: str) -> tuple[str, str]:
    return (namespace or "default", name)


@dataclasses.dataclass(slots=True)
class _Touched:
    """Devices and models changed by EdgeCore's calls since a registration request was sent."""

    devices: set[str] = dataclasses.field(default_factory=set)
    models: set[tuple[str, str]] = dataclasses.field(default_factory=set)


class DmiSource:
    """Devices of one protocol, as EdgeCore sends them over DMI, run by a mapper.

    Args:
        mapper: the mapper that runs the devices.
        sink: the reports to EdgeCore, told when EdgeCore is there (registered) and gone.
        protocol: the protocol this mapper registers for.
        mapper_socket: where to serve ``DeviceMapperService`` (a unix socket path).
        name: the mapper's name for EdgeCore (default ``edgedev-<protocol>``).
        drivers: where drivers come from (default: installed entry points).

    Attributes:
        registered: whether EdgeCore has accepted the registration (and not gone since).
        registrations: successful registrations so far.
        models: the DeviceModels EdgeCore sent, by ``(namespace, name)``.
        specs: the devices EdgeCore sent and that run, by ``namespace/name`` (the messages
            themselves are not kept: a fleet's are tens of megabytes).
        desired: the desired values EdgeCore last sent, by device and property.
    """

    def __init__(
        self,
        mapper: MapperView,
        sink: DmiSink,
        protocol: str,
        *,
        mapper_socket: str | None = None,
        name: str | None = None,
        drivers: Registry[AnyDriver] | None = None,
    ) -> None:
        self.mapper = mapper
        self.sink = sink
        self.link: EdgeCoreLink = sink.link
        self.protocol = protocol
        self.mapper_socket = mapper_socket or default_mapper_socket(protocol)
        self.name = name or f"edgedev-{protocol}"
        self._drivers = drivers
        self.models: dict[tuple[str, str], pb.DeviceModel] = {}
        self.specs: dict[str, DeviceSpec] = {}
        self.desired: dict[str, dict[str, str]] = {}
        self.registered = False
        self.registrations = 0
        self._lock = anyio.Lock()
        self._warned: set[tuple[str | None, str]] = set()  # (field, message) said already
        self._registered_event: anyio.Event | None = None  # made in the event loop
        # what EdgeCore changed by a call while a registration was under way (see resync)
        self._touched: _Touched | None = None

    # running -------------------------------------------------------------------------------
    def _event(self) -> anyio.Event:
        if self._registered_event is None:
            self._registered_event = anyio.Event()
        return self._registered_event

    async def wait_registered(self) -> None:
        """Return once EdgeCore has accepted the registration and the devices are resynced."""
        while not self.registered:
            await self._event().wait()

    async def claim(self) -> None:
        """Make the mapper socket's path free to serve (see :func:`claim_socket`).

        Raises:
            MapperSocketError: another process serves it, or the path is not a socket.
        """
        await anyio.to_thread.run_sync(claim_socket, self.mapper_socket)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the mapper socket and stay registered with EdgeCore, until cancelled.

        Returns to ``task_status`` once the socket is served (not once registered).
        """
        await self.claim()
        server = aio.server()
        pb_grpc.add_DeviceMapperServiceServicer_to_server(_Servicer(self), server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(unix_target(self.mapper_socket))
        await server.start()
        restrict_socket(self.mapper_socket)
        try:
            task_status.started()
            await self._stay_registered()
        finally:
            self.registered = False
            with anyio.CancelScope(shield=True):
                await server.stop(0.5)

    async def _stay_registered(self) -> None:
        backoff = Backoff(0.5, 10.0)
        last_log = -LOG_EVERY
        while True:
            self._touched = _Touched()
            try:
                response = await self.link.stub.MapperRegister(self._register_request(), timeout=5)
            except aio.AioRpcError as exc:
                now = anyio.current_time()
                if now - last_log >= LOG_EVERY:
                    last_log = now
                    log.warning(
                        "registering with EdgeCore at %s failed (%s: %s); retrying, next note "
                        "in %d s",
                        self.link.socket,
                        exc.code().name,
                        exc.details(),
                        LOG_EVERY,
                    )
                await anyio.sleep(backoff.next())
                continue
            backoff.reset()
            await self.resync(response)
            self.registered = True
            self.registrations += 1
            self._event().set()
            self._registered_event = None
            self.sink.activate()
            log.info(
                "registered with EdgeCore at %s as %s (%s): %d devices",
                self.link.socket,
                self.name,
                self.protocol,
                len(self.specs),
            )
            await self.link.wait_lost()
            self.registered = False
            self.sink.deactivate()
            last_log = anyio.current_time()
            log.warning("lost EdgeCore at %s; registering again when it is back", self.link.socket)

    def _register_request(self) -> pb.MapperRegisterRequest:
        return pb.MapperRegisterRequest(
            withData=True,
            mapper=pb.MapperInfo(
                name=self.name,
                version=__version__,
                api_version=API_VERSION,
                protocol=self.protocol,
                address=os.fsencode(self.mapper_socket),  # the bare path: EdgeCore dials it
                state="ok",
            ),
        )

    # the device list -----------------------------------------------------------------------
    async def resync(self, response: pb.MapperRegisterResponse) -> None:
        """Make the running devices those of a registration answer (bad ones are logged).

        The answer is what EdgeCore held when it made it. A model or device that EdgeCore
        created, updated or removed by a call of its own while the registration was under
        way is newer than the answer, and stays as that call left it.
        """
        async with self._lock:
            touched, self._touched = self._touched or _Touched(), None
            models = {_model_key(m.namespace, m.name): m for m in response.modelList}
            for key in touched.models:
                models.pop(key, None)
                if key in self.models:
                    models[key] = self.models[key]
            self.models = models
            listed: set[str] = set(touched.devices)
            for device in response.deviceList:
                name = device_id(device)
                if name in touched.devices:
                    continue
                listed.add(name)
                try:
                    await self._put(device)
                except Refused as exc:
                    log.error("EdgeCore sent a device edgedev cannot run: %s", exc)
            for gone in [i for i in self.specs if i not in listed]:
                await self._forget(gone)

    def _spec(self, device: pb.Device) -> DeviceSpec:
        name = device_id(device)
        protocol = device.spec.protocol.protocolName
        if protocol != self.protocol:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"device {name}, field spec.protocol.protocolName: protocol {protocol!r} is "
                f"not this mapper's ({self.protocol!r})",
            )
        model = self.models.get(_model_key(device.namespace, device.spec.deviceModelReference))
        if model is None:
            raise Refused(
                grpc.StatusCode.NOT_FOUND,
                f"device {name}, field spec.deviceModelReference: DeviceModel "
                f"{device.spec.deviceModelReference!r} not found in namespace "
                f"{device.namespace or 'default'!r}",
            )
        warnings: list[Problem] = []
        try:
            spec = to_spec(device, model, drivers=self._drivers, warnings=warnings)
        except (ConfigError, PluginError) as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        for warning in warnings:
            self._warn_once(warning)
        return spec

    def _warn_once(self, warning: Problem) -> None:
        """Log what a device's check found worth a look, once per field and message.

        Files warn once per property list their devices share; EdgeCore sends each device
        alone, and sends it again with every change: so a fleet of one model, and a device
        updated again, say it once (naming the first device).
        """
        key = (warning.field, warning.message)
        if key in self._warned:
            return
        if len(self._warned) < MAX_WARNED:
            self._warned.add(key)
        config_log.warning("%s", warning)

    async def _put(self, device: pb.Device) -> DeviceSpec:
        """Run ``device``: start it, restart it if it changed, and want its desired values."""
        spec = self._spec(device)
        old = self.specs.get(spec.id)
        if old is None:
            self.desired[spec.id] = {}  # before it starts: its reports go to EdgeCore
            await self._run(spec)
        elif _without_desired(old) != _without_desired(spec):
            await self._run(spec)
            self.desired[spec.id] = {}  # a new writer: what is desired is wanted again
        self.specs[spec.id] = spec
        self._want(spec)
        return spec

    async def _run(self, spec: DeviceSpec) -> None:
        """Restart the device the mapper serves (a file's: EdgeCore's wins), else start it."""
        if self.mapper.serving(spec.id):
            await self.mapper.update_device(spec)
        else:
            await self.mapper.add_device(spec)  # not served when bound to another node

    def _want(self, spec: DeviceSpec) -> None:
        """Hand desired values that changed to the device's writer."""
        desired = {p.name: p.desired for p in spec.properties if p.desired}
        known = self.desired.setdefault(spec.id, {})
        writer = self.mapper.writer(spec.id)
        changed = {name: value for name, value in desired.items() if known.get(name) != value}
        if changed and writer is not None:
            writer.update(changed)
        self.desired[spec.id] = {k: v for k, v in desired.items() if v is not None}

    async def _forget(self, device: str) -> None:
        if self.mapper.serving(device):
            await self.mapper.remove_device(device)  # its offline state still goes to EdgeCore
        self.specs.pop(device, None)
        self.desired.pop(device, None)

    def _touch(self, *, device: str | None = None, model: tuple[str, str] | None = None) -> None:
        """Note a change EdgeCore made by a call while a registration is under way."""
        if self._touched is None:
            return
        if device is not None:
            self._touched.devices.add(device)
        if model is not None:
            self._touched.models.add(model)

    # DeviceMapperService ---------------------------------------------------------------------
    async def register_device(self, device: pb.Device) -> DeviceSpec:
        """``RegisterDevice``: start the device (or update it when it runs already)."""
        async with self._lock:
            self._touch(device=device_id(device))
            spec = await self._put(device)
            log.info("EdgeCore registered device %s", spec.id)
            return spec

    async def update_device(self, device: pb.Device) -> DeviceSpec:
        """``UpdateDevice``: new desired values are written; other changes restart it."""
        async with self._lock:
            self._touch(device=device_id(device))
            return await self._put(device)

    async def remove_device(self, namespace: str, name: str) -> None:
        """``RemoveDevice``: stop the device (an unknown one is not an error)."""
        async with self._lock:
            key = f"{namespace or 'default'}/{name}"
            self._touch(device=key)
            if key in self.specs:
                await self._forget(key)
                log.info("EdgeCore removed device %s", key)

    async def put_model(self, model: pb.DeviceModel, *, update: bool) -> None:
        """``CreateDeviceModel`` / ``UpdateDeviceModel``: an update restarts its devices."""
        async with self._lock:
            key = _model_key(model.namespace, model.name)
            self._touch(model=key)
            self.models[key] = model
            if not update:
                return
            for name, spec in list(self.specs.items()):
                if (spec.namespace, spec.model) != key:
                    continue
                try:
                    await self._put(to_device(spec, self.desired.get(name)))
                except Refused as exc:
                    log.error("device %s stopped: its new model refuses it: %s", name, exc)
                    await self._forget(name)

    async def remove_model(self, namespace: str, name: str) -> None:
        """``RemoveDeviceModel``: forget it (devices that run keep running)."""
        async with self._lock:
            key = _model_key(namespace, name)
            self._touch(model=key)
            self.models.pop(key, None)

    def get_device(self, namespace: str, name: str) -> pb.Device:
        """``GetDevice``: the device with its current reported twins."""
        key = f"{namespace or 'default'}/{name}"
        spec = self.specs.get(key)
        if spec is None:
            raise Refused(grpc.StatusCode.NOT_FOUND, f"device {key} is not run by this mapper")
        device = to_device(spec, self.desired.get(key))
        runner = self.mapper.runners.get(key)
        desired = self.desired.get(key, {})
        twins = []
        for p in spec.properties:
            held = runner.last.get(p.name) if runner is not None else None
            if held is None:
                continue
            meta = {"type": type_name(p.type), "timestamp": str(held.timestamp)}
            twins.append(
                pb.Twin(
                    propertyName=p.name,
                    observedDesired=pb.TwinProperty(value=desired.get(p.name, ""), metadata=meta),
                    reported=pb.TwinProperty(value=format_value(held.value, p.type), metadata=meta),
                )
            )
        device.status.twins.extend(twins)  # beside its stateReport, if it has one
        return device


class _Servicer(pb_grpc.DeviceMapperServiceServicer):
    """``DeviceMapperService`` over a :class:`DmiSource`; refusals become gRPC statuses."""

    def __init__(self, source: DmiSource) -> None:
        self.source = source

    @staticmethod
    async def _refuse(context: aio.ServicerContext[object, object], exc: Refused) -> None:
        log.warning("refused a request from EdgeCore: %s", exc)
        await context.abort(exc.code, str(exc))

    async def RegisterDevice(
        self, request: pb.RegisterDeviceRequest, context: aio.ServicerContext[object, object]
    ) -> pb.RegisterDeviceResponse:
        try:
            spec = await self.source.register_device(request.device)
        except Refused as exc:
            await self._refuse(context, exc)
            raise
        return pb.RegisterDeviceResponse(deviceName=spec.name, deviceNamespace=spec.namespace)

    async def UpdateDevice(
        self, request: pb.UpdateDeviceRequest, context: aio.ServicerContext[object, object]
    ) -> pb.UpdateDeviceResponse:
        try:
            await self.source.update_device(request.device)
        except Refused as exc:
            await self._refuse(context, exc)
            raise
        return pb.UpdateDeviceResponse()

    async def RemoveDevice(
        self, request: pb.RemoveDeviceRequest, context: aio.ServicerContext[object, object]
    ) -> pb.RemoveDeviceResponse:
        # EdgeCore forgets the device only when this succeeds (dtmanager/dmiworker.go): an
        # unknown device is no error, or EdgeCore would keep it forever
        await self.source.remove_device(request.deviceNamespace, request.deviceName)
        return pb.RemoveDeviceResponse()

    async def CreateDeviceModel(
        self, request: pb.CreateDeviceModelRequest, context: aio.ServicerContext[object, object]
    ) -> pb.CreateDeviceModelResponse:
        await self.source.put_model(request.model, update=False)
        return pb.CreateDeviceModelResponse(
            deviceModelName=request.model.name, deviceModelNamespace=request.model.namespace
        )

    async def UpdateDeviceModel(
        self, request: pb.UpdateDeviceModelRequest, context: aio.ServicerContext[object, object]
    ) -> pb.UpdateDeviceModelResponse:
        await self.source.put_model(request.model, update=True)
        return pb.UpdateDeviceModelResponse()

    async def RemoveDeviceModel(
        self, request: pb.RemoveDeviceModelRequest, context: aio.ServicerContext[object, object]
    ) -> pb.RemoveDeviceModelResponse:
        await self.source.remove_model(request.modelNamespace, request.modelName)
        return pb.RemoveDeviceModelResponse()

    async def GetDevice(
        self, request: pb.GetDeviceRequest, context: aio.ServicerContext[object, object]
    ) -> pb.GetDeviceResponse:
        try:
            device = self.source.get_device(request.deviceNamespace, request.deviceName)
        except Refused as exc:
            await self._refuse(context, exc)
            raise
        return pb.GetDeviceResponse(device=device)
