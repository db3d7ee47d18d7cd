"""The gRPC channel to EdgeCore's DMI socket, shared by registration and reports."""

from __future__ import annotations

import grpc
from grpc import aio

from edgedev.dmi._pb import api_pb2_grpc as pb_grpc

DEFAULT_DMI_SOCKET = "/etc/kubeedge/dmi.sock"
"""Where EdgeCore serves ``DeviceManagerService`` (``edgecore.yaml`` DMISockPath)."""

MAX_MESSAGE = 256 * 1024 * 1024
"""The largest answer taken from EdgeCore: a registration answer carries every device of the
protocol with its model (18 MB for 1,000 devices of 50 properties; gRPC's default is 4 MB)."""

LIMITED = "too many request"
"""The text of EdgeCore's rate-limiter refusal (gRPC code UNKNOWN)."""


def unix_target(path: str) -> str:
    """The gRPC target of a unix socket path (``unix://`` prefixed once)."""
    return path if path.startswith("unix:") else f"unix://{path}"


def is_limited(error: aio.AioRpcError) -> bool:
    """Whether EdgeCore refused a request for its rate limit."""
    return LIMITED in (error.details() or "")


class EdgeCoreLink:
    """One channel to EdgeCore, opened on first use inside the event loop.

    Args:
        socket: EdgeCore's DMI socket path.
    """

    def __init__(self, socket: str = DEFAULT_DMI_SOCKET) -> None:
        self.socket = socket
        self._channel: aio.Channel | None = None
        self._stub: pb_grpc.DeviceManagerServiceStub | None = None

    @property
    def channel(self) -> aio.Channel:
        """The channel (opened now if needed)."""
        if self._channel is None:
            self._channel = aio.insecure_channel(
                unix_target(self.socket),
                options=[
                    # no idle timeout: a channel that goes idle would look like EdgeCore leaving
                    ("grpc.client_idle_timeout_ms", 2**31 - 1),
                    ("grpc.max_receive_message_length", MAX_MESSAGE),
                ],
            )
            self._stub = pb_grpc.DeviceManagerServiceStub(self._channel)  # type: ignore[no-untyped-call]
        return self._channel

    @property
    def stub(self) -> pb_grpc.DeviceManagerServiceStub:
        """The ``DeviceManagerService`` client."""
        _ = self.channel
        assert self._stub is not None
        return self._stub

    async def wait_lost(self) -> None:
        """Return once the connection to EdgeCore is lost (EdgeCore stopped or restarted)."""
        channel = self.channel
        state = channel.get_state(try_to_connect=True)
        while state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.CONNECTING):
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=False)

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()
