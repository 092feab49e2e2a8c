"""The ``model`` backend: the whole Device in Python, running by itself in virtual device time.

:class:`ModelBus` implements :class:`~siov.sw.bus.Bus` over a
:class:`~siov.sw.model.system.DeviceModel` and runs under plain asyncio, on
the virtual clock of :mod:`siov.sw.platform.vtime` (one time unit is one
device cycle). The Device's behaviour is the block models'; this module adds
only what happens by itself and when:

* an MMIO access takes :meth:`TimingModel.mmio_cycles` (per register window)
  cycles and acts at its end; the cycle counter registers read device time;
* each engine (``params.num_engines``) is a task: while an ADI bound to it
  (CMD.ADI_CFG.ENGINE) has a descriptor pending and prefetched, is in the
  eligibility mask (ENG.ELIGIBLE_CUR) and is not held for a WAIT re-check,
  it asks its own arbiter policy model
  (:class:`~siov.sw.model.arbiter.ArbiterPolicyModel`, configured from the
  ENG registers, which all engines share) which ADI goes next, fetches and
  runs the descriptor through the DMA tracker model
  (:meth:`~siov.sw.model.device.EngineModel.dispatch`), and lets the
  calibrated execution time pass (:mod:`siov.sw.platform.timing`). The
  per-ADI prefetch bookkeeping is shared;
* a WAIT is a check (:meth:`~siov.sw.model.device.EngineModel.check_wait`):
  if its condition is false it stays at the head and its ADI is held until
  the next re-check tick (ticks every ENG.WAIT_RECHECK.CYCLES + 1 cycles
  from cycle 0, computed, not counted); a check that finds the condition
  false ENG.WAIT_TIMEOUT or more cycles after the descriptor's first failed
  check completes it with WAIT_TIMEOUT. An engine idle while its ready ADIs
  are all outside the mask, or none dispatchable and some held, counts the
  cycles it sleeps in ENG.IDLE_INELIGIBLE or ENG.IDLE_WAITING;
* the descriptor's memory writes (its data and completion record, whose
  ``cycles`` field carries the predicted time) become visible at its
  completion, when its completion interrupt goes through the interrupt
  remapper model; a delivered interrupt reaches the :meth:`~ModelBus.on_irq`
  callbacks ``irq_latency`` cycles later, as do replays of unmasked pending
  interrupts after the IMS write that unmasks them.

Host memory is sparse (:class:`~siov.sw.model.engine.Memory`): it holds the
pages written, whatever the size of the address space.
"""

import asyncio
from dataclasses import dataclass

from ...rtl import regmap
from ...rtl.cmd.cost import COST_WIDTH
from ...rtl.csr.bus import Resp
from ...rtl.dma.defs import PAGE_SHIFT
from ...rtl.params import DeviceParams
from ..bus import BusError, Interrupt
from ..model.arbiter import ArbiterConfig, ArbiterPolicyModel, Policy
from ..model.engine import estimate_cost, page_spans
from ..model.system import DeviceModel
from .timing import TimingModel
from .vtime import elapse

__all__ = ["ModelBus", "DispatchRecord"]

PAGE = 1 << PAGE_SHIFT


@dataclass(frozen=True)
class DispatchRecord:
    """One descriptor as the model engine ran it: ADI, start and end cycle, opcode, status
    (0 for a WAIT check that was retried) and the engine."""
    adi: int
    start: int
    end: int
    opcode: int
    status: int
    engine: int = 0


class _StagedMemory:
    """Host memory as one executing descriptor sees it: its own writes are held back, in
    copies of the pages they touch, until :meth:`commit`, so that other readers see them
    only at the descriptor's completion. The commit stores the bytes written, not the
    page copies: another engine may have written elsewhere in those pages meanwhile."""

    def __init__(self, memory):
        self.memory = memory
        self.page_size = memory.page_size
        self.pages = {}
        self.writes = []

    def read(self, addr, n):
        if not self.pages:
            return self.memory.read(addr, n)
        out = bytearray()
        for page, off, k in page_spans(addr, n, self.page_size):
            buf = self.pages.get(page)
            out += buf[off:off + k] if buf is not None else self.memory.read(page * self.page_size + off, k)
        return bytes(out)

    def write(self, addr, data):
        data = bytes(data)
        pos = 0
        for page, off, k in page_spans(addr, len(data), self.page_size):
            buf = self.pages.get(page)
            if buf is None:
                buf = self.pages[page] = bytearray(self.memory.read(page * self.page_size, self.page_size))
            buf[off:off + k] = data[pos:pos + k]
            pos += k
        self.writes.append((addr, data))

    def commit(self):
        for addr, data in self.writes:
            self.memory.write(addr, data)
        self.writes.clear()
        self.pages.clear()


class ModelBus:
    """:class:`~siov.sw.bus.Bus` over the Device model, in virtual time.

    Must be used inside a running :class:`~siov.sw.platform.vtime.VirtualTimeLoop`
    (:func:`siov.sw.platform.run` makes one); plain asyncio works too, with
    wall-clock time standing in for cycles.

    Parameters
    ----------
    params : DeviceParams
    timing : TimingModel, optional

    Attributes
    ----------
    device : DeviceModel
        The state of the Device (register fabric, block models, host memory).
    dispatches : list of DispatchRecord
        Every descriptor the engines completed, in order of completion (for timelines).
    retries : list of DispatchRecord
        Every WAIT check that found its condition false and was retried (status 0).
    executed : dict
        Host address of each completion record written -> ``(descriptor,
        outcome, cycles)``, for calibrating the timing model against the RTL.
    """

    def __init__(self, params=DeviceParams(), timing=None):
        self.device = DeviceModel(params)
        self.params = params
        self.timing = TimingModel() if timing is None else timing
        self.dispatches = []
        self.retries = []
        self.executed = {}
        self._callbacks = []
        self._irq_log = []
        self._arbiters = [ArbiterPolicyModel(params.num_adis, cost_width=COST_WIDTH)
                          for _ in range(params.num_engines)]
        self._work = []              # per engine: set when something it may care about changed
        self._engine_tasks = []
        self._ready_at = {}          # ADI -> cycle its head descriptor is prefetched
        self._held = {}              # ADI -> re-check tick that releases it after a WAIT retry
        self._wait_first = {}        # ADI -> (epoch, head, cycle of the first failed check, descriptor)
                                     # of the WAIT at its head
        self._epoch = {}             # ADI -> count of the commands that ended its head WAIT
        self._idle_state = [None] * params.num_engines   # per engine: (since, kind) while it sleeps

    # -- the loop ------------------------------------------------------------------

    def _start(self):
        if not self._engine_tasks:
            loop = asyncio.get_running_loop()
            self._work = [asyncio.Event() for _ in range(self.params.num_engines)]
            self._engine_tasks = [loop.create_task(self._engine(e)) for e in range(self.params.num_engines)]
            return
        for task in self._engine_tasks:
            if task.done() and not task.cancelled():
                # A failure inside the device model must stop the host program, not hang it.
                raise RuntimeError("the device model stopped") from task.exception()

    def _kick(self):
        for ev in self._work:
            ev.set()

    def now(self):
        return int(asyncio.get_running_loop().time())

    async def wait_cycles(self, n):
        self._start()
        await elapse(n)

    def spawn(self, coro):
        self._start()
        return asyncio.get_running_loop().create_task(coro)

    def event(self):
        return asyncio.Event()

    async def wait_event(self, event, timeout_cycles):
        self._start()
        try:
            await asyncio.wait_for(event.wait(), timeout_cycles)
            return True
        except TimeoutError:
            return False

    # -- MMIO ------------------------------------------------------------------------

    async def read(self, addr):
        self._start()
        await elapse(self.timing.mmio_cycles(addr, False))
        now = self.now()
        csr = self.device.csr
        csr.hw["GLOBAL.CYCLE_LO.VALUE"] = now & 0xFFFF_FFFF
        if addr >> 2 == regmap.GLOBAL_CYCLE_LO >> 2:
            csr.hw["GLOBAL.CYCLE_HI.VALUE"] = now >> 32
        for e in range(self.params.num_engines):     # the idle counters count up to now
            self._count_idle(e)
        resp, value = self.device.read(addr)
        if resp != Resp.OKAY:
            raise BusError("read", addr, resp)
        return value

    async def write(self, addr, value, strb=0xF):
        self._start()
        await elapse(self.timing.mmio_cycles(addr, True))
        before = self.device.adi.pending()
        resp = self.device.write(addr, value, strb)
        if addr >> 2 == regmap.CMD_ADI_CMD >> 2:
            # An ADI command that leaves nothing pending (ABORT, RESET_ERROR, a new ENABLE)
            # ends the WAIT its ring's head held, if any.
            adi = self.device.adi._field("CMD.ADI_SEL.INDEX")
            if not self.device.adi.pending() >> adi & 1:
                self._wait_first.pop(adi, None)
                self._held.pop(adi, None)
                self._epoch[adi] = self._epoch.get(adi, 0) + 1     # a check in flight is stale
        self._note_doorbells(before)
        for outcome in self.device.irq.drain_replays():     # unmasked pending interrupts
            self._deliver(outcome)
        self._kick()
        if resp != Resp.OKAY:
            raise BusError("write", addr, resp)

    # -- host memory -----------------------------------------------------------------

    async def mem_read(self, addr, n):
        return self.device.memory.read(addr, n)

    async def mem_write(self, addr, data):
        self.device.memory.write(addr, data)

    # -- interrupts ------------------------------------------------------------------

    def on_irq(self, callback):
        self._callbacks.append(callback)

    def _deliver(self, outcome):
        if outcome is None or outcome.kind != "deliver":
            return
        dest, vector = outcome.dest, outcome.vector
        loop = asyncio.get_running_loop()

        def fire():
            irq = Interrupt(dest, vector, self.now())
            for cb in list(self._callbacks):
                cb(irq)
        loop.call_later(self.timing.irq_latency, fire)

    # -- the engine ------------------------------------------------------------------

    def _arbiter_config(self):
        eng = self.device.engine
        return ArbiterConfig(policy=eng.field("ENG.ARB_CTRL.POLICY"), weight=list(eng.weights),
                             quantum=list(eng.quanta), slice_cycles=eng.field("ENG.ARB_SLICE.CYCLES"))

    def _cost(self, adi):
        """Estimated cost of ADI ``adi``'s head descriptor (read without side effects)."""
        eng = self.device.engine
        raw = eng.peek(adi)
        if raw is None:
            return 0
        return estimate_cost(raw, eng.field("ENG.COST_A.A"), eng.field("ENG.COST_B.B"), width=COST_WIDTH)

    def _note_doorbells(self, before):
        """ADIs that became pending start their prefetch now."""
        now = self.now()
        became = self.device.adi.pending() & ~before
        for i in range(self.params.num_adis):
            if became >> i & 1:
                self._ready_at[i] = max(self._ready_at.get(i, 0), now + self.timing.fetch)

    def _next_tick(self, t):
        """The first WAIT re-check tick after cycle ``t``."""
        period = self.device.engine.wait_recheck
        return (t // period + 1) * period

    async def _idle(self, e, now, wake, kind):
        """Engine ``e`` sleeps until cycle ``wake`` (None: until kicked); the cycles count in
        IDLE_INELIGIBLE or IDLE_WAITING if ``kind`` names one."""
        self._work[e].clear()
        self._idle_state[e] = (now, kind)
        try:
            await self.wait_event(self._work[e], None if wake is None else max(wake - now, 1))
        finally:
            self._count_idle(e)
            self._idle_state[e] = None

    def _count_idle(self, e):
        """Add engine ``e``'s idle cycles so far to its IDLE_* counter (if it is idle)."""
        state = self._idle_state[e]
        if state is None:
            return
        since, kind = state
        now = self.now()
        if kind == "ineligible":
            self.device.engine.add_idle(ineligible=now - since)
        elif kind == "waiting":
            self.device.engine.add_idle(waiting=now - since)
        self._idle_state[e] = (now, kind)

    async def _engine(self, e):
        dev, timing, n = self.device, self.timing, self.params.num_adis
        arbiter = self._arbiters[e]
        while True:
            pending = dev.adi.pending() & dev.adi.bound(e)
            if not pending:
                await self._idle(e, self.now(), None, None)
                continue
            # Only ADIs whose head descriptor has been prefetched compete, if the mask
            # lets them and no WAIT holds them.
            now = self.now()
            ready = held = 0
            wake = None
            for i in range(n):
                if pending >> i & 1:
                    due = self._ready_at.get(i, 0)
                    if due <= now:
                        ready |= 1 << i
                        if self._held.get(i, 0) > now:
                            held |= 1 << i
                    else:
                        wake = due if wake is None else min(wake, due)
            offered = ready & dev.engine.eligible & ~held
            if not offered:
                waiting = ready & dev.engine.eligible     # in the mask, but held
                for i in range(n):
                    if waiting >> i & 1:
                        wake = self._held[i] if wake is None else min(wake, self._held[i])
                kind = "waiting" if waiting else "ineligible" if ready else None
                await self._idle(e, now, wake, kind)
                continue
            cfg = self._arbiter_config()
            costs = ({i: self._cost(i) for i in range(n) if offered >> i & 1}
                     if cfg.policy == Policy.QOS else {})
            adi = arbiter.pick(offered, costs, now, cfg)
            if adi is None:      # QoS: every requester is out of budget until the refill
                await asyncio.sleep(max(1, arbiter.next_refill(cfg) - now))
                continue
            head, epoch = dev.adi.adis[adi].head, self._epoch.get(adi, 0)
            first = self._wait_first.get(adi)
            if first is not None and first[:2] == (epoch, head):
                first, raw = first[2], first[3]     # a retried WAIT stays in its prefetch slot
            else:
                first = None
                raw = dev.engine.fetch(adi)
                if raw is None:      # the ADI went to ERROR
                    continue
            staged = _StagedMemory(dev.memory)
            dev.engine.engine.memory = staged
            try:
                timed_out = first is not None and now >= first + dev.engine.wait_timeout
                res = dev.engine.check_wait(adi, raw, timed_out, 0, finish=False)
            finally:
                dev.engine.engine.memory = dev.memory
            cycles = 1
            if res.outcome is not None:
                cycles = timing.descriptor_cycles(res.descriptor, res.outcome)
                self._stamp_record(res, cycles, staged)
                res.engine_cycles = timing.engine_cycles(res.descriptor, res.outcome, cycles)
            await asyncio.sleep(cycles)
            staged.commit()
            dev.engine.finish(res)
            op = res.descriptor.opcode
            done = self.now()
            if res.retry:
                if epoch == self._epoch.get(adi, 0):
                    if first is None:
                        self._wait_first[adi] = (epoch, head, now, raw)
                    self._held[adi] = self._next_tick(done)
                self.retries.append(DispatchRecord(adi, now, done, getattr(op, "value", op), 0, e))
                await asyncio.sleep(timing.gap)
                continue
            self._wait_first.pop(adi, None)
            self._deliver(res.irq)
            self.dispatches.append(DispatchRecord(adi, now, done, getattr(op, "value", op),
                                                  res.outcome.status.value if res.outcome else 0, e))
            # The ADI's slot is free again: its next descriptor is fetched now. A
            # prefetch of this engine's ADIs that was due during the execution waited
            # for the shared port.
            for i, due in self._ready_at.items():
                if due > now and self.device.adi.adis[i].engine == e:
                    self._ready_at[i] = max(due, done + timing.gap + timing.fetch)
            self._ready_at[adi] = done + timing.gap + timing.fetch
            await asyncio.sleep(timing.gap)

    def _stamp_record(self, res, cycles, staged):
        """Put ``cycles`` into the completion record the descriptor wrote, as the RTL does."""
        out = res.outcome
        out.record.cycles = cycles
        if out.completion is None:
            return
        d = res.descriptor
        dec = self.device.dma.check(d.pasid, d.completion_addr >> PAGE_SHIFT, True)
        data = out.record.pack()         # the record written is the one reported
        host = dec.addr | d.completion_addr % PAGE
        staged.write(host, data)
        out.completion = data
        self.executed[host] = (d, out, cycles)
