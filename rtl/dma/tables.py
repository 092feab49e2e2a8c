"""The DMA tracker's tables: the ADI-to-domain table and the domains' host windows.

Written by the hypervisor through the ``DMA`` window of ``rtl/regs.rdl``:
ADI_SEL/ADI_ENTRY then ADI_CMD.WRITE for an ADI's entry {valid, PASID,
domain}; DOM_SEL/DOM_BASE_LO/HI/DOM_LIMIT then DOM_CMD.WRITE for a domain's
window (guest page ``n`` of the domain is at host page ``BASE + n`` and must
be below ``LIMIT``). The entry the select registers name is read back
(ADI_CUR, DOM_CUR_*) three cycles behind them.

The request path (:class:`~.lookup.AddressLookup`) and the guest fast path
(:class:`~.guest.GuestOps`) read the tables through :attr:`adi` and
:attr:`windows`, which are also what formal harnesses state properties on.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .common import ADI_ENTRY, DOMAIN_WINDOW, readback
from .defs import PAGE_SHIFT

__all__ = ["DomainTables"]


class DomainTables(wiring.Component):
    """ADI table and domain windows, with their register-side write and read-back.

    Attributes
    ----------
    adi_index, dom_index : In(6)
        ADI_SEL.INDEX and DOM_SEL.INDEX (held from a bus write cycles before the
        command: the index is decoded one-hot a cycle ahead).
    adi_write, dom_write : In(1)
        ADI_CMD.WRITE and DOM_CMD.WRITE pulses: the selected entry takes the values.
    adi_entry : In(ADI_ENTRY)
        ADI_ENTRY's fields.
    dom_base : In(52), dom_limit : In(32)
        DOM_BASE_HI:LO (a host page number) and DOM_LIMIT.PAGES.
    adi : Out(ArrayLayout(ADI_ENTRY, num_adis))
        The table.
    windows : Out(ArrayLayout(DOMAIN_WINDOW, num_domains))
        The windows; ``big`` is ``limit >= pages_per_domain``.
    cur_adi : Out(ADI_ENTRY), cur_dom : Out({base, limit})
        The selected entry and window, three cycles behind the table and index.
    """

    def __init__(self, params):
        self.params = params
        A, D = params.num_adis, params.num_domains
        super().__init__({
            "adi_index": In(6), "adi_write": In(1), "adi_entry": In(ADI_ENTRY),
            "dom_index": In(6), "dom_write": In(1), "dom_base": In(64 - PAGE_SHIFT), "dom_limit": In(32),
            "adi": Out(data.ArrayLayout(ADI_ENTRY, A)),
            "windows": Out(data.ArrayLayout(DOMAIN_WINDOW, D)),
            "cur_adi": Out(ADI_ENTRY),
            "cur_dom": Out(data.StructLayout({"base": 64 - PAGE_SHIFT, "limit": 32})),
        })

    def elaborate(self, platform):
        m = Module()
        A, D = self.params.num_adis, self.params.num_domains
        kp = exact_log2(self.params.pages_per_domain)
        # Writes: the entry index is decoded one-hot a cycle ahead (the CMD
        # write is a later bus write than SEL, ENTRY, BASE and LIMIT).
        adi_we = Signal(A, name="adi_we")
        m.d.sync += adi_we.eq(Cat(*(self.adi_index == i for i in range(A))))
        for i in range(A):
            with m.If(self.adi_write & adi_we[i]):
                m.d.sync += self.adi[i].eq(self.adi_entry)
        dom_we = Signal(D, name="dom_we")
        m.d.sync += dom_we.eq(Cat(*(self.dom_index == d for d in range(D))))
        # Whether the limit covers the whole bitmap, made from LIMIT a cycle
        # ahead in the same way: the wide OR is cut in two, three partial ORs
        # of LIMIT's high bits registered here and ORed into the domain's
        # flag by the CMD write (two LUT levels on either side, not three).
        high = self.dom_limit[kp:]
        part = -(-len(high) // 3)
        limit_parts = Signal(-(-len(high) // part), name="limit_parts")
        m.d.sync += limit_parts.eq(Cat(*(high[i:i + part].any() for i in range(0, len(high), part))))
        for d in range(D):
            with m.If(self.dom_write & dom_we[d]):
                m.d.sync += [self.windows[d].base.eq(self.dom_base), self.windows[d].limit.eq(self.dom_limit),
                             self.windows[d].big.eq(limit_parts.any())]
        # Read-back registers, a few cycles behind the table and the index (a
        # bus read comes later): a registered two-level mux.
        m.d.comb += [
            self.cur_adi.eq(readback(m, "cur_adi", self.adi_index, [self.adi[i].as_value() for i in range(A)])),
            self.cur_dom.eq(readback(m, "cur_dom", self.dom_index,
                                     [Cat(self.windows[d].base, self.windows[d].limit) for d in range(D)])),
        ]
        return m
