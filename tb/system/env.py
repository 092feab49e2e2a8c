"""pyuvm environment of the integrated Device (top ``siov_device``).

Structure (one bus-functional model shared by the agents, as in the block
environments):

* :class:`SystemBfm`: the clock, cocotbext-axi's AxiLiteMaster on ``csr`` and
  host memory on ``mem`` (the simulator's C++ slave, or cocotbext-axi's AxiRam;
  either with optional back-pressure and random response latency on all five
  channels, and host ranges that answer SLVERR), the RtlBus over them, and two
  monitors: the dispatch tap (``tap_consume_valid``/``tap_consume_adi``, with
  the cycle of each dispatch and of each slice end ``tap_slice_end``) and
  ``irq_out`` (with random back-pressure);
* :class:`CsrAgent`: the hypervisor's configuration sequences (domains, ADI
  table, pins, guest maps, IMS entries, ADI rings, arbiter) are
  :class:`~siov.sw.hv.pf.PfDriver`'s, run over
  :class:`~siov.tb.host.checked.CheckedBus` on the Device's
  :class:`~siov.tb.host.bus.RtlBus`, so every register access is checked
  against the Device-level model (:class:`SystemModel`, a
  :class:`~siov.sw.model.system.DeviceModel`);
* :class:`GuestAgent`: each ADI's guest driver, a
  :class:`~siov.sw.guest.ring.Ring` that writes descriptors into host memory
  (the AxiRam and, through the CheckedBus, the model's mirror alike) and
  rings the doorbell;
* :class:`Scoreboard`: replays the dispatches in hardware order through
  :class:`~siov.sw.model.device.EngineModel` and checks the completion records
  and final memory (every page of every domain window), the interrupts on
  ``irq_out``, the counters and the dirty log;
* :class:`QosMonitor`: from the dispatch times, slice ends and estimated
  costs, the largest overrun of a slice per ADI and each ADI's share.
"""

import collections
import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam
from pyuvm import uvm_component, uvm_env

from siov.rtl import regmap
from siov.rtl.cmd.cost import COST_WIDTH
from siov.rtl.cmd.dsa import COMPLETION_BYTES, CR_ALIGN, Flag
from siov.rtl.dma.defs import PAGE_SHIFT
from siov.rtl.irq.remapper import IrqLayout
from siov.rtl.params import DeviceParams
from siov.sw.guest.ring import Ring
from siov.sw.hv.guest_memory import DOMAIN_SPAN, HOST_BASE, window_base
from siov.sw.hv.pf import PfDriver
from siov.sw.model.adi import PAGE_HEAD, page_address
from siov.sw.model.csr import CsrModel
from siov.sw.model.device import EngineModel
from siov.sw.model.dsa import CompletionRecord, Descriptor
from siov.sw.model.engine import estimate_cost
from siov.sw.model.system import DeviceModel
from siov.tb.axi import apply_axi_ram_pauses
from siov.tb.coverage import Coverage
from siov.tb.host.bus import RtlBus, default_memory, wait_cycles
from siov.tb.host.shared import (LOG_DISPATCH, LOG_HANDOVER, LOG_IRQ, LOG_SLICE_END, SharedHost, SharedMmio,
                                  TapLog, share_bus_errors)
from siov.tb.host.checked import POLLED, CheckedBus
from siov.tb.layouts import unpack
from siov.tb.reset import reset_dut

__all__ = ["answer_bus_errors", "SystemBfm", "CsrAgent", "GuestAgent", "Scoreboard", "QosMonitor", "SystemEnv",
           "COVERAGE", "PAGE", "HOST_BASE", "DOMAIN_SPAN"]

PERIOD_NS = 10
PAGE = 1 << PAGE_SHIFT
RAM_SIZE = 1 << 28

COVERAGE = Coverage("system", [
    "op_noop", "op_drain", "op_memmove", "op_memfill", "op_compare",
    "memmove_descending", "memmove_store_forward", "memmove_unaligned", "multi_page",
    "compare_equal", "compare_differ",
    "status_success", "status_page_fault", "status_bad_opcode", "status_invalid_flags",
    "status_xfer_size", "status_invalid_int_handle", "status_addr_align",
    "fault_src", "fault_dst", "fault_record", "record_written", "record_skipped",
    "irq_delivered", "irq_faulted", "desc_pasid_refused", "fetch_fault", "tail_beyond_ring",
    "multi_adi_interleaved", "mem_backpressure",
    "status_hw_error", "bus_error_src", "bus_error_dst", "bus_error_compare", "bus_error_record",
    "bus_error_fetch",
    "op_wait", "op_signal", "status_wait_timeout", "wait_fault", "signal_fault", "wait_retried",
    "engines_overlap", "idle_ineligible", "idle_waiting", "gang_slice",
])


class BusErrorResponse(Exception):
    """Raised by the host memory's beat handlers for an access in an error range."""


def answer_bus_errors(ram, errors):
    """Make cocotbext-axi ``AxiRam`` ``ram`` answer SLVERR where ``errors`` says so.

    ``errors`` is the model's :class:`~siov.sw.model.engine.BusErrors`, so the
    scoreboard predicts exactly these responses. cocotbext-axi's slaves call
    ``_read(word address, byte lanes)`` once per R beat and ``_write(address,
    bytes)`` once per run of strobed bytes of a W beat, and turn an exception
    from either into SLVERR (a read beat then carries zeros, the write run is
    not stored; BRESP covers the whole burst). Overriding those two methods on
    the RAM's interfaces gives beat-granular errors without touching the
    channel handling, back-pressure included. Backdoor ``ram.read``/``write``
    (the test's own set-up and checks) are unaffected.
    """
    read_if, write_if = ram.read_if, ram.write_if

    async def read_beat(address, length):
        if errors.read_fails(address, length):
            raise BusErrorResponse(f"read {address:#x}")
        return read_if.read(address % read_if.size, length)

    async def write_run(address, data):
        if errors.write_fails(address, len(data)):
            raise BusErrorResponse(f"write {address:#x}")
        write_if.write(address % write_if.size, data)

    read_if._read = read_beat
    write_if._write = write_run


class SystemBfm:
    """Clock, bus masters, host memory and the monitors of one Device.

    The monitor here, not :class:`~siov.tb.host.bus.RtlBus`'s, watches
    ``irq_out``: it drives ``ready`` with random back-pressure, where
    RtlBus's is always ready.

    By default the host side runs in the simulator's C++
    (:mod:`siov.tb.host.shared`): the clock, the AXI4-Lite master, host
    memory with its pause patterns and error ranges (the model's own table,
    written through), the random ``irq_out.ready`` and the log of taps and
    interrupts, which
    :attr:`dispatches`, :attr:`handovers`, :attr:`slice_ends` and :attr:`irqs`
    read when asked. Python then runs only for MMIO and the test's own
    waits. With ``SIOV_RTL_MEMORY=axiram`` the same runs in Python:
    cocotbext-axi's AxiLiteMaster and AxiRam with :func:`answer_bus_errors`,
    and a monitor coroutine every cycle.
    """

    def __init__(self, dut, rng, bus_errors):
        self.dut = dut
        self.rng = rng
        self.shared = default_memory() == "shared"
        if self.shared:
            self.ram = host = SharedHost.get()
            host.clear()                    # a new test's memory, as a new AxiRam's
            host.set_pauses({}, rng)
            share_bus_errors(bus_errors, host)
            host.serve_memory()
            host.start_clock(dut.clk, PERIOD_NS)
            host.log_taps(1.0, rng)
            self._logs = {
                "dispatches": TapLog(host, LOG_DISPATCH, lambda c, v: (c, v)),
                "handovers": TapLog(host, LOG_HANDOVER, lambda c, v: (c, v & 0xFF, v >> 8)),
                "slice_ends": TapLog(host, LOG_SLICE_END, lambda c, v: c),
                "irqs": TapLog(host, LOG_IRQ, lambda c, v: unpack(IrqLayout, v)),
            }
        else:
            Clock(dut.clk, PERIOD_NS, unit="ns").start()
            self.ram = AxiRam(AxiBus.from_prefix(dut, "mem", bus_separator="__"), dut.clk, dut.rst,
                              size=RAM_SIZE)
            answer_bus_errors(self.ram, bus_errors)
            # The RAM warns on every SLVERR beat it answers; those are intended here.
            for log in (self.ram.write_if.log, self.ram.read_if.log):
                log.setLevel(logging.ERROR)
            self._cycle = 0
            self._logs = {"dispatches": [], "handovers": [], "slice_ends": [], "irqs": []}
        if self.shared:
            self.axil = SharedMmio(self.ram, dut)
        else:
            self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"), dut.clk, dut.rst)
        self.rtl = RtlBus(dut, ram=self.ram, axil=self.axil, start_clock=False)
        self._irq_ready_p = 1.0

    def _log(self, name):
        log = self._logs[name]
        return log.items() if self.shared else log

    @property
    def dispatches(self):
        """``[(cycle, adi)]``: consumes (a WAIT's when it is decided)."""
        return self._log("dispatches")

    @property
    def handovers(self):
        """``[(cycle, adi, engine)]``: descriptors handed to an engine."""
        return self._log("handovers")

    @property
    def slice_ends(self):
        """``[cycle]`` of the arbiters' slice ends."""
        return self._log("slice_ends")

    @property
    def irqs(self):
        """``irq_out`` beats taken (dicts of :class:`~siov.rtl.irq.remapper.IrqLayout`)."""
        return self._log("irqs")

    @property
    def cycle(self):
        """The monitors' clock: the cycle of the latest sample."""
        return self.ram.cycle if self.shared else self._cycle

    @property
    def irq_ready_p(self):
        """The probability that ``irq_out.ready`` is high in a cycle."""
        return self._irq_ready_p

    @irq_ready_p.setter
    def irq_ready_p(self, p):
        self._irq_ready_p = p
        if self.shared:
            self.ram.set_irq_ready(p, self.rng)

    def mem_pauses(self, kinds):
        if self.shared:
            self.ram.set_pauses(kinds, self.rng)
        else:
            apply_axi_ram_pauses(self.ram, kinds, self.rng)

    async def reset(self):
        await reset_dut(self.dut, {"irq_out__ready": 1})
        if not self.shared:
            cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Once per cycle, between edges: drive ``irq_out.ready`` for the coming
        rising edge, then sample what that edge will take."""
        d = self.dut
        while True:
            await FallingEdge(d.clk)
            d.irq_out__ready.value = int(self.rng.random() < self.irq_ready_p)
            await ReadOnly()
            self._cycle += 1
            if int(d.tap_consume_valid.value):
                self.dispatches.append((self._cycle, int(d.tap_consume_adi.value)))
            if int(d.tap_dispatch_valid.value):
                self.handovers.append((self._cycle, int(d.tap_dispatch_adi.value),
                                       int(d.tap_dispatch_engine.value)))
            if int(d.tap_slice_end.value):
                self.slice_ends.append(self._cycle)
            if int(d.irq_out__valid.value) and int(d.irq_out__ready.value):
                self.irqs.append(unpack(IrqLayout, int(d.irq_out__payload.value)))


class CsrAgent(uvm_component):
    """The hypervisor: :class:`~siov.sw.hv.pf.PfDriver` over the Device, every access checked.

    ``bus`` is a :class:`~siov.tb.host.checked.CheckedBus` over the Device's
    :class:`~siov.tb.host.bus.RtlBus` with the Device-level model behind it;
    ``pf`` runs the privileged sequences on it.
    """

    #: Registers whose value depends on timing: only the response is checked.
    VOLATILE = frozenset(CsrModel.volatile | EngineModel.volatile | POLLED)

    def build_phase(self):
        self.bus = self.pf = None

    def attach(self, rtl, model):
        # The ring's consumer index moves with the hardware, the model's with the replay.
        heads = {page_address(a, PAGE_HEAD) for a in range(model.params.num_adis)}
        self.bus = CheckedBus(rtl, model, self.VOLATILE | heads)
        self.pf = PfDriver.of(self.bus)


class GuestAgent(uvm_component):
    """Each tenant's guest driver: a :class:`~siov.sw.guest.ring.Ring` per ADI (memory first, then the doorbell)."""

    def build_phase(self):
        self.bus = self.sys = None
        self.rings = {}

    def attach(self, bus, sysmodel):
        self.bus, self.sys = bus, sysmodel

    def open(self, adi, guest_addr, size, dom):
        """A fresh ring for ADI ``adi``, just enabled (its pointers are 0)."""
        self.rings[adi] = Ring(self.bus, adi, guest_addr, self.sys.host_of(dom, guest_addr), size)

    async def post(self, adi, descriptors):
        """Write ``descriptors`` at ADI ``adi``'s tail and ring its doorbell once; the
        scoreboard expects them in this order."""
        raws = [d.pack() if isinstance(d, Descriptor) else bytes(d) for d in descriptors]
        await self.rings[adi].post(raws)
        self.sys.posted[adi].extend(raws)


class SystemModel(DeviceModel):
    """The Device-level model and the test's view of guest memory and posted descriptors."""

    def __init__(self, params):
        super().__init__(params)
        self.posted = collections.defaultdict(collections.deque)

    @staticmethod
    def host_of(dom, guest_addr):
        return window_base(dom) + guest_addr


class Scoreboard(uvm_component):
    """Replays the hardware's dispatch order through the model and compares everything."""

    def build_phase(self):
        self.sys = self.bfm = None
        self.replayed = 0
        self._last_consume = {}
        self.expected_irqs = []
        self.results = []
        self.start_offsets = set()      # record start_cycle - the monitors' cycle of its hand-over

    def attach(self, bfm, sysmodel):
        self.bfm, self.sys = bfm, sysmodel

    def _rtl_timing(self, adi, raw):
        """``(cycles, start_cycle)`` the hardware stored in the record of ``raw`` ((0, 0) if it
        wrote none there): timing, which the model takes from the hardware. The record's engine
        is not taken: the model writes its own (the ADI's binding), and memory compares it."""
        desc = Descriptor.unpack(raw)
        a = self.sys.adi.adis[adi]
        if not desc.flags & Flag.CRAV or desc.completion_addr % CR_ALIGN:
            return 0, 0
        if desc.completion_addr >= DOMAIN_SPAN:
            return 0, 0
        host = self.sys.host_of(a.domain, desc.completion_addr)
        rec = CompletionRecord.unpack(self.bfm.ram.read(host, COMPLETION_BYTES))
        return rec.cycles, rec.start_cycle

    def _check_start(self, adi, cycle, start_cycle):
        """A record's start_cycle is the cycle counter at its descriptor's (last) hand-over: it is
        the same number of cycles from the monitors' cycle of that hand-over for every record."""
        handed = [c for c, a, _ in self.bfm.handovers if a == adi and c <= cycle]
        assert handed, f"ADI {adi}: a record with no hand-over before its consume at {cycle}"
        self.start_offsets.add((start_cycle - handed[-1]) % (1 << 32))
        assert len(self.start_offsets) == 1, (
            f"ADI {adi}: record start_cycle {start_cycle} is not its hand-over's cycle counter "
            f"(offsets from the hand-over taps: {sorted(self.start_offsets)})")

    def _checks_since_last_consume(self, adi, cycle):
        """Hand-overs of ``adi``'s head descriptor to its engine since its previous consume
        (a descriptor other than a WAIT is handed over the cycle before its consume)."""
        prev = self._last_consume.get(adi, -1)
        self._last_consume[adi] = cycle
        return sum(1 for c, a, _ in self.bfm.handovers if a == adi and prev < c <= cycle)

    def replay(self, keep_last=False):
        """Run the model over every dispatch not yet replayed.

        ``keep_last``: leave the latest dispatch, which may still be executing
        (its record, and so its measured cycles, may not be in memory yet).
        """
        todo = self.bfm.dispatches[self.replayed:len(self.bfm.dispatches) - int(keep_last)]
        for cycle, adi in todo:
            self.replayed += 1
            raw = self.sys.engine.fetch(adi)
            assert raw is not None, f"ADI {adi} dispatched a descriptor the model cannot fetch"
            posted = self.sys.posted[adi].popleft()
            assert raw == posted, f"ADI {adi}: fetched descriptor differs from the posted one"
            # A WAIT is handed to its engine once per check; every check before the one that
            # decided it (consumed now) was a retry, with its own tracker request.
            for _ in range(self._checks_since_last_consume(adi, cycle) - 1):
                self.sys.engine.replay_retry(adi, raw)
            cycles, start_cycle = self._rtl_timing(adi, raw)
            res = self.sys.engine.dispatch(adi, raw, cycles, start_cycle=start_cycle)
            if res.outcome is not None and res.outcome.completion is not None:     # a record was written
                self._check_start(adi, cycle, start_cycle)
            self.results.append((cycle, res))
            if res.irq is not None and res.irq.kind == "deliver":
                self.expected_irqs.append((res.irq.dest, res.irq.vector))
            self._sample(res)

    def _sample(self, res):
        if res.refused:
            COVERAGE.sample("desc_pasid_refused")
            return
        out, d = res.outcome, res.descriptor
        op = int(d.opcode)
        names = {0: "op_noop", 2: "op_drain", 3: "op_memmove", 4: "op_memfill", 5: "op_compare",
                 0xF0: "op_wait", 0xF1: "op_signal"}
        COVERAGE.sample(names.get(op, "status_bad_opcode"), op in names or out.status.name == "BAD_OPCODE")
        if op in (0xF0, 0xF1) and out.status.name == "PAGE_FAULT":
            COVERAGE.sample("wait_fault" if op == 0xF0 else "signal_fault")
        COVERAGE.sample("status_" + out.status.name.lower())
        COVERAGE.sample("record_written" if out.completion is not None else "record_skipped")
        if out.status.name == "SUCCESS" and op == 3:
            down = d.src_addr < d.dst_addr < d.src_addr + d.xfer_size
            COVERAGE.sample("memmove_descending", down)
            COVERAGE.sample("memmove_store_forward", down and d.dst_addr - d.src_addr < PAGE)
            COVERAGE.sample("memmove_unaligned", (d.src_addr ^ d.dst_addr) % 8 != 0)
        if out.status.name == "SUCCESS" and op in (3, 4, 5):
            COVERAGE.sample("multi_page", (d.dst_addr % PAGE) + d.xfer_size > PAGE)
        if out.status.name == "SUCCESS" and op == 5:
            COVERAGE.sample("compare_differ" if out.result else "compare_equal")
        if out.status.name == "HW_ERROR":
            if out.completion is None and d.flags & Flag.CRAV:
                COVERAGE.sample("bus_error_record")
            elif op == 3:
                errors = self.sys.engine.bus_errors
                a = self.sys.adi.adis[res.adi]
                src = self.sys.host_of(a.domain, d.src_addr)
                COVERAGE.sample("bus_error_src" if errors.read_fails(src, d.xfer_size) else "bus_error_dst")
            elif op == 4:
                COVERAGE.sample("bus_error_dst")
            elif op == 5:
                COVERAGE.sample("bus_error_compare")
        if out.status.name == "PAGE_FAULT":
            if out.fault_addr == d.completion_addr and out.record.status_write and out.completion is None:
                COVERAGE.sample("fault_record")
            elif out.record.status_write:
                COVERAGE.sample("fault_dst")
            else:
                COVERAGE.sample("fault_src")
        if res.irq is not None:
            COVERAGE.sample("irq_delivered" if res.irq.kind == "deliver" else "irq_faulted",
                            res.irq.kind in ("deliver", "fault"))

    def check_memory(self, domains, pages):
        """Every page of every domain window: hardware memory equals the model's."""
        for dom in domains:
            for page in range(pages):
                host = self.sys.host_of(dom, page * PAGE)
                got = self.bfm.ram.read(host, PAGE)
                exp = self.sys.memory.read(host, PAGE)
                if got != exp:
                    first = next(i for i in range(PAGE) if got[i] != exp[i])
                    raise AssertionError(
                        f"domain {dom} guest page {page}: byte {first:#x} is {got[first]:#04x}, "
                        f"model {exp[first]:#04x}")

    def check_irqs(self, per_destination=False):
        """``irq_out`` against the model. With several engines, interrupts of different ADIs
        may leave in another order than their consumes: ``per_destination`` compares each
        destination's sequence (tests give each ADI its own destination)."""
        got = [(b["dest"], b["vector"]) for b in self.bfm.irqs]
        if per_destination:
            def by_dest(seq):
                out = collections.defaultdict(list)
                for dest, vector in seq:
                    out[dest].append(vector)
                return dict(out)
            assert by_dest(got) == by_dest(self.expected_irqs), f"irq_out {got} != model {self.expected_irqs}"
        else:
            assert got == self.expected_irqs, f"irq_out {got} != model {self.expected_irqs}"


class QosMonitor(uvm_component):
    """Largest overrun of a slice and share per ADI, from dispatches, slice ends and costs."""

    def build_phase(self):
        self.costs = collections.defaultdict(list)      # adi -> [(cycle, cost)]

    def record(self, cycle, adi, cost):
        self.costs[adi].append((cycle, cost))

    def measure(self, slice_ends, quanta, start, end):
        """Per-ADI totals and the largest per-slice overrun over the slices in [start, end)."""
        bounds = [c for c in slice_ends if start <= c < end]
        overrun = {}
        totals = {}
        for adi, items in self.costs.items():
            worst = 0
            for lo, hi in zip(bounds, bounds[1:]):
                # A grant taken in the cycle of a slice end is charged after the refill.
                spent = sum(c for cyc, c in items if lo <= cyc < hi)
                worst = max(worst, spent - quanta[adi])
            overrun[adi] = worst
            totals[adi] = sum(c for cyc, c in items if bounds and bounds[0] <= cyc < bounds[-1])
        return totals, overrun


class SystemEnv(uvm_env):
    def build_phase(self):
        self.csr = CsrAgent("csr", self)
        self.guest = GuestAgent("guest", self)
        self.scoreboard = Scoreboard("scoreboard", self)
        self.qos = QosMonitor("qos", self)

    def attach(self, dut, seed):
        self.rng = random.Random(seed)
        self.params = DeviceParams(**json.loads(os.environ.get("SIOV_PARAMS", "{}")))
        self.sys = SystemModel(self.params)
        self.bfm = SystemBfm(dut, self.rng, self.sys.engine.bus_errors)
        self.csr.attach(self.bfm.rtl, self.sys)
        self.bus, self.pf = self.csr.bus, self.csr.pf
        self.guest.attach(self.bus, self.sys)
        self.scoreboard.attach(self.bfm, self.sys)

    async def wait_dispatched(self, count, timeout_cycles=200_000):
        """Until ``count`` dispatches happened and the engine is idle again."""
        for _ in range(timeout_cycles // 50):
            await wait_cycles(self.bfm.dut.clk, 50)
            if len(self.bfm.dispatches) >= count:
                st = await self.bus.raw_read(regmap.ENG_ENG_STATUS)
                if not st & regmap.ENG_ENG_STATUS_BUSY_MASK:
                    return
        raise AssertionError(f"only {len(self.bfm.dispatches)} of {count} descriptors dispatched")

    def cost_of(self, raw):
        return estimate_cost(raw, self.sys.engine.field("ENG.COST_A.A"),
                             self.sys.engine.field("ENG.COST_B.B"), width=COST_WIDTH)
