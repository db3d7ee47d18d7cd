"""How an edgedev process runs: until its work is done, or until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable

import anyio

log = logging.getLogger("edgedev.cli")


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
