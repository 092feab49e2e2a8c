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
"""

from dataclasses import dataclass

from ...rtl.cmd.dsa import DESC_BYTES, Status
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


@dataclass
class Dispatch:
    """What one dispatch did: ``refused`` (PASID mismatch) or the engine's ``outcome``,
    and the interrupt remapper's answer to its completion interrupt (or None)."""
    adi: int
    descriptor: Descriptor
    refused: bool = False
    outcome: "Outcome | None" = None
    irq: "object | None" = None


class EngineModel:
    """The Device's engine over the block models.

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
    """

    def __init__(self, memory, adi: AdiModel, dma: DmaModel, irq: IrqModel):
        self.memory, self.adi, self.dma, self.irq = memory, adi, dma, irq
        self.params = adi.params
        self.bus_errors = BusErrors()
        self.engine = Engine(memory, self.translate, num_handles=irq.entries,
                             bus_errors=self.bus_errors)
        self._regs = CsrModel(self.params, window="ENG")
        self.done = self.failed = self.refused = 0
        self.last_cycles = 0
        self.last_status = 0
        self.last_adi = 0
        self.busy = False
        #: The arbiter's per-ADI tables, as ARB_CMD.WRITE sets them.
        self.weights = [ARB_WEIGHT_RESET] * self.params.num_adis
        self.quanta = [0] * self.params.num_adis

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

    def dispatch(self, adi, raw, cycles=0, finish=True):
        """Run ``raw`` (64 bytes fetched earlier) as ADI ``adi``'s dispatched descriptor.

        ``cycles`` is what the hardware measured (it goes into the record).
        With ``finish=False`` the descriptor stays executing (ENG_STATUS.BUSY,
        the ADI busy, no completion interrupt yet) until :meth:`finish`: the
        model backend lets its execution time pass in between.
        """
        desc = Descriptor.unpack(raw)
        a = self.adi.adis[adi]
        self.adi.consume(adi, busy=True)
        self.last_adi = adi
        self.busy = True
        result = Dispatch(adi, desc)
        if desc.pasid != a.pasid:
            result.refused = True
            self.adi.fault(adi, ERR_DESC_PASID)
            self.refused = min(self.refused + 1, COUNTER_MAX)
        else:
            result.outcome = self.engine.execute(desc, cycles)
            self.last_cycles = cycles
        if finish:
            self.finish(result)
        return result

    def finish(self, result):
        """Complete a dispatched descriptor: its interrupt to the remapper, the counters, the ADI."""
        self.busy = False
        out = result.outcome
        if out is not None:
            if out.interrupt is not None:
                result.irq = self.irq.process(out.interrupt)
            self.done = min(self.done + 1, COUNTER_MAX)
            if out.status is not Status.SUCCESS:
                self.failed = min(self.failed + 1, COUNTER_MAX)
            self.last_status = out.status.value
        self.adi.complete(result.adi)
        return result

    # -- registers -----------------------------------------------------------------

    def field(self, path):
        """Stored value of an ENG field, ``"ENG.COST_A.A"``."""
        return self._regs.field(path)

    def _refresh(self):
        self._regs.hw.update({
            "ENG.ENG_STATUS.BUSY": int(self.busy),
            "ENG.ENG_STATUS.ADI": self.last_adi,
            "ENG.ENG_STATUS.LAST_STATUS": self.last_status,
            "ENG.DESC_DONE.COUNT": self.done,
            "ENG.DESC_FAILED.COUNT": self.failed,
            "ENG.DESC_REFUSED.COUNT": self.refused,
            "ENG.LAST_CYCLES.CYCLES": self.last_cycles,
        })

    #: Registers whose value depends on timing: budgets refill every slice, and
    #: the cycles of a descriptor that wrote no record are not known to the model.
    volatile = frozenset({"ENG.ARB_BUDGET", "ENG.LAST_CYCLES"})

    def read(self, addr):
        """``(resp, value)`` of a read at absolute address ``addr`` (engine idle)."""
        self._refresh()
        return self._regs.read(addr)

    def write(self, addr, data, strb=0xF):
        resp = self._regs.write(addr, data, strb)
        reg = self._regs.register_at(addr)
        if reg is not None and reg.path == "ENG.ARB_CMD":
            sel = self.field("ENG.ARB_SEL.INDEX")
            if data & strobe_mask(strb) & regmap.ENG_ARB_CMD_WRITE_MASK and sel < self.params.num_adis:
                self.weights[sel] = self.field("ENG.ARB_WEIGHT.WEIGHT")
                self.quanta[sel] = self.field("ENG.ARB_QUANTUM.QUANTUM")
            self._regs.storage[reg.path] = 0
        return resp

