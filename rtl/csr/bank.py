"""Register decode built from the register-map tables.

The tables in :mod:`siov.rtl.regmap` are generated from ``rtl/regs.rdl``;
this component turns them into decode logic, so the RDL is the only place an
address or field is written. Field behaviour follows SystemRDL 2.0:

========================  ===============================================
RDL                       port on the bank
========================  ===============================================
``sw=rw, hw=r``           ``Out(width)``: the stored value
``sw=r, hw=w``            ``In(width)``: the block drives what software reads
``sw=r, hw=na``           none: a constant (the field's reset value)
``singlepulse``           ``Out(1)``-per-bit pulse for one cycle on write
``swacc``                 ``<field>_swacc`` ``Out(1)``: strobe on a read
``swmod``                 ``<field>_swmod`` ``Out(1)``: strobe on a write
``external`` window       ``ext_<name>`` ``Out(CsrSignature)``, local address
========================  ===============================================

Bus behaviour: no register at the address answers DECERR; a write to a
register with no software-writable field answers SLVERR and changes nothing;
WSTRB selects the bytes that change.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bus import CsrSignature, Resp

__all__ = ["RegisterBank", "port_name"]


def port_name(reg, field):
    """Name of the bank port for ``field`` of ``reg``: ``global_cap0_num_adis``."""
    return f"{reg.name}_{field.name.lower()}"


class RegisterBank(wiring.Component):
    """Decode for a set of registers and external windows.

    Parameters
    ----------
    registers : iterable of Register
        Registers held in this bank.
    externals : iterable of External
        Windows forwarded to other blocks.
    addr_width : int
        Byte address width of the register bus.
    base : int
        Absolute address of this bank's window; offsets in the tables are
        absolute, the bus carries ``absolute - base``.
    pipelined : bool
        Decode the address in the cycle of ``stb`` and act one cycle later
        (``ack`` two cycles after ``stb`` instead of one), so that no address
        compare sits in front of the read mux or the write enables. Every
        block whose testbench does not depend on the exact register latency
        uses it.
    split_read : bool
        With ``pipelined``: the read mux in two register stages, the AND-OR
        of each group of four registers in the acting cycle, their OR a
        cycle later (``ack`` three cycles after ``stb``). A bank of eight
        registers then has two LUT levels after its match flip-flops, whose
        high fan-out makes long routes, rather than three.

    Raises
    ------
    ValueError
        If two registers or windows overlap, or a field combination is not supported.
    """

    def __init__(self, registers, externals=(), *, addr_width, base=0, pipelined=False, split_read=False):
        import dataclasses
        if split_read and not pipelined:
            raise ValueError("split_read needs pipelined=True")
        self.pipelined = bool(pipelined)
        self.split_read = bool(split_read)
        self._registers = tuple(dataclasses.replace(r, offset=r.offset - base) for r in registers)
        self._externals = tuple(dataclasses.replace(e, offset=e.offset - base) for e in externals)
        for item in self._registers + self._externals:
            if not 0 <= item.offset < (1 << addr_width):
                raise ValueError(f"{item.path} at {item.offset + base:#x} lies outside the bank "
                                 f"window {base:#x}..{base + (1 << addr_width):#x}")
        self._addr_width = addr_width
        spans = sorted([(r.offset, r.offset + 4, r.path) for r in self._registers] +
                       [(e.offset, e.offset + e.size, e.path) for e in self._externals])
        for (a0, a1, p), (b0, b1, q) in zip(spans, spans[1:]):
            if b0 < a1:
                raise ValueError(f"Register {q} at {b0:#x} overlaps {p} ({a0:#x}..{a1:#x})")
        members = {"csr": In(CsrSignature(addr_width))}
        for reg in self._registers:
            if reg.offset % 4:
                raise ValueError(f"Register {reg.path} at {reg.offset:#x} is not word aligned")
            for f in reg.fields:
                name = port_name(reg, f)
                if f.sw_writable and f.hw == "w" and not f.singlepulse:
                    raise ValueError(f"Field {reg.path}.{f.name}: sw-writable fields written by "
                                     f"hardware are not supported; split the field")
                if f.singlepulse:
                    members[name] = Out(f.width)
                elif f.has_storage:
                    members[name] = Out(f.width, init=f.reset or 0)
                elif f.hw == "w":
                    members[name] = In(f.width)
                if f.swacc:
                    members[name + "_swacc"] = Out(1)
                if f.swmod:
                    members[name + "_swmod"] = Out(1)
        for ext in self._externals:
            if ext.size & (ext.size - 1) or ext.offset % ext.size:
                raise ValueError(f"External window {ext.path} must be a naturally aligned power of two, "
                                 f"not {ext.size:#x} at {ext.offset:#x}")
            members[f"ext_{ext.name}"] = Out(CsrSignature(max(2, (ext.size - 1).bit_length())))
        super().__init__(members)

    @classmethod
    def for_window(cls, window, *, addr_width, base=0, pipelined=False):
        """The bank for external window ``window`` (``""``: the device top), from the regmap."""
        from .. import regmap
        from .regdefs import window_contents
        regs, exts = window_contents(window, regmap.REGISTERS.values(), regmap.EXTERNALS.values())
        return cls(regs, exts, addr_width=addr_width, base=base, pipelined=pipelined)

    def port(self, path):
        """The bank port of ``"REGFILE.REG.FIELD"`` (or ``"...FIELD_swacc"``)."""
        *reg_path, fname = path.split(".")
        suffix = ""
        for s in ("_swacc", "_swmod"):
            if fname.endswith(s):
                fname, suffix = fname[:-len(s)], s
        reg = next(r for r in self._registers if r.path == ".".join(reg_path))
        return getattr(self, port_name(reg, reg.field(fname)) + suffix)

    def elaborate(self, platform):
        m = Module()
        csr = self.csr
        word = csr.addr[2:]

        bytemask = Signal(32)
        m.d.comb += bytemask.eq(Cat(*(b.replicate(8) for b in csr.wstrb)))

        local_ack = Signal()
        local_rdata = Signal(32)
        ext_hit = Signal()
        ext_hits = []
        ext_ack = []
        ext_rdata = []
        ext_resps = []

        for ext in self._externals:
            port = getattr(self, f"ext_{ext.name}")
            lw = port.addr.shape().width
            hit = Signal(name=f"hit_{ext.name}")
            m.d.comb += hit.eq(csr.addr[lw:] == (ext.offset >> lw))
            m.d.comb += [
                port.stb.eq(csr.stb & hit),
                port.we.eq(csr.we),
                port.addr.eq(csr.addr[:lw]),
                port.wdata.eq(csr.wdata),
                port.wstrb.eq(csr.wstrb),
            ]
            ext_ack.append(port.ack)
            ext_rdata.append(Signal(32, name=f"rdata_{ext.name}"))
            m.d.comb += ext_rdata[-1].eq(port.rdata & port.ack.replicate(32))
            ext_hits.append(hit)
            ext_resps.append(port.resp & port.ack.replicate(2))
        if ext_hits:
            m.d.comb += ext_hit.eq(Cat(*ext_hits).any())

        # Pulses and strobes default low.
        for reg in self._registers:
            for f in reg.fields:
                name = port_name(reg, f)
                if f.singlepulse:
                    m.d.sync += getattr(self, name).eq(0)
                if f.swacc:
                    m.d.sync += getattr(self, name + "_swacc").eq(0)
                if f.swmod:
                    m.d.sync += getattr(self, name + "_swmod").eq(0)

        # A local register access reads (an AND-OR of the matched register's
        # value) or writes in the cycle ``act``, and ``ack`` follows one cycle
        # later. Without ``pipelined`` that is the cycle of ``stb``; with it,
        # the cycle of ``stb`` only registers the address decode (see
        # :meth:`_decode`) and the access acts one cycle later (timing).
        # Externals get ``stb`` at once and answer themselves.
        regs = list(self._registers)
        act = Signal()                  # a local request acts this cycle
        local = csr.stb & ~ext_hit
        if self.pipelined:
            m.d.sync += act.eq(local)
        else:
            m.d.comb += act.eq(local)
        low, high, low_any, low_writable = self._decode(m, word, regs)
        match = Cat(*(low[k] & high for k in range(len(regs))))
        resp_q = Signal(2)
        rdata_q = Signal(32)
        read_any = Signal(32)
        hit_any = Signal()
        writable = Signal()
        # The read selects by the low half of the decode alone; the high half
        # gates the read's acknowledge (a read of no register answers zero).
        selected = [self._read_value(reg) & low[k].replicate(32) for k, reg in enumerate(regs)]
        hit_now = high & low_any
        writable_now = high & low_writable
        if self.split_read and regs:
            # Stage one (the acting cycle): each group of four registers'
            # AND-OR into a register; stage two: their OR, kept for a read
            # (the match is held: the bus makes one access at a time).
            parts = [Signal(32, name=f"read_part{j // 4}") for j in range(0, len(regs), 4)]
            m.d.sync += [part.eq(_or_all(selected[j * 4:j * 4 + 4])) for j, part in enumerate(parts)]
            m.d.comb += read_any.eq(_or_all(parts))
            # The access acts, then stage one registers, then the answer,
            # from registers only (whether a register matched, and whether
            # it is writable, registered with stage one).
            act2 = Signal(name="act2")
            m.d.sync += [act2.eq(act), hit_any.eq(hit_now), writable.eq(writable_now)]
            answer = act2
        else:
            m.d.comb += [read_any.eq(0 if not regs else _or_all(selected)),
                         hit_any.eq(hit_now), writable.eq(writable_now)]
            answer = act
        # The answer is registered in every cycle, from the match alone: a
        # read's data is the AND-OR (zero where no register matched), and the
        # response a function of the match and ``we``, with no access flag or
        # "no match" mux in front of either. What is not an answer is masked
        # by the acknowledge, a read's data by a read's acknowledge (a write
        # answers zero data): the masks are flip-flops.
        read_ack = Signal(name="read_ack")
        m.d.sync += [local_ack.eq(answer), read_ack.eq(answer & ~csr.we & high), rdata_q.eq(read_any),
                     resp_q.eq(Mux(~hit_any, Resp.DECERR,
                                   Mux(csr.we & ~writable, Resp.SLVERR, Resp.OKAY)))]
        with m.If(act):
            for k, reg in enumerate(regs):
                with m.If(match[k]):
                    self._decode_register(m, reg, bytemask)

        m.d.comb += local_rdata.eq(rdata_q & read_ack.replicate(32))
        rdata, resp, ack = local_rdata, resp_q & local_ack.replicate(2), local_ack
        for r in ext_rdata:
            rdata = rdata | r
        for r in ext_resps:
            resp = resp | r
        for a in ext_ack:
            ack = ack | a
        m.d.comb += [csr.ack.eq(ack), csr.rdata.eq(rdata), csr.resp.eq(resp)]
        return m

    def _decode(self, m, word, regs):
        """The word address decoded in two halves: the low ``L`` bits, in which the
        registers differ, one flag per register (``low``), and the high bits,
        which they share, one flag (``high``); with ``low_any`` and
        ``low_writable``: the low bits name a register, a writable one. A
        register matches where its low flag and the high flag are set. With
        ``pipelined`` the four are flip-flops loaded in every cycle (the
        request stays stable until its ``ack``, by the bus contract, so they
        hold the access's decode): a low flag is a compare of ``L`` address
        bits, one LUT for up to sixteen registers at consecutive words, and
        nothing after them selects a register by the high bits."""
        if not regs:
            return Const(0, 1), Const(0, 1), Const(0, 1), Const(0, 1)
        words = [reg.offset >> 2 for reg in regs]
        L = next(n for n in range(len(word) + 1) if len({w >> n for w in words}) == 1)
        low_now = Cat(*(word[:L] == (w & ((1 << L) - 1)) for w in words)) if L else Const(1, len(regs))
        high_now = word[L:] == (words[0] >> L) if L < len(word) else Const(1, 1)
        writable = [k for k, reg in enumerate(regs) if reg.sw_writable]
        values = (low_now, high_now, low_now.any(), Cat(*(low_now[k] for k in writable)).any() if writable else 0)
        if not self.pipelined:
            return values
        low, high = Signal(len(regs), name="match_low"), Signal(name="match_high")
        low_any, low_writable = Signal(name="match_any"), Signal(name="match_writable")
        m.d.sync += [low.eq(values[0]), high.eq(values[1]), low_any.eq(values[2]), low_writable.eq(values[3])]
        return low, high, low_any, low_writable

    def _read_value(self, reg):
        """The 32-bit value a read of ``reg`` returns."""
        parts, pos = [], 0
        fields = []
        for f in reg.fields:
            if not f.sw_readable or f.singlepulse:
                value = Const(0, f.width)
            elif f.has_storage or f.hw == "w":
                value = getattr(self, port_name(reg, f))
            else:
                value = Const(f.reset or 0, f.width)
            fields.append((f.lsb, value))
        for lsb, value in sorted(fields, key=lambda lv: lv[0]):
            if lsb > pos:
                parts.append(Const(0, lsb - pos))
            parts.append(value)
            pos = lsb + len(value)
        if pos < 32:
            parts.append(Const(0, 32 - pos))
        return Cat(*parts)[:32]

    def _decode_register(self, m, reg, bytemask):
        """Side effects of an access to ``reg`` (in its match condition): writes, pulses, strobes."""
        csr = self.csr
        with m.If(csr.we):
            if reg.sw_writable:
                for f in reg.fields:
                    if not f.sw_writable:
                        continue
                    name = port_name(reg, f)
                    fmask = bytemask[f.lsb:f.lsb + f.width]
                    fdata = csr.wdata[f.lsb:f.lsb + f.width]
                    if f.singlepulse:
                        m.d.sync += getattr(self, name).eq(fdata & fmask)
                    else:
                        sig = getattr(self, name)
                        m.d.sync += sig.eq((sig & ~fmask) | (fdata & fmask))
                    if f.swmod:
                        m.d.sync += getattr(self, name + "_swmod").eq(fmask.any())
        with m.Else():
            for f in reg.fields:
                if f.swacc:
                    m.d.sync += getattr(self, port_name(reg, f) + "_swacc").eq(1)


def _or_all(values):
    values = list(values)
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
