"""Test support for tests only: real brokers, free ports, documents, and pytest fixtures.

Nothing in edgedev's runtime imports this package, and it needs pytest (the ``test``
extra). The fixtures (``mqtt_broker``, ``mqtt_url``, ``fresh_broker``) are a pytest plugin
to opt in to: ``pytest -p edgedev.testing``, or in a ``conftest.py`` at the root of the
tests: ``pytest_plugins = ("edgedev.testing",)``.
"""

from __future__ import annotations

from edgedev._ports import free_port
from edgedev.testing._brokers import (
    BrokerHandle,
    EmbeddedBrokerThread,
    Mosquitto,
    ServerProcess,
    find_binary,
    make_broker,
    wait_for_port,
)
from edgedev.testing._documents import (
    API_VERSION,
    device,
    device_model,
    device_property,
    docs_example,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev.testing._plugin import fresh_broker, mqtt_broker, mqtt_url
from edgedev.testing._process import edgedev_process
from edgedev.testing._recorder import Recorder, topic_endswith
from edgedev.testing._reported import reported_values

__all__ = (
    "API_VERSION",
    "BrokerHandle",
    "EmbeddedBrokerThread",
    "Mosquitto",
    "Recorder",
    "ServerProcess",
    "device",
    "device_model",
    "device_property",
    "docs_example",
    "edgedev_process",
    "find_binary",
    "free_port",
    "fresh_broker",
    "load_documents",
    "make_broker",
    "mqtt_broker",
    "mqtt_url",
    "reported_values",
    "topic_endswith",
    "unique_root",
    "wait_for_port",
    "write_documents",
)
