"""A Bus that checks every MMIO access against a register model, and the Bus over a block's CSR port.

:class:`CheckedBus` exists so that a testbench can run the host software's
own register sequences (:class:`~siov.sw.hv.pf.PfDriver`, :class:`~siov.sw.guest.ring.Ring`)
on the hardware and still have a scoreboard compare every access with the
reference model. Before it, each testbench wrote the sequences a second time
around its own checked ``read``/``write``; now the sequences live in sw/ once
and the check lives here once.

:class:`CsrPortBus` is the MMIO, time and task part of
:class:`~siov.tb.host.bus.RtlBus` over a block top's own AXI4-Lite CSR port
(``siov_dma`` answers its window's addresses less the window base), so the
block testbenches call the same sequences as the Device's.

Ref: :mod:`siov.sw.bus` (the Bus protocol).
"""

from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from ...rtl import regmap
from ...rtl.csr.bus import Resp
from ...sw.bus import BusError
from .bus import RtlBus

__all__ = ["CheckedBus", "CsrPortBus", "POLLED", "range_op"]

#: Registers :class:`~siov.sw.hv.pf.PfDriver` polls while their value depends on
#: timing (DMA.STATUS.BUSY): volatile to a CheckedBus; :func:`range_op` checks
#: the rest once the poll is over.
POLLED = frozenset({"DMA.STATUS"})


class CheckedBus:
    """The :class:`~siov.sw.bus.Bus` ``inner`` with every MMIO access also applied to ``model``.

    A read or write whose response (and, for a read of a register not in
    ``volatile``, whose value) differs from the model's raises AssertionError
    naming the address, what the bus answered and what the model expected.
    Otherwise it behaves as ``inner``: :class:`~siov.sw.bus.BusError` exactly
    when ``inner`` raises it. Host-memory writes also go to ``model.memory``,
    so guest data stay mirrored in the model.

    Parameters
    ----------
    inner : Bus
        The bus that reaches the hardware.
    model : object
        ``read(addr) -> (Resp, value)`` and ``write(addr, data, strb) -> Resp`` at
        absolute addresses (:class:`~siov.sw.model.system.DeviceModel`,
        :class:`~siov.sw.model.csr.CsrModel`, a block model), and ``memory`` if
        host memory is written through this bus.
    volatile : iterable of str or int
        Registers whose value depends on timing (``"ENG.LAST_CYCLES"``, or a byte
        address for a word of a window): only their response is checked.

    Raises
    ------
    KeyError
        If ``volatile`` names a register the register map does not have.
    """

    def __init__(self, inner, model, volatile=frozenset()):
        self.inner, self.model = inner, model
        self.volatile_words = frozenset((v if isinstance(v, int) else regmap.REGISTERS[v].offset) >> 2
                                        for v in volatile)

    # -- MMIO, checked ----------------------------------------------------------------

    async def read(self, addr):
        try:
            value, error = await self.inner.read(addr), None
        except BusError as e:
            value, error = None, e
        resp = Resp.OKAY if error is None else error.resp
        exp_resp, exp_value = self.model.read(addr)
        assert resp == exp_resp, f"read {addr:#07x}: {resp.name}, model {Resp(exp_resp).name}"
        if error is not None:
            raise error
        if addr >> 2 not in self.volatile_words:
            assert value == exp_value, f"read {addr:#07x}: {value:#010x}, model {exp_value:#010x}"
        return value

    async def write(self, addr, value, strb=0xF):
        try:
            await self.inner.write(addr, value, strb)
            error = None
        except BusError as e:
            error = e
        resp = Resp.OKAY if error is None else error.resp
        exp = self.model.write(addr, value, strb)
        assert resp == exp, f"write {addr:#07x} = {value:#010x}: {resp.name}, model {Resp(exp).name}"
        if error is not None:
            raise error

    async def try_read(self, addr):
        """A checked read that returns ``(Resp, value)`` (value 0 on an error) instead of raising."""
        try:
            return Resp.OKAY, await self.read(addr)
        except BusError as e:
            return e.resp, 0

    async def try_write(self, addr, value, strb=0xF):
        """A checked write that returns its :class:`Resp` instead of raising."""
        try:
            await self.write(addr, value, strb)
            return Resp.OKAY
        except BusError as e:
            return e.resp

    async def raw_read(self, addr):
        """An unchecked read, for polls whose value depends on timing; the model does not see it."""
        return await self.inner.read(addr)

    # -- everything else, delegated -----------------------------------------------------

    async def mem_read(self, addr, n):
        return await self.inner.mem_read(addr, n)

    async def mem_write(self, addr, data):
        await self.inner.mem_write(addr, data)
        self.model.memory.write(addr, bytes(data))

    def on_irq(self, callback):
        self.inner.on_irq(callback)

    def now(self):
        return self.inner.now()

    async def wait_cycles(self, n):
        await self.inner.wait_cycles(n)

    def spawn(self, coro):
        return self.inner.spawn(coro)

    def event(self):
        return self.inner.event()

    async def wait_event(self, event, timeout_cycles):
        return await self.inner.wait_event(event, timeout_cycles)


class _Rebased:
    """An AxiLiteMaster seen at addresses ``base`` higher (a block top decodes its window's offsets)."""

    def __init__(self, axil, base):
        self.axil, self.base = axil, base

    def read(self, addr, length):
        return self.axil.read(addr - self.base, length)

    def write(self, addr, data):
        return self.axil.write(addr - self.base, data)


class CsrPortBus(RtlBus):
    """:class:`~siov.tb.host.bus.RtlBus`'s MMIO, time and tasks over a block top's ``csr`` port.

    The top has no host memory port and no ``irq_out``: those parts of the
    Bus raise NotImplementedError. The testbench starts the clock and resets
    the top itself.

    Parameters
    ----------
    dut : cocotb handle
        A top with ``clk``, ``rst`` and an AXI4-Lite slave ``csr`` (``siov_dma``).
    base : int
        The absolute address of the top's offset 0 (``regmap.DMA_BASE``), so
        host code uses the addresses of the register map.
    """

    def __init__(self, dut, base=0):
        self.dut, self.clk = dut, dut.clk
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"), dut.clk, dut.rst)
        for log in (self.axil.write_if.log, self.axil.read_if.log):
            log.setLevel("WARNING")
        self.axil = _Rebased(self.axil, base)

    async def reset(self):
        raise NotImplementedError("CsrPortBus: the testbench resets its top")

    async def mem_read(self, addr, n):
        raise NotImplementedError(f"{self.dut._name} has no host memory port")

    async def mem_write(self, addr, data):
        raise NotImplementedError(f"{self.dut._name} has no host memory port")

    def on_irq(self, callback):
        raise NotImplementedError(f"{self.dut._name} has no irq_out port")


async def range_op(pf, code, dom, start, count):
    """``pf.range_op`` over a :class:`CheckedBus`; whether the tracker took it must be the model's verdict.

    The poll for the end of the operation is checked by response only
    (:data:`POLLED`); here STATUS.ERR, once the operation is over, is checked
    against the model's. Returns True if the tracker took the operation.
    """
    done = await pf.range_op(code, dom, start, count)
    _, st = pf.bus.model.read(regmap.DMA_STATUS)
    assert done == (not st & regmap.DMA_STATUS_ERR_MASK), (
        f"range op {code} on domain {dom}: {'taken' if done else 'refused'}, model STATUS {st:#x}")
    return done
