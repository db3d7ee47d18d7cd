"""Run the embedded broker until Ctrl-C: ``python -m edgedev.broker [--host H] [--port P]``.

It prints ``listening on mqtt://HOST:PORT`` on standard output once it accepts connections
(useful with ``--port 0``) and exits with status 0 on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import anyio

from edgedev.broker._server import EmbeddedBroker

logger = logging.getLogger("edgedev.broker")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m edgedev.broker",
        description="Run edgedev's embedded MQTT 3.1.1 broker until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=1883, help="TCP port; 0 lets the OS choose (default 1883)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO)",
    )
    return parser.parse_args(argv)


async def _serve(host: str, port: int) -> None:
    async with EmbeddedBroker(host, port) as broker:
        print(f"listening on {broker.url}", flush=True)
        if sys.platform == "win32":  # no signal receivers there: Ctrl-C raises instead
            await broker.serve_forever()
            return
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                logger.info("received %s, stopping", signal.Signals(signum).name)
                return


def main(argv: Sequence[str] | None = None) -> int:
    """Run the broker; return the process exit status."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        anyio.run(_serve, args.host, args.port)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
