"""The DMA tracker's address lookup: a request's PASID to its domain, and the domain's window.

The ADI table is a CAM (:class:`~.tables.DomainTables`): a request belongs to
the domain of the lowest valid entry whose PASID matches; an entry whose
domain is not below ``num_domains`` matches nothing. The lookup is pipelined
with the request path's stages (rtl/dma/tracker.py)::

    C : the PASID arrives (``valid``, ``pasid``)
    D0: compared with every entry, 4 bits at a time
    D1: the chunks combined: the matching entries
    D2: the lowest matching entry, one-hot (``x & -x``)
    D3: its domain, an AND-OR of the one-hot by groups of four entries:
        ``hit`` and ``domain`` (the groups ORed, combinational)
    M : the domain, one-hot
    O : its window, an AND-OR by groups of four domains
    R : the groups ORed: ``base`` and ``limit``

Each entry's domain is carried along one-hot as well, so that the window
look-up is an AND-OR of the windows with no decoder in front. The table of
stage C decides the domain; the windows of stage M the window.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..stream import and_or_by_fours, or_all
from .common import ADI_ENTRY, DOMAIN_BITS, DOMAIN_WINDOW
from .defs import PAGE_SHIFT, PASID_BITS

__all__ = ["AddressLookup", "HIT_STAGES", "WINDOW_STAGES"]

#: Cycles from ``pasid`` (stage C) to ``hit`` and ``domain`` (stage D3).
HIT_STAGES = 4
#: Cycles from ``pasid`` to ``base`` and ``limit`` (stage R).
WINDOW_STAGES = 7


class AddressLookup(wiring.Component):
    """PASID -> (hit, domain) in :data:`HIT_STAGES` cycles, and the domain's window in :data:`WINDOW_STAGES`.

    Attributes
    ----------
    adi : In(ArrayLayout(ADI_ENTRY, num_adis)), windows : In(ArrayLayout(DOMAIN_WINDOW, num_domains))
        The tables (:class:`~.tables.DomainTables`).
    valid : In(1), pasid : In(20)
        A request's PASID (stage C); without ``valid`` nothing matches.
    hit : Out(1), domain : Out(6)
        Stage D3: some valid entry matched, and the lowest one's domain (0 if none).
    base : Out(52), limit : Out(page_bits + 1)
        Stage R: the domain's window (0 if none matched): its base page, the
        limit's bits below the bitmap's size and, on top, whether the limit
        covers the whole bitmap.
    """

    def __init__(self, params):
        self.params = params
        self.page_bits = exact_log2(params.pages_per_domain)
        super().__init__({
            "adi": In(data.ArrayLayout(ADI_ENTRY, params.num_adis)),
            "windows": In(data.ArrayLayout(DOMAIN_WINDOW, params.num_domains)),
            "valid": In(1), "pasid": In(PASID_BITS),
            "hit": Out(1), "domain": Out(DOMAIN_BITS),
            "base": Out(64 - PAGE_SHIFT), "limit": Out(self.page_bits + 1),
        })

    def elaborate(self, platform):
        m = Module()
        A, D, kp = self.params.num_adis, self.params.num_domains, self.page_bits
        adi, win = self.adi, self.windows
        # D0: per-entry compare, in 4-bit chunks, with the entry's enable and
        # domain as the CAM saw them (the table of stage C).
        CH = -(-PASID_BITS // 4)
        d0_eq = [Signal(CH, name=f"d0_eq{i}") for i in range(A)]
        d0_en = Signal(A, name="d0_en")
        d0_mdom = [Signal(DOMAIN_BITS, name=f"d0_mdom{i}") for i in range(A)]
        d0_moh = [Signal(D, name=f"d0_moh{i}") for i in range(A)]
        for i in range(A):
            m.d.sync += [d0_eq[i].eq(Cat(*(adi[i].pasid[4 * k:4 * k + 4] == self.pasid[4 * k:4 * k + 4]
                                           for k in range(CH)))),
                         d0_en[i].eq(self.valid & adi[i].valid & (adi[i].domain < D)),
                         d0_mdom[i].eq(adi[i].domain),
                         d0_moh[i].eq(Cat(*(adi[i].domain == d for d in range(D))))]
        # D1: per-entry match.
        d1_match = Signal(A, name="d1_match")
        d1_mdom = [Signal(DOMAIN_BITS, name=f"d1_mdom{i}") for i in range(A)]
        d1_moh = [Signal(D, name=f"d1_moh{i}") for i in range(A)]
        m.d.sync += d1_match.eq(Cat(*(d0_en[i] & d0_eq[i].all() for i in range(A))))
        m.d.sync += [d1_mdom[i].eq(d0_mdom[i]) for i in range(A)]
        m.d.sync += [d1_moh[i].eq(d0_moh[i]) for i in range(A)]
        # D2: the lowest matching entry, one-hot (``x & -x``: the negation
        # is a carry chain, faster than a priority chain of LUTs).
        d2_first = Signal(A, name="d2_first")
        d2_mdom = [Signal(DOMAIN_BITS, name=f"d2_mdom{i}") for i in range(A)]
        d2_moh = [Signal(D, name=f"d2_moh{i}") for i in range(A)]
        d2_hit = Signal(name="d2_hit")
        m.d.sync += [d2_hit.eq(d1_match.any()), d2_first.eq(d1_match & (-d1_match.as_signed())[:A])]
        m.d.sync += [d2_mdom[i].eq(d1_mdom[i]) for i in range(A)]
        m.d.sync += [d2_moh[i].eq(d1_moh[i]) for i in range(A)]
        # D3: the domain, an AND-OR of the one-hot (0 if none), in groups of four.
        d3_part = and_or_by_fours(m, d2_first, d2_mdom, "d3_part")
        d3_ohpart = and_or_by_fours(m, d2_first, d2_moh, "d3_ohpart")
        m.d.sync += self.hit.eq(d2_hit)
        m.d.comb += self.domain.eq(or_all(d3_part))
        # M: the domain, one-hot.
        m_dsel = Signal(D, name="m_dsel")
        m.d.sync += m_dsel.eq(or_all(d3_ohpart))
        # O: the window, an AND-OR of the windows with the one-hot domain,
        # each select bit driving only its own window's bits; by groups of
        # four domains here, the groups ORed in R. The limit as the compare
        # needs it: its bits below the bitmap's size and whether it covers
        # the whole bitmap (13 bits where there were 32 by default). A page
        # beyond the bitmap is refused whatever its window, so the compare
        # looks at the page's bits below that size.
        o_base = and_or_by_fours(m, m_dsel, [win[d].base for d in range(D)], "o_base")
        o_limit = and_or_by_fours(m, m_dsel, [Cat(win[d].limit[:kp], win[d].big) for d in range(D)], "o_limit")
        # R
        m.d.sync += [self.base.eq(or_all(o_base)), self.limit.eq(or_all(o_limit))]
        return m
