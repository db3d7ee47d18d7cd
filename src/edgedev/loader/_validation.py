"""Error translation: pydantic's validation errors as ``(field, message)`` a user can act on.

Fields are spelled as in the YAML (``spec.properties[2].visitors.configData.offset``); an
unknown key gets the nearest valid one, a wrong enum-like value the nearest choice.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from edgedev.loader._findings import FieldNote

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

_QUOTED = re.compile(r"'([^']*)'")


def did_you_mean(wrong: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the choice nearest to ``wrong``, or ``""``."""
    options = list(choices)
    near = difflib.get_close_matches(wrong, options, n=1, cutoff=0.6)
    if not near:
        lowered = {o.lower(): o for o in options}
        near = [lowered[wrong.lower()]] if wrong.lower() in lowered else []
    return f"; did you mean {near[0]!r}?" if near else ""


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_notes(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[FieldNote]:
    """``(field, message)`` of each error, fields under ``prefix``.

    With ``model`` (the model validated), a misspelled key gets the nearest valid one.
    """
    fields: list[FieldNote] = []
    for item in error.errors(include_url=False):
        field = _loc(item["loc"])
        field = f"{prefix}.{field}" if prefix and field else (prefix or field)
        message = _message(item)
        if item["type"] == "extra_forbidden" and model is not None and item["loc"]:
            wrong = item["loc"][-1]
            if isinstance(wrong, str):
                message += did_you_mean(wrong, _keys_at(model, item["loc"][:-1]))
        fields.append((field or None, message))
    return fields


def _message(item: ErrorDetails) -> str:
    """Pydantic's message, quoting the wrong value of an enum-like field and the nearest."""
    message: str = item["msg"]
    expected = (item.get("ctx") or {}).get("expected")
    wrong = item.get("input")
    if item["type"] in ("enum", "literal_error") and isinstance(expected, str):
        hint = did_you_mean(wrong, _QUOTED.findall(expected)) if isinstance(wrong, str) else ""
        return f"got {wrong!r}{hint} ({message})"
    return message


def _model_in(annotation: object) -> object:
    """The pydantic model inside ``annotation`` (``X | None``, ``list[X]``), else itself."""
    for arg in typing.get_args(annotation):
        inner = _model_in(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _keys_at(model: type[BaseModel], loc: Iterable[int | str]) -> list[str]:
    """The YAML keys that the object at ``loc`` inside ``model`` takes."""
    current: object = model
    for part in loc:
        current = _model_in(current)
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        fields = current.model_fields
        found = next((f for n, f in fields.items() if part in (n, f.alias)), None)
        if found is None:
            return []
        current = found.annotation
    current = _model_in(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []
