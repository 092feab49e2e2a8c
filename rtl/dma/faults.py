"""The DMA tracker's fault log: blocked requests' records in a quota'd queue, shown in FAULT_* registers.

A blocked request offers its record (VT-d style: {reason, PASID, page,
write}) with its source, its domain or ``num_domains`` for a PASID bound to
none, in the cycle of its decision. The queue is the
:class:`~siov.rtl.faultq.FaultQueue` the interrupt unit's fault log shares
(two stages: it registers the offer, the decision and the queue's flags
sitting far apart, and takes it or counts it lost :data:`FAULT_LATENCY`
cycles later); a source holds at most ``quota`` records at once, and a
fault not queued sets the sticky overflow flag and is counted, in total and
in its source's lost count (the FAULT_LOST window).

The head record as FAULT_REC0/1 show it (zeros when the queue is empty) and
the queue's level are registered, so that the registers' read mux starts at
flip-flops. They lag the queue by a cycle: a read that follows a POP samples
its registers at least four cycles after the POP's pulse (the bus makes one
access at a time and the front end answers a write two cycles after its
pulse).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import regmap
from ..csr.bus import CsrSignature
from ..faultq import FaultQueue
from .common import DOMAIN_BITS, FAULT_LAYOUT

__all__ = ["TrackerFaults", "FAULT_LATENCY"]

#: Cycles from a fault's decision (stage S) to the fault queue's decision to
#: queue it or count it lost (against the queue as it stood at that cycle's
#: start): the queue's two stages.
FAULT_LATENCY = 2


class TrackerFaults(wiring.Component):
    """The fault queue of the DMA tracker and its registers' values.

    Parameters
    ----------
    num_domains : int
        Sources are the domains and one for faults of no domain.
    depth : int
        Records the queue holds (a power of two 2..128, checked by the tracker).
    quota : int or None
        Records per source (:class:`~siov.rtl.faultq.FaultQueue`).

    Attributes
    ----------
    offer : In(1), record : In(FAULT_LAYOUT), source : In(7)
        A blocked request's fault (``offer`` is the decision's ``block``).
    pop : In(1), clear_overflow : In(1)
        FAULT_CTRL.POP and FAULT_CTRL.CLEAR_OVERFLOW pulses.
    lost : In(CsrSignature)
        The FAULT_LOST window.
    head : Out({valid, record}), level : Out(8), overflow : Out(1), ovf_count : Out(32)
        FAULT_REC0/1, FAULT_STATUS and FAULT_OVF_COUNT's values.
    popped : Out(1), decided : Out(1)
        A record leaves the queue; the queue takes or refuses a fault.
    """

    def __init__(self, num_domains, *, depth, quota=None):
        lost_width = max(2, (regmap.EXTERNALS["DMA.FAULT_LOST"].size - 1).bit_length())
        #: The queue (checks the quota).
        self.queue = FaultQueue(width=FAULT_LAYOUT.size, depth=depth, sources=num_domains + 1, quota=quota,
                                stages=FAULT_LATENCY, lost_addr_width=lost_width)
        self.depth, self.quota = depth, self.queue.quota
        super().__init__({
            "offer": In(1), "record": In(FAULT_LAYOUT), "source": In(DOMAIN_BITS + 1),
            "pop": In(1), "clear_overflow": In(1), "lost": In(CsrSignature(lost_width)),
            "head": Out(data.StructLayout({"valid": 1, "record": FAULT_LAYOUT})),
            "level": Out(8), "overflow": Out(1), "ovf_count": Out(32),
            "popped": Out(1), "decided": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = fq = self.queue
        m.d.comb += [fq.push.valid.eq(self.offer), fq.push.payload.record.eq(self.record),
                     fq.push.payload.source.eq(self.source), fq.clear_overflow.eq(self.clear_overflow),
                     fq.head.ready.eq(self.pop), self.popped.eq(fq.popped), self.decided.eq(fq.taken | fq.dropped),
                     self.overflow.eq(fq.overflow), self.ovf_count.eq(fq.ovf_count)]
        wiring.connect(m, wiring.flipped(self.lost), fq.lost)
        level_shown = Signal.like(fq.level, name="fault_level_shown")
        m.d.sync += [self.head.valid.eq(fq.head.valid),
                     self.head.record.eq(Mux(fq.head.valid, fq.head.payload.record, 0)),
                     level_shown.eq(fq.level)]
        m.d.comb += self.level.eq(level_shown)
        return m
