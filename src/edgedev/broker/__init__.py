"""An MQTT 3.1.1 broker that ships with edgedev and runs inside your event loop.

``edgedev demo`` and the test suite use it when no mosquitto is around; it needs nothing
beyond anyio and accepts topics starting with ``$`` (the default topic root is
``$hw/events``, which some Python brokers refuse). It is meant for development, tests and
small single-site setups: sessions are always clean and nothing is persisted.

Example:
    >>> import anyio
    >>> from edgedev.broker import EmbeddedBroker
    >>> async def main() -> None:
    ...     async with EmbeddedBroker(port=0) as broker:
    ...         print("clients can connect to", broker.url)
    ...         await broker.serve_forever()

From a shell: ``python -m edgedev.broker --port 1883``, or ``edgedev broker``: :data:`command`
is that command (``HELP``, ``add_parser``, ``run``), as ``edgedev``'s command line registers it.
"""

from __future__ import annotations

from edgedev.broker import _command as command
from edgedev.broker._server import EmbeddedBroker

__all__ = ("EmbeddedBroker", "command")
