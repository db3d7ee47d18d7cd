"""What every command shares: options, logging, loading files, running until a signal."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

import anyio

from edgedev._errors import ConfigError, PluginError, Problem
from edgedev.bus._topics import DEFAULT_ROOT
from edgedev.bus._url import DEFAULT_BROKER, BrokerURL
from edgedev.config._spec import DeviceSpec
from edgedev.loader import load_devices

log = logging.getLogger("edgedev.cli")


def broker_url(text: str) -> str:
    """Parse ``--broker``: a valid broker URL, for argparse."""
    try:
        BrokerURL.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_bus_options(parser: argparse.ArgumentParser) -> None:
    """``--broker`` and ``--topic-root``, which every command that talks MQTT takes."""
    parser.add_argument(
        "--broker",
        type=broker_url,
        default=os.environ.get("EDGEDEV_BROKER", DEFAULT_BROKER),
        metavar="URL",
        help=f"MQTT broker, mqtt://HOST:PORT (env EDGEDEV_BROKER, default {DEFAULT_BROKER})",
    )
    parser.add_argument(
        "--topic-root",
        default=os.environ.get("EDGEDEV_TOPIC_ROOT", DEFAULT_ROOT),
        metavar="ROOT",
        help=f"topic root (env EDGEDEV_TOPIC_ROOT, default {DEFAULT_ROOT})",
    )


def add_file_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``-f FILE...``: Device and DeviceModel YAML files (repeatable)."""
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        action="extend",
        nargs="+",
        required=required,
        default=[],
        metavar="FILE",
        help="Device and DeviceModel YAML files",
    )


def load_or_report(
    files: Sequence[str], warnings: list[Problem] | None = None
) -> list[DeviceSpec] | None:
    """Load ``files``; print every problem to stderr and return ``None`` when invalid.

    ``warnings`` receives what loads but deserves a look (logged when not given).
    """
    try:
        return load_devices(files, warnings=warnings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return None
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_async(
    main: Callable[[], Awaitable[int | None]],
    *,
    stop: Callable[[], None] | None = None,
    grace: float = 10.0,
) -> int:
    """Run ``main`` until it returns, or until SIGINT/SIGTERM stops it (exit code 0).

    The first signal calls ``stop`` (which makes ``main`` finish its work and return), or
    cancels ``main`` when there is no ``stop``. Either way ``main`` has ``grace`` seconds to
    end; after that, or at a second signal, the process exits at once with code 1.
    """

    async def runner() -> int:
        code: int | None = 0
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:
                body_scope = anyio.CancelScope()

                async def body() -> None:
                    nonlocal code
                    with body_scope:
                        code = await main()
                    tg.cancel_scope.cancel()

                async def watchdog() -> None:
                    await anyio.sleep(grace)
                    log.error("still stopping after %g s: exiting now", grace)
                    os._exit(1)

                tg.start_soon(body)
                stopping = False
                async for signum in signals:
                    if stopping:
                        log.warning("received %s again: exiting now", signal.Signals(signum).name)
                        os._exit(1)
                    log.info("received %s, stopping", signal.Signals(signum).name)
                    if stop is None:
                        body_scope.cancel()
                    else:
                        stop()
                    stopping = True
                    tg.start_soon(watchdog)
        return code or 0

    try:
        return anyio.run(runner)
    except KeyboardInterrupt:
        return 130
