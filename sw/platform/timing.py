"""How many device cycles a descriptor takes on the model backend, calibrated against the RTL.

The RTL engine stores in every completion record the cycles from its grant to
its completion (``ENG.LAST_CYCLES``, record byte 20). The model backend
predicts that figure from what executing the descriptor did
(:class:`~siov.sw.model.engine.Outcome`), with a linear model per opcode:

    cycles = base + per_piece * pieces + per_read_beat * read_beats
             + per_write_beat * write_beats + record * (record written)

``pieces`` are the page-bounded pieces the engine splits a transfer into (one
translation each), and the beats count 8-byte bus words touched. The
coefficients come from a least-squares fit over descriptors run on the RTL
(``bench/bench_host.py`` refits them and reports the error against the
RTL); they are kept here as numbers so that the model backend needs no
simulator.
"""

from dataclasses import dataclass

from ...rtl.cmd.dsa import Opcode, Status
from ...rtl.cmd.mover import WORD_BYTES
from ...rtl.dma.defs import PAGE_SHIFT

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


def features(desc, outcome):
    """``(kind, pieces, read_beats, write_beats, record)`` of one executed descriptor.

    ``kind`` is the opcode's name for a descriptor that ran, or ``"CHECK"``
    for one refused by the checks before execution (no data moved). The
    counts cover what was done: a transfer stopped by a fault counts up to
    the fault.
    """
    status = outcome.status
    record = int(outcome.completion is not None)
    if status in (Status.BAD_OPCODE, Status.INVALID_FLAGS, Status.INVALID_INT_HANDLE,
                  Status.XFER_SIZE, Status.ADDR_ALIGN):
        return "CHECK", 0, 0, 0, record
    op = desc.opcode if isinstance(desc.opcode, Opcode) else Opcode(desc.opcode)
    if op in (Opcode.NOOP, Opcode.DRAIN):
        return op.name, 0, 0, 0, record
    done = outcome.bytes_completed if status is Status.SUCCESS else max(outcome.bytes_completed, 1)
    if op is Opcode.MEMMOVE:
        n = desc.xfer_size if status is Status.SUCCESS else done
        return op.name, _pieces((desc.src_addr, desc.dst_addr), n), _beats(desc.src_addr, n), \
            _beats(desc.dst_addr, n), record
    if op is Opcode.MEMFILL:
        n = desc.xfer_size if status is Status.SUCCESS else done
        return op.name, _pieces((desc.dst_addr,), n), 0, _beats(desc.dst_addr, n), record
    n = desc.xfer_size if status is Status.SUCCESS and outcome.result == 0 else done
    return op.name, _pieces((desc.src_addr, desc.dst_addr), n), \
        _beats(desc.src_addr, n) + _beats(desc.dst_addr, n), 0, record


#: Fitted on the RTL Device (bench/bench_host.py, seed 1..4 of the
#: calibration program); see docs/PERFORMANCE.md for the error.
CALIBRATED = {
    "CHECK": Coefficients(base=12.0, record=10.0),
    "NOOP": Coefficients(base=12.0, record=10.0),
    "DRAIN": Coefficients(base=12.0, record=10.0),
    "MEMMOVE": Coefficients(base=30.0, per_piece=12.0, per_read_beat=0.5, per_write_beat=0.6, record=10.0),
    "MEMFILL": Coefficients(base=20.0, per_piece=10.0, per_write_beat=1.0, record=10.0),
    "COMPARE": Coefficients(base=30.0, per_piece=14.0, per_read_beat=1.0, record=10.0),
}


class TimingModel:
    """Device-time constants of the model backend.

    Parameters
    ----------
    coefficients : dict
        Per kind (see :func:`features`), the :class:`Coefficients`.
    mmio_read, mmio_write : int
        Cycles an MMIO read or write takes, from the master's request to its response.
    fetch : int
        Cycles from a doorbell to the dispatch of the descriptor it posts,
        when the engine is idle (prefetch through the tracker, cost, grant).
    gap : int
        Cycles between the completion of one descriptor and the dispatch of
        the next one that is already prefetched.
    irq_latency : int
        Cycles from completion to the interrupt on ``irq_out``.
    """

    def __init__(self, coefficients=None, mmio_read=10, mmio_write=10, fetch=30, gap=4,
                 irq_latency=4):
        self.coefficients = dict(CALIBRATED if coefficients is None else coefficients)
        self.mmio_read, self.mmio_write = mmio_read, mmio_write
        self.fetch, self.gap, self.irq_latency = fetch, gap, irq_latency

    def descriptor_cycles(self, desc, outcome):
        """Predicted grant-to-completion cycles of ``desc``, given what executing it did."""
        kind, pieces, rb, wb, record = features(desc, outcome)
        c = self.coefficients[kind]
        return max(1, round(c.base + c.per_piece * pieces + c.per_read_beat * rb
                            + c.per_write_beat * wb + c.record * record))
