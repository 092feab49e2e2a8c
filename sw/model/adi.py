"""Reference model of the ADI register block (rtl/cmd/adi.py), transaction level.

Same semantics as the hardware and the ``CMD`` / ``ADI_PAGES`` sections of
``rtl/regs.rdl``, without cycles: a register, command or doorbell access
takes effect at once (:meth:`AdiModel.read` / :meth:`AdiModel.write` at
absolute addresses, so the model mounts in
:class:`~siov.sw.model.csr.CsrModel` as ``windows["CMD"]`` and
``windows["ADI_PAGES"]``), and the fetcher's consume is :meth:`AdiModel.consume`.
A DRAINING ADI whose head reaches its tail goes DISABLED at once (the hardware
takes one more cycle, which no bus access can observe).
"""

from dataclasses import dataclass

from ...rtl import regmap
from ...rtl.regmap import AdiError, AdiState
from ...rtl.csr.bus import Resp
from ...rtl.params import DeviceParams
from .csr import CsrModel, strobe_mask

__all__ = ["AdiModel", "AdiEntry", "DISABLED", "ENABLED", "DRAINING", "ERROR",
           "ERR_TAIL_BEYOND_RING", "ERR_BAD_RING_CONFIG", "ERR_DESC_PASID", "ERR_FETCH_FAULT",
           "page_address", "ring_size_ok"]

# The states and error codes are declared in rtl/regs.rdl (AdiState, AdiError);
# these short names are the ones the tests, the testbenches and sw/ use.
DISABLED, ENABLED, DRAINING, ERROR = AdiState.DISABLED, AdiState.ENABLED, AdiState.DRAINING, AdiState.ERROR
ERR_TAIL_BEYOND_RING = AdiError.TAIL_BEYOND_RING
ERR_BAD_RING_CONFIG = AdiError.BAD_RING_CONFIG
ERR_DESC_PASID = AdiError.DESC_PASID
ERR_FETCH_FAULT = AdiError.FETCH_FAULT
PAGE_SIZE = 0x1000
PAGE_TAIL, PAGE_HEAD, PAGE_STATE = 0x0, 0x4, 0x8
COUNTER_MAX = (1 << 32) - 1


def page_address(adi, offset=PAGE_TAIL):
    """Absolute address of ``offset`` in ADI ``adi``'s doorbell page."""
    return regmap.ADI_PAGES_BASE + adi * PAGE_SIZE + offset


def ring_size_ok(size):
    """Whether ``size`` is a ring size ENABLE accepts: a power of two, 2..4096 (CMD.RING_SIZE)."""
    return 2 <= size <= 4096 and size & (size - 1) == 0


@dataclass
class AdiEntry:
    """One ADI as the hardware holds it. ``base`` is the ring's host byte address."""
    state: int = DISABLED
    error: int = 0
    head: int = 0
    tail: int = 0
    size: int = 0
    base: int = 0
    pasid: int = 0
    domain: int = 0
    engine: int = 0          # the engine the ring is bound to (CMD.ADI_CFG.ENGINE at ENABLE)
    busy: bool = False       # a descriptor of this ADI is in flight in the engine (ADI_STATUS.INFLIGHT)

    @property
    def pending(self):
        """Whether the ADI has a descriptor to fetch: ENABLED or DRAINING with HEAD != TAIL."""
        return self.state in (ENABLED, DRAINING) and self.head != self.tail


class AdiModel:
    """ADI block model.

    Parameters
    ----------
    params : DeviceParams
        ``num_adis`` ADIs.
    """

    def __init__(self, params=DeviceParams()):
        self.params = params
        self.adis = [AdiEntry() for _ in range(params.num_adis)]
        self.dropped = 0
        self._regs = CsrModel(params, window="CMD")

    # -- transactions ---------------------------------------------------------

    def pending(self):
        """Bit mask of ADIs with a descriptor pending."""
        return sum(1 << i for i, a in enumerate(self.adis) if a.pending)

    def bound(self, engine):
        """Bit mask of the ADIs bound to ``engine`` (as their last ENABLE set it)."""
        return sum(1 << i for i, a in enumerate(self.adis) if a.engine == engine)

    def consume(self, adi, busy=False):
        """The fetcher took ADI ``adi``'s head descriptor; ignored unless pending. Returns True if applied.

        ``busy``: the engine goes on executing it; call :meth:`complete` when it is done.
        """
        if not 0 <= adi < len(self.adis) or not self.adis[adi].pending:
            return False
        a = self.adis[adi]
        a.head = (a.head + 1) % a.size
        a.busy = busy
        self._settle(a)
        return True

    def complete(self, adi):
        """The engine finished ADI ``adi``'s descriptor (a DRAINING ADI may now go DISABLED)."""
        a = self.adis[adi]
        a.busy = False
        self._settle(a)

    def fault(self, adi, code):
        """An engine fault: an ENABLED or DRAINING ADI goes ERROR with ``code``."""
        a = self.adis[adi]
        if a.state in (ENABLED, DRAINING):
            a.state, a.error = ERROR, code

    def doorbell(self, adi, tail):
        """A TAIL write of ``tail`` to ADI ``adi``'s page."""
        a = self.adis[adi]
        if a.state != ENABLED:
            self.dropped = min(self.dropped + 1, COUNTER_MAX)
        elif tail < a.size:
            a.tail = tail
        else:
            a.state, a.error = ERROR, ERR_TAIL_BEYOND_RING

    def command(self, adi, *, enable=False, drain=False, abort=False, reset_error=False, load=False,
                base=0, size=0, pasid=0, domain=0, engine=0, head=0, tail=0):
        """ADI_CMD on ADI ``adi``; only the first of reset_error, abort, drain, enable, load acts.

        ENABLE with a bad ring size, ``engine >= params.num_engines`` or a
        staged ``head`` or ``tail`` not below ``size`` puts the ADI into ERROR
        with BAD_RING_CONFIG; a good one starts the ring at ``head`` and
        ``tail`` (CMD.RING_PTRS, zero for a fresh ring). LOAD copies the same
        values into a DISABLED ADI unchecked and leaves it DISABLED (a restore
        of a stopped ring).
        """
        if not 0 <= adi < len(self.adis):
            return
        a = self.adis[adi]
        if reset_error:
            if a.state == ERROR:
                a.state, a.error = DISABLED, 0
        elif abort:
            if a.state in (ENABLED, DRAINING):
                a.head, a.state = a.tail, DISABLED
        elif drain:
            if a.state == ENABLED:
                a.state = DRAINING
                self._settle(a)
        elif enable:
            if a.state == DISABLED:
                if ring_size_ok(size) and engine < self.params.num_engines and head < size and tail < size:
                    a.state = ENABLED
                    self._copy(a, base, size, pasid, domain, engine, head, tail)
                else:
                    a.state, a.error = ERROR, ERR_BAD_RING_CONFIG
        elif load:
            if a.state == DISABLED:
                self._copy(a, base, size, pasid, domain, engine, head, tail)

    @staticmethod
    def _copy(a, base, size, pasid, domain, engine, head, tail):
        """What ENABLE and LOAD copy from the staged registers into ADI entry ``a``."""
        a.size, a.base, a.pasid, a.domain = size, base & ~0x3F & (2**64 - 1), pasid, domain
        a.engine, a.head, a.tail = engine, head, tail

    @staticmethod
    def _settle(a):
        if a.state == DRAINING and a.head == a.tail and not a.busy:
            a.state = DISABLED

    # -- registers ------------------------------------------------------------

    def _field(self, path):
        return self._regs.field(path)

    def _refresh(self):
        sel = self._field("CMD.ADI_SEL.INDEX")
        a = self.adis[sel] if sel < len(self.adis) else AdiEntry()
        self._regs.hw.update({
            "CMD.ADI_STATUS.STATE": a.state,
            "CMD.ADI_STATUS.ERROR_CODE": a.error,
            "CMD.ADI_STATUS.INFLIGHT": int(a.busy),
            "CMD.ADI_PTRS.HEAD": a.head,
            "CMD.ADI_PTRS.TAIL": a.tail,
            "CMD.DROPPED_DOORBELLS.COUNT": self.dropped,
            "CMD.RING_CUR_BASE_LO.ADDR": a.base >> 6 & 0x3FF_FFFF,
            "CMD.RING_CUR_BASE_HI.ADDR": a.base >> 32,
            "CMD.RING_CUR_SIZE.ENTRIES": a.size,
            "CMD.ADI_CUR_CFG.PASID": a.pasid,
            "CMD.ADI_CUR_CFG.DOMAIN": a.domain,
            "CMD.ADI_CUR_CFG.ENGINE": a.engine,
        })

    def _in_pages(self, addr):
        return regmap.ADI_PAGES_BASE <= addr < regmap.ADI_PAGES_BASE + regmap.ADI_PAGES_SIZE

    def read(self, addr):
        """Return ``(resp, value)`` for a read at absolute address ``addr``."""
        if self._in_pages(addr):
            adi, off = divmod((addr - regmap.ADI_PAGES_BASE) & ~3, PAGE_SIZE)
            if adi >= len(self.adis):
                return Resp.DECERR, 0
            a = self.adis[adi]
            value = {PAGE_TAIL: a.tail, PAGE_HEAD: a.head, PAGE_STATE: a.state}.get(off)
            return (Resp.DECERR, 0) if value is None else (Resp.OKAY, value)
        self._refresh()
        return self._regs.read(addr)

    def write(self, addr, data, strb=0xF):
        """Apply a write at absolute address ``addr``; return the response."""
        if self._in_pages(addr):
            adi, off = divmod((addr - regmap.ADI_PAGES_BASE) & ~3, PAGE_SIZE)
            if adi >= len(self.adis) or off not in (PAGE_TAIL, PAGE_HEAD, PAGE_STATE):
                return Resp.DECERR
            if off != PAGE_TAIL:
                return Resp.SLVERR
            if strb & 0xF:
                self.doorbell(adi, data & strobe_mask(strb))
            return Resp.OKAY
        resp = self._regs.write(addr, data, strb)
        reg = self._regs.register_at(addr)
        if resp != Resp.OKAY or reg is None or reg.path != "CMD.ADI_CMD":
            return resp
        pulses = {f.name for f in reg.fields if data & strobe_mask(strb) & f.mask}
        self._regs.storage[reg.path] = 0
        f = self._field
        base = f("CMD.RING_BASE_HI.ADDR") << 32 | f("CMD.RING_BASE_LO.ADDR") << 6
        self.command(f("CMD.ADI_SEL.INDEX"), enable="ENABLE" in pulses, drain="DRAIN" in pulses,
                     abort="ABORT" in pulses, reset_error="RESET_ERROR" in pulses, load="LOAD" in pulses,
                     base=base, size=f("CMD.RING_SIZE.ENTRIES"), pasid=f("CMD.ADI_CFG.PASID"),
                     domain=f("CMD.ADI_CFG.DOMAIN"), engine=f("CMD.ADI_CFG.ENGINE"),
                     head=f("CMD.RING_PTRS.HEAD"), tail=f("CMD.RING_PTRS.TAIL"))
        return resp
