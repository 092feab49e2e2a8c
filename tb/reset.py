"""The one reset sequence every testbench uses: idle the inputs, then pulse ``rst``."""

from cocotb.triggers import ClockCycles

__all__ = ["reset_dut"]


async def reset_dut(dut, idle, *, hold=4, settle=2):
    """Drive each ``{port name: value}`` of ``idle``, hold ``rst`` for ``hold`` cycles,
    release it and let ``settle`` cycles pass (Amaranth's reset is synchronous, active high)."""
    for name, value in idle.items():
        getattr(dut, name).value = value
    dut.rst.value = 1
    await ClockCycles(dut.clk, hold)
    dut.rst.value = 0
    await ClockCycles(dut.clk, settle)
