"""The descriptor engines: ``num_engines`` executors behind one prefetch, with the ``ENG`` registers.

Ref: ``ENG`` in ``rtl/regs.rdl`` (the normative description of the
engines, the eligibility mask and the semaphore opcodes) and DESIGN.md
"Engines and rings".

A GPU has several engines, each fed by its own rings; a DSA groups several
engines behind its work queues. Here each ADI's ring is bound to one engine
(``CMD.ADI_CFG.ENGINE``), and this component composes:

* :class:`~.prefetch.Prefetcher`: the shared descriptor prefetch into
  per-ADI slots (block RAM), with the cost estimate;
* :class:`~.dispatch.Dispatcher`: the arbiter, with a grant per engine over
  the ADIs bound to it and one QoS budget per ADI, the eligibility mask,
  WAIT holds and timeouts, and the hand-over of a slot to an executor;
* ``num_engines`` :class:`~.executor.Executor`: each runs one descriptor at a
  time, so an ADI's descriptors run in ring order on its engine, while
  different engines run at the same time;
* the shared ports (:mod:`.ports`): the DMA tracker's request port (one check
  per clock), the AXI4 master (round robin per burst; ARID/AWID = requester:
  executor e is e, the prefetch is ``num_engines``), the interrupt remapper's
  input and the ADI block's fault input.

The counters of ``ENG`` add up the engines' events (two engines finishing in
one cycle count two); LAST_STATUS and LAST_CYCLES come from the lowest
engine finishing in a cycle.
"""

import types

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .. import regmap
from ..axi4 import Axi4Signature
from ..csr.bank import RegisterBank
from ..csr.bus import CsrSignature
from ..dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from ..irq.remapper import MessageLayout
from ..params import DeviceParams, require_params
from .adi import ADI_FAULT_LAYOUT, CONSUME_LAYOUT, RING_LAYOUT
from .cost import COST_WIDTH
from .dispatch import Dispatcher
from .dsa import Status
from .executor import FIFO_WORDS, Executor
from .mover import WORD_BITS
from ..stream import StreamMerge
from .ports import AxiReadArbiter, AxiWriteArbiter, TrackerPortArbiter
from .prefetch import DESC_WORDS, Prefetcher, slot_addr_bits

__all__ = ["Engine", "CSR_ADDR_WIDTH", "FIFO_WORDS", "mem_id_width"]

CSR_ADDR_WIDTH = exact_log2(regmap.ENG_SIZE)
#: A completion interrupt message between the executors and the remapper, with its ADI.
_IRQ_MERGE_LAYOUT = data.StructLayout({"msg": MessageLayout, "adi": 6})


def mem_id_width(params):
    """AXI ID width of the Device's memory port: one ID per executor and one for the prefetch."""
    return max(1, params.num_engines.bit_length())


class Engine(wiring.Component):
    """The engines with their prefetch, dispatcher, shared ports and the ``ENG`` window.

    Attributes
    ----------
    csr : In(CsrSignature(CSR_ADDR_WIDTH))
        The ``ENG`` window.
    mem : Out(Axi4Signature(64, 64, mem_id_width(params)))
        DMA to host memory.
    ring : In(ArrayLayout(RING_LAYOUT, num_adis))
    pending : In(num_adis)
    consume : Out(stream.Signature(CONSUME_LAYOUT, always_ready=True))
    busy : Out(num_adis)
        Bit i: a descriptor of ADI i is in flight (CMD.ADI_STATUS.INFLIGHT): taken by its
        engine's dispatcher, executing, or its completion interrupt message not yet
        accepted by the interrupt remapper.
    adi_fault : Out(stream.Signature(ADI_FAULT_LAYOUT, always_ready=True))
        Towards the ADI block, which puts the ADI into ERROR in the cycle of the beat.
    dma_req : Out(stream.Signature(REQ_LAYOUT))
    dma_resp : In(stream.Signature(OUT_LAYOUT))
        The tracker's answer to every request, in order.
    irq : Out(stream.Signature(MessageLayout))
        Completion interrupts towards the interrupt remapper.
    slice_end : Out(1)
        The arbiter's QoS slice boundary (budgets refill), for observation.
    dispatched, dispatched_adi, dispatched_engine : Out
        A descriptor was handed to an engine this cycle, for observation.
    """

    def __init__(self, params=DeviceParams()):
        self.params = require_params(params, "Engine")
        n = params.num_adis
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "mem": Out(Axi4Signature(64, 64, mem_id_width(params))),
            "ring": In(data.ArrayLayout(RING_LAYOUT, n)),
            "pending": In(n),
            "consume": Out(stream.Signature(CONSUME_LAYOUT, always_ready=True)),
            "busy": Out(n),
            "adi_fault": Out(stream.Signature(ADI_FAULT_LAYOUT, always_ready=True)),
            "dma_req": Out(stream.Signature(REQ_LAYOUT)),
            "dma_resp": In(stream.Signature(OUT_LAYOUT)),
            "irq": Out(stream.Signature(MessageLayout)),
            "slice_end": Out(1),
            "dispatched": Out(1),
            "dispatched_adi": Out(6),
            "dispatched_engine": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        n, ne = p.num_adis, p.num_engines

        m.submodules.regs = regs = RegisterBank.for_window("ENG", addr_width=CSR_ADDR_WIDTH,
                                                          base=regmap.ENG_BASE, pipelined=True)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        r = regs.port
        cfg = self._arbiter_config(m, r)

        # ---- the blocks -------------------------------------------------------------
        m.submodules.prefetch = pf = Prefetcher(p)
        m.submodules.dispatch = dp = Dispatcher(p)
        execs = []
        for e in range(ne):
            x = Executor(p, engine=e)
            m.submodules[f"exec{e}"] = x
            execs.append(x)

        m.submodules.slots = slots = Memory(shape=WORD_BITS, depth=1 << slot_addr_bits(n), init=[])
        slot_wr = slots.write_port()
        slot_rd = slots.read_port()
        m.d.comb += [slot_wr.en.eq(pf.slot_we), slot_wr.addr.eq(pf.slot_waddr), slot_wr.data.eq(pf.slot_wdata),
                     slot_rd.addr.eq(dp.slot_raddr), dp.slot_rdata.eq(slot_rd.data)]

        weight, quantum, eligible, sel, now = cfg.weight, cfg.quantum, cfg.eligible, cfg.sel, cfg.now
        m.d.comb += [
            pf.need.eq(dp.need), pf.pending.eq(self.pending), pf.ring.eq(self.ring),
            pf.cost_a.eq(r("ENG.COST_A.A")), pf.cost_b.eq(r("ENG.COST_B.B")),
            dp.pending.eq(self.pending), dp.ring.eq(self.ring), dp.eligible.eq(eligible[:n]),
            dp.policy.eq(r("ENG.ARB_CTRL.POLICY")), dp.slice_cycles.eq(r("ENG.ARB_SLICE.CYCLES")),
            dp.budget_sel.eq(sel), r("ENG.ARB_BUDGET.BUDGET").eq(dp.budget),
            # What the arbiter holds for ADI ARB_SEL, for a save (ARB_WEIGHT/QUANTUM are staged).
            r("ENG.ARB_CUR.WEIGHT").eq(Mux(sel < n, Array(weight)[sel], 0)),
            r("ENG.ARB_CUR.QUANTUM").eq(Mux(sel < n, Array(quantum)[sel], 0)),
            dp.recheck.eq(r("ENG.WAIT_RECHECK.CYCLES")), dp.timeout.eq(r("ENG.WAIT_TIMEOUT.CYCLES")),
            dp.now.eq(now),
            self.slice_end.eq(dp.slice_end),
            self.dispatched.eq(dp.dispatched), self.dispatched_adi.eq(dp.dispatched_adi),
            self.dispatched_engine.eq(dp.dispatched_engine),
        ]
        for i in range(n):
            m.d.comb += [dp.weight[i].eq(weight[i]), dp.quantum[i].eq(quantum[i])]
        wiring.connect(m, pf.fill, dp.fill)
        wiring.connect(m, dp.consume, wiring.flipped(self.consume))
        for e, x in enumerate(execs):
            wiring.connect(m, dp.starts()[e], x.start)
            wiring.connect(m, x.done, dp.dones()[e])
            m.d.comb += [dp.idle[e].eq(x.idle), x.now.eq(now)]

        self._shared_ports(m, pf, execs)
        self._merges(m, dp, execs, pf)
        self._counters(m, r, pf, dp, execs, eligible)
        return m

    def _arbiter_config(self, m, r):
        """The arbiter's weights and quanta, the eligibility mask and the cycle counter."""
        n = self.params.num_adis
        weight = [Signal(8, name=f"weight{i}", init=1) for i in range(n)]
        quantum = [Signal(COST_WIDTH, name=f"quantum{i}") for i in range(n)]
        sel = r("ENG.ARB_SEL.INDEX")
        for i in range(n):
            with m.If(r("ENG.ARB_CMD.WRITE") & (sel == i)):
                m.d.sync += [weight[i].eq(r("ENG.ARB_WEIGHT.WEIGHT")),
                             quantum[i].eq(r("ENG.ARB_QUANTUM.QUANTUM"))]
        # The eligibility mask: 64 bits staged in two registers, made current in one cycle.
        eligible = Signal(64, init=(1 << 64) - 1)
        with m.If(r("ENG.ELIGIBLE_CMD.COMMIT")):
            m.d.sync += eligible.eq(Cat(r("ENG.ELIGIBLE_LO.MASK"), r("ENG.ELIGIBLE_HI.MASK")))
        # Counts every cycle from reset, as the Device's cycle counter does: it is
        # GLOBAL.CYCLE_LO in every cycle (the records' start_cycle comes from it).
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        return types.SimpleNamespace(weight=weight, quantum=quantum, sel=sel, eligible=eligible, now=now)

    def _shared_ports(self, m, pf, execs):
        """The tracker port and the AXI4 master, shared by the executors and the prefetch.

        Requester e is executor e; the prefetch is requester ``num_engines`` (it only reads).
        """
        ne = self.params.num_engines
        m.submodules.tracker_port = tp = TrackerPortArbiter(ne + 1, REQ_LAYOUT, OUT_LAYOUT)
        for e, x in enumerate(execs):
            wiring.connect(m, x.dma_req, getattr(tp, f"req{e}"))
            wiring.connect(m, getattr(tp, f"resp{e}"), x.dma_resp)
        wiring.connect(m, pf.dma_req, getattr(tp, f"req{ne}"))
        wiring.connect(m, getattr(tp, f"resp{ne}"), pf.dma_resp)
        wiring.connect(m, tp.out, wiring.flipped(self.dma_req))
        wiring.connect(m, wiring.flipped(self.dma_resp), tp.back)

        idw = mem_id_width(self.params)
        m.submodules.axi_read = ar = AxiReadArbiter(ne + 1, id_width=idw)
        m.submodules.axi_write = aw = AxiWriteArbiter(ne, id_width=idw)
        for e, x in enumerate(execs):
            wiring.connect(m, x.rd_bus, getattr(ar, f"m{e}"))
            wiring.connect(m, x.wr_bus, getattr(aw, f"m{e}"))
        wiring.connect(m, pf.bus, getattr(ar, f"m{ne}"))
        for half in (ar.bus, aw.bus):
            for name, member in half.signature.members.items():
                if member.flow == Out:
                    m.d.comb += getattr(self.mem, name).eq(getattr(half, name))
                else:
                    m.d.comb += getattr(half, name).eq(getattr(self.mem, name))

    def _merges(self, m, dp, execs, pf):
        """The executors' completion interrupts and faults merged into one stream each; ``busy``.

        In flight (ADI_STATUS.INFLIGHT): taken and not yet started, executing, or its
        completion interrupt on its way to the remapper (in an executor's output register
        or in the merge's). The merge carries each message's ADI beside it, so that the
        message counts as its ADI's until the remapper takes it.
        """
        n, ne = self.params.num_adis, self.params.num_engines
        busy = dp.loading_adi
        for x in execs:
            busy = busy | x.busy_adi
        m.submodules.irq_merge = irq_merge = StreamMerge(ne, _IRQ_MERGE_LAYOUT)
        for e, x in enumerate(execs):
            inp = irq_merge.inputs()[e]
            m.d.comb += [inp.valid.eq(x.irq.valid), inp.payload.msg.eq(x.irq.payload),
                         inp.payload.adi.eq(x.irq_adi), x.irq.ready.eq(inp.ready)]
        merged = irq_merge.out
        m.d.comb += [self.irq.valid.eq(merged.valid), self.irq.payload.eq(merged.payload.msg),
                     merged.ready.eq(self.irq.ready)]
        busy = busy | Mux(merged.valid, (Const(1, n) << merged.payload.adi)[:n], 0)
        m.d.comb += self.busy.eq(busy)
        m.submodules.fault_merge = fault_merge = StreamMerge(ne + 1, ADI_FAULT_LAYOUT)
        for e, x in enumerate(execs):
            wiring.connect(m, x.adi_fault, fault_merge.inputs()[e])
        wiring.connect(m, pf.fault, fault_merge.inputs()[ne])
        wiring.connect(m, fault_merge.out, wiring.flipped(self.adi_fault))

    def _counters(self, m, r, pf, dp, execs, eligible):
        """The ``ENG`` counters (saturating at 2**32 - 1) and status registers."""
        def counter(name, amount):
            c = Signal(32, name=name)
            total = Signal(34, name=f"{name}_next")
            m.d.comb += total.eq(c + amount)
            m.d.sync += c.eq(Mux(total[32:].any(), 0xFFFF_FFFF, total[:32]))
            return c

        finished = [x.finished for x in execs]
        failed = [x.finished & (x.finish.status != Status.SUCCESS.value) for x in execs]
        fetch_faults = Signal()
        m.d.comb += fetch_faults.eq(pf.fault.valid & pf.fault.ready)
        done_count = counter("done_count", sum(finished))
        failed_count = counter("failed_count", sum(failed))
        refused_count = counter("refused_count", sum(x.refused for x in execs) + fetch_faults)
        retries = counter("wait_retries", sum(x.retried for x in execs))
        wait_cycles = counter("wait_cycles", sum(Mux(x.retried, x.finish.cycles, 0) for x in execs))
        idle_inel = counter("idle_ineligible", dp.idle_ineligible)
        idle_wait = counter("idle_waiting", dp.idle_waiting)

        last_cycles = Signal(32)
        last_status = Signal(7)
        for x in reversed(execs):       # the lowest engine's last
            with m.If(x.finished):
                m.d.sync += [last_cycles.eq(x.finish.cycles), last_status.eq(x.finish.status)]
        last_adi = Signal(6)
        with m.If(dp.dispatched):
            m.d.sync += last_adi.eq(dp.dispatched_adi)
        engines_busy = Signal(4)
        m.d.comb += engines_busy.eq(Cat(x.busy_adi.any() | dp.loading[e] for e, x in enumerate(execs)))

        m.d.comb += [
            r("ENG.ENG_STATUS.BUSY").eq(engines_busy.any()),
            r("ENG.ENG_STATUS.ENGINES_BUSY").eq(engines_busy),
            r("ENG.ENG_STATUS.ADI").eq(last_adi),
            r("ENG.ENG_STATUS.LAST_STATUS").eq(last_status),
            r("ENG.DESC_DONE.COUNT").eq(done_count),
            r("ENG.DESC_FAILED.COUNT").eq(failed_count),
            r("ENG.DESC_REFUSED.COUNT").eq(refused_count),
            r("ENG.LAST_CYCLES.CYCLES").eq(last_cycles),
            r("ENG.ELIGIBLE_CUR_LO.MASK").eq(eligible[:32]),
            r("ENG.ELIGIBLE_CUR_HI.MASK").eq(eligible[32:]),
            r("ENG.WAIT_RETRIES.COUNT").eq(retries),
            r("ENG.WAIT_CYCLES.CYCLES").eq(wait_cycles),
            r("ENG.IDLE_INELIGIBLE.CYCLES").eq(idle_inel),
            r("ENG.IDLE_WAITING.CYCLES").eq(idle_wait),
        ]
        return m
