"""One ADI of the ADI block: its state machine, ring pointers, configuration and ``pending`` bit.

Ref: ``rtl/regs.rdl`` (CMD.ADI_CMD, CMD.ADI_STATUS, ADI_PAGES) for the
register-level contract; the transitions are those of rtl/cmd/adi.py's
module text. Within one cycle a consume advances HEAD, a doorbell sets TAIL
(or the error), a DRAINING ADI whose HEAD equals TAIL (as they stood at the
start of the cycle) and that is not busy goes DISABLED, an engine fault of an
ENABLED or DRAINING ADI puts it in ERROR, and a command overrides all of
these. ENABLE and LOAD copy the staged configuration and set HEAD and TAIL
to the staged pointers.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..dma.defs import PASID_BITS
from ..regmap import AdiError, AdiState
from .adi_layouts import DOORBELL_LAYOUT, ERROR_WIDTH, IDX_BITS, RING_LAYOUT, SIZE_BITS, STAGED_LAYOUT, AdiCommand

__all__ = ["AdiSlot"]


class AdiSlot(wiring.Component):
    """One ADI's registers and their updates.

    ``pending`` is a register computed from the next values of STATE, HEAD
    and TAIL, so that it always equals "ENABLED or DRAINING, and HEAD !=
    TAIL" on their current values and the engine and the arbiter behind it
    start from a flip-flop (timing).

    Attributes
    ----------
    consume : In(1)
        The fetcher takes this ADI's head descriptor (ignored unless ``pending``).
    doorbell : In(1)
        A doorbell to this ADI acts this cycle, with ``db``'s value.
    db : In(DOORBELL_LAYOUT)
        The doorbell's value (its ``adi`` field is not looked at).
    busy : In(1)
        A descriptor of this ADI is in flight in the engine.
    fault : In(1), fault_code : In(ERROR_WIDTH)
        An engine fault for this ADI, and its AdiError.
    selected : In(1)
        ADI_SEL names this ADI: ``command`` applies to it.
    command : In(AdiCommand)
    config_ok : In(1), ptrs_differ : In(1), staged : In(STAGED_LAYOUT)
        From :class:`~.adi_command.AdiCommands`.
    pending : Out(1)
    state : Out(AdiState), error : Out(ERROR_WIDTH), tail : Out(IDX_BITS)
    ring : Out(RING_LAYOUT)
        The configuration and HEAD the ADI holds (for the fetcher and a save).
    """

    def __init__(self):
        super().__init__({
            "consume": In(1),
            "doorbell": In(1), "db": In(DOORBELL_LAYOUT),
            "busy": In(1),
            "fault": In(1), "fault_code": In(ERROR_WIDTH),
            "selected": In(1), "command": In(AdiCommand),
            "config_ok": In(1), "ptrs_differ": In(1), "staged": In(STAGED_LAYOUT),
            "pending": Out(1),
            "state": Out(AdiState), "error": Out(ERROR_WIDTH), "tail": Out(IDX_BITS),
            "ring": Out(RING_LAYOUT),
        })

    def elaborate(self, platform):
        m = Module()
        state, err, tail = self.state, self.error, self.tail
        head = Signal(IDX_BITS)
        size = Signal(SIZE_BITS)
        # SIZE - 1, set with SIZE (a power of two): the ring index mask, so
        # neither the head's wrap nor the doorbell's range check needs a carry
        # chain (timing).
        wrap = Signal(IDX_BITS)
        base, pasid, domain, engine = Signal(58), Signal(PASID_BITS), Signal(6), Signal(2)
        m.d.comb += [self.ring.base.eq(base), self.ring.size.eq(size), self.ring.pasid.eq(pasid),
                     self.ring.domain.eq(domain), self.ring.head.eq(head), self.ring.engine.eq(engine)]

        active = (state == AdiState.ENABLED) | (state == AdiState.DRAINING)
        head_n, tail_n, state_n = Signal.like(head), Signal.like(tail), Signal.like(state)
        m.d.comb += [head_n.eq(head), tail_n.eq(tail), state_n.eq(state)]
        m.d.sync += [head.eq(head_n), tail.eq(tail_n), state.eq(state_n)]
        db, st = self.db, self.staged
        consumed = self.consume & self.pending
        db_fits = db.below_max & ((db.tail & ~wrap) == 0)     # the value < SIZE, SIZE a power of two
        db_taken = self.doorbell & (state == AdiState.ENABLED)
        tail_set = db_taken & db_fits
        head_inc = Signal(IDX_BITS)
        m.d.comb += head_inc.eq((head + 1) & wrap)
        # `pending` after this cycle, HEAD != TAIL on their next values, as
        # four compares made side by side (HEAD or HEAD + 1 against TAIL or
        # the doorbell's value) and picked by what happens to HEAD and TAIL,
        # rather than one compare behind their muxes (a command's priority
        # chain, then the mux, then the compare was the block's longest
        # path). An ABORT leaves it 0 (DISABLED, HEAD = TAIL), a good ENABLE
        # makes it "the staged pointers differ".
        ne = Array([head != tail, head_inc != tail, head != db.tail, head_inc != db.tail])
        ptrs_reset = Signal()       # set by ABORT below
        ptrs_staged = Signal()      # set by a good ENABLE below
        m.d.sync += self.pending.eq(((state_n == AdiState.ENABLED) | (state_n == AdiState.DRAINING))
                                    & ~ptrs_reset
                                    & Mux(ptrs_staged, self.ptrs_differ, ne[Cat(consumed, tail_set)]))
        copy_config = [size.eq(st.size), wrap.eq(st.size - 1), base.eq(st.base),
                       pasid.eq(st.pasid), domain.eq(st.domain), engine.eq(st.engine)]

        with m.If(consumed):
            m.d.comb += head_n.eq(head_inc)
        with m.If(db_taken):
            with m.If(db_fits):
                m.d.comb += tail_n.eq(db.tail)
            with m.Else():
                m.d.comb += state_n.eq(AdiState.ERROR)
                m.d.sync += err.eq(AdiError.TAIL_BEYOND_RING)
        with m.If((state == AdiState.DRAINING) & (head == tail) & ~self.busy):
            m.d.comb += state_n.eq(AdiState.DISABLED)
        with m.If(self.fault & active):
            m.d.comb += state_n.eq(AdiState.ERROR)
            m.d.sync += err.eq(self.fault_code)
        with m.If(self.selected):
            with m.Switch(self.command):
                with m.Case(AdiCommand.RESET_ERROR):
                    with m.If(state == AdiState.ERROR):
                        m.d.comb += state_n.eq(AdiState.DISABLED)
                        m.d.sync += err.eq(0)
                with m.Case(AdiCommand.ABORT):
                    with m.If(active):
                        m.d.comb += [head_n.eq(tail), state_n.eq(AdiState.DISABLED), ptrs_reset.eq(1)]
                with m.Case(AdiCommand.DRAIN):
                    with m.If(state == AdiState.ENABLED):
                        m.d.comb += state_n.eq(AdiState.DRAINING)
                with m.Case(AdiCommand.ENABLE):
                    with m.If(state == AdiState.DISABLED):
                        with m.If(self.config_ok):
                            m.d.comb += [state_n.eq(AdiState.ENABLED), head_n.eq(st.head), tail_n.eq(st.tail),
                                         ptrs_staged.eq(1)]
                            m.d.sync += copy_config
                        with m.Else():
                            m.d.comb += state_n.eq(AdiState.ERROR)
                            m.d.sync += err.eq(AdiError.BAD_RING_CONFIG)
                with m.Case(AdiCommand.LOAD):
                    with m.If(state == AdiState.DISABLED):
                        m.d.comb += [head_n.eq(st.head), tail_n.eq(st.tail)]
                        m.d.sync += copy_config
        return m
