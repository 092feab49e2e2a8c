"""Named register access for host software, over any :class:`~siov.sw.bus.Bus`.

Addresses and fields come from :mod:`siov.rtl.regmap` (generated from
``rtl/regs.rdl``); nothing here types an address.
"""

from ..rtl import regmap

__all__ = ["Csr"]


class Csr:
    """Register accessors by RDL path, such as ``"GLOBAL.SCRATCH"``."""

    def __init__(self, bus, registers=None):
        self.bus = bus
        self.registers = registers if registers is not None else regmap.REGISTERS

    def _reg(self, path):
        try:
            return self.registers[path]
        except KeyError:
            raise KeyError(f"No register {path!r} in the register map") from None

    async def read(self, path):
        return await self.bus.read(self._reg(path).offset)

    async def write(self, path, value):
        await self.bus.write(self._reg(path).offset, value)

    async def read_field(self, path):
        """Read one field, ``"GLOBAL.CAP0.NUM_ADIS"``."""
        reg_path, fname = path.rsplit(".", 1)
        reg = self._reg(reg_path)
        f = reg.field(fname)
        return (await self.bus.read(reg.offset) & f.mask) >> f.lsb

    async def read_cycles(self):
        """The 64-bit cycle counter, read atomically (low word latches the high word)."""
        lo = await self.read("GLOBAL.CYCLE_LO")
        hi = await self.read("GLOBAL.CYCLE_HI")
        return hi << 32 | lo

    async def identify(self):
        """Check the magic ID; return the build parameters, the descriptor limits
        (GENCAP: largest transfer, record and MEMFILL alignment in bytes) and the fault
        queues' depths and quotas (DMA.FAULT_CAP, IRQ.FAULT_CAP) as a dict."""
        magic = await self.read("GLOBAL.ID")
        if magic != regmap.GLOBAL_ID_MAGIC_VALUE:
            raise RuntimeError(f"Not a siov device: ID reads {magic:#010x}, "
                               f"expected {regmap.GLOBAL_ID_MAGIC_VALUE:#010x}")
        return {
            "num_adis": await self.read_field("GLOBAL.CAP0.NUM_ADIS"),
            "ims_entries": await self.read_field("GLOBAL.CAP0.IMS_ENTRIES"),
            "num_engines": await self.read_field("GLOBAL.CAP0.NUM_ENGINES"),
            "num_domains": await self.read_field("GLOBAL.CAP1.NUM_DOMAINS"),
            "pages_per_domain": await self.read_field("GLOBAL.CAP1.PAGES_PER_DOMAIN"),
            "max_xfer": 1 << await self.read_field("GLOBAL.GENCAP.MAX_XFER_SHIFT"),
            "cr_align": 1 << await self.read_field("GLOBAL.GENCAP.CR_ALIGN_SHIFT"),
            "fill_align": 1 << await self.read_field("GLOBAL.GENCAP.FILL_ALIGN_SHIFT"),
            "dma_fault_depth": await self.read_field("DMA.FAULT_CAP.DEPTH"),
            "dma_fault_quota": await self.read_field("DMA.FAULT_CAP.QUOTA"),
            "irq_fault_depth": await self.read_field("IRQ.FAULT_CAP.DEPTH"),
            "irq_fault_quota": await self.read_field("IRQ.FAULT_CAP.QUOTA"),
            "irq_fault_source_bits": await self.read_field("IRQ.FAULT_CAP.SOURCE_BITS"),
        }
