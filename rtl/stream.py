"""Generic valid/ready stream blocks: register stages, FIFOs, round-robin merging.

Every block here has one job, knows nothing about the device, and has its
own unit test in Amaranth's simulator against a Python model
(tests/test_skid.py, tests/test_fifo.py, tests/test_engine_ports.py,
tests/test_shift_queue.py):

* :class:`PipeStage`: one register stage at full throughput;
* :class:`SkidBuffer`: two entries, with ``inp.ready`` from a flip-flop;
* :class:`BypassFifo`: a FIFO with its flags in flip-flops and a one-cycle
  bypass (the DMA tracker's output, the fault queues);
* :class:`ShiftQueue`: a small FIFO whose head is a register (the interrupt
  remapper's replay queue);
* :func:`select`: ``items[index]`` as a mux covering every index value;
* :class:`RoundRobin`: the rotating-priority pick the arbiters use;
* :class:`StreamMerge`: streams into one, round robin, from a register.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["PipeStage", "SkidBuffer", "BypassFifo", "ShiftQueue", "select", "and_or_by_fours", "or_all",
           "RoundRobin", "StreamMerge"]


class _StreamStage(wiring.Component):
    """Register stages on a valid/ready stream of ``width`` bits, at full
    throughput: ``inp`` (In) and ``out`` (Out), both ``stream.Signature(width)``."""

    def __init__(self, width):
        super().__init__({
            "inp": In(stream.Signature(width)),
            "out": Out(stream.Signature(width)),
        })


class PipeStage(_StreamStage):
    """One register stage on a valid/ready stream, at full throughput.

    Block RAM on ECP5 as yosys maps it has no output register and a clock to
    output of about 5.8 ns, so a RAM's read data must go straight into a
    flip-flop: this stage is that flip-flop for the engine's data FIFO.
    """

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.inp.ready.eq(~self.out.valid | self.out.ready)
        with m.If(self.inp.ready):
            m.d.sync += [self.out.valid.eq(self.inp.valid), self.out.payload.eq(self.inp.payload)]
        return m


class SkidBuffer(_StreamStage):
    """A two-entry register stage on a valid/ready stream whose ``inp.ready``
    is a flip-flop, at full throughput.

    :class:`PipeStage` passes ``out.ready`` on to ``inp.ready`` through a LUT,
    so a consumer's ready logic reaches as far upstream as the stages go. Here
    ``inp.ready`` is "the spare entry is empty": a beat that arrives while
    the output is stalled waits in the spare entry, and the output loads from
    it first.
    """

    def elaborate(self, platform):
        m = Module()
        spare_valid = Signal(name="spare_valid")
        spare = Signal.like(self.inp.payload, name="spare")
        m.d.comb += self.inp.ready.eq(~spare_valid)
        with m.If(~self.out.valid | self.out.ready):
            with m.If(spare_valid):
                m.d.sync += [self.out.payload.eq(spare), self.out.valid.eq(1), spare_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.out.payload.eq(self.inp.payload), self.out.valid.eq(self.inp.valid)]
        with m.Elif(self.inp.valid & ~spare_valid):
            m.d.sync += [spare.eq(self.inp.payload), spare_valid.eq(1)]
        return m


class BypassFifo(wiring.Component):
    """A FIFO built for short paths: status flags in flip-flops, one-cycle bypass.

    An output register plus ``depth`` words of distributed RAM.

    :class:`BypassFifo` has the port names and the write/read rules of Amaranth's
    :class:`~amaranth.lib.fifo.SyncFIFOBuffered` (``w_en`` is ignored while
    ``w_rdy`` is low, ``r_en`` while ``r_rdy`` is low; ``level`` counts the words
    held) and the same capacity, but:

    * ``w_rdy`` and the "RAM holds a word" flag are registers of their own,
      updated a cycle ahead, instead of compares on a level counter. A producer's
      write enable (a fault to queue, an outcome to pass on) therefore meets one
      LUT before the FIFO's enables, and the consumer's ``r_en`` likewise.
    * A word written in cycle *c* into an empty FIFO is on ``r_data`` in cycle
      *c + 1* (``SyncFIFOBuffered``: *c + 2*): it goes straight into the output
      register. Otherwise it waits in distributed RAM, from which the output
      register reloads when the consumer reads.
    * Every word is written to the RAM, even one that goes straight to the
      output register (which then skips it): the RAM's write enable, which
      reaches every RAM cell, is the producer's own, and the read side's
      flags steer only the pointers, the counts and the output register. The
      RAM has ``depth`` words for that (one more than it ever holds waiting).

    The flags duplicate what the counts say; :meth:`BypassFifo.invariants` lists
    the relations, which formal harnesses assert so that k-induction does not
    start from a state where they disagree. :meth:`BypassFifo.held_words` gives
    a harness the words held, in order, to state what they contain.

    Parameters
    ----------
    width : int
        Bits per word.
    depth : int
        Words it holds, at least 2.
    guarded : bool
        The producer never writes while ``w_rdy`` is low (a credit scheme
        guarantees the room; a formal harness should assert it). The write
        is then taken as it comes, without the ``full`` gate: the flag stays
        off the write's path. Otherwise a write while full is dropped.
    keep : bool
        Adds the input ``w_keep``: a write with ``w_keep`` low is dropped like
        one into a full FIFO. It still writes its word into the free RAM cell
        (harmless), so that ``w_en`` alone drives the RAM's write enables and a
        late decision to keep the word (``w_keep``) drives only the pointers
        and flags.
    """

    def __init__(self, *, width, depth, guarded=False, keep=False):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"BypassFifo depth must be an integer of at least 2, not {depth!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"BypassFifo width must be a positive integer, not {width!r}")
        self.width, self.depth, self.guarded, self.keep = width, depth, guarded, keep
        # Words waiting in the RAM (written, not yet in the output register).
        self._avail = Signal(range(depth), name="avail")
        self._nonempty = Signal(name="nonempty")                # avail != 0
        self._out_valid = Signal(name="out_valid")              # the output register holds a word
        self._full = Signal(name="full")                        # avail == depth - 1 and out_valid
        self._rptr = Signal(range(depth), name="rptr")          # the oldest word waiting in the RAM
        self._wptr = Signal(range(depth), name="wptr")          # the cell the next word goes to
        self._out_data = Signal(width, name="out_data")
        # The RAM and its ports are made here, so that a formal harness can
        # add read ports of its own before elaboration (held_words).
        self._mem = Memory(shape=width, depth=depth, init=[])
        self._wr = self._mem.write_port()
        self._rd = self._mem.read_port(domain="comb")
        super().__init__({
            "w_en": In(1), "w_data": In(width), "w_rdy": Out(1),
            "r_en": In(1), "r_data": Out(width), "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
            **({"w_keep": In(1)} if keep else {}),
        })

    def invariants(self):
        """Relations between the flags and the counts that hold in every
        reachable state."""
        n = self.depth - 1
        end = self._rptr + self._avail
        return [self._nonempty == (self._avail != 0), self._avail <= n,
                self._full == ((self._avail == n) & self._out_valid),
                ~self._nonempty | self._out_valid,
                self._wptr == Mux(end > n, end - (n + 1), end)]

    def held_words(self, m):
        """The words held, oldest first, for formal harnesses: a list of ``depth``
        pairs ``(present, word)`` (the output register, then the RAM's words in
        order; ``present`` says the FIFO holds that word). Adds a combinational
        read port to the RAM per word, addressed from module ``m``: call it
        before elaboration, once."""
        n = self.depth
        held = [(self._out_valid, self._out_data)]
        for i in range(n - 1):
            rp = self._mem.read_port(domain="comb")
            idx = self._rptr + i
            m.d.comb += rp.addr.eq(Mux(idx >= n, idx - n, idx))
            held.append((self._avail > i, rp.data))
        return held

    def elaborate(self, platform):
        m = Module()
        n = self.depth
        m.submodules.mem = self._mem
        wr, rd = self._wr, self._rd
        wptr, rptr = self._wptr, self._rptr
        avail, nonempty, out_valid, full = self._avail, self._nonempty, self._out_valid, self._full
        out_data = self._out_data

        write = Signal()     # a word comes in (and is written to the RAM)
        load = Signal()      # the output register takes a word this cycle (if there is one)
        from_ram = Signal()  # ... the oldest word waiting in the RAM
        bypass = Signal()    # ... the word coming in
        up = Signal()        # a word more waits in the RAM after this cycle
        down = Signal()      # ... a word less
        offered = self.w_en & self.w_keep if self.keep else self.w_en
        m.d.comb += [write.eq(offered if self.guarded else offered & ~full),
                     load.eq(~out_valid | self.r_en),
                     # Words wait in the RAM only while the output register
                     # holds one, so a read reloads from the RAM whenever it
                     # has any: the output-valid flag stays off this enable.
                     from_ram.eq(self.r_en & nonempty),
                     bypass.eq(load & ~nonempty & write),
                     # Every word is written to the RAM, the bypassed ones
                     # too, and a word refused while full as well (into the
                     # free cell the write pointer names: at most depth - 1
                     # words wait): the write side never waits on the read
                     # side, and the RAM's enables (one per cell) are the
                     # producer's alone, with the full flag off them.
                     wr.addr.eq(wptr), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
                     rd.addr.eq(rptr),
                     # The RAM's count moves up on a word taken while the
                     # output register holds one and keeps it; down on a
                     # reload from the RAM with no word coming in. (Written
                     # out from the flags, so that each is one LUT: a word
                     # waits only while the output register holds one.)
                     up.eq(write & out_valid & ~self.r_en),
                     down.eq(from_ram & ~write)]

        def step(ptr):
            return Mux(ptr == n - 1, 0, ptr + 1)

        with m.If(write):
            m.d.sync += wptr.eq(step(wptr))
        with m.If(from_ram | bypass):
            m.d.sync += rptr.eq(step(rptr))
        with m.If(up):
            m.d.sync += [avail.eq(avail + 1), nonempty.eq(1),
                         # Full after this cycle: the last free word taken.
                         full.eq(avail == n - 2)]
        with m.Elif(down):
            m.d.sync += [avail.eq(avail - 1), nonempty.eq(avail != 1), full.eq(0)]
        with m.If(load):
            m.d.sync += [out_valid.eq(nonempty | write),
                         out_data.eq(Mux(nonempty, rd.data, self.w_data))]
        m.d.comb += [self.r_rdy.eq(out_valid), self.r_data.eq(out_data),
                     self.level.eq(avail + out_valid), self.w_rdy.eq(~full)]
        return m


class ShiftQueue(wiring.Component):
    """First-in first-out queue whose head is a register (``r_data`` comes
    straight from a flip-flop), with a registered ``r_rdy``; ports as
    :class:`~amaranth.lib.fifo.SyncFIFO` (``w_en`` only when ``w_rdy``)."""

    def __init__(self, width, depth):
        self.width, self.depth = width, depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        slots = [Signal(self.width, name=f"slot{i}") for i in range(self.depth)]
        nonempty = Signal()
        do_read = self.r_en & nonempty
        do_write = self.w_en & self.w_rdy
        level_next = self.level + do_write - do_read
        m.d.comb += [self.w_rdy.eq(self.level != self.depth), self.r_rdy.eq(nonempty),
                     self.r_data.eq(slots[0])]
        m.d.sync += [self.level.eq(level_next), nonempty.eq(level_next != 0)]
        # Slot i takes slot i + 1 on a read; the write lands at level - read.
        at = self.level - do_read
        for i, s in enumerate(slots):
            shifted = slots[i + 1] if i + 1 < self.depth else s
            m.d.sync += s.eq(Mux(do_write & (at == i), self.w_data, Mux(do_read, shifted, s)))
        return m


def and_or_by_fours(m, sel, values, name):
    """``values[i]`` where the one-hot ``sel[i]`` is set, as an AND-OR by
    groups of four entries, each group registered (``name0``, ``name1``,
    ...): the caller ORs the groups a cycle later. Each select bit drives
    only its own entry's bits."""
    width = len(values[0])
    parts = []
    for g in range(0, len(values), 4):
        part = Signal(width, name=f"{name}{g // 4}")
        acc = Const(0, width)
        for i in range(g, min(g + 4, len(values))):
            acc = acc | (values[i] & sel[i].replicate(width))
        m.d.sync += part.eq(acc)
        parts.append(part)
    return parts


def or_all(parts):
    """The OR of ``parts`` (all one width)."""
    acc = Const(0, len(parts[0]))
    for part in parts:
        acc = acc | part
    return acc


def select(items, index):
    """``items[index]`` as a mux, with every value of ``index`` covered.

    An ``Array`` shorter than its index's range leaves the missing cases
    unassigned in the generated Verilog, which Verilator reports as a latch;
    the entries past the end repeat the first (callers never select them).
    """
    items = list(items)
    width = Value.cast(index).shape().width
    items += [items[0]] * ((1 << width) - len(items))
    return Array(items)[index]


def _index_shape(n):
    return range(max(n, 2))


class RoundRobin(wiring.Component):
    """Rotating priority over ``n`` requests: the first one after the last taken.

    Attributes
    ----------
    req : In(n)
    pick : Out(range(n))
        The chosen request, valid while ``found``.
    found : Out(1)
    take : In(1)
        The pick was served: it becomes the last (lowest priority next).
    """

    def __init__(self, n):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"Number of requesters must be a positive integer, not {n!r}")
        self.n = n
        super().__init__({"req": In(n), "pick": Out(_index_shape(n)), "found": Out(1), "take": In(1)})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        last = Signal(_index_shape(n), init=n - 1)
        m.d.comb += self.found.eq(self.req.any())
        with m.Switch(last):
            for l in range(n):
                with m.Case(l):
                    # Lowest priority first, so the first in rotation order wins.
                    for k in reversed(range(1, n + 1)):
                        i = (l + k) % n
                        with m.If(self.req[i]):
                            m.d.comb += self.pick.eq(i)
        with m.If(self.take & self.found):
            m.d.sync += last.eq(self.pick)
        return m


class StreamMerge(wiring.Component):
    """``n`` streams of ``layout`` into one, round robin, through an output register.

    An input beat is taken (its ready) when it moves into the register; the
    output holds it until taken. Inputs must hold valid until ready.
    """

    def __init__(self, n, layout):
        self.n = n
        self.layout = layout
        members = {f"i{k}": In(stream.Signature(layout)) for k in range(n)}
        members["out"] = Out(stream.Signature(layout))
        super().__init__(members)

    def inputs(self):
        return [getattr(self, f"i{k}") for k in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        ins = self.inputs()
        m.submodules.rr = rr = RoundRobin(self.n)
        for k, s in enumerate(ins):
            m.d.comb += rr.req[k].eq(s.valid)
        load = Signal()
        m.d.comb += load.eq(rr.found & (~self.out.valid | self.out.ready))
        m.d.comb += rr.take.eq(load)
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)
        with m.If(load):
            m.d.sync += [self.out.valid.eq(1),
                         self.out.payload.eq(Array(s.payload for s in ins)[rr.pick])]
        for k, s in enumerate(ins):
            m.d.comb += s.ready.eq(load & (rr.pick == k))
        return m
