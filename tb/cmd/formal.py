"""Formal harnesses of the dispatcher (rtl/cmd/dispatch.py), proven by k-induction.

The harness instantiates :class:`~siov.rtl.cmd.dispatch.Dispatcher` in a small
configuration (4 ADIs, 2 engines) and leaves every input free: ``pending``,
the rings (``ring[i].engine`` included), the eligibility mask, the fill beats,
the slot RAM's data, the executors' ``idle``, their ``done`` reports and the
``ready`` of the ``start`` streams, the arbiter configuration (policy, slice,
weights, quanta), the WAIT re-check period, the timeout, the cycle counter,
``budget_sel`` and the reset. Nothing is assumed: every input may change in
every cycle, the mask included. Properties (``dispatch_mask``):

1. **no ADI outside the eligibility mask is ever dispatched**: whenever
   ``dispatched`` is high, bit ``dispatched_adi`` of the mask in force in that
   very cycle is set; the ADI exists, is bound to ``dispatched_engine``
   (``ring[adi].engine``, in that cycle), which exists, its slot is filled and
   it is pending. "Filled" is the harness's own model of the slot: a fill beat
   for the ADI was seen, and since then the ADI stayed pending and the slot
   was not freed (an ordinary descriptor is freed at its take, a WAIT by a
   ``done`` report that decides it);
2. **every start was dispatched**: whenever ``start{e}.valid`` is high, its
   ADI was taken (``dispatched``) for engine e, with its bit set in the mask
   and bound to e *at the take*, and it has not been started since (a harness
   register recorded at the take; the mask may have changed since, which is
   legal: the decision is the take's), and it says the WAIT timed out exactly
   when the ADI's WAIT had been retried before the take and the cycles from
   its first retry to the take reach the timeout (as the timeout stands when
   the loader compares, two cycles into the load). One descriptor in flight at a time, so
   at most one ``start`` is valid;
3. **consume beats**: a consume beat (``consume.valid``) leaves exactly one
   cycle after the slot of its ADI was freed, i.e. after a take of an
   ordinary descriptor of that ADI or a ``done`` report deciding its WAIT
   (taken while the slot was filled), and never otherwise.

The induction is helped by invariants on the dispatcher's registers that the
harness reads from its elaboration (``_elaborate_probed``: the locals of the
dispatcher's elaboration steps and the nets they share, so a renamed register
fails loudly here): the slot
and WAIT bits equal the harness's model, and the dispatch's registers
(``ok_q``, ``g_q``, ``te_q``: the take of the cycle before) and the loader's
(``loading``, ``l_adi``, ``l_engine``, ``starting``, ``assigned``), which
takes them over a cycle after the take, agree with the record of the take. Without them, "filled" could not be proven at any depth (an
unreachable state may hold a slot valid for ever without a fill).

Not vacuous: :class:`CoverHarness` asserts that a dispatch (a start, a
consume beat) never happens and a short BMC must find the counterexample;
``DispatchHarness(mask_delay=1)`` hands the dispatcher the mask one cycle late
while the properties still check the mask in force, and the proof fails.

Run with ``python -m siov.tb.cmd.formal`` or ``pytest -m formal``.
"""

import inspect
import pathlib
import re
import sys
import time
import types

from amaranth.hdl import Assert, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring

from siov.rtl.cmd.dispatch import Dispatcher
from siov.rtl.cmd.prefetch import DESC_WORDS
from siov.rtl.params import DeviceParams
from siov.rtl.stream import select
from siov.tb.formal import prove

__all__ = ["SMALL", "DispatchHarness", "CoverHarness", "COVER", "PROOFS", "run", "trace_values"]

#: The configuration proofs run on.
SMALL = DeviceParams(num_adis=4, num_engines=2)

#: Registers of the dispatcher's elaboration the invariants read.
PROBED = ("slot_valid", "slot_wait", "wait_run", "loading", "starting", "assigned", "l_adi", "l_engine",
          "ok_q", "g_q", "te_q", "l_word", "l_timed_out", "stamp_g", "waiting_at_take", "now_at_take",
          "stamp", "waiting")


def _elaborate_probed(dut, platform, names=PROBED):
    """``dut.elaborate(platform)`` and the named registers it made.

    The dispatcher keeps its registers in locals of its elaboration steps (its
    methods) and in the namespace they share (``types.SimpleNamespace``); the
    profiler hook copies both when each step returns. The Module is used in
    place of ``dut``.
    """
    codes = {f.__code__ for f in vars(type(dut)).values() if inspect.isfunction(f)}
    seen = {}

    def hook(frame, event, arg):
        if event == "return" and frame.f_code in codes:
            for name, value in frame.f_locals.items():
                if isinstance(value, types.SimpleNamespace):
                    seen.update(vars(value))
                else:
                    seen[name] = value

    old = sys.getprofile()
    sys.setprofile(hook)
    try:
        module = dut.elaborate(platform)
    finally:
        sys.setprofile(old)
    dut._MustUse__used = True           # elaborated here, through its Module
    missing = [k for k in names if k not in seen]
    if missing:
        raise LookupError(f"The dispatcher's elaboration has no {', '.join(missing)}: update the harness")
    return module, {k: seen[k] for k in names}


def _onehot(index, n):
    return (Const(1, n) << index)[:n]


class _Base(Elaboratable):
    """The dispatcher with free inputs; the mask is the harness's ``mask`` input."""

    depth = 4

    def __init__(self, params=SMALL, *, mask_delay=0):
        self.params = params
        self.mask_delay = mask_delay
        self.dut = Dispatcher(params)
        self.mask = Signal(params.num_adis, name="mask")

    def ports(self):
        """The free inputs: the dispatcher's inputs, with ``mask`` for ``eligible``.

        The ``ready`` of an ``always_ready`` stream (``consume``) is a constant, not an input.
        """
        d = self.dut
        out = [self.mask]
        for path, member, value in d.signature.flatten(d):
            value = value.as_value() if hasattr(value, "as_value") else value
            if member.flow == wiring.In and path != ("eligible",) and not isinstance(value, Const):
                out.append(value)
        return out

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        inner, self.probe = _elaborate_probed(dut, platform)
        m.submodules.dut = inner
        mask = self.mask
        for i in range(self.mask_delay):       # the mutation: the dispatcher sees an older mask
            q = Signal.like(self.mask, name=f"mask_d{i + 1}")
            m.d.sync += q.eq(mask)
            mask = q
        m.d.comb += dut.eligible.eq(mask)
        self.properties(m, dut)
        return m


class DispatchHarness(_Base):
    """Properties 1 to 3 (see the module's notes)."""

    # 1 is the least depth that passes: with the invariants below every
    # property is 1-inductive. 4 makes the base case reach the first take
    # from reset (step 3, see COVER), so the same proof of the mutation
    # (mask_delay=1) fails in its base case, with a trace from reset.
    depth = 4

    def properties(self, m, dut):
        p = self.params
        n, ne = p.num_adis, p.num_engines
        pr = self.probe
        mask = self.mask
        starts, dones = dut.starts(), dut.dones()

        adi = dut.dispatched_adi
        eng = dut.dispatched_engine
        in_range = adi < n
        ring_engine = Signal(2)
        for i in range(n):
            with m.If(adi == i):
                m.d.comb += ring_engine.eq(dut.ring[i].engine)

        # ---- the slot model -------------------------------------------------------------
        filled = Signal(n)                     # a fill seen, still pending, not freed
        is_wait = Signal(n)                    # the fill said WAIT
        fill_oh = Signal(n)
        m.d.comb += fill_oh.eq(Mux(dut.fill.valid, _onehot(dut.fill.payload.adi, n), 0) & ~filled)
        for i in range(n):
            with m.If(fill_oh[i]):
                m.d.sync += is_wait[i].eq(dut.fill.payload.wait)
        # A report taken this cycle (at most one engine's report is taken).
        rep_take = Signal()
        rep_adi = Signal(6)
        rep_consume = Signal()
        for e, d in enumerate(dones):
            with m.If(d.valid & d.ready):
                m.d.comb += [rep_take.eq(1), rep_adi.eq(d.payload.adi), rep_consume.eq(d.payload.consume)]
        m.d.comb += Assert(sum(d.valid & d.ready for d in dones) <= 1)
        # A WAIT taken and not yet reported on, while its ADI stays pending: only a report
        # on such a WAIT counts (a report on a WAIT whose ADI was dropped meanwhile is void).
        running = Signal(n)
        rep_live = Signal()
        m.d.comb += rep_live.eq(rep_take & (rep_adi < n) & running.bit_select(rep_adi, 1))
        # Freed now: an ordinary descriptor at its take, a WAIT decided by a live report.
        freed = Signal()
        freed_adi = Signal(6)
        with m.If(dut.dispatched & ~is_wait.bit_select(adi, 1)):
            m.d.comb += [freed.eq(1), freed_adi.eq(adi)]
        with m.Elif(rep_live & rep_consume):
            m.d.comb += [freed.eq(1), freed_adi.eq(rep_adi)]
        m.d.sync += filled.eq((filled | fill_oh) & dut.pending & ~Mux(freed, _onehot(freed_adi, n), 0))
        m.d.sync += running.eq((running | Mux(dut.dispatched & is_wait.bit_select(adi, 1), _onehot(adi, n), 0))
                               & ~Mux(rep_live, _onehot(rep_adi, n), 0) & dut.pending)

        # ---- 1. dispatch under the mask in force ---------------------------------------------
        with m.If(dut.dispatched):
            m.d.comb += [
                Assert(in_range),
                Assert(mask.bit_select(adi, 1)),
                Assert(eng < ne),
                Assert(ring_engine == eng),
                Assert(filled.bit_select(adi, 1)),
                Assert(dut.pending.bit_select(adi, 1)),
                Assert(~rep_take),             # a take and a report never in one cycle
            ]

        # ---- 2. every start was dispatched, to its engine, under the mask at the take --------------
        rec = Signal()                         # a take not yet started
        rec_adi = Signal(6)
        rec_engine = Signal(2)
        rec_ok = Signal()                      # in the mask and bound to the engine at the take
        rec_waiting = Signal()                 # its ADI's WAIT retried before the take ...
        rec_elapsed = Signal(32)               # ... this many cycles before it
        rec_timed_out = Signal()               # ... and so timed out (set at the loader's compare)
        start_take = Signal()
        for e, s in enumerate(starts):
            with m.If(s.valid):
                m.d.comb += [
                    Assert(rec), Assert(rec_engine == e), Assert(s.payload.adi == rec_adi), Assert(rec_ok),
                    Assert(s.payload.timed_out == rec_timed_out),
                ]
            with m.If(s.valid & s.ready):
                m.d.comb += start_take.eq(1)
        m.d.comb += Assert(sum(s.valid for s in starts) <= 1)
        with m.If(start_take):
            m.d.sync += rec.eq(0)
        with m.If(dut.dispatched):
            m.d.comb += Assert(~rec)           # one descriptor in flight at a time
            m.d.sync += [rec.eq(1), rec_adi.eq(adi), rec_engine.eq(eng),
                         rec_ok.eq(mask.bit_select(adi, 1) & (ring_engine == eng)),
                         rec_waiting.eq(pr["waiting"].bit_select(adi, 1)),
                         rec_elapsed.eq(dut.now - select(pr["stamp"], adi))]
        with m.If(pr["loading"] & (pr["l_word"] == 2)):
            m.d.sync += rec_timed_out.eq(rec_waiting & (rec_elapsed >= dut.timeout))
        # What the engines see of it: busy while taken and not started.
        m.d.comb += [
            Assert(dut.loading == Mux(rec, _onehot(rec_engine, ne), 0)),
            Assert(dut.loading_adi == Mux(rec, _onehot(rec_adi, n), 0)),
        ]

        # ---- 3. consume beats ------------------------------------------------------------------
        freed_q = Signal()
        freed_adi_q = Signal(6)
        m.d.sync += [freed_q.eq(freed), freed_adi_q.eq(freed_adi)]
        m.d.comb += Assert(dut.consume.valid == freed_q)
        with m.If(dut.consume.valid):
            m.d.comb += Assert(dut.consume.payload.adi == freed_adi_q)

        # ---- invariants on the dispatcher's registers (for the induction) ---------------------
        m.d.comb += [
            Assert(pr["slot_valid"] == filled),
            Assert(pr["slot_wait"] == is_wait),
            Assert(pr["wait_run"] == running),
            Assert((running & ~(filled & is_wait)) == 0),   # only a filled WAIT slot runs
            Assert((pr["loading"] | pr["ok_q"]) == rec),
            Assert(~(pr["loading"] & pr["ok_q"])),
            Assert(pr["assigned"] == Mux(pr["loading"], _onehot(rec_engine, ne), 0)),
            Assert(~pr["starting"] | pr["loading"]),
            Assert(~pr["starting"] | (pr["l_word"] == DESC_WORDS + 2)),   # it waits there for the ready
        ]
        with m.If(rec):
            m.d.comb += [Assert(rec_adi < n), Assert(rec_engine < ne), Assert(rec_ok)]
        with m.If(pr["ok_q"]):
            m.d.comb += [Assert(pr["g_q"] == rec_adi), Assert(pr["te_q"] == rec_engine),
                         Assert(pr["waiting_at_take"] == rec_waiting),
                         Assert((pr["now_at_take"] - select(pr["stamp"], pr["g_q"]))[:32] == rec_elapsed)]
        with m.If(pr["loading"]):
            m.d.comb += [Assert(pr["l_adi"] == rec_adi), Assert(pr["l_engine"] == rec_engine),
                         Assert(pr["l_word"] >= 1), Assert(pr["l_word"] <= DESC_WORDS + 2)]
            with m.If(pr["l_word"] <= 2):
                m.d.comb += [Assert(pr["l_timed_out"] == rec_waiting), Assert(pr["stamp_g"] == rec_elapsed)]
            with m.Else():
                m.d.comb += Assert(pr["l_timed_out"] == rec_timed_out)


#: What :class:`CoverHarness` shows reachable, with the BMC bound used (the
#: step the BMC first reaches it, from reset, in the comments).
COVER = {
    "dispatch": 6,          # step 3: fill, request, arbiter stage 1, grant taken
    "consume_take": 6,      # step 4: the beat after an ordinary descriptor's take
    "consume_report": 6,    # step 2: the beat after a report deciding a WAIT
    "start": 15,            # step 14: the slot's 8 words loaded, offered to the last engine
}


class CoverHarness(_Base):
    """Asserts that ``what`` never happens: a BMC must fail (it is reachable).

    ``dispatch``: a take (``dispatched``); ``consume_take``: a consume beat
    for the descriptor taken in the previous cycle; ``consume_report``: a
    consume beat after a ``done`` report was taken; ``start``: a descriptor
    offered to the last engine (``start{ne-1}.valid``).
    """

    def __init__(self, what, params=SMALL):
        if what not in COVER:
            raise ValueError(f"Cover target must be one of {', '.join(COVER)}, not {what!r}")
        self.what = what
        self.depth = COVER[what]
        super().__init__(params)

    def properties(self, m, dut):
        took = Signal()
        reported = Signal()
        m.d.sync += [took.eq(dut.dispatched),
                     reported.eq(sum(d.valid & d.ready for d in dut.dones()) != 0)]
        event = {"dispatch": dut.dispatched,
                 "consume_take": dut.consume.valid & took,
                 "consume_report": dut.consume.valid & reported,
                 "start": dut.starts()[-1].valid}[self.what]
        m.d.comb += Assert(~event)


def trace_values(vcd, names):
    """Per-step values of the named signals (``"mask"``, ``"dut.dispatched"``) in a trace.

    Returns ``{name: [int per step]}``; a name is its scope path below ``top``.
    The steps are smtbmc's (its ``smt_step`` variable), each read at the
    timestamp that opens it.
    """
    text = pathlib.Path(vcd).read_text()
    scope, ids, step_id = [], {}, None
    for tok in re.finditer(r"\$scope \S+ (\S+) \$end|\$upscope \$end|\$var \S+ \d+ (\S+) (\S+)", text):
        if tok.group(1):
            scope.append(tok.group(1))
        elif tok.group(2):
            path = ".".join(scope[1:] + [tok.group(3)])
            if tok.group(3) == "smt_step" and not scope:
                step_id = tok.group(2)
            elif path in names:
                ids[tok.group(2)] = path
        else:
            scope.pop()
    cur, steps, step = {}, {}, None
    body = text[text.index("$enddefinitions"):].split("\n")[1:]
    for line in body + ["#end"]:
        if line.startswith("#"):
            if step is not None and step not in steps:
                steps[step] = {k: cur.get(k, 0) for k in names}
        elif line.startswith("b"):
            val, ident = line[1:].split()
            v = int(val.replace("x", "0").replace("z", "0"), 2)
            if ident == step_id:
                step = v
            elif ident in ids:
                cur[ids[ident]] = v
        elif line[:1] in ("0", "1") and line[1:] in ids:
            cur[ids[line[1:]]] = int(line[0])
    return {k: [steps[t][k] for t in sorted(steps)] for k in names}


#: name -> harness factory (proofs expected to pass)
PROOFS = {"dispatch_mask": DispatchHarness}


def run(name="dispatch_mask", params=SMALL, **kw):
    """Prove one property; returns ``(FormalResult, seconds)``."""
    h = PROOFS[name](params, **kw)
    t0 = time.monotonic()
    res = prove(h, name, depth=h.depth, ports=h.ports())
    return res, time.monotonic() - t0


if __name__ == "__main__":
    res, secs = run()
    print(f"{res.summary()}  [{secs:.1f} s]")
    sys.exit(0 if res.passed else 1)
