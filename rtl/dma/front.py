"""The DMA tracker's CSR front: its registers, and its bitmap and harvest windows.

The register bus front end is a :class:`~siov.rtl.csr.banked.BankedRegisters`
for the ``DMA`` window of ``rtl/regs.rdl`` (registered window decode,
registers in banks of eight words; a register answers five cycles after its
strobe). The other parts read and drive its fields (:meth:`TrackerFront.field`).

Two external windows are answered here, their strobes registered first (the
bank's address decode stays off the tracker's paths), with their range
checks registered beside them (from the bus address, or a cycle behind the
select registers: a window access comes at least three cycles after a write
to them answered), so the strobes meet single bits, not compares:

* the harvest window, and the bitmap window when BMAP_SEL names the dirty
  bitmap: the read is registered, then takes the request slot of the next
  cycle (``harvest`` at stage A) and runs down the request pipeline through
  the dirty log's read-modify-write, writing zeros unless NO_CLEAR, so the
  read-and-clear is atomic against requests by construction; its answer is
  registered from stage S (``done``, ``word``). Error answers ride the
  pipeline too, without the slot;
* the bitmap window of the other bitmaps: a read is taken a cycle after its
  strobe (``window``, held until the bitmap engine answers with
  ``window_done`` and ``window_data``); errors answer at once.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .. import regmap
from ..csr.banked import BankedRegisters
from ..csr.bus import CsrSignature, Resp
from .common import DOMAIN_BITS, HARVEST_LAYOUT, word_address
from .defs import Bitmap

__all__ = ["TrackerFront", "CSR_ADDR_WIDTH", "WINDOW_READ"]

#: The tracker's CSR window is 64 KiB.
CSR_ADDR_WIDTH = 16


def WINDOW_READ(aw):
    """A read of the bitmap window waiting for the bitmap engine: pending, its word address and bitmap."""
    return data.StructLayout({"pend": 1, "addr": aw, "sel": 2})


class TrackerFront(wiring.Component):
    """CSR front of the DMA tracker.

    Attributes
    ----------
    csr : In(CsrSignature(16))
        Local addresses of the ``DMA`` window of the register map.
    harvest : Out(HARVEST_LAYOUT), harvest_word : Out, harvest_domain : Out(6)
        Stage A of the request pipeline: a dirty-bitmap read takes the next slot (``harvest.mem``).
    done : In(HARVEST_LAYOUT), word : In(32)
        Stage S: the dirty-bitmap read of that slot and its word.
    window : Out(WINDOW_READ)
        A read of the pinned, mapped or unmap-requested bitmap, pending until ``window_done``.
    window_done : In(1), window_data : In(32)
        The bitmap engine answers the pending read (a pulse) with the word, a cycle later.
    """

    def __init__(self, params):
        self.params = params
        self.registers = BankedRegisters.for_window("DMA", addr_width=CSR_ADDR_WIDTH, base=regmap.DMA_BASE,
                                                    bank_words=8)
        self.wbits = max(1, exact_log2(params.pages_per_domain // 32))
        aw = max(1, (params.num_domains * (params.pages_per_domain // 32) - 1).bit_length())
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "harvest": Out(HARVEST_LAYOUT), "harvest_word": Out(self.wbits), "harvest_domain": Out(DOMAIN_BITS),
            "done": In(HARVEST_LAYOUT), "word": In(32),
            "window": Out(WINDOW_READ(aw)), "window_done": In(1), "window_data": In(32),
        })

    def field(self, path):
        """The bank port of register field ``"DMA.REG.FIELD"``."""
        return self.registers.port(path)

    @property
    def ext(self):
        """The external windows' ports (``dma_guest`` and ``dma_fault_lost`` are answered by other parts)."""
        return self.registers.ext

    @staticmethod
    def _reg_port(m, port, name):
        """The request side of an external window port, registered (its strobe a cycle late)."""
        q = {f: Signal.like(getattr(port, f), name=f"{name}_{f}") for f in ("stb", "we", "addr")}
        m.d.sync += [q[f].eq(getattr(port, f)) for f in q]
        return q

    def elaborate(self, platform):
        m = Module()
        p, r = self.params, self.field
        WPD, D = p.pages_per_domain // 32, p.num_domains
        m.submodules.registers = self.registers
        wiring.connect(m, wiring.flipped(self.csr), self.registers.csr)
        hv_port, bm_port = self.ext["dma_harvest"], self.ext["dma_bmap"]
        hvq, bmq = self._reg_port(m, hv_port, "hvq"), self._reg_port(m, bm_port, "bmq")
        bm_sel, bm_dom, hv_dom = r("DMA.BMAP_SEL.BITMAP"), r("DMA.BMAP_SEL.DOMAIN"), r("DMA.HARVEST_CTRL.DOMAIN")
        # The windows' range checks, registered with their strobes.
        bm_ok = {k: Signal(name=f"bm_{k}") for k in ("word", "dom", "dirty")}
        hv_word_ok, hv_dom_ok = Signal(name="hv_word_ok"), Signal(name="hv_dom_ok")
        m.d.sync += [bm_ok["word"].eq(bm_port.addr[2:] < WPD), bm_ok["dom"].eq(bm_dom < D),
                     bm_ok["dirty"].eq(bm_sel == Bitmap.DIRTY),
                     hv_word_ok.eq(hv_port.addr[2:] < WPD), hv_dom_ok.eq(hv_dom < D)]
        # Dirty-bitmap reads: the next request slot.
        h_take_hv = hvq["stb"]
        h_take_bm = bmq["stb"] & bm_ok["dirty"]
        h_we = Mux(h_take_hv, hvq["we"], bmq["we"])
        h_ok = Signal()
        m.d.comb += h_ok.eq(~h_we & Mux(h_take_hv, hv_word_ok & hv_dom_ok, bm_ok["word"] & bm_ok["dom"]))
        a_h = self.harvest
        m.d.sync += [a_h.active.eq(h_take_hv | h_take_bm), a_h.bmap.eq(~h_take_hv),
                     a_h.mem.eq((h_take_hv | h_take_bm) & h_ok),
                     a_h.clear.eq(h_take_hv & h_ok & ~r("DMA.HARVEST_CTRL.NO_CLEAR")),
                     a_h.resp.eq(Mux(h_ok, Resp.OKAY, Mux(h_we, Resp.SLVERR, Resp.DECERR))),
                     self.harvest_word.eq(Mux(h_take_hv, hvq["addr"][2:], bmq["addr"][2:])),
                     self.harvest_domain.eq(Mux(h_take_hv, hv_dom, bm_dom))]
        # Their answers, registered from stage S.
        h_ack, h_bmap, h_resp, h_data = Signal(), Signal(), Signal(2), Signal(32)
        m.d.sync += [h_ack.eq(self.done.active), h_bmap.eq(self.done.bmap), h_resp.eq(self.done.resp),
                     h_data.eq(Mux(self.done.mem, self.word, 0))]
        m.d.comb += [hv_port.ack.eq(h_ack & ~h_bmap), hv_port.resp.eq(h_resp),
                     hv_port.rdata.eq(Mux(h_ack & ~h_bmap, h_data, 0))]
        # Reads of the other bitmaps: taken a cycle after the strobe (the
        # request is held until the answer), so that the verdict drives one
        # flip-flop rather than the enables of the address registers.
        win = self.window
        b_take = Signal(name="b_take")
        m.d.sync += b_take.eq(bmq["stb"] & ~bm_ok["dirty"] & ~bmq["we"] & bm_ok["word"] & bm_ok["dom"])
        with m.If(b_take):
            m.d.sync += [win.pend.eq(1), win.sel.eq(bm_sel), win.addr.eq(word_address(p, bmq["addr"][2:], bm_dom))]
        b_ack = Signal()
        m.d.sync += b_ack.eq(self.window_done)
        with m.If(self.window_done):
            m.d.sync += win.pend.eq(0)
        # Errors on the bitmap window for those bitmaps answer at once.
        b_err_ack = Signal()
        b_err_resp = Signal(2)
        m.d.sync += b_err_ack.eq(0)
        with m.If(bmq["stb"] & ~bm_ok["dirty"] & (bmq["we"] | ~bm_ok["word"] | ~bm_ok["dom"])):
            m.d.sync += [b_err_ack.eq(1), b_err_resp.eq(Mux(bmq["we"], Resp.SLVERR, Resp.DECERR))]
        h_bm_ack = h_ack & h_bmap
        m.d.comb += [
            bm_port.ack.eq(b_ack | b_err_ack | h_bm_ack),
            bm_port.resp.eq(Mux(h_bm_ack, h_resp, Mux(b_err_ack, b_err_resp, Resp.OKAY))),
            bm_port.rdata.eq(Mux(b_ack, self.window_data, Mux(h_bm_ack, h_data, 0))),
        ]
        return m
