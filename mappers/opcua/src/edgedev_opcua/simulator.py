"""Simulated OPC-UA servers for ``edgedev simulate``, ``edgedev demo`` and tests.

One asyncua ``Server`` per endpoint (host and port of the Devices' ``url``), with one folder
per Device and one variable per property at the property's ``nodeID`` (or at the end of its
``browsePath``, with objects along it), of the visitor's ``dataType`` (or the property
type's natural OPC-UA type). Read-only properties follow
:func:`edgedev.simulate.signals.signal`, rewritten every tick so that subscriptions see the
changes; writable properties keep what clients write. Devices with ``userName``/``password``
(or ``passwordFile``) get a server that checks them; secured Devices get a server
certificate made on the fly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import TaskStatus

from edgedev.drivers import ValueRules
from edgedev.simulate import Simulator
from edgedev.simulate.signals import initial, signal
from edgedev.twin import PropertyType, Value
from edgedev_opcua.config import (
    OpcuaDeviceSpec,
    OpcuaPropertySpec,
    OpcuaProtocol,
    OpcuaVisitor,
)
from edgedev_opcua.convert import (
    Builtin,
    default_builtin,
    from_opcua,
    number_from_opcua,
    number_to_opcua,
    to_opcua,
)
from edgedev_opcua.nodeid import BrowseStep

log = logging.getLogger("edgedev.opcua.simulator")

SERVER_URI = "urn:edgedev:opcua:simulator"
MIN_TICK = 0.05
MAX_TICK = 1.0


@dataclass(slots=True)
class _SimNode:
    """One simulated property: its node, its OPC-UA type, whether it changes by itself.

    ``rules`` (the visitor's value keys beyond ``scale``) turn property values into the raw
    numbers the node holds; ``cell`` holds the last one written (a bit is set into it),
    shared by the properties that are bits of one node.
    """

    device: str
    prop: OpcuaPropertySpec
    node_id: Any  # ua.NodeId, resolved when the server starts
    builtin: Builtin
    sensor: bool
    rules: ValueRules | None = None
    cell: list[int | float | bool] = field(default_factory=lambda: [0])

    def to_raw(self, value: Value | datetime) -> Any:
        """What the node holds for property value ``value``."""
        if isinstance(value, datetime):
            return value
        rules = self.rules
        if rules is None:
            return to_opcua(value, self.builtin)
        transform = rules.transform
        (last,) = self.cell
        current = int(last) if not isinstance(last, float) else 0
        if rules.bit is not None or rules.mapping is not None or transform.refusal is None:
            number = rules.raw(value, current)
        else:  # a mask, shift or base: undone as well as it can be
            number = transform.place(value if isinstance(value, int | float) else 0, current)
        self.cell[0] = number_to_opcua(number, self.builtin)
        return self.cell[0]

    def to_value(self, raw: Any) -> Value:
        """The property value of what the node holds."""
        if self.rules is None:
            return from_opcua(raw, self.prop.type, self.builtin)
        return self.rules.value(number_from_opcua(raw, self.builtin))

    def value_at(self, t: float) -> Value | datetime:
        """The sensor's value at time ``t`` (a DateTime node tells the wall clock)."""
        if self.builtin is Builtin.DATETIME:
            return datetime.now(UTC)
        return signal(self.prop, t, key=self.device)

    def start_value(self) -> Value | datetime:
        """The value the node holds when the server starts."""
        if self.builtin is Builtin.DATETIME and (not self.sensor and self.prop.desired is None):
            return datetime.now(UTC)
        if self.sensor:
            return self.value_at(0.0)
        return initial(self.prop)


class _Users:
    """asyncua user manager: the Devices' userName/password pairs, and anonymous if allowed."""

    def __init__(self, passwords: dict[str, str], anonymous: bool) -> None:
        self.passwords = passwords
        self.anonymous = anonymous

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None:
            return User(role=UserRole.User) if self.anonymous else None
        if username in self.passwords and self.passwords[username] == password:
            return User(role=UserRole.User, name=username)
        return None


class _Endpoint:
    """One server: the Devices at one ``host:port`` and their nodes."""

    def __init__(self, url: str, devices: list[OpcuaDeviceSpec]) -> None:
        self.url = url
        self.devices = devices
        self.nodes: dict[tuple[str, str], _SimNode] = {}
        self.server: Any = None
        for spec in devices:
            for prop in spec.properties:
                visitor = prop.visitor
                numbered = visitor.mapping is not None or visitor.bit is not None
                type_ = PropertyType.INT if numbered else prop.type
                builtin = visitor.data_type or default_builtin(type_)
                rules = None if visitor.plain else ValueRules(spec.id, prop)
                self.nodes[spec.id, prop.name] = _SimNode(
                    spec.id, prop, None, builtin, sensor=not prop.writable, rules=rules
                )

    def configs(self) -> list[OpcuaProtocol]:
        return [spec.config for spec in self.devices]

    def tick(self) -> float:
        cycles = [n.prop.collect_cycle for n in self.nodes.values() if n.sensor]
        return min(max(min(cycles, default=MAX_TICK) / 2, MIN_TICK), MAX_TICK)


class OpcuaSimulator(Simulator[OpcuaProtocol, OpcuaVisitor]):
    """asyncua servers for simulated OPC-UA devices, one per endpoint.

    Attributes:
        servers: the running asyncua ``Server`` of each endpoint URL (tests hook into them).
    """

    def __init__(
        self, devices: Sequence[OpcuaDeviceSpec], clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(devices)
        self._clock = clock
        groups: dict[tuple[str, int], list[OpcuaDeviceSpec]] = {}
        for spec in devices:
            cfg = spec.config
            groups.setdefault((cfg.host, cfg.port), []).append(spec)
        self._endpoints: list[_Endpoint] = []
        self._by_id: dict[str, _Endpoint] = {}
        for group in groups.values():
            cfg = group[0].config
            endpoint = _Endpoint(cfg.url, group)
            self._endpoints.append(endpoint)
            self._by_id.update((spec.id, endpoint) for spec in group)
        self.servers: dict[str, Any] = {}

    def address(self, device: OpcuaDeviceSpec) -> str:
        """The endpoint URL the device's server listens on."""
        return self._by_id[device.id].url

    # inspection and control, for tests ------------------------------------------------------
    def _node(self, device_id: str, prop: str) -> tuple[_Endpoint, _SimNode]:
        endpoint = self._by_id[device_id]
        return endpoint, endpoint.nodes[device_id, prop]

    def node_id(self, device_id: str, prop: str) -> Any:
        """The asyncua ``NodeId`` of ``prop`` on ``device_id`` (once the server runs)."""
        return self._node(device_id, prop)[1].node_id

    def get(self, device_id: str, prop: str) -> Value:
        """The value of ``prop`` on ``device_id`` as the server holds it now."""
        endpoint, node = self._node(device_id, prop)
        data = endpoint.server.read_attribute_value(node.node_id)
        return node.to_value(data.Value.Value)

    async def set(self, device_id: str, prop: str, value: Value | datetime) -> None:
        """Set ``prop`` on ``device_id`` (a sensor is overwritten at the next tick)."""
        endpoint, node = self._node(device_id, prop)
        await self._write(endpoint, node, value)

    def freeze(self, device_id: str) -> None:
        """Stop ``device_id``'s sensors from changing (tests compare exact values)."""
        for node in self._by_id[device_id].nodes.values():
            if node.device == device_id:
                node.sensor = False

    # serving -------------------------------------------------------------------------------
    async def _write(self, endpoint: _Endpoint, node: _SimNode, value: Value | datetime) -> None:
        from asyncua import ua

        variant = ua.Variant(node.to_raw(value), ua.VariantType(node.builtin.value))
        await endpoint.server.write_attribute_value(node.node_id, ua.DataValue(variant))

    async def _start(self, endpoint: _Endpoint) -> None:
        from asyncua import ua
        from asyncua.server.server import Server

        from edgedev_opcua.certs import self_signed
        from edgedev_opcua.connection import password_of
        from edgedev_opcua.session import to_ua_node_id

        configs = endpoint.configs()
        passwords = {c.user_name: password_of(c) for c in configs if c.user_name is not None}
        anonymous = any(c.user_name is None for c in configs)
        users: Any = _Users(passwords, anonymous) if passwords else None
        server = Server(user_manager=users)
        await server.init()
        server.set_endpoint(endpoint.url)
        server.set_server_name("edgedev OPC-UA simulator")
        await server.set_application_uri(SERVER_URI)
        if any(c.secured for c in configs):
            credentials = self_signed(SERVER_URI, common_name="edgedev simulator")
            await server.load_certificate(credentials.certificate, "pem")
            await server.load_private_key(credentials.private_key, format="pem")
            policies = (
                [ua.SecurityPolicyType.NoSecurity] if any(not c.secured for c in configs) else []
            )
            policies += [
                getattr(ua.SecurityPolicyType, f"{c.security_policy}_{c.security_mode}")
                for c in configs
                if c.secured
            ]
            server.set_security_policy(list(dict.fromkeys(policies)))
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        tokens: list[type] = [ua.UserNameIdentityToken] if passwords else []
        if anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        await self._add_nodes(server, endpoint, to_ua_node_id)
        await server.start()
        endpoint.server = server
        self.servers[endpoint.url] = server
        log.debug("simulating %d OPC-UA device(s) at %s", len(endpoint.devices), endpoint.url)

    async def _add_nodes(self, server: Any, endpoint: _Endpoint, to_ua_node_id: Any) -> None:
        from asyncua import ua

        visitors = {key: node.prop.visitor for key, node in endpoint.nodes.items()}
        indexes = [v.node.namespace for v in visitors.values() if v.node is not None]
        indexes += [step.namespace for v in visitors.values() for step in v.path]
        highest = max((i for i in indexes if isinstance(i, int)), default=1)
        namespaces = await server.get_namespace_array()
        while len(namespaces) <= highest:
            await server.register_namespace(f"{SERVER_URI}:ns{len(namespaces)}")
            namespaces = await server.get_namespace_array()
        for uri in indexes:
            if isinstance(uri, str) and uri not in namespaces:
                await server.register_namespace(uri)
                namespaces = await server.get_namespace_array()
        folder_ns = max(1, min(highest, len(namespaces) - 1))
        folders = {}
        for spec in endpoint.devices:
            folders[spec.id] = await server.nodes.objects.add_folder(folder_ns, spec.name)
        parents: dict[tuple[BrowseStep, ...], Any] = {(): server.nodes.objects}
        shared: dict[str, _SimNode] = {}
        for key, node in endpoint.nodes.items():
            visitor = visitors[key]
            raw = node.to_raw(node.start_value())
            variant_type = ua.VariantType(node.builtin.value)
            ref = visitor.node
            if ref is None:  # a browse path: objects along it, the variable at its end
                path = visitor.path
                for depth in range(1, len(path)):
                    if path[:depth] not in parents:
                        step = path[depth - 1]
                        parents[path[:depth]] = await parents[path[: depth - 1]].add_object(
                            step.namespace, step.name
                        )
                last = path[-1]
                variable = await parents[path[:-1]].add_variable(
                    last.namespace, last.name, raw, variant_type
                )
                node.node_id = variable.nodeid
            else:
                index = (
                    namespaces.index(ref.namespace)
                    if isinstance(ref.namespace, str)
                    else ref.namespace
                )
                node.node_id = to_ua_node_id(ref, index)
                first = shared.setdefault(node.node_id.to_string(), node)
                if first is not node:  # another bit of a node already added: one value
                    node.cell = first.cell
                    raw = node.to_raw(node.start_value())
                    await server.write_attribute_value(
                        node.node_id, ua.DataValue(ua.Variant(raw, variant_type))
                    )
                    continue
                variable = await folders[node.device].add_variable(
                    node.node_id, ua.QualifiedName(node.prop.name, folder_ns), raw, variant_type
                )
            if node.prop.writable:
                await variable.set_writable()

    async def _animate(self, endpoint: _Endpoint) -> None:
        tick = endpoint.tick()
        while True:
            await anyio.sleep(tick)
            now = self._clock()
            for node in endpoint.nodes.values():
                if node.sensor:
                    await self._write(endpoint, node, node.value_at(now))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve every device until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                for endpoint in self._endpoints:
                    await self._start(endpoint)
                    tg.start_soon(self._animate, endpoint)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                for endpoint in self._endpoints:
                    server, endpoint.server = endpoint.server, None
                    if server is not None:
                        self.servers.pop(endpoint.url, None)
                        await server.stop()

    @classmethod
    def demo_yaml(cls, allocate_port: Callable[[], int]) -> str:
        """A packaging line whose server pushes its values (subscribe mode)."""
        from importlib.resources import files

        text = files("edgedev_opcua").joinpath("demo.yaml").read_text(encoding="utf-8")
        return text.replace("LINE_PORT", str(allocate_port()))


__all__ = ("OpcuaSimulator",)
