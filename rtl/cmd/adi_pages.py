"""The ADI block's doorbell pages: the ``ADI_PAGES`` window, one 4 KiB page per ADI.

Ref: ``rtl/regs.rdl`` (ADI_PAGES): TAIL (the doorbell, write/read) at 0x0,
HEAD (read-only) at 0x4 and STATE (read-only) at 0x8 of each ADI's page.
A write to HEAD or STATE answers SLVERR, an access beyond the ADIs or to
another offset DECERR (a write to TAIL of a page beyond the ADIs too).
"""

from amaranth.hdl import Array, Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..csr.bus import CsrSignature, Resp
from ..regmap import AdiState
from .adi_layouts import DOORBELL_LAYOUT, IDX_BITS, PAGE_HEAD, PAGE_STATE, PAGE_TAIL, PAGES_ADDR_WIDTH

__all__ = ["AdiPages"]


class AdiPages(wiring.Component):
    """Doorbell pages of ``num_adis`` ADIs: registers each doorbell and answers page accesses.

    A TAIL write with at least one byte strobe to an ADI's page leaves on
    ``doorbell`` one cycle after its strobe (still before the bus can issue
    the next access), so that each ADI's compare and TAIL update start from
    flip-flops, not from the bus (timing); the value is the written bytes
    (unwritten bytes read as zero). Every access answers two cycles after its
    strobe: the first cycle registers the page and offset, the second reads
    the selected ADI's register from flip-flops (timing). A doorbell to an
    ADI that is not ENABLED is counted in ``dropped`` (saturating), as
    CMD.DROPPED_DOORBELLS says; whether the ADI takes it is its own check.

    Parameters
    ----------
    num_adis : int
        ADIs (pages) the window decodes, 1..64.

    Attributes
    ----------
    pages : In(CsrSignature(PAGES_ADDR_WIDTH))
        Local addresses of the ``ADI_PAGES`` window.
    state : In(ArrayLayout(AdiState, num_adis))
    head, tail : In(ArrayLayout(IDX_BITS, num_adis))
        Each ADI's registers, for the page reads and the dropped count.
    doorbell : Out(stream.Signature(DOORBELL_LAYOUT, always_ready=True))
        The registered doorbell, acting in the cycle it is valid.
    dropped : Out(32)
        Doorbells to an ADI that was not ENABLED when they acted.

    Raises
    ------
    ValueError
        If ``num_adis`` is not an integer in 1..64.
    """

    def __init__(self, num_adis):
        if not isinstance(num_adis, int) or not 1 <= num_adis <= 64:
            raise ValueError(f"Number of ADIs must be an integer in 1..64, not {num_adis!r}")
        self.num_adis = num_adis
        super().__init__({
            "pages": In(CsrSignature(PAGES_ADDR_WIDTH)),
            "state": In(data.ArrayLayout(AdiState, num_adis)),
            "head": In(data.ArrayLayout(IDX_BITS, num_adis)),
            "tail": In(data.ArrayLayout(IDX_BITS, num_adis)),
            "doorbell": Out(stream.Signature(DOORBELL_LAYOUT, always_ready=True)),
            "dropped": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.num_adis
        pg = self.pages
        page = pg.addr[12:]
        word = pg.addr[2:12]
        page_ok = page < n
        bytemask = Signal(32)
        m.d.comb += bytemask.eq(Cat(*(b.replicate(8) for b in pg.wstrb)))
        value = pg.wdata & bytemask
        db = self.doorbell
        m.d.sync += [db.valid.eq(pg.stb & pg.we & page_ok & (word == PAGE_TAIL >> 2) & pg.wstrb.any()),
                     db.payload.adi.eq(page), db.payload.tail.eq(value),
                     db.payload.below_max.eq((value >> IDX_BITS) == 0)]

        state_a = Array(self.state[i] for i in range(n))
        head_a = Array(self.head[i] for i in range(n))
        tail_a = Array(self.tail[i] for i in range(n))
        pg_ack, pg_resp, pg_rdata = Signal(), Signal(2), Signal(32)
        pg_act = Signal()
        pg_page = Signal(6)
        pg_word = Signal(10)
        pg_ok = Signal()
        pg_we = Signal()
        m.d.sync += [pg_act.eq(pg.stb), pg_ack.eq(pg_act)]
        with m.If(pg.stb):
            m.d.sync += [pg_page.eq(page), pg_word.eq(word), pg_ok.eq(page_ok), pg_we.eq(pg.we)]
        with m.If(pg_act):
            m.d.sync += [pg_resp.eq(Resp.DECERR), pg_rdata.eq(0)]
            with m.If(pg_ok):
                with m.Switch(pg_word):
                    with m.Case(PAGE_TAIL >> 2):
                        m.d.sync += pg_resp.eq(Resp.OKAY)
                        with m.If(~pg_we):
                            m.d.sync += pg_rdata.eq(tail_a[pg_page])
                    for off, arr in ((PAGE_HEAD, head_a), (PAGE_STATE, state_a)):
                        with m.Case(off >> 2):
                            with m.If(pg_we):
                                m.d.sync += pg_resp.eq(Resp.SLVERR)
                            with m.Else():
                                m.d.sync += [pg_resp.eq(Resp.OKAY), pg_rdata.eq(arr[pg_page])]
        m.d.comb += [pg.ack.eq(pg_ack),
                     pg.resp.eq(pg_resp & pg_ack.replicate(2)),
                     pg.rdata.eq(pg_rdata & pg_ack.replicate(32))]

        with m.If(db.valid & (state_a[db.payload.adi] != AdiState.ENABLED) & ~self.dropped.all()):
            m.d.sync += self.dropped.eq(self.dropped + 1)
        return m
