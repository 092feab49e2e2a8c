"""The ``model`` backend: the whole Device in Python, running by itself in virtual device time.

:class:`ModelBus` implements :class:`~siov.sw.bus.Bus` over a
:class:`~siov.sw.model.system.DeviceModel` and runs under plain asyncio, on
the virtual clock of :mod:`siov.sw.platform.vtime` (one time unit is one
device cycle). The Device's behaviour is the block models'; this module adds
only what happens by itself and when:

* an MMIO access takes :meth:`TimingModel.mmio_cycles` (per register window)
  cycles and acts at its end; the cycle counter registers read device time;
* the descriptor path (the shared prefetch, each engine's arbiter and
  executor, the loader between them) is :class:`~siov.sw.platform.dispatch.Dispatcher`,
  which follows rtl/cmd's structure wherever it decides which ADI runs
  when: the next descriptor of a ring is prefetched while the current one
  runs, an engine decides only once the fetches its ADIs need are done, and
  the arbiters' grant rules and QoS slices are the RTL's
  (:class:`~siov.sw.model.arbiter.ArbiterPolicyModel`). Descriptors run
  through the block models (:meth:`~siov.sw.model.device.EngineModel.check_wait`)
  and take the calibrated time (:mod:`siov.sw.platform.timing`);
* a WAIT whose condition is false stays at its ring's head and holds its
  ADI until the next re-check tick (every ENG.WAIT_RECHECK.CYCLES + 1
  cycles from cycle 0, computed, not counted); a check that finds the
  condition false ENG.WAIT_TIMEOUT or more cycles after the descriptor's
  first failed check completes it with WAIT_TIMEOUT. An engine idle while
  its ready ADIs are all outside the mask, or none dispatchable and some
  held, counts its idle cycles in ENG.IDLE_INELIGIBLE or ENG.IDLE_WAITING;
* the descriptor's memory writes (its data and completion record, whose
  ``cycles`` field carries the predicted time) become visible at its
  finish, when its completion interrupt goes through the interrupt
  remapper model; a delivered interrupt reaches the :meth:`~ModelBus.on_irq`
  callbacks ``irq_latency`` cycles later, as do replays of unmasked pending
  interrupts after the IMS write that unmasks them. IRQ.DRAIN_STATUS.BUSY
  reads 1 until every delivery made before the last DRAIN_CMD.START has
  reached them.

Host memory is sparse (:class:`~siov.sw.model.engine.Memory`): it holds the
pages written, whatever the size of the address space.
"""

import asyncio
from dataclasses import dataclass

from ...rtl import regmap
from ...rtl.csr.bus import Resp
from ...rtl.dma.defs import PAGE_SHIFT
from ...rtl.params import DeviceParams
from ..bus import BusError, Interrupt
from ..model.engine import page_spans
from ..model.system import DeviceModel
from .dispatch import Dispatcher
from .timing import TimingModel
from .vtime import elapse

__all__ = ["ModelBus", "DispatchRecord"]

PAGE = 1 << PAGE_SHIFT


@dataclass(frozen=True)
class DispatchRecord:
    """One descriptor as the model engine ran it: ADI, start (its hand-over to the executor) and
    end (the executor's finish, ENG.LAST_CYCLES later), opcode, status (0 for a WAIT check that
    was retried) and the engine."""
    adi: int
    start: int
    end: int
    opcode: int
    status: int
    engine: int = 0


class _Event(asyncio.Event):
    """An asyncio event that also calls back :meth:`ModelBus.wait_event`'s waiters when set, so
    that a wait with a timeout needs no task of its own (``asyncio.wait_for`` makes one)."""

    def __init__(self):
        super().__init__()
        self._wakers = []

    def set(self):
        super().set()
        wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()


class _StagedMemory:
    """Host memory as one executing descriptor sees it: its own writes are held back, in
    copies of the pages they touch, until :meth:`commit`, so that other readers see them
    only at the descriptor's completion. The commit stores the bytes written, not the
    page copies: another engine may have written elsewhere in those pages meanwhile."""

    def __init__(self, memory, written=None):
        self.memory = memory
        self.written = written
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
            if self.written is not None:
                self.written(addr, len(data))
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
        self._irq_scheduled = self._irq_fired = 0     # deliveries handed to the loop, and made
        self._drain_target = 0                         # ... and those the last drain waits for
        self._watches = {}                              # page -> [(start, end, event)] (:meth:`watch`)
        self._dispatcher = Dispatcher(self, lambda memory: _StagedMemory(memory, self._device_wrote))

    # -- the loop ------------------------------------------------------------------

    def _start(self):
        dispatcher = self._dispatcher
        if dispatcher.loop is None:
            dispatcher.start(asyncio.get_running_loop())
        elif dispatcher.failure is not None:
            # A failure inside the device model must stop the host program, not hang it.
            raise RuntimeError("the device model stopped") from dispatcher.failure

    def now(self):
        return int(asyncio.get_running_loop().time())

    async def wait_cycles(self, n):
        self._start()
        await elapse(n)

    def spawn(self, coro):
        self._start()
        return asyncio.get_running_loop().create_task(coro)

    def event(self):
        return _Event()

    async def wait_event(self, event, timeout_cycles):
        self._start()
        if event.is_set():
            return True
        if not isinstance(event, _Event):
            try:
                await asyncio.wait_for(event.wait(), timeout_cycles)
                return True
            except TimeoutError:
                return False
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake():
            if not woken.done():
                woken.set_result(None)
        event._wakers.append(wake)
        timer = loop.call_later(timeout_cycles, wake) if timeout_cycles is not None else None
        try:
            await woken
        finally:
            if timer is not None:
                timer.cancel()
            if wake in event._wakers:
                event._wakers.remove(wake)
        return event.is_set()

    # -- MMIO ------------------------------------------------------------------------

    async def read(self, addr):
        self._start()
        await elapse(self.timing.mmio_cycles(addr, False))
        now = self.now()
        csr = self.device.csr
        csr.hw["GLOBAL.CYCLE_LO.VALUE"] = now & 0xFFFF_FFFF
        if addr >> 2 == regmap.GLOBAL_CYCLE_LO >> 2:
            csr.hw["GLOBAL.CYCLE_HI.VALUE"] = now >> 32
        self._dispatcher.account(now)         # the idle counters count up to now
        self.device.irq.drain_busy = self._irq_fired < self._drain_target
        resp, value = self.device.read(addr)
        if resp != Resp.OKAY:
            raise BusError("read", addr, resp)
        return value

    async def write(self, addr, value, strb=0xF):
        self._start()
        await elapse(self.timing.mmio_cycles(addr, True))
        dispatcher = self._dispatcher
        dispatcher.account(self.now())        # idle cycles so far count under the old state
        drains = self.device.irq.drains
        resp = self.device.write(addr, value, strb)
        dispatcher.stale = True
        if self.device.irq.drains != drains:      # IRQ.DRAIN_CMD: wait for the deliveries on their way
            self._drain_target = self._irq_scheduled
        # A doorbell reaches the ADI block as the write is made, before its response; an
        # ABORT, a doorbell beyond the ring and the like drop slots.
        doorbell = regmap.ADI_PAGES_BASE <= addr < regmap.ADI_PAGES_BASE + regmap.ADI_PAGES_SIZE
        dispatcher.track_pending(since=self.now() - self.timing.doorbell if doorbell else None)
        if addr >> 2 == regmap.ENG_ARB_SLICE >> 2:
            dispatcher.slice_written(self.device.engine.field("ENG.ARB_SLICE.CYCLES"), self.now())
        for outcome in self.device.irq.drain_replays():     # unmasked pending interrupts
            self._deliver(outcome)
        dispatcher.poke()
        if resp != Resp.OKAY:
            raise BusError("write", addr, resp)

    # -- host memory -----------------------------------------------------------------

    def watch(self, addr, n):
        """An event set when the Device next writes any of the ``n`` bytes at host address
        ``addr`` (a completion record, say), at the write's completion.

        A host task that waits for the Device to write something waits on this event
        (:meth:`wait_event`, with its timeout) instead of reading host memory every few
        cycles: the model wakes it once, when the write lands. The event stays set; the
        watch ends when it fires or with :meth:`unwatch`. Read the memory after taking the
        watch and before waiting: a write that landed earlier sets no event.
        """
        ev = _Event()
        entry = (addr, addr + n, ev)
        for page in range(addr >> PAGE_SHIFT, (addr + max(n, 1) - 1 >> PAGE_SHIFT) + 1):
            self._watches.setdefault(page, []).append(entry)
        return ev

    def unwatch(self, event):
        """End the watch that made ``event`` (a waiter that gave up)."""
        for page in [p for p, entries in self._watches.items() if any(e[2] is event for e in entries)]:
            self._remove_watch(page, event)

    def _remove_watch(self, page, event):
        left = [e for e in self._watches[page] if e[2] is not event]
        if left:
            self._watches[page] = left
        else:
            del self._watches[page]

    def _device_wrote(self, addr, n):
        """The Device's write of ``n`` bytes at ``addr`` landed: fire the watches it touches."""
        if not self._watches:
            return
        end = addr + n
        for page in range(addr >> PAGE_SHIFT, (end - 1 >> PAGE_SHIFT) + 1):
            for start, stop, ev in list(self._watches.get(page, ())):
                if start < end and addr < stop:
                    ev.set()
                    for p in range(start >> PAGE_SHIFT, (max(stop, start + 1) - 1 >> PAGE_SHIFT) + 1):
                        if p in self._watches:
                            self._remove_watch(p, ev)

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
            self._irq_fired += 1
            irq = Interrupt(dest, vector, self.now())
            for cb in list(self._callbacks):
                cb(irq)
        self._irq_scheduled += 1
        loop.call_later(self.timing.irq_latency, fire)

    # -- the engine ------------------------------------------------------------------

    def dispatch_record(self, adi, start, end, opcode, result, engine):
        """The :class:`DispatchRecord` of a descriptor the dispatcher ran."""
        return DispatchRecord(adi, start, end, opcode, result.outcome.status.value if result.outcome else 0, engine)

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
