"""``edgedev discover``: from a live server or bus to KubeEdge Devices, no hand-written YAML.

Each protocol finds its devices with a :class:`Discoverer` registered under the
``edgedev.discoverers`` entry-point group (:data:`discoverers`); this package holds the
part every protocol shares, with no I/O: the drafts a discoverer returns
(:class:`DeviceDraft`, :class:`PropertyDraft`), names valid for Kubernetes and EdgeCore and
unique (:func:`kubernetes_name`, :func:`property_name`, :func:`unique_names`), the
DeviceModel and Device documents (:func:`build_documents`), the summary
(:class:`Summary`) and the YAML text. The command itself is ``edgedev.cli``'s.
"""

from __future__ import annotations

from edgedev._plugins import Registry
from edgedev.discover._base import Discoverer, Discovery, UsageError, positive_int, settings
from edgedev.discover._documents import DEFAULT_CYCLE, Documents, Options, build_documents
from edgedev.discover._drafts import DeviceDraft, PropertyDraft
from edgedev.discover._names import MAX_NAME, kubernetes_name, property_name, unique_names
from edgedev.discover._summary import Skipped, Summary, summary_text
from edgedev.discover._yaml import documents_yaml

discoverers: Registry[Discoverer] = Registry("edgedev.discoverers", Discoverer)  # type: ignore[type-abstract]
"""Installed discoverers by protocol name (entry-point group ``edgedev.discoverers``)."""

__all__ = (
    "DEFAULT_CYCLE",
    "MAX_NAME",
    "DeviceDraft",
    "Discoverer",
    "Discovery",
    "Documents",
    "Options",
    "PropertyDraft",
    "Skipped",
    "Summary",
    "UsageError",
    "build_documents",
    "discoverers",
    "documents_yaml",
    "kubernetes_name",
    "positive_int",
    "property_name",
    "settings",
    "summary_text",
    "unique_names",
)
