"""Test support shipped as public API: real brokers, free ports, and pytest fixtures.

Importing this module needs pytest only for :mod:`edgedev.testing._plugin`, which pytest
loads by itself through the ``pytest11`` entry point.
"""

from __future__ import annotations

from edgedev.testing._brokers import (
    BrokerHandle,
    EmbeddedBrokerThread,
    Mosquitto,
    free_port,
    make_broker,
    wait_for_port,
)
from edgedev.testing._documents import (
    API_VERSION,
    device,
    device_model,
    device_property,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev.testing._process import edgedev_process
from edgedev.testing._recorder import Recorder, topic_endswith

__all__ = (
    "API_VERSION",
    "BrokerHandle",
    "EmbeddedBrokerThread",
    "Mosquitto",
    "Recorder",
    "device",
    "device_model",
    "device_property",
    "edgedev_process",
    "free_port",
    "load_documents",
    "make_broker",
    "topic_endswith",
    "unique_root",
    "wait_for_port",
    "write_documents",
)
