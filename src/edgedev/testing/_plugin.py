"""pytest fixtures for tests of edgedev and of drivers (opt in: ``-p edgedev.testing``).

``mqtt_broker``: one broker for the session (mosquitto on a free port, or the embedded
broker where mosquitto is absent). ``fresh_broker``: a broker of the test's own, which it may
stop and start. ``mqtt_url``: the session broker's URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgedev.testing._brokers import BrokerHandle, make_broker


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[BrokerHandle]:
    """A broker shared by the whole session; do not stop it (use ``fresh_broker``)."""
    broker = make_broker()
    broker.start()
    yield broker
    broker.close()


@pytest.fixture
def mqtt_url(mqtt_broker: BrokerHandle) -> str:
    """URL of the session broker."""
    return mqtt_broker.url


@pytest.fixture
def fresh_broker() -> Iterator[BrokerHandle]:
    """A broker for one test, free to stop and restart on the same port."""
    broker = make_broker()
    broker.start()
    yield broker
    broker.close()
