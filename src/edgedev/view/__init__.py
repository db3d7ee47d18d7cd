"""The live view of device twins: one state fed from the bus.

It is drawn as a terminal table (``edgedev watch --table``, ``edgedev demo``) or served as a
web page (``edgedev view``, ``edgedev demo --web``; needs the ``edgedev[web]`` extra).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgedev.view._errors import ViewError
from edgedev.view._state import DeviceView, History, PropertyView, TwinView

if TYPE_CHECKING:
    from edgedev.view._web import ViewFeed, ViewServer

__all__ = (
    "DeviceView",
    "History",
    "PropertyView",
    "TwinView",
    "ViewError",
    "ViewFeed",
    "ViewServer",
)


def __getattr__(name: str) -> Any:
    """``ViewServer`` and ``ViewFeed``, imported on first use (they need ``edgedev[web]``)."""
    if name not in ("ViewServer", "ViewFeed"):
        raise AttributeError(f"module 'edgedev.view' has no attribute {name!r}")
    return getattr(importlib.import_module("edgedev.view._web"), name)
