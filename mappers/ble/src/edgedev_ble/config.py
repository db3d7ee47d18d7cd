"""The BLE ``configData`` schemas: KubeEdge's fields, plus typed decoding and notifications."""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Any

from bleak.uuids import normalize_uuid_str
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from edgedev.drivers import DeviceSpec, PropertySpec, ProtocolConfig, ValueConfig
from edgedev_ble.formats import Format

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
_UUID_ADDRESS = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")
ENV_BACKEND = "EDGEDEV_BLE_BACKEND"
"""Environment variable naming the backend of devices whose configData names none."""
DEFAULT_SIMULATOR = "sim://127.0.0.1:5030"
"""Where ``edgedev simulate`` serves peripherals whose configData and environment name none."""
_DEFAULT_NAMES = frozenset({"default", "bluez", "platform"})


def parse_backend(text: str) -> tuple[str, int] | None:
    """Parse a backend name: ``default`` (the platform's radio) or ``sim://HOST:PORT``.

    Returns:
        ``None`` for the platform's backend, ``(host, port)`` for the simulator.

    Raises:
        ValueError: it is neither.
    """
    text = text.strip()
    if text.lower() in _DEFAULT_NAMES:
        return None
    rest = text.removeprefix("sim://")
    host, sep, port = rest.rpartition(":")
    if rest == text or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not a BLE backend ('default' or 'sim://HOST:PORT')")
    return host.strip("[]"), int(port)


class BleProtocol(ProtocolConfig):
    """``spec.protocol.configData`` of a BLE Device.

    ``macAddress`` names the peripheral (a CoreBluetooth UUID on macOS); it is looked up by
    scanning the first time and cached afterwards. ``adapter`` picks a BlueZ adapter
    (``hci0``); devices on one adapter scan and connect one at a time. ``timeout`` (ms) bounds
    the scan plus the connection, and every read and write. ``backend``: ``default`` (the
    platform's Bluetooth stack, BlueZ on Linux) or ``sim://HOST:PORT`` (the peripherals that
    ``edgedev simulate`` serves); when absent, the environment variable ``EDGEDEV_BLE_BACKEND``
    decides, else the platform's stack. ``pair`` pairs before connecting.
    """

    mac_address: str = Field(description="The peripheral's address, AA:BB:CC:DD:EE:FF.")
    adapter: str | None = Field(
        None, description="BlueZ adapter (hci0); the default one if absent."
    )
    timeout: int = Field(
        10000, gt=0, description="Deadline of the scan plus connect, and of each read or write, ms."
    )
    backend: str | None = Field(
        None, description="default, or sim://HOST:PORT; else EDGEDEV_BLE_BACKEND decides."
    )
    pair: bool = Field(False, description="Pair before connecting.")

    @field_validator("mac_address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if _MAC.match(value):
            return value.replace("-", ":").upper()
        if _UUID_ADDRESS.match(value):
            return value.upper()
        raise ValueError(f"{value!r} is not a Bluetooth address (AA:BB:CC:DD:EE:FF)")

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str | None) -> str | None:
        if value is not None:
            parse_backend(value)
        return value


class OperationType(StrEnum):
    """Arithmetic steps of a dataConverter, as KubeEdge names them."""

    ADD = "Add"
    SUBTRACT = "Subtract"
    MULTIPLY = "Multiply"
    DIVIDE = "Divide"


class _Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class Operation(_Camel):
    """One step of ``orderOfOperations``: ``{operationType, operationValue}``."""

    operation_type: OperationType
    operation_value: float

    @field_validator("operation_type", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        if isinstance(value, str):
            for member in OperationType:
                if member.value.lower() == value.strip().lower():
                    return member
        return value

    @model_validator(mode="after")
    def _no_division_by_zero(self) -> Operation:
        if self.operation_value == 0 and self.operation_type in (
            OperationType.DIVIDE,
            OperationType.MULTIPLY,
        ):
            raise ValueError(f"{self.operation_type.value} by 0 loses the value")
        return self


class DataConverter(_Camel):
    """KubeEdge's ``dataConverter``: bytes to a number, then arithmetic.

    The bytes from ``startIndex`` to ``endIndex`` (inclusive, counted downwards when
    ``startIndex > endIndex``) form an unsigned big-endian integer in the order taken; it is
    shifted left by ``shiftLeft`` then right by ``shiftRight``, and ``orderOfOperations``
    is applied in order. edgedev adds ``signed`` (two's complement over the bytes taken) and
    ``mask`` (AND applied after the shifts, for bit fields).
    """

    start_index: int = Field(0, ge=0, description="First byte taken (the most significant).")
    end_index: int | None = Field(
        None, ge=0, description="Last byte taken; below startIndex reads downwards."
    )
    shift_left: int = Field(0, ge=0, le=64, description="Bits to shift left.")
    shift_right: int = Field(0, ge=0, le=64, description="Bits to shift right, after shiftLeft.")
    order_of_operations: tuple[Operation, ...] = Field(
        (), description="Add, Subtract, Multiply, Divide, applied in order."
    )
    signed: bool = Field(False, description="Two's complement over the bytes taken (edgedev).")
    mask: int | None = Field(None, gt=0, description="AND after the shifts (edgedev).")

    @property
    def indices(self) -> tuple[int, ...]:
        """The byte positions taken, most significant first."""
        end = self.start_index if self.end_index is None else self.end_index
        step = 1 if end >= self.start_index else -1
        return tuple(range(self.start_index, end + step, step))

    @model_validator(mode="after")
    def _width(self) -> DataConverter:
        if len(self.indices) > 8:
            raise ValueError("startIndex..endIndex spans more than 8 bytes")
        return self


def _data_bytes(value: Any) -> Any:
    """``[1, 2]`` (KubeEdge examples) or a base64 string (Kubernetes' form of ``[]byte``)."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{value!r} is neither a list of bytes nor base64") from None
    if isinstance(value, list | tuple):
        if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value):
            raise ValueError(f"{value!r} is not a list of bytes (integers 0..255)")
        return bytes(value)
    return value


class BleVisitor(ValueConfig):
    """``visitors.configData`` of a BLE property.

    ``characteristicUUID`` (16-bit ``2A6E``, or 128-bit with or without dashes) names the
    characteristic, ``serviceUUID`` the service when the UUID is not unique. Decoding takes
    the first that applies: ``dataConverter`` (KubeEdge), ``format`` (+ ``scale`` and byte
    ``offset``), ``dataWrite`` read backwards, or the property type's default. ``dataWrite``
    maps values to the bytes a write sends (``{"ON": [1], "OFF": [0]}``).
    ``writeWithResponse`` forces the write kind (default: with response when the
    characteristic allows it).

    ``notify``: ``true`` takes values from notifications, ``false`` polls every
    ``collectCycle``; when absent, notifications are used where the characteristic offers
    them (notify or indicate).

    The value keys (``mask``, ``shift``, ``base``, ``valueOffset``, ``bit``, ``mapping``,
    ``strict``, ``expect``: :class:`~edgedev.drivers.ValueConfig`) apply to the number a
    ``format`` or the property type reads; with ``dataConverter``, only ``mapping`` and
    ``expect`` do (it has its own shifts, mask and operations).
    """

    characteristic_uuid: str = Field(
        alias="characteristicUUID", description="16-bit (2A6E) or 128-bit UUID."
    )
    service_uuid: str | None = Field(
        None, alias="serviceUUID", description="The service, when the UUID is not unique."
    )
    data_write: dict[str, bytes] | None = Field(
        None, description="Bytes a write sends, by value: {ON: [1], OFF: [0]}."
    )
    data_converter: DataConverter | None = Field(
        None, description="KubeEdge's bytes-to-number conversion."
    )
    format: Format | None = Field(
        None, description="Typed field: int16le, float32le, medfloat16..."
    )
    scale: float = Field(1.0, description="Multiplies a number read with format.")
    offset: int = Field(0, ge=0, description="Byte where the format's field starts.")
    notify: bool | None = Field(
        None, description="Notified (true), polled (false), or as the characteristic offers."
    )
    write_with_response: bool | None = Field(
        None, description="Write kind; by default with response when offered."
    )

    @field_validator("characteristic_uuid", "service_uuid")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        try:
            return normalize_uuid_str(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a UUID (16-bit like 2A6E, or 128-bit)") from None

    @field_validator("data_write", mode="before")
    @classmethod
    def _write_map(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): _data_bytes(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_decoding(self) -> BleVisitor:
        if self.data_converter is not None and self.format is not None:
            raise ValueError("give dataConverter or format, not both")
        if self.data_converter is not None and self.scale != 1:
            raise ValueError("scale applies to format; use orderOfOperations with dataConverter")
        return self


BleDeviceSpec = DeviceSpec[BleProtocol, BleVisitor]
"""A device resolved with the BLE driver's settings models."""
BlePropertySpec = PropertySpec[BleVisitor]
"""A property of a BLE device."""
