"""Register decode for a block with many registers and windows, at a high clock.

:class:`BankedRegisters` has the bus behaviour of
:class:`~siov.rtl.csr.bank.RegisterBank` (DECERR where nothing answers,
SLVERR on a write to a read-only register, WSTRB byte lanes, the same field
ports through :meth:`BankedRegisters.port`, external windows forwarded with
their local address) and costs latency for a short clock path. A single
bank that also decodes windows gates the enable of its pipelined match
register with the window decode (``local = stb & ~window hit``), a chain of
address compares into an enable of high fan-out, and its read mux is an
AND-OR of every register; with a few dozen registers both are too long for a
200 MHz ECP5 clock. So:

* ``stb`` is registered, and the address decoded into flip-flops in the same
  cycle (window hits, "no window", the bank): the address is held until the
  answer, so each select is an AND of flip-flops;
* a window's strobe is that registered ``stb`` and its hit (its ``we`` is
  cleared when the window is not hit: only read under the strobe, it keeps
  the windows' copies of ``we`` apart from each other); the block behind a
  window may register it again;
* the registers are split by address into banks of ``bank_words`` words (an
  AND-OR of at most that many registers each), and a request for them is
  registered first, with the select of its bank and a copy of the write per
  bank (each fans out to few registers);
* a bank sees only the address bits that the registers span, plus one bit
  set for every other address (bank 0 takes those and answers DECERR, as for
  any address outside the registers and windows), so its match register's
  enable is a flip-flop;
* each bank's read mux is split in two register stages (``split_read`` of
  :class:`~siov.rtl.csr.bank.RegisterBank`): its match flip-flops fan out
  to every bit of the mux, so their routes are long, and one LUT level
  fewer after them is what the clock needs;
* the answer (``ack``, ``rdata``, ``resp``) is registered, so the bridge's
  response enables hang off one flip-flop.

A register answers six cycles after ``stb``; a window's answer takes two
cycles more than it would straight on the bus (the registered strobe, the
registered answer). The bus allows any latency (the request is held until
``ack``) and accesses are ordered by the bus, one at a time. The windows must
lie above the registers' span (every address a bank sees must be outside
them).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .bank import RegisterBank
from .bus import CsrSignature

__all__ = ["BankedRegisters"]


class BankedRegisters(wiring.Component):
    """Registered window decode in front of register banks of ``bank_words`` words.

    Parameters
    ----------
    registers, externals : iterable
        As for :class:`~siov.rtl.csr.bank.RegisterBank` (absolute offsets).
    addr_width : int
        Byte address width of the register bus.
    base : int
        Absolute address of the window; the bus carries ``absolute - base``.
    bank_words : int
        Registers per bank (a power of two).

    Attributes
    ----------
    ext : dict of str to CsrSignature port
        The external windows' ports, by window name (also ``ext_<name>``).

    Raises
    ------
    ValueError
        If a window overlaps the addresses the banks decode, or as
        :class:`~siov.rtl.csr.bank.RegisterBank` for the registers.
    """

    def __init__(self, registers, externals=(), *, addr_width, base=0, bank_words=8):
        registers, externals = tuple(registers), tuple(externals)
        if not registers:
            raise ValueError("BankedRegisters needs at least one register (use RegisterBank for windows only)")
        self._base, self._addr_width = base, addr_width
        span = max(reg.offset - base for reg in registers) + 4
        self._lb = ceil_log2(span)                       # address bits the registers span
        self._gb = exact_log2(bank_words * 4)            # byte address bits inside a bank
        for e in externals:
            # Every address a bank can see (below 2 << lb) must be outside the windows.
            if e.offset - base < 2 << self._lb:
                raise ValueError(f"Window {e.path} overlaps the register span of the banks")
        self._externals = externals
        n_banks = max(1, -(-span // (bank_words * 4)))
        self._banks = []
        self._owner = {}
        for g in range(n_banks):
            members = [reg for reg in registers if (reg.offset - base) >> self._gb == g]
            bank = RegisterBank(members, (), addr_width=addr_width, base=base, pipelined=True,
                                split_read=True)
            self._banks.append(bank)
            self._owner.update({reg.path: bank for reg in members})
        super().__init__({"csr": In(CsrSignature(addr_width)),
                          **{f"ext_{e.name}": Out(CsrSignature(max(2, (e.size - 1).bit_length())))
                             for e in externals}})
        self.ext = {e.name: getattr(self, f"ext_{e.name}") for e in externals}

    @classmethod
    def for_window(cls, window, *, addr_width, base, bank_words=8):
        """The decode of external window ``window``, from the regmap."""
        from .. import regmap
        from .regdefs import window_contents
        regs, exts = window_contents(window, regmap.REGISTERS.values(), regmap.EXTERNALS.values())
        return cls(regs, exts, addr_width=addr_width, base=base, bank_words=bank_words)

    def port(self, path):
        """The bank port of ``"REGFILE.REG.FIELD"`` (as :meth:`RegisterBank.port`)."""
        return self._owner[path.rsplit(".", 1)[0]].port(path)

    def elaborate(self, platform):
        m = Module()
        base, lb, gb = self._base, self._lb, self._gb
        csr = self.csr
        # The strobe is registered, and the address decoded into flip-flops
        # in the same cycle (the address is held until the answer): every
        # select below is then an AND of flip-flops.
        stb = Signal(name="csr_stb_q")
        m.d.sync += stb.eq(csr.stb)
        hits = []
        for e in self._externals:
            port = self.ext[e.name]
            lw = len(port.addr)
            hit = Signal(name=f"hit_{e.name}")
            decode = csr.addr[lw:] == (e.offset - base) >> lw
            m.d.sync += hit.eq(decode)
            m.d.comb += [port.stb.eq(stb & hit), port.we.eq(csr.we & hit), port.addr.eq(csr.addr[:lw]),
                         port.wdata.eq(csr.wdata), port.wstrb.eq(csr.wstrb)]
            hits.append(hit)
        # The banks' request, a cycle later (held, like the bus's, until its ack).
        n_banks = len(self._banks)
        outside = Signal(name="lq_outside")
        m.d.comb += outside.eq(csr.addr[lb:].any())
        group = csr.addr[gb:lb] if lb > gb else Const(0, 1)
        no_hit = Signal(name="csr_no_hit")
        # The bank select from registered parts of the address (whether it
        # is above the registers, its bank bits) and the windows' registered
        # hits, decoded in the next cycle: straight from the address, each
        # was four LUTs deep.
        outside_q, group_q = Signal(name="csr_outside"), Signal(len(group), name="csr_group")
        bank_sel = Signal(n_banks, name="csr_bank_sel")
        m.d.sync += [outside_q.eq(outside), group_q.eq(group)]
        m.d.comb += no_hit.eq(~Cat(*hits).any() if hits else 1)
        m.d.comb += bank_sel.eq(Cat(*(Mux(outside_q, g == 0, group_q == g) for g in range(n_banks))))
        lq_stb = Signal(n_banks, name="lq_stb")
        lq_addr = Signal(lb + 1, name="lq_addr")
        m.d.sync += [lq_stb.eq((stb & no_hit).replicate(n_banks) & bank_sel),
                     lq_addr.eq(Cat(csr.addr[:lb], outside))]
        for g, bank in enumerate(self._banks):
            m.submodules[f"regs{g}"] = bank
            # Each bank has its own copy of the write (kept distinct by
            # clearing it for the other banks, which only matters while no
            # bank acts): the data and enables fan out to few registers each.
            mine = group == g           # (a write outside the registers writes nothing)
            we, wdata, wstrb = Signal(name=f"lq{g}_we"), Signal(32, name=f"lq{g}_wdata"), Signal(4, name=f"lq{g}_wstrb")
            m.d.sync += [we.eq(csr.we & mine), wdata.eq(csr.wdata & mine.replicate(32)),
                         wstrb.eq(csr.wstrb & mine.replicate(4))]
            m.d.comb += [bank.csr.stb.eq(lq_stb[g]), bank.csr.we.eq(we), bank.csr.addr.eq(lq_addr),
                         bank.csr.wdata.eq(wdata), bank.csr.wstrb.eq(wstrb)]
        # The answers: the banks' (each masked by its own ack; a bank answers
        # three cycles after its strobe, so their ack is that strobe, delayed) or
        # a window's, registered once more: the bus's ack is one flip-flop, not
        # an OR of every responder in front of the bridge's response enables.
        l_act, l_act2, l_ack = Signal(name="lq_act"), Signal(name="lq_act2"), Signal(name="lq_ack")
        m.d.sync += [l_act.eq(lq_stb.any()), l_act2.eq(l_act), l_ack.eq(l_act2)]
        ack, rdata, resp = l_ack, Const(0, 32), Const(0, 2)
        for bank in self._banks:
            rdata, resp = rdata | bank.csr.rdata, resp | bank.csr.resp
        for port in self.ext.values():
            ack = ack | port.ack
            rdata = rdata | (port.rdata & port.ack.replicate(32))
            resp = resp | (port.resp & port.ack.replicate(2))
        m.d.sync += [csr.ack.eq(ack), csr.rdata.eq(rdata), csr.resp.eq(resp)]
        return m
