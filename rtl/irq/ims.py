"""The interrupt remapper's IMS table: one row per entry, one block RAM port for reads and writes.

Ref: Intel Scalable IOV spec (IMS); the entry's words are ``IRQ.IMS.ENTRY``
of ``rtl/regs.rdl`` (ADDR_LO, ADDR_HI, DATA, CTRL).

A row is four 36-bit lanes (IMS word ``w`` in lane ``w``): the 32-bit word,
then a flag decoded when the word is written (lane 0: ADDR_LO bits 31:20 are
0xFEE; lane 1: ADDR_HI is not zero), then zeros. The row is split into
18-bit memories that share one address for reads and writes, so that each
maps to one ECP5 DP16KD port whose read-before-write mode is native: no
logic sits between the block RAM's output and the register that takes it.

The row at ``addr`` in cycle ``c`` (as the writes before ``c`` left it: a
write in ``c`` itself is not seen) is on ``raw`` in ``c + 2``: the block
RAM's read, then ``raw``, registered straight off it. With
``primitive="ecp5"`` that register is the DP16KD's own output register.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..ecp5 import dp16kd

__all__ = ["ImsTable", "LANE", "ROW", "READ_LATENCY"]

#: Bits of a lane: a 32-bit word, a decoded flag, zeros.
LANE = 36
#: Bits of a row: four lanes.
ROW = 4 * LANE
#: Cycles from a row's address to the row on ``raw``.
READ_LATENCY = 2


class ImsTable(wiring.Component):
    """IMS rows of ``entries`` entries behind one read-before-write port.

    Parameters
    ----------
    entries : int
        Rows (a power of two; at most 1024 with ``primitive="ecp5"``).
    peek : bool
        Adds an asynchronous read port for formal harnesses (``peek_addr``,
        ``peek_data``: the four words, ``peek_flags``: the flags of lanes 0 and 1).
    primitive : None or "ecp5"
        Inferred memories (simulation, formal, lint) or DP16KD instances.

    Attributes
    ----------
    addr : In(idx_bits)
        The row read (and written) this cycle.
    lane_en : In(4), wdata : In(36)
        Lanes written with ``wdata`` at the end of this cycle.
    raw : Out(144)
        The row addressed :data:`READ_LATENCY` cycles ago.
    """

    def __init__(self, entries, *, peek=False, primitive=None):
        self.entries = entries
        self.primitive = primitive
        self.idx_bits = ib = (entries - 1).bit_length()
        members = {"addr": In(ib), "lane_en": In(4), "wdata": In(LANE), "raw": Out(ROW)}
        if peek:
            members.update(peek_addr=In(ib), peek_data=Out(128), peek_flags=Out(2))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        peek = hasattr(self, "peek_addr")
        row, peek_row = [], []
        for j in range(ROW // 18):
            lane = 18 * j // LANE
            wdata = self.wdata[(18 * j) % LANE:][:18]
            if self.primitive == "ecp5":
                m.submodules[f"ims{j}"] = dp16kd(f"ims{j}", a=dict(
                    addr=self.addr, we=self.lane_en[lane], wdata=wdata, rdata=self.raw[18 * j:][:18],
                    regmode="OUTREG", writemode="READBEFOREWRITE"))
                continue
            mem = Memory(shape=18, depth=self.entries, init=[])
            m.submodules[f"ims{j}"] = mem
            w = mem.write_port()
            r = mem.read_port()
            m.d.comb += [w.addr.eq(self.addr), r.addr.eq(self.addr), w.data.eq(wdata),
                         w.en.eq(self.lane_en[lane])]
            row.append(r.data)
            if peek:
                pr = mem.read_port(domain="comb")
                m.d.comb += pr.addr.eq(self.peek_addr)
                peek_row.append(pr.data)
        if row:
            m.d.sync += self.raw.eq(Cat(*row))
        if peek:
            pr = Cat(*peek_row)
            m.d.comb += [self.peek_data.eq(Cat(*(pr[LANE * w:][:32] for w in range(4)))),
                         self.peek_flags.eq(Cat(pr[32], pr[LANE + 32]))]
        return m
