"""``edgedev simulate`` for ``linetcp`` devices: one TCP listener per device."""

from __future__ import annotations

import time
from functools import partial

import anyio
from anyio.abc import SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from edgedev.drivers import DeviceSpec, PropertySpec
from edgedev.simulate import Simulator
from edgedev.simulate.signals import initial, signal
from edgedev.twin import format_value
from edgedev_linetcp.driver import LineProtocol, LineVisitor


class LineSimulator(Simulator[LineProtocol, LineVisitor]):
    """Read-only properties follow ``signal()``; writable ones keep what is written."""

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen at every device's host and port until cancelled."""
        async with anyio.create_task_group() as tg:
            for device in self.devices:
                cfg = device.config
                listener = await anyio.create_tcp_listener(local_host=cfg.host, local_port=cfg.port)
                held = {p.name: format_value(initial(p), p.type) for p in device.properties}
                tg.start_soon(listener.serve, partial(self._serve, device, held))
            task_status.started()

    async def _serve(
        self,
        device: DeviceSpec[LineProtocol, LineVisitor],
        held: dict[str, str],
        stream: SocketStream,
    ) -> None:
        props = {p.visitor.key: p for p in device.properties}
        lines = BufferedByteReceiveStream(stream)
        async with stream:
            while True:
                try:
                    verb, *args = (await lines.receive_until(b"\n", 65536)).decode().split()
                except (anyio.EndOfStream, anyio.IncompleteRead, ValueError):
                    return
                found = [props[key] for key in args if key in props]
                if verb == "READ" and len(found) == len(args):
                    reply = " ".join(["OK", *(self._value(device, p, held) for p in found)])
                elif verb == "WRITE" and len(args) == 2 and found and found[0].writable:
                    held[found[0].name] = args[1]
                    reply = "OK"
                else:
                    reply = "ERR bad request or unknown key"
                await stream.send(reply.encode() + b"\n")

    @staticmethod
    def _value(device: DeviceSpec, prop: PropertySpec, held: dict[str, str]) -> str:
        if prop.writable:
            return held[prop.name]
        return format_value(signal(prop, time.time(), key=device.id), prop.type)
