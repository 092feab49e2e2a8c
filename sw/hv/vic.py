"""The virtual interrupt controller of one VM or container.

The hypervisor routes every ``irq_out`` message {destination, vector} to the
tenant that owns the destination ID and raises the vector here. A guest
driver waits for a vector with :meth:`VirtualInterruptController.wait` (in
device cycles, on the backend's events) and acknowledges it, as an x86 guest
would its local APIC's IRR/ISR.
"""

import collections

__all__ = ["VirtualInterruptController"]


class VirtualInterruptController:
    """Pending vectors of one tenant, with the device cycle each was raised.

    Attributes
    ----------
    log : list of (vector, cycle)
        Every vector raised, in order.
    """

    def __init__(self, bus):
        self.bus = bus
        self.log = []
        self.pending = collections.Counter()
        self._events = {}

    def _event(self, vector):
        if vector not in self._events:
            self._events[vector] = self.bus.event()
        return self._events[vector]

    def raise_vector(self, vector, cycle):
        """Make ``vector`` pending (the hypervisor's interrupt routing calls it)."""
        self.log.append((vector, cycle))
        self.pending[vector] += 1
        self._event(vector).set()

    def ack(self, vector):
        """Take one pending occurrence of ``vector``; False if none was pending."""
        if not self.pending[vector]:
            return False
        self.pending[vector] -= 1
        if not self.pending[vector]:
            self._event(vector).clear()
        return True

    async def wait(self, vector, timeout_cycles):
        """Until ``vector`` is pending (then acknowledge it); False after ``timeout_cycles``."""
        if not await self.bus.wait_event(self._event(vector), timeout_cycles):
            return False
        return self.ack(vector)
