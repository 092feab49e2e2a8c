"""ADI register block: per-ADI ring configuration, state and doorbell pages.

Two register ports:

* ``csr``: the privileged ``CMD`` window of ``rtl/regs.rdl`` (index/data pair
  ADI_SEL + staged RING_BASE/RING_SIZE/ADI_CFG, ADI_CMD commands, status);
* ``pages``: the ``ADI_PAGES`` window, one 4 KiB page per ADI with the TAIL
  doorbell (fast path) at offset 0x0, HEAD at 0x4 and STATE at 0x8.

Per-ADI state machine (see the RDL text for the register-level contract; the
states are ``AdiState``, the error codes ``AdiError``, both declared there)::

    DISABLED --ENABLE(ok)--> ENABLED --DRAIN--> DRAINING --(head == tail)--> DISABLED
    DISABLED --ENABLE(bad size, engine or staged pointer)--> ERROR (BAD_RING_CONFIG)
    DISABLED --LOAD--> DISABLED (configuration and pointers copied, unchecked)
    ENABLED  --doorbell tail >= size--> ERROR (TAIL_BEYOND_RING)
    ENABLED/DRAINING --ABORT (head = tail)--> DISABLED
    ERROR --RESET_ERROR--> DISABLED
    ENABLED/DRAINING --engine fault (DESC_PASID, FETCH_FAULT)--> ERROR

Within one cycle, for one ADI: a fetcher consume advances HEAD, a doorbell
sets TAIL (or the error), a DRAINING ADI whose HEAD equals TAIL (as they stood
at the start of the cycle) goes DISABLED, and a command overrides all of
these. ENABLE and LOAD set HEAD and TAIL to the staged RING_PTRS (zero unless
a restore staged the pointers a saved ring had). In the Device the two register ports share one bus, so a command and a
doorbell never meet in one cycle.

Towards the descriptor fetcher: ``pending`` (bit i: ADI i is ENABLED or
DRAINING and HEAD != TAIL; a register, computed from the next values of
those registers, so it always equals that condition on their current ones), ``ring`` (each ADI's base, size, PASID, domain and
head), and the ``consume`` stream (always ready) that advances an ADI's head
by one descriptor; a consume for an ADI that is not pending is ignored.
From the engine: ``busy`` (bit i: a descriptor of ADI i is in flight, from
its hand-over to its engine until its completion interrupt message has
reached the interrupt remapper; shown as ADI_STATUS.INFLIGHT; a DRAINING ADI
goes DISABLED only once HEAD == TAIL and it is not busy, so DISABLED after
DRAIN means every posted descriptor has completed) and the
``fault`` stream (always ready) that puts an ENABLED or DRAINING ADI into
ERROR with the engine's code (``DESC_PASID``: a descriptor's PASID differs from
the ADI's; ``FETCH_FAULT``: a descriptor fetch faulted in the DMA tracker or
got an AXI error). A command to the same ADI in the same cycle takes precedence.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .. import regmap
from ..csr.bank import RegisterBank
from ..csr.bus import CsrSignature, Resp
from ..dma.defs import PASID_BITS
from ..params import DeviceParams, require_params
from ..regmap import AdiError, AdiState

__all__ = ["AdiBlock", "AdiState", "AdiError", "RING_LAYOUT", "CONSUME_LAYOUT", "ADI_FAULT_LAYOUT",
           "CSR_ADDR_WIDTH", "PAGES_ADDR_WIDTH", "PAGE_TAIL", "PAGE_HEAD", "PAGE_STATE",
           "MAX_RING_ENTRIES"]

#: Local address widths of the CMD window and the ADI_PAGES window.
CSR_ADDR_WIDTH = exact_log2(regmap.CMD_SIZE)
PAGES_ADDR_WIDTH = exact_log2(regmap.ADI_PAGES_SIZE)
#: Offsets inside an ADI page.
PAGE_TAIL, PAGE_HEAD, PAGE_STATE = 0x0, 0x4, 0x8
MAX_RING_ENTRIES = 4096
_IDX_BITS = 12      # ring index width (4096 entries at most)
_SIZE_BITS = 13


#: Per-ADI ring information for the fetcher: base is the host byte address >> 6.
#: ``engine``: the engine the ring is bound to (CMD.ADI_CFG.ENGINE).
RING_LAYOUT = data.StructLayout({"base": 58, "size": _SIZE_BITS, "pasid": PASID_BITS, "domain": 6,
                                 "head": _IDX_BITS, "engine": 2})
#: A consume beat: the fetcher took ADI ``adi``'s head descriptor.
CONSUME_LAYOUT = data.StructLayout({"adi": 6})
#: An engine fault beat: put ADI ``adi`` into ERROR with ``code`` (an AdiError).
ADI_FAULT_LAYOUT = data.StructLayout({"adi": 6, "code": regmap.CMD_ADI_STATUS_ERROR_CODE_WIDTH})


class AdiBlock(wiring.Component):
    """ADI configuration registers and doorbell pages.

    Parameters
    ----------
    params : DeviceParams
        ``num_adis`` ADIs (1..64).

    Attributes
    ----------
    csr : In(CsrSignature(CSR_ADDR_WIDTH))
        Local addresses of the ``CMD`` window.
    pages : In(CsrSignature(18))
        Local addresses of the ``ADI_PAGES`` window.
    pending : Out(num_adis)
    ring : Out(ArrayLayout(RING_LAYOUT, num_adis))
    consume : In(stream.Signature(CONSUME_LAYOUT))
    busy : In(num_adis)
        Bit i: a descriptor of ADI i is in flight in the engine (ADI_STATUS.INFLIGHT).
    fault : In(stream.Signature(ADI_FAULT_LAYOUT))
        Engine faults that put an ADI into ERROR (always ready).
    """

    def __init__(self, params=DeviceParams()):
        self.params = require_params(params, "ADI block")
        n = params.num_adis
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "pages": In(CsrSignature(PAGES_ADDR_WIDTH)),
            "pending": Out(n),
            "ring": Out(data.ArrayLayout(RING_LAYOUT, n)),
            "consume": In(stream.Signature(CONSUME_LAYOUT)),
            "busy": In(n),
            "fault": In(stream.Signature(ADI_FAULT_LAYOUT)),
        })
        # Each ADI's state and pointers (made here so that a test can check
        # `pending` against them every cycle).
        self._state = [Signal(AdiState, name=f"adi{i}_state") for i in range(n)]
        self._head = [Signal(_IDX_BITS, name=f"adi{i}_head") for i in range(n)]
        self._tail = [Signal(_IDX_BITS, name=f"adi{i}_tail") for i in range(n)]

    def elaborate(self, platform):
        m = Module()
        n = self.params.num_adis

        m.submodules.regs = regs = RegisterBank.for_window("CMD", addr_width=CSR_ADDR_WIDTH,
                                                          base=regmap.CMD_BASE, pipelined=True)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        r = regs.port

        state = self._state
        err = [Signal(regmap.CMD_ADI_STATUS_ERROR_CODE_WIDTH, name=f"adi{i}_err") for i in range(n)]
        head, tail = self._head, self._tail
        size = [Signal(_SIZE_BITS, name=f"adi{i}_size") for i in range(n)]
        # SIZE - 1, set with SIZE (a power of two): the ring index mask, so
        # neither the head's wrap nor the doorbell's range check needs a carry
        # chain (timing).
        wrap = [Signal(_IDX_BITS, name=f"adi{i}_wrap") for i in range(n)]
        base = [Signal(58, name=f"adi{i}_base") for i in range(n)]
        pasid = [Signal(PASID_BITS, name=f"adi{i}_pasid") for i in range(n)]
        domain = [Signal(6, name=f"adi{i}_domain") for i in range(n)]
        engine = [Signal(2, name=f"adi{i}_engine") for i in range(n)]
        dropped = Signal(32)

        # ---- doorbell pages (answer one cycle after stb) --------------------
        pg = self.pages
        page = pg.addr[12:]
        word = pg.addr[2:12]
        page_ok = page < n
        bytemask = Signal(32)
        m.d.comb += bytemask.eq(Cat(*(b.replicate(8) for b in pg.wstrb)))
        # The doorbell is registered and acts one cycle after its strobe (still
        # before the bus can issue the next access): the per-ADI compare and
        # TAIL update then start from flip-flops, not from the bus (timing).
        db_stb = Signal()       # a doorbell write, to ADI `db_page`, acting this cycle
        db_page = Signal(6)
        db_value = Signal(32)
        db_high_zero = Signal()  # db_value < MAX_RING_ENTRIES
        m.d.sync += [db_stb.eq(pg.stb & pg.we & page_ok & (word == PAGE_TAIL >> 2) & pg.wstrb.any()),
                     db_page.eq(page), db_value.eq(pg.wdata & bytemask),
                     db_high_zero.eq(((pg.wdata & bytemask) >> _IDX_BITS) == 0)]

        state_a = Array(state)
        head_a, tail_a = Array(head), Array(tail)
        # Page accesses answer two cycles after stb: the first cycle registers
        # the page and offset, the second reads the selected ADI's register
        # from flip-flops (timing).
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

        # A doorbell to an ADI that is not ENABLED is dropped and counted.
        with m.If(db_stb & (state_a[db_page] != AdiState.ENABLED) & ~dropped.all()):
            m.d.sync += dropped.eq(dropped + 1)

        # ---- commands ---------------------------------------------------------
        sel = r("CMD.ADI_SEL.INDEX")
        c_enable, c_drain = r("CMD.ADI_CMD.ENABLE"), r("CMD.ADI_CMD.DRAIN")
        c_abort, c_reset = r("CMD.ADI_CMD.ABORT"), r("CMD.ADI_CMD.RESET_ERROR")
        c_load = r("CMD.ADI_CMD.LOAD")
        st_size = r("CMD.RING_SIZE.ENTRIES")
        st_head, st_tail = r("CMD.RING_PTRS.HEAD"), r("CMD.RING_PTRS.TAIL")
        # Registered from the staged register and the select, which software
        # writes in earlier bus transactions than the command: the command's
        # fan-out to every ADI then starts at flip-flops (timing).
        size_ok = Signal()      # RING_SIZE, ADI_CFG.ENGINE and RING_PTRS are valid
        m.d.sync += size_ok.eq((st_size >= 2) & (st_size <= MAX_RING_ENTRIES)
                               & ((st_size & (st_size - 1))[:_SIZE_BITS] == 0)
                               & (r("CMD.ADI_CFG.ENGINE") < self.params.num_engines)
                               & (st_head < st_size) & (st_tail < st_size))
        # Whether the staged pointers differ: an ENABLE that restores them leaves
        # the ADI pending exactly then (same registered source as size_ok).
        st_ne = Signal()
        m.d.sync += st_ne.eq(st_head != st_tail)
        sel_hit = Signal(n)
        m.d.sync += sel_hit.eq(Cat(sel == i for i in range(n)))
        cons = self.consume
        flt = self.fault
        m.d.comb += [cons.ready.eq(1), flt.ready.eq(1)]

        for i in range(n):
            active = (state[i] == AdiState.ENABLED) | (state[i] == AdiState.DRAINING)
            # Next values of HEAD, TAIL and STATE (the updates below), so that
            # `pending` leaves from a flip-flop holding exactly what it would be
            # computed from the current registers: the engine and the arbiter
            # behind it start from a register (timing), cycle for cycle as before.
            head_n = Signal.like(head[i], name=f"adi{i}_head_n")
            tail_n = Signal.like(tail[i], name=f"adi{i}_tail_n")
            state_n = Signal.like(state[i], name=f"adi{i}_state_n")
            m.d.comb += [head_n.eq(head[i]), tail_n.eq(tail[i]), state_n.eq(state[i])]
            m.d.sync += [head[i].eq(head_n), tail[i].eq(tail_n), state[i].eq(state_n)]
            consumed = Signal(name=f"adi{i}_consumed")      # a consume advances HEAD
            tail_set = Signal(name=f"adi{i}_tail_set")      # a doorbell sets TAIL
            head_inc = Signal(_IDX_BITS, name=f"adi{i}_head_inc")
            # db_value < SIZE, SIZE a power of two
            db_fits = db_high_zero & ((db_value[:_IDX_BITS] & ~wrap[i]) == 0)
            m.d.comb += [consumed.eq(cons.valid & (cons.payload.adi == i) & self.pending[i]),
                         tail_set.eq(db_stb & (db_page == i) & (state[i] == AdiState.ENABLED) & db_fits),
                         head_inc.eq((head[i] + 1) & wrap[i])]
            # `pending` after this cycle, HEAD != TAIL on their next values,
            # as four compares made side by side (HEAD or HEAD + 1 against
            # TAIL or the doorbell's value) and picked by what happens to
            # HEAD and TAIL, rather than one compare behind their muxes (a
            # command's priority chain, then the mux, then the compare was the
            # block's longest path). An ABORT leaves it 0 (DISABLED, HEAD =
            # TAIL), a good ENABLE makes it "the staged pointers differ".
            ne = Array([head[i] != tail[i], head_inc != tail[i],
                        head[i] != db_value[:_IDX_BITS], head_inc != db_value[:_IDX_BITS]])
            ptrs_reset = Signal(name=f"adi{i}_ptrs_reset")   # set by ABORT below
            ptrs_staged = Signal(name=f"adi{i}_ptrs_staged")  # set by a good ENABLE below
            m.d.sync += self.pending[i].eq(((state_n == AdiState.ENABLED) | (state_n == AdiState.DRAINING))
                                           & ~ptrs_reset
                                           & Mux(ptrs_staged, st_ne, ne[Cat(consumed, tail_set)]))
            # What ENABLE and LOAD copy from the staged registers into the ADI.
            copy_config = [
                size[i].eq(st_size), wrap[i].eq(st_size - 1),
                base[i].eq(Cat(r("CMD.RING_BASE_LO.ADDR"), r("CMD.RING_BASE_HI.ADDR"))),
                pasid[i].eq(r("CMD.ADI_CFG.PASID")),
                domain[i].eq(r("CMD.ADI_CFG.DOMAIN")),
                engine[i].eq(r("CMD.ADI_CFG.ENGINE")),
            ]
            with m.If(consumed):
                m.d.comb += head_n.eq(head_inc)
            with m.If(db_stb & (db_page == i) & (state[i] == AdiState.ENABLED)):
                with m.If(db_fits):
                    m.d.comb += tail_n.eq(db_value)
                with m.Else():
                    m.d.comb += state_n.eq(AdiState.ERROR)
                    m.d.sync += [err[i].eq(AdiError.TAIL_BEYOND_RING)]
            with m.If((state[i] == AdiState.DRAINING) & (head[i] == tail[i]) & ~self.busy[i]):
                m.d.comb += state_n.eq(AdiState.DISABLED)
            with m.If(flt.valid & (flt.payload.adi == i) & active):
                m.d.comb += state_n.eq(AdiState.ERROR)
                m.d.sync += [err[i].eq(flt.payload.code)]
            with m.If(sel_hit[i]):
                with m.If(c_reset):
                    with m.If(state[i] == AdiState.ERROR):
                        m.d.comb += state_n.eq(AdiState.DISABLED)
                        m.d.sync += [err[i].eq(0)]
                with m.Elif(c_abort):
                    with m.If(active):
                        m.d.comb += [head_n.eq(tail[i]), state_n.eq(AdiState.DISABLED), ptrs_reset.eq(1)]
                with m.Elif(c_drain):
                    with m.If(state[i] == AdiState.ENABLED):
                        m.d.comb += state_n.eq(AdiState.DRAINING)
                with m.Elif(c_enable):
                    with m.If(state[i] == AdiState.DISABLED):
                        with m.If(size_ok):
                            m.d.comb += [state_n.eq(AdiState.ENABLED), head_n.eq(st_head), tail_n.eq(st_tail),
                                         ptrs_staged.eq(1)]
                            m.d.sync += copy_config
                        with m.Else():
                            m.d.comb += state_n.eq(AdiState.ERROR)
                            m.d.sync += [err[i].eq(AdiError.BAD_RING_CONFIG)]
                with m.Elif(c_load):
                    with m.If(state[i] == AdiState.DISABLED):
                        m.d.comb += [head_n.eq(st_head), tail_n.eq(st_tail)]
                        m.d.sync += copy_config
            m.d.comb += [
                self.ring[i].base.eq(base[i]), self.ring[i].size.eq(size[i]),
                self.ring[i].pasid.eq(pasid[i]), self.ring[i].domain.eq(domain[i]),
                self.ring[i].head.eq(head[i]), self.ring[i].engine.eq(engine[i]),
            ]

        # ---- status of ADI_SEL --------------------------------------------------
        sel_ok = sel < n
        m.d.comb += [
            r("CMD.ADI_STATUS.STATE").eq(Mux(sel_ok, state_a[sel], 0)),
            r("CMD.ADI_STATUS.ERROR_CODE").eq(Mux(sel_ok, Array(err)[sel], 0)),
            r("CMD.ADI_STATUS.INFLIGHT").eq(Mux(sel_ok, self.busy.bit_select(sel, 1), 0)),
            r("CMD.ADI_PTRS.HEAD").eq(Mux(sel_ok, head_a[sel], 0)),
            r("CMD.ADI_PTRS.TAIL").eq(Mux(sel_ok, tail_a[sel], 0)),
            r("CMD.DROPPED_DOORBELLS.COUNT").eq(dropped),
            # The ADI's configuration as it holds it, for a save.
            r("CMD.RING_CUR_BASE_LO.ADDR").eq(Mux(sel_ok, Array(base)[sel][:26], 0)),
            r("CMD.RING_CUR_BASE_HI.ADDR").eq(Mux(sel_ok, Array(base)[sel][26:], 0)),
            r("CMD.RING_CUR_SIZE.ENTRIES").eq(Mux(sel_ok, Array(size)[sel], 0)),
            r("CMD.ADI_CUR_CFG.PASID").eq(Mux(sel_ok, Array(pasid)[sel], 0)),
            r("CMD.ADI_CUR_CFG.DOMAIN").eq(Mux(sel_ok, Array(domain)[sel], 0)),
            r("CMD.ADI_CUR_CFG.ENGINE").eq(Mux(sel_ok, Array(engine)[sel], 0)),
        ]
        return m
