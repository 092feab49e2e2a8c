"""The ADI block's command decoder: which ADI_CMD acts, on which ADI, and whether the staged ring is valid.

Ref: ``rtl/regs.rdl`` (CMD.ADI_SEL, CMD.ADI_CMD, CMD.RING_SIZE, CMD.ADI_CFG,
CMD.RING_PTRS): ENABLE checks that RING_SIZE is a power of two in
2..MAX_RING_ENTRIES, that ADI_CFG.ENGINE names an engine of the Device and
that both staged pointers are below RING_SIZE (BAD_RING_CONFIG otherwise).
"""

from amaranth.hdl import Cat, Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import regmap
from .adi_layouts import MAX_RING_ENTRIES, SIZE_BITS, STAGED_LAYOUT, AdiCommand

__all__ = ["AdiCommands", "WRITTEN_LAYOUT"]

#: The command bits of one CMD.ADI_CMD write (each a one-cycle pulse).
WRITTEN_LAYOUT = data.StructLayout({"reset_error": 1, "abort": 1, "drain": 1, "enable": 1, "load": 1})


class AdiCommands(wiring.Component):
    """ADI_CMD decoder of ``num_adis`` ADIs on a Device of ``num_engines`` engines.

    ``command`` is the command written this cycle, by the priority of
    :class:`~.adi_layouts.AdiCommand` when several bits are written at once.
    ``selected``, ``config_ok`` and ``ptrs_differ`` are registered from
    ADI_SEL and the staged registers, which software writes in earlier bus
    transactions than the command: the command's fan-out to every ADI then
    starts at flip-flops (timing).

    Parameters
    ----------
    num_adis : int
        1..64.
    num_engines : int
        Engines an ADI may be bound to (ADI_CFG.ENGINE below it), 1..4.

    Attributes
    ----------
    sel : In(CMD_ADI_SEL_INDEX_WIDTH)
        CMD.ADI_SEL.INDEX.
    written : In(WRITTEN_LAYOUT)
        The CMD.ADI_CMD bits written this cycle.
    staged : In(STAGED_LAYOUT)
        The staged registers (RING_BASE_LO/HI, RING_SIZE, ADI_CFG, RING_PTRS).
    command : Out(AdiCommand)
        The command acting this cycle (NONE without a write).
    selected : Out(num_adis)
        Bit i: ADI_SEL was i (one cycle late).
    config_ok : Out(1)
        RING_SIZE, ADI_CFG.ENGINE and RING_PTRS were valid for an ENABLE (one cycle late).
    ptrs_differ : Out(1)
        The staged HEAD and TAIL differed (one cycle late): an ENABLE that
        applies them leaves the ADI pending exactly then.

    Raises
    ------
    ValueError
        If ``num_adis`` is not an integer in 1..64 or ``num_engines`` not one in 1..4.
    """

    def __init__(self, num_adis, num_engines):
        if not isinstance(num_adis, int) or not 1 <= num_adis <= 64:
            raise ValueError(f"Number of ADIs must be an integer in 1..64, not {num_adis!r}")
        if not isinstance(num_engines, int) or not 1 <= num_engines <= 4:
            raise ValueError(f"Number of engines must be an integer in 1..4, not {num_engines!r}")
        self.num_adis, self.num_engines = num_adis, num_engines
        super().__init__({
            "sel": In(regmap.CMD_ADI_SEL_INDEX_WIDTH),
            "written": In(WRITTEN_LAYOUT),
            "staged": In(STAGED_LAYOUT),
            "command": Out(AdiCommand),
            "selected": Out(num_adis),
            "config_ok": Out(1),
            "ptrs_differ": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        w, st = self.written, self.staged
        with m.If(w.reset_error):
            m.d.comb += self.command.eq(AdiCommand.RESET_ERROR)
        with m.Elif(w.abort):
            m.d.comb += self.command.eq(AdiCommand.ABORT)
        with m.Elif(w.drain):
            m.d.comb += self.command.eq(AdiCommand.DRAIN)
        with m.Elif(w.enable):
            m.d.comb += self.command.eq(AdiCommand.ENABLE)
        with m.Elif(w.load):
            m.d.comb += self.command.eq(AdiCommand.LOAD)
        size = st.size
        m.d.sync += [
            self.config_ok.eq((size >= 2) & (size <= MAX_RING_ENTRIES)
                              & ((size & (size - 1))[:SIZE_BITS] == 0)
                              & (st.engine < self.num_engines)
                              & (st.head < size) & (st.tail < size)),
            self.ptrs_differ.eq(st.head != st.tail),
            self.selected.eq(Cat(self.sel == i for i in range(self.num_adis))),
        ]
        return m
