"""Tenants that keep their engines saturated, for comparing how the backends arbitrate.

The model backend is where scheduling policies get studied, so its arbiters
must grant as the RTL's do: the same order where costs are equal, and the
same shares of descriptors and of engine time (DESIGN.md, "Scheduler and
scanner"). This program gives every tenant a full ring of descriptors at
once and lets the engines run them all; every descriptor asks for its
record and its completion interrupt, so the record's ``cycles`` (engine
time) and the interrupt's arrival (which tenant completed, and when, in
order per engine) are known on either backend.

``arg``::

    {"policy": "rr" | "wrr" | "qos", "slice": cycles, "cost_a": A, "cost_b": B,
     "tenants": [{"engine": e, "weight": w, "quantum": q, "count": n,
                  "op": "move" | "fill" | "noop", "size": [lo, hi]}, ...]}

For a seed, it sets up one domain, PASID, ADI (bound to ``engine``) and IMS
entry (destination ``i + 1``) per tenant, draws each tenant's descriptors
(sizes uniform in ``size``; sources and destinations at any alignment in
its data pages), writes them all, rings the doorbells in tenant order and
waits until every descriptor has completed. It returns per tenant the
records' statuses and cycles in ring order, and the interrupts in arrival
order as ``[tenant, cycle]``: :func:`shares` reads the shares and the grant
order from that.
"""

import random

from ..guest.ring import Ring
from ..hv.guest_memory import window_base
from ..hv.pf import PfDriver
from ...rtl import regmap
from ...rtl.cmd.arbiter import Policy
from ...rtl.cmd.dsa import COMPLETION_BYTES, Flag, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..model.dsa import CompletionRecord, Descriptor

__all__ = ["arbitration", "shares", "CASES", "case_arg"]

PAGE = 1 << PAGE_SHIFT
RING_SIZE = 256
RING_PAGES = RING_SIZE * 64 // PAGE                   # 4
RECORD_FIRST = RING_PAGES                             # 2 pages of records
DATA_FIRST = RECORD_FIRST + RING_SIZE * COMPLETION_BYTES // PAGE
DATA_PAGES = 6                                        # two buffers of 3 pages: copies up to 8 KiB
PAGES = DATA_FIRST + DATA_PAGES
POLICIES = {"rr": Policy.RR, "wrr": Policy.WRR, "qos": Policy.QOS}

_COPY = {"op": "move", "size": [256, 256]}
#: Per policy, the tenants of one engine that the differential test and the benchmark run:
#: equal 256-byte copies under rr and wrr (weights 1:3:2), and under QoS 4-8 KiB copies
#: against 64-128-byte ones, a quantum of 1000 each, in slices of 4000 cycles.
CASES = {
    "rr": {"policy": "rr", "tenants": [dict(_COPY, count=120)] * 3},
    "wrr": {"policy": "wrr", "tenants": [dict(_COPY, weight=1, count=120), dict(_COPY, weight=3, count=200),
                                         dict(_COPY, weight=2, count=150)]},
    "qos": {"policy": "qos", "slice": 4000, "cost_a": 40, "cost_b": 32,
            "tenants": [{"op": "move", "size": [4096, 8192], "quantum": 1000, "count": 60},
                        {"op": "move", "size": [64, 128], "quantum": 1000, "count": 250}]},
}


def case_arg(policy, engines):
    """The ``arg`` of :data:`CASES`' ``policy``: its tenants on engine 0, and as many again on
    each further engine of a Device with ``engines`` engines."""
    case = CASES[policy]
    return {**case, "tenants": [dict(t, engine=e) for e in range(engines) for t in case["tenants"]]}


def _descriptor(rng, pasid, handle, op, size, slot):
    n = rng.randint(*size)
    half = DATA_PAGES // 2 * PAGE
    d = Descriptor(pasid=pasid, flags=Flag.CRAV | Flag.RCR | Flag.RCI, int_handle=handle,
                   completion_addr=RECORD_FIRST * PAGE + COMPLETION_BYTES * slot)
    if op == "move":
        d.opcode, d.xfer_size = Opcode.MEMMOVE, n
        d.src_addr = DATA_FIRST * PAGE + rng.randrange(half - n + 1)
        d.dst_addr = DATA_FIRST * PAGE + half + rng.randrange(half - n + 1)
    elif op == "fill":
        d.opcode, d.xfer_size = Opcode.MEMFILL, n
        d.dst_addr = DATA_FIRST * PAGE + 8 * rng.randrange((2 * half - n) // 8 + 1)
        d.src_addr = rng.getrandbits(64)
    else:
        d.opcode = Opcode.NOOP
    return d


async def arbitration(bus, seed, arg):
    """Run the tenants of ``arg`` to completion; see the module docstring for the result."""
    rng = random.Random(seed)
    pf = PfDriver.of(bus)
    tenants = arg["tenants"]
    n = len(tenants)
    await pf.set_arbiter(POLICIES[arg["policy"]], slice_cycles=arg.get("slice", 0), cost_a=arg.get("cost_a", 0),
                         cost_b=arg.get("cost_b", 0), weights=[t.get("weight", 1) for t in tenants],
                         quanta=[t.get("quantum", 0) for t in tenants])
    irqs = []
    dest_of = {}
    bus.on_irq(lambda irq: irqs.append([dest_of.get(irq.dest, -1), irq.cycle]))
    rings, total = [], 0
    for i, t in enumerate(tenants):
        pasid, handle = 0x200 + 0x13 * i, 16 + i
        base = window_base(i)
        await pf.set_domain(i, base, PAGES)
        assert await pf.pin(i, 0, PAGES)
        await pf.bind_adi(i, pasid, i)
        for page in range(PAGES):
            await pf.guest_map(i, page)
        await pf.set_ims(handle, pasid, dest=i + 1, vector=0x40 + i)
        dest_of[i + 1] = i
        await pf.enable_adi(i, 0, RING_SIZE, pasid, i, engine=t.get("engine", 0))
        ring = Ring(bus, i, 0, base, RING_SIZE)
        descs = [_descriptor(rng, pasid, handle, t.get("op", "move"), t.get("size", [256, 256]), j)
                 for j in range(t["count"])]
        await ring.post(descs, doorbell=False)
        rings.append(ring)
        total += len(descs)
    for ring in rings:
        await ring.ring_doorbell()
    while await bus.read(regmap.ENG_DESC_DONE) < total or await pf.engine_busy():
        await bus.wait_cycles(500)
    await bus.wait_cycles(100)
    records = []
    for i, t in enumerate(tenants):
        raw = await bus.mem_read(window_base(i) + RECORD_FIRST * PAGE, COMPLETION_BYTES * t["count"])
        recs = [CompletionRecord.unpack(raw[k:k + COMPLETION_BYTES]) for k in range(0, len(raw), COMPLETION_BYTES)]
        records.append([[r.status, r.cycles] for r in recs])
    return {"records": records, "irqs": irqs, "end": bus.now()}


def shares(result, engines):
    """Each tenant's share of the descriptors and of the engine time of its engine, while every
    tenant of that engine still had work, and the grant order per engine (tenant indices).

    ``engines`` lists each tenant's engine. The window of engine e ends at the first
    completion of its last descriptor by any of its tenants: up to there, the engine was
    saturated, and its arbiter alone decided who ran."""
    counts = [len(r) for r in result["records"]]
    out = {"descriptors": [0.0] * len(counts), "time": [0.0] * len(counts), "order": {}}
    for e in sorted(set(engines)):
        mine = [i for i, x in enumerate(engines) if x == e]
        done = {i: 0 for i in mine}
        order = []
        for tenant, _cycle in result["irqs"]:
            if tenant not in done:
                continue
            done[tenant] += 1
            order.append(tenant)
            if done[tenant] == counts[tenant]:
                break
        time = {i: sum(c for _, c in result["records"][i][:done[i]]) for i in mine}
        for i in mine:
            out["descriptors"][i] = done[i] / len(order)
            out["time"][i] = time[i] / sum(time.values())
        out["order"][e] = order
    return out
