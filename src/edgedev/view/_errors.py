"""The web view's error, importable without the ``edgedev[web]`` extra."""

from __future__ import annotations

from edgedev._errors import EdgedevError


class ViewError(EdgedevError):
    """The web view cannot be served (its address is taken, or not allowed)."""
