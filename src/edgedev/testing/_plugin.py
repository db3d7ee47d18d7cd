"""pytest fixtures for tests of edgedev and of drivers (opt in: ``-p edgedev.testing``).

``mqtt_broker``: one broker for the session (mosquitto on a free port, or the embedded
broker where mosquitto is absent; ``EDGEDEV_TEST_BROKER=embedded`` or ``=mosquitto`` chooses).
``fresh_broker``: a broker of the test's own, which it may stop and start. ``mqtt_url``: the
session broker's URL. Tests that use any of them are marked ``broker``, so that ``pytest -m
broker`` runs every broker-facing test (once per broker, in CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgedev.testing._brokers import BrokerHandle, make_broker

_BROKER_FIXTURES = frozenset({"mqtt_broker", "mqtt_url", "fresh_broker"})


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``broker`` marker (for ``--strict-markers``)."""
    config.addinivalue_line("markers", "broker: needs an MQTT broker (edgedev.testing)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a broker fixture ``broker``."""
    for item in items:
        if _BROKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


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
