"""A Sparkplug B primary host application made of pysparkplug, driven over stdin and stdout.

Runs in its own virtual environment (``.venv-sparkplug-host``: pysparkplug 0.6.1 wants
paho-mqtt 1.x, edgedev 2.x; see ``tests/sparkplug_host_requirements.txt``), so that the host
the tests talk to is none of edgedev's code: pysparkplug's ``Client`` connects, subscribes,
decodes every message (aliases resolved from the births it has seen) and encodes what the host
sends. What pysparkplug leaves to its user, the host application's session, is done here as
the Eclipse Sparkplug 3.0.0 specification says: the STATE will, retained, QoS 1, with
``online: false`` and the CONNECT's timestamp (4.2.3.2, 5.13), the subscriptions before the
STATE birth (5.3 step 2), then the STATE birth with the same timestamp, retained, QoS 1
(4.2.3.1, 5.3 step 3).

Prints one JSON line per message received on ``spBv1.0/GROUP/#``::

    {"topic": ..., "type": "DDATA", "edge": ..., "device": ..., "seq": 3, "timestamp": ...,
     "metrics": [{"name": ..., "alias": 7, "datatype": 9, "value": 21.5,
                  "historical": false, "null": false}]}

and ``{"ready": true}`` once its subscriptions are in place (its own first STATE came back).
Reads one JSON command per line::

    {"do": "state", "online": true}         publish this host's STATE (4.2.3)
    {"do": "rebirth"}                       NCMD Node Control/Rebirth = true (5.17)
    {"do": "dcmd", "device": ..., "alias": 7, "datatype": 9, "value": 23.0}   (6.4.24)
    {"do": "quit"}                          publish STATE offline and disconnect (5.14)

Usage: ``python sparkplug_host.py HOST PORT GROUP EDGE_NODE HOST_ID online|offline`` (the
STATE published first).
"""

from __future__ import annotations

import json
import sys
import threading
import time

import pysparkplug as spb


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _print(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _publish(client: spb.Client, message: spb.Message) -> None:
    """Publish, waiting (10 s at most) while paho reconnects after the broker went away."""
    for _ in range(100):
        try:
            client.publish(message)
            return
        except spb.MQTTError:
            time.sleep(0.1)
    client.publish(message)


def main() -> int:
    host, port, group, edge, host_id, first = sys.argv[1:7]
    client = spb.Client(client_id=f"pysparkplug-host-{host_id}")
    # pysparkplug raises on a message it cannot decode (a DDATA, or its own NCMD, before any
    # birth of this connection, as after a broker restart; a host asks for a rebirth then):
    # paho is to log it and go on, not end its network thread
    client._client.suppress_exceptions = True
    state_topic = spb.Topic(message_type=spb.MessageType.STATE, sparkplug_host_id=host_id)
    connected_at = spb.get_current_timestamp()
    client.set_will(
        spb.Message(
            topic=state_topic,
            payload=spb.State(timestamp=connected_at, online=False),
            qos=spb.QoS.AT_LEAST_ONCE,
            retain=True,
        )
    )

    ready = threading.Event()

    def state(online: bool, timestamp: int = connected_at) -> None:
        payload = spb.State(timestamp=timestamp, online=online)
        _publish(client, spb.Message(state_topic, payload, spb.QoS.AT_LEAST_ONCE, retain=True))

    def received(_client: spb.Client, message: spb.Message) -> None:
        payload = message.payload
        if message.topic.message_type == spb.MessageType.STATE and not ready.is_set():
            ready.set()  # our first STATE: both subscriptions are in place (made in order)
        line: dict[str, object] = {
            "topic": str(message.topic),
            "type": str(message.topic.message_type),
            "edge": message.topic.edge_node_id,
            "device": message.topic.device_id,
            "seq": getattr(payload, "seq", None),
            "timestamp": getattr(payload, "timestamp", None),
        }
        if isinstance(payload, spb.State):
            line["online"] = payload.online
        metrics = getattr(payload, "metrics", None)
        if isinstance(payload, spb.NDeath):
            metrics = (payload.bd_seq_metric,)
        if metrics is not None:
            line["metrics"] = [
                {
                    "name": m.name,
                    "alias": m.alias,
                    "datatype": int(m.datatype),
                    "value": _jsonable(m.value),
                    "historical": m.is_historical,
                    "null": m.is_null,
                }
                for m in metrics
            ]
        _print(line)

    client.subscribe(spb.Topic(group_id=group, message_type="#"), spb.QoS.AT_LEAST_ONCE, received)
    client.subscribe(state_topic, spb.QoS.AT_LEAST_ONCE, received)  # its own (4.2.3.1.1)
    client.connect(
        host, port=int(port), blocking=False, callback=lambda _c: state(first == "online")
    )
    if not ready.wait(10):
        _print({"error": "no STATE came back within 10 s"})
        return 1
    _print({"ready": True})

    for text in sys.stdin:
        command = json.loads(text)
        what = command["do"]
        if what == "state":
            state(bool(command["online"]))
        elif what == "rebirth":
            metric = spb.Metric(
                timestamp=spb.get_current_timestamp(),
                name="Node Control/Rebirth",
                datatype=spb.DataType.BOOLEAN,
                value=True,
            )
            topic = spb.Topic(group_id=group, message_type=spb.MessageType.NCMD, edge_node_id=edge)
            payload = spb.NCmd(timestamp=spb.get_current_timestamp(), metrics=(metric,))
            _publish(client, spb.Message(topic, payload, spb.QoS.AT_MOST_ONCE, False))
        elif what == "dcmd":
            metric = spb.Metric(
                timestamp=spb.get_current_timestamp(),
                name=None,
                alias=command["alias"],
                datatype=spb.DataType(command["datatype"]),
                value=command["value"],
            )
            topic = spb.Topic(
                group_id=group,
                message_type=spb.MessageType.DCMD,
                edge_node_id=edge,
                device_id=command["device"],
            )
            payload = spb.DCmd(timestamp=spb.get_current_timestamp(), metrics=(metric,))
            _publish(client, spb.Message(topic, payload, spb.QoS.AT_MOST_ONCE, False))
        elif what == "quit":
            state(False, spb.get_current_timestamp())
            client.disconnect()
            return 0
        _print({"done": what})
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
