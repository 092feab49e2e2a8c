"""The interrupt remapper's drain: ``IRQ.DRAIN_CMD`` as a fence, ``IRQ.DRAIN_STATUS.BUSY`` until it has passed.

Ref: ``IRQ.DRAIN_CMD`` and ``IRQ.DRAIN_STATUS`` of ``rtl/regs.rdl`` (a fence
on the messages in the remapper, as VT-d's invalidation wait is one on its
interrupt entry cache).

No stage of the remapper's pipeline stalls, so a drain is a count, not a
search: a message accepted in the cycle of the START pulse or before has had
every effect but a delivery's last step :data:`DRAIN_SETTLE` cycles later
(its fault record queued, and the registered head and level the register
bank reads updated, or counted as lost; its pending bit set; or its
interrupt out or queued). The drain then waits for the interrupts the
``irq_out`` queue holds at that moment, which leave in order (none passes a
queue that holds any). A replay queued, or on its way (``replays``), holds
the settling time. The settling count is a thermometer code, so that every
decision on it is a flip-flop or two.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DrainFence", "DRAIN_SETTLE"]

#: Cycles after a drain's START by which every message accepted until then has
#: had its effect: a fault record reaches the registers the bank reads 8 cycles
#: after its acceptance (effect stage at 4, the fault queue's two stages, its
#: level and head registered for the bank).
DRAIN_SETTLE = 9


class DrainFence(wiring.Component):
    """DRAIN_STATUS.BUSY of the drains started by ``start``.

    Parameters
    ----------
    settle : int
        Settling cycles (:data:`DRAIN_SETTLE`).
    depth : int
        Depth of the ``irq_out`` queue.

    Attributes
    ----------
    start : In(1)
        A drain starts (DRAIN_CMD.START); one started while another is in progress restarts it.
    replays : In(1)
        A replay is queued or on its way to the queue.
    irq_level : In(range(depth + 1)), irq_ready : In(1)
        The ``irq_out`` queue's level, and ``irq_out``'s ready (a pop whenever the queue holds any).
    busy : Out(1)
        DRAIN_STATUS.BUSY.
    """

    def __init__(self, *, settle=DRAIN_SETTLE, depth):
        self.settle, self.depth = settle, depth
        super().__init__({"start": In(1), "replays": In(1), "irq_level": In(range(depth + 1)), "irq_ready": In(1),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        wait = Signal(self.settle)             # settling cycles left: that many ones from bit 0
        left = Signal(range(self.depth + 1))   # interrupts queued before the drain, still to leave
        pop = self.irq_ready & (self.irq_level != 0)
        with m.If(self.start | (wait[0] & self.replays)):
            m.d.sync += wait.eq((1 << self.settle) - 1)
        with m.Elif(wait[0]):
            m.d.sync += wait.eq(wait >> 1)
            with m.If(~wait[1]):
                m.d.sync += left.eq(self.irq_level - pop)
        with m.Elif((left != 0) & pop):
            m.d.sync += left.eq(left - 1)
        m.d.comb += self.busy.eq(wait[0] | (left != 0))
        return m
