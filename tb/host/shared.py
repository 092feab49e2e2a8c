"""The host side of a Device simulation that runs in C++: host memory, pauses, error ranges, taps.

The simulator's main (``tb/host/sim_main.cpp``, layout in
``tb/host/shared_host.h``) serves the Device's AXI4 ``mem`` port from a
sparse file that this module maps too, so Python reads and writes host
memory in place (no copy, no simulator time) and no Python runs per beat
or per cycle. Through the same file's control block Python sets, at any
time:

* a pause pattern per channel (:meth:`SharedHost.set_pauses`, the patterns
  of :data:`siov.tb.axi.PATTERNS`): back-pressure on AW, W and AR, latency
  on R and B;
* host address ranges that answer SLVERR (:func:`share_bus_errors`: the
  model's :class:`~siov.sw.model.engine.BusErrors`, every change written
  through);
* a random ``irq_out.ready`` and a log of the Device's taps and interrupts
  (:meth:`SharedHost.log_taps`, :class:`TapLog`), for tb/system;
* MMIO (:class:`SharedMmio`): the AXI4-Lite master on ``csr`` runs in C++ too,
  and Python posts an access and sleeps until its response.

The slave answers cycle for cycle as cocotbext-axi's AxiRam, and the master
as its AxiLiteMaster (without pauses), which stay available
(``SIOV_RTL_MEMORY=axiram``) for a test that needs their Python hooks.
"""

import collections
import ctypes
import mmap
import os
import random

from ...sw.model.engine import BusErrors
from ..axi import PAUSE_SPECS

__all__ = ["SharedHost", "SharedMmio", "share_bus_errors", "TapLog", "available", "MAX_ERRORS"]

MAGIC = 0x54534f48564f4953
VERSION = 1
MAX_ERRORS = 64
CONTROL_BYTES = 4096
CHANNELS = ("aw", "w", "b", "ar", "r")
FLAG_MEMORY, FLAG_TAPS, FLAG_IRQ_READY, FLAG_MMIO = 1, 2, 4, 8
MMIO_SLOTS = 32
LOG_DISPATCH, LOG_HANDOVER, LOG_SLICE_END, LOG_IRQ = range(4)
NLOG = 4


class _Pause(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_uint32), ("threshold", ctypes.c_uint32), ("pattern", ctypes.c_uint64),
                ("length", ctypes.c_uint32), ("generation", ctypes.c_uint32), ("seed", ctypes.c_uint64)]


class _ErrorRange(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("read", ctypes.c_uint32),
                ("write", ctypes.c_uint32)]


class _MmioSlot(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint64), ("data", ctypes.c_uint32), ("strb", ctypes.c_uint32),
                ("resp", ctypes.c_uint32), ("rdata", ctypes.c_uint32)]


class _MmioRing(ctypes.Structure):
    _fields_ = [("posted", ctypes.c_uint64), ("done", ctypes.c_uint64), ("slot", _MmioSlot * MMIO_SLOTS)]


class _Control(ctypes.Structure):
    """``siov_host::Control`` of shared_host.h, field for field."""
    _fields_ = [("magic", ctypes.c_uint64), ("version", ctypes.c_uint32), ("header_size", ctypes.c_uint32),
                ("ram_size", ctypes.c_uint64), ("log_cap", ctypes.c_uint64), ("cycle", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("irq_ready_threshold", ctypes.c_uint32),
                ("irq_seed", ctypes.c_uint64), ("irq_generation", ctypes.c_uint32), ("n_errors", ctypes.c_uint32),
                ("pause", _Pause * len(CHANNELS)), ("errors", _ErrorRange * MAX_ERRORS),
                ("log_count", ctypes.c_uint64 * NLOG), ("protocol_errors", ctypes.c_uint64),
                ("beats", ctypes.c_uint64 * 2), ("clock_half", ctypes.c_uint64), ("clock_next", ctypes.c_uint64),
                ("mmio_read", _MmioRing), ("mmio_write", _MmioRing)]


def _steps(ns):
    """``ns`` nanoseconds in simulator steps."""
    from cocotb.utils import get_sim_steps
    return int(get_sim_steps(ns, "ns"))


def _path():
    folder = os.environ.get("SIOV_HOST_MEM")
    return None if not folder else os.path.join(folder, f"siov-host-{os.getpid()}")


def available():
    """Whether this simulator process serves host memory in C++ (its shared file exists, or
    is mapped already)."""
    path = _path()
    return SharedHost._instance is not None or (path is not None and os.path.exists(path))


class SharedHost:
    """The simulator's shared file, mapped: host memory and the control block.

    Made once per simulator process (:meth:`get`); the file is unlinked as
    soon as it is mapped, so nothing is left behind.

    Raises
    ------
    RuntimeError
        If the simulator does not serve host memory (it was not started with
        ``SIOV_HOST_MEM``, or its top has no ``mem`` port).
    """

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        path = _path()
        if path is None or not os.path.exists(path):
            raise RuntimeError("this simulator does not serve host memory: it was started without "
                               "SIOV_HOST_MEM, or its top has no public mem port")
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), 0)
        os.unlink(path)
        head = _Control.from_buffer(self._map)
        if head.magic != MAGIC or head.version != VERSION or head.header_size != ctypes.sizeof(_Control):
            raise RuntimeError(f"shared host file {path}: magic {head.magic:#x}, version {head.version}, "
                               f"header of {head.header_size} bytes; this module expects version {VERSION} "
                               f"and {ctypes.sizeof(_Control)} bytes (rebuild the simulator)")
        self.ctl = head
        self.size = head.ram_size

    # -- host memory (the backdoor: no simulator time) ---------------------------------

    def read(self, addr, n):
        if addr < 0 or addr + n > self.size:
            raise ValueError(f"host memory read at {addr:#x} of {n} bytes is outside [0, {self.size:#x})")
        return self._map[CONTROL_BYTES + addr:CONTROL_BYTES + addr + n]

    def write(self, addr, data):
        if addr < 0 or addr + len(data) > self.size:
            raise ValueError(f"host memory write at {addr:#x} of {len(data)} bytes is outside [0, {self.size:#x})")
        self._map[CONTROL_BYTES + addr:CONTROL_BYTES + addr + len(data)] = data

    # -- what the C++ side serves ------------------------------------------------------

    def serve_memory(self):
        """Answer the Device's ``mem`` port from now on."""
        self.ctl.flags |= FLAG_MEMORY

    def clear(self):
        """Zero host memory (a new test's memory, as a new AxiRam's), giving its pages back."""
        try:
            self._map.madvise(mmap.MADV_REMOVE, CONTROL_BYTES, self.size)
        except (AttributeError, OSError):
            zeros = bytes(1 << 20)
            for addr in range(0, self.size, len(zeros)):
                self._map[CONTROL_BYTES + addr:CONTROL_BYTES + addr + len(zeros)] = zeros

    def start_clock(self, clk, period_ns):
        """Run ``clk`` (the Device's clock) in the simulator's main, as cocotb's ``Clock(clk,
        period_ns, unit="ns").start()`` does: high now, toggling every half period."""
        from cocotb.utils import get_sim_time
        half = _steps(period_ns) // 2
        if self.ctl.clock_half == half:
            return      # running already (an earlier test of this simulation started it)
        clk.value = 1
        self.ctl.clock_half = half
        self.ctl.clock_next = int(get_sim_time("step")) + half

    @property
    def cycle(self):
        """Rising clock edges since the simulation started."""
        return self.ctl.cycle

    def set_pauses(self, kinds, rng):
        """A pause pattern per channel: ``kinds`` maps aw, w, b, ar, r to a name of
        :data:`siov.tb.axi.PATTERNS` (missing: none); random ones draw from a seed of ``rng``."""
        for i, name in enumerate(CHANNELS):
            kind, arg = PAUSE_SPECS[kinds.get(name, "none")]
            p = self.ctl.pause[i]
            p.mode, p.threshold, p.pattern, p.length = 0, 0, 0, 1
            if kind == "random":
                p.mode, p.threshold = 1, min(int(arg * 2**32), 2**32 - 1)
            elif kind == "cycle":
                p.mode, p.length = 2, len(arg)
                p.pattern = sum(1 << j for j, v in enumerate(arg) if v)
            p.seed = rng.getrandbits(64) | 1
            p.generation += 1

    def set_errors(self, ranges):
        """Host ranges ``[(start, end, read, write)]`` that answer SLVERR."""
        if len(ranges) > MAX_ERRORS:
            raise ValueError(f"At most {MAX_ERRORS} error ranges, not {len(ranges)}")
        for i, (start, end, read, write) in enumerate(ranges):
            self.ctl.errors[i] = _ErrorRange(start, end, int(bool(read)), int(bool(write)))
        self.ctl.n_errors = len(ranges)

    def log_taps(self, irq_ready_p=1.0, rng=None):
        """Log the Device's taps and its ``irq_out`` beats; drive ``irq_out.ready`` with
        probability ``irq_ready_p`` each cycle (see :meth:`set_irq_ready`)."""
        self.set_irq_ready(irq_ready_p, rng or random.Random(0))
        self.ctl.flags |= FLAG_TAPS | FLAG_IRQ_READY

    def set_irq_ready(self, p, rng):
        """``irq_out.ready`` high each cycle with probability ``p``, drawn from a seed of ``rng``."""
        self.ctl.irq_ready_threshold = 0xFFFFFFFF if p >= 1 else int(p * 2**32)
        self.ctl.irq_seed = rng.getrandbits(64) | 1
        self.ctl.irq_generation += 1

    def log_entries(self, which, start):
        """``[(cycle, value)]`` of log ``which`` from entry ``start`` on."""
        count = self.ctl.log_count[which]
        cap = self.ctl.log_cap
        if count > cap:
            raise RuntimeError(f"the tap log {which} overflowed ({count} entries, room for {cap})")
        base = CONTROL_BYTES + self.size + which * cap * 16
        raw = self._map[base + 16 * start:base + 16 * count]
        words = memoryview(raw).cast("Q")
        return [(words[2 * i], words[2 * i + 1]) for i in range(count - start)]


class TapLog:
    """One of the C++ side's logs from now on, as a growing list of ``decode(cycle, value)``."""

    def __init__(self, host, which, decode):
        self.host, self.which, self.decode = host, which, decode
        self._start = host.ctl.log_count[which]
        self._items = []

    def items(self):
        new = self.host.log_entries(self.which, self._start + len(self._items))
        self._items.extend(self.decode(c, v) for c, v in new)
        return self._items


class _SharedRanges(list):
    """A bus error table written through to the C++ host memory on every change."""

    def __init__(self, host, ranges):
        super().__init__(ranges)
        self.host = host
        host.set_errors(self)

    def _changed(method):
        def wrapper(self, *args, **kwargs):
            out = getattr(list, method)(self, *args, **kwargs)
            self.host.set_errors(self)
            return out
        wrapper.__name__ = method
        return wrapper

    for _m in ("append", "extend", "insert", "remove", "pop", "clear", "__setitem__", "__delitem__", "__iadd__"):
        locals()[_m] = _changed(_m)
    del _m, _changed


def share_bus_errors(errors, host):
    """Make the model's :class:`~siov.sw.model.engine.BusErrors` ``errors`` the table the C++
    host memory answers from: every range added or removed is written through, so the
    scoreboard's model and the slave agree without the test doing anything twice."""
    if not isinstance(errors, BusErrors):
        raise TypeError(f"Bus errors must be a BusErrors, not {errors!r}")
    errors.ranges = _SharedRanges(host, errors.ranges)
    return errors


class _Response:
    """What cocotbext-axi's read and write return: ``data`` (bytes, for a read) and ``resp``."""

    __slots__ = ("data", "resp")

    def __init__(self, data, resp):
        self.data, self.resp = data, resp


class SharedMmio:
    """An AXI4-Lite master on the Device's ``csr`` port, run by the simulator's main.

    It answers ``read(addr, length)`` and ``write(addr, data)`` as cocotbext-axi's
    AxiLiteMaster does (one word at a time here: :func:`siov.tb.axi.axil_read` and
    :func:`~siov.tb.axi.axil_write` are its callers), with the same cycles on the
    bus. Python posts the access in a ring of the control block and sleeps; one
    task per channel wakes when the Device offers a response (``rvalid`` or
    ``bvalid`` rises), and at the edge that takes it, and wakes the callers.
    """

    def __init__(self, host, dut):
        self.host, self.clk = host, dut.clk
        host.ctl.flags |= FLAG_MMIO
        self._channels = {}
        for name, ring, valid in (("read", host.ctl.mmio_read, dut.csr__rvalid),
                                  ("write", host.ctl.mmio_write, dut.csr__bvalid)):
            self._channels[name] = _MmioChannel(ring, valid, self.clk)

    async def read(self, addr, length):
        if length != 4 or addr % 4:
            raise ValueError(f"SharedMmio reads one aligned word, not {length} bytes at {addr:#x}")
        slot = await self._channels["read"].access(addr)
        return _Response(slot.rdata.to_bytes(4, "little"), slot.resp)

    async def write(self, addr, data):
        lane = addr % 4
        if not 0 < len(data) <= 4 - lane:
            raise ValueError(f"SharedMmio writes within one word, not {len(data)} bytes at {addr:#x}")
        strb = ((1 << len(data)) - 1) << lane
        value = int.from_bytes(data, "little") << (8 * lane)
        slot = await self._channels["write"].access(addr, value, strb)
        return _Response(b"", slot.resp)


class _MmioChannel:
    """One direction of :class:`SharedMmio`: its ring, and the task that wakes its callers."""

    def __init__(self, ring, valid, clk):
        self.ring, self.valid, self.clk = ring, valid, clk
        self.waiting = collections.deque()     # (sequence number, event), in order
        self.wake = None
        self.task = None

    async def access(self, addr, data=0, strb=0):
        import cocotb
        from cocotb.triggers import Event
        ring = self.ring
        if ring.posted - ring.done >= MMIO_SLOTS:
            raise RuntimeError(f"more than {MMIO_SLOTS} MMIO accesses in flight")
        slot = ring.slot[ring.posted % MMIO_SLOTS]
        slot.addr, slot.data, slot.strb = addr, data, strb
        ring.posted += 1
        event = Event()
        self.waiting.append((ring.posted, event))
        if self.task is None or self.task.done():
            self.wake = Event()
            self.task = cocotb.start_soon(self._serve())
        else:
            self.wake.set()
        await event.wait()
        return slot

    async def _serve(self):
        from cocotb.triggers import ReadOnly, RisingEdge
        while True:
            if not self.waiting:
                self.wake.clear()
                await self.wake.wait()
                continue
            # The Device offers a response; the master takes it at the next edge (its ready
            # is always high). A response offered right after another keeps valid high.
            if not int(self.valid.value):
                await RisingEdge(self.valid)
            await RisingEdge(self.clk)
            while self.waiting and self.ring.done >= self.waiting[0][0]:
                self.waiting.popleft()[1].set()
            if self.waiting:
                await ReadOnly()        # valid as it is after this edge: another response already?
