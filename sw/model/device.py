"""Reference model of the engine inside the Device, and of its ``ENG`` register window.

Transaction level: :meth:`EngineModel.dispatch` runs the descriptor an ADI
would dispatch next, as the hardware does (rtl/cmd/engine.py), on top of the
block models the Device is made of:

* the ring read and every data and record access go through
  :class:`~siov.sw.model.dma.DmaModel` (``translate``), so the dirty log,
  the fault queue and the counters follow;
* execution is :class:`~siov.sw.model.engine.Engine`;
* a descriptor whose PASID differs from the ADI's is refused (ADI ERROR code
  3, nothing executed); a ring read the tracker blocks, or that host memory
  answers with a bus error (:attr:`EngineModel.bus_errors`), puts the ADI
  into ERROR code 4 (:meth:`EngineModel.fetch`);
* the completion interrupt goes to :class:`~siov.sw.model.irq.IrqModel`.

The hardware prefetches each ADI's head descriptor before arbitration; the
model reads it at dispatch. The two agree as long as software does not
rewrite a posted descriptor, which the DSA programming model forbids too.
Which ADI runs next is the arbiter's choice (:mod:`siov.sw.model.arbiter`
models it cycle by cycle); a scoreboard replays the order the hardware took.

Several engines (``params.num_engines``): each ADI is bound to one
(CMD.ADI_CFG.ENGINE, copied at ENABLE), and each engine runs one descriptor
at a time. The model keeps one busy bit per engine (ENG_STATUS.ENGINES_BUSY),
the eligibility mask (ELIGIBLE_LO/HI staged, ELIGIBLE_CMD.COMMIT copies them
into the current mask, :attr:`EngineModel.eligible`) and the WAIT counters;
which eligible ADI runs when is the arbiters' choice, and the model backend
(:mod:`siov.sw.platform.model`) makes it.

Semaphore descriptors. A SIGNAL is a descriptor like any other. A WAIT is
consumed (HEAD advances) only when its check decides it:

* :meth:`EngineModel.dispatch` runs a descriptor the hardware consumed, so a
  WAIT there is decided: SUCCESS if its condition holds on model memory,
  else WAIT_TIMEOUT (a consumed WAIT whose condition is false has timed
  out); this is what a scoreboard replaying the hardware's consumes calls;
* :meth:`EngineModel.check_wait` is one check of the WAIT at an ADI's head,
  as an engine makes it: with the condition false and ``timed_out`` unset
  the result is a retry (:attr:`Dispatch.retry`): nothing consumed, no
  record, no interrupt, not counted in DESC_DONE/DESC_FAILED, but counted in
  WAIT_RETRIES and, at :meth:`EngineModel.finish`, its cycles in
  WAIT_CYCLES.
"""

from dataclasses import dataclass

from ...rtl.cmd.dsa import DESC_BYTES, Opcode, Status
from ...rtl.dma.defs import PAGE_SHIFT, TRANSLATABLE_BITS
from .adi import ERR_DESC_PASID, ERR_FETCH_FAULT, AdiModel
from ...rtl import regmap
from .csr import CsrModel, strobe_mask
from .dma import DmaModel
from .dsa import Descriptor
from .engine import BusErrors, Engine, Outcome, PageFault
from .irq import IrqModel

__all__ = ["EngineModel", "Dispatch"]
COUNTER_MAX = (1 << 32) - 1
ARB_WEIGHT_RESET = regmap.REGISTERS["ENG.ARB_WEIGHT"].field("WEIGHT").reset
ELIGIBLE_RESET = regmap.REGISTERS["ENG.ELIGIBLE_LO"].field("MASK").reset


@dataclass
class Dispatch:
    """What one dispatch did: ``refused`` (PASID mismatch) or the engine's ``outcome``,
    and the interrupt remapper's answer to its completion interrupt (or None).

    ``engine`` is the engine that ran it (the ADI's); ``retry`` marks a WAIT
    check that found its condition false and left the descriptor at the
    ring's head (its ``outcome`` has status NONE and ``retry`` set).
    ``engine_cycles`` is what ENG.LAST_CYCLES shows for it, when the caller
    times it (the model backend: the record's cycles, its write and the
    finish; see :meth:`~siov.sw.platform.timing.TimingModel.engine_cycles`);
    None shows the record's cycles.
    """
    adi: int
    descriptor: Descriptor
    refused: bool = False
    outcome: "Outcome | None" = None
    irq: "object | None" = None
    engine: int = 0
    retry: bool = False
    engine_cycles: "int | None" = None


def _mask64(lo, hi):
    return (hi & COUNTER_MAX) << 32 | lo & COUNTER_MAX


class EngineModel:
    """The Device's engines over the block models.

    Parameters
    ----------
    memory : Memory
        Host memory (``read(addr, n)``, ``write(addr, data)``).
    adi : AdiModel
    dma : DmaModel
    irq : IrqModel

    Attributes
    ----------
    bus_errors : BusErrors
        Host ranges where memory answers the engine's reads or writes with an
        error (the testbench's memory consults the same object).
    eligible : int
        The eligibility mask in force (bit i: ADI i may be dispatched).
    busy_engines : int
        Bit e: engine e is executing a descriptor.
    """

    def __init__(self, memory, adi: AdiModel, dma: DmaModel, irq: IrqModel):
        self.memory, self.adi, self.dma, self.irq = memory, adi, dma, irq
        self.params = adi.params
        self.num_engines = self.params.num_engines
        self.bus_errors = BusErrors()
        self.engine = Engine(memory, self.translate, num_handles=irq.entries,
                             bus_errors=self.bus_errors)
        self._regs = CsrModel(self.params, window="ENG")
        self.done = self.failed = self.refused = 0
        self.last_cycles = 0
        self.last_status = 0
        self.last_adi = 0
        self.busy_engines = 0
        #: The arbiter's per-ADI tables, as ARB_CMD.WRITE sets them.
        self.weights = [ARB_WEIGHT_RESET] * self.params.num_adis
        self.quanta = [0] * self.params.num_adis
        self.eligible = _mask64(ELIGIBLE_RESET, ELIGIBLE_RESET)
        self.wait_retries = self.wait_cycles = 0
        self.idle_ineligible = self.idle_waiting = 0

    @property
    def busy(self):
        """Some engine is executing a descriptor (ENG_STATUS.BUSY)."""
        return bool(self.busy_engines)

    def engine_of(self, adi):
        """The engine ADI ``adi`` is bound to."""
        return self.adi.adis[adi].engine

    @property
    def wait_recheck(self):
        """Cycles between two WAIT re-check ticks (WAIT_RECHECK.CYCLES + 1)."""
        return self.field("ENG.WAIT_RECHECK.CYCLES") + 1

    @property
    def wait_timeout(self):
        """WAIT_TIMEOUT.CYCLES: a check this long after the first failed one times out."""
        return self.field("ENG.WAIT_TIMEOUT.CYCLES")

    # -- DMA through the tracker -------------------------------------------------

    def translate(self, pasid, addr, write):
        """Host address of device address ``addr`` for ``pasid``, through the DMA tracker model.

        An address at or above 2**TRANSLATABLE_BITS faults without a tracker request.
        """
        if addr >> TRANSLATABLE_BITS:
            raise PageFault(addr)
        d = self.dma.request(pasid, addr >> PAGE_SHIFT, write)
        if not d.allowed:
            raise PageFault(addr)
        return d.addr | addr & ((1 << PAGE_SHIFT) - 1)

    def _head(self, adi):
        """``(PASID, device address)`` of ADI ``adi``'s head descriptor."""
        a = self.adi.adis[adi]
        return a.pasid, a.base + a.head * DESC_BYTES

    def peek(self, adi):
        """ADI ``adi``'s head descriptor as memory holds it now, or None if the tracker would
        block its read; no counter, fault or dirty bit changes (for the arbiter's cost)."""
        pasid, addr = self._head(adi)
        d = self.dma.check(pasid, addr >> PAGE_SHIFT, False)
        if not d.allowed or addr >> TRANSLATABLE_BITS:
            return None
        return self.memory.read(d.addr | addr & ((1 << PAGE_SHIFT) - 1), DESC_BYTES)

    def fetch(self, adi):
        """Read ADI ``adi``'s head descriptor through the tracker; None (and ADI ERROR 4) if
        the tracker blocks the read or memory answers it with an error."""
        pasid, addr = self._head(adi)
        try:
            host = self.translate(pasid, addr, False)
        except PageFault:
            host = None
        if host is not None:
            raw, error = self.bus_errors.read(self.memory, host, DESC_BYTES)
            if not error:
                return raw
        self.adi.fault(adi, ERR_FETCH_FAULT)
        self.refused = min(self.refused + 1, COUNTER_MAX)
        return None

    # -- dispatch ------------------------------------------------------------------

    def dispatch(self, adi, raw, cycles=0, finish=True, start_cycle=0):
        """Run ``raw`` (64 bytes fetched earlier) as ADI ``adi``'s dispatched descriptor.

        The descriptor is consumed (the ADI's HEAD advances). ``cycles`` is
        what the hardware measured and ``start_cycle`` the cycle counter at
        its hand-over (both go into the record, with the ADI's engine). A WAIT is
        decided: SUCCESS if its condition holds on model memory, else
        WAIT_TIMEOUT (the hardware consumes a WAIT whose condition is false
        only when it has timed out). With ``finish=False`` the descriptor
        stays executing (ENG_STATUS.BUSY, the ADI busy, no completion
        interrupt yet) until :meth:`finish`: the model backend lets its
        execution time pass in between.
        """
        return self._run(adi, raw, cycles, finish, timed_out=True, start_cycle=start_cycle)

    def check_wait(self, adi, raw, timed_out, cycles=0, finish=True, start_cycle=0):
        """One check of ADI ``adi``'s head descriptor ``raw``, a WAIT, by its engine.

        If the condition holds, or the check fails otherwise (PASID refusal,
        a check error, a page fault, a bus error), the WAIT is decided and
        consumed as by :meth:`dispatch`. If the condition is false: with
        ``timed_out`` it completes with WAIT_TIMEOUT (consumed), else the
        result is a retry (:attr:`Dispatch.retry`): HEAD stays, no record,
        no interrupt, no DESC_DONE; :meth:`finish` counts it in WAIT_RETRIES
        and adds its cycles (the record's ``cycles``, ``cycles`` here or as
        stamped later) to WAIT_CYCLES. Any other opcode is dispatched.
        """
        return self._run(adi, raw, cycles, finish, timed_out=timed_out, start_cycle=start_cycle)

    def replay_retry(self, adi, raw, cycles=0):
        """A WAIT check of ADI ``adi``'s head descriptor ``raw`` that the hardware retried, replayed
        for its side effects: the semaphore read's tracker request (DMA counters) and WAIT_RETRIES,
        WAIT_CYCLES (+``cycles``). Memory is not consulted (a scoreboard replaying consumes lags
        the hardware's memory) and nothing is consumed."""
        desc = Descriptor.unpack(raw)
        self.translate(desc.pasid, desc.src_addr, False)
        self.last_adi = adi
        self.wait_retries = min(self.wait_retries + 1, COUNTER_MAX)
        self.wait_cycles = min(self.wait_cycles + cycles, COUNTER_MAX)

    def _run(self, adi, raw, cycles, finish, timed_out, start_cycle=0):
        desc = Descriptor.unpack(raw)
        a = self.adi.adis[adi]
        result = Dispatch(adi, desc, engine=a.engine)
        self.last_adi = adi
        self.busy_engines |= 1 << a.engine
        if desc.pasid != a.pasid:
            self.adi.consume(adi, busy=True)
            result.refused = True
            self.adi.fault(adi, ERR_DESC_PASID)
            self.refused = min(self.refused + 1, COUNTER_MAX)
        else:
            is_wait = desc.opcode == Opcode.WAIT.value
            out = self.engine.execute(desc, cycles, wait_timed_out=timed_out or not is_wait,
                                      start_cycle=start_cycle, engine=a.engine)
            result.outcome = out
            if out.retry:
                result.retry = True
                a.busy = True
            else:
                self.adi.consume(adi, busy=True)
        if finish:
            self.finish(result)
        return result

    def finish(self, result):
        """Complete a dispatched descriptor: its interrupt to the remapper, the counters, the ADI.

        A retried WAIT check counts in WAIT_RETRIES and WAIT_CYCLES only.
        """
        self.busy_engines &= ~(1 << result.engine)
        out = result.outcome
        if result.retry:
            self.wait_retries = min(self.wait_retries + 1, COUNTER_MAX)
            self.wait_cycles = min(self.wait_cycles + out.record.cycles, COUNTER_MAX)
        elif out is not None:
            if out.interrupt is not None:
                result.irq = self.irq.process(out.interrupt)
            self.done = min(self.done + 1, COUNTER_MAX)
            if out.status is not Status.SUCCESS:
                self.failed = min(self.failed + 1, COUNTER_MAX)
            self.last_status = out.status.value
            self.last_cycles = out.record.cycles if result.engine_cycles is None else result.engine_cycles
        self.adi.complete(result.adi)
        return result

    def add_idle(self, ineligible=0, waiting=0):
        """Add engine-idle cycles to IDLE_INELIGIBLE and IDLE_WAITING (saturating)."""
        self.idle_ineligible = min(self.idle_ineligible + ineligible, COUNTER_MAX)
        self.idle_waiting = min(self.idle_waiting + waiting, COUNTER_MAX)

    # -- registers -----------------------------------------------------------------

    def field(self, path):
        """Stored value of an ENG field, ``"ENG.COST_A.A"``."""
        return self._regs.field(path)

    def _refresh(self):
        sel = self.field("ENG.ARB_SEL.INDEX")
        self._regs.hw.update({
            "ENG.ENG_STATUS.BUSY": int(self.busy),
            "ENG.ENG_STATUS.ENGINES_BUSY": self.busy_engines,
            "ENG.ENG_STATUS.ADI": self.last_adi,
            "ENG.ENG_STATUS.LAST_STATUS": self.last_status,
            "ENG.DESC_DONE.COUNT": self.done,
            "ENG.DESC_FAILED.COUNT": self.failed,
            "ENG.DESC_REFUSED.COUNT": self.refused,
            "ENG.LAST_CYCLES.CYCLES": self.last_cycles,
            "ENG.ELIGIBLE_CUR_LO.MASK": self.eligible & COUNTER_MAX,
            "ENG.ELIGIBLE_CUR_HI.MASK": self.eligible >> 32,
            "ENG.WAIT_RETRIES.COUNT": self.wait_retries,
            "ENG.WAIT_CYCLES.CYCLES": self.wait_cycles,
            "ENG.IDLE_INELIGIBLE.CYCLES": self.idle_ineligible,
            "ENG.IDLE_WAITING.CYCLES": self.idle_waiting,
            "ENG.ARB_CUR.WEIGHT": self.weights[sel] if sel < self.params.num_adis else 0,
            "ENG.ARB_CUR.QUANTUM": self.quanta[sel] if sel < self.params.num_adis else 0,
        })

    #: Registers whose value depends on timing: budgets refill every slice, the
    #: cycles of a descriptor that wrote no record are not known to the model,
    #: and how often a WAIT is re-checked, and how long engines sit idle, depend
    #: on when its SIGNAL lands.
    volatile = frozenset({"ENG.ARB_BUDGET", "ENG.LAST_CYCLES", "ENG.WAIT_RETRIES", "ENG.WAIT_CYCLES",
                          "ENG.IDLE_INELIGIBLE", "ENG.IDLE_WAITING"})

    def read(self, addr):
        """``(resp, value)`` of a read at absolute address ``addr``."""
        self._refresh()
        return self._regs.read(addr)

    def write(self, addr, data, strb=0xF):
        resp = self._regs.write(addr, data, strb)
        reg = self._regs.register_at(addr)
        pulse = data & strobe_mask(strb)
        if reg is not None and reg.path == "ENG.ARB_CMD":
            sel = self.field("ENG.ARB_SEL.INDEX")
            if pulse & regmap.ENG_ARB_CMD_WRITE_MASK and sel < self.params.num_adis:
                self.weights[sel] = self.field("ENG.ARB_WEIGHT.WEIGHT")
                self.quanta[sel] = self.field("ENG.ARB_QUANTUM.QUANTUM")
            self._regs.storage[reg.path] = 0
        elif reg is not None and reg.path == "ENG.ELIGIBLE_CMD":
            if pulse & regmap.ENG_ELIGIBLE_CMD_COMMIT_MASK:
                self.eligible = _mask64(self.field("ENG.ELIGIBLE_LO.MASK"), self.field("ENG.ELIGIBLE_HI.MASK"))
            self._regs.storage[reg.path] = 0
        return resp
