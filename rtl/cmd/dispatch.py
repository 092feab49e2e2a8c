"""The dispatcher: the engines' arbiter, the eligibility mask, and WAIT bookkeeping.

It owns the per-ADI slots' state (the prefetch fills them, see
:mod:`.prefetch`) and hands descriptors to the engines' executors
(:mod:`.executor`):

* **per-ring scheduling**: engine e has its own grant of the
  :class:`~.arbiter.QosArbiter` over the ADIs bound to it (``ring.engine``),
  under the policy in force; the ADIs' budgets exist once. Its requests are ``slot filled & pending & bound to e & eligible & not held``,
  raised only while e *decides*: its executor is idle, no descriptor is on
  its way to it, and no ADI bound to it waits for a fetch (fetches go first,
  so a decision sees every ADI with work, as with one engine);
* **the eligibility mask** (``eligible``, ENG.ELIGIBLE_CUR): a grant is
  dispatched only if its ADI is still ready, bound to the engine, eligible
  and not held *when it is taken*; otherwise it is dropped. The arbiter's two
  registered stages therefore cannot carry a decision made under an older
  mask into a dispatch: no ADI outside the mask is ever dispatched
  (``tb/cmd/formal.py`` proves it by k-induction);
* **dispatch**: a taken grant's slot is read into a staging register (8
  words, 2 cycles of block RAM and output register latency) and offered to
  the executor. An ordinary descriptor is consumed at the take (the ADI block
  advances HEAD, ``consume``) and its slot freed; a WAIT is not: its slot
  stays filled until the executor reports (``done``) that the WAIT was
  decided (consume) or must be checked again (retry). One take per cycle at
  most, and none in a cycle that consumes a decided WAIT;
* **WAIT re-checks**: a retried ADI is *held* (out of its arbiter) until the
  next re-check tick, every ``recheck`` + 1 cycles. The first retry of a
  descriptor stamps the cycle; a later check finds it timed out if
  ``timeout`` cycles have passed since (the executor then completes the WAIT
  with WAIT_TIMEOUT);
* **fetch order**: the prefetch is asked for ``need`` = pending ADIs with an
  empty slot, except an ADI consumed in the last two cycles (its HEAD and
  ``pending`` are being updated by the ADI block).

Counters of idle engines: ``idle_ineligible`` (the engines that are idle
while every ADI bound to them that has a descriptor ready is outside the
mask) and ``idle_waiting`` (idle, nothing dispatchable, and some ready ADI in
the mask is held for a WAIT re-check), each of the cycle before: registered,
because they come from every executor's state and go to the engine's 32-bit
cycle counters (on the Device's critical path while combinational). A read of
``ENG.IDLE_*`` therefore counts the cycles up to the one before its own.
"""

import types

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..dma.defs import PASID_BITS
from ..params import DeviceParams, require_params
from .adi import CONSUME_LAYOUT, RING_LAYOUT
from .arbiter import QosArbiter
from .cost import COST_WIDTH
from .dsa import DescriptorLayout
from .mover import WORD_BITS
from ..stream import RoundRobin, select
from .prefetch import DESC_WORDS, FILL_LAYOUT, slot_addr_bits

__all__ = ["Dispatcher", "START_LAYOUT", "DONE_LAYOUT"]

#: A descriptor handed to an executor: its ADI and the ADI's PASID, whether a
#: WAIT check that fails now times out, and the descriptor.
START_LAYOUT = data.StructLayout({"adi": 6, "pasid": PASID_BITS, "timed_out": 1,
                                  "desc": DescriptorLayout})
#: An executor's report on a WAIT: decided (``consume``) or to be checked again (``retry``).
DONE_LAYOUT = data.StructLayout({"adi": 6, "consume": 1, "retry": 1})


class Dispatcher(wiring.Component):
    """Arbitration and dispatch over ``num_engines`` executors.

    Attributes
    ----------
    pending : In(num_adis)
    ring : In(ArrayLayout(RING_LAYOUT, num_adis))
    eligible : In(num_adis)
        The eligibility mask in force.
    fill : In(stream.Signature(FILL_LAYOUT, always_ready=True))
        From the prefetch: a fill lands in its slot in the cycle it is valid.
    need : Out(num_adis)
        Towards the prefetch.
    slot_raddr : Out, slot_rdata : In
        The slot RAM's read port (data one cycle after the address).
    start{e} : Out(stream.Signature(START_LAYOUT))
    idle : In(num_engines)
        Executor e can take a descriptor.
    done{e} : In(stream.Signature(DONE_LAYOUT))
    consume : Out(stream.Signature(CONSUME_LAYOUT, always_ready=True))
        Towards the ADI block, which advances the ADI's HEAD in the cycle of the beat.
    policy, slice_cycles, weight, quantum : In
        Arbiter configuration, shared by every engine.
    budget_sel : In(6), budget : Out(COST_WIDTH)
        The remaining budget of ADI ``budget_sel``.
    slice_end : Out(1)
    recheck : In(16), timeout : In(32), now : In(32)
        WAIT re-check period and timeout (cycles), and the cycle counter.
    dispatched : Out(1), dispatched_adi : Out(6), dispatched_engine : Out(2)
        A descriptor was handed over this cycle (the take): for ENG_STATUS and the proof.
    loading : Out(num_engines), loading_adi : Out(num_adis)
        The engine and ADI (one-hot) of a descriptor taken and not yet started: busy.
    idle_ineligible, idle_waiting : Out(range(num_engines + 1))
        The idle engines of each kind, in the cycle before (registered; see above).
    """

    def __init__(self, params=DeviceParams()):
        self.params = require_params(params, "Dispatcher")
        n, ne = params.num_adis, params.num_engines
        members = {
            "pending": In(n),
            "ring": In(data.ArrayLayout(RING_LAYOUT, n)),
            "eligible": In(n),
            "fill": In(stream.Signature(FILL_LAYOUT, always_ready=True)),
            "need": Out(n),
            "slot_raddr": Out(slot_addr_bits(n)),
            "slot_rdata": In(WORD_BITS),
            "idle": In(ne),
            "consume": Out(stream.Signature(CONSUME_LAYOUT, always_ready=True)),
            "policy": In(2),
            "slice_cycles": In(24),
            "weight": In(data.ArrayLayout(8, n)),
            "quantum": In(data.ArrayLayout(COST_WIDTH, n)),
            "budget_sel": In(6),
            "budget": Out(COST_WIDTH),
            "slice_end": Out(1),
            "recheck": In(16),
            "timeout": In(32),
            "now": In(32),
            "dispatched": Out(1),
            "dispatched_adi": Out(6),
            "dispatched_engine": Out(2),
            "loading": Out(ne),
            "loading_adi": Out(n),
            "idle_ineligible": Out(range(ne + 1)),
            "idle_waiting": Out(range(ne + 1)),
        }
        for e in range(ne):
            members[f"start{e}"] = Out(stream.Signature(START_LAYOUT))
            members[f"done{e}"] = In(stream.Signature(DONE_LAYOUT))
        super().__init__(members)

    def starts(self):
        return [getattr(self, f"start{e}") for e in range(self.params.num_engines)]

    def dones(self):
        return [getattr(self, f"done{e}") for e in range(self.params.num_engines)]

    def elaborate(self, platform):
        m = Module()
        # The steps share the per-ADI state and each other's nets through `s`, in this order.
        s = self._slot_state(m)
        self._arbitrate(m, s)
        self._take_grant(m, s)
        self._take_report(m, s)
        self._consume(m, s)
        self._fill_slots(m, s)
        self._wait_holds(m, s)
        self._load_and_start(m, s)
        self._idle_accounting(m, s)
        return m

    def _slot_state(self, m):
        """The per-ADI state the steps below share; ``need`` towards the prefetch."""
        n, ne = self.params.num_adis, self.params.num_engines
        s = types.SimpleNamespace()
        s.slot_valid = Signal(n)
        s.slot_wait = Signal(n)                 # the slot holds a WAIT
        s.held = Signal(n)                      # retried WAIT: out of the arbiter until the tick
        s.wait_run = Signal(n)                  # a WAIT of this ADI's slot is with an executor
        s.waiting = Signal(n)                   # a WAIT of this ADI has been retried (stamp valid)
        s.stamp = [Signal(32, name=f"wait_since{i}") for i in range(n)]
        s.settle = Signal(n)                    # consumed 1 cycle ago
        s.settle2 = Signal(n)                   # consumed 2 cycles ago
        s.ready = Signal(n)
        m.d.comb += s.ready.eq(s.slot_valid & self.pending)
        s.bound = [Signal(n, name=f"bound{e}") for e in range(ne)]
        for e in range(ne):
            m.d.comb += s.bound[e].eq(Cat(self.ring[i].engine == e for i in range(n)))
        m.d.comb += self.need.eq(self.pending & ~s.slot_valid & ~s.settle & ~s.settle2)
        return s

    def _arbitrate(self, m, s):
        """The arbiter: a grant per engine, its requests raised only while the engine decides.

        The per-ADI state (costs, weights, quanta, budgets) exists once.
        """
        n, ne = self.params.num_adis, self.params.num_engines
        m.submodules.arbiter = arb = QosArbiter(n, num_engines=ne, cost_width=COST_WIDTH)
        s.grants = arb.grants()
        s.cost = [Signal(COST_WIDTH, name=f"cost{i}") for i in range(n)]
        s.assigned = Signal(ne)                 # a grant taken for e, not yet started
        s.claimed = Signal(ne)                  # ... taken in the cycle before (see _take_grant)
        s.deciding = Signal(ne)
        s.grant_ready = Signal(ne)
        s.dispatchable = Signal(n)
        m.d.comb += s.dispatchable.eq(s.ready & self.eligible & ~s.held)
        for e in range(ne):
            m.d.comb += s.deciding[e].eq(self.idle[e] & ~(s.assigned[e] | s.claimed[e])
                                         & ~(self.need & s.bound[e]).any())
            m.d.comb += arb.req[e].eq(Mux(s.deciding[e], s.dispatchable & s.bound[e], 0))
        m.d.comb += [arb.policy.eq(self.policy), arb.slice_cycles.eq(self.slice_cycles),
                     self.slice_end.eq(arb.slice_end)]
        for i in range(n):
            m.d.comb += [arb.cost[i].eq(s.cost[i]), arb.weight[i].eq(self.weight[i]),
                         arb.quantum[i].eq(self.quantum[i])]
        sel = Signal(range(max(n, 2)))          # budget_sel, in range
        m.d.comb += sel.eq(Mux(self.budget_sel < n, self.budget_sel, 0))
        m.d.comb += self.budget.eq(Mux(self.budget_sel < n, Array(arb.budget[i] for i in range(n))[sel], 0))

    def _take_grant(self, m, s):
        """Taking a grant: one at a time, engines with a grant waiting served round robin.

        ``grant_ready`` is registered from ``deciding``. A taken grant is dispatched
        (``ok``) only if its ADI is still dispatchable and bound to the engine.
        The loader acts on the dispatch a cycle later, from registers (``ok_q``,
        ``g_q``, ``te_q``): the take's decision (the engines' round robin, the
        ADI's flags) ends in flip-flops, not in the enables of the loader's
        registers beside the slot RAM. No cycle changes: in that cycle the grant
        counts as the loader's (``claimed``: no take, the engine not deciding)
        and the slot's first word is addressed from the registers.
        """
        n, ne = self.params.num_adis, self.params.num_engines
        s.loading = Signal()
        m.submodules.engine_rr = engine_rr = RoundRobin(ne)
        for e, gr in enumerate(s.grants):
            m.d.comb += engine_rr.req[e].eq(gr.valid & s.grant_ready[e])
        s.take = Signal()
        s.ok_q = Signal()                       # a dispatch in the cycle before ...
        s.g_q = Signal(range(max(n, 2)))        # ... of this ADI
        s.te_q = Signal(range(max(ne, 2)))      # ... to this engine
        m.d.comb += s.take.eq(engine_rr.found & ~s.loading & ~s.ok_q)
        m.d.comb += engine_rr.take.eq(s.take)
        m.d.sync += s.grant_ready.eq(s.deciding)
        for e, gr in enumerate(s.grants):
            m.d.comb += gr.ready.eq(s.take & (engine_rr.pick == e))
        s.g = Signal(range(max(n, 2)))          # the taken grant's ADI
        m.d.comb += s.g.eq(Array(gr.payload.adi for gr in s.grants)[engine_rr.pick])
        s.te = engine_rr.pick
        bound_ok = select(s.bound, s.te).bit_select(s.g, 1)
        s.ok = Signal()
        m.d.comb += s.ok.eq(s.take & s.dispatchable.bit_select(s.g, 1) & bound_ok)
        m.d.comb += [self.dispatched.eq(s.ok), self.dispatched_adi.eq(s.g), self.dispatched_engine.eq(s.te)]
        m.d.sync += [s.ok_q.eq(s.ok), s.g_q.eq(s.g), s.te_q.eq(s.te)]
        m.d.comb += s.claimed.eq(Mux(s.ok_q, (Const(1, ne) << s.te_q)[:ne], 0))

    def _take_report(self, m, s):
        """The executors' WAIT reports, one per cycle round robin, none in a cycle that takes a grant."""
        dones = self.dones()
        m.submodules.done_rr = done_rr = RoundRobin(self.params.num_engines)
        for e, d in enumerate(dones):
            m.d.comb += done_rr.req[e].eq(d.valid)
        s.done_take = Signal()
        m.d.comb += s.done_take.eq(done_rr.found & ~s.take)
        m.d.comb += done_rr.take.eq(s.done_take)
        for e, d in enumerate(dones):
            m.d.comb += d.ready.eq(s.done_take & (done_rr.pick == e))
        s.rep = Array(d.payload for d in dones)[done_rr.pick]

    def _consume(self, m, s):
        """Consume beats (registered): an ordinary descriptor at its take, a WAIT when decided."""
        n = self.params.num_adis
        consume_now = Signal()                  # a consume leaves this cycle's take or report
        consume_adi = Signal(6)
        with m.If(s.ok & ~s.slot_wait.bit_select(s.g, 1)):
            m.d.comb += [consume_now.eq(1), consume_adi.eq(s.g)]
        with m.Elif(s.done_take & s.rep.consume & s.wait_run.bit_select(s.rep.adi, 1)):
            m.d.comb += [consume_now.eq(1), consume_adi.eq(s.rep.adi)]
        with m.If(self.consume.valid):
            m.d.sync += self.consume.valid.eq(0)
        with m.If(consume_now):
            m.d.sync += [self.consume.valid.eq(1), self.consume.payload.adi.eq(consume_adi)]
        s.consumed = Signal(n)
        m.d.comb += s.consumed.eq(Mux(consume_now, (Const(1, n) << consume_adi)[:n], 0))
        m.d.sync += [s.settle.eq(s.consumed), s.settle2.eq(s.settle)]

    def _fill_slots(self, m, s):
        """Slots filled by the prefetch, freed when consumed or no longer pending."""
        n = self.params.num_adis
        slot_valid = s.slot_valid
        fill_onehot = Signal(n)
        # A fill only lands in an empty slot (the prefetch fetches only what `need` names).
        m.d.comb += fill_onehot.eq(Mux(self.fill.valid, (Const(1, n) << self.fill.payload.adi)[:n], 0) & ~slot_valid)
        m.d.sync += slot_valid.eq((slot_valid | fill_onehot) & ~s.consumed & self.pending)
        for i in range(n):
            with m.If(fill_onehot[i]):
                m.d.sync += [s.cost[i].eq(self.fill.payload.cost), s.slot_wait[i].eq(self.fill.payload.wait)]

    def _wait_holds(self, m, s):
        """WAIT holds, first-retry stamps and the re-check tick (every ``recheck`` + 1 cycles)."""
        n = self.params.num_adis
        done_take, rep, wait_run = s.done_take, s.rep, s.wait_run
        tick = Signal()
        tick_count = Signal(16)
        with m.If(tick_count == 0):
            m.d.sync += tick_count.eq(self.recheck)
            m.d.comb += tick.eq(1)
        with m.Else():
            m.d.sync += tick_count.eq(tick_count - 1)
        retry_onehot = Signal(n)
        decided_onehot = Signal(n)
        m.d.comb += [
            retry_onehot.eq(Mux(done_take & rep.retry & wait_run.bit_select(rep.adi, 1),
                                (Const(1, n) << rep.adi)[:n], 0)),
            decided_onehot.eq(Mux(done_take & rep.consume & wait_run.bit_select(rep.adi, 1),
                                  (Const(1, n) << rep.adi)[:n], 0)),
        ]
        # A report counts only for the WAIT its ADI's slot holds: an ABORT that drops the
        # ADI while an executor checks its WAIT makes that report void (the slot may be
        # refilled by then), so it neither consumes nor holds a later descriptor.
        waited = Signal(n)
        m.d.comb += waited.eq(Mux(s.ok & s.slot_wait.bit_select(s.g, 1), (Const(1, n) << s.g)[:n], 0))
        reported = Signal(n)                    # any report on a running WAIT ends its run
        m.d.comb += reported.eq(Mux(done_take & wait_run.bit_select(rep.adi, 1), (Const(1, n) << rep.adi)[:n], 0))
        m.d.sync += wait_run.eq((wait_run | waited) & ~reported & self.pending)
        m.d.sync += [
            s.held.eq(((s.held & ~tick.replicate(n)) | retry_onehot) & self.pending),
            s.waiting.eq(((s.waiting | retry_onehot) & ~decided_onehot) & self.pending),
        ]
        for i in range(n):
            with m.If(retry_onehot[i] & ~s.waiting[i]):
                m.d.sync += s.stamp[i].eq(self.now)

    def _load_and_start(self, m, s):
        """Loading a taken grant's slot into the staging register, then starting its executor.

        Word k's address is presented with ``l_word`` = k; it is in ``slot_q`` two
        cycles later (block RAM and output register). ``loading``/``loading_adi`` say
        which engine and ADI hold a descriptor taken and not yet started.
        """
        n, ne = self.params.num_adis, self.params.num_engines
        starts = self.starts()
        l_adi = Signal(range(max(n, 2)))
        l_engine = Signal(range(max(ne, 2)))
        l_word = Signal(range(DESC_WORDS + 3))
        l_timed_out = Signal()
        stage = Signal(DescriptorLayout)
        stage_bits = stage.as_value()
        slot_q = Signal(WORD_BITS)              # the block RAM's output, registered (timing)
        m.d.sync += slot_q.eq(self.slot_rdata)
        # The slot's first word is addressed from the dispatch's registers, in the
        # cycle the loader takes them over (l_word 0).
        m.d.comb += self.slot_raddr.eq(Mux(s.ok_q, Cat(Const(0, 3), s.g_q), Cat(l_word[:3], l_adi)))
        starting = Signal()
        stamp_g = Signal(32)
        # The take's WAIT flag and cycle as they stood in its cycle (registered every
        # cycle); its WAIT's stamp cannot change in that cycle (no report is taken
        # with a take), so the time since it is counted in the next cycle, from the
        # registered ADI.
        waiting_at_take = Signal()
        now_at_take = Signal(32)
        m.d.sync += [waiting_at_take.eq(s.waiting.bit_select(s.g, 1)), now_at_take.eq(self.now)]
        for e, st in enumerate(starts):
            m.d.comb += [st.valid.eq(starting & (l_engine == e)), st.payload.adi.eq(l_adi),
                         st.payload.pasid.eq(self.ring[l_adi].pasid), st.payload.timed_out.eq(l_timed_out),
                         st.payload.desc.eq(stage)]
        with m.If(s.ok_q):
            m.d.sync += [s.loading.eq(1), l_adi.eq(s.g_q), l_engine.eq(s.te_q), l_word.eq(1),
                         s.assigned.bit_select(s.te_q, 1).eq(1),
                         stamp_g.eq(now_at_take - Array(s.stamp)[s.g_q]), l_timed_out.eq(waiting_at_take)]
        with m.If(s.loading & ~starting):
            m.d.sync += l_word.eq(l_word + 1)
            with m.If(l_word >= 2):
                m.d.sync += stage_bits.word_select((l_word - 2)[:3], WORD_BITS).eq(slot_q)
            with m.If(l_word == 2):
                # elapsed since the first retry (registered at the take) against the timeout
                m.d.sync += l_timed_out.eq(l_timed_out & (stamp_g >= self.timeout))
            with m.If(l_word == DESC_WORDS + 1):
                m.d.sync += starting.eq(1)
        m.d.comb += [self.loading.eq(s.assigned | s.claimed),
                     self.loading_adi.eq(Mux(s.loading, (Const(1, n) << l_adi)[:n], 0)
                                         | Mux(s.ok_q, (Const(1, n) << s.g_q)[:n], 0))]
        with m.If(starting & Array(st.ready for st in starts)[l_engine]):
            m.d.sync += [starting.eq(0), s.loading.eq(0), s.assigned.bit_select(l_engine, 1).eq(0)]

    def _idle_accounting(self, m, s):
        """Idle engines: outside the mask (``idle_ineligible``) or held for a WAIT re-check (``idle_waiting``)."""
        ne = self.params.num_engines
        inel = [Signal(name=f"idle_ineligible{e}") for e in range(ne)]
        wait = [Signal(name=f"idle_waiting{e}") for e in range(ne)]
        for e in range(ne):
            mine = s.ready & s.bound[e]
            idle = self.idle[e] & ~(s.assigned[e] | s.claimed[e])
            m.d.comb += [
                inel[e].eq(idle & mine.any() & ~(mine & self.eligible).any()),
                wait[e].eq(idle & mine.any() & ~(mine & s.dispatchable).any() & (mine & self.eligible & s.held).any()),
            ]
        m.d.sync += [self.idle_ineligible.eq(sum(inel)), self.idle_waiting.eq(sum(wait))]
