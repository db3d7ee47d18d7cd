"""OPC-UA mapper for edgedev: driver, simulator, node ids, value conversion, certificates.

Installed, it registers the ``opcua`` driver and simulator through the ``edgedev.drivers``
and ``edgedev.simulators`` entry points; asyncua is imported only when a device connects or
a simulator starts, so that ``edgedev validate`` stays fast.
"""

from __future__ import annotations

from edgedev_opcua.certs import Credentials, self_signed
from edgedev_opcua.config import OpcuaProtocol, OpcuaVisitor
from edgedev_opcua.convert import Builtin
from edgedev_opcua.driver import OpcuaDriver
from edgedev_opcua.nodeid import NodeRef, parse_node_id
from edgedev_opcua.simulator import OpcuaSimulator

__all__ = (
    "Builtin",
    "Credentials",
    "NodeRef",
    "OpcuaDriver",
    "OpcuaProtocol",
    "OpcuaSimulator",
    "OpcuaVisitor",
    "parse_node_id",
    "self_signed",
)
