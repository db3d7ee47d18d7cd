"""DMI reports stay within EdgeCore's rate limit, and back off when it refuses them.

EdgeCore lets 1 request/s through with a burst of 100. To keep the test short, time is scaled:
the fake EdgeCore allows 40/s (burst 100) and the mapper's bucket 32/s (burst 20), the same
ratio as the defaults (0.8/s, burst 20, against 1/s).
"""

from __future__ import annotations

import itertools

import anyio
import pytest

from dmi_helpers import counter_docs, counter_drivers, dmi_mapper, socket_dir
from edgedev.dmi import TokenBucket
from edgedev.testing.dmi import FakeEdgeCore

pytestmark = pytest.mark.slow


async def test_200_devices_at_1s_never_exceed_the_limit_and_all_reach_edgecore(mqtt_url: str):
    docs = counter_docs(200, cycle=1000)
    with socket_dir() as sockets:
        core = FakeEdgeCore(
            f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1], rate=40, burst=100
        )
        ids = [f"default/c{i}" for i in range(200)]
        async with (
            core,
            dmi_mapper(
                mqtt_url,
                core,
                sockets,
                "counter",
                bucket=TokenBucket(rate=32, burst=20),
                drivers=counter_drivers(),
            ) as dmi,
        ):
            # 200 online states, then a status per device: 400 requests at 32/s
            await core.wait_for(lambda: all(core.state_of(i) == "online" for i in ids), timeout=30)
            await core.wait_for(lambda: all(core.reported(i) for i in ids), timeout=30)
            # and the values keep coming: each device's latest value is refreshed
            seen = {i: int(core.reported(i)["n0"]) for i in ids}
            await core.wait_for(
                lambda: all(int(core.reported(i)["n0"]) > seen[i] for i in ids), timeout=30
            )
            assert core.limited == 0
            assert dmi.sink.limited == 0
            # what the bucket promises: at most burst + rate x window in any window
            assert core.max_in_window(1.0) <= 20 + 32 + 1
            assert not core.invalid


async def test_a_limited_edgecore_gets_backoff_not_retries_at_once(mqtt_url: str):
    docs = counter_docs(30, cycle=200)
    with socket_dir() as sockets:
        # tighter than our bucket (default 0.8/s, burst 20): refusals will come
        core = FakeEdgeCore(
            f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1], rate=1, burst=5
        )
        async with (
            core,
            dmi_mapper(mqtt_url, core, sockets, "counter", drivers=counter_drivers()) as dmi,
        ):
            await core.wait_for(lambda: core.limited >= 1, timeout=20)
            refused = core.refused_at[0]
            await core.wait_for(lambda: core.requests[-1] > refused + 2, timeout=20)
            # the sink waited (1 s, doubling) instead of retrying at once
            after = [t for t in core.requests if t > refused]
            assert after[0] - refused >= 0.9
            assert dmi.sink.limited == core.limited
            assert core.limited <= 2
            accepted = len(core.statuses) + len(core.states)
            await core.wait_for(lambda: len(core.statuses) + len(core.states) > accepted)


async def test_a_registration_answer_larger_than_grpcs_default_4_mb_is_taken(mqtt_url: str):
    docs = counter_docs(300, cycle=60_000, properties=50)  # ~5.5 MB as EdgeCore encodes it
    with socket_dir() as sockets:
        core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
        async with (
            core,
            dmi_mapper(mqtt_url, core, sockets, "counter", drivers=counter_drivers()) as dmi,
        ):
            with anyio.fail_after(30):
                await dmi.sources["counter"].wait_registered()
            assert len(dmi.mapper.runners) == 300


async def test_200_devices_with_a_2s_state_report_stay_within_the_limit(mqtt_url: str):
    """Periodic states (stateReport.reportCycle) share the budget: spread, never over it."""
    docs = counter_docs(200, cycle=60_000)  # one reading each: the states are the traffic
    for doc in docs[1:]:
        doc["spec"]["stateReport"] = {"reportToCloud": True, "reportCycle": 2000}
    with socket_dir() as sockets:
        core = FakeEdgeCore(
            f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1], rate=40, burst=100
        )
        names = [f"c{i}" for i in range(200)]

        def states(name: str) -> list[float]:
            return [t for t, s in core.state_times if s.deviceName == name]

        async with (
            core,
            dmi_mapper(
                mqtt_url,
                core,
                sockets,
                "counter",
                bucket=TokenBucket(rate=32, burst=20),
                drivers=counter_drivers(),
            ),
        ):
            # online, then two periodic states each: 600 states and 200 twins at 32/s
            await core.wait_for(lambda: all(len(states(n)) >= 3 for n in names), timeout=90)
            assert all(core.reported(f"default/{n}") for n in names)  # twins still went
            assert core.limited == 0
            assert core.max_in_window(1.0) <= 20 + 32 + 1
            assert not core.invalid
            gaps = [b - a for n in names for a, b in itertools.pairwise(states(n))]
            assert min(gaps) >= 1.9  # never more often than the cycle, whatever the queue
