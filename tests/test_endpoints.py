"""The shared-transport registry and fair turns: what drivers rely on."""

from __future__ import annotations

import anyio
import pytest

from edgedev.drivers import Endpoints, Transport, Turns


class Fake(Transport):
    def __init__(self) -> None:
        self.closed = False
        self.broken = False
        self.running = anyio.Event()

    @property
    def alive(self) -> bool:
        return not self.broken

    async def run(self) -> None:
        self.running.set()
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


async def test_devices_on_one_endpoint_share_a_transport_closed_by_the_last() -> None:
    opened: list[Fake] = []

    async def open_() -> Fake:
        opened.append(Fake())
        return opened[-1]

    async with Endpoints() as endpoints:
        one = await endpoints.acquire(("x", 1), open_)
        two = await endpoints.acquire(("x", 1), open_)
        other = await endpoints.acquire(("x", 2), open_)
        assert one.transport is two.transport is opened[0]
        assert other.transport is opened[1] and endpoints.users(("x", 1)) == 2
        with anyio.fail_after(1):
            await opened[0].running.wait()  # background work runs while entered
        await one.release()
        await one.release()  # idempotent
        assert not opened[0].closed
        await two.release()
        assert opened[0].closed and len(endpoints) == 1
    assert opened[1].closed, "leaving the registry closes what is still open"


async def test_a_broken_transport_is_replaced_for_new_users_and_closed_by_its_last() -> None:
    async def open_() -> Fake:
        return Fake()

    endpoints = Endpoints()  # not entered: shares and closes, runs nothing
    old = await endpoints.acquire("k", open_)
    old.transport.broken = True
    new = await endpoints.acquire("k", open_)
    assert new.transport is not old.transport
    assert len(endpoints) == 2
    await old.release()
    assert old.transport.closed and len(endpoints) == 1
    await new.release()


async def test_devices_asking_while_it_opens_share_one_attempt_and_its_failure() -> None:
    attempts = 0
    gate = anyio.Event()

    async def open_() -> Fake:
        nonlocal attempts
        attempts += 1
        await gate.wait()
        raise OSError("refused")

    endpoints = Endpoints()
    errors: list[BaseException] = []

    async def connect() -> None:
        try:
            await endpoints.acquire("k", open_)
        except OSError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(connect)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert attempts == 1 and len(errors) == 5
    assert len(endpoints) == 0


async def test_turns_are_first_come_first_served_with_writes_first() -> None:
    turns = Turns(1)
    order: list[str] = []
    await turns.acquire()  # a request in flight

    async def request(name: str, urgent: bool) -> None:
        async with turns.turn(urgent=urgent):
            order.append(name)

    async with anyio.create_task_group() as tg:
        for name in ("read1", "read2", "read3"):
            tg.start_soon(request, name, False)
            await anyio.wait_all_tasks_blocked()
        tg.start_soon(request, "write", True)
        await anyio.wait_all_tasks_blocked()
        assert turns.waiting == 4
        turns.release()
    # the write waited for the request in flight only, then the reads in their order
    assert order == ["write", "read1", "read2", "read3"]


async def test_a_waiter_cancelled_as_its_turn_comes_passes_it_on() -> None:
    turns = Turns(1)
    await turns.acquire()
    got = anyio.Event()
    cancelled = anyio.CancelScope()

    async def doomed() -> None:
        with cancelled:
            async with turns.turn():
                await anyio.sleep_forever()

    async def waiter() -> None:
        await turns.acquire()
        got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(doomed)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        turns.release()  # handed to doomed ...
        cancelled.cancel()  # ... which is cancelled before (or after) it gets it
        with anyio.fail_after(1):
            await got.wait()
    assert turns.waiting == 0


def test_turns_need_a_slot() -> None:
    with pytest.raises(ValueError, match="slot"):
        Turns(0)


async def test_devices_waiting_for_the_opening_count_as_users_when_it_opens() -> None:
    gate = anyio.Event()
    seen: list[int] = []
    endpoints = Endpoints()

    async def open_() -> Fake:
        await gate.wait()
        return Fake()

    async def first() -> None:
        lease = await endpoints.acquire("k", open_)
        seen.append(endpoints.users("k"))  # the opener's first request knows it shares
        await lease.release()

    async def other() -> None:
        lease = await endpoints.acquire("k", open_)
        await lease.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        for _ in range(3):
            tg.start_soon(other)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert seen == [4]
    assert len(endpoints) == 0  # every lease released: closed


async def test_a_device_cancelled_while_waiting_is_not_counted() -> None:
    gate = anyio.Event()
    endpoints = Endpoints()

    async def open_() -> Fake:
        await gate.wait()
        return Fake()

    async with anyio.create_task_group() as tg:
        tg.start_soon(endpoints.acquire, "k", open_)  # opens
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(endpoints.acquire, "k", open_)  # waits, and stays
        await anyio.wait_all_tasks_blocked()
        waiter = anyio.CancelScope()

        async def doomed() -> None:
            with waiter:
                await endpoints.acquire("k", open_)

        tg.start_soon(doomed)
        await anyio.wait_all_tasks_blocked()
        waiter.cancel()
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert endpoints.users("k") == 2  # the opener and the other waiter


async def test_an_opener_cancelled_leaves_the_others_to_open_anew() -> None:
    """The first device's deadline ends its opening: the devices waiting for that attempt
    are not cancelled with it (their tasks would end, silently); one of them opens."""
    attempts = 0
    gate = anyio.Event()
    endpoints = Endpoints()

    async def open_() -> Fake:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await anyio.sleep_forever()  # a server too slow for the first device's deadline
        await gate.wait()
        return Fake()

    leases = []

    async def waiter() -> None:
        leases.append(await endpoints.acquire("k", open_))

    async with anyio.create_task_group() as tg:
        opener = anyio.CancelScope()

        async def first() -> None:
            with opener:
                await endpoints.acquire("k", open_)

        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        for _ in range(3):
            tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        opener.cancel()
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert attempts == 2
    assert len(leases) == 3 and len({id(lease.transport) for lease in leases}) == 1
    assert endpoints.users("k") == 3
