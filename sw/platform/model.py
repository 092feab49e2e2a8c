"""The ``model`` backend: the whole Device in Python, running by itself in virtual device time.

:class:`ModelBus` implements :class:`~siov.sw.bus.Bus` over a
:class:`~siov.sw.model.system.DeviceModel` and runs under plain asyncio, on
the virtual clock of :mod:`siov.sw.platform.vtime` (one time unit is one
device cycle). The Device's behaviour is the block models'; this module adds
only what happens by itself and when:

* an MMIO access takes :meth:`TimingModel.mmio_cycles` (per register window)
  cycles and acts at its end; the cycle counter registers read device time;
* the engine is a task: while an ADI has a descriptor pending, it asks the
  arbiter policy in force (:class:`~siov.sw.model.arbiter.ArbiterPolicyModel`,
  configured from the ENG registers) which ADI goes next, fetches and runs
  the descriptor through the DMA tracker model
  (:meth:`~siov.sw.model.device.EngineModel.dispatch`), and lets the
  calibrated execution time pass (:mod:`siov.sw.platform.timing`);
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
    """One descriptor as the model engine ran it: ADI, start and end cycle, opcode and status."""
    adi: int
    start: int
    end: int
    opcode: int
    status: int


class _StagedMemory:
    """Host memory as one executing descriptor sees it: its own writes are held back, in
    copies of the pages they touch, until :meth:`commit`, so that other readers see them
    only at the descriptor's completion."""

    def __init__(self, memory):
        self.memory = memory
        self.page_size = memory.page_size
        self.pages = {}

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

    def commit(self):
        for page, buf in self.pages.items():
            self.memory.write(page * self.page_size, buf)
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
        Every descriptor the engine ran, in order (for timelines).
    executed : dict
        Host address of each completion record written -> ``(descriptor,
        outcome, cycles)``, for calibrating the timing model against the RTL.
    """

    def __init__(self, params=DeviceParams(), timing=None):
        self.device = DeviceModel(params)
        self.params = params
        self.timing = TimingModel() if timing is None else timing
        self.dispatches = []
        self.executed = {}
        self._callbacks = []
        self._irq_log = []
        self._arbiter = ArbiterPolicyModel(params.num_adis, cost_width=COST_WIDTH)
        self._work = None
        self._engine_task = None
        self._ready_at = {}          # ADI -> cycle its head descriptor is prefetched

    # -- the loop ------------------------------------------------------------------

    def _start(self):
        if self._engine_task is None:
            self._work = asyncio.Event()
            self._engine_task = asyncio.get_running_loop().create_task(self._engine())
        elif self._engine_task.done() and not self._engine_task.cancelled():
            # A failure inside the device model must stop the host program, not hang it.
            raise RuntimeError("the device model stopped") from self._engine_task.exception()

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
        resp, value = self.device.read(addr)
        if resp != Resp.OKAY:
            raise BusError("read", addr, resp)
        return value

    async def write(self, addr, value, strb=0xF):
        self._start()
        await elapse(self.timing.mmio_cycles(addr, True))
        before = self.device.adi.pending()
        resp = self.device.write(addr, value, strb)
        self._note_doorbells(before)
        for outcome in self.device.irq.drain_replays():     # unmasked pending interrupts
            self._deliver(outcome)
        self._work.set()
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

    async def _engine(self):
        dev, timing = self.device, self.timing
        while True:
            pending = dev.adi.pending()
            if not pending:
                self._work.clear()
                await self._work.wait()
                continue
            # Only ADIs whose head descriptor has been prefetched compete.
            now = self.now()
            ready = sum(1 << i for i in range(self.params.num_adis)
                        if pending >> i & 1 and self._ready_at.get(i, 0) <= now)
            if not ready:
                self._work.clear()
                wake = min(self._ready_at.get(i, 0) for i in range(self.params.num_adis) if pending >> i & 1)
                await self.wait_event(self._work, wake - now)
                continue
            cfg = self._arbiter_config()
            costs = ({i: self._cost(i) for i in range(self.params.num_adis) if ready >> i & 1}
                     if cfg.policy == Policy.QOS else {})
            adi = self._arbiter.pick(ready, costs, now, cfg)
            if adi is None:      # QoS: every requester is out of budget until the refill
                await asyncio.sleep(max(1, self._arbiter.next_refill(cfg) - now))
                continue
            raw = dev.engine.fetch(adi)
            if raw is None:      # the ADI went to ERROR
                continue
            staged = _StagedMemory(dev.memory)
            dev.engine.engine.memory = staged
            try:
                res = dev.engine.dispatch(adi, raw, 0, finish=False)
            finally:
                dev.engine.engine.memory = dev.memory
            cycles = 1
            if res.outcome is not None:
                cycles = timing.descriptor_cycles(res.descriptor, res.outcome)
                self._stamp_record(res, cycles, staged)
                dev.engine.last_cycles = cycles
            await asyncio.sleep(cycles)
            staged.commit()
            dev.engine.finish(res)
            self._deliver(res.irq)
            op = res.descriptor.opcode
            self.dispatches.append(DispatchRecord(adi, now, self.now(), getattr(op, "value", op),
                                                  res.outcome.status.value if res.outcome else 0))
            # The ADI's slot is free again: its next descriptor is fetched now. A
            # prefetch that was due during the execution waited for the shared port.
            done = self.now()
            for i, due in self._ready_at.items():
                if due > now:
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
