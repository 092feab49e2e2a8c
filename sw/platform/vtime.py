"""An asyncio event loop whose clock is virtual device time, in cycles.

The model backend runs host software and the Device model as ordinary
asyncio tasks; only the clock is different. ``loop.time()`` returns the
device cycle, and whenever every task is waiting, the loop jumps straight to
the next scheduled timer instead of sleeping, so ``asyncio.sleep(n)`` lets
``n`` cycles pass in no wall-clock time. Timers due at the same cycle run in
the order they were scheduled, so a run is deterministic.

If every task waits for something that no timer will ever bring (an event
nobody sets), a real loop would block forever; this one raises
:class:`Deadlock` naming the cycle instead.

Why not a library: SimPy drives generator functions, not ``async def``
coroutines, so host code could not be shared with cocotb; the virtual-clock
helpers of asyncio test frameworks patch a loop for tests and keep wall-clock
timeouts. Replacing the selector's wait is the whole mechanism, about twenty
lines, and leaves asyncio's scheduling untouched.
"""

import asyncio
import heapq
import itertools
import selectors

__all__ = ["VirtualTimeLoop", "Deadlock", "run", "elapse"]


class Deadlock(RuntimeError):
    """Every task waits and no timer is scheduled: nothing can ever happen again."""


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that never blocks: a wait of ``timeout`` advances the loop's clock by it.

    A model run does no I/O; the loop's own wake-up pipe (a callback queued from another
    thread, a signal) is the only file it watches. So the selector asks the kernel only
    every :data:`POLL_EVERY` turns of the loop, and whenever the loop would otherwise wait
    for nothing, instead of a system call on every turn."""

    #: Turns of the loop between two looks at its wake-up pipe.
    POLL_EVERY = 64

    def __init__(self, loop):
        super().__init__()
        self._loop = loop
        self._turns = 0

    def select(self, timeout=None):
        if timeout is None:
            # No ready callback and no timer: only I/O could wake the loop, and a
            # model run does none. Check once without blocking before giving up.
            ready = super().select(0)
            if ready:
                return ready
            raise Deadlock(f"all tasks are waiting and nothing is scheduled "
                           f"(device cycle {self._loop.time():.0f})")
        if timeout > 0:
            self._loop._advance(timeout)
        self._turns += 1
        if self._turns % self.POLL_EVERY:
            return []
        return super().select(0)


class _FifoTimer(asyncio.TimerHandle):
    """A timer ordered by due time, then by when it was scheduled (asyncio's own
    handles compare by due time alone, so equal times come out in heap order)."""

    __slots__ = ("_seq",)

    def __init__(self, seq, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seq = seq

    def __lt__(self, other):
        return (self._when, self._seq) < (other._when, other._seq)

    def __le__(self, other):
        return (self._when, self._seq) <= (other._when, other._seq)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """asyncio loop on virtual time: ``time()`` is the device cycle, starting at 0."""

    def __init__(self):
        self._virtual_now = 0.0
        self._timer_seq = itertools.count()
        super().__init__(selector=_JumpingSelector(self))
        # Timers due within this of now run now; cycles are whole numbers.
        self._clock_resolution = 1e-6

    def call_at(self, when, callback, *args, context=None):
        self._check_closed()
        timer = _FifoTimer(next(self._timer_seq), when, callback, args, self, context=context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def time(self):
        return self._virtual_now

    def skip(self, dt):
        """Let ``dt`` cycles pass without a trip through the loop, if nothing else would run
        in them: no callback is ready and no timer is due before the end (a timer due at
        the very end still runs first, as it would after ``asyncio.sleep(dt)``).
        Returns False, and does nothing, otherwise."""
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:     # as the loop's own turn drops them
            heapq.heappop(scheduled)._scheduled = False
            self._timer_cancelled_count -= 1
        if self._ready or (scheduled and scheduled[0]._when <= self._virtual_now + dt):
            return False
        self._virtual_now += dt
        return True

    def _advance(self, dt):
        self._virtual_now += dt


async def elapse(dt):
    """``await asyncio.sleep(dt)``, without the trip through the loop when
    :meth:`VirtualTimeLoop.skip` can stand in for it."""
    loop = asyncio.get_running_loop()
    if dt > 0 and isinstance(loop, VirtualTimeLoop) and loop.skip(dt):
        return
    await asyncio.sleep(dt)


def run(coro):
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop` and return its result."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        # Cancel whatever the run left behind (device model processes), then close.
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
