"""Device files to device specs: KubeEdge Device and DeviceModel files, resolved and checked.

The loader sits above :mod:`edgedev.drivers`: each property's ``configData`` is checked by
the driver of its protocol, and every problem is reported with file, document and field.
"""

from __future__ import annotations

from edgedev.loader._loader import load_devices, load_resources, source_name

__all__ = ("load_devices", "load_resources", "source_name")
