"""Reference model of the command engine: one DSA descriptor against memory.

Ref: Linux include/uapi/linux/idxd.h for the descriptor, completion record,
opcodes, status codes and flags (see :mod:`siov.rtl.cmd.dsa`, which also
states the supported subset and the alignment rule).

Transaction level, no timing. The engine sees device addresses; every access
goes through ``translate(pasid, addr, write)``, which returns the host
address of ``addr`` or raises :class:`PageFault`. Translations are page
granular (4 KiB): the engine splits each transfer at the page boundaries of
its source and destination and translates once per piece, so a mapping is
only ever asked for pages the descriptor touches. Memory is then accessed at
host addresses.

Checks, in this order (the first failure is the status; nothing is read or
written for the descriptor's data):

1. ``opcode`` not one of :class:`~siov.rtl.cmd.dsa.Opcode` -> ``BAD_OPCODE``;
2. a flag outside ``SUPPORTED_FLAGS``, or RCR without CRAV ->
   ``INVALID_FLAGS`` (the record's ``invalid_flags`` names the bad bits);
3. RCI with ``int_handle >= num_handles`` -> ``INVALID_INT_HANDLE``;
4. MEMMOVE/MEMFILL/COMPARE with ``xfer_size`` 0 or above ``max_xfer`` ->
   ``XFER_SIZE`` (NOOP and DRAIN ignore the size);
5. CRAV with ``completion_addr`` not 32-byte aligned, MEMFILL with
   ``dst_addr`` not 8-byte aligned, WAIT with ``src_addr`` or SIGNAL with
   ``dst_addr`` not ``SEM_ALIGN`` = 8-byte aligned -> ``ADDR_ALIGN``
   (WAIT and SIGNAL ignore ``xfer_size``, as NOOP does).

Execution:

* NOOP and DRAIN complete at once (the ordering a DRAIN or FENCE implies is
  the front end's job, not the engine's);
* MEMMOVE copies like ``memmove``: if the destination starts inside the
  source (whose end is ``src_addr + xfer_size`` in 64 bits, as the engine
  computes it: :func:`descending`) it copies in descending address order,
  otherwise ascending;
  ``result`` is the direction (0 ascending, 1 descending), so software can
  resume after a fault;
* MEMFILL writes byte ``i`` of the destination with byte ``i % 8`` of the
  little-endian 8-byte pattern;
* COMPARE reads ``src_addr`` and ``dst_addr`` (``src2_addr``); ``result`` is 0
  if equal, else 1 with ``bytes_completed`` = offset of the first difference;
* WAIT (project opcode) reads the 8 bytes at ``src_addr`` (little-endian)
  and succeeds if ``(value & sem_mask) == sem_value``. Otherwise the outcome
  depends on ``wait_timed_out`` (:meth:`Engine.execute`): if it is set the
  status is ``WAIT_TIMEOUT``, else the outcome is a *retry*
  (:attr:`Outcome.retry`, status ``NONE``): no record, no interrupt, and the
  caller leaves the descriptor at its ring's head;
* SIGNAL (project opcode) writes ``sem_value`` as 8 bytes at ``dst_addr``;
* WAIT and SIGNAL complete with ``result`` and ``bytes_completed`` 0; their
  page fault is at the semaphore address (a read fault for WAIT, a write
  fault for SIGNAL), and a bus error is ``HW_ERROR``;
* a page fault stops the operation: status ``PAGE_FAULT``, ``fault_addr`` the
  lowest device address of the faulting piece, ``status_write`` its
  direction, ``bytes_completed`` the bytes done before it (for a descending
  MEMMOVE, counted from the end). On success ``bytes_completed`` is
  ``xfer_size`` (0 for NOOP/DRAIN);
* a bus error (host memory answering a read or write with SLVERR/DECERR,
  see :class:`BusErrors`) is found when the piece has been moved: the piece
  completes as the bus allowed (erroring reads return zeros, erroring writes
  store nothing), then the operation stops with ``HW_ERROR``
  (``DSA_COMP_HW_ERR1``), ``bytes_completed`` the bytes done before the
  failing piece (counted from the end for a descending MEMMOVE), ``result``
  the MEMMOVE direction as for a page fault (0 for COMPARE, whose result is
  not meaningful), ``fault_addr`` and ``status_write`` 0.

Completion record and interrupt:

* with CRAV set, the record is written if RCR is set or the status is not
  SUCCESS (as DSA does for RCR = 0); it is never written when its own
  address is misaligned, or without CRAV;
* writing the record is a DMA write: if its page faults, the outcome becomes
  ``PAGE_FAULT`` at ``completion_addr`` (write) and no record is written;
  if the write gets a bus error, the outcome becomes ``HW_ERROR`` (the record
  reported keeps its other fields) and the record's words in the erroring
  range are not stored;
* with RCI set and a valid handle, the outcome carries an interrupt message
  ``Message(is_irq=True, pasid, handle)`` for the interrupt remapper,
  whatever the status.

``bytes_read``/``bytes_written`` count every byte the engine moved, the
completion record included; ``pages_written`` lists the device pages written
(first-write order, no repeats) for dirty tracking.
"""

import dataclasses
from dataclasses import dataclass, field

from ...rtl.cmd.cost import COST_FRAC_BITS
from ...rtl.cmd.mover import WORD_BYTES
from ...rtl.cmd.dsa import (CR_ALIGN, FILL_ALIGN, MAX_XFER, PATTERN_BYTES, SEM_ALIGN,
                            SIZED_OPCODES, RESERVED_FLAGS, Flag, Opcode, Status)
from ...rtl.dma.defs import PAGE_SHIFT
from .dsa import CompletionRecord, Descriptor
from .irq import Message

__all__ = ["page_spans", "PAGE_SIZE", "MAX_XFER", "BUS_WORD", "SEM_BYTES", "PageFault", "Memory", "PageMap", "BusErrors",
           "Outcome", "Engine", "estimate_cost", "descending"]

PAGE_SIZE = 1 << PAGE_SHIFT
#: Bytes a WAIT reads and a SIGNAL writes: one semaphore.
SEM_BYTES = 8
#: Bytes per beat of the engine's AXI4 master (the mover's word): the unit a bus error applies to.
BUS_WORD = WORD_BYTES

_OPCODES = {op.value: op for op in Opcode}
#: The flags the checks and the record read, as plain ints (a descriptor's ``flags`` is an int;
#: ``int & Flag.X`` would build a Flag member for every test).
_CRAV, _RCR, _RCI = Flag.CRAV.value, Flag.RCR.value, Flag.RCI.value


class PageFault(Exception):
    """Raised by a translate function: device address ``addr`` is not mapped."""

    def __init__(self, addr):
        super().__init__(f"page fault at {addr:#x}")
        self.addr = addr


def page_spans(addr, n, page_size=PAGE_SIZE):
    """``(page, offset, length)`` of ``n`` bytes at ``addr``, cut at every page boundary."""
    while n:
        page, off = divmod(addr, page_size)
        k = min(n, page_size - off)
        yield page, off, k
        addr += k
        n -= k


class Memory:
    """Sparse byte-addressed host memory: 4 KiB pages allocated on first write.

    Unwritten bytes read as zero, and reading allocates nothing.
    """

    def __init__(self, page_size=PAGE_SIZE):
        self.page_size = page_size
        self.pages = {}

    def _split(self, addr, n):
        if addr < 0 or n < 0:
            raise ValueError(f"Bad memory access: address {addr:#x}, length {n}")
        return page_spans(addr, n, self.page_size)

    def read(self, addr, n):
        """``n`` bytes at host address ``addr``."""
        off = addr % self.page_size
        if off + n <= self.page_size and addr >= 0 and n >= 0:      # within one page
            buf = self.pages.get(addr // self.page_size)
            return bytes(n) if buf is None else bytes(buf[off:off + n])
        out = bytearray()
        for page, off, k in self._split(addr, n):
            buf = self.pages.get(page)
            out += buf[off:off + k] if buf is not None else bytes(k)
        return bytes(out)

    def write(self, addr, data):
        """Store ``data`` at host address ``addr``."""
        data = bytes(data)
        off = addr % self.page_size
        if 0 < len(data) <= self.page_size - off and addr >= 0:      # within one page
            page = addr // self.page_size
            buf = self.pages.get(page)
            if buf is None:
                buf = self.pages[page] = bytearray(self.page_size)
            buf[off:off + len(data)] = data
            return
        pos = 0
        for page, off, k in self._split(addr, len(data)):
            buf = self.pages.setdefault(page, bytearray(self.page_size))
            buf[off:off + k] = data[pos:pos + k]
            pos += k


class PageMap:
    """A translate function backed by a dict ``{(pasid, device page): host page}``.

    ``readonly`` holds ``(pasid, device page)`` pairs that fault on writes.
    """

    def __init__(self, pages=None, readonly=()):
        self.pages = dict(pages or {})
        self.readonly = set(readonly)

    def map(self, pasid, page, host_page, writable=True):
        """Map device page ``page`` of ``pasid`` to host page ``host_page`` (read-only unless ``writable``)."""
        self.pages[(pasid, page)] = host_page
        if writable:
            self.readonly.discard((pasid, page))
        else:
            self.readonly.add((pasid, page))

    def __call__(self, pasid, addr, write):
        key = (pasid, addr >> PAGE_SHIFT)
        if key not in self.pages or (write and key in self.readonly):
            raise PageFault(addr)
        return self.pages[key] << PAGE_SHIFT | addr & (PAGE_SIZE - 1)


class BusErrors:
    """Host-address ranges where memory answers the engine's AXI accesses with an error.

    The granularity is the bus beat (:data:`BUS_WORD` bytes at an aligned
    address), as a slave answers RRESP per beat and drops a beat it cannot
    store:

    * a read beat whose word overlaps a read-error range returns zeros and
      an error;
    * a write beat whose written bytes overlap a write-error range stores
      none of them, and its burst's BRESP is an error.

    An empty set (the default) makes every access OKAY.
    """

    def __init__(self):
        self.ranges = []        # (start, end, read, write), end exclusive

    def add(self, start, size, read=True, write=True):
        """Make ``size`` bytes from host address ``start`` answer errors to reads and/or writes."""
        if size <= 0 or start < 0:
            raise ValueError(f"Bad error range: start {start:#x}, size {size}")
        self.ranges.append((start, start + size, read, write))

    def remove(self, start, size, read=True, write=True):
        """Undo :meth:`add` with the same arguments."""
        self.ranges.remove((start, start + size, read, write))

    def clear(self):
        """Make every access OKAY again."""
        self.ranges.clear()

    def _hits(self, lo, hi, write):
        return any(s < hi and lo < e and (w if write else r) for s, e, r, w in self.ranges)

    def read_fails(self, addr, n=BUS_WORD):
        """Whether a read of the beats covering ``[addr, addr + n)`` gets an error."""
        lo = addr - addr % BUS_WORD
        hi = -(-(addr + n) // BUS_WORD) * BUS_WORD
        return self._hits(lo, hi, write=False)

    def write_fails(self, addr, n=BUS_WORD):
        """Whether writing the bytes ``[addr, addr + n)`` gets an error."""
        return self._hits(addr, addr + n, write=True)

    def read(self, memory, addr, n):
        """``(data, error)``: ``n`` bytes read from ``memory`` beat by beat."""
        if not self.ranges:
            return memory.read(addr, n), False
        out = bytearray()
        error = False
        for lo, hi in _beats(addr, n):
            if self.read_fails(lo, hi - lo):
                out += bytes(hi - lo)
                error = True
            else:
                out += memory.read(lo, hi - lo)
        return bytes(out), error

    def write(self, memory, addr, data):
        """Write ``data`` to ``memory`` beat by beat; True if any beat got an error."""
        if not self.ranges:
            memory.write(addr, data)
            return False
        error = False
        for lo, hi in _beats(addr, len(data)):
            if self.write_fails(lo, hi - lo):
                error = True
            else:
                memory.write(lo, data[lo - addr:hi - addr])
        return error


def _beats(addr, n):
    """``(lo, hi)`` host byte ranges of ``[addr, addr + n)`` cut at every bus-word boundary."""
    while n:
        k = min(n, BUS_WORD - addr % BUS_WORD)
        yield addr, addr + k
        addr += k
        n -= k


@dataclass
class Outcome:
    """What executing one descriptor did.

    ``status`` is the :class:`~siov.rtl.cmd.dsa.Status` of the descriptor;
    ``record`` the completion record as reported (also when it is not
    written), ``completion`` the 32 bytes written to ``completion_addr`` or
    None; ``interrupt`` the message for the interrupt remapper or None.
    ``retry``: a WAIT whose condition was false and that has not timed out;
    its status is ``NONE``, nothing was written and nothing is to be
    delivered: the descriptor stays at its ring's head for a re-check.
    ``executed``: the record as the operation left it, before the write of
    the record itself, which can turn the status into ``PAGE_FAULT`` or
    ``HW_ERROR`` (and name the record's address as the fault): what the
    engine did with the descriptor, and so what it spent on it, follows from
    this one (a refused opcode whose record faults moved no data).
    """
    status: Status
    record: CompletionRecord
    completion: "bytes | None" = None
    interrupt: "Message | None" = None
    bytes_read: int = 0
    bytes_written: int = 0
    pages_written: list = field(default_factory=list)
    retry: bool = False
    executed: "CompletionRecord | None" = None

    @property
    def op_status(self):
        """The :class:`Status` of the operation itself (before its record was written)."""
        return Status((self.executed or self.record).status)

    @property
    def fault_addr(self):
        """The record's ``fault_addr``: the device address that faulted (0 if none)."""
        return self.record.fault_addr

    @property
    def bytes_completed(self):
        """The record's ``bytes_completed``."""
        return self.record.bytes_completed

    @property
    def result(self):
        """The record's ``result``: COMPARE's difference, MEMMOVE's direction."""
        return self.record.result


def _opcode(desc):
    """The :class:`Opcode` of ``desc``, or None if the engine does not implement it."""
    op = desc.opcode
    return op if isinstance(op, Opcode) else _OPCODES.get(op)


class _Fault(Exception):
    """A page fault inside an operation, with the progress made before it."""

    def __init__(self, addr, write, done, result=0):
        super().__init__(addr)
        self.addr, self.write, self.done, self.result = addr, write, done, result


class _Unsatisfied(Exception):
    """A WAIT's condition was false."""


class _BusError(Exception):
    """A bus error in a piece of an operation, with the progress made before that piece."""

    def __init__(self, done, result=0):
        super().__init__(done)
        self.done, self.result = done, result


def descending(desc):
    """Whether a MEMMOVE ``desc`` copies from the top down: its destination starts inside its
    source. The source's end is a 64-bit address, as the engine computes it: a source that
    wraps around 2**64 ends low, so no destination starts inside it."""
    end = (desc.src_addr + desc.xfer_size) % (1 << 64)
    return desc.src_addr < desc.dst_addr < end


def estimate_cost(desc, a, b, width=None, frac_bits=COST_FRAC_BITS):
    """The arbiter's QoS cost of ``desc``: ``a + (b * xfer_size) >> frac_bits``.

    ``b`` is in units of 2**-frac_bits per byte (ENG.COST_B). Only MEMMOVE,
    MEMFILL and COMPARE count their size; any other opcode counts as size 0.
    With ``width``, the cost saturates at ``2**width - 1`` (the arbiter's
    ``cost_width``), as the hardware estimator does.
    """
    if isinstance(desc, (bytes, bytearray, memoryview)):
        desc = Descriptor.unpack(desc)
    op = _opcode(desc)
    size = desc.xfer_size if op in SIZED_OPCODES else 0
    cost = a + (b * size >> frac_bits)
    return cost if width is None else min(cost, (1 << width) - 1)


class Engine:
    """Executes descriptors against ``memory`` through ``translate``.

    Parameters
    ----------
    memory : Memory
        Host memory (anything with ``read(addr, n)`` and ``write(addr, data)``).
    translate : callable
        ``translate(pasid, addr, write)`` -> host address, or raise :class:`PageFault`.
    max_xfer : int
        Largest accepted ``xfer_size`` in bytes (default 1 MiB).
    num_handles : int
        Interrupt handles 0..num_handles-1 are valid (default 256, the IMS size).
    bus_errors : BusErrors
        Host ranges that answer errors (default: none).
    """

    def __init__(self, memory, translate, max_xfer=MAX_XFER, num_handles=256, bus_errors=None):
        if not 1 <= max_xfer < 1 << 32:
            raise ValueError(f"max_xfer must be between 1 and 2**32 - 1, not {max_xfer}")
        self.memory = memory
        self.translate = translate
        self.max_xfer = max_xfer
        self.num_handles = num_handles
        self.bus_errors = BusErrors() if bus_errors is None else bus_errors

    # -- checks ------------------------------------------------------------------

    def check(self, desc):
        """``(status, invalid_flags)`` of the checks before execution; SUCCESS if all pass."""
        op = _opcode(desc)
        if op is None:
            return Status.BAD_OPCODE, 0
        bad = desc.flags & RESERVED_FLAGS
        if desc.flags & _RCR and not desc.flags & _CRAV:
            bad |= _RCR
        if bad:
            return Status.INVALID_FLAGS, int(bad)
        if desc.flags & _RCI and desc.int_handle >= self.num_handles:
            return Status.INVALID_INT_HANDLE, 0
        if op in SIZED_OPCODES and not 0 < desc.xfer_size <= self.max_xfer:
            return Status.XFER_SIZE, 0
        if desc.flags & _CRAV and desc.completion_addr % CR_ALIGN:
            return Status.ADDR_ALIGN, 0
        if op is Opcode.MEMFILL and desc.dst_addr % FILL_ALIGN:
            return Status.ADDR_ALIGN, 0
        if op is Opcode.WAIT and desc.src_addr % SEM_ALIGN or op is Opcode.SIGNAL and desc.dst_addr % SEM_ALIGN:
            return Status.ADDR_ALIGN, 0
        return Status.SUCCESS, 0

    # -- execution ---------------------------------------------------------------

    def execute(self, desc, cycles=0, wait_timed_out=True, start_cycle=0, engine=0):
        """Run one descriptor (a :class:`Descriptor` or its 64 bytes); return its :class:`Outcome`.

        ``cycles``, ``start_cycle`` and ``engine`` are copied into the
        record's fields of those names (the RTL stores there its measured
        cycle count, the cycle counter's low word at the hand-over, and the
        index of the engine that ran it). ``wait_timed_out`` decides a
        WAIT whose condition is false: ``WAIT_TIMEOUT`` if set (the default:
        a WAIT the hardware consumed with its condition false has timed
        out), else a retry (:attr:`Outcome.retry`).
        """
        if isinstance(desc, (bytes, bytearray, memoryview)):
            desc = Descriptor.unpack(desc)
        else:
            desc = Descriptor.unpack(desc.pack())     # normalise enums, check widths
        self._read = self._written = 0
        self._pages = {}
        status, invalid = self.check(desc)
        rec = CompletionRecord(cycles=cycles, start_cycle=start_cycle & 0xFFFF_FFFF, engine=engine,
                               invalid_flags=invalid)
        if status is Status.SUCCESS:
            op = _opcode(desc)
            try:
                rec.result, rec.bytes_completed = self._run(op, desc)
            except _Fault as f:
                status = Status.PAGE_FAULT
                rec.bytes_completed, rec.fault_addr, rec.status_write = f.done, f.addr, int(f.write)
                rec.result = f.result
            except _BusError as e:
                status = Status.HW_ERROR
                rec.bytes_completed, rec.result = e.done, e.result
            except _Unsatisfied:
                if not wait_timed_out:
                    rec.status = Status.NONE.value
                    return Outcome(Status.NONE, rec, None, None, self._read, self._written, [], retry=True)
                status = Status.WAIT_TIMEOUT
        rec.status = status.value
        executed = dataclasses.replace(rec)

        flags = desc.flags
        completion = None
        cr_valid = flags & _CRAV and desc.completion_addr % CR_ALIGN == 0
        if cr_valid and (flags & _RCR or status is not Status.SUCCESS):
            data = rec.pack()
            try:
                if self._store(desc.pasid, desc.completion_addr, data):
                    status = Status.HW_ERROR
                    rec.status = status.value
                else:
                    completion = data
            except PageFault:
                status = Status.PAGE_FAULT
                rec.status, rec.status_write, rec.fault_addr = status.value, 1, desc.completion_addr
        interrupt = None
        if flags & _RCI and desc.int_handle < self.num_handles:
            interrupt = Message(True, desc.pasid, desc.int_handle)
        return Outcome(status, rec, completion, interrupt, self._read, self._written,
                       list(self._pages), executed=executed)

    def _store(self, pasid, addr, data):
        """Write ``data`` at device address ``addr`` (one page); True if the bus answered an error."""
        host = self.translate(pasid, addr, True)
        error = self._write(host, data)
        self._pages.setdefault(addr >> PAGE_SHIFT, None)
        return error

    def _read_host(self, host, n):
        """``(data, error)`` of a bus read at host address ``host``."""
        self._read += n
        return self.bus_errors.read(self.memory, host, n)

    def _write(self, host, data):
        """A bus write at host address ``host``; True if it got an error."""
        self._written += len(data)
        return self.bus_errors.write(self.memory, host, data)

    def _translate(self, pasid, addr, write, done):
        try:
            return self.translate(pasid, addr, write)
        except PageFault:
            raise _Fault(addr, write, done) from None

    @staticmethod
    def _pieces(addrs, n, descending=False):
        """Offsets ``(lo, hi)`` splitting ``n`` bytes at every page boundary of each of ``addrs``."""
        cuts = {0, n}
        for a in addrs:
            first = PAGE_SIZE - a % PAGE_SIZE
            cuts.update(range(first, n, PAGE_SIZE))
        cuts = sorted(cuts)
        pieces = list(zip(cuts, cuts[1:]))
        return pieces[::-1] if descending else pieces

    def _run(self, op, d):
        """Execute a checked descriptor; return ``(result, bytes_completed)`` or raise _Fault/_BusError."""
        if op in (Opcode.NOOP, Opcode.DRAIN):
            return 0, 0
        if op is Opcode.WAIT:
            host = self._translate(d.pasid, d.src_addr, False, 0)
            data, error = self._read_host(host, SEM_BYTES)
            if error:
                raise _BusError(0)
            if int.from_bytes(data, "little") & d.sem_mask != d.sem_value:
                raise _Unsatisfied()
            return 0, 0
        if op is Opcode.SIGNAL:
            host = self._translate(d.pasid, d.dst_addr, True, 0)
            error = self._write(host, d.sem_value.to_bytes(SEM_BYTES, "little"))
            self._pages.setdefault(d.dst_addr >> PAGE_SHIFT, None)
            if error:
                raise _BusError(0)
            return 0, 0
        n, pasid = d.xfer_size, d.pasid
        if op is Opcode.MEMMOVE:
            down = descending(d)
            for lo, hi in self._pieces((d.src_addr, d.dst_addr), n, down):
                done = n - hi if down else lo
                try:
                    s = self._translate(pasid, d.src_addr + lo, False, done)
                    t = self._translate(pasid, d.dst_addr + lo, True, done)
                except _Fault as f:
                    f.result = int(down)
                    raise
                data, read_error = self._read_host(s, hi - lo)
                write_error = self._write(t, data)
                self._pages.setdefault((d.dst_addr + lo) >> PAGE_SHIFT, None)
                if read_error or write_error:
                    raise _BusError(done, int(down))
            return int(down), n
        if op is Opcode.MEMFILL:
            pattern = d.src_addr.to_bytes(PATTERN_BYTES, "little")
            for lo, hi in self._pieces((d.dst_addr,), n):
                t = self._translate(pasid, d.dst_addr + lo, True, lo)
                # dst_addr is 8-byte aligned, so byte lanes follow the offset.
                k = lo % PATTERN_BYTES
                data = (pattern * ((hi - lo) // PATTERN_BYTES + 2))[k:k + hi - lo]
                write_error = self._write(t, data)
                self._pages.setdefault((d.dst_addr + lo) >> PAGE_SHIFT, None)
                if write_error:
                    raise _BusError(lo)
            return 0, n
        assert op is Opcode.COMPARE
        for lo, hi in self._pieces((d.src_addr, d.dst_addr), n):
            a = self._translate(pasid, d.src_addr + lo, False, lo)
            b = self._translate(pasid, d.dst_addr + lo, False, lo)
            (x, x_error), (y, y_error) = self._read_host(a, hi - lo), self._read_host(b, hi - lo)
            if x_error or y_error:
                raise _BusError(lo)
            if x != y:
                first = next(i for i in range(hi - lo) if x[i] != y[i])
                return 1, lo + first
        return 0, n
