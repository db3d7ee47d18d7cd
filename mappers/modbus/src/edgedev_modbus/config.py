"""The Modbus ``configData`` schemas, as KubeEdge users write them."""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edgedev.drivers import DeviceSpec, PropertySpec, ProtocolConfig, ValueConfig
from edgedev_modbus.codec import DataType, Table

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*"
)
_PARITY = {"n": "N", "none": "N", "e": "E", "even": "E", "o": "O", "odd": "O"}


class ModbusProtocol(ProtocolConfig):
    """``spec.protocol.configData`` of a Modbus Device.

    TCP: ``ip``, ``port`` (502), ``slaveID`` (1). RTU: ``serialPort``, ``baudRate``,
    ``dataBits``, ``parity``, ``stopBits``, ``slaveID``. The KubeEdge Modbus mapper's
    vocabulary works too: ``communicateMode`` (``TCP`` or ``RTU``: which of the two sets of
    settings counts), ``port`` as a string, ``serialName`` for ``serialPort``,
    ``rs485Enabled`` (accepted; the serial adapter's own RS-485 mode applies, as edgedev
    sets no RS-485 ioctl). ``maxGap`` (edgedev) lets one
    request span up to that many unused addresses between two properties; a device that
    refuses such a read (illegal address) is re-planned without gaps automatically.
    ``coalesce: false`` (edgedev) reads one property per request, as other mappers do: for
    devices that refuse multi-value reads, and as the baseline of ``bench/fleet.py``.
    ``maxConnections`` (edgedev, TCP): the devices on one ``ip:port`` (slave ids behind one
    gateway) share one connection by default; a gateway that serves several connections in
    parallel may be given up to this many (the first device connecting sets it; without it,
    the mapper's ``--max-connections``).
    """

    communicate_mode: Literal["TCP", "RTU"] | None = None
    ip: str | None = None
    port: int = Field(502, ge=1, le=65535)
    slave_id: int = Field(1, ge=0, le=247, alias="slaveID")
    serial_port: str | None = None
    baud_rate: int = Field(19200, gt=0)
    data_bits: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: Literal[1, 2] = 1
    rs485_enabled: bool = False
    max_gap: int = Field(16, ge=0, le=124)
    coalesce: bool = True
    max_connections: int = Field(1, ge=1, le=32)

    @field_validator("ip")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        numeric = value.replace(".", "").isdigit()  # 999.1.1.1 is a bad address, not a name
        if numeric or _HOSTNAME.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not an IP address or a host name")
        return value

    @model_validator(mode="before")
    @classmethod
    def _kubeedge_names(cls, data: Any) -> Any:
        """``serialName`` is ``serialPort``; ``communicateMode`` picks TCP or RTU settings."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "serialName" in data and "serialPort" not in data:
            data["serialPort"] = data.pop("serialName")
        mode = data.get("communicateMode")
        if isinstance(mode, str):
            mode = data["communicateMode"] = mode.upper()
            if mode == "TCP":
                if not data.get("ip"):
                    raise ValueError("communicateMode TCP needs ip")
                data.pop("serialPort", None)
            elif mode == "RTU":
                if not data.get("serialPort"):
                    raise ValueError("communicateMode RTU needs serialPort (or serialName)")
                data.pop("ip", None)
        return data

    @field_validator("parity", mode="before")
    @classmethod
    def _parity(cls, value: Any) -> Any:
        return _PARITY.get(value.lower(), value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_transport(self) -> ModbusProtocol:
        if (self.ip is None) == (self.serial_port is None):
            raise ValueError("give either ip (Modbus TCP) or serialPort (Modbus RTU)")
        return self

    @property
    def address(self) -> str:
        """``ip:port`` or the serial port, for messages."""
        return f"{self.ip}:{self.port}" if self.ip else str(self.serial_port)


class KubeEdgeDataType(StrEnum):
    """``dataType`` words of KubeEdge's Modbus mappers, resolved with the ``limit``.

    ``int``: unsigned, big-endian over ``limit`` registers (1, 2 or 4: uint16/32/64);
    ``float`` and ``double``: one register as an unsigned number (times ``scale``, as the
    kubeedge/examples temperature demo reads it) with ``limit`` 1, float32 with 2, float64
    with 4; ``bool``: the bit on coils and discrete inputs, non-zero elsewhere. On coils and
    discrete inputs ``int`` is the bit as 0 or 1. ``string``, ``boolean`` and ``bytes`` are
    also :class:`DataType` words, with the same meaning.
    """

    INT = "int"
    FLOAT = "float"
    DOUBLE = "double"
    BOOL = "bool"


class ModbusVisitor(ValueConfig):
    """``visitors.configData`` of a Modbus property.

    ``register`` names the table (``table`` in Python: pydantic models reserve ``register``);
    ``offset`` is the 0-based protocol address; ``limit`` the registers (or bits) the value
    spans, inferred from ``dataType`` when omitted; ``scale`` multiplies the decoded number;
    ``isSwap`` swaps the bytes inside each register, ``isRegisterSwap`` the register order.
    ``dataType`` takes edgedev's words (``int16`` ... ``float64``, ``boolean``, ``string``,
    ``bytes``) or KubeEdge's (:class:`KubeEdgeDataType`), in any case. ``max``, ``min`` and
    ``value`` (KubeEdge's Modbus mapper vocabulary) are accepted and informative: the
    DeviceModel's ``minimum`` and ``maximum`` bound writes. The value keys (``mask``,
    ``shift``, ``base``, ``valueOffset``, ``bit``, ``mapping``, ``strict``, ``expect``) are
    :class:`~edgedev.drivers.ValueConfig`'s.
    """

    table: Table = Field(alias="register")
    offset: int = Field(ge=0, le=65535)
    limit: int | None = Field(None, ge=1, le=125)
    is_swap: bool = False
    is_register_swap: bool = False
    data_type: DataType | KubeEdgeDataType | None = None
    max: float | None = None
    min: float | None = None
    value: Any = None

    @field_validator("data_type", mode="before")
    @classmethod
    def _lower_data_type(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


ModbusDeviceSpec = DeviceSpec[ModbusProtocol, ModbusVisitor]
"""A device resolved with the Modbus driver's settings models."""
ModbusPropertySpec = PropertySpec[ModbusVisitor]
"""A property of a Modbus device."""
