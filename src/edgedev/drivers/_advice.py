"""Warnings a driver can give about a property that loads but will not report as meant.

Pure functions over a property's spec, for :meth:`~edgedev.drivers.Driver.property_warnings`.
"""

from __future__ import annotations

from edgedev.config._spec import PropertySpec
from edgedev.twin._values import PropertyType


def fractional_scale(prop: PropertySpec, scale: float) -> list[tuple[str, str]]:
    """A warning when an INT property's readings are multiplied by a fractional ``scale``.

    Its readings then have fractions, which are no int to KubeEdge's EdgeCore: it leaves them
    out of the twin report. The field is ``scale``, relative to ``visitors.configData``.
    """
    if prop.type is not PropertyType.INT or float(scale).is_integer():
        return []
    return [
        (
            "scale",
            f"INT property {prop.name!r} with scale {scale:g}: a fractional reading is not "
            f"an int to EdgeCore and is left out of the twin report; make the DeviceModel "
            f"type FLOAT",
        )
    ]
