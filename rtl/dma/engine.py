"""The DMA tracker's bitmap engine: the pinned, mapped and unmap-requested bitmaps, one word at a time.

Three kinds of work (:class:`Kind`) change or read those bitmaps (the dirty
bitmap is the request path's, :mod:`.dirtylog`):

* a guest map or unmap of one page (:class:`~.guest.GuestOps`): a map sets
  mapped and clears unmap-requested if the page is pinned (else
  NOT_PINNED); an unmap clears mapped and sets unmap-requested if the page
  is mapped (else NOT_MAPPED). So mapped implies pinned, always;
* a read of the bitmap window (:class:`~.front.TrackerFront`);
* a word of a range operation (:class:`~.rangeop.RangeOps`): pin sets
  pinned; a forced unpin clears all three; a lazy unpin (RECLAIM) clears
  pinned and unmap-requested where unmap-requested is set and mapped is
  not; CLEAR_UNMAP clears unmap-requested.

Each word takes IDLE (which issues it: guest ops first, they are the fast
path, then window reads, then the next range word), RD (the block RAMs take
the address), OUT (their output registers), LATCH (the words registered),
FLAGS (the guest op's bit tested by slices; the operation turned into set
and clear masks), HITS (the slices combined), EVAL (the new words) and
WRITE (the changed ones written; the work answered), one cycle each. The
operation is decoded one-hot at IDLE and into masks in FLAGS, so that EVAL
is an AND-OR of a few bits per word bit. The state is one-hot too: the
states after IDLE follow each other as a shift register, so every enable
hangs off one flip-flop and IDLE's next value is one LUT.

What IDLE does next is decided a cycle ahead, into one flag per choice
(guest op refused, guest op, window read, range word), from a cycle the
engine spent in IDLE and did not leave: after WRITE, IDLE waits a cycle for
the flags to catch up. The priority chain then stays off the state's enables.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .bram import BitmapRam
from .common import DOMAIN_BITS, word_address
from .defs import Bitmap, GuestResult, RangeOp

__all__ = ["BitmapEngine", "Kind", "ENGINE_OPS", "ENGINE_BITMAPS", "STATES"]

#: The engine's operations, one flag each: guest map and unmap, a bitmap
#: window read, and the range ops (pin, unpin, reclaim, clear unmap-requested).
ENGINE_OPS = ("gmap", "gunmap", "win", "pin", "unpin", "reclaim", "clr")
#: The bitmaps the engine owns.
ENGINE_BITMAPS = (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP)
#: The engine's states, in order (one-hot).
STATES = ("idle", "rd", "out", "latch", "flags", "hits", "eval", "write")


class Kind(enum.Enum, shape=2):
    """What the engine's current word is for (answered in WRITE)."""
    GUEST = 0       # a guest map or unmap
    WINDOW = 1      # a bitmap window read
    RANGE = 2       # a word of a range operation


#: A guest operation waiting for the engine (:class:`~.guest.GuestOps`).
GUEST_OP = data.StructLayout({"ready": 1, "refuse": 1, "refuse_result": 4, "unmap": 1, "page": 20,
                              "domain": DOMAIN_BITS})
#: The running range operation (:class:`~.rangeop.RangeOps`).
RANGE_WORD = data.StructLayout({"busy": 1, "code": 2, "domain": DOMAIN_BITS, "word": 16, "mask": 32})


class BitmapEngine(wiring.Component):
    """Guest maps and unmaps, bitmap window reads and range operations on three bitmaps.

    Parameters
    ----------
    params : DeviceParams
        ``num_domains`` and ``pages_per_domain`` size the bitmaps.
    primitive : None or "ecp5"
        How the block RAMs are built (:class:`~.bram.BitmapRam`).

    Attributes
    ----------
    guest : In(GUEST_OP)
        A guest operation, when ``ready``; ``guest_done`` pulses when it is answered.
    window : In({pend, addr, sel})
        A bitmap window read (:data:`~.front.WINDOW_READ`); ``window_done`` pulses
        (from a flip-flop, in WRITE) when it is answered, with its word on
        ``window_data`` from the next cycle.
    range : In(RANGE_WORD)
        The running range operation's current word; ``range_step`` pulses when it is done.
    result : Out(4)
        GUEST_STATUS.RESULT of the last guest operation.
    mapped_addr : In(aw), mapped_word : Out(32)
        The mapped bitmap's second read port (latency 2, transparent for the engine's writes).
    ram : dict of Bitmap to BitmapRam
        The block RAMs (a formal harness may add read ports to their ``mem``).
    """

    def __init__(self, params, *, primitive=None):
        self.params = params
        depth = params.num_domains * (params.pages_per_domain // 32)
        self.aw = aw = max(1, ceil_log2(depth))
        # The request path reads mapped through its second read port,
        # transparent for the engine's write.
        self.ram = {b: BitmapRam(depth, transparent=(False, True) if b == Bitmap.MAPPED else (False,),
                                 primitive=primitive, name=f"ram_{b.name.lower()}") for b in ENGINE_BITMAPS}
        self._states = [Signal(name=f"e_at_{n}", init=(n == "idle")) for n in STATES]
        self._next = {k: Signal(name=f"e_next_{k}") for k in ("refuse", "guest", "win", "range", "any")}
        self._choice_in_idle = Signal(name="e_choice_in_idle")
        self._window_done_in_write = Signal(name="e_window_done_in_write")
        self._addr = Signal(aw, name="e_addr")
        self._op = {k: Signal(name=f"op_{k}") for k in ENGINE_OPS}
        self._mask = Signal(32, name="e_mask")
        self._words = {b: Signal(32, name=n) for b, n in zip(ENGINE_BITMAPS, ("pw", "mw", "uw"))}
        super().__init__({
            "guest": In(GUEST_OP), "guest_done": Out(1),
            "window": In(data.StructLayout({"pend": 1, "addr": aw, "sel": 2})),
            "window_done": Out(1), "window_data": Out(32),
            "range": In(RANGE_WORD), "range_step": Out(1),
            "result": Out(4), "mapped_addr": In(aw), "mapped_word": Out(32),
        })

    def observe(self):
        """Observation points for formal harnesses (not ports): the one-hot state
        (``states``, in :data:`STATES` order), the choice flags for the next word
        (``next``: refuse, guest, win, range, and any), whether those are high only
        in IDLE (``choice_in_idle``), whether the registered ``window_done`` is
        high exactly in a window read's WRITE (``window_done_in_write``), the
        word's address, operation (one flag per :data:`ENGINE_OPS`) and mask,
        and the words latched (``words``, by bitmap)."""
        return {"states": list(self._states), "next": dict(self._next), "choice_in_idle": self._choice_in_idle,
                "window_done_in_write": self._window_done_in_write,
                "addr": self._addr, "op": dict(self._op), "mask": self._mask, "words": dict(self._words)}

    def elaborate(self, platform):
        m = Module()
        rams = self.ram
        for b, ram in rams.items():
            m.submodules[f"ram_{b.name.lower()}"] = ram
        m.d.comb += [rams[Bitmap.MAPPED].r_addrs[1].eq(self.mapped_addr),
                     self.mapped_word.eq(rams[Bitmap.MAPPED].r_datas[1])]
        IDLE, RD, OUT, LATCH, FLAGS, HITS, EVAL, WRITE = range(len(STATES))
        at = dict(enumerate(self._states))
        m.d.sync += [at[x].eq(at[x - 1]) for x in (OUT, LATCH, FLAGS, HITS, EVAL, WRITE)]
        kind = Signal(Kind)
        e_addr, e_mask, op = self._addr, self._mask, self._op
        for b in ENGINE_BITMAPS:
            m.d.comb += rams[b].r_addr.eq(e_addr)
        guest, win, rng = self.guest, self.window, self.range

        # The next word's choice, a cycle ahead (see the module's docstring).
        nxt = self._next
        settled = at[IDLE] & ~nxt["any"]
        m.d.sync += [nxt["any"].eq(settled & (guest.ready | win.pend | rng.busy)),
                     nxt["refuse"].eq(settled & guest.ready & guest.refuse),
                     nxt["guest"].eq(settled & guest.ready & ~guest.refuse),
                     nxt["win"].eq(settled & ~guest.ready & win.pend),
                     nxt["range"].eq(settled & ~guest.ready & ~win.pend & rng.busy)]
        # A choice flag is high for one cycle, and only in IDLE (it is set
        # from a settled IDLE cycle, which leaves the state alone): the
        # actions test the flag alone (the formal harness asserts this).
        issuing = nxt["guest"] | nxt["win"] | nxt["range"]
        m.d.comb += self._choice_in_idle.eq(~(nxt["refuse"] | issuing) | at[IDLE])
        with m.If(nxt["refuse"]):
            m.d.sync += self.result.eq(guest.refuse_result)
        m.d.sync += [at[RD].eq(issuing), at[IDLE].eq((at[IDLE] & ~issuing) | at[WRITE])]

        def issue(**on):
            return [op[k].eq(on.get(k, 0)) for k in ENGINE_OPS]
        p = self.params
        with m.If(nxt["guest"]):
            m.d.sync += [kind.eq(Kind.GUEST), e_addr.eq(word_address(p, guest.page[5:], guest.domain)),
                         e_mask.eq(Const(1, 32) << guest.page[:5])]
            m.d.sync += issue(gmap=~guest.unmap, gunmap=guest.unmap)
        with m.If(nxt["win"]):
            m.d.sync += [kind.eq(Kind.WINDOW), e_addr.eq(win.addr)]
            m.d.sync += issue(win=1)
        with m.If(nxt["range"]):
            m.d.sync += [kind.eq(Kind.RANGE), e_mask.eq(rng.mask), e_addr.eq(word_address(p, rng.word, rng.domain))]
            m.d.sync += issue(pin=rng.code == RangeOp.PIN, unpin=rng.code == RangeOp.UNPIN,
                              reclaim=rng.code == RangeOp.RECLAIM, clr=rng.code == RangeOp.CLEAR_UNMAP)
        pw, mw, uw = (self._words[b] for b in ENGINE_BITMAPS)
        with m.If(at[LATCH]):
            m.d.sync += [pw.eq(rams[Bitmap.PINNED].r_data),
                         mw.eq(rams[Bitmap.MAPPED].r_data), uw.eq(rams[Bitmap.UNMAP].r_data)]
        self._evaluate(m, at[FLAGS], at[HITS], at[EVAL], at[WRITE])
        # WRITE answers the work. The window read's answer is a flip-flop
        # (set from EVAL: ``kind`` holds from IDLE to WRITE), because it
        # crosses to the CSR front, which clears its pending read with it.
        m.d.sync += self.window_done.eq(at[EVAL] & (kind == Kind.WINDOW))
        m.d.comb += self._window_done_in_write.eq(self.window_done == (at[WRITE] & (kind == Kind.WINDOW)))
        m.d.comb += [self.guest_done.eq(nxt["refuse"] | (at[WRITE] & (kind == Kind.GUEST))),
                     self.range_step.eq(at[WRITE] & (kind == Kind.RANGE))]
        return m

    def _evaluate(self, m, flags, hits, evaluate, write):
        """FLAGS, HITS, EVAL and WRITE: the masks, the new words, and their writes."""
        e_mask, op, rams = self._mask, self._op, self.ram
        pw, mw, uw = (self._words[b] for b in ENGINE_BITMAPS)
        p_hit, m_hit = Signal(), Signal()     # the guest op's page is pinned / mapped
        # Masks (the guest ops' ones apply only if the page is pinned / mapped):
        # gm guest map (sets mapped, clears unmap-requested), gu guest unmap
        # (clears mapped, sets unmap-requested), and the range ops' ones.
        gm, gu = Signal(32, name="e_gm"), Signal(32, name="e_gu")
        set_p, clr_p = Signal(32, name="e_set_p"), Signal(32, name="e_clr_p")
        clr_m, clr_u = Signal(32, name="e_clr_m"), Signal(32, name="e_clr_u")
        reclaim = e_mask & uw & ~mw
        # Whether the masked bits are set: by two-bit slices in FLAGS (one
        # LUT each), ORed in HITS.
        p_part, m_part = Signal(16, name="e_p_part"), Signal(16, name="e_m_part")
        with m.If(hits):
            m.d.sync += [p_hit.eq(p_part.any()), m_hit.eq(m_part.any())]
        with m.If(flags):
            m.d.sync += [p_part.eq(Cat(*((pw & e_mask)[k:k + 2].any() for k in range(0, 32, 2)))),
                         m_part.eq(Cat(*((mw & e_mask)[k:k + 2].any() for k in range(0, 32, 2)))),
                         gm.eq(e_mask & op["gmap"].replicate(32)), gu.eq(e_mask & op["gunmap"].replicate(32)),
                         set_p.eq(e_mask & op["pin"].replicate(32)),
                         clr_p.eq((e_mask & op["unpin"].replicate(32)) | (reclaim & op["reclaim"].replicate(32))),
                         clr_m.eq(e_mask & op["unpin"].replicate(32)),
                         clr_u.eq((e_mask & (op["unpin"] | op["clr"]).replicate(32)) |
                                  (reclaim & op["reclaim"].replicate(32)))]
        new = {b: Signal(32, name=f"new_{b.name.lower()}") for b in ENGINE_BITMAPS}
        we = {b: Signal(name=f"we_{b.name.lower()}") for b in ENGINE_BITMAPS}
        for b in ENGINE_BITMAPS:
            m.d.comb += [rams[b].w_addr.eq(self._addr), rams[b].w_data.eq(new[b]),
                         rams[b].w_en.eq(we[b] & write)]
        with m.If(evaluate):
            g_set = gm & p_hit.replicate(32)
            g_clr = gu & m_hit.replicate(32)
            g_done = (op["gmap"] & p_hit) | (op["gunmap"] & m_hit)
            m.d.sync += [new[Bitmap.PINNED].eq((pw & ~clr_p) | set_p),
                         new[Bitmap.MAPPED].eq((mw & ~(clr_m | g_clr)) | g_set),
                         new[Bitmap.UNMAP].eq((uw & ~(clr_u | g_set)) | g_clr),
                         we[Bitmap.PINNED].eq(op["pin"] | op["unpin"] | op["reclaim"]),
                         we[Bitmap.MAPPED].eq(g_done | op["unpin"]),
                         we[Bitmap.UNMAP].eq(g_done | op["unpin"] | op["reclaim"] | op["clr"])]
            with m.If(op["gmap"]):
                m.d.sync += self.result.eq(Mux(p_hit, GuestResult.OK, GuestResult.NOT_PINNED))
            with m.If(op["gunmap"]):
                m.d.sync += self.result.eq(Mux(m_hit, GuestResult.OK, GuestResult.NOT_MAPPED))
            with m.If(op["win"]):
                sel = self.window.sel
                m.d.sync += self.window_data.eq(Mux(sel == Bitmap.PINNED, pw, Mux(sel == Bitmap.MAPPED, mw, uw)))
