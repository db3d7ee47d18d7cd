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
from edgedev.testing._process import edgedev_process
from edgedev.testing._recorder import Recorder, topic_endswith

__all__ = (
    "BrokerHandle",
    "EmbeddedBrokerThread",
    "Mosquitto",
    "Recorder",
    "edgedev_process",
    "free_port",
    "make_broker",
    "topic_endswith",
    "wait_for_port",
)
