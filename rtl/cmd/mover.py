"""The engine's data movers: AXI4 burst reader, burst writer and byte aligner.

The engine moves data in *pieces* that never cross a 4 KiB page of source or
destination (so one translation covers each side, and no burst crosses the
AXI 4 KiB boundary). For each piece:

* :class:`AxiReader` reads the 64-bit words covering the source bytes, in
  INCR bursts of up to ``MAX_BURST`` beats, with no more than one burst
  address in flight per cycle and R back-pressure when its consumer is full;
* :class:`Aligner` turns that word stream, whose first byte sits in lane
  ``a`` = src % 8, into the word stream of the destination, whose first byte
  sits in lane ``t`` = dst % 8 (a two-word window shifted by whole bytes);
* :class:`AxiWriter` writes the destination words in INCR bursts, with WSTRB
  enabling lanes ``t``.. of the first word and ..``(t + len - 1) % 8`` of the
  last, and waits for every B response.

All three are streams with valid/ready, run one command at a time and report
``busy``; a response other than OKAY sets their sticky ``error`` until the
next command. An error does not cut a command short: the reader still takes
every beat (an erroring beat's data is passed on as received) and the writer
still sends every beat and waits for every B, so a command always ends and
leaves no data behind. Acting on ``error`` once ``busy`` falls is the
engine's job (``Status.HW_ERROR``).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..axi4 import BOUNDARY, BURST_INCR, MAX_BURST, Axi4ReadSignature, Axi4WriteSignature
from ..stream import SkidBuffer

__all__ = ["WORD_BYTES", "WORD_BITS", "COUNT_BITS", "READ_CMD", "WRITE_CMD", "ALIGN_CMD",
           "AxiReader", "AxiWriter", "Aligner", "words_covering"]

WORD_BYTES = 8
WORD_BITS = 64
#: Width of word counts: a piece of up to 4096 bytes at any alignment is at most 513 words.
COUNT_BITS = 11

READ_CMD = data.StructLayout({"addr": 64, "words": COUNT_BITS})
WRITE_CMD = data.StructLayout({"addr": 64, "words": COUNT_BITS, "first_strb": WORD_BYTES,
                               "last_strb": WORD_BYTES})
#: ``lane_in`` = first source byte's lane, ``lane_out`` = first destination byte's
#: lane, ``words_in``/``words_out`` = words read / words to produce.
ALIGN_CMD = data.StructLayout({"lane_in": 3, "lane_out": 3, "words_in": COUNT_BITS,
                               "words_out": COUNT_BITS})


def words_covering(lane, length):
    """Words of 8 bytes covering ``length`` bytes that start in lane ``lane`` (Python side)."""
    return (lane + length + WORD_BYTES - 1) // WORD_BYTES


def _burst_len(m, offset, left, name):
    """Beats of the next burst: min(left, MAX_BURST, words to the 4 KiB boundary).

    ``offset`` is the byte offset inside the 4 KiB page. A command never
    crosses a page, so only the offset advances: the page bits are loaded once
    and no 64-bit adder sits on the burst path. With 16-beat bursts the words
    to the boundary only matter in the last 16 words of the page (word index
    496 + k leaves 16 - k), so the minimum takes 5-bit arithmetic.
    """
    assert MAX_BURST == 16 and BOUNDARY == 4096
    word = offset[3:12]
    cap = Signal(5, name=f"{name}_cap")
    m.d.comb += cap.eq(Mux(word[4:].all(), 16 - word[:4], 16))
    blen = Signal(5, name=f"{name}_blen")
    m.d.comb += blen.eq(Mux((left[5:] == 0) & (left[:5] < cap), left[:5], cap))
    return blen


class AxiReader(wiring.Component):
    """Reads ``words`` 64-bit words from ``addr`` (low 3 bits ignored) in INCR bursts.

    Parameters
    ----------
    data_always_ready : bool
        The consumer takes every word in the cycle it is valid (``data`` has
        no back-pressure).

    Attributes
    ----------
    cmd : In(stream.Signature(READ_CMD))
        Accepted when idle; ``words`` must be nonzero and the range must not
        cross a 4 KiB boundary.
    data : Out(stream.Signature(64, always_ready=data_always_ready))
        The words, in address order, from a :class:`SkidBuffer` (so RREADY
        is a flip-flop, not the consumer's ready logic); back-pressure
        stalls R.
    bus : Out(Axi4ReadSignature())
    busy, error : Out(1)
        ``busy`` until the last word has left ``data``.
    """

    def __init__(self, *, data_always_ready=False):
        super().__init__({
            "cmd": In(stream.Signature(READ_CMD)),
            "data": Out(stream.Signature(WORD_BITS, always_ready=data_always_ready)),
            "bus": Out(Axi4ReadSignature()),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        page = Signal(52)
        offset = Signal(13)
        left = Signal(COUNT_BITS)      # words not yet requested
        expect = Signal(COUNT_BITS)    # words not yet received
        blen = _burst_len(m, offset, left, "rd")
        blen_q = Signal(5)
        have_len = Signal()            # blen_q holds the next burst's length

        m.submodules.out = out = SkidBuffer(WORD_BITS)
        wiring.connect(m, out.out, wiring.flipped(self.data))
        m.d.comb += [
            self.busy.eq((expect != 0) | out.out.valid),
            self.cmd.ready.eq(expect == 0),
            bus.arid.eq(0), bus.arsize.eq(3), bus.arburst.eq(BURST_INCR),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [page.eq(self.cmd.payload.addr[12:]),
                         offset.eq(Cat(Signal(3), self.cmd.payload.addr[3:12])),
                         left.eq(self.cmd.payload.words), expect.eq(self.cmd.payload.words),
                         self.error.eq(0), have_len.eq(0)]

        # Two phases per burst address (timing): register the burst length,
        # then issue it. A 16-beat burst takes 16 cycles of data, so one
        # address every two cycles keeps R busy.
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.arvalid.eq(0)
        with m.If(~have_len):
            m.d.sync += [blen_q.eq(blen), have_len.eq(left != 0)]
        with m.Elif(~bus.arvalid | bus.arready):
            m.d.sync += [bus.arvalid.eq(1), bus.araddr.eq(Cat(offset[:12], page)),
                         bus.arlen.eq(blen_q - 1), have_len.eq(0),
                         offset.eq(offset + (blen_q << 3)), left.eq(left - blen_q)]

        m.d.comb += [
            out.inp.valid.eq(bus.rvalid & (expect != 0)),
            out.inp.payload.eq(bus.rdata),
            bus.rready.eq(out.inp.ready & (expect != 0)),
        ]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += expect.eq(expect - 1)
            with m.If(bus.rresp != 0):
                m.d.sync += self.error.eq(1)
        return m


class AxiWriter(wiring.Component):
    """Writes ``words`` 64-bit words from its ``data`` stream to ``addr`` in INCR bursts.

    Attributes
    ----------
    cmd : In(stream.Signature(WRITE_CMD))
        Accepted when idle; ``words`` nonzero, no 4 KiB crossing.
    data : In(stream.Signature(64))
        The words, in address order.
    bus : Out(Axi4WriteSignature())
    busy : Out(1)
        High from the command until every B response has arrived.
    error : Out(1)
    """

    def __init__(self):
        super().__init__({
            "cmd": In(stream.Signature(WRITE_CMD)),
            "data": In(stream.Signature(WORD_BITS)),
            "bus": Out(Axi4WriteSignature()),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        page = Signal(52)
        aw_addr = Signal(13)           # offsets in the page
        aw_left = Signal(COUNT_BITS)
        w_left = Signal(COUNT_BITS)    # words not yet sent
        w_any = Signal(name="w_any")   # w_left != 0, in a flip-flop (it gates the data's ready)
        w_in_burst = Signal(range(MAX_BURST + 1))   # beats left in the current burst (0: new burst)
        new_burst = Signal(name="new_burst", init=1)  # w_in_burst == 0, in a flip-flop
        first = Signal()
        first_strb, last_strb = Signal(8), Signal(8)
        bursts = Signal(COUNT_BITS)    # AW accepted, B not yet received
        aw_blen = _burst_len(m, aw_addr, aw_left, "aw")
        aw_blen_q = Signal(5)
        aw_have = Signal()

        idle = (aw_left == 0) & ~bus.awvalid & (w_left == 0) & (bursts == 0)
        m.d.comb += [
            self.busy.eq(~idle),
            self.cmd.ready.eq(idle),
            bus.awid.eq(0), bus.awsize.eq(3), bus.awburst.eq(BURST_INCR),
            bus.bready.eq(1),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            p = self.cmd.payload
            start = Cat(Signal(3), p.addr[3:12])
            m.d.sync += [page.eq(p.addr[12:]), aw_addr.eq(start), aw_left.eq(p.words), aw_have.eq(0),
                         w_left.eq(p.words), w_any.eq(p.words != 0), w_in_burst.eq(0), new_burst.eq(1), first.eq(1),
                         first_strb.eq(p.first_strb), last_strb.eq(p.last_strb), self.error.eq(0)]

        # AW in two phases, as the reader's AR; each issued length also goes
        # to a small queue that tells the W side where its bursts end.
        m.submodules.lengths = lengths = SyncFIFO(width=5, depth=4)
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += bus.awvalid.eq(0)
        with m.If(~aw_have):
            m.d.sync += [aw_blen_q.eq(aw_blen), aw_have.eq(aw_left != 0)]
        with m.Elif((~bus.awvalid | bus.awready) & lengths.w_rdy):
            m.d.sync += [bus.awvalid.eq(1), bus.awaddr.eq(Cat(aw_addr[:12], page)),
                         bus.awlen.eq(aw_blen_q - 1), aw_have.eq(0),
                         aw_addr.eq(aw_addr + (aw_blen_q << 3)), aw_left.eq(aw_left - aw_blen_q)]
            m.d.comb += [lengths.w_en.eq(1), lengths.w_data.eq(aw_blen_q)]

        # W: a new burst takes its length from the queue.
        cur = Signal(range(MAX_BURST + 1))
        m.d.comb += cur.eq(Mux(new_burst, lengths.r_data, w_in_burst))
        w_go = Signal()
        m.d.comb += w_go.eq(w_any & (~new_burst | lengths.r_rdy))
        strb = Signal(8)
        m.d.comb += strb.eq(Mux(first, first_strb, 0xFF) & Mux(w_left == 1, last_strb, 0xFF))
        # W beats leave through a skid buffer: WVALID/WDATA are flip-flops
        # and WREADY stops there, rather than running back through the
        # burst bookkeeping into the producer's ready logic.
        m.submodules.w_out = w_out = SkidBuffer(WORD_BITS + 8 + 1)
        m.d.comb += [
            w_out.inp.valid.eq(self.data.valid & w_go),
            w_out.inp.payload.eq(Cat(self.data.payload, strb, cur == 1)),
            self.data.ready.eq(w_out.inp.ready & w_go),
            bus.wvalid.eq(w_out.out.valid),
            bus.wdata.eq(w_out.out.payload[:WORD_BITS]),
            bus.wstrb.eq(w_out.out.payload[WORD_BITS:WORD_BITS + 8]),
            bus.wlast.eq(w_out.out.payload[WORD_BITS + 8]),
            w_out.out.ready.eq(bus.wready),
        ]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [w_left.eq(w_left - 1), w_any.eq(w_left != 1), w_in_burst.eq(cur - 1),
                         new_burst.eq(cur == 1), first.eq(0)]
            m.d.comb += lengths.r_en.eq(new_burst)

        aw_fire = bus.awvalid & bus.awready
        b_fire = bus.bvalid & bus.bready
        with m.If(aw_fire & ~b_fire):
            m.d.sync += bursts.eq(bursts + 1)
        with m.Elif(b_fire & ~aw_fire):
            m.d.sync += bursts.eq(bursts - 1)
        with m.If(b_fire & (bus.bresp != 0)):
            m.d.sync += self.error.eq(1)
        return m


class Aligner(wiring.Component):
    """Realigns a word stream from source byte lanes to destination byte lanes.

    Output word ``k`` is bytes ``8k - t .. 8k - t + 7`` of the transfer (lanes
    below ``t`` in word 0, and lanes past the end in the last word, are don't
    care: the writer's strobes mask them). With ``a`` the source lane:

    * ``a <= t``: output = ({cur, prev} >> 8 x (8 + a - t)) for every input word;
      when ``a == t`` that is the input itself;
    * ``a > t``: output = ({cur, prev} >> 8 x (a - t)), the first input only fills
      ``prev``;

    then, if fewer than ``words_out`` words came out, one more with ``cur`` = 0.
    The output is registered, then leaves through a :class:`SkidBuffer`, so
    that the consumer's ready (a FIFO's level compare) stops at a register
    rather than running on into the realignment state.

    Attributes
    ----------
    cmd : In(stream.Signature(ALIGN_CMD))
        Accepted when idle.
    inp : In(stream.Signature(64))
    out : Out(stream.Signature(64))
    busy : Out(1)
        From the command until the last word has been taken from ``out``.
    """

    def __init__(self):
        super().__init__({
            "cmd": In(stream.Signature(ALIGN_CMD)),
            "inp": In(stream.Signature(WORD_BITS)),
            "out": Out(stream.Signature(WORD_BITS)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shift = Signal(range(9))        # bytes, 1..8
        drop = Signal()                 # the next input only fills prev
        prev = Signal(WORD_BITS)
        in_left = Signal(COUNT_BITS)
        out_left = Signal(COUNT_BITS)   # words still to load into the output register
        # in_left != 0 and out_left != 0, kept in flip-flops beside the
        # counts (the compares fed the data select and every enable).
        in_any, out_any = Signal(name="in_any"), Signal(name="out_any")

        # The output register (res) and the skid buffer behind it.
        res_valid, res = Signal(name="res_valid"), Signal(WORD_BITS, name="res")
        m.submodules.out = skid = SkidBuffer(WORD_BITS)
        m.d.comb += [skid.inp.valid.eq(res_valid), skid.inp.payload.eq(res)]
        wiring.connect(m, skid.out, wiring.flipped(self.out))
        m.d.comb += [self.busy.eq(out_any | res_valid | skid.out.valid),
                     self.cmd.ready.eq(~self.busy)]
        with m.If(self.cmd.valid & self.cmd.ready):
            p = self.cmd.payload
            m.d.sync += [
                shift.eq(Mux(p.lane_in > p.lane_out, p.lane_in - p.lane_out, 8 + p.lane_in - p.lane_out)),
                drop.eq(p.lane_in > p.lane_out), prev.eq(0),
                in_left.eq(p.words_in), out_left.eq(p.words_out),
                in_any.eq(p.words_in != 0), out_any.eq(p.words_out != 0),
            ]

        room = ~res_valid | skid.inp.ready
        with m.If(res_valid & skid.inp.ready):
            m.d.sync += res_valid.eq(0)

        cur = Signal(WORD_BITS)
        m.d.comb += cur.eq(Mux(in_any, self.inp.payload, 0))
        shifted = Signal(WORD_BITS)
        m.d.comb += shifted.eq(Cat(prev, cur).bit_select(shift * 8, WORD_BITS))
        m.d.comb += self.inp.ready.eq(room & in_any & out_any)
        with m.If(self.inp.valid & self.inp.ready):
            m.d.sync += [prev.eq(self.inp.payload), in_left.eq(in_left - 1), in_any.eq(in_left != 1), drop.eq(0)]
            with m.If(~drop):
                m.d.sync += [res_valid.eq(1), res.eq(shifted), out_left.eq(out_left - 1),
                             out_any.eq(out_left != 1)]
        with m.Elif(room & ~in_any & out_any):
            # Flush: the last output word takes its high lanes from zeros.
            m.d.sync += [res_valid.eq(1), res.eq(shifted), out_left.eq(out_left - 1), out_any.eq(out_left != 1)]
        return m
