"""The exceptions edgedev raises, one hierarchy for every layer."""

from __future__ import annotations

from dataclasses import dataclass


class EdgedevError(Exception):
    """Base class of every error that edgedev raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration file.

    Attributes:
        file: the file the document came from.
        document: 1-based index of the YAML document inside the file.
        kind: the resource kind (``Device`` or ``DeviceModel``), when known.
        name: ``namespace/name`` of the resource, when known.
        field: dotted path of the offending field (``spec.properties[0].collectCycle``).
        message: what is wrong, in words.
    """

    file: str
    document: int
    kind: str | None
    name: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: document {self.document}"
        if self.kind:
            where += f" ({self.kind} {self.name or '?'})"
        if self.field:
            where += f", field {self.field}"
        return f"{where}: {self.message}"


class ConfigError(EdgedevError):
    """One or more configuration files are invalid; ``problems`` lists each one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class DeviceError(EdgedevError):
    """A device could not be reached or answered wrongly; the runtime marks it offline."""


class DeviceFault(DeviceError):
    """The device answered, with a protocol exception instead of data.

    A driver raises it when a read gets nothing but exception answers (a Modbus exception
    response, code 4 "server device failure" for instance); the runtime then reports the
    device ``unhealthy`` rather than ``offline``: it is reachable, but not working.

    Attributes:
        code: the protocol's exception code, when it has one.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class WriteRefused(EdgedevError):
    """A write was refused before reaching the device (read-only, out of range, bad value)."""


class NoSuchProperty(WriteRefused):
    """A write named a property that the device does not have (the twin answers 404)."""


class PluginError(EdgedevError):
    """A driver or simulator plugin is missing or broken."""
