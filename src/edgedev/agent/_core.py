"""The twin agent's logic, without I/O: messages in, messages out, rows to persist.

:class:`AgentCore` is what ``edgedev agent`` runs between the bus and the database: it takes
one MQTT message at a time (:meth:`AgentCore.handle`) and returns the :class:`Reply` messages
to publish, and it remembers which devices and properties changed until the caller has stored
them (:meth:`AgentCore.take_dirty`). Time comes in as an argument, so every rule here is tested
without a broker, a clock or a disk.

| topic (under ``{root}/``)              | what the agent does                                    |
| -------------------------------------- | ------------------------------------------------------ |
| ``device/{id}/twin/update``            | apply reported and desired values; answer on          |
|                                        | ``twin/update/result``; ``twin/update/document`` when  |
|                                        | something changed; ``twin/update/delta`` when the      |
|                                        | delta changed                                          |
| ``device/{id}/state/update``           | remember the state; resend the delta on ``online``     |
| ``device/{id}/state/current``          | the same, retained, with the mapper that sent it       |
| ``device/{id}/twin/get``               | answer the whole twin on ``twin/get/result``           |
| ``node/{node}/membership/get``         | answer the node's devices on ``membership/get/result`` |
| ``node/{node}/mapper/{mapper}/state``  | learn a mapper's devices when it announces itself; its |
|                                        | will: its devices go ``offline``                       |

Devices met for the first time in the ``-f`` files are announced on
``node/{node}/membership/updated``. Mappers' announcements and device states are retained, so
that an agent started after its mappers learns their devices and states as it subscribes, in
whatever order they come (:class:`~edgedev.twin.Presence` says which state holds); at each
connection the agent (:class:`~edgedev.agent.Agent`, not this core) also asks on
``node/{node}/mapper/get`` that every mapper of its node announce itself again.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from edgedev._errors import NoSuchProperty, PluginError, WriteRefused
from edgedev.agent._input import (
    AgentLimits,
    NewIdRate,
    device_id_problem,
    json_depth,
    property_name_problem,
    state_problem,
)
from edgedev.agent._records import (
    DeviceRecord,
    DeviceRow,
    PropertyRow,
    device_row,
    property_row,
)
from edgedev.bus._outbox import Message
from edgedev.bus._topics import Channel, DeviceTopic, MapperTopic, NodeChannel, NodeTopic, Topics
from edgedev.config._spec import DeviceSpec
from edgedev.drivers import AnyDriver, check_desired, drivers
from edgedev.twin._presence import Presence
from edgedev.twin._state import DeviceState
from edgedev.twin._twin import Change, Code, Outcome, PropertyModel, Refusal, Twin
from edgedev.twin._values import PropertyType
from edgedev.wire import (
    CurrentState,
    MapperState,
    StateUpdate,
    TwinUpdate,
    desired_refusal,
    kubeedge_time,
    membership_result,
    membership_updated,
    new_event_id,
    property_entry,
    state_update,
    to_change,
    twin_delta,
    twin_document,
    twin_entries,
    twin_result,
)

log = logging.getLogger("edgedev.agent")

_SEEN_LIMIT = 4096
_ANSWERED = {Channel.TWIN_UPDATE: Channel.TWIN_RESULT, Channel.TWIN_GET: Channel.TWIN_GET_RESULT}
"""Device channels whose refusals are answered, and the channel of the answer."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A message the agent publishes once the changes behind it are stored.

    Attributes:
        message: what to publish when the changes are stored.
        on_failure: what to publish instead when storing them failed (``None``: nothing).
        needs_store: ``False`` for an answer that changes nothing (``twin/get``): it is
            published whether or not the batch it came in was stored.
    """

    message: Message
    on_failure: Message | None = None
    needs_store: bool = True


def model_of(spec: DeviceSpec) -> dict[str, PropertyModel]:
    """What the DeviceModel of ``spec`` says of each property."""
    return {
        p.name: PropertyModel(p.type, p.writable, p.minimum, p.maximum) for p in spec.properties
    }


def result_payload(
    event_id: str,
    now: int,
    twin: Mapping[str, object] | None = None,
    refusal: Refusal | None = None,
) -> bytes:
    """A ``twin/update/result`` or ``twin/get/result``: the twin, or the refusal."""
    if refusal is not None:
        return twin_result(event_id, now, code=int(refusal.code), reason=refusal.reason)
    return twin_result(event_id, now, twin)


class AgentCore:
    """Every device's twin and state, and the rules that change them.

    Only devices the agent knows are served: those of its files (:meth:`adopt`) and those a
    mapper announced on ``node/{node}/mapper/{mapper}/state`` with a valid
    ``namespace/name``. Anything else (unknown devices or properties, invalid names, payloads
    beyond :class:`AgentLimits`) is refused before it touches a twin: with a 4xx result where
    the topic has one, and counted in :attr:`refused` by reason either way.

    Args:
        topics: the topic scheme (its root) the agent serves.
        node: the agent's edge node; devices without ``nodeName`` belong to it.
        limits: sizes and counts accepted from the bus.
    """

    def __init__(self, topics: Topics, node: str, limits: AgentLimits | None = None) -> None:
        self.topics = topics
        self.node = node
        self.limits = limits or AgentLimits()
        self.refused: Counter[str] = Counter()
        """Messages (or device ids in them) refused, by reason: ``payload``, ``depth``,
        ``malformed``, ``device_id``, ``unknown_device``, ``property_name``,
        ``unknown_property``, ``properties``, ``devices``, ``state_ids`` (a ``mapper/state``
        listing too many ids), ``new_ids`` (a mapper making devices known too fast),
        ``store_full``, ``desired`` (a desired value the one rule refuses:
        :func:`~edgedev.drivers.check_desired`)."""
        self.store_bytes = 0
        """Bytes the twin store takes on disk, as the agent last measured it."""
        self.skipped_rows = 0
        """Stored rows that :meth:`load` could not use (reported in the log, then skipped)."""
        self.records: dict[str, DeviceRecord] = {}
        self._models: dict[str, dict[str, PropertyModel]] = {}
        self._specs: dict[str, tuple[DeviceSpec, type[AnyDriver] | None]] = {}
        self._dirty_devices: set[str] = set()
        self._dirty_props: set[tuple[str, str]] = set()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._new_ids = NewIdRate(self.limits.new_ids_per_minute)
        self.presence = Presence(max_devices=self.limits.max_devices)
        """Device states as mappers report them, known devices or not (bounded)."""

    # persistence ----------------------------------------------------------------------------
    def load(self, devices: Iterable[DeviceRow], props: Iterable[PropertyRow]) -> None:
        """Start from stored rows (replacing what is in memory, models kept)."""
        self.records = {}
        for row in devices:
            problem = device_id_problem(row.id)
            if problem is not None:
                self._skip_row(row.id, problem)
                continue
            self.records[row.id] = DeviceRecord(
                Twin(row.id),
                state=row.state,
                last_online=row.last_online,
                node=row.node,
                mapper=row.mapper,
                mapper_started=row.mapper_started,
            )
        for prow in props:
            problem = device_id_problem(prow.device) or property_name_problem(prow.name)
            if problem is not None:
                self._skip_row(f"{prow.device} {prow.name}", problem)
                continue
            record = self._record(prow.device)
            record.twin.properties[prow.name] = prow.prop
            record.declared[prow.name] = prow.declared
        for device_id, model in self._models.items():
            self._record(device_id).twin.set_model(model)
        self._dirty_devices.clear()
        self._dirty_props.clear()
        self._seen.clear()  # updates undone by a reload may be sent again

    def _skip_row(self, what: str, problem: str) -> None:
        self.skipped_rows += 1
        log.warning("stored twin %s skipped: %s", what[:300], problem)

    def take_dirty(self) -> tuple[list[DeviceRow], list[PropertyRow]]:
        """The rows changed since the last call, to store in one transaction."""
        devices = [device_row(self.records[d]) for d in sorted(self._dirty_devices)]
        props = [
            property_row(self.records[d], n)
            for d, n in sorted(self._dirty_props)
            if n in self.records[d].twin.properties
        ]
        self._dirty_devices.clear()
        self._dirty_props.clear()
        return devices, props

    # Device files ---------------------------------------------------------------------------
    def adopt(self, specs: Sequence[DeviceSpec], now: int) -> list[Reply]:
        """Take the devices of the ``-f`` files: their models and declared desired values.

        A file's ``desired.value`` is applied when it differs from what the file declared
        last time, so that a restart with the same files keeps values set since by apps.
        """
        replies: list[Reply] = []
        added: dict[str, list[DeviceRecord]] = {}
        for spec in specs:
            if spec.id not in self.records:
                added.setdefault(spec.node_name or self.node, []).append(self._record(spec.id))
            record = self._record(spec.id)
            model = model_of(spec)
            self._models[spec.id] = model
            self._specs[spec.id] = (spec, _driver_of(spec.protocol))
            record.twin.set_model(model)
            node = spec.node_name or self.node
            if record.node != node:
                record.node = node
                self._dirty_devices.add(spec.id)
            changes = []
            for prop in spec.properties:
                declared = prop.desired
                self._dirty_props.add((spec.id, prop.name))  # rows for every modelled property
                if prop.name in record.declared and record.declared[prop.name] == declared:
                    continue
                current = record.twin.properties[prop.name].desired
                if declared is not None:
                    changes.append(Change(prop.name, desired=declared))
                elif current is not None and current.value == record.declared.get(prop.name):
                    changes.append(Change(prop.name, remove_desired=True))
                record.declared[prop.name] = declared
            outcome = record.twin.update(changes, now)
            if outcome.refusal is not None:  # a file value the model refuses: leave it out
                for change in changes:
                    single = record.twin.update([change], now)
                    if single.refusal is not None:
                        log.warning("%s: desired value ignored: %s", spec.id, single.refusal.reason)
                    replies += self._after_update(record, single, now)
            else:
                replies += self._after_update(record, outcome, now)
        for node, records in sorted(added.items()):
            body = membership_updated([_member(r) for r in records], timestamp=now)
            topic = self.topics.node(node, NodeChannel.MEMBERSHIP_UPDATED)
            replies.append(Reply(Message(topic, body)))
        return replies

    # messages -------------------------------------------------------------------------------
    def handle(self, message: Message, now: int) -> list[Reply]:
        """What to publish in answer to ``message`` (a topic the agent subscribes to)."""
        topic = self.topics.parse(message.topic)
        if topic is None:
            return []
        problem = self._payload_problem(message.payload)
        if problem is None and isinstance(topic, DeviceTopic):
            problem = device_id_problem(topic.device_id)
            if problem is not None:
                self.refused["device_id"] += 1
        if problem is not None:
            log.debug("refused a message on %s: %s", message.topic[:300], problem)
            if isinstance(topic, DeviceTopic) and topic.channel in _ANSWERED:
                body = result_payload(
                    _event_id(message.payload), now, refusal=Refusal(Code.BAD_REQUEST, problem)
                )
                return [
                    Reply(
                        Message(self.topics.device(topic.device_id, _ANSWERED[topic.channel]), body)
                    )
                ]
            return []
        if isinstance(topic, DeviceTopic):
            if topic.channel is Channel.TWIN_UPDATE:
                return self._twin_update(topic.device_id, message.payload, now)
            if topic.channel is Channel.STATE_UPDATE:
                return self._state_update(topic.device_id, message.payload, now)
            if topic.channel is Channel.STATE_CURRENT:
                return self._state_current(topic.device_id, message.payload, now)
            if topic.channel is Channel.TWIN_GET:
                return self._twin_get(topic.device_id, message.payload, now)
        elif isinstance(topic, NodeTopic):
            if topic.channel is NodeChannel.MEMBERSHIP_GET:
                return self._membership(topic.node, message.payload, now)
        elif isinstance(topic, MapperTopic):
            return self._mapper_state(topic, message.payload, now)
        return []

    def _payload_problem(self, payload: bytes) -> str | None:
        """Why ``payload`` is refused before parsing (size, nesting), or ``None``."""
        limits = self.limits
        if len(payload) > limits.max_payload:
            self.refused["payload"] += 1
            return f"payload of {len(payload)} bytes is over the limit of {limits.max_payload}"
        if json_depth(payload, limits.max_depth) > limits.max_depth:
            self.refused["depth"] += 1
            return f"JSON nested deeper than the limit of {limits.max_depth}"
        return None

    def twin_result(self, device_id: str, event_id: str, now: int) -> bytes:
        """The ``twin/get/result`` for ``device_id``: every property, or 404."""
        record = self.records.get(device_id)
        if record is None:
            refusal = Refusal(Code.NOT_FOUND, f"device {device_id} is unknown")
            return result_payload(event_id, now, refusal=refusal)
        return result_payload(event_id, now, twin_entries(record.twin.properties))

    def _twin_update(self, device_id: str, payload: bytes, now: int) -> list[Reply]:
        result_topic = self.topics.device(device_id, Channel.TWIN_RESULT)

        def refused(code: Code, reason: str) -> list[Reply]:
            body = result_payload(event_id, now, refusal=Refusal(code, reason))
            return [Reply(Message(result_topic, body))]

        try:
            update = TwinUpdate.model_validate_json(payload)
        except ValidationError as exc:
            event_id = _event_id(payload)
            self.refused["malformed"] += 1
            return refused(Code.BAD_REQUEST, f"malformed twin/update: {_first_error(exc)}")
        event_id = update.event_id or new_event_id()
        record = self.records.get(device_id)
        if record is None:
            self.refused["unknown_device"] += 1
            return refused(Code.NOT_FOUND, f"device {device_id} is unknown")
        problem = self._properties_problem(record, update.twin)
        if problem is not None:
            return refused(*problem)
        changes = [to_change(name, twin) for name, twin in update.twin.items()]
        for change in changes:
            desired = self._desired_problem(record, change)
            if desired is not None:
                self.refused["desired"] += 1
                return refused(*desired)
        if update.event_id:
            key = (device_id, update.event_id)
            if key in self._seen:  # a resent message: answer again, apply once
                entries = twin_entries(record.twin.properties, update.twin)
                return [Reply(Message(result_topic, result_payload(event_id, now, entries)))]
        outcome = record.twin.update(changes, now)
        if outcome.refusal is not None:
            return refused(outcome.refusal.code, outcome.refusal.reason)
        if update.event_id:
            self._seen[(device_id, update.event_id)] = None
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
        entries = twin_entries(record.twin.properties, update.twin)
        failed = result_payload(
            event_id, now, refusal=Refusal(Code.INTERNAL, "the agent could not store the update")
        )
        ok = Message(result_topic, result_payload(event_id, now, entries))
        replies = [Reply(ok, Message(result_topic, failed))]
        return replies + self._after_update(record, outcome, now)

    def _properties_problem(
        self, record: DeviceRecord, names: Mapping[str, object]
    ) -> tuple[Code, str] | None:
        """Why the properties named in a ``twin/update`` are refused, or ``None``."""
        limit = self.limits.max_properties
        if len(names) > limit:
            self.refused["properties"] += 1
            return (
                Code.BAD_REQUEST,
                f"{len(names)} properties in one update, over the limit of {limit}",
            )
        model = record.twin.model
        known = record.twin.properties
        new = 0
        for name in names:
            problem = property_name_problem(name)
            if problem is not None:
                self.refused["property_name"] += 1
                return Code.BAD_REQUEST, problem
            if model is not None and name not in model:
                self.refused["unknown_property"] += 1
                return Code.NOT_FOUND, f"device {record.id} has no property {name!r}"
            new += name not in known
        if model is None and len(known) + new > limit:
            self.refused["properties"] += 1
            return Code.BAD_REQUEST, f"device {record.id} would have more than {limit} properties"
        if new and self.store_full:
            self.refused["store_full"] += 1
            return Code.INTERNAL, self._full_reason("property")
        return None

    @property
    def store_full(self) -> bool:
        """Whether the twin store holds ``max_store_bytes`` already (:attr:`store_bytes`)."""
        return 0 < self.limits.max_store_bytes <= self.store_bytes

    def _full_reason(self, what: str) -> str:
        mb = self.limits.max_store_bytes / 2**20
        return f"the twin store is full ({mb:g} MiB, --db-max-mb): no new {what}"

    def _desired_problem(self, record: DeviceRecord, change: Change) -> tuple[Code, str] | None:
        """Why a desired value of ``change`` is refused by the one rule, or ``None``.

        For a device of the files: :func:`~edgedev.drivers.check_desired` with its driver
        (a value the device cannot hold exactly, too); for one known only from a mapper: the
        text a report can carry back (the mapper checks the rest, and says why it refused).
        """
        text = change.desired
        if text is None:
            return None
        known = self._specs.get(record.id)
        name = change.name
        if known is not None:
            spec, driver = known
            prop = spec.property(name) if spec.has_property(name) else None
            try:
                check_desired(record.id, name, prop, text, driver)
            except NoSuchProperty as exc:
                return Code.NOT_FOUND, str(exc)
            except WriteRefused as exc:
                return Code.BAD_REQUEST, str(exc)
            return None
        held = record.twin.properties.get(name)
        type_ = change.type or (held.type if held is not None else PropertyType.STRING)
        why = desired_refusal(text, type_.value)
        return None if why is None else (Code.BAD_REQUEST, f"{name}: {why}")

    def _after_update(self, record: DeviceRecord, outcome: Outcome, now: int) -> list[Reply]:
        """Document and delta after an accepted update; marks its rows dirty."""
        replies = []
        for name in outcome.transitions:
            self._dirty_props.add((record.id, name))
        document = outcome.document
        if document:
            twin = {
                name: {
                    "last": property_entry(t.last) if t.last is not None else None,
                    "current": property_entry(t.current),
                }
                for name, t in sorted(document.items())
            }
            body = twin_document(twin, timestamp=now)
            topic = self.topics.device(record.id, Channel.TWIN_DOCUMENT)
            replies.append(Reply(Message(topic, body)))
        delta = record.twin.delta()
        if delta != record.delta_sent or (delta and outcome.desired_changed):
            replies.append(self._delta(record, delta, now))
        return replies

    def _delta(self, record: DeviceRecord, delta: dict[str, str], now: int) -> Reply:
        record.delta_sent = delta
        body = twin_delta(twin_entries(record.twin.properties, delta), delta, timestamp=now)
        return Reply(Message(self.topics.device(record.id, Channel.TWIN_DELTA), body))

    def _state_update(self, device_id: str, payload: bytes, now: int) -> list[Reply]:
        try:
            update = StateUpdate.model_validate_json(payload)
        except ValidationError:
            self.refused["malformed"] += 1
            return []
        return self._take_state(device_id, update, now)

    def _state_current(self, device_id: str, payload: bytes, now: int) -> list[Reply]:
        """A retained state (at subscription, or live), or its deletion (the device removed)."""
        if not payload:
            self.presence.forget(device_id)  # the twin and its last state stay
            return []
        try:
            current = CurrentState.model_validate_json(payload)
        except ValidationError:
            self.refused["malformed"] += 1
            return []
        return self._take_state(device_id, current, now)

    def _take_state(self, device_id: str, update: StateUpdate, now: int) -> list[Reply]:
        """Remember a device's state (even before the device is known), then apply what holds."""
        if state_problem(update.state) is not None or (
            isinstance(update, CurrentState)
            and (update.reason is not None and len(update.reason) > 1024)
        ):
            self.refused["malformed"] += 1
            return []
        record = self.records.get(device_id)
        sender = (update.mapper, update.started) if isinstance(update, CurrentState) else ("", 0)
        self.presence.device(
            device_id,
            update.state,
            update.timestamp or now,
            mapper=sender[0],
            started=sender[1],
            known=record is not None,
        )
        if record is None:  # kept in the presence until a mapper announces the device
            self.refused["unknown_device"] += 1
            return []
        return self._apply_state(record, now)

    def _apply_state(self, record: DeviceRecord, now: int) -> list[Reply]:
        """Give ``record`` the state that holds now; the pending delta when it came online."""
        seen = self.presence.state(record.id)
        if seen is None:
            return []
        state = seen.state
        came_online = state == DeviceState.ONLINE and record.state != DeviceState.ONLINE
        if state != record.state or state == DeviceState.ONLINE:
            record.state = state
            if state in (DeviceState.ONLINE, DeviceState.OFFLINE):
                record.last_online = now
            self._dirty_devices.add(record.id)
        delta = record.twin.delta()
        if came_online and delta:  # a mapper (re)started: tell it what is still pending
            return [self._delta(record, delta, now)]
        return []

    def _twin_get(self, device_id: str, payload: bytes, now: int) -> list[Reply]:
        body = self.twin_result(device_id, _event_id(payload), now)
        topic = self.topics.device(device_id, Channel.TWIN_GET_RESULT)
        return [Reply(Message(topic, body), needs_store=False)]

    def members(self, node: str) -> list[DeviceRecord]:
        """The devices bound to ``node`` (devices bound to no node belong to the agent's)."""
        return [
            r
            for _, r in sorted(self.records.items())
            if r.node == node or (r.node is None and node == self.node)
        ]

    def _membership(self, node: str, payload: bytes, now: int) -> list[Reply]:
        devices = [_member(r) for r in self.members(node)]
        body = membership_result(_event_id(payload), devices, timestamp=now)
        topic = self.topics.node(node, NodeChannel.MEMBERSHIP_RESULT)
        return [Reply(Message(topic, body))]

    def _mapper_state(self, topic: MapperTopic, payload: bytes, now: int) -> list[Reply]:
        node = topic.node
        if not payload:  # someone deleted the retained announcement: nothing to learn
            return []
        try:
            state = MapperState.model_validate_json(payload)
        except ValidationError:
            self.refused["malformed"] += 1
            return []
        if state.mapper != topic.mapper:
            self.refused["malformed"] += 1
            return []
        limits = self.limits
        if len(state.devices) > limits.max_state_ids:
            self.refused["state_ids"] += 1
            log.warning(
                "mapper %s on node %s: refused a state listing %d device ids (at most %d)",
                state.mapper[:100],
                node[:100],
                len(state.devices),
                limits.max_state_ids,
            )
            return []
        replies = []
        bad: list[str] = []
        members = -1  # counted at the first new device, once per message
        for device_id in state.devices:
            problem = device_id_problem(device_id)
            if problem is not None:
                self.refused["device_id"] += 1
                bad.append(problem)
                continue
            record = self.records.get(device_id)
            if record is None:
                if state.state != DeviceState.ONLINE:
                    continue
                if node != self.node:  # the agent serves its own node's mappers
                    self.refused["unknown_device"] += 1
                    bad.append(f"node {node} is not this agent's node {self.node}")
                    continue
                if members < 0:
                    members = len(self.members(node))
                if members >= limits.max_devices:
                    self.refused["devices"] += 1
                    bad.append(f"node {node} has {limits.max_devices} devices already")
                    continue
                if not self._new_ids.take((node, state.mapper), now):
                    self.refused["new_ids"] += 1
                    bad.append(
                        f"more than {limits.new_ids_per_minute} new devices a minute from "
                        "this mapper (taken at its next announcement)"
                    )
                    continue
                if self.store_full:
                    self.refused["store_full"] += 1
                    bad.append(self._full_reason("device"))
                    continue
                members += 1
                record = self._record(device_id)
                record.node = node
            if state.state == DeviceState.ONLINE:
                if state.started >= record.mapper_started or record.mapper != state.mapper:
                    record.mapper, record.mapper_started = state.mapper, state.started
                    record.node = record.node or node
                    self._dirty_devices.add(device_id)
                continue
            stale = record.mapper is not None and (
                record.mapper != state.mapper or state.started < record.mapper_started
            )
            if stale or record.state == DeviceState.OFFLINE:  # an older will, or nothing new
                continue
            record.state, record.last_online = DeviceState.OFFLINE, now
            self._dirty_devices.add(device_id)
            offline = state_update(DeviceState.OFFLINE, timestamp=now)
            replies.append(
                Reply(Message(self.topics.device(device_id, Channel.STATE_UPDATE), offline))
            )
        self.presence.mapper(
            state.mapper, state.state, state.started, state.devices, state.timestamp
        )
        for device_id in dict.fromkeys([*self.presence.devices_of(state.mapper), *state.devices]):
            known = self.records.get(device_id)
            if known is not None:  # states that came before the announcement, or hold no more
                replies += self._apply_state(known, now)
        if bad:  # one line per message, however many ids it lists
            log.warning(
                "mapper %s on node %s: %d device id(s) refused, first: %s",
                state.mapper[:100],
                node[:100],
                len(bad),
                bad[0],
            )
        return replies

    def _record(self, device_id: str) -> DeviceRecord:
        record = self.records.get(device_id)
        if record is None:
            record = DeviceRecord(Twin(device_id), state=DeviceState.UNKNOWN)
            self.records[device_id] = record
        return record


def _driver_of(protocol: str) -> type[AnyDriver] | None:
    """The installed driver of ``protocol`` (the loader found it for the same files)."""
    try:
        return drivers.get(protocol)
    except PluginError:
        return None


def _member(record: DeviceRecord) -> dict[str, str]:
    """A device as ``membership`` messages list it (KubeEdge's ``Device``)."""
    return {
        "id": record.id,
        "name": record.id.rpartition("/")[2],
        "description": "",
        "state": record.state,
        "last_online": kubeedge_time(record.last_online),
    }


def _event_id(payload: bytes) -> str:
    """The ``event_id`` of a payload, even a malformed one; a fresh id when it has none."""
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return new_event_id()
    found = body.get("event_id") if isinstance(body, dict) else None
    return found if isinstance(found, str) and found else new_event_id()


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {error['msg']}" if where else str(error["msg"])
