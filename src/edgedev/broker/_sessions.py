"""Broker state without I/O: topic validation, the subscription table, retained messages.

Matching uses :func:`paho.mqtt.client.topic_matches_sub`, plus the MQTT 3.1.1 rule (section
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


class SubscriptionTable(Generic[K]):
    """Which subscriber holds which topic filter at which QoS.

    Subscribers are identified by any hashable key (the server uses its connection objects, so
    a session that is being taken over never touches the new session's entries). Results of
    :meth:`match` are cached per topic until the table changes.
    """

    def __init__(self) -> None:
        """Create an empty table."""
        self._exact: dict[str, dict[K, int]] = {}
        self._wild: dict[str, dict[K, int]] = {}
        self._by_key: dict[K, dict[str, int]] = {}
        self._cache: dict[str, tuple[tuple[K, int], ...]] = {}

    def __len__(self) -> int:
        """The number of (subscriber, filter) pairs."""
        return sum(len(filters) for filters in self._by_key.values())

    def subscribe(self, key: K, topic_filter: str, qos: int) -> None:
        """Add a subscription, or replace the QoS of an existing one."""
        table = self._wild if _has_wildcard(topic_filter) else self._exact
        table.setdefault(topic_filter, {})[key] = qos
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
        found: dict[K, int] = dict(self._exact.get(topic, {}))
        for topic_filter, subscribers in self._wild.items():
            if topic_matches(topic_filter, topic):
                for key, qos in subscribers.items():
                    if qos > found.get(key, -1):
                        found[key] = qos
        result = tuple(found.items())
        if len(self._cache) >= _MATCH_CACHE_SIZE:
            self._cache.clear()
        self._cache[topic] = result
        return result

    def _forget(self, key: K, topic_filter: str) -> None:
        table = self._wild if _has_wildcard(topic_filter) else self._exact
        subscribers = table[topic_filter]
        del subscribers[key]
        if not subscribers:
            del table[topic_filter]


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
