"""pyuvm regression of the interrupt remapping unit (top ``siov_irq``).

Tests (each a ``uvm_test``, run by ``tests/test_sim_irq.py`` over seeds):

* ``IrqRandomTest``: constrained-random messages (valid, forged PASID, stale
  and out-of-range handles, DMA, same-handle bursts) racing random IMS updates
  (mask toggles, PASID reassignment, destination changes, partial writes,
  reads), then a fault-queue overflow; registers compared with the model at
  quiescence; every coverage bin must be hit.
* ``IrqIsolationTest``: ``SIOV_IRQ_MESSAGES`` (default 100 000) adversarial
  messages against entries that change owner (PASID) under traffic; every
  delivery is checked against the owning entry's PASID.
"""

import os
import random

import cocotb
import pyuvm
from cocotb.triggers import ClockCycles
from pyuvm import ConfigDB, uvm_sequence, uvm_test

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.sw.model.irq import IrqModel, Message, ims_ctrl, msi_address
from siov.tb.irq.env import CsrItem, IrqBfm, IrqEnv, MsgItem

ENTRIES = int(os.environ.get("SIOV_IRQ_ENTRIES", "256"))
FAULT_DEPTH = int(os.environ.get("SIOV_IRQ_FAULT_DEPTH", "16"))
IMS = regmap.IRQ_IMS_BASE


def entry_addr(i, word=0):
    return IMS + 16 * i + 4 * word


#: IMS entries written by the tests run so far in this simulation. A reset
#: clears the unit's registers, queues and pending bits but not its block RAM
#: (as in hardware), so each test first zeroes what earlier ones wrote, as a
#: driver initializing the table would, and the fresh model agrees with it.
_WRITTEN_ENTRIES = set()


class CsrOps(uvm_sequence):
    """CSR accesses through the CSR agent's sequencer, one at a time."""

    def __init__(self, name, seqr):
        super().__init__(name)
        self.sequencer = seqr

    async def _do(self, item):
        await self.start_item(item)
        await self.finish_item(item)
        return item

    async def read(self, addr):
        it = await self._do(CsrItem("rd", addr))
        return it.resp, it.value

    async def write(self, addr, data, strb=0xF):
        if IMS <= addr < entry_addr(ENTRIES):
            _WRITTEN_ENTRIES.add((addr - IMS) // 16)
        return (await self._do(CsrItem("wr", addr, write=True, data=data, strb=strb))).resp

    async def body(self):
        pass


class MsgSeq(uvm_sequence):
    """Sends a list of ``(Message, gap)``."""

    def __init__(self, name, msgs):
        super().__init__(name)
        self.msgs = msgs

    async def body(self):
        for i, (msg, gap) in enumerate(self.msgs):
            item = MsgItem(f"m{i}", msg, gap)
            await self.start_item(item)
            await self.finish_item(item)


class Owners:
    """What the test intends each entry to hold (the sequence's own view)."""

    def __init__(self, rng, live, pasids):
        self.rng = rng
        self.live = live
        self.pasids = pasids
        self.pasid = {}
        self.mask = {}
        self.present = {}


class IrqBaseTest(uvm_test):
    irq_stall = 0.3
    dma_stall = 0.3

    def build_phase(self):
        self.seed = int(os.environ.get("SIOV_SEED", cocotb.RANDOM_SEED))
        self.rng = random.Random(self.seed)
        self.bfm = IrqBfm(cocotb.top, self.rng, self.irq_stall, self.dma_stall)
        self.model = IrqModel(entries=ENTRIES, fault_depth=FAULT_DEPTH)
        ConfigDB().set(None, "*", "BFM", self.bfm)
        ConfigDB().set(None, "*", "MODEL", self.model)
        self.env = IrqEnv("env", self)

    async def run_phase(self):
        self.raise_objection()
        await self.bfm.reset()
        self.ops = CsrOps("csr", self.env.csr.seqr)
        await self.clear_written_entries()
        await self.scenario()
        self.drop_objection()

    # -- building blocks ---------------------------------------------------

    async def clear_written_entries(self):
        """Zero every IMS entry an earlier test of this simulation wrote (CTRL
        first, so no entry is briefly present with a stale owner)."""
        for i in sorted(_WRITTEN_ENTRIES):
            for word in (3, 0, 1, 2):
                await self.ops.write(entry_addr(i, word), 0)

    async def quiesce(self, limit=200_000):
        sb = self.env.scoreboard
        waited = 0
        while not (self.bfm.tx_idle and sb.settled):
            await ClockCycles(cocotb.top.clk, 8)
            waited += 8
            assert waited < limit, (f"the unit did not drain in {limit} cycles: {len(sb.accepted)} "
                                    f"undecided, {len(sb.exp_irq)} irq and {len(sb.exp_dma)} DMA outputs "
                                    f"missing, replays the model expects: {list(self.model.replays)}")
        await ClockCycles(cocotb.top.clk, 8)
        assert self.bfm.tx_idle and sb.settled

    async def program(self, own, i, *, dest=None, vector=None, pasid=None, mask=False, present=True):
        dest = self.rng.randrange(256) if dest is None else dest
        vector = self.rng.randrange(32, 256) if vector is None else vector
        await self.ops.write(entry_addr(i, 0), msi_address(dest) if present else 0xFED00000)
        await self.ops.write(entry_addr(i, 1), 0)
        await self.ops.write(entry_addr(i, 2), vector)
        await self.ops.write(entry_addr(i, 3), ims_ctrl(mask=mask, pasid=pasid))
        own.pasid[i], own.mask[i], own.present[i] = pasid, mask, present

    async def setup_table(self, live, pasid_en=0.85, mask=0.2):
        pasids = [self.rng.randrange(1, 1 << 20) for _ in range(6)]
        own = Owners(self.rng, live, pasids)
        for i in range(live):
            if self.rng.random() < 0.1:
                continue                       # left not present
            await self.program(own, i, pasid=self.rng.choice(pasids) if self.rng.random() < pasid_en else None,
                               mask=self.rng.random() < mask)
        return own

    def messages(self, own, n, *, hot, forged=0.2, dma=0.1, beyond=0.05, stale=0.05, burst=0.15):
        rng = self.rng
        out = []
        while len(out) < n:
            r = rng.random()
            if r < dma:
                msg = Message(False, rng.randrange(1 << 20), rng.randrange(1 << 16),
                              rng.getrandbits(64), rng.getrandbits(32))
            else:
                r = rng.random()
                if r < beyond:
                    h = rng.randrange(ENTRIES, 1 << 16)
                elif r < beyond + stale:
                    h = rng.randrange(own.live, ENTRIES)       # never programmed
                elif r < 0.6:
                    h = rng.choice(hot)
                else:
                    h = rng.randrange(own.live)
                p = own.pasid.get(h)
                if p is not None and rng.random() < forged / 2:
                    p ^= 1 << rng.randrange(20)                # near miss: one bit off the owner
                elif p is None or rng.random() < forged / 2:
                    p = rng.choice(own.pasids + [rng.randrange(1 << 20)])
                msg = Message(True, p, h)
            gap = 0 if rng.random() < 0.85 else rng.randrange(1, 4)
            reps = rng.randrange(2, 6) if rng.random() < burst else 1
            out.append((msg, gap))
            out += [(msg, 0)] * (reps - 1)
        return out[:n]

    async def churn(self, own, hot, ops_count, stop):
        """Random IMS updates and reads on the hot entries while traffic runs."""
        rng = self.rng
        for _ in range(ops_count):
            if stop():
                break
            i = rng.choice(hot)
            r = rng.random()
            if r < 0.4:                                        # toggle the mask
                own.mask[i] = not own.mask.get(i, False)
                await self.ops.write(entry_addr(i, 3), ims_ctrl(mask=own.mask[i], pasid=own.pasid.get(i)))
            elif r < 0.55:                                     # new owner
                own.pasid[i] = rng.choice(own.pasids)
                own.mask[i] = rng.random() < 0.3
                await self.ops.write(entry_addr(i, 3), ims_ctrl(mask=own.mask[i], pasid=own.pasid[i]))
            elif r < 0.65:                                     # new destination
                await self.ops.write(entry_addr(i, 0), msi_address(rng.randrange(256)))
            elif r < 0.7:                                      # entry goes away, comes back
                await self.ops.write(entry_addr(i, 0), 0)
                await ClockCycles(cocotb.top.clk, rng.randrange(1, 20))
                await self.ops.write(entry_addr(i, 0), msi_address(rng.randrange(256)))
            elif r < 0.8:                                      # partial write of the vector
                await self.ops.write(entry_addr(i, 2), rng.getrandbits(32), rng.choice([0x1, 0x2, 0xC]))
            else:
                await self.ops.read(entry_addr(i, rng.randrange(4)))
            await ClockCycles(cocotb.top.clk, rng.randrange(0, 12))
        # Leave every hot entry unmasked so that nothing stays pending by accident.
        for i in hot:
            if own.mask.get(i):
                own.mask[i] = False
                await self.ops.write(entry_addr(i, 3), ims_ctrl(mask=False, pasid=own.pasid.get(i)))

    async def storm(self, own, h, n=400, toggles=10):
        """A message to entry ``h`` every cycle while its mask and destination change:
        every IMS commit meets a decision and an acceptance for that same entry."""
        self.bfm.set_stalls(0.0, 0.0)
        pasid = own.pasid.get(h)
        msgs = [(Message(True, pasid if pasid is not None else 0, h), 0)] * n
        seq = MsgSeq("storm", msgs)
        t = cocotb.start_soon(seq.start(self.env.msg.seqr))
        await ClockCycles(cocotb.top.clk, 10)
        for _ in range(toggles):
            for mask in (True, False):
                own.mask[h] = mask
                await self.ops.write(entry_addr(h, 3), ims_ctrl(mask=mask, pasid=pasid))
                await ClockCycles(cocotb.top.clk, self.rng.randrange(1, 8))
            await self.ops.write(entry_addr(h, 0), msi_address(self.rng.randrange(256)))
        await t
        await self.quiesce()
        self.bfm.set_stalls(self.irq_stall, self.dma_stall)

    async def sweep_unmask(self, own, h, span=24):
        """One message to masked entry ``h`` per round, sent 0..span cycles after an
        unmask write starts: some round decides it in the unmask's commit cycle."""
        self.bfm.set_stalls(0.0, 0.0)
        pasid = own.pasid.get(h)
        msg = Message(True, pasid if pasid is not None else 0, h)
        for d in range(span):
            await self.ops.write(entry_addr(h, 3), ims_ctrl(mask=True, pasid=pasid))
            await self.quiesce()
            unmask = cocotb.start_soon(self.ops.write(entry_addr(h, 3), ims_ctrl(mask=False, pasid=pasid)))
            await ClockCycles(cocotb.top.clk, d)
            await self.bfm.send(msg)
            await unmask
            await self.quiesce()
        own.mask[h] = False
        self.bfm.set_stalls(self.irq_stall, self.dma_stall)

    async def run_traffic(self, own, n, hot, churn_ops, **kw):
        msgs = self.messages(own, n, hot=hot, **kw)
        done = []
        seq = MsgSeq("traffic", msgs)

        async def send():
            await seq.start(self.env.msg.seqr)
            done.append(1)
        t = cocotb.start_soon(send())
        await self.churn(own, hot, churn_ops, stop=lambda: bool(done))
        await t
        await self.quiesce()

    async def check_registers(self):
        """Counters, fault status, the lost counts per source (read, so cleared) and the whole
        fault queue against the model (quiescent)."""
        m = self.model
        lost = [regmap.IRQ_FAULT_LOST_BASE + 4 * s for s in range(len(m.lost) + 1)]
        for a in (regmap.IRQ_FAULT_CAP, regmap.IRQ_FAULT_STATUS, regmap.IRQ_FAULT_OVF_COUNT,
                  regmap.IRQ_CNT_DELIVERED, regmap.IRQ_CNT_PENDED, regmap.IRQ_CNT_FAULTED,
                  regmap.IRQ_CNT_DMA, *lost):
            got = await self.ops.read(a)
            assert got == m.read(a), f"{a:#x}: {got}, model {m.read(a)}"
        drained = 0
        while True:
            rec0 = await self.ops.read(regmap.IRQ_FAULT_REC0)
            rec1 = await self.ops.read(regmap.IRQ_FAULT_REC1)
            assert rec0 == m.read(regmap.IRQ_FAULT_REC0), f"REC0 {rec0}, model {m.read(regmap.IRQ_FAULT_REC0)}"
            assert rec1 == m.read(regmap.IRQ_FAULT_REC1), f"REC1 {rec1}, model {m.read(regmap.IRQ_FAULT_REC1)}"
            if not rec0[1] & regmap.IRQ_FAULT_REC0_VALID_MASK:
                break
            assert await self.ops.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_POP_MASK) == Resp.OKAY
            m.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_POP_MASK)
            drained += 1
        assert drained <= FAULT_DEPTH
        got = await self.ops.read(regmap.IRQ_FAULT_STATUS)
        assert got == m.read(regmap.IRQ_FAULT_STATUS), f"status {got}, model {m.read(regmap.IRQ_FAULT_STATUS)}"
        # A fault is never lost: queued (drained here) or counted.
        assert m.counters["CNT_FAULTED"] >= drained
        return drained


@pyuvm.test()
class IrqRandomTest(IrqBaseTest):
    """Constrained-random traffic racing IMS updates, then an overflowing fault queue."""

    async def scenario(self):
        live = min(48, ENTRIES // 2)
        own = await self.setup_table(live)
        hot = self.rng.sample(range(live), 4)
        for i in hot:                                     # hot entries are present and owned
            if not own.present.get(i):
                await self.program(own, i, pasid=self.rng.choice(own.pasids))
        # One directed pend -> PASID change -> no delivery, inside the random run.
        h = hot[0]
        await self.program(own, h, pasid=own.pasids[0], mask=True)
        await self.bfm.send(Message(True, own.pasids[0], h))
        await self.quiesce()
        own.pasid[h], own.mask[h] = own.pasids[1], False
        await self.ops.write(entry_addr(h, 3), ims_ctrl(mask=False, pasid=own.pasids[1]))
        await self.quiesce()

        await self.run_traffic(own, 1500, hot, churn_ops=150)
        await self.storm(own, hot[1])
        await self.sweep_unmask(own, hot[2])
        await self.check_registers()

        # Overflow: more faults than the queue holds, then everything is accounted for.
        self.bfm.set_stalls(0.0, 0.0)
        for _ in range(2 * FAULT_DEPTH + 5):
            await self.bfm.send(Message(True, self.rng.randrange(1 << 20), self.rng.randrange(ENTRIES, 1 << 16)))
        await self.quiesce()
        status = await self.ops.read(regmap.IRQ_FAULT_STATUS)
        assert status[1] & regmap.IRQ_FAULT_STATUS_OVERFLOW_MASK
        queued = len(self.model.faults)
        assert await self.check_registers() == queued
        # Forged handles: one sender floods a victim's handle at full rate; the victim's own
        # fault, under a PASID of another source, is queued behind the flooder's quota.
        q = self.model.fault_quota
        attacker = self.rng.randrange(1 << 20)
        victim = attacker ^ 1
        await self.program(own, hot[3], pasid=victim)
        for _ in range(3 * FAULT_DEPTH):
            await self.bfm.send(Message(True, attacker, hot[3]))
        await self.bfm.send(Message(True, victim, self.rng.randrange(ENTRIES, 1 << 16)))
        await self.quiesce()
        held = [f[1] for f in self.model.faults]
        assert held.count(attacker) == min(q, FAULT_DEPTH - 1) and held[-1] == victim, held
        assert self.model.lost[self.model.source(attacker)] == 3 * FAULT_DEPTH - held.count(attacker)
        assert await self.check_registers() == len(held)
        assert await self.ops.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_CLEAR_OVERFLOW_MASK) == Resp.OKAY
        self.model.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_CLEAR_OVERFLOW_MASK)
        await self.check_registers()

        # Full rate: no stall, same-handle bursts and DMA interleaved.
        await self.run_traffic(own, 500, hot, churn_ops=30, burst=0.3, dma=0.3)
        await self.check_registers()
        assert await self.ops.write(regmap.IRQ_CNT_CTRL, regmap.IRQ_CNT_CTRL_CLEAR_MASK) == Resp.OKAY
        self.model.write(regmap.IRQ_CNT_CTRL, regmap.IRQ_CNT_CTRL_CLEAR_MASK)
        await self.check_registers()
        # Bus responses of the window: beyond the built table, holes, read-only registers.
        for addr, write, want in ((entry_addr(ENTRIES - 1, 3), False, Resp.OKAY),
                                  (IMS + regmap.IRQ_IMS_SIZE - 4, False,
                                   Resp.OKAY if ENTRIES == 2048 else Resp.DECERR),
                                  (IMS + regmap.IRQ_IMS_SIZE - 4, True,
                                   Resp.OKAY if ENTRIES == 2048 else Resp.DECERR),
                                  (regmap.IRQ_BASE + 0x40, False, Resp.DECERR),
                                  (regmap.IRQ_CNT_DMA, True, Resp.SLVERR)):
            resp = await self.ops.write(addr, 0) if write else (await self.ops.read(addr))[0]
            assert resp == want, f"{addr:#x} write={write}: {resp.name}, expected {want.name}"
        await self.quiesce()
        self.logger.info(f"seed {self.seed}: {self.env.scoreboard.decisions} decisions, "
                         f"{self.env.scoreboard.deliveries} deliveries, cycle {self.bfm.cycle}")


@pyuvm.test()
class IrqIsolationTest(IrqBaseTest):
    """Adversarial traffic: forged PASIDs, stale and out-of-range handles, owners changing."""
    irq_stall = 0.1
    dma_stall = 0.1

    async def scenario(self):
        n = int(os.environ.get("SIOV_IRQ_MESSAGES", "100000"))
        live = min(32, ENTRIES // 2)
        own = await self.setup_table(live, pasid_en=1.0, mask=0.1)
        hot = self.rng.sample(range(live), 8)
        for i in hot:
            if not own.present.get(i):
                await self.program(own, i, pasid=self.rng.choice(own.pasids))
        await self.sweep_unmask(own, hot[0])
        await self.run_traffic(own, n, hot, churn_ops=n // 40, forged=0.5, beyond=0.1, stale=0.1,
                               dma=0.05)
        await self.check_registers()
        sb = self.env.scoreboard
        assert sb.decisions >= n and sb.isolation_checked > n // 10
        self.logger.info(f"seed {self.seed}: {n} messages, {sb.isolation_checked} deliveries checked "
                         f"for isolation, {self.model.counters['CNT_FAULTED']} faults, "
                         f"cycle {self.bfm.cycle}")
