"""Arbiters for the ports the engines share.

Several requesters (the engines' executors and the shared descriptor
prefetch, see :mod:`.engine`) share one port of each kind. Every arbiter
here is round robin (:class:`~siov.rtl.stream.RoundRobin`), so no requester
starves:

* :class:`TrackerPortArbiter`: the DMA tracker's request port, one check per
  clock; the tracker answers in request order, so a small queue of requester
  indices routes each answer back;
* :class:`AxiReadArbiter` and :class:`AxiWriteArbiter`: the AXI4 master,
  arbitrated per burst (one AR or AW beat). The burst's ID names its
  requester (ARM IHI 0022E A5: responses of one ID stay in order), so R
  beats and B responses are routed by RID and BID. AXI4 has no write
  interleaving (A5.3.3), so W beats follow the order in which the AWs were
  issued, kept in a queue of requester indices.

AR and AW leave from a register: a requester's address is taken into it
(its ARREADY/AWREADY) and held there until the slave takes it, so the
output never changes while valid is up, whoever else requests (A3.2.1).
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..axi4 import Axi4ReadSignature, Axi4WriteSignature
from ..stream import RoundRobin, select

__all__ = ["TrackerPortArbiter", "AxiReadArbiter", "AxiWriteArbiter"]

#: Depth of the queues that remember which requester a burst or a check belongs to.
ORDER_DEPTH = 8


class TrackerPortArbiter(wiring.Component):
    """``n`` requesters of the DMA tracker's port; answers routed back in order.

    Attributes
    ----------
    req{k} : In(stream.Signature(req_layout))
        Requester k's check; must hold valid until ready.
    resp{k} : Out(stream.Signature(resp_layout))
        The tracker's answer to requester k's check.
    out : Out(stream.Signature(req_layout))
        Towards the tracker: at most one check per clock.
    back : In(stream.Signature(resp_layout))
        The tracker's answers, in request order.
    """

    def __init__(self, n, req_layout, resp_layout):
        self.n = n
        members = {}
        for k in range(n):
            members[f"req{k}"] = In(stream.Signature(req_layout))
            members[f"resp{k}"] = Out(stream.Signature(resp_layout))
        members["out"] = Out(stream.Signature(req_layout))
        members["back"] = In(stream.Signature(resp_layout))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.n
        reqs = [getattr(self, f"req{k}") for k in range(n)]
        resps = [getattr(self, f"resp{k}") for k in range(n)]
        m.submodules.rr = rr = RoundRobin(n)
        m.submodules.order = order = SyncFIFOBuffered(width=max(1, (n - 1).bit_length()), depth=ORDER_DEPTH)
        for k, r in enumerate(reqs):
            m.d.comb += rr.req[k].eq(r.valid)
        m.d.comb += [self.out.valid.eq(rr.found & order.w_rdy),
                     self.out.payload.eq(Array(r.payload for r in reqs)[rr.pick])]
        fire = Signal()
        m.d.comb += [fire.eq(self.out.valid & self.out.ready), rr.take.eq(fire),
                     order.w_en.eq(fire), order.w_data.eq(rr.pick)]
        for k, r in enumerate(reqs):
            m.d.comb += r.ready.eq(fire & (rr.pick == k))
        head = order.r_data
        for k, r in enumerate(resps):
            m.d.comb += [r.valid.eq(self.back.valid & order.r_rdy & (head == k)),
                         r.payload.eq(self.back.payload)]
        m.d.comb += self.back.ready.eq(order.r_rdy & select((r.ready for r in resps), head))
        m.d.comb += order.r_en.eq(self.back.valid & self.back.ready)
        return m


def _id_width(n):
    return max(1, (n - 1).bit_length())


class _AxiBurstArbiter(wiring.Component):
    """``n`` AXI4 masters (one half of the interface) onto one, round robin per burst.

    The address channel (``_channel``: ``"ar"`` or ``"aw"``) leaves from a
    register; the burst's ID is the index of the master it came from.
    """
    _half = None          # Axi4ReadSignature or Axi4WriteSignature
    _channel = None

    def __init__(self, n, id_width=None):
        self.n = n
        self.id_width = id_width if id_width is not None else _id_width(n)
        members = {f"m{k}": In(self._half()) for k in range(n)}
        members["bus"] = Out(self._half(64, 64, self.id_width))
        super().__init__(members)

    def _masters(self):
        return [getattr(self, f"m{k}") for k in range(self.n)]

    def _address(self, m, ms, room=1):
        """The registered address channel; a master's address is taken when the register is
        free (or being emptied) and ``room`` allows. Returns ``(pick, load)``."""
        c, bus = self._channel, self.bus
        m.submodules.rr = rr = RoundRobin(self.n)
        for k, s in enumerate(ms):
            m.d.comb += rr.req[k].eq(getattr(s, c + "valid"))
        load = Signal(name=c + "_load")
        valid, ready = getattr(bus, c + "valid"), getattr(bus, c + "ready")
        m.d.comb += [load.eq(rr.found & (~valid | ready) & room), rr.take.eq(load)]
        with m.If(valid & ready):
            m.d.sync += valid.eq(0)
        with m.If(load):
            pick = Array(ms)[rr.pick]
            m.d.sync += [valid.eq(1), getattr(bus, c + "id").eq(rr.pick)]
            m.d.sync += [getattr(bus, c + f).eq(getattr(pick, c + f)) for f in ("addr", "len", "size", "burst")]
        for k, s in enumerate(ms):
            m.d.comb += getattr(s, c + "ready").eq(load & (rr.pick == k))
        return rr.pick, load


class AxiReadArbiter(_AxiBurstArbiter):
    """``n`` AXI4 read masters onto one, round robin per burst; ARID = requester index.

    Attributes
    ----------
    m{k} : In(Axi4ReadSignature())
        Requester k (its own IDs are ignored; its RID reads 0).
    bus : Out(Axi4ReadSignature(64, 64, id_width))
    """
    _half = Axi4ReadSignature
    _channel = "ar"

    def elaborate(self, platform):
        m = Module()
        n, bus = self.n, self.bus
        ms = self._masters()
        self._address(m, ms)
        for k, s in enumerate(ms):
            m.d.comb += [s.rid.eq(0), s.rdata.eq(bus.rdata), s.rresp.eq(bus.rresp), s.rlast.eq(bus.rlast),
                         s.rvalid.eq(bus.rvalid & (bus.rid == k))]
        m.d.comb += bus.rready.eq(select((s.rready for s in ms), bus.rid[:max(1, (n - 1).bit_length())])
                                  & (bus.rid < n))
        return m


class AxiWriteArbiter(_AxiBurstArbiter):
    """``n`` AXI4 write masters onto one, round robin per burst; AWID = requester index.

    W beats follow the AW order (AXI4 has no write interleaving); B responses
    are routed by BID.

    Attributes
    ----------
    m{k} : In(Axi4WriteSignature())
    bus : Out(Axi4WriteSignature(64, 64, id_width))
    """
    _half = Axi4WriteSignature
    _channel = "aw"

    def elaborate(self, platform):
        m = Module()
        n, bus = self.n, self.bus
        ms = self._masters()
        sel_bits = max(1, (n - 1).bit_length())
        m.submodules.order = order = SyncFIFOBuffered(width=sel_bits, depth=ORDER_DEPTH)
        pick, load = self._address(m, ms, room=order.w_rdy)
        m.d.comb += [order.w_en.eq(load), order.w_data.eq(pick)]

        # W: from the requester at the head of the AW order, until its WLAST.
        head = order.r_data
        w = select(ms, head)
        m.d.comb += [bus.wvalid.eq(order.r_rdy & w.wvalid), bus.wdata.eq(w.wdata),
                     bus.wstrb.eq(w.wstrb), bus.wlast.eq(w.wlast),
                     order.r_en.eq(bus.wvalid & bus.wready & bus.wlast)]
        for k, s in enumerate(ms):
            m.d.comb += [s.wready.eq(order.r_rdy & (head == k) & bus.wready),
                         s.bid.eq(0), s.bresp.eq(bus.bresp), s.bvalid.eq(bus.bvalid & (bus.bid == k))]
        m.d.comb += bus.bready.eq(select((s.bready for s in ms), bus.bid[:sel_bits]) & (bus.bid < n))
        return m
