"""KubeEdge DMI: EdgeCore (v1.15+) drives edgedev mappers over gRPC on unix sockets.

:class:`Dmi` is the mapper's twin transport (``Mapper(devices, transports=[Dmi(["modbus"])])``):
its :class:`DmiSource` per protocol brings EdgeCore's devices and desired values, its
:class:`DmiSink` reports their twins and states. Needs the ``dmi`` extra
(``pip install edgedev[dmi]``: grpcio and protobuf). The proto is ``_pb/api.proto`` (package
``v1beta1``, KubeEdge's wire contract); its generated modules are committed. See
``docs/deploy-kubeedge.md``.
"""

from __future__ import annotations

from edgedev.dmi._convert import device_resource, model_resource, to_device, to_model, to_spec
from edgedev.dmi._limiter import TokenBucket
from edgedev.dmi._link import DEFAULT_DMI_SOCKET, EdgeCoreLink
from edgedev.dmi._pb import api_pb2 as pb
from edgedev.dmi._pb import api_pb2_grpc as pb_grpc
from edgedev.dmi._sink import DmiSink
from edgedev.dmi._source import DmiSource, default_mapper_socket
from edgedev.dmi._transport import Dmi, mapper_socket_path

__all__ = (
    "DEFAULT_DMI_SOCKET",
    "Dmi",
    "DmiSink",
    "DmiSource",
    "EdgeCoreLink",
    "TokenBucket",
    "default_mapper_socket",
    "device_resource",
    "mapper_socket_path",
    "model_resource",
    "pb",
    "pb_grpc",
    "to_device",
    "to_model",
    "to_spec",
)
