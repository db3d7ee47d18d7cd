"""Plugins found through entry points, as pytest and Home Assistant find theirs.

Group ``edgedev.drivers`` maps a protocol name (``modbus``) to a :class:`~edgedev.Driver`
subclass; group ``edgedev.simulators`` maps it to a :class:`~edgedev.simulate.Simulator`.
A third-party distribution that declares one of these needs no change in edgedev.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from edgedev._errors import PluginError

T = TypeVar("T")


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
            raise PluginError(
                f"no {self.group} plugin for {name!r} is installed (installed: {have}); "
                f"install the mapper, for example `pip install edgedev-{name}`"
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
