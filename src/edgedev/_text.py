"""Small helpers for the words people read: counts with the right noun."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` followed by ``noun`` in the number that fits: ``1 device``, ``2 devices``.

    Args:
        count: how many.
        noun: the singular form.
        plural_form: the plural when it is not ``noun + "s"`` (``property`` -> ``properties``).
    """
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or noun + 's'}"
