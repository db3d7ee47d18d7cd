"""Warnings a driver can give about a property that loads but will not report as meant.

Pure functions over a property's spec, for :meth:`~edgedev.drivers.Driver.property_warnings`.
"""

from __future__ import annotations

from edgedev.config._spec import PropertySpec
from edgedev.twin._values import PropertyType


def fractional_scale(
    prop: PropertySpec, scale: float, value_offset: float = 0.0, base: float | None = None
) -> list[tuple[str, str]]:
    """A warning when an INT property's readings get fractions from its transforms.

    A fractional ``scale`` or ``valueOffset``, or any ``base``, gives readings with fractions,
    which are no int to KubeEdge's EdgeCore: it leaves them out of the twin report. The
    field is the key, relative to ``visitors.configData``.
    """
    if prop.type is not PropertyType.INT:
        return []
    for key, number, fractional in (
        ("scale", scale, not float(scale).is_integer()),
        ("valueOffset", value_offset, not float(value_offset).is_integer()),
        ("base", base, base is not None),
    ):
        if fractional:
            return [
                (
                    key,
                    f"INT property {prop.name!r} with {key} {number:g}: a fractional reading "
                    f"is not an int to EdgeCore and is left out of the twin report; make the "
                    f"DeviceModel type FLOAT",
                )
            ]
    return []
