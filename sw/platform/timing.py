"""How many device cycles a descriptor takes on the model backend, calibrated against the RTL.

The RTL engine stores in every completion record the cycles from the
hand-over of the descriptor to its executor to the composing of the record
(record byte 20). The model backend predicts that figure from what
executing the descriptor did
(:class:`~siov.sw.model.engine.Outcome`), with a linear model per opcode:

    cycles = base + per_piece * pieces + per_read_beat * read_beats
             + per_write_beat * write_beats + record * (record written)

``pieces`` are the page-bounded pieces the engine splits a transfer into (one
translation each), and the beats count 8-byte bus words touched. The
coefficients come from a least-squares fit over descriptors run on the RTL
(``bench/bench_host.py`` refits them and reports the error against the
RTL); they are kept here as numbers so that the model backend needs no
simulator.

ENG.LAST_CYCLES counts on to the end of the executor's work: the record's
write and two cycles more (``rtl/regs.rdl``; :meth:`TimingModel.engine_cycles`).
"""

from dataclasses import dataclass

from ...rtl import regmap
from ...rtl.cmd.dsa import CR_ALIGN, SEMAPHORE_OPCODES, Flag, Opcode, Status
from ...rtl.cmd.mover import WORD_BYTES
from ...rtl.dma.defs import PAGE_SHIFT, TRANSLATABLE_BITS
from ..model.engine import descending

__all__ = ["TimingModel", "Coefficients", "features"]

PAGE = 1 << PAGE_SHIFT


@dataclass(frozen=True)
class Coefficients:
    base: float
    per_piece: float = 0.0
    per_read_beat: float = 0.0
    per_write_beat: float = 0.0
    record: float = 0.0


def _beats(addr, n):
    """8-byte bus words that ``n`` bytes at ``addr`` touch."""
    if n <= 0:
        return 0
    return (addr + n - 1) // WORD_BYTES - addr // WORD_BYTES + 1


def _pieces(addrs, n):
    cuts = {0, n}
    for a in addrs:
        cuts.update(range(PAGE - a % PAGE, n, PAGE))
    return len(cuts) - 1


#: Statuses of the checks before execution: the engine moved no data.
_CHECKS = frozenset({Status.BAD_OPCODE, Status.INVALID_FLAGS, Status.INVALID_INT_HANDLE, Status.XFER_SIZE,
                     Status.ADDR_ALIGN})
_OPCODES = {op.value: op for op in Opcode}
_STATUSES = {st.value: st for st in Status}
_CRAV, _RCR = Flag.CRAV.value, Flag.RCR.value


def _status(value):
    """``Status(value)`` by a table (the enum's own call is slow, and this runs per descriptor)."""
    st = _STATUSES.get(value)
    return Status(value) if st is None else st


def _cuts(addrs, n):
    """Offsets in ``[0, n]`` where a transfer of ``n`` bytes from each of ``addrs`` is cut into pieces."""
    return sorted({0, n} | {c for a in addrs for c in range(PAGE - a % PAGE, n, PAGE)})


def _span(op, desc, executed):
    """``(lo, hi)``: the byte offsets of the transfer the engine moved for ``desc``.

    All of it, except where it stopped: COMPARE at the end of the piece
    holding the first difference, and a bus error (HW_ERROR) at the end of
    the piece that got it (the movers finish a piece whatever its
    responses), counted from the top for a descending MEMMOVE."""
    n = desc.xfer_size
    stopped = _status(executed.status) is Status.HW_ERROR or op is Opcode.COMPARE and executed.result
    if not stopped:
        return 0, n
    addrs = (desc.dst_addr,) if op is Opcode.MEMFILL else (desc.src_addr, desc.dst_addr)
    cuts = _cuts(addrs, n)
    done = executed.bytes_completed
    if op is Opcode.MEMMOVE and executed.result:            # descending: from the top
        return max([c for c in cuts if c < n - done], default=0), n
    return 0, next((c for c in cuts if c > done), n)


def features(desc, outcome):
    """``(kind, pieces, read_beats, write_beats, record)`` of one executed descriptor.

    ``kind`` is the opcode's name for a descriptor that ran, ``"CHECK"``
    for one refused by the checks before execution (no data moved), and
    ``"<OPCODE>_FAULT_READ"`` / ``"<OPCODE>_FAULT_WRITE"`` for a transfer
    stopped by a page fault, whose counts cover what was done before it.
    WAIT and SIGNAL are ``"WAIT"`` and ``"SIGNAL"`` (one page-bounded piece,
    one 8-byte beat read or written; a WAIT check that is retried, or that
    times out, costs what a satisfied one does), and ``"WAIT_FAULT_READ"`` /
    ``"SIGNAL_FAULT_WRITE"`` when the semaphore's page faults.

    The kind follows from what the operation did (:attr:`Outcome.executed`),
    not from the status its record write may have turned it into: a
    descriptor refused by its checks costs a check whether or not its record
    then faults, as in the RTL, where the checks decide before any transfer.
    No descriptor value makes this raise or count more than the engine moved.
    """
    executed = outcome.executed or outcome.record
    status = _status(executed.status)
    record = int(outcome.completion is not None)
    op = desc.opcode if isinstance(desc.opcode, Opcode) else _OPCODES.get(desc.opcode)
    if op is None or status in _CHECKS:
        return "CHECK", 0, 0, 0, record
    if op in (Opcode.NOOP, Opcode.DRAIN):
        return op.name, 0, 0, 0, record
    if op in SEMAPHORE_OPCODES:
        if status is Status.PAGE_FAULT:
            return op.name + ("_FAULT_WRITE" if op is Opcode.SIGNAL else "_FAULT_READ"), 0, 0, 0, record
        reads = int(op is Opcode.WAIT)
        return op.name, 1, reads, 1 - reads, record
    if status is Status.PAGE_FAULT:
        # Stopped at a translation: what was done before it costs what the operation
        # does; the fault's own cost depends on which of the piece's translations
        # faulted: the source's is asked first, then the destination's (or COMPARE's
        # second source's).
        n = executed.bytes_completed
        lo = desc.xfer_size - n if op is Opcode.MEMMOVE and executed.result else 0     # descending: the top
        src, dst = desc.src_addr + lo, desc.dst_addr + lo
        if op is Opcode.MEMFILL:
            return "MEMFILL_FAULT_WRITE", _pieces((dst,), n), 0, _beats(dst, n), record
        if op is Opcode.MEMMOVE:
            kind = "MEMMOVE_FAULT_" + ("WRITE" if executed.status_write else "READ")
            return kind, _pieces((src, dst), n), _beats(src, n), _beats(dst, n), record
        second = executed.fault_addr != desc.src_addr + n
        return "COMPARE_FAULT_" + ("SRC2" if second else "READ"), _pieces((src, dst), n), \
            _beats(src, n) + _beats(dst, n), 0, record
    lo, hi = _span(op, desc, executed)
    n, src, dst = hi - lo, desc.src_addr + lo, desc.dst_addr + lo
    if op is Opcode.MEMMOVE:
        # A destination inside the source is copied from the top down, through the
        # store-forward path: its own kind, about twice the cycles per beat.
        down = descending(desc)
        return op.name + ("_DOWN" if down else ""), _pieces((src, dst), n), _beats(src, n), _beats(dst, n), record
    if op is Opcode.MEMFILL:
        return op.name, _pieces((dst,), n), 0, _beats(dst, n), record
    return op.name, _pieces((src, dst), n), _beats(src, n) + _beats(dst, n), 0, record


#: Fitted on the RTL Device by ``bench/bench_host.py --fit`` (seeds 1-4 of
#: the 4-tenant program on the 2-engine Device; every sample wrote its record,
#: so the record's cost is in ``base``). An executor counts from the hand-over
#: of its descriptor, after the dispatcher has read the slot (10 cycles that
#: the single engine of old counted from its grant). The semaphore kinds are
#: the RTL's cycles measured on the cross-ring program
#: (``siov.sw.programs.cross_ring``): every WAIT and SIGNAL there takes the
#: same time. The page-fault kinds are the RTL's cycles on the
#: ``hostile_descriptors`` program (faults at the first piece and after one,
#: on each side, ``tests/test_hostile_descriptors.py``): what was done before
#: the fault costs what the operation does (its coefficients), and the fault
#: 19 cycles when the piece's first translation faults, 31 when its second
#: does (the first, 12 cycles, went through); an address the tracker cannot
#: translate faults without the round trip (:attr:`TimingModel.xlate`).
_MOVE = dict(per_piece=45.62, per_read_beat=0.246, per_write_beat=0.756)
_FILL = dict(per_piece=25.0, per_write_beat=1.0)
_COMPARE = dict(per_piece=50.444, per_read_beat=0.999)
CALIBRATED = {
    "CHECK": Coefficients(base=2.0),
    "NOOP": Coefficients(base=2.0),
    "DRAIN": Coefficients(base=2.0),
    "MEMMOVE": Coefficients(base=2.845, **_MOVE),
    "MEMFILL": Coefficients(base=3.0, **_FILL),
    "COMPARE": Coefficients(base=1.466, **_COMPARE),
    "MEMMOVE_DOWN": Coefficients(base=4.514, per_piece=45.764, per_read_beat=0.324, per_write_beat=1.682),
    "MEMMOVE_FAULT_READ": Coefficients(base=19.0, **_MOVE),
    "MEMMOVE_FAULT_WRITE": Coefficients(base=31.0, **_MOVE),
    "MEMFILL_FAULT_WRITE": Coefficients(base=19.0, **_FILL),
    "COMPARE_FAULT_READ": Coefficients(base=19.0, **_COMPARE),
    "COMPARE_FAULT_SRC2": Coefficients(base=31.0, **_COMPARE),
    "WAIT": Coefficients(base=28.0),
    "SIGNAL": Coefficients(base=23.0),
    "WAIT_FAULT_READ": Coefficients(base=15.0),
    "SIGNAL_FAULT_WRITE": Coefficients(base=15.0),
}


#: MMIO latencies that differ from the register bank's 7 cycles, measured on the
#: RTL by ``siov.sw.programs.probe:probe_windows``: (base, size, read, write);
#: the first window containing an address applies.
WINDOW_LATENCY = (
    (regmap.IRQ_IMS_BASE, regmap.IRQ_IMS_SIZE, 12, 12),
    (regmap.DMA_GUEST_BASE, regmap.DMA_GUEST_SIZE, 11, 14),
    (regmap.DMA_HARVEST_BASE, regmap.DMA_HARVEST_SIZE, 20, 20),
    (regmap.DMA_BASE, regmap.DMA_SIZE, 11, 11),
)


class TimingModel:
    """Device-time constants of the model backend.

    Parameters
    ----------
    coefficients : dict
        Per kind (see :func:`features`), the :class:`Coefficients`.
    mmio_read, mmio_write : int
        Cycles an MMIO read or write takes, from the master's request to its response.
    doorbell : int
        Cycles before a doorbell write's response at which the ADI it rings is
        pending: the write takes effect as it is made (7 on the RTL: a NOOP's
        interrupt comes 56 cycles after its doorbell's response, 80 with a
        record, and ``tests/test_host_runtime.py`` holds the model to it).
    prefetch : int
        Cycles the shared prefetch spends on one head descriptor, from
        taking up an ADI that needs one to its slot being filled (tracker
        check, AXI read, cost estimate); one fetch at a time.
    take : int
        Cycles from an engine's decision to the loader taking its grant (the
        arbiter's two registered stages).
    load : int
        Cycles from the take to the executor's start: the slot is read into
        the hand-over register; the loader serves one engine at a time.
    refuse : int
        Cycles an executor spends on a descriptor it refuses (a foreign PASID).
    contend : float
        How descriptors on different engines slow each other on the shared
        AXI4 port (:mod:`siov.sw.platform.dispatch`): one moving ``r`` and
        ``w`` read and write beats per cycle alone, beside others moving
        ``R`` and ``W``, goes at ``1 / (1 + contend * (r * R + w * W))`` of
        its pace. Fitted on the RTL at 2 engines (``siov.sw.programs.arbitration``):
        256-byte copies beside each other take 12% longer, 64-128-byte ones
        3%, 4-8 KiB ones 68%.
    irq_latency : int
        Cycles from the model making a descriptor's completion visible (its
        record committed) to the interrupt reaching the host: 10. On the RTL,
        ``siov.sw.programs.probe:irq_latency`` measures 9 from the record being
        visible, since the interrupt remapper decides a message a cycle before
        its effects (4 cycles from acceptance to ``irq_out``); the model commits a
        record one cycle before the RTL's last beat lands, so it counts one more,
        and a doorbell's interrupt comes at the same cycle on both backends
        (``siov.sw.programs.doorbell_irq``, ``tests/test_host_runtime.py``).
    record_write, record_fault, finish : int
        What ENG.LAST_CYCLES adds to the record's cycles (:meth:`engine_cycles`):
        the record's write (its page's translation and the AXI write to its
        response), the translation alone when the record's page faults, and
        the executor's last two states. ``siov.sw.programs.cycles`` measures
        24, 13 and 2 on the RTL with nothing contending (``tests/test_cycles.py``).
    xlate : int
        Cycles of a translation's round trip through the DMA tracker, which
        an address at or above 2**44 skips: the engine faults it at once
        (11 on the RTL: ``hostile_descriptors``, ``tests/test_hostile_descriptors.py``).
    """

    def __init__(self, coefficients=None, mmio_read=7, mmio_write=7, doorbell=7, prefetch=36, take=2, load=12, refuse=4, contend=0.55,
                 irq_latency=10, windows=None, record_write=24, record_fault=13, finish=2, xlate=11):
        self.coefficients = dict(CALIBRATED if coefficients is None else coefficients)
        self.mmio_read, self.mmio_write = mmio_read, mmio_write
        self.doorbell, self.prefetch, self.take, self.load, self.refuse = doorbell, prefetch, take, load, refuse
        self.contend = contend
        self.irq_latency = irq_latency
        self.windows = list(WINDOW_LATENCY if windows is None else windows)
        self.record_write, self.record_fault, self.finish = record_write, record_fault, finish
        self.xlate = xlate

    def engine_cycles(self, desc, outcome, cycles):
        """ENG.LAST_CYCLES of ``desc``, whose completion record says ``cycles``.

        The record is composed before it is written, so its count stops
        there; the engine's goes on through the record's write, when the
        descriptor asks for one (CRAV, an aligned address, and RCR or a
        status other than success; a record page that faults costs its
        translation only), and two cycles more (``rtl/regs.rdl`` ENG.LAST_CYCLES).
        """
        status = outcome.status
        record = bool(desc.flags & _CRAV) and desc.completion_addr % CR_ALIGN == 0 \
            and bool(desc.flags & _RCR or status is not Status.SUCCESS)
        if not record:
            return cycles + self.finish
        faulted = outcome.completion is None and status is Status.PAGE_FAULT \
            and outcome.fault_addr == desc.completion_addr
        if not faulted:
            return cycles + self.record_write + self.finish
        untranslatable = desc.completion_addr >> TRANSLATABLE_BITS
        return cycles + self.record_fault - (self.xlate if untranslatable else 0) + self.finish

    def mmio_cycles(self, addr, write):
        """Cycles of one MMIO access at ``addr``: the window's figure, else the register bank's."""
        for base, size, read_cycles, write_cycles in self.windows:
            if base <= addr < base + size:
                return write_cycles if write else read_cycles
        return self.mmio_write if write else self.mmio_read

    def descriptor_cycles(self, desc, outcome):
        """Predicted grant-to-completion cycles of ``desc``, given what executing it did."""
        kind, pieces, rb, wb, record = features(desc, outcome)
        c = self.coefficients[kind]
        base = c.base
        if "_FAULT" in kind and (outcome.executed or outcome.record).fault_addr >> TRANSLATABLE_BITS:
            base -= self.xlate
        return max(1, round(base + c.per_piece * pieces + c.per_read_beat * rb
                            + c.per_write_beat * wb + c.record * record))
