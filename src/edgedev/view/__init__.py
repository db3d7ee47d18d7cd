"""The live view of device twins: one state fed from the bus.

It is drawn as a terminal table (``edgedev watch --table``, ``edgedev demo``) or served as a
web page (``edgedev view``, ``edgedev demo --web``; needs the ``edgedev[web]`` extra).
"""

from __future__ import annotations

from edgedev.view._errors import ViewError
from edgedev.view._state import DeviceView, History, PropertyView, TwinView

__all__ = ("DeviceView", "History", "PropertyView", "TwinView", "ViewError")
