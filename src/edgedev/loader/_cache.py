"""A cache of the resolved fleet: the specs of unchanged files, without parsing them again.

Loading 1000 Devices of 50 properties takes ~1.5-2.5 s (the YAML parser, most of it); the
specs it yields unpickle in ~10 ms. The cache is one file per list of paths in a directory of
the user's (``fleet-<hash of the paths>.pickle``), valid while everything that made it is
unchanged: each file's bytes (SHA-256), the edgedev version and Python's, the installed
drivers (their entry points) and the source files of edgedev and of the drivers it used
(path, size, modification time). Only a load without problems is kept; its warnings are kept
with it and said again at each start.

Unpickling runs code named in the file: the cache is only read from a directory and file that
the current user owns and that nobody else may write (``0700`` when made here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from edgedev._errors import Problem
from edgedev._version import __version__
from edgedev.config._spec import DeviceSpec

log = logging.getLogger("edgedev.config")

_FORMAT = 1
"""Bumped when what the file holds changes shape."""
_GROUP = "edgedev.drivers"
KEPT = 16
"""Cache files kept in one directory (one per list of paths), the most recently written."""


def _private(path: Path) -> bool:
    """Whether ``path`` is the current user's and nobody else may write it."""
    stat = path.stat()
    return stat.st_uid == os.getuid() and not stat.st_mode & 0o022


def _sources(packages: Iterable[str]) -> str:
    """A digest of the source files of ``packages`` (top-level names): path, size, mtime."""
    digest = hashlib.sha256()
    for name in sorted(set(packages)):
        found = find_spec(name)  # a top-level name: found without importing it
        where = None if found is None else found.origin
        if where is None:
            digest.update(f"{name}: none\n".encode())
            continue
        top = Path(where).parent
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for file in sorted(files):
                if file.endswith(".py"):
                    path = os.path.join(root, file)
                    stat = os.stat(path)
                    digest.update(f"{path} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _key(files: list[Path]) -> str:
    """What the specs of ``files`` depend on besides the code: contents, versions, drivers."""
    digest = hashlib.sha256(f"{_FORMAT} {__version__} {sys.version}\n".encode())
    points = sorted((ep.name, ep.value) for ep in entry_points(group=_GROUP))
    digest.update(repr(points).encode())
    for file in files:
        digest.update(f"{file}\n".encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _packages(specs: list[DeviceSpec]) -> list[str]:
    """The top-level packages whose classes the specs hold (edgedev and the drivers')."""
    names = {"edgedev"}
    for spec in specs:
        names.add(type(spec.config).__module__.partition(".")[0])
        for prop in spec.properties[:1]:
            names.add(type(prop.visitor).__module__.partition(".")[0])
    return sorted(names)


class FleetCache:
    """The cache file of one list of paths in ``folder``.

    Args:
        folder: the cache directory (made, ``0700``, when absent).
        paths: the files, as given to the loader.
    """

    def __init__(self, folder: str | Path, paths: Iterable[str | Path]) -> None:
        self.folder = Path(folder)
        self.files = [Path(p).resolve() for p in paths]
        named = hashlib.sha256("\n".join(map(str, self.files)).encode()).hexdigest()[:16]
        self.path = self.folder / f"fleet-{named}.pickle"

    def load(
        self, load: Callable[[], tuple[list[DeviceSpec], list[Problem]]]
    ) -> tuple[list[DeviceSpec], list[Problem]]:
        """The specs and warnings from the cache when it holds these files, else ``load()``'s.

        What ``load`` returns is kept for the next start; it raises what it raises (a file
        with problems is not kept). A cache that cannot be read or written is skipped, with
        a note on the ``edgedev.config`` log (debug).
        """
        try:
            key = _key(self.files)
        except OSError:
            return load()  # a file that cannot be read: the loader says which
        found = self._read(key)
        if found is not None:
            return found
        specs, warnings = load()
        self._write(key, specs, warnings)
        return specs, warnings

    def _read(self, key: str) -> tuple[list[DeviceSpec], list[Problem]] | None:
        try:
            if not (_private(self.folder) and _private(self.path)):
                log.debug("cache %s: not private to this user, not read", self.path)
                return None
            with self.path.open("rb") as file:
                head = pickle.load(file)
                if not (isinstance(head, tuple) and len(head) == 3 and head[0] == key):
                    return None
                if head[2] != _sources(head[1]):
                    return None
                specs, warnings = pickle.load(file)
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged or foreign file: load the files instead
            log.debug("cache %s not used: %s", self.path, exc)
            return None
        log.debug("%d devices from the cache %s (files unchanged)", len(specs), self.path)
        return specs, warnings

    def _write(self, key: str, specs: list[DeviceSpec], warnings: list[Problem]) -> None:
        packages = _packages(specs)
        head: tuple[Any, ...] = (key, packages, _sources(packages))
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".fleet-", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as file:
                    pickle.dump(head, file, protocol=pickle.HIGHEST_PROTOCOL)
                    pickle.dump((specs, warnings), file, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(temp, self.path)
            except BaseException:
                os.unlink(temp)
                raise
            self._prune()
        except Exception as exc:  # a read-only or full disk: no cache, nothing else changes
            log.debug("cache %s not written: %s", self.path, exc)

    def _prune(self) -> None:
        """Remove all but the :data:`KEPT` most recent cache files of the folder."""
        found = sorted(
            self.folder.glob("fleet-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for old in found[KEPT:]:
            old.unlink(missing_ok=True)
