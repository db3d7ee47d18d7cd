"""What a load finds: problems (nothing loads) and warnings (it loads, but deserves a look).

Checks say what they find in :class:`Notes`, by field, before it is known which document it
belongs to (a fleet's devices share one property list, checked once); a :class:`Findings`
collects them as :class:`~edgedev.Problem` s naming file, document, resource and field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgedev._errors import ConfigError, Problem

if TYPE_CHECKING:
    from edgedev.loader._documents import Document

log = logging.getLogger("edgedev.config")

FieldNote = tuple[str | None, str]
"""``(field, message)``: one thing a check found, the field relative to its document."""


@dataclass(slots=True)
class Notes:
    """What the checks of one part (a property list, a property) found, by field.

    Attributes:
        errors: what makes the part unusable.
        warnings: what loads but will not work as meant, or is deprecated.
    """

    errors: list[FieldNote] = field(default_factory=list)
    warnings: list[FieldNote] = field(default_factory=list)

    def error(self, field: str | None, message: str) -> None:
        """Note a problem of ``field``."""
        self.errors.append((field, message))

    def warn(self, field: str | None, message: str) -> None:
        """Note a warning about ``field``."""
        self.warnings.append((field, message))


@dataclass(slots=True)
class Findings:
    """The problems and warnings of one load, in the order found.

    Attributes:
        problems: what keeps the load from succeeding (:meth:`check` raises them).
        warnings: what loads but deserves a look (:meth:`hand_over`).
    """

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def problem(self, doc: Document, message: str, field: str | None = None) -> None:
        """Note a problem of ``doc`` (in ``field``, when one is to blame)."""
        self.problems.append(doc.problem(message, field))

    def errors_of(self, doc: Document, notes: Iterable[FieldNote]) -> None:
        """Note each ``(field, message)`` as a problem of ``doc``."""
        self.problems.extend(doc.problem(message, field) for field, message in notes)

    def warnings_of(self, doc: Document, notes: Iterable[FieldNote]) -> None:
        """Note each ``(field, message)`` as a warning about ``doc``."""
        self.warnings.extend(doc.problem(message, field) for field, message in notes)

    def check(self) -> None:
        """Raise what was found wrong, all of it at once.

        Raises:
            ConfigError: with one :class:`~edgedev.Problem` per mistake, in the order found.
        """
        if self.problems:
            raise ConfigError(self.problems)

    def hand_over(self, warnings: list[Problem] | None) -> None:
        """Give the warnings to ``warnings``, or log them on ``edgedev.config`` when ``None``."""
        if warnings is not None:
            warnings.extend(self.warnings)
            return
        for warning in self.warnings:
            log.warning("%s", warning)
