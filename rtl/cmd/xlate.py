"""One translation through the DMA tracker, for the tracker's requesters.

Ref: :mod:`siov.rtl.dma.tracker` (``REQ_LAYOUT``/``OUT_LAYOUT``: one check per
request, answered in request order); DESIGN.md, "Formats": a device address
whose page number does not fit the tracker's page (at or above 2**44) faults
without a request, as in the reference model.

Both of the tracker's requesters inside an engine, the descriptor prefetch
(:mod:`.prefetch`) and each executor (:mod:`.executor`), translate one
device address at a time: they send the check, wait for its answer, and go
on with the host address or a fault. :class:`TrackerClient` is that exchange.
Its owner strobes ``start`` with the address (registered here); the request
is valid from the next cycle until taken, and the answer is decided in the
cycle it arrives (``done``), so a translation costs the owner no cycle over
a request and response handled in its own states.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..dma.defs import PAGE_SHIFT, PASID_BITS, TRANSLATABLE_BITS
from ..dma.tracker import OUT_LAYOUT, REQ_LAYOUT

__all__ = ["TrackerClient"]


class TrackerClient(wiring.Component):
    """One DMA tracker check at a time.

    Parameters
    ----------
    addr_width : int
        Width of the device addresses it is given, at least ``TRANSLATABLE_BITS``
        (a ring entry's address may carry past 2**64: 65 bits).

    Attributes
    ----------
    start : In(1)
        Strobe: translate ``addr`` for a ``write`` or a read, under ``pasid``.
        Taken in any state (a new translation may start in the cycle the last one ends).
    addr : In(addr_width), write : In(1)
    pasid : In(PASID_BITS)
        Sampled while the request waits (held by the owner).
    busy : Out(1)
        A translation is in progress.
    done : Out(1)
        The translation ends this cycle; ``fault`` says how.
    fault : Out(1)
        The tracker refused it, or the address is beyond what it translates.
    host : Out(64)
        With ``done`` and not ``fault``: the host address.
    x_addr : Out(addr_width), x_write : Out(1)
        The address being translated, and its direction (for a fault record).
    req : Out(stream.Signature(REQ_LAYOUT))
    resp : In(stream.Signature(OUT_LAYOUT, always_ready=True))
        The tracker's port: every answer is taken in the cycle it arrives.

    Raises
    ------
    ValueError
        If ``addr_width`` is not an integer of at least ``TRANSLATABLE_BITS``.
    """

    def __init__(self, addr_width=64):
        if not isinstance(addr_width, int) or addr_width < TRANSLATABLE_BITS:
            raise ValueError(f"Address width must be an integer of at least {TRANSLATABLE_BITS}, "
                             f"not {addr_width!r}")
        self.addr_width = addr_width
        super().__init__({
            "start": In(1), "addr": In(addr_width), "write": In(1), "pasid": In(PASID_BITS),
            "busy": Out(1), "done": Out(1), "fault": Out(1), "host": Out(64),
            "x_addr": Out(addr_width), "x_write": Out(1),
            "req": Out(stream.Signature(REQ_LAYOUT)),
            "resp": In(stream.Signature(OUT_LAYOUT, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        x_addr = self.x_addr
        m.d.comb += [self.req.payload.pasid.eq(self.pasid),
                     self.req.payload.page.eq(x_addr[PAGE_SHIFT:TRANSLATABLE_BITS]),
                     self.req.payload.write.eq(self.x_write),
                     self.host.eq(self.resp.payload.addr | x_addr[:PAGE_SHIFT])]
        # Whether the address is beyond what the tracker translates, registered
        # with it: the check is a wide OR that would otherwise sit between the
        # address register and ``done``, which the owner's next decision (often
        # the next ``start``) waits on in the same cycle.
        beyond = Signal()

        def take_start():
            # Last, so that it outranks the state's own transition.
            with m.If(self.start):
                m.d.sync += [x_addr.eq(self.addr), self.x_write.eq(self.write),
                             beyond.eq(self.addr[TRANSLATABLE_BITS:] != 0)]
                m.next = "REQUEST"

        with m.FSM(name="xlate"):
            with m.State("IDLE"):
                take_start()
            with m.State("REQUEST"):
                m.d.comb += self.busy.eq(1)
                with m.If(beyond):
                    m.d.comb += [self.done.eq(1), self.fault.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.req.valid.eq(1)
                    with m.If(self.req.ready):
                        m.next = "ANSWER"
                take_start()
            with m.State("ANSWER"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.resp.valid):
                    m.d.comb += [self.done.eq(1), self.fault.eq(self.resp.payload.fault)]
                    m.next = "IDLE"
                take_start()
        return m
