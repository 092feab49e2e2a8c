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
head), and the ``consume`` stream that advances an ADI's head by one
descriptor in the cycle of its beat; a consume for an ADI that is not
pending is ignored.
From the engine: ``busy`` (bit i: a descriptor of ADI i is in flight, from
its hand-over to its engine until its completion interrupt message has
reached the interrupt remapper; shown as ADI_STATUS.INFLIGHT; a DRAINING ADI
goes DISABLED only once HEAD == TAIL and it is not busy, so DISABLED after
DRAIN means every posted descriptor has completed) and the
``fault`` stream that puts an ENABLED or DRAINING ADI into
ERROR with the engine's code (``DESC_PASID``: a descriptor's PASID differs from
the ADI's; ``FETCH_FAULT``: a descriptor fetch faulted in the DMA tracker or
got an AXI error). A command to the same ADI in the same cycle takes precedence.

Parts: :class:`~.adi_pages.AdiPages` (the doorbell pages),
:class:`~.adi_command.AdiCommands` (the ADI_CMD decoder) and one
:class:`~.adi_slot.AdiSlot` per ADI (its state machine, pointers and
configuration); this block connects them and shows ADI_SEL's status.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import regmap
from ..csr.bank import RegisterBank
from ..csr.bus import CsrSignature
from ..params import DeviceParams, require_params
from ..regmap import AdiError, AdiState
from .adi_command import AdiCommands
from .adi_layouts import (ADI_FAULT_LAYOUT, CONSUME_LAYOUT, CSR_ADDR_WIDTH, MAX_RING_ENTRIES, PAGE_HEAD,
                          PAGE_STATE, PAGE_TAIL, PAGES_ADDR_WIDTH, RING_LAYOUT, STAGED_LAYOUT)
from .adi_pages import AdiPages
from .adi_slot import AdiSlot

__all__ = ["AdiBlock", "AdiState", "AdiError", "RING_LAYOUT", "CONSUME_LAYOUT", "ADI_FAULT_LAYOUT",
           "CSR_ADDR_WIDTH", "PAGES_ADDR_WIDTH", "PAGE_TAIL", "PAGE_HEAD", "PAGE_STATE",
           "MAX_RING_ENTRIES"]


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
    consume : In(stream.Signature(CONSUME_LAYOUT, always_ready=True))
    busy : In(num_adis)
        Bit i: a descriptor of ADI i is in flight in the engine (ADI_STATUS.INFLIGHT).
    fault : In(stream.Signature(ADI_FAULT_LAYOUT, always_ready=True))
        Engine faults that put an ADI into ERROR.
    """

    def __init__(self, params=DeviceParams()):
        self.params = require_params(params, "ADI block")
        n = params.num_adis
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "pages": In(CsrSignature(PAGES_ADDR_WIDTH)),
            "pending": Out(n),
            "ring": Out(data.ArrayLayout(RING_LAYOUT, n)),
            "consume": In(stream.Signature(CONSUME_LAYOUT, always_ready=True)),
            "busy": In(n),
            "fault": In(stream.Signature(ADI_FAULT_LAYOUT, always_ready=True)),
        })
        # One part per ADI, made here so that a test can check `pending`
        # against each ADI's state and pointers every cycle.
        self._slots = [AdiSlot() for _ in range(n)]
        self._state = [s.state for s in self._slots]
        self._head = [s.ring.head for s in self._slots]
        self._tail = [s.tail for s in self._slots]

    def elaborate(self, platform):
        m = Module()
        n = self.params.num_adis
        slots = self._slots

        m.submodules.regs = regs = RegisterBank.for_window("CMD", addr_width=CSR_ADDR_WIDTH,
                                                          base=regmap.CMD_BASE, pipelined=True)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        r = regs.port

        m.submodules.doorbells = pages = AdiPages(n)
        wiring.connect(m, wiring.flipped(self.pages), pages.pages)
        db = pages.doorbell

        m.submodules.commands = cmd = AdiCommands(n, self.params.num_engines)
        staged = Signal(STAGED_LAYOUT)
        m.d.comb += [
            staged.base.eq(Cat(r("CMD.RING_BASE_LO.ADDR"), r("CMD.RING_BASE_HI.ADDR"))),
            staged.size.eq(r("CMD.RING_SIZE.ENTRIES")),
            staged.pasid.eq(r("CMD.ADI_CFG.PASID")),
            staged.domain.eq(r("CMD.ADI_CFG.DOMAIN")),
            staged.engine.eq(r("CMD.ADI_CFG.ENGINE")),
            staged.head.eq(r("CMD.RING_PTRS.HEAD")), staged.tail.eq(r("CMD.RING_PTRS.TAIL")),
            cmd.staged.eq(staged),
            cmd.sel.eq(r("CMD.ADI_SEL.INDEX")),
            cmd.written.reset_error.eq(r("CMD.ADI_CMD.RESET_ERROR")),
            cmd.written.abort.eq(r("CMD.ADI_CMD.ABORT")),
            cmd.written.drain.eq(r("CMD.ADI_CMD.DRAIN")),
            cmd.written.enable.eq(r("CMD.ADI_CMD.ENABLE")),
            cmd.written.load.eq(r("CMD.ADI_CMD.LOAD")),
        ]

        cons, flt = self.consume, self.fault
        for i, slot in enumerate(slots):
            m.submodules[f"adi{i}"] = slot
            m.d.comb += [
                slot.consume.eq(cons.valid & (cons.payload.adi == i)),
                slot.doorbell.eq(db.valid & (db.payload.adi == i)), slot.db.eq(db.payload),
                slot.busy.eq(self.busy[i]),
                slot.fault.eq(flt.valid & (flt.payload.adi == i)), slot.fault_code.eq(flt.payload.code),
                slot.selected.eq(cmd.selected[i]), slot.command.eq(cmd.command),
                slot.config_ok.eq(cmd.config_ok), slot.ptrs_differ.eq(cmd.ptrs_differ), slot.staged.eq(staged),
                self.pending[i].eq(slot.pending), self.ring[i].eq(slot.ring),
                pages.state[i].eq(slot.state), pages.head[i].eq(slot.ring.head), pages.tail[i].eq(slot.tail),
            ]

        # ---- status of ADI_SEL --------------------------------------------------
        sel = r("CMD.ADI_SEL.INDEX")
        sel_ok = sel < n

        def of_sel(values):
            return Mux(sel_ok, Array(values)[sel], 0)
        ring = [s.ring for s in slots]
        m.d.comb += r("CMD.DROPPED_DOORBELLS.COUNT").eq(pages.dropped)
        # The selected ADI's view, registered: the 16-way select gathers fields
        # from every slot, and with the register bank's read select behind it in
        # the same cycle it was the 2-engine Device's longest path (15.5 ns, 13.3
        # of it routing, on the 85F). A read sees the view of the cycle before
        # it is sampled; an MMIO read takes several cycles from its address, so
        # an ADI_SEL written before it is always in force.
        m.d.sync += [
            r("CMD.ADI_STATUS.STATE").eq(of_sel([s.state for s in slots])),
            r("CMD.ADI_STATUS.ERROR_CODE").eq(of_sel([s.error for s in slots])),
            r("CMD.ADI_STATUS.INFLIGHT").eq(Mux(sel_ok, self.busy.bit_select(sel, 1), 0)),
            r("CMD.ADI_PTRS.HEAD").eq(of_sel([x.head for x in ring])),
            r("CMD.ADI_PTRS.TAIL").eq(of_sel([s.tail for s in slots])),
            # The ADI's configuration as it holds it, for a save.
            r("CMD.RING_CUR_BASE_LO.ADDR").eq(of_sel([x.base[:26] for x in ring])),
            r("CMD.RING_CUR_BASE_HI.ADDR").eq(of_sel([x.base[26:] for x in ring])),
            r("CMD.RING_CUR_SIZE.ENTRIES").eq(of_sel([x.size for x in ring])),
            r("CMD.ADI_CUR_CFG.PASID").eq(of_sel([x.pasid for x in ring])),
            r("CMD.ADI_CUR_CFG.DOMAIN").eq(of_sel([x.domain for x in ring])),
            r("CMD.ADI_CUR_CFG.ENGINE").eq(of_sel([x.engine for x in ring])),
        ]
        return m
