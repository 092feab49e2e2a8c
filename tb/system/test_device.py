"""System regression of the integrated Device: tenants, descriptor streams, bad input, QoS.

Every test is a pyuvm test on :mod:`siov.tb.system.env`: the hypervisor side
programs the Device over its AXI4-Lite port with the host software's own
sequences (:class:`~siov.sw.hv.pf.PfDriver`, every access checked against the
Device-level model), guests post DSA descriptors to their ADI rings in host
memory (the simulator's C++ slave, or cocotbext-axi's AxiRam, on the AXI4 master port) and ring their
doorbells (:class:`~siov.sw.guest.ring.Ring`), and the scoreboard replays the
hardware's dispatch order through the reference model: completion records and every byte of every domain
window, interrupts on ``irq_out``, counters and the dirty log must all agree.
"""

import collections
import json
import os
import pathlib
import random

import cocotb
import pyuvm
from pyuvm import uvm_test

from siov.rtl import regmap
from siov.rtl.cmd.adi import AdiError
from siov.rtl.cmd.arbiter import Policy
from siov.rtl.cmd.dsa import PATTERN_BYTES, Flag, Opcode, Status
from siov.rtl.csr.bus import Resp
from siov.rtl.dma.defs import RangeOp
from siov.sw.model.adi import ERROR, PAGE_HEAD, page_address
from siov.sw.model.dsa import Descriptor
from siov.tb.host.bus import wait_cycles
from siov.tb.host.checked import range_op
from siov.tb.system.env import COVERAGE, PAGE, SystemEnv

RESULTS = pathlib.Path(os.environ.get("SIOV_RESULTS", "build/results"))

#: Guest layout of every tenant (guest pages): ring, completion records, data, read-only data.
RING_PAGE, RECORD_PAGE, DATA_FIRST = 0, 1, 2
PAGES = 24
RO_PAGES = 4                     # the last RO_PAGES pages are never a destination
UNMAPPED_PAGE = PAGES - RO_PAGES - 1   # pinned, never mapped: DMA to it faults
RING_SIZE = 64


class Tenant:
    """One ADI's guest: its PASID, domain, IMS handle, engine, ring page and record slots."""

    def __init__(self, adi, pasid, dom, handle, engine=0, ring_page=RING_PAGE, record_page=RECORD_PAGE):
        self.adi, self.pasid, self.dom, self.handle = adi, pasid, dom, handle
        self.engine, self.ring_page, self.record_page = engine, ring_page, record_page
        self.records = 0

    def record_addr(self):
        addr = self.record_page * PAGE + 32 * (self.records % (PAGE // 32))
        self.records += 1
        return addr


class SystemTest(uvm_test):
    """Base: environment, reset, tenant set-up and the end-of-test checks."""

    seed_offset = 0

    def build_phase(self):
        self.env = SystemEnv("env", self)

    async def run_phase(self):
        self.raise_objection()
        seed = cocotb.RANDOM_SEED + self.seed_offset
        self.env.attach(cocotb.top, seed)
        self.rng = random.Random(seed)
        await self.env.bfm.reset()
        await self.scrub_dirty_log()
        await self.body()
        self.drop_objection()

    async def scrub_dirty_log(self):
        """Read and clear every domain's dirty log over the pages the tests use.

        A reset clears the Device's registers but not its block RAM (as in
        hardware), so dirty bits that an earlier test of the same simulation
        set after its last harvest would still be there, while this test's
        model starts clean. The reads are not checked against the model: what
        they return belongs to the earlier test."""
        env, bus = self.env, self.env.bus
        for dom in range(env.params.num_domains):
            await bus.write(regmap.DMA_HARVEST_CTRL, dom)
            for w in range((PAGES + 31) // 32):
                await bus.raw_read(regmap.DMA_HARVEST_BASE + 4 * w)

    async def post_failing_fetch(self, tenant, descriptor):
        """Post ``descriptor`` on a ring the engine cannot read (blocked by the
        tracker or answered with an error), wait for the ADI to go ERROR, let
        the model fetch and fail alike, and return the ADI's ``(state, error code)``."""
        env = self.env
        await env.guest.post(tenant.adi, [descriptor])
        env.sys.posted[tenant.adi].clear()
        for _ in range(100):
            await wait_cycles(env.bfm.dut.clk, 20)
            st = await env.bus.raw_read(regmap.CMD_ADI_STATUS)
            if st & regmap.CMD_ADI_STATUS_STATE_MASK == ERROR:
                break
        assert env.sys.engine.fetch(tenant.adi) is None     # the model's view of the failed fetch
        return await env.pf.adi_command(tenant.adi, 0)

    async def enable(self, t):
        """Enable tenant ``t``'s ADI on its ring, and its guest's ring from the start."""
        await self.env.pf.enable_adi(t.adi, t.ring_page * PAGE, RING_SIZE, t.pasid, t.dom, engine=t.engine)
        self.env.guest.open(t.adi, t.ring_page * PAGE, RING_SIZE, t.dom)

    async def setup_tenants(self, count, engines=1):
        """``count`` tenants, each with its own domain (shared when domains run out), their
        ADIs bound to the first ``engines`` engines in turn."""
        env, pf, p = self.env, self.env.pf, self.env.params
        tenants = []
        for i in range(count):
            dom = i % p.num_domains
            pasid = 0x100 + 0x31 * i
            t = Tenant(i, pasid, dom, handle=(3 * i + 1) % p.ims_entries, engine=i % engines)
            if i < p.num_domains:
                await pf.set_domain(dom, env.sys.host_of(dom, 0), PAGES)
                await range_op(pf, RangeOp.PIN, dom, 0, PAGES)
            await pf.bind_adi(i, pasid, dom)
            for page in range(PAGES):
                if page != UNMAPPED_PAGE:
                    await pf.guest_map(i, page)
            await pf.set_ims(t.handle, pasid, dest=i + 1, vector=0x40 + i)
            await self.enable(t)
            tenants.append(t)
        # Random initial data in every data page (both memories).
        for dom in sorted({t.dom for t in tenants}):
            for page in range(DATA_FIRST, PAGES):
                await env.bus.mem_write(env.sys.host_of(dom, page * PAGE), self.rng.randbytes(PAGE))
        return tenants

    async def finish(self, tenants, count, irqs_per_destination=False):
        """Wait for ``count`` dispatches, replay them, and check everything."""
        env, sb, bus = self.env, self.env.scoreboard, self.env.bus
        await env.wait_dispatched(count)
        await wait_cycles(env.bfm.dut.clk, 20)
        sb.replay()
        assert sb.replayed == count, f"{sb.replayed} dispatches, expected {count}"
        sb.check_memory(sorted({t.dom for t in tenants}), PAGES)
        sb.check_irqs(per_destination=irqs_per_destination)
        for addr in (regmap.ENG_DESC_DONE, regmap.ENG_DESC_FAILED, regmap.ENG_DESC_REFUSED,
                     regmap.ENG_LAST_CYCLES, regmap.DMA_CNT_ALLOWED, regmap.DMA_CNT_BLOCKED,
                     regmap.DMA_CNT_DIRTIED, regmap.IRQ_CNT_DELIVERED, regmap.IRQ_CNT_FAULTED):
            await bus.read(addr)
        for t in tenants:
            await bus.write(regmap.CMD_ADI_SEL, t.adi)
            await bus.read(regmap.CMD_ADI_STATUS)
            await bus.read(regmap.CMD_ADI_PTRS)
        # The dirty log of every domain, read and cleared, against the model.
        for dom in sorted({t.dom for t in tenants}):
            await bus.write(regmap.DMA_HARVEST_CTRL, dom)
            for w in range((PAGES + 31) // 32):
                await bus.read(regmap.DMA_HARVEST_BASE + 4 * w)

    # -- descriptors -------------------------------------------------------------------

    def data_addr(self, size, *, writable, align=1):
        """A guest address of ``size`` bytes inside the data pages."""
        lo = DATA_FIRST * PAGE
        hi = (UNMAPPED_PAGE if writable else PAGES) * PAGE
        if not writable:
            lo = (PAGES - RO_PAGES) * PAGE
        addr = self.rng.randrange(lo, hi - size + 1)
        addr -= addr % align
        if writable and addr < UNMAPPED_PAGE * PAGE <= addr + size:
            addr = lo
        return addr

    def random_size(self):
        r = self.rng.random()
        if r < 0.4:
            return self.rng.randint(1, 64)
        if r < 0.8:
            return self.rng.randint(65, 2048)
        return self.rng.choice([PAGE, 2 * PAGE - 8, self.rng.randint(PAGE, 2 * PAGE)])

    def completion_flags(self, t, d, rci_p=0.5):
        d.flags |= Flag.CRAV | (Flag.RCR if self.rng.random() < 0.8 else 0)
        d.completion_addr = t.record_addr()
        if self.rng.random() < rci_p:
            d.flags |= Flag.RCI
            d.int_handle = t.handle
            if self.rng.random() < 0.1:      # another tenant's or an unprogrammed entry: the IRU faults it
                d.int_handle = (t.handle + self.rng.randint(1, 8)) % self.env.params.ims_entries

    def good_descriptor(self, t):
        r = self.rng.random()
        d = Descriptor(pasid=t.pasid)
        size = self.random_size()
        if r < 0.4:
            d.opcode, d.xfer_size = Opcode.MEMMOVE, size
            d.src_addr = self.data_addr(size, writable=False) if self.rng.random() < 0.3 else \
                self.data_addr(size, writable=True)
            kind = self.rng.random()
            if kind < 0.2 and size < 3000:       # overlapping, destination above: descending
                d.src_addr = self.data_addr(size + 64, writable=True)
                d.dst_addr = d.src_addr + self.rng.randint(1, 63)
            elif kind < 0.3 and size < 3000:     # overlapping, destination below: ascending
                d.dst_addr = self.data_addr(size + 64, writable=True)
                d.src_addr = d.dst_addr + self.rng.randint(1, 63)
            else:
                d.dst_addr = self.data_addr(size, writable=True)
        elif r < 0.65:
            d.opcode, d.xfer_size = Opcode.MEMFILL, size
            d.dst_addr = self.data_addr(size, writable=True, align=PATTERN_BYTES)
            d.pattern = self.rng.getrandbits(64)
        elif r < 0.85:
            d.opcode, d.xfer_size = Opcode.COMPARE, size
            d.src_addr = self.data_addr(size, writable=False)
            d.dst_addr = d.src_addr if self.rng.random() < 0.3 else self.data_addr(size, writable=False)
        else:
            d.opcode = self.rng.choice([Opcode.NOOP, Opcode.DRAIN])
        self.completion_flags(t, d)
        return d

    def directed_descriptors(self, t):
        """One of each behaviour the random mix may miss on an unlucky seed."""
        ro = (PAGES - RO_PAGES) * PAGE
        w = DATA_FIRST * PAGE
        cases = [
            dict(opcode=Opcode.COMPARE, xfer_size=300, src_addr=ro + 5, dst_addr=ro + 5),      # equal
            dict(opcode=Opcode.COMPARE, xfer_size=3000, src_addr=ro + 1, dst_addr=ro + PAGE + 6),
            dict(opcode=Opcode.MEMMOVE, xfer_size=1000, src_addr=w + 10, dst_addr=w + 13),   # descending
            dict(opcode=Opcode.MEMMOVE, xfer_size=1000, src_addr=w + 2 * PAGE + 13,
                 dst_addr=w + 2 * PAGE + 10),                                                # overlap, ascending
            dict(opcode=Opcode.MEMMOVE, xfer_size=PAGE + 77, src_addr=ro + 3, dst_addr=w + PAGE + 4070),
            dict(opcode=Opcode.MEMFILL, xfer_size=2 * PAGE - 8, dst_addr=w + 4 * PAGE + 8, src_addr=0x0123456789ABCDEF),
            dict(opcode=Opcode.NOOP), dict(opcode=Opcode.DRAIN),
        ]
        out = []
        for c in cases:
            d = Descriptor(pasid=t.pasid, **c)
            self.completion_flags(t, d, rci_p=1.0)
            d.int_handle = t.handle
            out.append(d)
        return out

    BAD_KINDS = 8

    def bad_descriptor(self, t, kind=None, variant=None):
        """A descriptor with one defect: ``kind`` 0..7 (random if None); ``variant`` picks
        the source or the destination for kind 6."""
        d = self.good_descriptor(t)
        kind = self.rng.randrange(self.BAD_KINDS) if kind is None else kind
        variant = self.rng.random() < 0.5 if variant is None else variant
        if kind == 0:
            d.opcode = self.rng.choice([0x01, 0x06, 0x10, 0xFF])
        elif kind == 1:
            d.flags |= self.rng.choice([Flag.BOF, Flag.CRSTS, Flag.STORD, 1 << 20])
        elif kind == 2:
            d.flags = (d.flags & ~Flag.CRAV) | Flag.RCR
        elif kind == 3:
            d.opcode, d.xfer_size = Opcode.MEMFILL, self.rng.choice([0, (1 << 20) + 1])
            d.dst_addr = DATA_FIRST * PAGE
        elif kind == 4:
            d.completion_addr |= self.rng.choice([1, 8, 16])
        elif kind == 5:
            d.flags |= Flag.RCI
            d.int_handle = self.env.params.ims_entries + self.rng.randrange(16)
        elif kind == 6:      # source or destination in the pinned, unmapped page
            d.opcode, d.xfer_size = Opcode.MEMMOVE, self.rng.randint(256, 3 * PAGE // 2)
            if variant:
                d.src_addr, d.dst_addr = UNMAPPED_PAGE * PAGE - 100, DATA_FIRST * PAGE
            else:
                d.src_addr, d.dst_addr = DATA_FIRST * PAGE, UNMAPPED_PAGE * PAGE - 200
        else:                # completion record in the unmapped page
            d.flags |= Flag.CRAV | Flag.RCR
            d.completion_addr = UNMAPPED_PAGE * PAGE + 32 * self.rng.randrange(128)
        return d


def _last_register(prefix):
    """Address of the highest register whose path starts with ``prefix``, from the register map:
    the word after it is a hole however many registers the block gains."""
    return max(r.offset for path, r in regmap.REGISTERS.items() if path.startswith(prefix))


@pyuvm.test()
class WindowDecodeTest(SystemTest):
    """Every block window through the Device's one AXI4-Lite port, holes and the ENG registers."""

    async def body(self):
        bus = self.env.bus
        await bus.read(regmap.GLOBAL_ID)
        for addr in (regmap.IRQ_FAULT_STATUS, regmap.IRQ_CNT_DELIVERED, regmap.DMA_STATUS,
                     regmap.DMA_CNT_ALLOWED, regmap.CMD_ADI_STATUS, regmap.ENG_ENG_STATUS,
                     regmap.ENG_DESC_DONE, page_address(0)):
            await bus.read(addr)
        # The bus checks DMA.STATUS by response only (it is polled while busy); idle, it is the model's.
        assert await bus.read(regmap.DMA_STATUS) == self.env.sys.read(regmap.DMA_STATUS)[1]
        for addr in (regmap.IRQ_BASE + 0x40, regmap.DMA_BASE + 0x90, regmap.CMD_BASE + regmap.CMD_SIZE,
                     regmap.ENG_BASE + regmap.ENG_SIZE, _last_register("ENG.") + 4,
                     page_address(self.env.params.num_adis)):
            resp, _ = await bus.try_read(addr)
            assert resp == Resp.DECERR, hex(addr)
        for addr in (regmap.ENG_ARB_CTRL, regmap.ENG_ARB_SLICE, regmap.ENG_COST_A, regmap.ENG_COST_B,
                     regmap.ENG_ARB_SEL, regmap.ENG_ARB_WEIGHT, regmap.ENG_ARB_QUANTUM):
            await bus.write(addr, self.rng.getrandbits(32))
            await bus.read(addr)
        resp = await bus.try_write(regmap.ENG_DESC_DONE, 1)
        assert resp == Resp.SLVERR


@pyuvm.test()
class EngineRandomTest(SystemTest):
    """Random descriptor streams from several tenants, good and bad, with memory back-pressure."""

    seed_offset = 1

    async def body(self):
        env = self.env
        # Back-pressure (AW, W, AR ready) and response latency (B, R valid), a pattern per channel.
        kinds = {ch: self.rng.choice(["light", "heavy", "bursty"]) for ch in ("aw", "w", "b", "ar", "r")}
        cocotb.top._log.info(f"memory pause patterns: {kinds}")
        env.bfm.mem_pauses(kinds)
        env.bfm.irq_ready_p = 0.7
        COVERAGE.sample("mem_backpressure")
        # The tenants' ADIs on every engine in turn: each behaves as on the one engine of old.
        tenants = await self.setup_tenants(min(4, env.params.num_adis), engines=env.params.num_engines)
        await env.pf.set_arbiter(Policy.RR)
        total = 0
        for t in tenants:
            descs = self.directed_descriptors(t)
            await env.guest.post(t.adi, descs)
            total += len(descs)
        per_tenant = 20
        for batch in range(per_tenant // 5):
            for t in self.rng.sample(tenants, len(tenants)):
                descs = [self.bad_descriptor(t) if self.rng.random() < 0.25 else self.good_descriptor(t)
                         for _ in range(5)]
                await env.guest.post(t.adi, descs)
                total += len(descs)
        await self.finish(tenants, total, irqs_per_destination=True)
        adis = [a for _, a in env.bfm.dispatches]
        COVERAGE.sample("multi_adi_interleaved", any(x != y for x, y in zip(adis, adis[1:])))


@pyuvm.test()
class EngineBadInputTest(SystemTest):
    """Refused descriptors, blocked fetches and a tail beyond the ring: the ADI errors, nothing hangs."""

    seed_offset = 2

    async def body(self):
        env, pf = self.env, self.env.pf
        tenants = await self.setup_tenants(min(3, env.params.num_adis))
        t0, t1, t2 = tenants[0], tenants[1 % len(tenants)], tenants[2 % len(tenants)]
        # A descriptor carrying another PASID is refused: ADI ERROR 3, nothing executed.
        good = self.good_descriptor(t0)
        forged = self.good_descriptor(t0)
        forged.pasid = t1.pasid
        await env.guest.post(t0.adi, [good, forged])
        await env.wait_dispatched(2)
        env.scoreboard.replay()
        state, code = await pf.adi_command(t0.adi, 0)
        assert code == AdiError.DESC_PASID and state == ERROR, (state, code)
        await pf.adi_command(t0.adi, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)

        # A ring whose page is not mapped: the fetch is blocked, ADI ERROR 4.
        await pf.guest_map(t1.adi, RING_PAGE, unmap=True)
        _, code = await self.post_failing_fetch(t1, self.good_descriptor(t1))
        assert code == AdiError.FETCH_FAULT, code
        COVERAGE.sample("fetch_fault")
        for addr in (regmap.DMA_FAULT_STATUS, regmap.ENG_DESC_REFUSED):
            await env.bus.read(addr)

        # A doorbell beyond the ring.
        await env.guest.rings[t2.adi].ring_doorbell(RING_SIZE + 3)
        _, code = await pf.adi_command(t2.adi, 0)
        assert code == AdiError.TAIL_BEYOND_RING
        COVERAGE.sample("tail_beyond_ring")
        await pf.adi_command(t2.adi, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
        await self.enable(t2)

        # Every bad descriptor kind (both variants) on the tenant that still works.
        descs = [self.bad_descriptor(t2, kind, variant) for kind in range(self.BAD_KINDS)
                 for variant in (False, True)]
        await env.guest.post(t2.adi, descs)
        # Memory, the ADIs' state and the dirty logs of all three tenants
        # against the model (t0 ran one good descriptor, t1 none).
        await self.finish([t0, t1, t2], 2 + len(descs))


@pyuvm.test()
class EngineBusErrorTest(SystemTest):
    """SLVERR from host memory on a data read, a data write, a completion record and a
    descriptor fetch: the descriptor ends with ``HW_ERROR`` (0x20, ``DSA_COMP_HW_ERR1``),
    a failed fetch puts the ADI into ERROR code 4, and the device keeps working."""

    seed_offset = 6
    READ_ERR_PAGE = DATA_FIRST + 6      # reads answer SLVERR, writes succeed
    WRITE_ERR_PAGE = DATA_FIRST + 9     # writes answer SLVERR, reads succeed

    def error_descriptors(self, t):
        """``[(descriptor, expected status)]``: every engine access that can get an error."""
        ro, w = (PAGES - RO_PAGES) * PAGE, DATA_FIRST * PAGE
        r_err, w_err = self.READ_ERR_PAGE * PAGE, self.WRITE_ERR_PAGE * PAGE
        k = self.rng.randrange(8)
        cases = [
            # MEMMOVE whose source runs into the read-error page after a good piece.
            dict(opcode=Opcode.MEMMOVE, src_addr=r_err - 700 - k, dst_addr=w + 37, xfer_size=1500),
            # Descending, stored and forwarded (destination inside the source's piece).
            dict(opcode=Opcode.MEMMOVE, src_addr=r_err + 100, dst_addr=r_err + 120 + k, xfer_size=1000),
            # MEMMOVE and MEMFILL whose destinations run into the write-error page.
            dict(opcode=Opcode.MEMMOVE, src_addr=ro + 3, dst_addr=w_err - 300 - k, xfer_size=1000),
            dict(opcode=Opcode.MEMFILL, dst_addr=w_err - 512, xfer_size=2048, src_addr=self.rng.getrandbits(64)),
            # COMPARE with either source in the read-error page.
            dict(opcode=Opcode.COMPARE, src_addr=r_err + 5, dst_addr=ro + 9, xfer_size=300),
            dict(opcode=Opcode.COMPARE, src_addr=ro + 1, dst_addr=r_err + 16 + k, xfer_size=400),
        ]
        out = []
        for c in cases:
            d = Descriptor(pasid=t.pasid, **c)
            self.completion_flags(t, d)
            out.append((d, Status.HW_ERROR))
        # RCR clear: the record is still written, as for any status but success.
        d = Descriptor(pasid=t.pasid, opcode=Opcode.MEMMOVE, src_addr=ro + 64, dst_addr=w_err + 8,
                       xfer_size=64, flags=Flag.CRAV, completion_addr=t.record_addr())
        out.append((d, Status.HW_ERROR))
        # Good operations whose completion record lands in the write-error page.
        for d in (Descriptor(pasid=t.pasid, opcode=Opcode.MEMMOVE, src_addr=ro + 200, dst_addr=w + PAGE,
                             xfer_size=777),
                  Descriptor(pasid=t.pasid, opcode=Opcode.NOOP)):
            d.flags = Flag.CRAV | Flag.RCR | Flag.RCI
            d.completion_addr, d.int_handle = w_err + 32 * self.rng.randrange(PAGE // 32), t.handle
            out.append((d, Status.HW_ERROR))
        return out

    def good_move(self, t):
        ro, w = (PAGES - RO_PAGES) * PAGE, DATA_FIRST * PAGE
        d = Descriptor(pasid=t.pasid, opcode=Opcode.MEMMOVE, src_addr=ro + self.rng.randrange(64),
                       dst_addr=w + 2 * PAGE + self.rng.randrange(64), xfer_size=self.rng.randint(100, PAGE),
                       flags=Flag.CRAV | Flag.RCR | Flag.RCI, int_handle=t.handle)
        d.completion_addr = t.record_addr()
        return d

    def check_statuses(self, expected):
        got = [res.outcome.status for _, res in self.env.scoreboard.results[-len(expected):]]
        assert got == expected, f"statuses {[s.name for s in got]}, expected {[s.name for s in expected]}"

    async def body(self):
        env, bus, pf = self.env, self.env.bus, self.env.pf
        kinds = {ch: self.rng.choice(["none", "light", "bursty"]) for ch in ("aw", "w", "b", "ar", "r")}
        cocotb.top._log.info(f"memory pause patterns: {kinds}")
        env.bfm.mem_pauses(kinds)
        tenants = await self.setup_tenants(min(2, env.params.num_adis))
        t0, t1 = tenants[0], tenants[1 % len(tenants)]
        errors = env.sys.engine.bus_errors
        errors.add(env.sys.host_of(t0.dom, self.READ_ERR_PAGE * PAGE), PAGE, read=True, write=False)
        errors.add(env.sys.host_of(t0.dom, self.WRITE_ERR_PAGE * PAGE), PAGE, read=False, write=True)

        # Data reads, data writes and records that get errors, then a good descriptor.
        cases = self.error_descriptors(t0) + [(self.good_move(t0), Status.SUCCESS)]
        await env.guest.post(t0.adi, [d for d, _ in cases])
        await env.wait_dispatched(len(cases))
        env.scoreboard.replay()
        self.check_statuses([st for _, st in cases])
        await bus.read(regmap.ENG_ENG_STATUS)          # LAST_STATUS: success again
        await bus.read(regmap.ENG_DESC_FAILED)
        dispatched = len(cases)

        # A ring read answered with SLVERR: the fetch fails, ADI ERROR 4, nothing dispatched.
        if t1 is not t0:
            ring = env.sys.host_of(t1.dom, RING_PAGE * PAGE)
            errors.add(ring, PAGE, read=True, write=False)
            state, code = await self.post_failing_fetch(t1, self.good_move(t1))
            assert state == ERROR and code == AdiError.FETCH_FAULT, (state, code)
            COVERAGE.sample("bus_error_fetch")
            await bus.read(regmap.ENG_DESC_REFUSED)
            # Memory answers again: the ADI is recovered and runs a descriptor.
            errors.remove(ring, PAGE, read=True, write=False)
            await pf.adi_command(t1.adi, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
            await self.enable(t1)
            await env.guest.post(t1.adi, [self.good_move(t1)])
            dispatched += 1
            await env.wait_dispatched(dispatched)
            env.scoreboard.replay()
            self.check_statuses([Status.SUCCESS])

        # Both tenants keep working with the error pages still in place.
        more = [(t, self.good_move(t)) for t in tenants for _ in range(2)]
        for t, d in more:
            await env.guest.post(t.adi, [d])
        dispatched += len(more)
        await self.finish(tenants, dispatched)
        self.check_statuses([Status.SUCCESS] * len(more))


class QosTestBase(SystemTest):
    """Saturated tenants under one arbiter policy; dispatch shares and slice overruns measured.

    Every tenant's ring is kept at least ``LOW`` descriptors deep for
    ``duration`` cycles (the guests top their rings up as the hardware's HEAD
    advances), so every ADI always has work and the shares show the policy
    alone. The scoreboard replays completed dispatches as it goes, so ring
    slots can be reused.
    """

    policy = Policy.QOS
    slice_cycles = 3000
    cost_a, cost_b = 40, 32                 # 40 cycles + 1/8 cycle per byte
    quanta = [800, 400, 200, 200]
    weights = [4, 2, 1, 1]
    duration = 40_000
    LOW, BATCH = 24, 16

    def fill_descriptor(self, t):
        d = Descriptor(pasid=t.pasid, opcode=Opcode.MEMFILL)
        d.xfer_size = self.rng.choice([64, 128, 256, 512])
        d.dst_addr = self.data_addr(d.xfer_size, writable=True, align=PATTERN_BYTES)
        d.pattern = self.rng.getrandbits(64)
        if self.rng.random() < 0.3:
            self.completion_flags(t, d, rci_p=0.3)
        return d

    async def body(self):
        env = self.env
        n = min(4, env.params.num_adis)
        tenants = await self.setup_tenants(n)
        await env.pf.set_arbiter(self.policy, self.slice_cycles, self.cost_a, self.cost_b,
                                  weights=self.weights[:n], quanta=self.quanta[:n])
        start = env.bfm.cycle
        stop = start + self.duration
        total = 0
        while env.bfm.cycle < stop:
            env.scoreboard.replay(keep_last=True)
            for t in tenants:
                head = await env.bus.raw_read(page_address(t.adi, PAGE_HEAD))
                if (env.guest.rings[t.adi].tail - head) % RING_SIZE < self.LOW:
                    await env.guest.post(t.adi, [self.fill_descriptor(t) for _ in range(self.BATCH)])
                    total += self.BATCH
            await wait_cycles(env.bfm.dut.clk, 100)
        await self.finish(tenants, total)
        self.measure(n, start, stop)

    def measure(self, n, start, stop):
        env = self.env
        costs = [(cycle, res.adi, env.cost_of(res.descriptor.pack()))
                 for cycle, res in env.scoreboard.results]
        slices = [c for c in env.bfm.slice_ends if start <= c <= stop]
        assert len(slices) >= 3, f"only {len(slices)} slice ends in the saturated window"
        spent = collections.defaultdict(lambda: collections.defaultdict(int))
        counts = collections.defaultdict(int)
        for cycle, adi, cost in costs:
            if slices[0] <= cycle < slices[-1]:
                # Slice k is [end_k, end_k+1): a grant in the refill cycle is charged after it.
                k = max(i for i, b in enumerate(slices) if b <= cycle)
                spent[k][adi] += cost
                counts[adi] += 1
        max_cost = max(c for _, _, c in costs)
        quanta = self.quanta[:n]
        total = sum(sum(v.values()) for v in spent.values())
        share = {a: sum(v.get(a, 0) for v in spent.values()) / total for a in range(n)}
        total_n = sum(counts.values())
        count_share = {a: counts[a] / total_n for a in range(n)}
        overrun = {a: max(v.get(a, 0) - quanta[a] for v in spent.values()) for a in range(n)}
        report = {
            "policy": Policy(self.policy).name, "slices": len(slices) - 1, "slice_cycles": self.slice_cycles,
            "descriptors": total_n, "quanta": quanta, "weights": self.weights[:n],
            "max_descriptor_cost": max_cost, "cost_share": share, "dispatch_share": count_share,
            "largest_overrun": overrun,
        }
        for a in range(n):
            assert counts[a] > 0, f"ADI {a} starved"
        if self.policy == Policy.QOS:
            target = {a: quanta[a] / sum(quanta) for a in range(n)}
            report["share_error"] = max(abs(share[a] - target[a]) for a in range(n))
            # Design bound: an ADI overruns its quantum by less than one descriptor.
            for a in range(n):
                assert overrun[a] < max_cost, f"ADI {a} overran its slice by {overrun[a]} >= {max_cost}"
        else:
            target = {a: self.weights[a] / sum(self.weights[:n]) for a in range(n)}
            report["share_error"] = max(abs(count_share[a] - target[a]) for a in range(n))
            # Design bound: under saturation each ADI is within one round of its weighted share.
            for a in range(n):
                assert abs(counts[a] - target[a] * total_n) <= sum(self.weights[:n]), (a, counts, target)
        report["target_share"] = target
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"qos_system_{Policy(self.policy).name.lower()}.json").write_text(json.dumps(report, indent=1))
        cocotb.top._log.info(f"QoS {Policy(self.policy).name}: {json.dumps(report)}")


@pyuvm.test()
class QosSliceTest(QosTestBase):
    """QoS time slices: every saturated tenant gets its quantum per slice, overrun below one descriptor."""
    seed_offset = 3


@pyuvm.test()
class WeightedShareTest(QosTestBase):
    """Weighted round robin: dispatch shares follow the weights."""
    seed_offset = 4
    policy = Policy.WRR


@pyuvm.test()
class MultiEngineTest(SystemTest):
    """Several engines: two VMs' producer and consumer rings joined by SIGNAL and WAIT, a third
    VM flooding every engine, a gang slice, WAIT timeouts and faults, under AXI back-pressure."""

    seed_offset = 7
    #: Guest pages of a VM's domain: two rings, two record pages, the semaphores, then the
    #: producer's buffers P and the consumer's buffers C (UNMAPPED_PAGE and the RO pages follow).
    SEM_PAGE, P_FIRST, C_FIRST, BUFFERS = 4, 5, 12, 6
    #: Longest gang slice, in cycles: VM 0's 24 descriptors take far fewer even
    #: under the heaviest back-pressure pattern.
    GANG_SLICE_LIMIT = 200_000

    async def setup_vms(self, count):
        """``count`` VMs of two rings each (producer, consumer), on different engines."""
        env, pf, p = self.env, self.env.pf, self.env.params
        vms = []
        for v in range(count):
            dom, pasid = v, 0x200 + 0x17 * v
            await pf.set_domain(dom, env.sys.host_of(dom, 0), PAGES)
            await range_op(pf, RangeOp.PIN, dom, 0, PAGES)
            rings = []
            for r in range(2):
                adi = 2 * v + r
                t = Tenant(adi, pasid, dom, handle=(5 * adi + 2) % p.ims_entries,
                           engine=(v + r) % p.num_engines, ring_page=2 * r, record_page=2 * r + 1)
                await pf.bind_adi(adi, pasid, dom)
                for page in range(PAGES):
                    if page != UNMAPPED_PAGE:
                        await pf.guest_map(adi, page)
                await pf.set_ims(t.handle, pasid, dest=adi + 1, vector=0x40 + adi)
                await self.enable(t)
                rings.append(t)
            await env.bus.mem_write(env.sys.host_of(dom, self.SEM_PAGE * PAGE), bytes(PAGE))
            for page in range(self.P_FIRST, PAGES):
                await env.bus.mem_write(env.sys.host_of(dom, page * PAGE), self.rng.randbytes(PAGE))
            vms.append(rings)
        return vms

    def semaphore(self, t, opcode, slot, value, mask=(1 << 64) - 1, addr=None):
        d = Descriptor(pasid=t.pasid, opcode=opcode, sem_value=value, sem_mask=mask)
        a = self.SEM_PAGE * PAGE + 8 * slot if addr is None else addr
        if opcode == Opcode.WAIT:
            d.src_addr = a
        else:
            d.dst_addr = a
        self.completion_flags(t, d)
        return d

    def pair(self, producer, consumer, j):
        """Producer: fill P_j, SIGNAL j. Consumer: WAIT j (sometimes on the low byte only), copy P_j to C_j."""
        size = self.rng.randrange(8, PAGE + 1, 8)
        p_j, c_j = (self.P_FIRST + j) * PAGE, (self.C_FIRST + j) * PAGE + self.rng.randrange(0, 64)
        fill = Descriptor(pasid=producer.pasid, opcode=Opcode.MEMFILL, xfer_size=size, dst_addr=p_j,
                          src_addr=self.rng.getrandbits(64))
        self.completion_flags(producer, fill)
        low_byte = self.rng.random() < 0.5
        value = (j + 1) | (self.rng.getrandbits(56) << 8 if low_byte else 0)
        signal = self.semaphore(producer, Opcode.SIGNAL, j, value)
        wait = self.semaphore(consumer, Opcode.WAIT, j, j + 1, mask=0xFF if low_byte else (1 << 64) - 1)
        move = Descriptor(pasid=consumer.pasid, opcode=Opcode.MEMMOVE, xfer_size=size, src_addr=p_j, dst_addr=c_j)
        self.completion_flags(consumer, move)
        return [fill, signal], [wait, move]

    def flood(self, t, count):
        out = []
        for _ in range(count):
            d = Descriptor(pasid=t.pasid, opcode=Opcode.MEMMOVE, xfer_size=PAGE,
                           src_addr=(self.P_FIRST + self.rng.randrange(6)) * PAGE,
                           dst_addr=(self.C_FIRST + self.rng.randrange(6)) * PAGE)
            self.completion_flags(t, d, rci_p=0.2)
            out.append(d)
        return out

    async def body(self):
        env, pf, bus = self.env, self.env.pf, self.env.bus
        kinds = {ch: self.rng.choice(["light", "heavy", "bursty"]) for ch in ("aw", "w", "b", "ar", "r")}
        cocotb.top._log.info(f"memory pause patterns: {kinds}")
        env.bfm.mem_pauses(kinds)
        env.bfm.irq_ready_p = 0.7
        await pf.set_arbiter(Policy.RR)
        await pf.set_wait(recheck_cycles=self.rng.choice([0, 15, 63]), timeout_cycles=1_000_000)
        vms = await self.setup_vms(3)
        tenants = [t for vm in vms for t in vm]
        total = 0
        # Consumers first: their WAITs find nothing and retry while the engines idle.
        produced = {}
        for v, (prod, cons) in enumerate(vms[:2]):
            p_descs, c_descs = [], []
            for j in range(self.BUFFERS):
                p2, c2 = self.pair(prod, cons, j)
                p_descs += p2
                c_descs += c2
            produced[v] = p_descs
            await env.guest.post(cons.adi, c_descs)
            total += len(c_descs)
        await wait_cycles(env.bfm.dut.clk, 1500)
        waiting_idle = await bus.raw_read(regmap.ENG_IDLE_WAITING)
        COVERAGE.sample("idle_waiting", waiting_idle > 0)
        for v, (prod, _) in enumerate(vms[:2]):
            await env.guest.post(prod.adi, produced[v])
            total += len(produced[v])
        for t in vms[2]:
            descs = self.flood(t, 8)
            await env.guest.post(t.adi, descs)
            total += len(descs)
        # A gang slice: VM 0's rings alone get every engine, then per-ring scheduling again.
        await wait_cycles(env.bfm.dut.clk, 300)
        gang = {t.adi for t in vms[0]}
        await pf.set_eligible(gang)
        start = env.bfm.cycle
        # Until VM 0 runs out of work: the engines then idle with the other VMs'
        # descriptors ready but ineligible (ENG.IDLE_INELIGIBLE). Under heavy AXI
        # back-pressure VM 0 takes longer, so the slice lasts until the counter
        # moves (at least 8000 cycles, at most GANG_SLICE_LIMIT).
        await wait_cycles(env.bfm.dut.clk, 8000)
        while (await bus.raw_read(regmap.ENG_IDLE_INELIGIBLE) == 0
               and env.bfm.cycle - start < self.GANG_SLICE_LIMIT):
            await wait_cycles(env.bfm.dut.clk, 1000)
        end = env.bfm.cycle
        await pf.set_eligible(range(env.params.num_adis))
        inside = [(c, a) for c, a, _ in env.bfm.handovers if start < c <= end]
        cocotb.top._log.info(f"gang slice {start}..{end}: {len(inside)} of {len(env.bfm.handovers)} hand-overs")
        assert all(a in gang for _, a in inside), f"dispatched outside the gang mask: {inside}"
        COVERAGE.sample("gang_slice", any(a in gang for _, a in inside))
        COVERAGE.sample("idle_ineligible", await bus.raw_read(regmap.ENG_IDLE_INELIGIBLE) > 0)
        await env.wait_dispatched(total)
        # Phase 2: a WAIT nobody signals times out; semaphores in an unmapped page fault;
        # a misaligned one is refused by its record.
        await pf.set_wait(timeout_cycles=2000)
        cons = vms[1][1]
        bad = [self.semaphore(cons, Opcode.WAIT, 40, 0xDEAD),
               self.semaphore(cons, Opcode.WAIT, 0, 1, addr=UNMAPPED_PAGE * PAGE + 16),
               self.semaphore(cons, Opcode.SIGNAL, 0, 7, addr=UNMAPPED_PAGE * PAGE + 24),
               self.semaphore(cons, Opcode.WAIT, 41, 0, addr=self.SEM_PAGE * PAGE + 8 * 41 + 4)]
        await env.guest.post(cons.adi, bad)
        total += len(bad)
        retries = await bus.raw_read(regmap.ENG_WAIT_RETRIES)
        COVERAGE.sample("wait_retried", retries > 0)
        await self.finish(tenants, total, irqs_per_destination=True)
        # Every descriptor ran on its ADI's engine, and the engines ran at the same time.
        engine_of = {t.adi: t.engine for t in tenants}
        wrong = [(c, a, e) for c, a, e in env.bfm.handovers if engine_of[a] != e]
        assert not wrong, f"handed to another engine than the ADI's: {wrong[:5]}"
        by_engine = collections.defaultdict(list)
        for c, _, e in env.bfm.handovers:
            by_engine[e].append(c)
        if env.params.num_engines > 1:
            COVERAGE.sample("engines_overlap", any(abs(c0 - c1) < 100 for c0 in by_engine[0] for c1 in by_engine[1]))
        statuses = collections.Counter(res.outcome.status.name for _, res in env.scoreboard.results
                                       if res.outcome is not None
                                       and int(res.descriptor.opcode) in (Opcode.WAIT.value, Opcode.SIGNAL.value))
        cocotb.top._log.info(f"semaphore statuses: {dict(statuses)}; WAIT retries {retries}")
        assert statuses["WAIT_TIMEOUT"] == 1 and statuses["PAGE_FAULT"] == 2 and statuses["ADDR_ALIGN"] == 1, statuses


@pyuvm.test()
class MemmoveThroughputTest(SystemTest):
    """MEMMOVE of 4 KiB: bytes per cycle against the 8-byte AXI data width (results to JSON).

    Measured from the record's cycle count (grant to completion record, so
    descriptor load, translations and the last write response are included),
    for an aligned copy, a copy whose source and destination lanes differ, and
    a back-to-back stream of 16 copies from dispatch of the first to the
    engine going idle (prefetch and arbitration included). Memory answers
    without pauses here; correctness is checked by the scoreboard as always.
    """

    seed_offset = 5

    def memmove(self, t, src, dst, size=PAGE):
        d = Descriptor(pasid=t.pasid, opcode=Opcode.MEMMOVE, xfer_size=size, src_addr=src, dst_addr=dst)
        d.flags = Flag.CRAV | Flag.RCR
        d.completion_addr = t.record_addr()
        return d

    async def body(self):
        env = self.env
        tenants = await self.setup_tenants(1)
        t = tenants[0]
        width = 8
        cases = {"aligned": (DATA_FIRST * PAGE, (DATA_FIRST + 2) * PAGE),
                 "unaligned": (DATA_FIRST * PAGE + 3, (DATA_FIRST + 4) * PAGE + 5)}
        report = {"title": "Engine MEMMOVE 4 KiB (64-bit AXI4; Verilator cycles)", "rows": []}
        done = 0
        for name, (src, dst) in cases.items():
            await env.guest.post(t.adi, [self.memmove(t, src, dst)])
            done += 1
            await env.wait_dispatched(done)
            env.scoreboard.replay()
            cycles = env.scoreboard.results[-1][1].outcome.record.cycles
            report["rows"].append({"case": name, "bytes": PAGE, "cycles": cycles,
                                   "bytes_per_cycle": round(PAGE / cycles, 3),
                                   "of_data_width": round(PAGE / cycles / width, 3)})
        n = 16
        first = len(env.bfm.dispatches)
        await env.guest.post(t.adi, [self.memmove(t, (DATA_FIRST + (k % 4)) * PAGE, (DATA_FIRST + 6 + (k % 8)) * PAGE)
                                     for k in range(n)])
        await env.wait_dispatched(done + n)
        start = env.bfm.dispatches[first][0]
        records = []
        env.scoreboard.replay()
        records = [r.outcome.record.cycles for _, r in env.scoreboard.results[-n:]]
        last_dispatch = env.bfm.dispatches[-1][0]
        end = last_dispatch + records[-1]
        report["rows"].append({"case": f"stream of {n}", "bytes": n * PAGE, "cycles": end - start,
                               "bytes_per_cycle": round(n * PAGE / (end - start), 3),
                               "of_data_width": round(n * PAGE / (end - start) / width, 3)})
        report["notes"] = ("cycles: grant to completion record (single copies), or first dispatch to the "
                           "last record (stream). Target: at least 0.9 of the data width.")
        await self.finish(tenants, done + n)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "engine_memmove.json").write_text(json.dumps(report, indent=1))
        cocotb.top._log.info(json.dumps(report))


@pyuvm.test()
class ZzzCoverageTest(uvm_test):
    """Runs last: every coverage bin was hit."""

    async def run_phase(self):
        self.raise_objection()
        cocotb.top._log.info("\n" + COVERAGE.report())
        COVERAGE.save(RESULTS / "coverage_system.json")
        COVERAGE.check()
        self.drop_objection()
