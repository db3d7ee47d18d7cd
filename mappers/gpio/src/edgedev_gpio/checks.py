"""Load-time checks of GPIO Devices: what one visitor's model cannot see by itself.

Pure functions of the resolved specs; :class:`~edgedev_gpio.driver.GpioDriver`'s
``check_property``/``check_device`` hooks return their findings, which the loader reports
with file, device and field.
"""

from __future__ import annotations

from edgedev.twin import PropertyType
from edgedev_gpio.config import Direction, FactoryKind, GpioDeviceSpec, GpioPropertySpec

TYPES = {
    Direction.IN: (PropertyType.BOOLEAN, PropertyType.INT),
    Direction.OUT: (PropertyType.BOOLEAN, PropertyType.INT),
    Direction.PWM: (PropertyType.FLOAT, PropertyType.DOUBLE),
    Direction.ADC: (PropertyType.FLOAT, PropertyType.DOUBLE),
}
"""The property types each direction takes."""

SPI_PINS = {0: (7, 8, 9, 10, 11), 1: (16, 17, 18, 19, 20, 21)}
"""BCM pins of SPI0 and SPI1 (chip selects, MISO, MOSI, clock), taken by an MCP3008."""


def property_problems(prop: GpioPropertySpec) -> list[tuple[str, str]]:
    """Check the property's type against its direction, and desired values of inputs."""
    visitor = prop.visitor
    direction = visitor.direction
    allowed = TYPES[direction]
    if prop.type not in allowed:
        names = " or ".join(t.value for t in allowed)
        return [
            (
                "direction",
                f"direction {direction} needs a {names} property, not {prop.type.value}",
            )
        ]
    if visitor.is_input and prop.desired is not None:
        return [("direction", f"an input ({direction}) cannot take a desired value")]
    if direction is Direction.OUT and visitor.initial is not None and visitor.initial not in (0, 1):
        return [("initial", f"initial {visitor.initial} of a digital output is not true/false")]
    return []


def device_problems(device: GpioDeviceSpec) -> list[tuple[str, str]]:
    """Refuse two properties on one pin or channel, and PWM on the native factory."""
    problems: list[tuple[str, str]] = []
    taken: dict[object, str] = {}
    spi_ports: set[int] = set()
    for i, prop in enumerate(device.properties):
        visitor = prop.visitor
        if visitor.direction is Direction.ADC:
            spi_ports.add(visitor.spi_port)
            where: object = ("adc", visitor.spi_port, visitor.spi_device, visitor.channel)
            field = "channel"
        else:
            where, field = visitor.pin, "pin"
        other = taken.setdefault(where, prop.name)
        if other != prop.name:
            problems.append(
                (
                    f"properties[{i}].visitors.configData.{field}",
                    f"{prop.name} uses the same {field} as {other}",
                )
            )
    for i, prop in enumerate(device.properties):
        visitor = prop.visitor
        if visitor.pin is not None and any(visitor.pin in SPI_PINS[p] for p in spi_ports):
            problems.append(
                (
                    f"properties[{i}].visitors.configData.pin",
                    f"GPIO{visitor.pin} is an SPI pin, taken by the MCP3008",
                )
            )
    config = device.config
    try:
        kind = config.factory_kind
    except ValueError as exc:
        return [*problems, ("protocol.configData.pinFactory", str(exc))]
    if kind is FactoryKind.NATIVE:
        for i, prop in enumerate(device.properties):
            visitor = prop.visitor
            if visitor.direction is Direction.PWM:
                problems.append(
                    (
                        f"properties[{i}].visitors.configData.direction",
                        "the native pin factory has no PWM; use lgpio or rpigpio",
                    )
                )
    return problems
