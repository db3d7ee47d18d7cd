"""Broker state without I/O: topic validation, the subscription table, retained messages.

The subscription table is a trie of topic levels; :func:`topic_matches` (one filter, one topic)
uses :func:`paho.mqtt.client.topic_matches_sub`. Both follow the MQTT 3.1.1 rule (section
4.7.2) that a filter starting with a wildcard (``#``, ``+/...``) does not match a topic
starting with ``$``: ``#`` does not see ``$hw/events/...``, but ``$hw/events/#`` does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from paho.mqtt.client import topic_matches_sub

__all__ = (
    "RetainedMessage",
    "RetainedStore",
    "SubscriptionTable",
    "is_valid_topic_filter",
    "topic_matches",
)

K = TypeVar("K", bound=Hashable)

_MATCH_CACHE_SIZE: Final = 4096


def is_valid_topic_filter(topic_filter: str) -> bool:
    """Whether ``topic_filter`` is a well-formed filter (MQTT 3.1.1, section 4.7.1).

    ``#`` must be a whole level and the last one; ``+`` must be a whole level.
    """
    if not topic_filter or "\x00" in topic_filter:
        return False
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            return False
        if "+" in level and level != "+":
            return False
    return True


def _has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether the topic name ``topic`` matches ``topic_filter``.

    Examples:
        >>> topic_matches("$hw/events/device/+/+/twin/update", "$hw/events/device/ns/a/twin/update")
        True
        >>> topic_matches("#", "$hw/events/device/ns/a/state/update")
        False
    """
    if topic.startswith("$") and topic_filter[:1] in ("#", "+"):
        return False
    return bool(topic_matches_sub(topic_filter, topic))


class _Node(Generic[K]):
    """One level of the subscription trie: its children by level, and the filters ending here."""

    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K]] = {}
        self.subscribers: dict[K, int] = {}


class SubscriptionTable(Generic[K]):
    """Which subscriber holds which topic filter at which QoS.

    Filters are kept in a trie, one node per topic level, so that matching a topic visits only
    the filters that can match it (its own levels, ``+`` and ``#``), never the whole table:
    one client holding 100,000 wildcard filters costs the others nothing unless its filters
    match their topics.

    Subscribers are identified by any hashable key (the server uses its connection objects, so
    a session that is being taken over never touches the new session's entries). Results of
    :meth:`match` are cached per topic until the table changes.
    """

    def __init__(self) -> None:
        """Create an empty table."""
        self._root: _Node[K] = _Node()
        self._by_key: dict[K, dict[str, int]] = {}
        self._cache: dict[str, tuple[tuple[K, int], ...]] = {}

    def __len__(self) -> int:
        """The number of (subscriber, filter) pairs."""
        return sum(len(filters) for filters in self._by_key.values())

    def count(self, key: K) -> int:
        """The number of filters ``key`` holds."""
        return len(self._by_key.get(key, ()))

    def holds(self, key: K, topic_filter: str) -> bool:
        """Whether ``key`` holds ``topic_filter``."""
        return topic_filter in self._by_key.get(key, ())

    def subscribe(self, key: K, topic_filter: str, qos: int) -> None:
        """Add a subscription, or replace the QoS of an existing one."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        node.subscribers[key] = qos
        self._by_key.setdefault(key, {})[topic_filter] = qos
        self._cache.clear()

    def unsubscribe(self, key: K, topic_filter: str) -> bool:
        """Remove one subscription; return whether it existed."""
        filters = self._by_key.get(key)
        if filters is None or filters.pop(topic_filter, None) is None:
            return False
        if not filters:
            del self._by_key[key]
        self._forget(key, topic_filter)
        self._cache.clear()
        return True

    def remove(self, key: K) -> None:
        """Remove every subscription of ``key``."""
        filters = self._by_key.pop(key, None)
        if filters:
            for topic_filter in filters:
                self._forget(key, topic_filter)
            self._cache.clear()

    def subscriptions(self, key: K) -> dict[str, int]:
        """The filters of ``key`` with their granted QoS (a copy)."""
        return dict(self._by_key.get(key, {}))

    def match(self, topic: str) -> tuple[tuple[K, int], ...]:
        """Subscribers of ``topic``, each once with the highest QoS among its matching filters."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        found: dict[K, int] = {}

        def add(subscribers: dict[K, int]) -> None:
            for key, qos in subscribers.items():
                if qos > found.get(key, -1):
                    found[key] = qos

        levels = topic.split("/")
        last = len(levels)
        # Wildcards in the first level never match a topic starting with "$" (MQTT 4.7.2).
        wild_first = not topic.startswith("$")
        stack: list[tuple[_Node[K], int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            children = node.children
            wild = depth > 0 or wild_first
            every = children.get("#") if wild else None
            if every is not None:  # "a/#" matches "a" and everything below it
                add(every.subscribers)
            if depth == last:
                add(node.subscribers)
                continue
            exact = children.get(levels[depth])
            if exact is not None:
                stack.append((exact, depth + 1))
            one = children.get("+") if wild else None
            if one is not None:
                stack.append((one, depth + 1))
        result = tuple(found.items())
        if len(self._cache) >= _MATCH_CACHE_SIZE:
            self._cache.clear()
        self._cache[topic] = result
        return result

    def _forget(self, key: K, topic_filter: str) -> None:
        path: list[tuple[_Node[K], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            path.append((node, level))
            node = node.children[level]
        del node.subscribers[key]
        # Prune the branch back to the last node still in use.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.subscribers or child.children:
                break
            del parent.children[level]


@dataclass(frozen=True, slots=True)
class RetainedMessage:
    """The last retained message published on one topic."""

    topic: str
    payload: bytes
    qos: int


class RetainedStore:
    """The retained message of every topic that has one."""

    def __init__(self) -> None:
        """Create an empty store."""
        self._messages: dict[str, RetainedMessage] = {}

    def __len__(self) -> int:
        """The number of topics with a retained message."""
        return len(self._messages)

    def store(self, topic: str, payload: bytes, qos: int) -> None:
        """Keep ``payload`` as the retained message of ``topic``; an empty payload deletes it."""
        if payload:
            self._messages[topic] = RetainedMessage(topic, payload, qos)
        else:
            self._messages.pop(topic, None)

    def dump(self) -> bytes:
        """Every retained message as JSON (payloads in base64), for :meth:`restore`."""
        entries = [
            {"topic": m.topic, "qos": m.qos, "payload": base64.b64encode(m.payload).decode()}
            for m in self._messages.values()
        ]
        return json.dumps(entries, separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        """Add the messages of a :meth:`dump`.

        Raises:
            ValueError: ``data`` is not a dump (nothing is added then).
        """
        try:
            entries = json.loads(data)
            messages = [
                RetainedMessage(str(e["topic"]), base64.b64decode(e["payload"]), int(e["qos"]))
                for e in entries
            ]
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not a dump of retained messages: {exc}") from None
        for message in messages:
            self.store(message.topic, message.payload, min(max(message.qos, 0), 2))

    def get(self, topic: str) -> RetainedMessage | None:
        """The retained message of ``topic``, if any."""
        return self._messages.get(topic)

    def matching(self, topic_filter: str) -> list[RetainedMessage]:
        """Retained messages whose topic matches ``topic_filter``."""
        if not _has_wildcard(topic_filter):
            message = self._messages.get(topic_filter)
            return [] if message is None else [message]
        return [m for m in self._messages.values() if topic_matches(topic_filter, m.topic)]
