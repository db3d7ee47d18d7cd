"""Reading documents: a file's YAML documents, one at a time, each with where it came from."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from edgedev._errors import Problem
from edgedev.config._yaml import load_all

if TYPE_CHECKING:
    from edgedev.loader._findings import Findings


@dataclass(frozen=True, slots=True)
class Document:
    """One Kubernetes resource as read: its file, its position there, and its data.

    Attributes:
        file: the file it came from (or the source of resources given as mappings: ``dmi``).
        index: its position, 1-based (the YAML document, or the resource in a list).
        data: the resource.
    """

    file: str
    index: int
    data: Mapping[str, Any]

    def slim(self) -> Document:
        """This document without the data that its problems do not name (the raw YAML)."""
        return Document(
            self.file,
            self.index,
            {"kind": self.data.get("kind"), "metadata": self.data.get("metadata")},
        )

    def problem(self, message: str, field: str | None = None) -> Problem:
        """A :class:`~edgedev.Problem` of this document (in ``field``, when one is to blame)."""
        meta = self.data.get("metadata")
        name = None
        if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
            name = f"{meta.get('namespace') or 'default'}/{meta['name']}"
        kind = self.data.get("kind")
        return Problem(
            self.file, self.index, kind if isinstance(kind, str) else None, name, field, message
        )


def source_name(path: str | os.PathLike[str]) -> str:
    """What the devices loaded from the file ``path`` hold in :attr:`DeviceSpec.source`."""
    return str(Path(path))


def read_documents(path: Path, findings: Findings) -> Iterator[Document]:
    """The file's mappings one at a time, so that each can be dropped once converted.

    What cannot be read (the file, its YAML, a document that is not a mapping) goes to
    ``findings`` as a problem of the file and document.
    """
    name = source_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        findings.problems.append(Problem(name, 0, None, None, None, f"cannot read file: {exc}"))
        return
    index = 0
    try:
        for index, data in enumerate(load_all(text), start=1):
            if data is None:
                continue
            if not isinstance(data, Mapping):
                findings.problems.append(
                    Problem(
                        name, index, None, None, None, "expected a mapping (a Kubernetes resource)"
                    )
                )
                continue
            yield Document(name, index, data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        findings.problems.append(
            Problem(name, index + 1, None, None, None, f"invalid YAML{where}: {reason}")
        )
