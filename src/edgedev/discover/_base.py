"""The interface a protocol implements to take part in ``edgedev discover``."""

from __future__ import annotations

import abc
import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from edgedev._errors import EdgedevError
from edgedev.discover._documents import Options
from edgedev.discover._drafts import DeviceDraft
from edgedev.discover._summary import Summary


class UsageError(EdgedevError):
    """The arguments of ``edgedev discover`` do not go together (exit code 2)."""


M = TypeVar("M", bound=BaseModel)


def settings(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` checked by a driver's ``configData`` model, as ``edgedev validate`` checks it.

    Raises:
        UsageError: the first thing the model refuses, with its key (``url: ...``).
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "configData"
        raise UsageError(f"{where}: {first['msg']}") from None


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number above 0 (``--max-nodes``, ``--timeout`` ...).

    Raises:
        argparse.ArgumentTypeError: ``text`` is not one (argparse then exits with code 2).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value}: give a number above 0")
    return value


@dataclass(slots=True)
class Discovery:
    """What a discoverer found.

    Attributes:
        devices: the devices, in a deterministic order, that become DeviceModels and Devices.
        summary: the account of the work, for stderr.
        listing: text for stdout instead of documents, when what was found are candidates
            rather than devices (a BLE scan lists the peripherals around).
    """

    devices: list[DeviceDraft]
    summary: Summary
    listing: list[str] | None = field(default=None)


class Discoverer(abc.ABC):
    """Finds the devices of one protocol on a live target, for ``edgedev discover PROTOCOL``.

    A protocol registers its discoverer under the ``edgedev.discoverers`` entry-point group,
    named as its driver (``opcua = "edgedev_opcua.discover:OpcuaDiscoverer"``), as drivers
    use ``edgedev.drivers`` and simulators ``edgedev.simulators``: a third-party protocol
    adds its own without a change to edgedev.

    edgedev does the rest: the options every protocol shares (``--namespace``,
    ``--node-name``, ``--collect-cycle``, ``--name-prefix``, ``-o``), names valid for
    Kubernetes and EdgeCore and unique, the DeviceModels shared by devices of one kind, the
    check of the documents with the protocol's driver (what ``edgedev validate`` does),
    writing them whole or not at all, the summary on stderr and the exit code.

    Keep the module that defines a discoverer light to import: every ``edgedev`` command
    builds the parser, which asks each discoverer for its arguments. Import the protocol's
    library inside :meth:`discover`.
    """

    help: ClassVar[str] = ""
    """One line, shown by ``edgedev discover --help``."""
    description: ClassVar[str] = ""
    """What ``edgedev discover PROTOCOL --help`` says first (``help`` when empty)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the protocol's target and options to its ``edgedev discover PROTOCOL`` parser.

        The shared options are there already; their values arrive as :class:`Options`.
        """
        del parser  # a protocol without arguments of its own

    @abc.abstractmethod
    async def discover(self, args: argparse.Namespace, options: Options) -> Discovery:
        """Find the devices: only reads, never a write to the target.

        Args:
            args: the parsed command line (the arguments :meth:`add_arguments` added).
            options: the shared options.

        Raises:
            UsageError: the arguments do not go together (``edgedev`` exits with code 2).
            edgedev.DeviceError: the target cannot be reached (exit code 1, the message
                printed as one line).
        """
