"""Each tenant's share of the hypervisor's trapped control work, bounded as an arbiter bounds engine time.

Everything a guest does that traps (an emulated register of its virtual
device, a hypercall, a fast-path map that the host mediates) ends in
privileged register sequences on the one control path of the device, behind
one first-come, first-served :class:`~siov.sw.bus.BusLock`. The lock alone
stops a looping guest from starving the others, but it still lets that guest
take every other turn of the control path for as long as it likes.

:class:`TrapBudget` bounds that share the way the QoS arbiter bounds a
tenant's engine time (rtl/cmd/arbiter.py, the time-slice budget): time is cut
into windows of ``window`` device cycles, and each tenant may spend up to
``budget`` cycles of trapped work per window. Work that starts with budget left
runs to its end (a trap is never cut in half, as a descriptor is never
preempted); a tenant whose budget is spent waits, as a stalled vCPU would, for
the next window. Spending is counted in device cycles from the moment the
work starts, so queueing behind another tenant's work is not billed to it.

With a budget of ``b`` cycles per window ``w`` and ``n`` tenants trapping
without pause, each gets at least ``min(b, w / n)`` cycles per window, less the
one critical section that may straddle the window's start.
"""

import contextlib
import logging

__all__ = ["TrapBudget"]


class TrapBudget:
    """Per-tenant budgets of trapped control work.

    Parameters
    ----------
    bus : Bus
        For device time (:meth:`~siov.sw.bus.Bus.now`, :meth:`~siov.sw.bus.Bus.wait_cycles`).
    window : int
        Length of a budget window in device cycles.
    budget : int
        Device cycles of trapped work each tenant may start in one window.

    Attributes
    ----------
    throttled : dict
        Per tenant (the object: identity, not a name a new tenant could reuse), how many times
        its work waited for the next window.

    Raises
    ------
    ValueError
        If ``window`` or ``budget`` is not a positive integer, or ``budget`` exceeds ``window``.
    """

    def __init__(self, bus, window=20_000, budget=5_000):
        for name, v in (("window", window), ("budget", budget)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Trap budget {name} must be a positive integer, not {v!r}")
        if budget > window:
            raise ValueError(f"Trap budget of {budget} cycles exceeds its window of {window}")
        self.bus, self.window, self.budget = bus, window, budget
        self._spent = {}            # tenant -> (window index, cycles spent in it)
        self.throttled = {}
        self.log = logging.getLogger("siov.hv.traps")

    def spent(self, tenant):
        """Cycles ``tenant`` has spent in the current window."""
        w, cycles = self._spent.get(tenant, (None, 0))
        return cycles if w == self.bus.now() // self.window else 0

    @contextlib.asynccontextmanager
    async def charge(self, tenant):
        """Run the enclosed trapped work on ``tenant``'s budget, waiting for a new window if it is spent."""
        while self.spent(tenant) >= self.budget:
            self.throttled[tenant] = self.throttled.get(tenant, 0) + 1
            await self.bus.wait_cycles(self.window - self.bus.now() % self.window)
        start = self.bus.now()
        try:
            yield
        finally:
            w = start // self.window
            # work that straddles a window's start is billed to the window it started in
            prev_w, prev = self._spent.get(tenant, (w, 0))
            self._spent[tenant] = (w, (prev if prev_w == w else 0) + self.bus.now() - start)

    def forget(self, tenant):
        """Drop ``tenant``'s account (it was destroyed)."""
        self._spent.pop(tenant, None)
        self.throttled.pop(tenant, None)
