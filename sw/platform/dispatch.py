"""The model backend's descriptor path in device time, wired as rtl/cmd wires it.

Ref: ``rtl/cmd/prefetch.py`` (the shared prefetch), ``rtl/cmd/dispatch.py``
(the engines' arbiter, the eligibility mask, WAIT holds, the hand-over),
``rtl/cmd/arbiter.py`` (the grant rules) and ``rtl/cmd/executor.py`` (what
an executor spends). Arbitration order is part of what the model promises
(DESIGN.md, "Scheduler and scanner"): policies studied on the model backend
must grant as the hardware does. The model therefore follows the RTL's
structure where it decides who runs, and nowhere else:

* **the prefetch** is one fetcher shared by every engine. It reads the head
  descriptor of the lowest-numbered ADI that *needs* one (pending, its slot
  empty, not taken in the last two cycles), one at a time, each in
  ``TimingModel.prefetch`` cycles, into the ADI's slot, with its estimated
  cost (ENG.COST_A/B when it is fetched). An ordinary descriptor leaves its
  slot when it is taken, so the next one of its ring is fetched while it
  runs; a WAIT keeps its slot until its check is decided. A fetch the
  tracker blocks puts the ADI into ERROR 4; a fetch for an ADI that stopped
  being pending meanwhile is dropped;
* **engine e decides** only while its executor is idle, no descriptor is on
  its way to it, and no ADI bound to it needs a fetch: fetches go first, so
  a decision sees every ring with work. When a descriptor ends before its
  ring's next one is fetched, the arbiter waits for that fetch and then
  sees that ring too (under WRR a ring keeps its grant for its weight);
  under QoS, a decision that finds nothing within its budget is made again
  as soon as a slot fills or the slice refills;
* **the grant** (:class:`~siov.sw.model.arbiter.ArbiterPolicyModel`: the
  RTL's rules) is taken ``TimingModel.take`` cycles after the decision (the
  arbiter's two registered stages) by the loader, which serves one engine
  at a time, round robin, and hands the descriptor to the executor
  ``TimingModel.load`` cycles later. It is dispatched only if its ADI is
  still ready, eligible and not held when it is taken;
* **the executor** runs the descriptor for ENG.LAST_CYCLES
  (:meth:`TimingModel.engine_cycles`: the record's cycles, its write, the
  finish) and is idle the cycle after; the descriptor's writes and its
  interrupt take effect at its finish. Its record names the engine and the
  hand-over cycle (``start_cycle``, the cycle counter's low word), as the
  RTL's does. A retried WAIT check holds its ADI
  until the next re-check tick;
* **the engines share the AXI4 port** (rtl/cmd/ports.py): bursts of
  different engines take turns on its read and write channels. A
  descriptor that moves ``r`` read and ``w`` write beats per cycle alone
  advances, while others move ``R`` and ``W`` beats per cycle, at
  ``1 / (1 + contend * (r * R + w * W))`` of its own pace
  (``TimingModel.contend``): on each channel its beats wait for the others'
  in proportion to how busy both keep it. Its record's ``cycles`` and
  ENG.LAST_CYCLES count what it took;
* **QoS slices** refill every budget when the RTL's slice timer does: every
  ENG.ARB_SLICE cycles, counted from the first refill after the register
  was written (the arbiter's timer runs from reset on that register). The
  budgets are per ADI, one set for every engine, as the RTL's arbiter keeps
  them.

The descriptor is executed (through the block models) when it is taken;
what it writes becomes visible at its finish.
"""

import math
from dataclasses import dataclass

from ...rtl.cmd.cost import COST_WIDTH
from ...rtl.cmd.dsa import Opcode
from ..model.arbiter import ArbiterConfig, ArbiterPolicyModel, SliceBudgets
from ..model.engine import estimate_cost
from .timing import features

__all__ = ["Dispatcher"]

#: Cycles after a take during which the taken ADI is not asked for a fetch (its HEAD and
#: ``pending`` are being updated: the dispatcher's ``settle`` and ``settle2``).
SETTLE = 3


@dataclass
class _Slot:
    raw: bytes
    cost: int
    wait: bool


@dataclass
class _Run:
    """A descriptor with an executor: taken at ``take``, started at ``start``, finishing at ``finish``.

    ``work`` is its ENG.LAST_CYCLES alone, ``record`` its record's cycles alone; ``reads`` and
    ``writes`` the bus beats per cycle it moves alone. ``done`` is the work done by cycle
    ``updated``, at ``rate`` (work per cycle) since."""
    adi: int
    result: object
    staged: object
    take: int
    start: int
    finish: int
    gone: int            # the ADI's count of pending drops when taken (a later drop voids a WAIT report)
    work: int = 0
    record: int = 0
    reads: float = 0.0
    writes: float = 0.0
    done: float = 0.0
    updated: int = 0
    rate: float = 1.0
    active: bool = False


def _bits(mask, _known={}):
    """The indices of the bits set in ``mask``, lowest first (a tuple, made once per mask)."""
    out = _known.get(mask)
    if out is None:
        out = _known[mask] = tuple(i for i in range(mask.bit_length()) if mask >> i & 1)
    return out


class _Engine:
    def __init__(self):
        self.run = None          # the _Run with the executor (loading or executing)
        self.idle_from = 0       # the executor is idle from this cycle on (when run is None)
        self.grant = None        # (adi, cycle it may be taken) decided, not yet taken
        self.idle_kind = None    # what this engine's idle cycles count as, until the next step


class Dispatcher:
    """The prefetch, the engines' arbiter, the loader and the executors of ``bus``'s Device.

    Parameters
    ----------
    bus : ModelBus
        Gives the Device model (``device``), the timing model (``timing``),
        the clock (``now``) and the outputs: ``dispatches``, ``retries``,
        ``_deliver`` and ``_stamp_record``.
    staged_memory : callable
        ``staged_memory(memory)``: host memory as one executing descriptor sees it,
        its writes held back until its ``commit()`` at the descriptor's finish.
    """

    def __init__(self, bus, staged_memory):
        self.bus, self.dev, self.timing = bus, bus.device, bus.timing
        self.staged_memory = staged_memory
        self.n, self.ne = bus.params.num_adis, bus.params.num_engines
        # One grant per engine over budgets shared by them all, as the RTL's arbiter keeps them.
        self.budgets = SliceBudgets(self.n, cost_width=COST_WIDTH)
        self.arbiters = [ArbiterPolicyModel(self.n, budgets=self.budgets) for _ in range(self.ne)]
        self.engines = [_Engine() for _ in range(self.ne)]
        self.slots = [None] * self.n
        self.taken = [-SETTLE] * self.n      # cycle each ADI's slot was last emptied by a take or a report
        self.gone = [0] * self.n             # times each ADI stopped being pending
        self.held = [0] * self.n             # a retried WAIT holds its ADI until this cycle
        self.wait_first = {}                 # ADI -> cycle its head WAIT's first check was retried
        self.fetching = None                 # (ADI, cycle the slot fills, its gone count at the start)
        self.fetch_free = 0                  # the prefetch has been idle since this cycle
        self.rose = [None] * self.n          # cycle a doorbell made each ADI pending, before its response
        self.loader_free = 0
        self.loader_last = self.ne - 1
        # The loader's round robin: the engines in the order it serves them after each one.
        self._orders = [tuple((last + 1 + k) % self.ne for k in range(self.ne)) for last in range(self.ne)]
        self.dispatched = 0                  # descriptors handed to the executors so far
        self.refill_at = 0                   # the next QoS slice boundary
        self.slice = 0                       # its period, once reached (0: every cycle)
        self.slice_next = 0                  # ENG.ARB_SLICE, in force from the next boundary
        self.pending = 0
        self.accounted = 0
        self.loop = None                     # the loop it steps on, once started (:meth:`start`)
        self.failure = None                  # the exception that stopped it, if one did
        self._queued = False                 # a step is queued on the loop
        self._timer = None                   # the timer of the next step due
        self._port = ()                      # the runs moving on the shared port at the last change
        self._bound_masks = [0] * self.ne    # the ADIs bound to each engine, as of this step
        self.stale = True                    # an MMIO write since the last step: read the ADIs again
        self._cfg = self._costs = None       # the arbiters' configuration and ENG.COST_A/B, as of this step
        self.over_budget = False             # some engine found work, none of it within budget

    # -- inputs from the bus -----------------------------------------------------------

    def poke(self):
        """Something the dispatcher reads changed (an MMIO write): decide again now."""
        if self.loop is not None and not self._queued and self.failure is None:
            self._queued = True
            self.loop.call_soon(self._tick)

    def slice_written(self, cycles, now):
        """ENG.ARB_SLICE written at ``now``: the timers reload with it at their next refill."""
        self.slice_next = cycles
        if self.slice == 0:          # refilling every cycle: the next one is now
            self.refill_at = now + 1

    def track_pending(self, since=None):
        """Note the ADIs that became pending (at cycle ``since``, if the write that made them so
        reached the Device before its response), and apply what an ADI that stopped being
        pending loses: its slot, a fetch in flight, its WAIT's hold and first-retry stamp
        (``slot_valid & pending`` and friends in the RTL)."""
        now_pending = self.dev.adi.pending()
        fell = self.pending & ~now_pending
        rose = now_pending & ~self.pending
        self.pending = now_pending
        if since is not None:
            for i in _bits(rose):
                self.rose[i] = since
        for i in _bits(fell):
            self.gone[i] += 1
            self.slots[i] = None
            self.held[i] = 0
            self.rose[i] = None
            self.wait_first.pop(i, None)

    # -- the loop ----------------------------------------------------------------------

    def start(self, loop):
        """Step on ``loop`` from now on: at every cycle something is due, and after every MMIO
        write (:meth:`poke`).

        The dispatcher is callbacks on the loop, not a task: a step due at a cycle is a timer
        whose callback queues the step, so the step runs where the wake-up of a task sleeping
        until that cycle would (after the callbacks already queued), at the cost of one
        callback instead of a task's resumption through an event. A step that raises stops
        the dispatcher; :attr:`failure` holds the exception."""
        self.loop = loop
        self.poke()

    def _due(self):
        self._timer = None
        self.poke()

    def _tick(self):
        self._queued = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        skip = getattr(self.loop, "skip", None)      # a VirtualTimeLoop's
        try:
            now = self.bus.now()
            while True:
                self.step(now)
                nxt = self.next_event(now)
                # When nothing else would run before the next step is due, the clock moves
                # there and the step is taken now, as its timer would have had it taken.
                if nxt is None or skip is None or not skip(nxt - now):
                    break
                now = nxt
        except Exception as e:
            self.failure = e
            return
        if nxt is not None:
            self._timer = self.loop.call_at(nxt, self._due)

    def step(self, now):
        """Everything due at cycle ``now``, in the order the RTL's registers see it."""
        self.account(now)
        if self.stale:
            # Bindings, pending bits and the arbiters' registers change only through MMIO writes
            # and the dispatcher's own takes, fetches and finishes (each of which notes them at
            # once); reads have no side effect on them.
            self._bound_masks = [self.dev.adi.bound(e) for e in range(self.ne)]
            self.track_pending()
            self._cfg = self._costs = None      # and the arbiters' registers
            self.stale = False
        self._refill(now)
        self._share(now)
        finished = False
        for e, eng in enumerate(self.engines):
            if eng.run is not None and eng.run.finish <= now:
                self._finish(e, now)
                finished = True
        if finished:                  # (the port's runs change only with a finish or a start)
            self._share(now)
        self._prefetch(now)
        order = self._orders[self.loader_last]
        self.over_budget = False
        for e in order:
            self._decide(e, now)
        dispatched = self.dispatched
        for e in order:
            self._take(e, now)
        if self.dispatched != dispatched:
            self._share(now)
        self._prefetch(now)
        self._classify_idle(now)

    def next_event(self, now):
        """The next cycle at which something changes without an MMIO write (None: nothing will)."""
        best = math.inf
        if self.fetching is not None:
            t = self.fetching[1]
            if now < t < best:
                best = t
        elif self._need(now + SETTLE + 1):
            for t in self.taken:
                t += SETTLE
                if now < t < best:
                    best = t
        engines = self.engines
        runs = sum(eng.run is not None for eng in engines)
        waiting = False
        for eng in engines:
            run = eng.run
            if run is not None:
                # A run that starts alone on the port needs no wake-up at its start: it is
                # joined to the port (at its own pace since its start) at the next step.
                t = run.finish if run.active or runs == 1 else run.start
            elif eng.grant is not None:
                t = max(eng.grant[1], self.loader_free, now + 1)
            elif eng.idle_from > now:
                t = eng.idle_from
            else:
                waiting = True
                continue
            if now < t < best:
                best = t
        if waiting:
            for t in self.held:
                if now < t < best:
                    best = t
            if self.over_budget:            # QoS: what is ready fits nobody's budget until the refill
                t = max(self.refill_at, now + 1)
                if t < best:
                    best = t
        return None if best is math.inf else best

    # -- the prefetch ------------------------------------------------------------------

    def _need(self, now):
        """ADIs whose head descriptor must be fetched: pending, slot empty, not just taken."""
        need = 0
        slots, taken = self.slots, self.taken
        for i in _bits(self.pending):
            if slots[i] is None and now >= taken[i] + SETTLE:
                need |= 1 << i
        return need

    def _prefetch(self, now):
        if self.fetching is not None and self.fetching[1] <= now:
            adi, self.fetch_free, gone = self.fetching
            self.fetching = None
            if gone == self.gone[adi] and self.pending >> adi & 1 and self.slots[adi] is None:
                raw = self.dev.engine.fetch(adi)
                if raw is None:                  # blocked: the ADI went to ERROR 4
                    self.track_pending()
                else:
                    eng = self.dev.engine
                    if self._costs is None:
                        self._costs = (eng.field("ENG.COST_A.A"), eng.field("ENG.COST_B.B"))
                    cost = estimate_cost(raw, *self._costs, width=COST_WIDTH)
                    self.slots[adi] = _Slot(raw, cost, raw[7] == Opcode.WAIT.value)
        if self.fetching is None:
            need = self._need(now)
            if need:
                adi = (need & -need).bit_length() - 1
                # An idle prefetch took up a doorbell's ADI when the write reached the Device.
                start = now if self.rose[adi] is None else min(now, max(self.rose[adi], self.fetch_free))
                self.rose[adi] = None
                self.fetching = (adi, start + self.timing.prefetch, self.gone[adi])

    # -- the arbiters ------------------------------------------------------------------

    def _policy(self):
        return self.dev.engine.field("ENG.ARB_CTRL.POLICY")

    def _config(self):
        """The arbiters' configuration registers (read again after every MMIO write)."""
        if self._cfg is None:
            eng = self.dev.engine
            self._cfg = ArbiterConfig(policy=self._policy(), weight=list(eng.weights), quantum=list(eng.quanta),
                                      slice_cycles=eng.field("ENG.ARB_SLICE.CYCLES"))
        return self._cfg

    def _refill(self, now):
        if self.refill_at > now:
            return
        self.slice = self.slice_next
        if self.slice:
            self.refill_at += (now - self.refill_at) // self.slice * self.slice + self.slice
        else:
            self.refill_at = now + 1
        self.budgets.refill(self._config())

    def _bound(self, e):
        return self._bound_masks[e]

    def _dispatchable(self, now):
        ready = 0
        slots, held = self.slots, self.held
        for i in _bits(self.pending):
            if slots[i] is not None and held[i] <= now:
                ready |= 1 << i
        return ready & self.dev.engine.eligible

    def _deciding(self, e, now):
        eng = self.engines[e]
        return eng.run is None and now >= eng.idle_from and not self._need(now) & self._bound(e)

    def _decide(self, e, now):
        eng = self.engines[e]
        if eng.grant is not None or not self._deciding(e, now):
            return
        offered = self._dispatchable(now) & self._bound(e)
        if not offered:
            return
        costs = {i: self.slots[i].cost for i in _bits(offered)}
        adi = self.arbiters[e].pick(offered, costs, self._config())
        if adi is None:
            self.over_budget = True
        else:
            eng.grant = (adi, now + self.timing.take)

    # -- the loader and the executors ----------------------------------------------------

    def _take(self, e, now):
        eng = self.engines[e]
        if eng.grant is None or eng.grant[1] > now or self.loader_free > now or not self._deciding(e, now):
            return
        adi = eng.grant[0]
        eng.grant = None
        self.loader_last = e
        if not (self._dispatchable(now) & self._bound(e)) >> adi & 1:
            return                       # dropped: the mask or a hold changed since the decision
        self.loader_free = now + self.timing.load
        self._dispatch(e, adi, now)

    def _dispatch(self, e, adi, now):
        dev, timing = self.dev, self.timing
        self.dispatched += 1
        slot = self.slots[adi]
        first = self.wait_first.get(adi)
        timed_out = first is not None and now - first >= dev.engine.wait_timeout
        staged = self.staged_memory(dev.memory)
        dev.engine.engine.memory = staged
        start = now + timing.load          # the hand-over to the executor: the record's start_cycle
        try:
            res = dev.engine.check_wait(adi, slot.raw, timed_out, 0, finish=False, start_cycle=start)
        finally:
            dev.engine.engine.memory = dev.memory
        if not slot.wait:                 # an ordinary descriptor leaves its slot at the take
            self.slots[adi] = None
            self.taken[adi] = now
        reads = writes = 0
        if res.outcome is None:           # refused (a foreign PASID): the executor only reports it
            record = cycles = timing.refuse
        else:
            record = cycles = timing.descriptor_cycles(res.descriptor, res.outcome)
            self.bus._stamp_record(res, cycles, staged)
            if not res.retry:
                res.engine_cycles = cycles = timing.engine_cycles(res.descriptor, res.outcome, cycles)
            _, _, reads, writes, _ = features(res.descriptor, res.outcome)
        self.engines[e].run = _Run(adi, res, staged, now, start, start + cycles, self.gone[adi], work=cycles,
                                   record=record, reads=reads / cycles, writes=writes / cycles, updated=start)
        self.track_pending()

    def _share(self, now):
        """Runs that start now join the port; if the runs on it changed, every run's pace follows
        its share of the port from now on (its finish moves accordingly)."""
        runs = [eng.run for eng in self.engines if eng.run is not None]
        if not runs and not self._port:
            return
        started = [r for r in runs if not r.active and r.start <= now]
        ended = self._port
        live = [r for r in runs if r.active or r in started]
        if not started and len(live) == len(ended):
            return
        for r in live:
            # Until now a run went at its rate since its last update, or, joining the port
            # late, alone at its own pace since its start (else a step would have come then).
            r.done += r.rate * (now - r.updated) if r.active else now - r.start
            r.active, r.updated = True, now
        self._port = tuple(live)
        reads, writes = sum(r.reads for r in live), sum(r.writes for r in live)
        for r in live:
            # Its beats meet the others' on each channel: delayed in proportion to both.
            r.rate = 1.0 / (1.0 + self.timing.contend * (r.reads * (reads - r.reads) + r.writes * (writes - r.writes)))
            left = r.work - r.done
            r.finish = now + max(0, math.ceil(left / r.rate - 1e-6))

    def _finish(self, e, now):
        eng = self.engines[e]
        run, eng.run = eng.run, None
        eng.idle_from = now + 1
        res = run.result
        took = now - run.start
        if took != run.work and res.outcome is not None:
            # Slowed by the shared port: the record and ENG.LAST_CYCLES count what it took.
            self.bus._stamp_record(res, run.record + took - run.work, run.staged)
            if res.engine_cycles is not None:
                res.engine_cycles = took
        run.staged.commit()
        self.dev.engine.finish(res)
        op = res.descriptor.opcode
        op = getattr(op, "value", op)
        record = self.bus.dispatch_record(run.adi, run.start, now, op, res, e)
        live = run.gone == self.gone[run.adi]     # an ABORT since voids the WAIT's report
        if self.slots[run.adi] is not None and self.slots[run.adi].wait and live:
            if res.retry:
                self.wait_first.setdefault(run.adi, now)
                self.held[run.adi] = self._next_tick(now) + 1     # the hold register clears after the tick
            else:
                self.slots[run.adi] = None
                self.taken[run.adi] = now
        if res.retry:
            self.bus.retries.append(record)
            return
        self.wait_first.pop(run.adi, None)
        self.bus._deliver(res.irq)
        self.bus.dispatches.append(record)
        self.track_pending()

    def _next_tick(self, t):
        """The first WAIT re-check tick after cycle ``t`` (ticks every WAIT_RECHECK + 1 cycles from reset)."""
        period = self.dev.engine.wait_recheck
        return (t // period + 1) * period

    # -- idle accounting -----------------------------------------------------------------

    def _classify_idle(self, now):
        """What each engine's idle cycles count as until the next step: IDLE_INELIGIBLE while every
        ADI bound to it with a descriptor ready is outside the mask, IDLE_WAITING while none is
        dispatchable and some in the mask is held for a WAIT re-check."""
        ready = 0
        for i in _bits(self.pending):
            if self.slots[i] is not None:
                ready |= 1 << i
        eligible = self.dev.engine.eligible
        dispatchable = self._dispatchable(now)
        for e, eng in enumerate(self.engines):
            mine = ready & self._bound(e)
            eng.idle_kind = None
            if eng.run is not None or now < eng.idle_from or not mine:
                continue
            if not mine & eligible:
                eng.idle_kind = "ineligible"
            elif not mine & dispatchable:
                eng.idle_kind = "waiting"

    def account(self, now):
        """Add the idle cycles since the last step to ENG.IDLE_INELIGIBLE / IDLE_WAITING."""
        dt = now - self.accounted
        if dt <= 0:
            return
        self.accounted = now
        for eng in self.engines:
            if eng.idle_kind == "ineligible":
                self.dev.engine.add_idle(ineligible=dt)
            elif eng.idle_kind == "waiting":
                self.dev.engine.add_idle(waiting=dt)
