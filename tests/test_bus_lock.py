"""BusLock: first come, first served, so no task can hold the device's control path for ever.

Every privileged register sequence of the host (queue-status reads, queue
commands, fast-path maps, hypercalls, fault polling) goes through one
:class:`~siov.sw.bus.BusLock`. A guest that traps in a loop takes it again
and again; the lock must hand it to the task that has waited longest, or a
waiting tenant starves for as long as the looping one keeps trapping.
"""

import pytest

from siov.rtl.params import DeviceParams
from siov.sw.bus import BusLock
from siov.sw.platform import vtime
from siov.sw.platform.model import ModelBus

#: Device cycles one locked step of the attacker holds the lock (an MMIO round trip or two).
HOLD = 20
#: The attacker stops by itself here, so that an unfair lock fails the test instead of hanging it.
GIVE_UP = 100_000


def _run(program):
    async def main():
        return await program(ModelBus(DeviceParams()))
    return vtime.run(main())


def test_a_waiter_gets_the_lock_before_a_task_that_takes_it_again():
    """An attacker releasing and retaking the lock back to back; the victim must get it next."""
    async def program(bus):
        lock = BusLock(bus)
        stop = bus.event()
        held_by_attacker = 0

        async def attacker():
            nonlocal held_by_attacker
            while not stop.is_set() and bus.now() < GIVE_UP:
                async with lock:
                    held_by_attacker += 1
                    await bus.wait_cycles(HOLD)

        task = bus.spawn(attacker())
        await bus.wait_cycles(5)
        asked = bus.now()
        async with lock:
            waited = bus.now() - asked
        stop.set()
        await task
        return waited, held_by_attacker

    waited, held = _run(program)
    assert held >= 1
    assert waited <= HOLD, f"the victim waited {waited} cycles behind a lock held {HOLD} at a time"


def test_waiters_are_served_in_arrival_order():
    async def program(bus):
        lock = BusLock(bus)
        order = []

        async def taker(tag, delay):
            await bus.wait_cycles(delay)
            async with lock:
                order.append(tag)
                await bus.wait_cycles(10)

        tasks = [bus.spawn(taker(t, d)) for t, d in (("a", 0), ("c", 3), ("b", 2), ("d", 4))]
        for t in tasks:
            await t
        return order

    assert _run(program) == ["a", "b", "c", "d"]


def test_a_cancelled_waiter_does_not_keep_the_lock():
    """A waiter cancelled while queued must neither take the lock later nor block the next one."""
    async def program(bus):
        lock = BusLock(bus)
        got = []

        async def holder():
            async with lock:
                await bus.wait_cycles(50)

        async def taker(tag):
            async with lock:
                got.append(tag)

        h = bus.spawn(holder())
        await bus.wait_cycles(1)
        doomed = bus.spawn(taker("doomed"))
        later = bus.spawn(taker("later"))
        await bus.wait_cycles(1)
        doomed.cancel()
        await h
        await later
        with pytest.raises(BaseException):
            await doomed
        return got, lock.locked

    got, locked = _run(program)
    assert got == ["later"]
    assert not locked
