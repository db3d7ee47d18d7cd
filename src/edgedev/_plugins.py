"""Plugins found through entry points, as pytest and Home Assistant find theirs.

Group ``edgedev.drivers`` maps a protocol name (``modbus``) to a :class:`~edgedev.Driver`
subclass; group ``edgedev.simulators`` maps it to a :class:`~edgedev.simulate.Simulator`.
A third-party distribution that declares one of these needs no change in edgedev.
"""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Generic, TypeVar

from edgedev._errors import PluginError

T = TypeVar("T")

_CLONE = Path(__file__).resolve().parents[2]
"""The repository root when edgedev runs from a clone (``src/edgedev/`` inside it)."""


SHIPPED = frozenset({"ble", "gpio", "modbus", "mqtt", "opcua"})
"""Protocols whose mappers edgedev publishes (``edgedev-<protocol>``, ``mappers/<protocol>``)."""


def install_hint(protocol: str) -> str | None:
    """The command that installs the mapper of ``protocol``, from where the user is.

    From a clone of the repository (where ``mappers/<protocol>/`` exists) that is a pip install
    of that folder, by a path relative to the working directory where it is short; from an
    installed edgedev, the mapper's distribution name. ``None`` for a protocol edgedev has no
    mapper of.
    """
    if protocol not in SHIPPED:
        return None
    folder = _CLONE / "mappers" / protocol
    if (folder / "pyproject.toml").is_file() and (_CLONE / "src" / "edgedev").is_dir():
        try:
            where = os.path.relpath(folder)
        except ValueError:  # another drive on Windows
            where = str(folder)
        if where.startswith(".."):
            where = str(folder)
        elif not where.startswith("."):
            where = f"./{where}"
        return f"pip install {where}"
    return f"pip install edgedev-{protocol}"


class Registry(Generic[T]):
    """Named plugins of one entry-point group, loaded on first use.

    Plugins registered in code with :meth:`register` take precedence over entry points, which
    lets tests and embedding applications supply their own.
    """

    def __init__(self, group: str, base: type[T]) -> None:
        self.group = group
        self._base = base
        self._loaded: dict[str, type[T]] = {}

    def _entry_points(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Names of every plugin available, registered or installed."""
        return sorted(set(self._loaded) | set(self._entry_points()))

    def register(self, name: str, plugin: type[T]) -> None:
        """Make ``plugin`` available as ``name`` in this process."""
        self._loaded[name] = plugin

    def get(self, name: str) -> type[T]:
        """The plugin called ``name``.

        Raises:
            PluginError: none is installed, or it fails to import or has the wrong type.
        """
        if name in self._loaded:
            return self._loaded[name]
        point = self._entry_points().get(name)
        if point is None:
            have = ", ".join(self.names()) or "none"
            hint = install_hint(name)
            then = (
                f"install the mapper: `{hint}`"
                if hint is not None
                else "edgedev has no mapper for it: a driver of your own is a small package "
                "(docs: Writing a driver)"
            )
            raise PluginError(
                f"no {self.group} plugin for {name!r} is installed (installed: {have}); {then}"
            )
        try:
            plugin = point.load()
        except Exception as exc:  # a broken third-party plugin must not hide the others
            raise PluginError(f"{self.group} plugin {name!r} failed to load: {exc!r}") from exc
        if not (isinstance(plugin, type) and issubclass(plugin, self._base)):
            raise PluginError(
                f"{self.group} plugin {name!r} ({point.value}) is not a {self._base.__name__}"
            )
        self._loaded[name] = plugin
        return plugin
