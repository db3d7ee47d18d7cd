"""Load Device and DeviceModel files (or resources given as mappings), and report every problem.

Each problem names the file, the YAML document, the resource and the field, so that a user
with twenty devices in one file knows exactly which line to fix. The jobs are split by module:
reading documents (``_documents.py``), translating validation errors (``_validation.py``),
resolving models and visitors (``_resolve.py``, ``_properties.py``), building specs
(``_build.py``), and collecting what is found (``_findings.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgedev._errors import Problem
from edgedev._plugins import Registry
from edgedev.config._spec import DeviceSpec
from edgedev.drivers import AnyDriver
from edgedev.drivers import drivers as installed
from edgedev.loader._cache import FleetCache
from edgedev.loader._documents import Document, read_documents
from edgedev.loader._findings import Findings
from edgedev.loader._resolve import Resolver


def _resolver(drivers: Registry[AnyDriver] | None, findings: Findings) -> Resolver:
    return Resolver(installed if drivers is None else drivers, findings)


def load_devices(
    paths: Iterable[str | Path],
    *,
    drivers: Registry[AnyDriver] | None = None,
    warnings: list[Problem] | None = None,
    cache: str | Path | None = None,
) -> list[DeviceSpec]:
    """Load every Device in ``paths``, resolved against its DeviceModel and driver.

    Files may hold several YAML documents and other Kubernetes resources, which are skipped;
    ``DeviceStatus`` documents (EdgeCore's reports) are accepted and ignored. DeviceModels may
    sit in any of the files.

    Args:
        paths: the files.
        drivers: where drivers come from (default: installed entry points).
        warnings: receives what loads but deserves a look (a deprecated field, a cycle that
            looks like nanoseconds ...); logged on ``edgedev.config`` when not given.
        cache: a directory where the resolved specs are kept, to be taken from there while
            the files, edgedev and the drivers are unchanged (with the installed drivers
            only: ``drivers`` not given).

    Raises:
        ConfigError: with one :class:`~edgedev.Problem` per mistake found in any file.
    """
    if cache is not None and drivers is None:
        paths = list(paths)
        specs, found = FleetCache(cache, paths).load(lambda: _load(paths, None))
        Findings(warnings=list(found)).hand_over(warnings)
        return specs
    specs, found = _load(paths, drivers)
    Findings(warnings=found).hand_over(warnings)
    return specs


def _load(
    paths: Iterable[str | Path], drivers: Registry[AnyDriver] | None
) -> tuple[list[DeviceSpec], list[Problem]]:
    """The specs of the Devices in ``paths``, and the warnings.

    Raises:
        ConfigError: with one :class:`~edgedev.Problem` per mistake found in any file.
    """
    findings = Findings()
    resolver = _resolver(drivers, findings)
    for path in paths:
        read = Findings()
        at = len(findings.problems)
        for doc in read_documents(Path(path), read):
            resolver.add(doc)
        findings.problems[at:at] = read.problems  # a file's YAML problems come first
    specs = resolver.resolve()
    findings.check()
    return specs, findings.warnings


def load_resources(
    resources: Iterable[Mapping[str, Any]],
    *,
    source: str,
    drivers: Registry[AnyDriver] | None = None,
    warnings: list[Problem] | None = None,
) -> list[DeviceSpec]:
    """Resolve Device and DeviceModel resources given as mappings (their Kubernetes JSON).

    The same validation and the same warnings as :func:`load_devices`, for resources that
    come from elsewhere than files (KubeEdge's DMI): each problem names ``source``, the
    resource's position in ``resources`` (1-based, as the document), the device and the field.

    Args:
        resources: the resources, DeviceModels among them.
        source: what problems name as their file (``dmi``).
        drivers: where drivers come from (default: installed entry points).
        warnings: receives what loads but deserves a look; logged on ``edgedev.config``
            when not given.

    Raises:
        ConfigError: with one :class:`~edgedev.Problem` per mistake found.
    """
    findings = Findings()
    resolver = _resolver(drivers, findings)
    for index, data in enumerate(resources, start=1):
        resolver.add(Document(source, index, data))
    specs = resolver.resolve()
    findings.check()
    findings.hand_over(warnings)
    return specs
