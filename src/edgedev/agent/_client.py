"""Asking a twin service over MQTT: a request, and its answer matched by ``event_id``.

The agent (``edgedev agent``) answers ``twin/get`` on ``twin/get/result`` and ``twin/update``
on ``twin/update/result``, with the request's ``event_id``. ``edgedev twin`` asks on a
connection of its own (:func:`ask`), the web view on the one it holds (:func:`ask_on`).
"""

from __future__ import annotations

import json
from typing import Any

import anyio

from edgedev.bus._client import Bus
from edgedev.bus._topics import Channel, Topics
from edgedev.bus._url import BrokerURL
from edgedev.wire import desired_update, new_event_id


class BrokerUnreachable(Exception):
    """The broker did not accept a connection in time: nobody could have answered."""


async def ask(
    broker: str | BrokerURL,
    topics: Topics,
    device: str,
    request: tuple[Channel, bytes, str],
    answer: Channel,
    timeout: float,
) -> dict[str, Any] | None:
    """Publish ``request`` (channel, payload, event id) and wait for the answer with that id.

    Returns:
        The answer, or ``None`` when the broker took the request and no agent answered.

    Raises:
        BrokerUnreachable: the broker was not reached within ``timeout``.
    """
    deadline = anyio.current_time() + timeout
    body: dict[str, Any] | None = None
    reached = False
    async with Bus(broker, client_id=f"edgedev-cli-{new_event_id()[:12]}") as bus:
        with anyio.move_on_after(timeout):
            await bus.wait_connected()
            reached = True
        if reached:
            left = max(deadline - anyio.current_time(), 0.0)
            body = await ask_on(bus, topics, device, request, answer, left)
    if not reached:  # raised out here: inside, the bus's task group would wrap it in a group
        raise BrokerUnreachable(broker)
    return body


async def ask_on(
    bus: Bus,
    topics: Topics,
    device: str,
    request: tuple[Channel, bytes, str],
    answer: Channel,
    timeout: float,
) -> dict[str, Any] | None:
    """:func:`ask` on a connection the caller owns (the web view's); ``None``: no answer."""
    channel, payload, event_id = request
    async with bus.subscribe(topics.device(device, answer)) as messages:
        bus.publish(topics.device(device, channel), payload)
        with anyio.move_on_after(timeout):
            async for message in messages:
                try:
                    body = json.loads(message.payload)
                except ValueError:
                    continue
                if isinstance(body, dict) and body.get("event_id") == event_id:
                    result: dict[str, Any] = body
                    return result
    return None


def desired_request(
    values: dict[str, str | None], version: int | None = None
) -> tuple[Channel, bytes, str]:
    """The ``twin/update`` request that sets desired values, as ``twin set`` sends it."""
    event_id = new_event_id()
    return Channel.TWIN_UPDATE, desired_update(values, version=version, event_id=event_id), event_id
