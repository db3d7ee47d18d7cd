"""Which state each device is in, from what mappers say about it: pure, no I/O.

A client learns a device's state three ways: KubeEdge's ``state/update`` (live; it does not
say who sent it), edgedev's retained ``state/current`` (the same state, with the mapper
instance that reported it: the mapper's name and when it started), and each mapper's
retained announcement (its devices, and ``offline`` once it stops or dies: its last will).
Retained messages come at subscription, before or after live ones, and may be older than
what the client has seen already. :class:`Presence` takes them in any order and says which
state holds:

- a device's own state counts when it is at least as new (its ``timestamp``) as the one held,
  or comes from a mapper instance started since (whatever the clocks say);
- but a state reported by a mapper instance that no longer runs does not: when that mapper's
  latest announcement says ``offline`` (same ``started``), or comes from a later start that
  has not reported the device yet, the device is ``offline``.

So a device whose mapper died shows ``offline`` whatever order its retained state and its
mapper's will arrive in, and a state older than the one seen is never taken back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgedev.twin._state import DeviceState


@dataclass(frozen=True, slots=True)
class Seen:
    """A device's state as :meth:`Presence.state` derives it.

    Attributes:
        state: ``online``, ``offline``, ``unhealthy`` or another state word.
        since: when the device entered it (ms since the epoch, the sender's clock; 0: unknown).
        reason: why it is ``offline`` or ``unhealthy``, when known.
        mapper: the mapper that serves (or served) it, when known.
    """

    state: str
    since: int
    reason: str | None = None
    mapper: str = ""


@dataclass(slots=True)
class _Device:
    state: str
    timestamp: int
    mapper: str
    started: int
    reason: str | None


@dataclass(slots=True)
class _Mapper:
    state: str
    started: int
    timestamp: int


class Presence:
    """Device states, and the mapper instances that reported them, in bounded memory.

    Args:
        max_devices: devices held at most; a message about one more is not taken.
        max_mappers: mappers held at most; an announcement of one more is not taken.
    """

    def __init__(self, max_devices: int = 20_000, max_mappers: int = 1_024) -> None:
        self.max_devices = max_devices
        self.max_mappers = max_mappers
        self._devices: dict[str, _Device] = {}
        self._mappers: dict[str, _Mapper] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def device(
        self,
        device_id: str,
        state: str,
        timestamp: int,
        *,
        mapper: str = "",
        started: int = 0,
        reason: str | None = None,
        known: bool = False,
    ) -> bool:
        """Take a state of ``device_id`` (``state/update``, or ``state/current`` with its sender).

        ``known``: the caller holds this device already (from its files, or a mapper's
        announcement): taken whatever the limit, so that messages about made-up devices
        cannot crowd out real ones.

        Returns:
            ``False`` when it was not taken: older than the state held, or one device too many.
        """
        held = self._devices.get(device_id)
        if held is None:
            if len(self._devices) >= self.max_devices and not known:
                return False
            self._devices[device_id] = _Device(state, timestamp, mapper, started, reason)
            return True
        if timestamp < held.timestamp and not (mapper and started > held.started):
            return False  # older, and not from a mapper instance started since
        held.state, held.timestamp, held.reason = state, timestamp, reason
        if mapper:  # a live state/update keeps the sender it was last heard from
            held.mapper, held.started = mapper, started
        return True

    def forget(self, device_id: str) -> bool:
        """The device is gone (an empty ``state/current``); whether it was held."""
        return self._devices.pop(device_id, None) is not None

    def mapper(
        self, name: str, state: str, started: int, devices: Iterable[str], timestamp: int = 0
    ) -> bool:
        """Take a mapper's announcement (``offline``: its last will, or it stopped).

        Devices it lists whose sender is not known yet (a state heard only on
        ``state/update``, or none at all for an ``offline`` one) are taken as its own.

        An instance's announcements are told apart by their ``timestamp``: one that lost its
        connection (its will said ``offline``) announces itself again when it is back.

        Returns:
            ``False`` when it was not taken: an instance older than the one held, an
            announcement older than the one held, or one mapper too many.
        """
        held = self._mappers.get(name)
        if held is None:
            if len(self._mappers) >= self.max_mappers:
                return False
            held = self._mappers[name] = _Mapper(state, started, timestamp)
        elif (started, timestamp) < (held.started, held.timestamp):
            return False
        else:
            held.state, held.started, held.timestamp = state, started, timestamp
        for device_id in devices:
            device = self._devices.get(device_id)
            if device is None:
                if state == DeviceState.ONLINE or len(self._devices) >= self.max_devices:
                    continue
                device = self._devices[device_id] = _Device(state, timestamp, name, started, None)
            if not device.mapper:
                device.mapper, device.started = name, started
        return True

    def state(self, device_id: str) -> Seen | None:
        """The state that holds for ``device_id`` now; ``None`` when nothing is known."""
        device = self._devices.get(device_id)
        if device is None:
            return None
        mapper = self._mappers.get(device.mapper) if device.mapper else None
        if mapper is not None and (
            mapper.started > device.started
            or (mapper.started == device.started and mapper.state != DeviceState.ONLINE)
        ):
            since = max(device.timestamp, mapper.timestamp)
            return Seen(
                DeviceState.OFFLINE, since, f"mapper {device.mapper} is not running", device.mapper
            )
        return Seen(device.state, device.timestamp, device.reason, device.mapper)

    def devices_of(self, mapper: str) -> list[str]:
        """The devices whose state ``mapper`` reported (to update them after its announcement)."""
        return [i for i, d in self._devices.items() if d.mapper == mapper]
