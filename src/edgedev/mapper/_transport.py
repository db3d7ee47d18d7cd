"""The twin transport seam: how a mapper's devices reach a twin (KubeEdge's MQTT topics, DMI ...).

A :class:`TwinTransport` is one way for a :class:`~edgedev.Mapper` to talk to the world that holds
its devices' twins. It is a :class:`~edgedev.mapper.ReportSink` (it takes readings, twin
reports, states, failed writes and the devices' arrivals and departures), it may bring devices
(a device source: it calls :meth:`MapperView.add_device` and its siblings), and it may deliver
desired values to each device's one desired-value writer (:meth:`MapperView.writer`). The
mapper knows none of them by type: it gives each the same :class:`MapperView`, runs each the
same way, and hands each the same reports. This module is the contract, for edgedev's
transports and for third parties; ``docs/architecture.md`` draws the data path, and says how
to add a transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import anyio
from anyio.abc import TaskStatus

from edgedev.config._spec import DeviceSpec
from edgedev.mapper._sinks import Reading, ReportSink
from edgedev.twin._state import DeviceState

if TYPE_CHECKING:
    from edgedev.mapper._desired import DesiredWriter


class RunnerView(Protocol):
    """What a transport may read of one running device (its :class:`~edgedev.DeviceRunner`).

    Attributes:
        spec: the device.
        state: its state now (``unknown`` until it has been tried once).
        reason: why it is offline or unhealthy (``None`` while online).
        last: the last reading of each property (read, pushed, or written and read back), in
            the text it was last reported in: what a late subscriber, a re-announcement
            (Sparkplug's rebirth) or an API answer should say. Read it, never change it.
    """

    @property
    def spec(self) -> DeviceSpec: ...

    @property
    def state(self) -> DeviceState: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def last(self) -> Mapping[str, Reading]: ...


class MapperView(Protocol):
    """What a transport may ask of the :class:`~edgedev.Mapper` it serves (given by ``attach``).

    Attributes:
        name: the mapper's name (its MQTT client id, a level of its ``mapper/{name}/state`` topic).
        node: the edge node's name.
        devices: the devices served, in order (running, or about to start).
        runners: the running devices by id (``namespace/name``), each a :class:`RunnerView`.
    """

    @property
    def name(self) -> str: ...

    @property
    def node(self) -> str: ...

    @property
    def devices(self) -> Sequence[DeviceSpec]: ...

    @property
    def runners(self) -> Mapping[str, RunnerView]: ...

    def writer(self, device_id: str) -> DesiredWriter | None:
        """The device's one desired-value writer, or ``None`` when it is not running.

        Hand it what the twin desires: a whole set of pending values with
        :meth:`~edgedev.mapper.DesiredWriter.replace` (a KubeEdge delta), some values with
        :meth:`~edgedev.mapper.DesiredWriter.update` (DMI, a Sparkplug command), or one value
        and its outcome with :meth:`~edgedev.mapper.DesiredWriter.write` (an API call). The
        writer checks, writes, reads back and reports; a transport never calls a driver.
        """
        ...

    def serves(self, spec: DeviceSpec) -> bool:
        """Whether ``spec`` is for this mapper's node (a device source's filter)."""
        ...

    def serving(self, device_id: str) -> bool:
        """Whether the mapper serves the device ``device_id`` (running or about to)."""
        ...

    async def add_device(self, spec: DeviceSpec) -> bool:
        """Start serving ``spec`` (see :meth:`edgedev.Mapper.add_device`)."""
        ...

    async def update_device(self, spec: DeviceSpec) -> None:
        """Restart device ``spec.id`` with ``spec`` (see :meth:`edgedev.Mapper.update_device`)."""
        ...

    async def remove_device(self, device_id: str, *, offline: bool = True) -> DeviceSpec:
        """Stop serving ``device_id`` (see :meth:`edgedev.Mapper.remove_device`)."""
        ...


class TwinTransport(ReportSink):
    """A twin transport: the mapper's devices, their values and states, to and from a twin.

    Subclass it in a package of its own and give an instance to the mapper
    (``Mapper(devices, transports=[KubeEdgeMqtt(...), Dmi(...), YourTransport(...)])``);
    nothing else in edgedev changes. Its life, as the mapper drives it:

    1. :meth:`attach`, once, when the :class:`~edgedev.Mapper` is made: the transport keeps
       the :class:`MapperView` (in :attr:`mapper`). A transport serves one mapper.
    2. :meth:`run`, a task of the mapper's while it runs, started before its devices. It
       connects (a broker, a socket, a registration) and calls ``task_status.started()``
       once it is set up to receive (subscriptions made, sockets served), not once connected:
       a mapper works offline too. It may then add, update and remove devices through the
       view (a device source) and hand desired values to :meth:`MapperView.writer`; the
       mapper's calls are safe from this task. It runs until cancelled, and is cancelled
       last: when the mapper stops, its devices end first and report ``offline`` to every
       sink, then :meth:`flush` is called while :meth:`run` still runs (so a connection is
       still there to deliver), and only then is :meth:`run` cancelled and :meth:`close`
       called. Exceptions that escape :meth:`run` stop the whole mapper: handle the
       failures of the far side (reconnect, retry with backoff) inside.
    3. The report methods of :class:`~edgedev.mapper.ReportSink`, from the devices' tasks,
       in the event loop, never blocking, never raising; they may come before :meth:`run`
       has started and after it was cancelled, so they queue (an outbox, a queue drained
       by :meth:`run`). :meth:`~edgedev.mapper.ReportSink.added` and
       :meth:`~edgedev.mapper.ReportSink.removed` say when a device arrives (or is
       updated) and leaves: announce it (a birth), ask the twin what it desires, forget it.
       Report only what the far side accepts: a transport that talks to EdgeCore filters
       each reading once through a :class:`~edgedev.mapper.TwinFilter` and counts what it
       leaves out in :meth:`metrics`.
    4. :meth:`flush`: the mapper is stopping (its devices have stopped and reported offline);
       say goodbye (an ``offline`` announcement, a death) and deliver what is queued, within
       the mapper's deadline (3 s). :meth:`close` then releases what is left (1 s).

    :meth:`ready` and :meth:`metrics` are asked on every ``/readyz`` and ``/metrics`` request
    (:func:`edgedev.health.mapper_health`), from the event loop: answer from memory.

    Attributes:
        mapper: the mapper served, set by :meth:`attach`.
    """

    mapper: MapperView

    def __str__(self) -> str:
        """How the mapper's log names the transport (its class name unless overridden)."""
        return type(self).__name__

    def attach(self, mapper: MapperView) -> None:
        """Serve ``mapper`` (called once, by the :class:`~edgedev.Mapper` being made).

        Override to prepare what needs the mapper (call this first); no I/O, no event loop
        yet.

        Raises:
            ValueError: the transport serves another mapper already.
        """
        if getattr(self, "mapper", None) is not None:
            raise ValueError(f"{type(self).__name__} serves another mapper already")
        self.mapper = mapper

    async def claim(self) -> None:
        """Take what the transport must hold alone, before anything starts (nothing by default).

        A program calls it for every transport before it runs the mapper, so that a resource
        held elsewhere (DMI's mapper socket, served by another process) is one line and an
        exit, not a failure after the devices have started.

        Raises:
            EdgedevError: the resource is not free; the message says which and why.
        """

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, and serve the mapper until cancelled (see the class docstring).

        The default has nothing to connect: it says it is started and waits.
        """
        task_status.started()
        await anyio.sleep_forever()

    def ready(self) -> tuple[bool, str]:
        """Whether the transport reaches its far side now, and in words why (not).

        The mapper is ready (``/readyz``) when every transport is.
        """
        return True, f"{type(self).__name__} ready"
