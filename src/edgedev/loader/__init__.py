"""Device files to device specs: KubeEdge Device and DeviceModel files, resolved and checked.

The loader sits above :mod:`edgedev.drivers`: each property's ``configData`` is checked by
the driver of its protocol, and every problem is reported with file, document and field.
Files (:func:`load_devices`) and resources given as mappings (:func:`load_resources`, as
KubeEdge's DMI sends them) go the same way, with the same problems and the same warnings.
"""

from __future__ import annotations

from edgedev.loader._documents import source_name
from edgedev.loader._loader import load_devices, load_resources

__all__ = ("load_devices", "load_resources", "source_name")
