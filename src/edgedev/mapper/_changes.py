"""Which values count as changed, for properties that report on change. No I/O."""

from __future__ import annotations

from edgedev.config._spec import PropertySpec
from edgedev.twin._values import Value


class ChangeFilter:
    """Remembers the last value reported of each property and compares new ones to it.

    Numbers change when they move by more than the property's ``deadband`` (any difference
    when it is 0); other values change when they differ.
    """

    def __init__(self) -> None:
        self._last: dict[str, Value] = {}

    def changed(self, prop: PropertySpec, value: Value) -> bool:
        """Whether ``value`` differs enough from the last value reported of ``prop``."""
        if prop.name not in self._last:
            return True
        last = self._last[prop.name]
        if (
            prop.deadband > 0
            and isinstance(value, int | float)
            and isinstance(last, int | float)
            and not isinstance(value, bool)
        ):
            return abs(value - last) > prop.deadband
        return value != last

    def reported(self, prop: PropertySpec, value: Value) -> None:
        """Record that ``value`` of ``prop`` was reported."""
        self._last[prop.name] = value

    def forget(self) -> None:
        """Forget every value, so that each is reported again (after a reconnection)."""
        self._last.clear()
