"""The GPU scheduler: a host task that scans every ring and programs the arbiters and the mask.

# Ref: US10970129B2 / US10133597 (intelligent GPU scheduling: scan the
# commands of every VM, switch from per-ring to gang scheduling when two
# rings of one VM depend on each other); US10580108B2 (best-effort QoS: run
# what fits the remaining slice); Linux drivers/gpu/drm/i915/gvt/sched_policy.c
# (GVT-g's weighted time slices with carried debt).

The scheduler is host code over the :class:`~siov.sw.bus.Bus`: a task
(:meth:`Bus.spawn`) that wakes every ``tick`` device cycles, scans the rings
(:class:`~siov.sw.sched.scanner.CommandScanner`), and acts only through real
registers, by the device's one driver (``hv.pf``): the eligibility mask
(:meth:`~siov.sw.hv.pf.PfDriver.set_eligible`, committed only when it
changes), the arbiter's policy, weights, quanta, slice and cost model
(:meth:`~siov.sw.hv.pf.PfDriver.set_arbiter`), and, through the VDCM, the
engine placement of queues composed afterwards (``placement``).

Policies (:data:`POLICIES`), chosen by name:

``per-ring``
    The mask stays open: each engine's arbiter chooses among its own rings
    (round robin, or weighted round robin by the tenants' weights).
``gang``
    GVT-g's time slices: one tenant's rings at a time get every engine, for
    ``slice_cycles``; the next is the least recently run tenant that has
    work and time left. Each balance period (one slice per tenant) adds to
    every tenant its weighted share of the period's engine cycles; each
    tenant is charged the cycles its completion records show (GVT-g charges
    the time between switches, which here would bill the descriptor still
    running at a switch to the next tenant); what a tenant overran or left
    over carries forward, and every ``stages`` periods the time left over is
    forgotten (GVT-g's stage 0; GVT-g forgets the debt too, which lets a
    tenant whose slice is long against its share run ahead of its weight,
    so here the debt is kept). A tenant whose rings are empty gives up the
    rest of its slice. When every tenant with work is in debt, the next
    period starts at once instead of idling.
``auto``
    The patent's claim. Per-ring by default. When the scanner finds, in one
    ring of a tenant, a WAIT whose semaphore a SIGNAL in *another ring of the
    same tenant* will write (a SIGNAL queued now, or one that ran earlier and
    that no WAIT has matched yet), the tenant is ganged: on every engine
    that one of its rings has work on, only its rings are eligible; engines
    it has no work on stay open to everyone (a gang takes from others only
    what its own rings can use). An engine is given back as soon as the
    tenant's rings on it drain (the scheduler polls the completion record
    of each such ring's last descriptor between ticks: host memory, no
    device time). The way back to per-ring:

    * *resolved*: no dependency seen for ``hysteresis`` cycles (so a chain
      of pairs posted one after another does not flap the mask);
    * *timeout*: a WAIT pending longer than ``dep_timeout`` (at most the
      device's ENG.WAIT_TIMEOUT, after which the device completes it with
      WAIT_TIMEOUT) is no longer a reason to gang;
    * *slice used*: a gang held ``max_gang`` cycles while another tenant had
      work on its engines ends, and the tenant may not gang again for as
      long (a tenant cannot keep the engines by writing dependencies).

    Semaphores are matched within one tenant's memory only: a WAIT whose
    address is another tenant's semaphore reads its own guest page (the
    tracker translates it in its own domain), so it never causes a gang.
    Tenants whose claimed engines overlap are ganged one at a time, the
    longest-waiting first. Every switch is logged (:attr:`Scheduler.switches`)
    with the tenant, the rings and the semaphore address.
``qos``
    Best effort by predicted cost. The arbiters run their QoS policy: each
    ring a quantum per slice, :attr:`_Qos.HARDWARE_QUANTA` times its
    tenant's weighted share of its engine's slice (room to spend budget
    carried from earlier slices), against the arbiter's estimate COST_A + COST_B * size, which the
    scheduler fits online from the completion records
    (:class:`~siov.sw.sched.costmodel.CostModel`) and writes. On top of the
    hardware's per-slice budget, the scheduler keeps each tenant's budget
    across slices: every slice adds the tenant's quanta; each descriptor
    handed to an engine is charged its predicted cost, corrected to its
    record's cycles when it completes. At each slice a tenant's rings are
    eligible only if their head descriptors' predicted costs fit its budget
    less a ``margin``: all of them, or the subset that fits, cheapest
    first; and the tenants are admitted most owed first (budget over
    quantum), until their quanta cover half the engines' slice, so that the
    arbiter's round robin among the few admitted gives each its weight's
    share over time (admitting all who have budget would let the round
    robin split each slice equally, and the heaviest tenant's budget would
    grow past its cap). A ring with nothing pending stays eligible, so new work of an
    idle tenant starts at once. A descriptor dearer than a quantum waits until the budget has
    grown to cover it (so it runs every few slices and the small tenant is
    protected); one dearer than ``carry_slices`` slices of its tenant can
    never fit: it is reported (:attr:`Scheduler.never_fits`) and runs when
    the budget is full.

Metrics (:meth:`Scheduler.report`): per tenant the engine cycles of its
completed descriptors (its share against its weight; Jain's index), the
switches, the slices' overruns, the idle engine-cycles the mask cost
(ENG.IDLE_INELIGIBLE, IDLE_WAITING), the cost model's error, and the
scheduler's own MMIO accesses and the device cycles they took, per tick.
Decisions depend on timing: a host program puts them under ``"timing"``.
"""

import collections
import logging
from dataclasses import dataclass

from ...rtl import regmap
from ...rtl.cmd.arbiter import Policy
from ...rtl.cmd.dsa import COMPLETION_BYTES
from ..hv.errors import GuestAddressError
from ..model.dsa import CompletionRecord
from .costmodel import CostModel
from .metrics import Metrics, MmioMeter, percentile
from .opcodes import cmd_info
from .scanner import CommandScanner, Verdict

__all__ = ["Scheduler", "Switch", "POLICIES"]

POLICIES = ("per-ring", "gang", "auto", "qos")
#: Byte offset of the ``cycles`` field in a completion record.
_CYCLES = 20


@dataclass(frozen=True)
class Switch:
    """One scheduling decision worth a log line: at ``cycle``, ``tenant`` went to ``mode``
    (``"gang"`` or ``"per-ring"``) for ``reason``; ``adis`` the rings involved and ``sem`` the
    semaphore's guest address, when a dependency is the reason."""
    cycle: int
    tenant: "str | None"
    mode: str
    reason: str
    adis: tuple = ()
    sem: "int | None" = None

    def as_dict(self):
        """A JSON-able form."""
        return {"cycle": self.cycle, "tenant": self.tenant, "mode": self.mode, "reason": self.reason,
                "adis": list(self.adis), "sem": self.sem}


class _Awaiting:
    """A descriptor handed to an engine, whose completion record is still to be read."""

    def __init__(self, entry, cost, now):
        self.entry, self.cost, self.since = entry, cost, now


class Scheduler:
    """The scheduler of the hypervisor ``hv``'s device.

    Parameters
    ----------
    hv : Hypervisor
        Started. The scheduler reaches the device only through ``hv.pf``.
    policy : str
        One of :data:`POLICIES`.
    tick : int
        Cycles between two scans.
    slice_cycles : int
        The time slice of ``gang`` and ``qos``.
    weights : dict, optional
        Tenant name -> weight (default 1 each).
    hysteresis : int, optional
        ``auto``: cycles without a dependency before a gang ends (default half a slice); a
        gang without one ends at once when another tenant waits to gang on its engines.
    max_gang : int, optional
        ``auto``: longest gang while others wait for its engines (default eight slices).
    dep_timeout : int, optional
        ``auto``: age after which a pending WAIT no longer causes a gang (default the device's
        ENG.WAIT_TIMEOUT).
    margin : float
        ``qos``: fraction of a tenant's quanta kept out of its budget.
    carry_slices : int
        ``qos``: slices of budget a tenant may carry (and so the dearest descriptor that fits).
    stages : int
        ``gang``: balance periods after which carried time is forgotten.
    watch : int
        Cycles between two looks at guest memory between ticks (completion records, and the
        slot at each ring's TAIL); free in device time.
    hint_gap : int
        Least cycles between two scans of one ring that a written slot caused.
    placement : callable, optional
        An engine-placement rule to install in the VDCM (``hv.vdcm.placement``) at start.
    full_every : int
        ``per-ring`` and ``auto``: every this many ticks, a tick reads every ring's TAIL; the
        others read only rings whose slot at TAIL changed (see :meth:`tick`).
    timing : TimingModel, optional
        The scanner's predictor of cycles.
    metrics : Metrics, optional
        Where the counts go (a workload may share it).

    Attributes
    ----------
    scanner : CommandScanner
    cost : CostModel
    metrics : Metrics
    switches : list of Switch
    never_fits : list
        ``qos``: ``(tenant, ADI, predicted cycles)`` of the descriptors that can never fit.
    audit : Counter
        The scanner's verdicts against the completion records: ``"run"`` (predicted to run,
        succeeded), ``"failed"`` (predicted to fail, failed), ``"false rejection"`` (predicted
        to fail, succeeded), ``"missed fault"`` (predicted to run, failed).
    ticks : int
        Scans made.
    meter : MmioMeter
        The scheduler's own MMIO accesses and their device cycles, the scanner's included.
    """

    def __init__(self, hv, policy="auto", tick=8192, slice_cycles=2000, weights=None, hysteresis=None,
                 max_gang=None, dep_timeout=None, margin=0.05, carry_slices=8, stages=10, watch=32,
                 hint_gap=1024, placement=None, timing=None, metrics=None, full_every=4):
        if policy not in POLICIES:
            raise ValueError(f"Unknown scheduling policy {policy!r}; choose one of {', '.join(POLICIES)}")
        if isinstance(full_every, bool) or not isinstance(full_every, int) or full_every < 1:
            raise ValueError(f"full_every is a number of ticks, at least 1, not {full_every!r}")
        for name, v in (("tick", tick), ("slice_cycles", slice_cycles), ("watch", watch), ("hint_gap", hint_gap)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive number of cycles, not {v!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin is a fraction of a tenant's quanta in [0, 1), not {margin!r}")
        if slice_cycles > regmap.ENG_ARB_SLICE_CYCLES_MASK:
            raise ValueError(f"slice_cycles {slice_cycles} does not fit ENG.ARB_SLICE (24 bits)")
        for t, w in (weights or {}).items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w <= 0:
                raise ValueError(f"the weight of {t} must be a positive number, not {w!r}")
        self.hv, self.pf, self.bus = hv, hv.pf, hv.bus
        self.policy_name = policy
        self.tick_cycles, self.slice_cycles, self.watch, self.hint_gap = tick, slice_cycles, watch, hint_gap
        self.weights = dict(weights or {})
        self.hysteresis = slice_cycles // 2 if hysteresis is None else hysteresis
        self.max_gang = 8 * slice_cycles if max_gang is None else max_gang
        self.dep_timeout = dep_timeout
        self.margin, self.carry_slices, self.stages = margin, carry_slices, stages
        self.placement = placement
        self.full_every = full_every
        self.meter = MmioMeter(hv.bus)
        self.scanner = CommandScanner(hv, timing=timing, meter=self.meter)
        self.cost = CostModel()
        self.metrics = metrics or Metrics()
        self.switches = []
        self.never_fits = []
        self.overruns = []
        self.audit = collections.Counter()
        self.ticks = 0
        self.log = logging.getLogger("siov.sched")
        self._policy = {"per-ring": _PerRing, "gang": _Gang, "auto": _Auto, "qos": _Qos}[policy](self)
        self._eligible = None         # the mask last committed (a frozenset of ADIs), None: all
        self._arbiter = None          # the arbiter configuration last written
        self._awaiting = []
        self._topology = None
        self._task = None
        self._stopping = False
        self._wake = None
        self._idle0 = None
        self.started_at = self.stopped_at = None

    # -- running ---------------------------------------------------------------------------

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    async def start(self):
        """Program the arbiter for the policy, open the mask and start the task."""
        if self._task is not None:
            raise RuntimeError("the scheduler is already running")
        if self.placement is not None:
            self.hv.vdcm.placement = self.placement
        self.started_at = self.bus.now()
        if self.dep_timeout is None:
            self.dep_timeout = await self._read(regmap.ENG_WAIT_TIMEOUT)
        self._idle0 = await self._idle_counters()
        await self._set_eligible(None)
        await self._policy.setup()
        self._stopping = False
        self._wake = self.bus.event()
        self._task = self.bus.spawn(self._loop())

    async def stop(self):
        """Stop the task after its current tick, reopen the mask, and take the last records."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._task = None
        await self._collect(force=True)
        await self._set_eligible(None)
        self.stopped_at = self.bus.now()
        self._idle1 = await self._idle_counters()

    async def _loop(self):
        next_tick = self.bus.now()
        while not self._stopping:
            if self.bus.now() >= next_tick:
                await self.tick()
                next_tick = self.bus.now() + self.tick_cycles
            else:                      # a slice ends between ticks: what guest memory shows suffices
                await self._look()
            due = next_tick
            wake = self._policy.wake()
            if wake is not None:
                due = min(due, max(wake, self.bus.now() + 1))
            await self._sleep_until(due)

    async def _look(self):
        """Learn what guest memory shows (no device time), scan the rings it hints at, and apply
        the policy."""
        retired, hinted = await self.scanner.poll(self.hint_gap, want=self._policy.wants_scan)
        new = []
        if hinted:
            new, more = await self.scanner.scan(hinted)
            retired += more
        if new or retired:
            await self._update(new, retired)
        else:
            await self._apply()

    async def _sleep_until(self, due):
        """Sleep until cycle ``due``; meanwhile, every ``watch`` cycles, learn what guest memory
        tells for free (:meth:`CommandScanner.poll`: completion records, and slots the guests
        wrote), scan the rings that were written to, and apply the policy again."""
        while not self._stopping:
            left = due - self.bus.now()
            if left <= 0:
                return
            if not self.watch:
                await self.bus.wait_event(self._wake, left)
                continue
            await self.bus.wait_event(self._wake, min(left, self.watch))
            await self._look()

    # -- one tick ----------------------------------------------------------------------------


    async def tick(self):
        """Scan the rings, account what the engines took and completed, and apply the policy.

        A policy that needs every ring's TAIL each tick (:attr:`_PolicyBase.EVERY_TAIL`: gang and
        qos, which weigh which rings have work) scans them all. per-ring and auto learn what they
        act on from guest memory between ticks (records, and hints of posted WAITs and SIGNALs),
        so their tick reads TAIL only of the rings whose slot at TAIL holds new bytes or that
        were never read, and of every ring at one tick in ``full_every``: a guest that posts the
        very bytes a slot held a lap earlier is scanned then (between ticks its records show
        that its ring has work, :attr:`~siov.sw.sched.scanner.Ring.busy`).
        """
        self.ticks += 1
        if self._policy.EVERY_TAIL or self.ticks % self.full_every == 1 or self.full_every == 1:
            new, retired = await self.scanner.scan()
        else:
            quiet = {a for a, r in self.scanner.rings.items() if r.synced and not r.rewritten}
            new, retired = await self.scanner.scan([a for a in range(self.hv.caps.num_adis) if a not in quiet])
        topology = tuple(sorted((a, r.engine, r.tenant.name) for a, r in self.scanner.rings.items()))
        if topology != self._topology:
            self._topology = topology
            await self._policy.setup()
        await self._update(new, retired)

    async def _update(self, new, retired):
        now = self.bus.now()
        for entry in retired:
            cost = self.predicted(entry)
            self._policy.dispatched(entry, cost)
            if entry.verdict is Verdict.PASID or entry.verdict is Verdict.UNFETCHABLE:
                continue
            self._awaiting.append(_Awaiting(entry, cost, now))
        await self._collect()
        self._policy.scanned(new, retired)
        await self._apply()

    async def _apply(self):
        await self._set_eligible(self._policy.eligible())
        await self._policy.program()

    def predicted(self, entry):
        """Predicted cycles of a scanned descriptor: the online cost model's once it has learned
        the opcode, else the timing model's."""
        if entry.verdict in (Verdict.PASID, Verdict.UNFETCHABLE):
            return 0
        if entry.verdict is Verdict.RUN:
            guess = self.cost.predict(entry.opcode, entry.size, entry.pieces)
            if guess is not None:
                return guess
        return entry.cycles

    async def _collect(self, force=False):
        """Read the completion records of descriptors handed to engines (host memory, no device
        time): each completed one charges its tenant its cycles and teaches the cost model."""
        keep = []
        for a in self._awaiting:
            e = a.entry
            record = None
            if e.record_addr is not None:
                t = self.hv.tenants.get(e.tenant)
                try:
                    raw = await t.memory.read(e.record_addr, COMPLETION_BYTES) if t is not None else None
                except GuestAddressError:
                    raw = None
                if raw is not None and raw[0]:
                    record = CompletionRecord.unpack(raw)
                elif raw is not None and not force and self.bus.now() - a.since < 64 * self.tick_cycles:
                    keep.append(a)
                    continue
            # A record is guest memory: cycles far from the fitted timing model's are not trusted.
            plausible = record is not None and e.cycles / 8 <= record.cycles <= 8 * max(e.cycles, 1)
            cycles = record.cycles if plausible else round(a.cost)
            self.metrics.charge(e.tenant, cycles, at=self.bus.now())
            self._policy.completed(e, a.cost, cycles)
            if record is not None:
                ok = record.status & 0x7F == 1
                self.audit["run" if ok and e.verdict is Verdict.RUN else "failed" if not ok and
                           e.verdict is not Verdict.RUN else "false rejection" if ok else "missed fault"] += 1
                if plausible and ok and e.verdict is Verdict.RUN:
                    self.cost.add(e.opcode, e.size, e.pieces, record.cycles)
        self._awaiting = keep

    # -- registers ---------------------------------------------------------------------------

    async def _read(self, addr):
        return await self.meter("counters", 1, self.bus.read(addr))

    async def _idle_counters(self):
        return {"ineligible": await self._read(regmap.ENG_IDLE_INELIGIBLE),
                "waiting": await self._read(regmap.ENG_IDLE_WAITING)}

    async def _set_eligible(self, adis):
        """Commit the mask ``adis`` (None: every ADI) if it differs from the one in force."""
        want = None if adis is None else frozenset(adis)
        if want == self._eligible:
            return
        self._eligible = want
        every = range(self.hv.caps.num_adis)
        await self.meter("mask", 3, self.pf.set_eligible(every if want is None else sorted(want)))

    async def set_arbiter(self, policy, slice_cycles=0, cost=(0, 0), weights=None, quanta=None):
        """Program the arbiter through ``hv.pf`` (metered as the scheduler's own MMIO), unless it
        holds that configuration already."""
        config = (policy, slice_cycles, tuple(cost), tuple(weights or ()), tuple(quanta or ()))
        if config == self._arbiter:
            return
        self._arbiter = config
        n = len(weights or quanta or [])
        await self.meter("arbiter", 4 + 4 * n, self.pf.set_arbiter(policy, slice_cycles, cost[0], cost[1],
                                                           weights=weights, quanta=quanta))

    def log_switch(self, tenant, mode, reason, adis=(), sem=None):
        """Record and log one switch."""
        s = Switch(self.bus.now(), tenant, mode, reason, tuple(adis), sem)
        self.switches.append(s)
        self.log.info("%s: %s -> %s (%s)%s", s.cycle, tenant, mode, reason,
                      f", rings {list(adis)}, semaphore {sem:#x}" if sem is not None else "")

    # -- what the policies see ---------------------------------------------------------------

    def weight(self, tenant):
        """The weight of tenant ``tenant`` (a name)."""
        return self.weights.get(tenant, 1)

    def rings_of(self):
        """Tenant name -> its scanned rings."""
        out = collections.defaultdict(list)
        for r in self.scanner.rings.values():
            out[r.tenant.name].append(r)
        return dict(out)

    # -- the report --------------------------------------------------------------------------

    def gang_slices(self):
        """The gangs as spans, for a timeline: ``{"tenant", "start", "end", "reason"}`` from each
        switch of a tenant to ``"gang"`` to its next switch (or the scheduler's stop, or now),
        ``reason`` the one that opened it. Tenants' spans may overlap (``auto`` gangs tenants
        whose engines differ at once); one tenant's never do."""
        end = self.stopped_at if self.stopped_at is not None else self.bus.now()
        open_, out = {}, []
        for s in self.switches:
            if s.tenant in open_:
                opened = open_.pop(s.tenant)
                out.append({"tenant": s.tenant, "start": opened.cycle, "end": s.cycle, "reason": opened.reason})
            if s.mode == "gang":
                open_[s.tenant] = s
        out += [{"tenant": t, "start": s.cycle, "end": end, "reason": s.reason} for t, s in open_.items()]
        return sorted(out, key=lambda x: (x["start"], x["tenant"]))

    def mmio_by_purpose(self):
        """The device cycles of the scheduler's own MMIO by purpose: ``"tail"`` and ``"head"``
        (ring pointers), ``"bitmap"`` (mappings), ``"mask"``, ``"arbiter"``, ``"counters"``."""
        return dict(self.meter.by)

    def report(self, window=None):
        """The scheduler's metrics as a JSON-able dict (see the module docstring); shares and
        Jain's index over the completions inside ``window`` (a cycle pair) if given."""
        end = self.stopped_at if self.stopped_at is not None else self.bus.now()
        run = max(end - (self.started_at or 0), 1)
        tenants = sorted(set(self.metrics.engine_cycles) | set(self.metrics.latency))
        weights = {t: self.weight(t) for t in tenants}
        jain, ratio = self.metrics.fairness(weights, window) if tenants else (1.0, {})
        shares = self.metrics.shares(tenants, window)
        idle = {}
        if self._idle0 is not None and getattr(self, "_idle1", None) is not None:
            idle = {k: self._idle1[k] - self._idle0[k] for k in self._idle0}
        reasons = collections.Counter(f"{s.mode}: {s.reason.split(':')[0]}" for s in self.switches)
        return {
            "policy": self.policy_name, "cycles": run, "ticks": self.ticks,
            "tenants": {t: {**self.metrics.tenant(t), "weight": weights[t],
                            "share": round(shares[t], 4),
                            "share/weight": round(ratio.get(t, 0.0), 4)} for t in tenants},
            "jain": round(jain, 4),
            "switches": len(self.switches), "switch_reasons": dict(reasons),
            "idle_ineligible": idle.get("ineligible"), "idle_waiting": idle.get("waiting"),
            "mmio_accesses": self.meter.accesses, "mmio_cycles": self.meter.cycles,
            "mmio_per_tick": round(self.meter.accesses / max(self.ticks, 1), 2),
            "cycles_per_tick": round(self.meter.cycles / max(self.ticks, 1), 2),
            "overhead": round(self.meter.cycles / run, 5),
            "mmio_by": self.mmio_by_purpose(),
            "overrun_p95": percentile(self.overruns, 95), "overrun_max": max(self.overruns, default=None),
            "cost_error_p50": self.cost.error(50), "cost_error_p95": self.cost.error(95),
            "cost_samples": self.cost.samples, "cost_model": self.cost.coefficients(),
            "never_fits": [list(x) for x in self.never_fits],
            "scanned": self.scanner.read, "audit": dict(self.audit),
        }


class _PolicyBase:
    """What every policy does by default: keep the mask open, nothing to program or watch."""

    #: Whether each tick must read every ring's TAIL (the policy weighs which rings have work).
    EVERY_TAIL = False

    def __init__(self, sched):
        self.s = sched

    async def setup(self):
        await self.s.set_arbiter(Policy.RR)

    def dispatched(self, entry, cost):
        pass

    def completed(self, entry, cost, cycles):
        pass

    def scanned(self, new, retired):
        pass

    def eligible(self):
        return None

    async def program(self):
        pass

    def wants_scan(self, ring, peeked):
        """Whether a ring whose slots at TAIL were written since its last scan (``peeked``: the
        descriptors there, as guest memory holds them) is worth a scan before the next tick.
        Between ticks the policy otherwise sees only what the completion records show, and a
        ring's having new work (:attr:`~siov.sw.sched.scanner.Ring.busy`), both free."""
        return False

    def wake(self):
        return None


def _weights_by_adi(s):
    """The arbiter's per-ADI weights from the tenants' (at least 1, at most the field's width)."""
    w = [1] * (max(s.scanner.rings, default=-1) + 1)
    for adi, r in s.scanner.rings.items():
        w[adi] = max(1, min(regmap.ENG_ARB_WEIGHT_WEIGHT_MASK, round(s.weight(r.tenant.name))))
    return w


class _PerRing(_PolicyBase):
    """The mask stays open; weighted round robin when the tenants' weights differ."""

    async def setup(self):
        s = self.s
        weighted = len({s.weight(r.tenant.name) for r in s.scanner.rings.values()}) > 1
        if weighted:
            await s.set_arbiter(Policy.WRR, weights=_weights_by_adi(s))
        else:
            await s.set_arbiter(Policy.RR)


class _Gang(_PolicyBase):
    """GVT-g's weighted time slices: one tenant's rings get every engine per slice."""

    EVERY_TAIL = True


    def __init__(self, sched):
        super().__init__(sched)
        self.current = None
        self.slice_start = 0
        self.left = {}
        self.allocated = {}
        self.order = []              # least recently run first
        self.stage = 0

    async def setup(self):
        await self.s.set_arbiter(Policy.RR)
        for t in self.s.rings_of():
            if t not in self.order:
                self.order.append(t)
                self.left.setdefault(t, 0)

    def completed(self, entry, cost, cycles):
        self.left[entry.tenant] = self.left.get(entry.tenant, 0) - cycles

    def _balance(self):
        """A new balance period: each tenant's weighted share of the engine cycles of one slice
        per tenant; at stage 0 the time left over is forgotten, the debt kept (GVT-g's
        ``gvt_balance_timeslice`` forgets both)."""
        s = self.s
        tenants = list(s.rings_of())
        total = sum(s.weight(t) for t in tenants) or 1
        period = s.slice_cycles * len(tenants) * s.hv.caps.num_engines
        for t in tenants:
            self.allocated[t] = period * s.weight(t) / total
            left = self.left.get(t, 0)
            if self.stage == 0:
                left = min(left, 0)
            self.left[t] = left + self.allocated[t]
        self.stage = (self.stage + 1) % self.s.stages

    def _busy(self):
        return {t for t, rings in self.s.rings_of().items() if any(r.busy for r in rings)}

    def eligible(self):
        s, now = self.s, self.s.bus.now()
        busy = self._busy()
        if self.current is not None:
            used = now - self.slice_start
            if used < s.slice_cycles and self.current in busy:
                return self._mask()
            s.log_switch(self.current, "slice end", "slice used" if used >= s.slice_cycles else "no work left")
            self.current = None
        if not busy:
            return None
        for attempt in range(2):
            pick = next((t for t in self.order if t in busy and self.left.get(t, 0) > 0), None)
            if pick is not None:
                break
            self._balance()
        if pick is None:
            return None
        self.current, self.slice_start = pick, now
        self.order.remove(pick)
        self.order.append(pick)
        s.log_switch(pick, "gang", "time slice", [r.adi for r in s.rings_of()[pick]])
        return self._mask()

    def _mask(self):
        return {r.adi for r in self.s.rings_of().get(self.current, [])}

    def wake(self):
        return self.slice_start + self.s.slice_cycles if self.current is not None else None


@dataclass
class _Dependency:
    """A WAIT in ring ``wait_adi`` on ``addr`` that ring ``signal_adi`` of the same tenant signals."""
    tenant: str
    wait_adi: int
    signal_adi: int
    addr: int
    since: int
    queued: bool


class _Ganged:
    """A tenant in a gang: since when, the last cycle a dependency was seen, what caused it."""

    def __init__(self, now, dep):
        self.since, self.last_seen, self.dep = now, now, dep


class _Auto(_PolicyBase):
    """Per-ring, and a gang for a tenant whose rings depend on each other (see the module docstring)."""

    def __init__(self, sched):
        super().__init__(sched)
        self.ganged = {}                   # tenant -> _Ganged
        self.cooldown = {}                 # tenant -> cycle until which it may not gang
        self.signalled = {}                # (tenant, addr) -> (value, ADI) of a SIGNAL that ran unmatched
        self.waiting_since = {}            # tenant -> cycle its oldest unserved dependency was seen

    async def setup(self):
        await _PerRing.setup(self)

    def wants_scan(self, ring, peeked):
        """A dependency is made of WAITs and SIGNALs: a ring where one was posted is scanned now."""
        return any(cmd_info(d.opcode) is not None and cmd_info(d.opcode).semaphore is not None for d in peeked)

    def scanned(self, new, retired):
        for e in retired:
            if e.sem is None or e.verdict is not Verdict.RUN:
                continue
            key = (e.tenant, e.sem.addr)
            if not e.sem.wait:
                self.signalled[key] = (e.sem.value, e.adi)
            elif key in self.signalled and e.sem.satisfied_by(self.signalled[key][0]):
                del self.signalled[key]

    def dependencies(self):
        """Tenant -> its live :class:`_Dependency` list (WAITs matched by a SIGNAL of another ring)."""
        s, now = self.s, self.s.bus.now()
        out = {}
        for tenant, rings in s.rings_of().items():
            signals = [(r.adi, e) for r in rings for e in r.pending
                       if e.sem is not None and not e.sem.wait and e.verdict is Verdict.RUN]
            deps = []
            for r in rings:
                for e in r.pending:
                    if e.sem is None or not e.sem.wait or e.verdict is not Verdict.RUN:
                        continue
                    if now - e.seen_at > s.dep_timeout:
                        continue
                    match = next((adi for adi, sig in signals if adi != r.adi and sig.sem.addr == e.sem.addr
                                  and e.sem.satisfied_by(sig.sem.value)), None)
                    queued = match is not None
                    if match is None:
                        ran = self.signalled.get((tenant, e.sem.addr))
                        if ran is not None and ran[1] != r.adi and e.sem.satisfied_by(ran[0]):
                            match = ran[1]
                    if match is not None:
                        deps.append(_Dependency(tenant, r.adi, match, e.sem.addr, e.seen_at, queued))
            if deps:
                out[tenant] = deps
        return out

    def _engines(self, tenant):
        """Every engine one of ``tenant``'s rings is bound to."""
        return {r.engine for r in self.s.rings_of().get(tenant, [])}

    def _claims(self, tenant):
        """Engines on which ``tenant``'s rings have work not seen completed (its gang holds those)."""
        return {r.engine for r in self.s.rings_of().get(tenant, []) if r.pending}

    def _decide(self):
        s, now = self.s, self.s.bus.now()
        deps = self.dependencies()
        for tenant in list(self.ganged):
            g = self.ganged[tenant]
            if tenant in deps:
                g.last_seen = now
            others = any(r.pending for t, rings in s.rings_of().items() if t != tenant for r in rings
                         if r.engine in self._claims(tenant))
            reason = None
            if tenant not in s.rings_of():
                reason = "tenant gone"
            elif now - g.last_seen >= s.hysteresis or tenant not in deps and self._wanted(tenant, deps):
                stale = [w for w in self._stale(tenant)]
                reason = "timeout: a WAIT no SIGNAL satisfied in time" if stale else "resolved"
            elif now - g.since >= s.max_gang and others:
                reason = "slice used: others wait for its engines"
                self.cooldown[tenant] = now + s.max_gang
            if reason is not None:
                del self.ganged[tenant]
                s.log_switch(tenant, "per-ring", reason, [g.dep.wait_adi, g.dep.signal_adi], g.dep.addr)
        candidates = sorted((d[0].since, t) for t, d in deps.items()
                            if t not in self.ganged and self.cooldown.get(t, 0) <= now)
        for _, tenant in candidates:
            engines = self._engines(tenant)
            if any(engines & self._engines(t) for t in self.ganged):
                continue                   # tenants that share an engine are ganged one at a time
            dep = deps[tenant][0]
            self.ganged[tenant] = _Ganged(now, dep)
            how = "queued" if dep.queued else "ran earlier, unmatched"
            s.log_switch(tenant, "gang", f"dependency: WAIT in ADI {dep.wait_adi} on a semaphore that a SIGNAL "
                                         f"in ADI {dep.signal_adi} writes ({how})",
                         [dep.wait_adi, dep.signal_adi], dep.addr)

    def _wanted(self, tenant, deps):
        """Whether another tenant with a dependency waits for an engine of ``tenant``'s gang."""
        mine = self._engines(tenant)
        return any(t != tenant and t not in self.ganged and mine & self._engines(t) for t in deps)

    def _stale(self, tenant):
        now = self.s.bus.now()
        return [e for r in self.s.rings_of().get(tenant, []) for e in r.pending
                if e.sem is not None and e.sem.wait and now - e.seen_at > self.s.dep_timeout]

    def eligible(self):
        self._decide()
        return self._mask()

    def _mask(self):
        if not self.ganged:
            return None
        claimed = {}
        for t in self.ganged:
            for e in self._claims(t):
                claimed[e] = t
        if not claimed:
            return None
        return {a for a, r in self.s.scanner.rings.items() if claimed.get(r.engine, r.tenant.name) == r.tenant.name} \
            | {a for a in range(self.s.hv.caps.num_adis) if a not in self.s.scanner.rings}


class _Qos(_PolicyBase):
    """Best effort by predicted cost, with budgets carried across slices (see the module docstring)."""

    EVERY_TAIL = True


    #: The arbiter's quantum of a ring, in multiples of its fair share of a slice: room within a
    #: slice for a tenant that carries budget to spend (the scheduler charges what it spends).
    HARDWARE_QUANTA = 8
    #: Tenants are admitted, most owed first, until their quanta cover this part of the engines' slice.
    ADMIT = 0.5

    def __init__(self, sched):
        super().__init__(sched)
        self.budget = {}               # tenant -> cycles it may still spend (negative: debt)
        self.quanta = {}               # ADI -> cycles per slice
        self.slice_start = None
        self.spent = collections.Counter()
        self.reported = set()
        self.cost_written = None
        self.samples_at_write = 0
        self.mask = None
        self.available = {}

    def _quanta(self):
        """Each ring's quantum: its tenant's weighted share of its engine's slice, split over
        the tenant's rings on that engine."""
        s = self.s
        per_engine = collections.defaultdict(lambda: collections.defaultdict(list))
        for a, r in s.scanner.rings.items():
            per_engine[r.engine][r.tenant.name].append(a)
        quanta = {}
        for e, tenants in per_engine.items():
            total = sum(s.weight(t) for t in tenants)
            for t, adis in tenants.items():
                for a in adis:
                    quanta[a] = max(1, int(s.slice_cycles * s.weight(t) / total / len(adis)))
        return quanta

    def _hardware_cost(self):
        hw = self.s.cost.hardware()
        if hw is None:                 # before any record: the timing model's 4 KiB copy, per byte
            c = self.s.scanner.timing.coefficients["MEMMOVE"]
            hw = (round(c.base + c.per_piece), round((c.per_read_beat + c.per_write_beat) / 8 * 256))
        return hw

    async def setup(self):
        s = self.s
        self.quanta = self._quanta()
        q = [0] * (max(self.quanta, default=-1) + 1)       # ADIs above the last ring keep theirs
        for a, v in self.quanta.items():
            q[a] = min(self.HARDWARE_QUANTA * v, regmap.ENG_ARB_QUANTUM_QUANTUM_MASK)
        self.cost_written = self._hardware_cost()
        await s.set_arbiter(Policy.QOS, s.slice_cycles, self.cost_written, weights=[1] * len(q), quanta=q)

    def wants_scan(self, ring, peeked):
        """A ring whose head the scanner does not know (nothing pending) is scanned, so that its
        head's cost is known at the next slice."""
        return not ring.pending

    def _tenant_quantum(self, tenant):
        return sum(v for a, v in self.quanta.items()
                   if a in self.s.scanner.rings and self.s.scanner.rings[a].tenant.name == tenant)

    def dispatched(self, entry, cost):
        self.budget[entry.tenant] = self.budget.get(entry.tenant, 0) - cost
        self.spent[entry.tenant] += cost

    def completed(self, entry, cost, cycles):
        self.budget[entry.tenant] = self.budget.get(entry.tenant, 0) - (cycles - cost)
        self.spent[entry.tenant] += cycles - cost

    def eligible(self):
        s, now = self.s, self.s.bus.now()
        if self.slice_start is not None and now - self.slice_start < s.slice_cycles:
            return self.mask
        if self.slice_start is not None:
            for t, available in self.available.items():
                s.overruns.append(max(0.0, self.spent[t] - max(available, 0)) / s.slice_cycles)
        self.slice_start = now
        self.spent.clear()
        self.available = {}
        mask = set(a for a in range(s.hv.caps.num_adis) if a not in s.scanner.rings)
        rings_of = s.rings_of()
        for tenant, rings in rings_of.items():
            q = self._tenant_quantum(tenant)
            self.budget[tenant] = min(self.budget.get(tenant, 0) + q, s.carry_slices * q)
            self.available[tenant] = self.budget[tenant]
            mask |= {r.adi for r in rings if not r.busy}         # an idle ring stays open for new work
        # The most owed first (budget over quantum), until their quanta cover the engines' slice.
        order = sorted(rings_of, key=lambda t: (-self.budget[t] / max(self._tenant_quantum(t), 1), t))
        cover, capacity = 0, s.slice_cycles * s.hv.caps.num_engines * self.ADMIT
        for tenant in order:
            rings = [r for r in rings_of[tenant] if r.busy]
            if not rings or cover >= capacity:
                continue
            q = self._tenant_quantum(tenant)
            cap = s.carry_slices * q
            free = self.budget[tenant] - s.margin * q
            heads = sorted((s.predicted(r.pending[0]) if r.pending else 0, r.adi, r.pending[0] if r.pending
                            else None) for r in rings)
            admitted = False
            for cost, adi, head in heads:
                never = cost > cap - s.margin * q
                if never and head is not None and (adi, head.seq) not in self.reported:
                    self.reported.add((adi, head.seq))
                    s.never_fits.append((tenant, adi, round(cost)))
                    s.log.warning("%s: the head of ADI %d (%d cycles) can never fit %s's budget of %d cycles",
                                  now, adi, cost, tenant, cap)
                if cost <= free or never and self.budget[tenant] >= cap:
                    mask.add(adi)
                    free -= max(cost, self.quanta.get(adi, 0))
                    admitted = True
            if admitted:
                cover += q
        self.mask = mask
        return mask

    async def program(self):
        """Write COST_A/COST_B when the cost model, after 64 new samples, differs by more than 10%."""
        s = self.s
        if s.cost.samples - self.samples_at_write < 64:
            return
        self.samples_at_write = s.cost.samples
        hw = self._hardware_cost()
        if any(abs(a - b) > 0.1 * max(b, 1) for a, b in zip(hw, self.cost_written)):
            self.cost_written = hw
            await s.set_arbiter(Policy.QOS, s.slice_cycles, hw)

    def wake(self):
        return None if self.slice_start is None else self.slice_start + self.s.slice_cycles
