"""The DMA tracker's guest fast path: a guest's map or unmap of one page, with no hypercall.

A guest writes ``guest_word(adi, page)`` (rtl/dma/defs.py) to the MAP or
UNMAP word of the ``DMA.GUEST`` window; reading a word gives back what was
last written to it. The write is latched (its strobe registered first) and
the ADI's entry looked up in the table (:class:`~.tables.DomainTables`): an
ADI that is not valid or not bound to a domain, or a page beyond the
bitmap, is refused (BAD_ADI, OUT_OF_RANGE). The bitmap engine
(:class:`~.engine.BitmapEngine`) does the rest, then answers the bus write
(``done``); GUEST_STATUS.RESULT holds the outcome.

The lookup takes two register stages (the entry among each four, then
among the groups: a mux of all the entries in one cycle was too slow), and
its verdict a third; ``ready`` rises three cycles after the write was
latched, and a write that comes later starts over.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..csr.bus import CsrSignature, Resp
from ..stream import or_all
from .common import ADI_ENTRY, DOMAIN_BITS
from .defs import GuestResult

__all__ = ["GuestOps"]


class GuestOps(wiring.Component):
    """The guest window's latch and the ADI lookup of a guest map or unmap.

    Attributes
    ----------
    bus : In(CsrSignature(3))
        The ``dma_guest`` window (MAP at 0x0, UNMAP at 0x4).
    adi : In(ArrayLayout(ADI_ENTRY, num_adis))
        The ADI table.
    ready : Out(1)
        A latched operation is looked up and waits for the engine.
    refuse : Out(1), refuse_result : Out(4)
        ... it is refused, with this GUEST_STATUS.RESULT.
    unmap : Out(1), page : Out(20), domain : Out(6)
        ... an unmap (else a map) of ``page`` in ``domain``.
    done : In(1)
        The engine has answered the operation (a pulse): the bus write is acknowledged.
    """

    def __init__(self, params):
        self.params = params
        super().__init__({
            "bus": In(CsrSignature(3)), "adi": In(data.ArrayLayout(ADI_ENTRY, params.num_adis)),
            "ready": Out(1), "refuse": Out(1), "refuse_result": Out(4), "unmap": Out(1),
            "page": Out(20), "domain": Out(DOMAIN_BITS), "done": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        A, D = self.params.num_adis, self.params.num_domains
        bus = self.bus
        gq = {f: Signal.like(getattr(bus, f), name=f"gpq_{f}") for f in ("stb", "we", "addr", "wdata", "wstrb")}
        m.d.sync += [gq[f].eq(getattr(bus, f)) for f in gq]
        # The latch: the write's new word, MAP's or UNMAP's, under its byte strobes.
        g_pend, g_look = Signal(), Signal()   # pending; its ADI lookup is done
        g_val = [Signal(26, name="g_map_val"), Signal(26, name="g_unmap_val")]
        g_new = Signal(26)
        bytemask = Cat(*(b.replicate(8) for b in gq["wstrb"]))[:26]
        g_old = Mux(gq["addr"][2], g_val[1], g_val[0])
        m.d.comb += g_new.eq((g_old & ~bytemask) | (gq["wdata"][:26] & bytemask))
        g_ack, g_rd_ack = Signal(), Signal()
        g_rd_data = Signal(26)
        g_adi = Signal(6)
        m.d.sync += [g_ack.eq(0), g_rd_ack.eq(0)]
        with m.If(gq["stb"]):
            with m.If(gq["we"]):
                m.d.sync += [g_pend.eq(1), g_look.eq(0), self.unmap.eq(gq["addr"][2]), self.page.eq(g_new[:20]),
                             g_adi.eq(g_new[20:26])]
                with m.If(gq["addr"][2]):
                    m.d.sync += g_val[1].eq(g_new)
                with m.Else():
                    m.d.sync += g_val[0].eq(g_new)
            with m.Else():
                m.d.sync += [g_rd_ack.eq(1), g_rd_data.eq(g_old)]
        with m.If(self.done):
            m.d.sync += [g_pend.eq(0), g_ack.eq(1)]
        m.d.comb += [bus.ack.eq(g_ack | g_rd_ack), bus.resp.eq(Resp.OKAY),
                     bus.rdata.eq(Mux(g_rd_ack, g_rd_data, 0)), self.ready.eq(g_pend & g_look)]
        # The ADI lookup, in two register stages, then the verdict (one
        # register each, so that the engine's IDLE state tests one bit).
        adi = self.adi
        g_entry_ok = Signal(A)      # registered: the table is stable while a guest op waits
        m.d.sync += g_entry_ok.eq(Cat(*(adi[i].valid & (adi[i].domain < D) for i in range(A))))
        # Which group the ADI number names, one-hot, registered with the
        # groups (none: a number beyond the table): the second stage is then
        # an AND-OR of a few registers, not a mux and a compare.
        n_grp = -(-A // 4)
        g_grp_sel = Signal(n_grp, name="g_grp_sel")
        m.d.sync += g_grp_sel.eq(Cat(*(g_adi[2:] == k for k in range(n_grp))))
        g_grp_dom, g_grp_ok = [], []
        for g in range(0, A, 4):
            n_part = min(4, A - g)
            doms = [adi[i].domain for i in range(g, g + n_part)]
            gd, go = Signal(DOMAIN_BITS, name=f"g_grp{g // 4}_dom"), Signal(name=f"g_grp{g // 4}_ok")
            m.d.sync += [gd.eq(Array(doms)[g_adi[:2]] if n_part > 1 else doms[0]),
                         go.eq(g_entry_ok[g:g + n_part].bit_select(g_adi[:2], 1) if n_part > 1
                               else g_entry_ok[g] & (g_adi[:2] == 0))]
            g_grp_dom.append(gd)
            g_grp_ok.append(go)
        g_valid_adi, g_page_oor = Signal(), Signal()
        m.d.sync += [g_valid_adi.eq((g_grp_sel & Cat(*g_grp_ok)).any()),
                     g_page_oor.eq(self.page >= self.params.pages_per_domain),
                     self.domain.eq(or_all([Mux(g_grp_sel[k], g_grp_dom[k], 0) for k in range(n_grp)]))]
        # The verdict a stage later still (the group registers and the
        # verdict's users sit far apart on the die).
        m.d.sync += [self.refuse.eq(~g_valid_adi | g_page_oor),
                     self.refuse_result.eq(Mux(g_valid_adi, GuestResult.OUT_OF_RANGE, GuestResult.BAD_ADI))]
        g_look_sr = Signal(2)   # the lookup's stages done so far, as a shift register
        with m.If(gq["stb"] & gq["we"]):
            m.d.sync += g_look_sr.eq(0)
        with m.Elif(g_pend):
            m.d.sync += [g_look_sr.eq(Cat(1, g_look_sr[0])), g_look.eq(g_look_sr[1])]
        return m
