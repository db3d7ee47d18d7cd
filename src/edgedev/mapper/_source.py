"""Where a running mapper's devices come from: device sources.

A :class:`DeviceSource` feeds a :class:`~edgedev.Mapper` through
:meth:`~edgedev.Mapper.add_device`, :meth:`~edgedev.Mapper.update_device` and
:meth:`~edgedev.Mapper.remove_device` while it runs. :class:`FileSource` reads Device files
again on ``SIGHUP`` (``edgedev run -f``); KubeEdge DMI, where EdgeCore tells the mapper its
devices, is another source.
"""

from __future__ import annotations

import abc
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from edgedev._errors import ConfigError, PluginError
from edgedev.config._spec import DeviceSpec
from edgedev.loader import load_devices, source_name

if TYPE_CHECKING:
    from edgedev.mapper._mapper import Mapper

log = logging.getLogger("edgedev.mapper")


@dataclass(frozen=True, slots=True)
class DeviceChanges:
    """What :func:`sync_devices` did, by device id.

    ``kept`` lists the devices it was given but left alone: the mapper serves them from
    another source, which wins (EdgeCore's device over a file's of the same id).
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


async def sync_devices(
    mapper: Mapper,
    specs: Sequence[DeviceSpec],
    owns: Callable[[DeviceSpec], bool] = lambda _spec: True,
) -> DeviceChanges:
    """Make ``specs`` the mapper's devices: add the new, restart the changed, stop the gone.

    A device whose spec is unchanged keeps running untouched. Devices bound to another node
    are left out, as :class:`~edgedev.Mapper` does at start.

    Args:
        mapper: the running mapper.
        specs: the devices it should serve.
        owns: whether a device the mapper serves is the caller's to update or remove (by its
            spec, whose ``source`` says where it came from); by default every device is.
    """
    changes = DeviceChanges()
    wanted = {s.id: s for s in specs if mapper.serves(s)}
    current = {d.id: d for d in mapper.devices}
    mine = {i for i, d in current.items() if owns(d)}
    for device_id in mine - wanted.keys():
        await mapper.remove_device(device_id)
        changes.removed.append(device_id)
    for device_id, spec in wanted.items():
        if device_id not in current:
            await mapper.add_device(spec)
            changes.added.append(device_id)
        elif device_id not in mine:
            changes.kept.append(device_id)
        elif current[device_id] != spec:
            await mapper.update_device(spec)
            changes.updated.append(device_id)
    return changes


class DeviceSource(abc.ABC):
    """Feeds a mapper its devices while it runs."""

    @abc.abstractmethod
    async def run(self, mapper: Mapper) -> None:
        """Keep ``mapper``'s devices up to date until cancelled."""


class FileSource(DeviceSource):
    """Device files, loaded again on ``SIGHUP``.

    A reload changes only the devices that came from these files: a device another source
    gave the mapper (EdgeCore over DMI) is never updated or removed by it, even when the
    files name a device of the same id. A reload that finds a problem in the files changes
    nothing (the problems are logged and the devices keep running as they were).

    Args:
        files: the Device and DeviceModel files (as ``edgedev run -f``).
    """

    def __init__(self, files: Sequence[str]) -> None:
        self.files = list(files)
        self.reloads = 0
        self._sources = {source_name(f) for f in self.files}

    def owns(self, spec: DeviceSpec) -> bool:
        """Whether ``spec`` came from these files."""
        return spec.source in self._sources

    async def reload(self, mapper: Mapper) -> DeviceChanges | None:
        """Load the files again and apply them; ``None`` when they have problems."""
        try:
            specs = await anyio.to_thread.run_sync(load_devices, self.files)
        except (ConfigError, PluginError) as exc:
            log.error("reload of %s refused, devices unchanged:\n%s", ", ".join(self.files), exc)
            return None
        changes = await sync_devices(mapper, specs, self.owns)
        self.reloads += 1
        log.info(
            "reloaded %s: %d added, %d updated, %d removed%s",
            ", ".join(self.files),
            len(changes.added),
            len(changes.updated),
            len(changes.removed),
            f"; {', '.join(changes.kept)} left as another source gave them" if changes.kept else "",
        )
        return changes

    async def run(self, mapper: Mapper) -> None:
        """Reload on every ``SIGHUP`` until cancelled."""
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                await self.reload(mapper)
