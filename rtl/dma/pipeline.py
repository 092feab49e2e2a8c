"""The DMA tracker's request path: one request per clock, decided ten cycles after its accept.

Stages (short register stages, for the clock rate; rtl/dma/tracker.py has
the whole story)::

    A : accept (a credit of the output queue; a dirty-bitmap read takes the slot)
    C : the address lookup takes the PASID (:class:`~.lookup.AddressLookup`)
    D0..D3: ... the lowest matching ADI entry's domain; the bitmap word address
    M : the block RAMs take the address; the domain's window is looked up
    O : the block RAMs' output registers
    R : the words arrive; the window; the dirty log merges S's writes
    T : the mapped bit is selected (pre-decoded one-hot); window check and
        host address (low half); the verdict's parts
    S : decide; set the dirty bit (:class:`~.dirtylog.DirtyLog`); push the
        outcome (:class:`~.outq.OutcomeQueue`) and offer a blocked one's
        fault record

A dirty-bitmap read (``harvest`` at stage A, from
:class:`~.harvest.DirtyReads`) rides the same stages in a slot no request
uses: its domain and word replace the request's in the address of stage M,
and the dirty log reads (and clears) the word. The mapped bitmap is read
through its second read port (``mapped_addr`` in M, ``mapped_word`` in R).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .common import (ADI_ENTRY, DOMAIN_BITS, DOMAIN_WINDOW, FAULT_LAYOUT, HARVEST_LAYOUT, OUT_FIFO_LAYOUT,
                     OUT_LAYOUT, REQ_LAYOUT, word_address)
from .defs import Reason
from .dirtylog import DirtyLog
from .lookup import AddressLookup
from .outq import OutcomeQueue

__all__ = ["RequestPipeline", "STAGES", "DECIDE_LATENCY"]

#: The stages after A, in order, and what each carries from the one before.
STAGES = {
    "c": ("valid", "req", "h", "hword", "hdom"),
    "d0": ("valid", "req", "h", "hword", "hdom", "in_range"),
    "d1": ("valid", "req", "h", "hword", "hdom", "in_range"),
    "d2": ("valid", "req", "h", "hword", "hdom", "in_range"),
    "d3": ("valid", "req", "h", "hword", "hdom", "in_range"),
    "m": ("valid", "req", "h", "in_range", "hit", "dom", "addr"),
    "o": ("valid", "req", "h", "in_range", "hit", "dom"),
    "r": ("valid", "req", "h", "in_range", "hit", "dom"),
    "t": ("valid", "req", "h", "in_range", "hit", "dom"),
    "s": ("valid", "req", "h", "hit", "dom"),
}
#: Cycles from the accept of a request to its decision (stage S).
DECIDE_LATENCY = len(STAGES)


class RequestPipeline(wiring.Component):
    """The request path: address lookup, mapped check, dirty log and output queue in one pipeline.

    Attributes
    ----------
    req : In(stream.Signature(REQ_LAYOUT)), out : Out(stream.Signature(OUT_LAYOUT))
        The tracker's request and outcome streams.
    adi, windows : In
        The tables (:class:`~.tables.DomainTables`).
    harvest : In(HARVEST_LAYOUT), harvest_word : In, harvest_domain : In(6)
        Stage A: a dirty-bitmap read for the next slot (``harvest.mem`` takes it: ``req.ready`` is low).
    mapped_addr : Out(aw), mapped_word : In(32)
        The mapped bitmap's second read port (address in M, word in R).
    decide, allow, block, dirtied : Out(1)
        Stage S: a request is decided, let through, blocked; it sets a dirty bit.
    fault : Out(FAULT_LAYOUT), fault_source : Out(7)
        Stage S: a blocked request's fault record and its source (its domain, or
        ``num_domains`` for a PASID bound to none), offered while ``block``.
    done : Out(HARVEST_LAYOUT), word : Out(32)
        Stage S: the dirty-bitmap read of this slot, and its word (:attr:`DirtyLog.word`).
    """

    def __init__(self, params, *, out_depth, primitive=None):
        self.params = params
        depth = params.num_domains * (params.pages_per_domain // 32)
        self.lookup = AddressLookup(params)
        self.dirty = DirtyLog(depth, primitive=primitive)
        self.queue = OutcomeQueue(out_depth)
        self.aw = aw = self.dirty.aw
        wbits = max(1, exact_log2(params.pages_per_domain // 32))
        shapes = {"valid": 1, "req": REQ_LAYOUT, "h": HARVEST_LAYOUT, "hword": wbits, "hdom": DOMAIN_BITS,
                  "in_range": 1, "hit": 1, "dom": DOMAIN_BITS, "addr": aw}
        #: Every stage's registers, by stage and field (made here so that a
        #: harness can name them before elaboration, see :meth:`observe`).
        self._st = {s: {k: Signal(shapes[k], name=f"{s}_{k}") for k in fields} for s, fields in STAGES.items()}
        self._h_mems = [Signal(name=f"hmem{k}") for k in range(len(STAGES))]
        self._push = Signal(name="out_push")
        super().__init__({
            "req": In(stream.Signature(REQ_LAYOUT)), "out": Out(stream.Signature(OUT_LAYOUT)),
            "adi": In(data.ArrayLayout(ADI_ENTRY, params.num_adis)),
            "windows": In(data.ArrayLayout(DOMAIN_WINDOW, params.num_domains)),
            "harvest": In(HARVEST_LAYOUT), "harvest_word": In(wbits), "harvest_domain": In(DOMAIN_BITS),
            "mapped_addr": Out(aw), "mapped_word": In(32),
            "decide": Out(1), "allow": Out(1), "block": Out(1), "dirtied": Out(1),
            "fault": Out(FAULT_LAYOUT), "fault_source": Out(DOMAIN_BITS + 1),
            "done": Out(HARVEST_LAYOUT), "word": Out(32),
        })

    def observe(self):
        """Observation points for formal harnesses (not ports): the valid flags of
        the stages after A (``valids``) and whether each holds a dirty-bitmap read
        or clear (``h_mems``); stage C's request (``c_valid``, ``c_req``); stage
        M's request, domain and word address (``m_req``, ``m_dom``, ``m_addr``);
        stage S's request and domain (``s_req``, ``s_dom``), its word address
        (``s_addr``), its dirty word (``cur``) and whether a harvest clears it
        (``h1_clear``); the outcome pushed (``out_push``), and the output queue's
        own (:meth:`OutcomeQueue.observe`, prefixed ``out_``)."""
        st = self._st
        return {"valids": [st[s]["valid"] for s in STAGES], "h_mems": list(self._h_mems),
                "c_valid": st["c"]["valid"], "c_req": st["c"]["req"],
                "m_req": st["m"]["req"], "m_dom": st["m"]["dom"], "m_addr": st["m"]["addr"],
                "s_req": st["s"]["req"], "s_dom": st["s"]["dom"], "s_addr": self.dirty.write_addr,
                "cur": self.dirty.word, "h1_clear": st["s"]["h"].clear, "out_push": self._push,
                **{f"out_{k}": v for k, v in self.queue.observe().items()}}

    def elaborate(self, platform):
        m = Module()
        p, st = self.params, self._st
        kp = exact_log2(p.pages_per_domain)
        m.submodules.lookup = lookup = self.lookup
        m.submodules.dirty = dirty = self.dirty
        m.submodules.queue = queue = self.queue
        m.d.comb += [lookup.adi.eq(self.adi), lookup.windows.eq(self.windows)]
        # A: a request is accepted with a credit, unless a dirty-bitmap read takes the slot.
        req, c = self.req, st["c"]
        wiring.connect(m, wiring.flipped(self.out), queue.out)
        m.d.comb += [req.ready.eq(queue.ready & ~self.harvest.mem), queue.take.eq(c["valid"])]
        m.d.sync += [c["valid"].eq(req.valid & req.ready), c["req"].eq(req.payload), c["h"].eq(self.harvest),
                     c["hword"].eq(self.harvest_word), c["hdom"].eq(self.harvest_domain)]
        # Every stage takes what the one before it carries.
        names = list(STAGES)
        for prev, cur in zip(names, names[1:]):
            m.d.sync += [st[cur][k].eq(st[prev][k]) for k in STAGES[cur] if k in STAGES[prev]]
        m.d.comb += [hm.eq(st[s]["h"].mem | st[s]["h"].clear) for hm, s in zip(self._h_mems, STAGES)]
        # C..D3: the address lookup; D0 the page's range.
        d3, ms = st["d3"], st["m"]
        m.d.comb += [lookup.valid.eq(c["valid"]), lookup.pasid.eq(c["req"].pasid)]
        m.d.sync += st["d0"]["in_range"].eq(c["req"].page < p.pages_per_domain)
        # M: the domain and the word address. In a harvest slot no entry
        # matches (the request slot is empty): the harvest's domain and word
        # go in through the same OR.
        addr_dom = lookup.domain | Mux(d3["h"].mem, d3["hdom"], 0)
        addr_word = Mux(d3["h"].mem, d3["hword"], d3["req"].page[5:])
        m.d.sync += [ms["hit"].eq(lookup.hit), ms["dom"].eq(lookup.domain),
                     ms["addr"].eq(word_address(p, addr_word, addr_dom))]
        m.d.comb += [self.mapped_addr.eq(ms["addr"]), dirty.addr.eq(ms["addr"])]
        self._check(m, kp, lookup)
        return m

    def _check(self, m, kp, lookup):
        """Stages R to S: the mapped bit, the window, the verdict and its effects."""
        st, D = self._st, self.params.num_domains
        o, r, t, s = st["o"], st["r"], st["t"], st["s"]
        # R: the page's bit, one-hot.
        r_onehot = Signal(32, name="r_onehot")
        m.d.sync += r_onehot.eq(Const(1, 32) << o["req"].page[:5])
        # T: window check and host address (low half); the mapped word.
        t_in_window = Signal(name="t_in_window")
        t_host_lo = Signal(33, name="t_host_lo")
        t_host_hi = Signal(len(lookup.base) - 32, name="t_host_hi")
        t_onehot, t_mword = Signal(32, name="t_onehot"), Signal(32, name="t_mword")
        m.d.sync += [t_in_window.eq(lookup.limit[kp] | (r["req"].page[:kp] < lookup.limit[:kp])),
                     t_host_lo.eq(lookup.base[:32] + r["req"].page), t_host_hi.eq(lookup.base[32:]),
                     t_onehot.eq(r_onehot), t_mword.eq(self.mapped_word)]
        # S
        s_ok, s_mapped = Signal(name="s_ok"), Signal(name="s_mapped")
        s_host = Signal(len(lookup.base), name="s_host")
        # An allowed write would set a dirty bit: everything but the mapped
        # bit, decided a stage early, so the dirty RAM's write enable is one
        # LUT from flip-flops (s_wok, s_mapped, the clear).
        s_wok = Signal(name="s_wok")
        m.d.sync += [s_wok.eq(t["valid"] & t["req"].write & t["hit"] & t["in_range"] & t_in_window),
                     s_ok.eq(t["hit"] & t["in_range"] & t_in_window),
                     s_mapped.eq((t_mword & t_onehot).any()),
                     s_host.eq(Cat(t_host_lo[:32], t_host_hi + t_host_lo[32]))]
        # The reason (no domain; unmapped or out of range; out of the window)
        # decided in T for either value of the mapped bit, which picks one in
        # S: one LUT after s_mapped, whose routes to the queue are long.
        reason_if = {mapped: Signal(8, name=f"s_reason_{'m' if mapped else 'u'}") for mapped in (0, 1)}
        t_unmapped = Mux(t["req"].write, Reason.WRITE_UNMAPPED, Reason.READ_UNMAPPED)
        m.d.sync += [reason_if[0].eq(Mux(~t["hit"], Reason.NO_DOMAIN, t_unmapped)),
                     reason_if[1].eq(Mux(~t["hit"], Reason.NO_DOMAIN,
                                         Mux(~t["in_range"], t_unmapped, Reason.OUT_OF_WINDOW)))]
        reason = Signal(8)
        m.d.comb += [reason.eq(Mux(s_mapped, reason_if[1], reason_if[0])),
                     self.decide.eq(s["valid"]), self.allow.eq(s["valid"] & s_ok & s_mapped),
                     self.block.eq(s["valid"] & ~(s_ok & s_mapped)), self.dirtied.eq(s_wok & s_mapped)]
        # The dirty log: the bit in T, set in S; a harvest's clear.
        dirty = self.dirty
        m.d.comb += [dirty.bit.eq(t_onehot), dirty.clear.eq(t["h"].clear),
                     dirty.set.eq(self.dirtied), dirty.clear_now.eq(s["h"].clear),
                     self.done.eq(s["h"]), self.word.eq(dirty.word)]
        # Every decided request pushes its outcome (the credits guarantee the
        # room): the address and the reason ungated.
        rec = Signal(OUT_FIFO_LAYOUT)
        m.d.comb += [rec.host.eq(s_host), rec.write.eq(s["req"].write), rec.pasid.eq(s["req"].pasid),
                     rec.domain.eq(s["dom"]), rec.page.eq(s["req"].page),
                     rec.fault.eq(~self.allow), rec.reason.eq(reason),
                     self._push.eq(s["valid"]), self.queue.push.eq(self._push), self.queue.record.eq(rec)]
        # A blocked request's fault record, with its source.
        m.d.comb += [self.fault.reason.eq(reason), self.fault.write.eq(s["req"].write),
                     self.fault.pasid.eq(s["req"].pasid), self.fault.page.eq(s["req"].page),
                     self.fault_source.eq(Mux(s["hit"], s["dom"], D))]
