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
    from edgedev.view._web import ViewServer

__all__ = ("DeviceView", "History", "PropertyView", "TwinView", "ViewError", "ViewServer")


def __getattr__(name: str) -> Any:
    """``ViewServer``, imported on first use: it needs the ``edgedev[web]`` extra."""
    if name != "ViewServer":
        raise AttributeError(f"module 'edgedev.view' has no attribute {name!r}")
    return importlib.import_module("edgedev.view._web").ViewServer
