"""The Bus protocol: everything host software may do to the device and host memory.

Host code (sw/hv, sw/guest, sw/sched, sw/ckpt) awaits only the methods of
:class:`Bus`, so one host program runs unchanged on two backends
(:mod:`siov.sw.platform`):

* ``model``: the whole Device in Python, in virtual device time, under plain
  asyncio (:mod:`siov.sw.platform.model`);
* ``rtl``: the Verilated Device under cocotb (:mod:`siov.sw.platform.rtl`).

The seam between the two event loops is here and nowhere else. cocotb's
scheduler is not asyncio: a coroutine running under cocotb cannot await an
asyncio future, and an asyncio task cannot await a cocotb trigger. So host
code never touches either library. Whatever it needs to run concurrently or
to wait for comes from the bus:

* :meth:`Bus.spawn` starts a coroutine as a task of the backend's loop; the
  task is awaitable (its result) and has ``cancel()``;
* :meth:`Bus.event` makes an event with ``set()``, ``clear()``,
  ``is_set()`` and ``await event.wait()``;
* :meth:`Bus.wait_event` waits for an event with a timeout in device cycles.

Time is the device's clock in cycles (:meth:`Bus.now`,
:meth:`Bus.wait_cycles`), never the wall clock. Host software's own accesses
to host memory (:meth:`Bus.mem_read`, :meth:`Bus.mem_write`: a guest writing a
descriptor into its ring) take no device time; MMIO accesses do. Interrupts
are the Device's ``irq_out`` messages {destination, vector}, handed to every
callback registered with :meth:`Bus.on_irq` in the order they arrive.

A backend may also offer ``watch(addr, n)``: an event (as :meth:`Bus.event`
makes) set when the Device next writes any of those ``n`` bytes of host
memory, and ``unwatch(event)``. Host code that waits for a completion record
takes a watch, reads the record, and if it is not written yet waits on the
event with :meth:`Bus.wait_event` instead of reading it every few cycles;
where ``getattr(bus, "watch", None)`` is None it polls. The model backend
offers it (:meth:`~siov.sw.platform.model.ModelBus.watch`).
"""

import collections
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol, runtime_checkable

from ..rtl.csr.bus import Resp

__all__ = ["Bus", "BusError", "BusLock", "Interrupt", "Task", "Event"]


class BusError(Exception):
    """An MMIO access answered with SLVERR or DECERR."""

    def __init__(self, op, addr, resp):
        self.op, self.addr, self.resp = op, addr, Resp(resp)
        super().__init__(f"{op} at {addr:#07x} answered {self.resp.name}")


@dataclass(frozen=True)
class Interrupt:
    """One ``irq_out`` message: x86 destination ID and vector, and the device cycle it arrived."""
    dest: int
    vector: int
    cycle: int


class Task(Protocol):
    """A started coroutine: ``await task`` gives its result; ``cancel()`` stops it."""

    def __await__(self): ...

    def cancel(self):
        """Stop the task; awaiting it afterwards raises the backend's cancellation error."""


class Event(Protocol):
    """A flag tasks can wait for; ``await event.wait()`` returns once it is set."""

    def set(self):
        """Set the flag and wake every task waiting for it."""

    def clear(self):
        """Clear the flag: later waits block until the next :meth:`set`."""

    def is_set(self) -> bool:
        """Whether the flag is set."""

    def wait(self) -> Awaitable:
        """An awaitable that completes once the flag is set (at once if it is)."""


@runtime_checkable
class Bus(Protocol):
    """What sw/ may do to the device and host memory."""

    # -- MMIO (the Device's AXI4-Lite port): takes device time ----------------

    async def read(self, addr: int) -> int:
        """Read a 32-bit register; raise :class:`BusError` on an error response."""

    async def write(self, addr: int, value: int, strb: int = 0xF) -> None:
        """Write a 32-bit register with byte strobes; raise :class:`BusError` on an error response."""

    # -- host memory, by host physical address: no device time ----------------

    async def mem_read(self, addr: int, n: int) -> bytes:
        """``n`` bytes of host memory at host physical address ``addr``."""

    async def mem_write(self, addr: int, data: bytes) -> None:
        """Store ``data`` in host memory at host physical address ``addr``."""

    # -- interrupts -------------------------------------------------------------

    def on_irq(self, callback: Callable[[Interrupt], None]) -> None:
        """Call ``callback(Interrupt)`` for every ``irq_out`` message from now on, in order."""

    # -- device time ------------------------------------------------------------

    def now(self) -> int:
        """Current device time in clock cycles."""

    async def wait_cycles(self, n: int) -> None:
        """Let ``n`` device clock cycles pass."""

    # -- concurrency, provided by the backend's loop ----------------------------

    def spawn(self, coro) -> Task:
        """Start coroutine ``coro`` as a concurrent task of this backend."""

    def event(self) -> Event:
        """A new, cleared event of this backend."""

    async def wait_event(self, event: Event, timeout_cycles: int) -> bool:
        """Wait until ``event`` is set or ``timeout_cycles`` pass; True if it was set."""


class BusLock:
    """A first-come, first-served lock for host tasks, made of the backend's events.

    Register sequences that go through a select or status register shared by
    every caller (an index/data pair, the guest map's status word) must not
    interleave; tasks are cooperative, so testing and taking the lock cannot be
    split by another task.

    Release hands the lock straight to the task that has waited longest: a
    task that releases and retakes it at once (a guest trapping in a loop)
    queues behind every earlier waiter instead of winning again, so a waiter
    waits at most for the critical sections queued before it. A waiter
    cancelled while queued gives up its place, or passes the lock on if it was
    handed to it in the meantime.
    """

    def __init__(self, bus):
        self._bus = bus
        self._waiters = collections.deque()
        self.locked = False

    async def __aenter__(self):
        if not self.locked and not self._waiters:
            self.locked = True
            return self
        turn = self._bus.event()
        self._waiters.append(turn)
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():           # handed over just before the cancel: pass it on
                self._release()
            else:
                self._waiters.remove(turn)
            raise
        return self                     # ``locked`` stayed True through the hand-over

    async def __aexit__(self, *exc):
        self._release()

    def _release(self):
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self.locked = False
