"""pyuvm environment of the interrupt remapping unit (top ``siov_irq``).

Structure (after pyuvm's TinyALU example): one bus-functional model
(:class:`IrqBfm`) samples every port once per clock and drives the message
input and the two output ``ready`` lines; agents and monitors turn its samples
into transactions on analysis ports:

* ``msg`` agent: sequencer + driver of ``msg_in``, monitor of accepted messages;
* ``irq_out`` and ``dma_out`` monitors, with random back-pressure on ``ready``;
* ``csr`` agent: sequencer + driver over cocotbext-axi's AxiLiteMaster, and a
  monitor of the probe (decisions, IMS accesses as they commit, replays).

The scoreboard replays every event in hardware order through the reference
model (:class:`siov.sw.model.irq.IrqModel`): a message is decided the cycle
after its acceptance (it sees the IMS as it stands then); an IMS read
committing in that cycle comes before the decision, an IMS write after it.
The probe reports a decision ``EFFECT_DELAY`` (3) cycles later, from the
effect stage, so the scoreboard holds each IMS access that commits until the
decisions that come before it are known.
Every decision, every output and every IMS read is compared with the model;
every delivery is also checked for PASID isolation against the entry as the
model holds it. The coverage subscriber fails ``check_phase`` on a missed bin.
"""

import collections
import itertools
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster
from pyuvm import (uvm_agent, uvm_analysis_port, uvm_component, uvm_driver, uvm_env,
                   uvm_monitor, uvm_sequence_item, uvm_sequencer, uvm_subscriber)

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.irq.pipeline import EFFECT_DELAY
from siov.rtl.irq.remapper import Decision, IrqLayout, MessageLayout, ProbeLayout
from siov.sw.model.irq import CTRL_PASID_EN, CTRL_PASID_LSB, CTRL_WORD, IrqModel, Message
from siov.tb.axi import axil_read, axil_write
from siov.tb.coverage import Coverage
from siov.tb.reset import reset_dut
from siov.tb.layouts import pack, unpack

__all__ = ["PERIOD_NS", "pack", "unpack", "IrqBfm", "MsgItem", "CsrItem", "IrqEnv",
           "COVERAGE_BINS"]

PERIOD_NS = 10
ACCESS_TIMEOUT_NS = 50_000

COVERAGE_BINS = [
    "fault_0x21", "fault_0x22", "fault_0x26", "pending", "masked_then_unmasked",
    "back_to_back_same_handle", "race_write_in_accept_cycle", "race_write_in_decide_cycle",
    "unmask_in_pend_cycle", "fault_queue_overflow",
    "irq_out_backpressure", "dma_interleaved", "pasid_change_discards_pending",
]


def _pause(p, rng):
    if p <= 0:
        return itertools.repeat(False)
    return (rng.random() < p for _ in itertools.count())


class IrqBfm:
    """Clock, reset, AXI4-Lite master and one sampler of every port per cycle.

    Parameters
    ----------
    dut : cocotb handle of ``siov_irq``
    rng : random.Random
    irq_stall, dma_stall : float
        Probability that ``irq_out.ready`` / ``dma_out.ready`` is low in a cycle.
    """

    TX_DEPTH = 8

    def __init__(self, dut, rng, irq_stall=0.3, dma_stall=0.3):
        self.dut = dut
        self.rng = rng
        self.cycle = 0
        self.tx = collections.deque()         # (Message, gap) waiting to be driven
        self.tx_space = Event()
        self.current = None                   # Message driven on msg_in
        self.gap = 0
        self.listeners = collections.defaultdict(list)
        self.irq_pause = _pause(irq_stall, rng)
        self.dma_pause = _pause(dma_stall, rng)
        self._probe_fields = {name: (f.offset, f.width) for name, f in ProbeLayout}
        self._interest = 0
        for name in ("dec_valid", "replay_take", "ims_ack"):
            self._interest |= 1 << self._probe_fields[name][0]
        self._ack_bit = 1 << self._probe_fields["ims_ack"][0]
        Clock(dut.clk, PERIOD_NS, unit="ns").start()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"),
                                  dut.clk, dut.rst)
        self.axil.write_if.log.setLevel("WARNING")
        self.axil.read_if.log.setLevel("WARNING")

    def set_stalls(self, irq_stall, dma_stall):
        self.irq_pause = _pause(irq_stall, self.rng)
        self.dma_pause = _pause(dma_stall, self.rng)

    def listen(self, kind, fn):
        """Call ``fn(cycle, payload)`` for every ``kind`` event:
        ``accept`` (Message), ``probe`` (dict), ``irq`` (dict), ``dma`` (Message),
        ``irq_stall`` (None)."""
        self.listeners[kind].append(fn)

    def _emit(self, kind, cycle, payload):
        for fn in self.listeners[kind]:
            fn(cycle, payload)

    async def reset(self):
        await reset_dut(self.dut, {"msg_in__valid": 0, "irq_out__ready": 0, "dma_out__ready": 0}, settle=1)
        cocotb.start_soon(self._run())

    async def send(self, msg, gap=0):
        """Queue ``msg`` for ``msg_in`` after ``gap`` idle cycles."""
        while len(self.tx) >= self.TX_DEPTH:
            self.tx_space.clear()
            await self.tx_space.wait()
        self.tx.append((msg, gap))

    @property
    def tx_idle(self):
        return not self.tx and self.current is None

    async def _run(self):
        dut = self.dut
        clk = dut.clk
        msg_valid, msg_ready, msg_payload = dut.msg_in__valid, dut.msg_in__ready, dut.msg_in__payload
        irq_valid, irq_ready, irq_payload = dut.irq_out__valid, dut.irq_out__ready, dut.irq_out__payload
        dma_valid, dma_ready, dma_payload = dut.dma_out__valid, dut.dma_out__ready, dut.dma_out__payload
        probe = dut.probe
        driven_valid = 0
        irq_r = dma_r = 0
        flush = 0
        while True:
            await RisingEdge(clk)
            self.cycle += 1
            c = self.cycle
            # ---- sample (values of the cycle that ends at this edge) ----
            p = int(probe.value)
            # The EFFECT_DELAY cycles after an IMS commit are always reported:
            # the decision of the commit's cycle is reported in the last of
            # them (see IrqScoreboard).
            if p & self._interest or flush:
                self._emit("probe", c, {n: (p >> o) & ((1 << w) - 1)
                                        for n, (o, w) in self._probe_fields.items()})
            flush = EFFECT_DELAY if p & self._ack_bit else max(flush - 1, 0)
            if driven_valid and int(msg_ready.value):
                self._emit("accept", c, self.current)
                self.current = None
            if int(irq_valid.value):
                if irq_r:
                    self._emit("irq", c, unpack(IrqLayout, int(irq_payload.value)))
                else:
                    self._emit("irq_stall", c, None)
            if dma_r and int(dma_valid.value):
                d = unpack(MessageLayout, int(dma_payload.value))
                self._emit("dma", c, Message(bool(d["is_irq"]), d["pasid"], d["handle"],
                                             d["addr"], d["data"]))
            # ---- drive the next cycle ----
            if self.current is None:
                if self.gap:
                    self.gap -= 1
                elif self.tx:
                    msg, gap = self.tx[0]
                    if gap:
                        self.tx[0] = (msg, 0)
                        self.gap = gap - 1
                    else:
                        self.tx.popleft()
                        self.tx_space.set()
                        self.current = msg
                        msg_payload.value = pack(MessageLayout, is_irq=msg.is_irq, pasid=msg.pasid,
                                                 handle=msg.handle, addr=msg.addr, data=msg.data)
            v = 1 if self.current is not None else 0
            if v != driven_valid:
                msg_valid.value = v
                driven_valid = v
            r = 0 if next(self.irq_pause) else 1
            if r != irq_r:
                irq_ready.value = r
                irq_r = r
            r = 0 if next(self.dma_pause) else 1
            if r != dma_r:
                dma_ready.value = r
                dma_r = r


# ---------------------------------------------------------------- items

class MsgItem(uvm_sequence_item):
    """A message for ``msg_in``, sent after ``gap`` idle cycles."""

    def __init__(self, name, msg, gap=0):
        super().__init__(name)
        self.msg = msg
        self.gap = gap

    def __str__(self):
        return f"{self.get_name()}: {self.msg} gap {self.gap}"


class CsrItem(uvm_sequence_item):
    """A CSR access at an absolute address; the driver fills ``resp`` and ``value``."""

    def __init__(self, name, addr, *, write=False, data=0, strb=0xF):
        super().__init__(name)
        self.addr, self.write, self.data, self.strb = addr, write, data, strb
        self.resp = None
        self.value = None


# ---------------------------------------------------------------- agents

class MsgDriver(uvm_driver):
    def build_phase(self):
        self.bfm = self.cdb_get("BFM")

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            await self.bfm.send(item.msg, item.gap)
            self.seq_item_port.item_done()


class MsgMonitor(uvm_monitor):
    """Publishes ``(cycle, Message)`` for every message the unit accepts."""

    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)
        self.cdb_get("BFM").listen("accept", lambda c, m: self.ap.write((c, m)))


class MsgAgent(uvm_agent):
    def build_phase(self):
        self.seqr = uvm_sequencer("seqr", self)
        self.driver = MsgDriver("driver", self)
        self.monitor = MsgMonitor("monitor", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.seqr.seq_item_export)


class StreamMonitor(uvm_monitor):
    """Publishes ``(cycle, payload)`` for each transfer on ``irq_out`` or ``dma_out``;
    ``stall_ap`` gets ``(cycle, None)`` for each cycle valid waits on ready."""

    def __init__(self, name, parent, kind):
        super().__init__(name, parent)
        self.kind = kind

    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)
        self.stall_ap = uvm_analysis_port("stall_ap", self)
        bfm = self.cdb_get("BFM")
        bfm.listen(self.kind, lambda c, p: self.ap.write((c, p)))
        if self.kind == "irq":
            bfm.listen("irq_stall", lambda c, p: self.stall_ap.write((c, p)))


class CsrDriver(uvm_driver):
    def build_phase(self):
        self.bfm = self.cdb_get("BFM")

    async def run_phase(self):
        axil = self.bfm.axil
        while True:
            item = await self.seq_item_port.get_next_item()
            local = item.addr - regmap.IRQ_BASE
            if item.write:
                item.resp = await axil_write(axil, local, item.data, item.strb, timeout_ns=ACCESS_TIMEOUT_NS)
            else:
                item.resp, item.value = await axil_read(axil, local, timeout_ns=ACCESS_TIMEOUT_NS)
            self.seq_item_port.item_done()


class ProbeMonitor(uvm_monitor):
    """Publishes ``(cycle, probe dict)`` in the cycles with a decision, replay or IMS commit."""

    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)
        self.cdb_get("BFM").listen("probe", lambda c, p: self.ap.write((c, p)))


class CsrAgent(uvm_agent):
    def build_phase(self):
        self.seqr = uvm_sequencer("seqr", self)
        self.driver = CsrDriver("driver", self)
        self.probe = ProbeMonitor("probe", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.seqr.seq_item_export)


# ---------------------------------------------------------------- scoreboard

class IrqScoreboard(uvm_component):
    """Runs the reference model in hardware order and compares everything."""

    def build_phase(self):
        self.model = self.cdb_get("MODEL")
        self.errors = []
        self.accepted = collections.deque()     # (cycle, Message) not yet decided
        self.held = collections.deque()         # (cycle, probe) of IMS accesses committed, not yet applied
        self.exp_irq = collections.deque()
        self.exp_dma = collections.deque()
        self.early_dma = collections.deque()    # (cycle, payload) on dma_out before its decision
        self.decisions = 0
        self.deliveries = 0
        self.isolation_checked = 0
        self.first_pend = None
        self.events = uvm_analysis_port("events", self)  # (cycle, kind, info) for coverage
        imp = uvm_subscriber.uvm_AnalysisImp
        self.accept_export = imp("accept_export", self, self._accept)
        self.probe_export = imp("probe_export", self, self._probe)
        self.irq_export = imp("irq_export", self, self._irq)
        self.dma_export = imp("dma_export", self, self._dma)

    def _fail(self, text):
        self.errors.append(text)
        self.logger.error(text)

    def _accept(self, t):
        self.accepted.append(t)

    def _probe(self, t):
        # Within a cycle: an IMS read sees the state at the start of the cycle,
        # then the decision, then an IMS write takes effect at the end. The
        # decision of cycle x (the cycle after its acceptance) is reported in
        # cycle x + EFFECT_DELAY, from the effect stage: an access committed
        # in cycle x or later waits for it (a read of cycle x is applied
        # before it). Every decision of cycle x or earlier is known once the
        # report of cycle x + EFFECT_DELAY is sampled.
        c, p = t
        if p["ims_ack"]:
            self.held.append((c, p))
        x = c - EFFECT_DELAY
        if p["dec_valid"]:
            self._apply_held(lambda cc, we: cc < x or (cc == x and not we))
            self._decide(x, p)
        self._apply_held(lambda cc, we: cc <= x)
        self._check_early_dma(x)

    def _apply_held(self, due):
        while self.held and due(self.held[0][0], self.held[0][1]["ims_we"]):
            self._commit(*self.held.popleft())

    def _decide(self, c, p):
        self.decisions += 1
        kind = Decision(p["dec_kind"])
        if p["dec_replay"]:
            if not self.model.replays:
                return self._fail(f"cycle {c}: replay of handle {p['dec_handle']} the model did not queue")
            if self.model.replays[0] != p["dec_handle"]:
                return self._fail(f"cycle {c}: replay of handle {p['dec_handle']}, model expects "
                                  f"{self.model.replays[0]}")
            out = self.model.replay()
        else:
            if not self.accepted:
                return self._fail(f"cycle {c}: decision with no accepted message")
            ca, msg = self.accepted.popleft()
            if c != ca + 1:
                self._fail(f"cycle {c}: message accepted in cycle {ca} decided {c - ca} cycles later")
            if (p["dec_handle"], p["dec_pasid"]) != (msg.handle, msg.pasid):
                self._fail(f"cycle {c}: decision for handle/PASID {p['dec_handle']:#x}/{p['dec_pasid']:#x},"
                           f" accepted {msg.handle:#x}/{msg.pasid:#x}")
            newly_pending = msg.is_irq and msg.handle not in self.model.pending
            out = self.model.process(msg)
            self.first_pend = (c, msg.handle) if out.kind == "pend" and newly_pending else None
        want = {"dma": Decision.DMA, "deliver": Decision.DELIVER, "pend": Decision.PEND,
                "fault": Decision.FAULT}[out.kind]
        if kind != want or (out.kind == "fault" and p["dec_reason"] != out.reason):
            self._fail(f"cycle {c}: handle {out.handle:#x} pasid {out.pasid:#x} replay {out.replay}: "
                       f"hardware {kind.name} reason {p['dec_reason']:#x}, model {out.kind} "
                       f"reason {out.reason:#x}")
        if out.kind == "deliver":
            self.exp_irq.append(out)
            entry = self.model.ims[out.handle]
            self.isolation_checked += 1
            owner = entry[CTRL_WORD] >> CTRL_PASID_LSB
            if not out.replay and entry[CTRL_WORD] & CTRL_PASID_EN and owner != out.pasid:
                self._fail(f"cycle {c}: ISOLATION: handle {out.handle} owned by PASID "
                           f"{owner:#x} delivered for PASID {out.pasid:#x}")
        elif out.kind == "dma":
            if self.early_dma:
                self._match_dma(self.early_dma.popleft(), out.message)
            else:
                self.exp_dma.append(out.message)
        self.events.write((c, "decide", (kind, p, out)))

    def _commit(self, c, p):
        addr = regmap.IRQ_IMS_BASE + p["ims_addr"]
        if p["ims_we"]:
            idx = (addr - regmap.IRQ_IMS_BASE) >> 4
            # The decision of this same cycle set the entry's pending bit (it was clear).
            same_cycle_pend = self.first_pend == (c, idx)
            replays = len(self.model.replays)
            pend_before = (addr - regmap.IRQ_IMS_BASE) >> 4 in self.model.pending
            resp = self.model.write(addr, p["ims_wdata"], p["ims_wstrb"])
            discarded = (pend_before and (addr & 0xC) == 0xC and len(self.model.replays) == replays
                         and (addr - regmap.IRQ_IMS_BASE) >> 4 not in self.model.pending)
            unmask_race = same_cycle_pend and len(self.model.replays) > replays
            self.events.write((c, "write", (addr, discarded, unmask_race)))
        else:
            resp, value = self.model.read(addr)
            if resp == Resp.OKAY and p["ims_rdata"] != value:
                self._fail(f"cycle {c}: IMS read {addr:#x}: {p['ims_rdata']:#010x}, model {value:#010x}")
        if p["ims_resp"] != resp:
            self._fail(f"cycle {c}: IMS access {addr:#x}: resp {p['ims_resp']}, model {int(resp)}")

    def _irq(self, t):
        c, got = t
        if not self.exp_irq:
            return self._fail(f"cycle {c}: unexpected irq_out {got}")
        out = self.exp_irq.popleft()
        want = {"dest": out.dest, "vector": out.vector, "handle": out.handle, "pasid": out.pasid}
        if got != want:
            self._fail(f"cycle {c}: irq_out {got}, model {want}")
        self.deliveries += 1

    def _dma(self, t):
        # A DMA message is pushed from the read stage: it may leave on dma_out up to
        # EFFECT_DELAY - 1 cycles before its decision is reported (early_dma).
        if not self.exp_dma:
            return self.early_dma.append(t)
        self._match_dma(t, self.exp_dma.popleft())

    def _match_dma(self, t, want):
        c, got = t
        if got != want:
            self._fail(f"cycle {c}: dma_out {got}, model {want}")

    def _check_early_dma(self, x):
        """Every decision up to cycle x is known: a DMA output of cycle x + 1 or earlier is
        one of those decisions' (a message leaves dma_out one cycle after its decision at the soonest)."""
        while self.early_dma and self.early_dma[0][0] <= x + 1:
            c, got = self.early_dma.popleft()
            self._fail(f"cycle {c}: unexpected dma_out {got}")

    @property
    def settled(self):
        return not (self.accepted or self.exp_irq or self.exp_dma or self.early_dma or self.model.replays
                    or self.held)

    def check_phase(self):
        if self.errors:
            raise AssertionError(f"{len(self.errors)} scoreboard errors; first: {self.errors[0]}")
        assert self.settled, (f"unfinished: {len(self.accepted)} undecided, {len(self.exp_irq)} "
                              f"irq and {len(self.exp_dma)} DMA outputs missing, {len(self.early_dma)} "
                              f"DMA outputs undecided, "
                              f"{len(self.model.replays)} replays")


# ---------------------------------------------------------------- coverage

class IrqCoverage(uvm_subscriber):
    """Samples the bins from scoreboard events and output stalls; fails on a miss."""

    def build_phase(self):
        bins = COVERAGE_BINS
        if os.environ.get("SIOV_IRQ_PIPELINED", "1") == "0":
            # One message in flight at a time: decisions are never in consecutive cycles.
            bins = [b for b in bins if b not in ("back_to_back_same_handle", "dma_interleaved")]
        self.cov = Coverage("irq", bins)
        self.model = self.cdb_get("MODEL")
        self.last_dec = None          # (cycle, kind, handle)
        self.prev_dec = None
        self._ovf = 0
        self.last_msg_dec = None
        self.writes = collections.deque(maxlen=4)   # (cycle, entry index)
        self.stall_export = uvm_subscriber.uvm_AnalysisImp("stall_export", self, self._stall)

    def _stall(self, t):
        self.cov.sample("irq_out_backpressure")

    def write(self, t):
        c, what, info = t
        if what == "write":
            addr, discarded, unmask_race = info
            self.writes.append((c, (addr - regmap.IRQ_IMS_BASE) >> 4))
            self.cov.sample("pasid_change_discards_pending", discarded)
            self.cov.sample("unmask_in_pend_cycle", unmask_race)
            # Decided in this same cycle (sampled before the write): it used the old entry.
            self.cov.sample("race_write_in_decide_cycle",
                            self.last_msg_dec == (c, (addr - regmap.IRQ_IMS_BASE) >> 4))
            return
        kind, p, out = info
        h = p["dec_handle"]
        if kind == Decision.FAULT:
            name = f"fault_{p['dec_reason']:#04x}"
            if name in self.cov.hits:
                self.cov.sample(name)
            self.cov.sample("fault_queue_overflow", self.model.ovf_count > self._ovf)
            self._ovf = self.model.ovf_count
        self.cov.sample("pending", kind == Decision.PEND)
        self.cov.sample("masked_then_unmasked", bool(p["dec_replay"]) and kind == Decision.DELIVER)
        # An IMS write to this entry committed in the cycle the message was accepted:
        # the message must see the new entry.
        if kind != Decision.DMA and not p["dec_replay"]:
            self.last_msg_dec = (c, h)
            for wc, wi in self.writes:
                if wi == h:
                    self.cov.sample("race_write_in_accept_cycle", wc == c - 1)

        if self.last_dec and self.last_dec[0] == c - 1:
            lc, lk, lh = self.last_dec
            self.cov.sample("back_to_back_same_handle",
                            lk != Decision.DMA and kind != Decision.DMA and lh == h)
            if self.prev_dec and self.prev_dec[0] == c - 2:
                pk = self.prev_dec[1]
                self.cov.sample("dma_interleaved", pk != Decision.DMA and lk == Decision.DMA
                                and kind != Decision.DMA)
        self.prev_dec, self.last_dec = self.last_dec, (c, kind, h)

    def report_phase(self):
        self.logger.info("\n" + self.cov.report())

    def check_phase(self):
        self.cov.check()


# ---------------------------------------------------------------- env

class IrqEnv(uvm_env):
    def build_phase(self):
        self.msg = MsgAgent("msg", self)
        self.irq_mon = StreamMonitor("irq_out", self, "irq")
        self.dma_mon = StreamMonitor("dma_out", self, "dma")
        self.csr = CsrAgent("csr", self)
        self.scoreboard = IrqScoreboard("scoreboard", self)
        self.coverage = IrqCoverage("coverage", self)

    def connect_phase(self):
        sb = self.scoreboard
        self.msg.monitor.ap.connect(sb.accept_export)
        self.csr.probe.ap.connect(sb.probe_export)
        self.irq_mon.ap.connect(sb.irq_export)
        self.dma_mon.ap.connect(sb.dma_export)
        sb.events.connect(self.coverage.analysis_export)
        self.irq_mon.stall_ap.connect(self.coverage.stall_export)
