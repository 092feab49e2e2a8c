"""Differential harness: one host program on both backends, and the result records compared.

A host program is ``async def program(bus, seed) -> dict`` in an importable
module (the ``rtl`` backend imports it by name inside the simulator). It
starts a :class:`~siov.sw.hv.hypervisor.Hypervisor` on the bus (the owner
of the device: its driver, its fault queues, its interrupts), creates its
tenants through it, and returns the record that :class:`Recorder` builds:

* per tenant: a digest of its guest memory, its completion records in the
  order it posted them (the ``cycles`` and ``start_cycle`` fields zeroed:
  those are timing; the ``engine`` field is kept, since it is the ADI's
  binding, which the program sets),
  the interrupts raised in its virtual interrupt controller in arrival
  order, the DMA and interrupt faults the hypervisor routed to it in queue
  order, and its dirty log;
* the device's event counters (:data:`~siov.sw.hv.pf.COUNTERS`), less those
  the program declares timing-dependent (:data:`TIMING_COUNTERS`);
* faults that named nobody's PASID, interrupts for nobody's destination,
  and the faults lost to full queues;
* under ``"timing"``, what depends on timing and is never compared: each
  record's ``[address, cycles, start_cycle]``, the device time of the run,
  and the timing-dependent counters.

:func:`run` runs a program on a backend; :func:`compare` lists the
differences between two records (order across tenants may differ, order
within one tenant may not).
"""

import hashlib
import json

from ..rtl.cmd.dsa import COMPLETION_BYTES
from ..rtl.dma.defs import PAGE_SHIFT
from ..rtl.params import DeviceParams
from .hv.pf import DmaFault
from .model.dsa import CompletionRecord
from .platform import load_program, program_ref, run_program

__all__ = ["run", "compare", "Recorder", "TIMING_COUNTERS", "program_ref", "load_program"]

PAGE = 1 << PAGE_SHIFT

#: The device counters (:data:`~siov.sw.hv.pf.COUNTERS`) whose value can depend on timing, and
#: when. The two backends agree on every other counter for the same program and seed. A program
#: that does what a reason names passes the counter in ``Recorder(timing_counters=...)``, and the
#: record keeps it under ``"timing"``, uncompared.
TIMING_COUNTERS = {
    "dma_allowed": "with WAIT descriptors: a WAIT whose condition does not hold yet is checked again "
                   "every ENG.WAIT_RECHECK cycles until it does, and every check is a DMA tracker "
                   "request, so the count grows with how long the WAIT waited for its SIGNAL",
}


def _fault(f):
    if isinstance(f, DmaFault):
        return ["dma", f.reason, f.pasid, f.page, int(f.write)]
    return ["irq", f.reason, f.pasid, f.handle]


class _Entry:
    """What the record keeps of one tenant besides what the hypervisor holds."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.record_addrs = []
        self.dirty = b""
        self.events = []


class Recorder:
    """Builds a program's result record from what the hypervisor ``hv`` saw, as the program runs.

    The hypervisor is the one reader of the fault queues
    (:meth:`~siov.sw.hv.hypervisor.Hypervisor.poll_faults`, which the program
    calls whenever the device is idle) and the one router of interrupts: the
    recorder reads what it routed to each tenant, never the device's queues.
    Register each tenant with :meth:`tenant`; note each completion record's
    host address with :meth:`expect_record` as it is posted; call
    :meth:`finish` at the end.

    Parameters
    ----------
    hv : Hypervisor
    timing_counters : iterable of str
        Counters of :data:`TIMING_COUNTERS` that this program makes timing-dependent.
    """

    def __init__(self, hv, timing_counters=()):
        unknown = set(timing_counters) - set(TIMING_COUNTERS)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not timing-dependent counters; those are "
                             f"{sorted(TIMING_COUNTERS)} (see TIMING_COUNTERS for when)")
        self.hv, self.bus = hv, hv.bus
        self.timing_counters = tuple(timing_counters)
        self.tenants = {}

    def tenant(self, t):
        """Record tenant ``t`` (a :class:`~siov.sw.hv.tenant.Tenant`) under its name."""
        self.tenants[t.name] = _Entry(t)
        return t

    def note(self, name, *event):
        """Record a functional observation of the program's own (an ADI state it read)."""
        self.tenants[name].events.append(list(event))

    def expect_record(self, name, host_addr):
        """Tenant ``name`` posted a descriptor whose completion record lands at ``host_addr``."""
        self.tenants[name].record_addrs.append(host_addr)

    async def harvest(self, name):
        """Harvest (and clear) tenant ``name``'s dirty log into the record."""
        t = self.tenants[name].tenant
        self.tenants[name].dirty = await self.hv.pf.harvest(t.domain, t.pages)

    async def _tenant_record(self, e):
        t = e.tenant
        mem = bytearray(await self.bus.mem_read(t.memory.host_base, t.pages * PAGE))
        records, timing = [], []
        for addr in e.record_addrs:
            rec = CompletionRecord.unpack(await self.bus.mem_read(addr, COMPLETION_BYTES))
            timing.append((addr, rec.cycles, rec.start_cycle))
            rec.cycles = rec.start_cycle = 0
            records.append(rec.pack().hex())
            # The digest leaves out what is timing: the records' cycles and start cycles.
            off = addr - t.memory.host_base
            if 0 <= off < len(mem):
                mem[off:off + COMPLETION_BYTES] = rec.pack()
        faults = [_fault(f) for f in t.faults]
        return {
            "memory": hashlib.sha256(mem).hexdigest(), "records": records,
            "interrupts": [[t.dest, vector] for vector, _ in t.vic.log],
            "dma_faults": [f for f in faults if f[0] == "dma"], "irq_faults": [f for f in faults if f[0] == "irq"],
            "dirty": e.dirty.hex(), "events": e.events,
        }, timing

    async def finish(self):
        """The result record (a JSON-able dict), after a last drain of the fault queues."""
        await self.hv.poll_faults()
        out = {"tenants": {}, "timing": {"cycles": {}, "end": self.bus.now()}}
        for name, e in sorted(self.tenants.items()):
            out["tenants"][name], out["timing"]["cycles"][name] = await self._tenant_record(e)
        counters = await self.hv.pf.counters()
        out["timing"]["counters"] = {k: counters.pop(k) for k in self.timing_counters}
        out["counters"] = counters
        out["unattributed"] = [_fault(f) for f in self.hv.unattributed]
        out["stray_interrupts"] = [[i.dest, i.vector] for i in self.hv.stray_interrupts]
        out["lost_faults"] = self.hv.lost_faults
        return out


def run(program, backend="model", seed=0, params=DeviceParams(), **options):
    """Run host program ``program`` on ``backend`` (``"model"`` or ``"rtl"``); return its record.

    ``options`` go to the backend: ``timing`` (a TimingModel) for the model,
    ``waves`` for the rtl backend.
    """
    record = run_program(program, backend=backend, seed=seed, params=params, **options)
    return json.loads(json.dumps(record))       # the same plain types from either backend


def compare(a, b):
    """Differences between two result records, as readable lines (empty if identical)."""
    diffs = []
    for key in ("counters", "unattributed", "stray_interrupts", "lost_faults"):
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {a.get(key)} != {b.get(key)}")
    ta, tb = a["tenants"], b["tenants"]
    if sorted(ta) != sorted(tb):
        diffs.append(f"tenants: {sorted(ta)} != {sorted(tb)}")
    for name in sorted(set(ta) & set(tb)):
        for field in ("memory", "records", "interrupts", "dma_faults", "irq_faults", "dirty", "events"):
            x, y = ta[name][field], tb[name][field]
            if x != y:
                if isinstance(x, list) and isinstance(y, list):
                    first = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
                    diffs.append(f"{name}.{field}: differ at item {first} "
                                 f"({x[first] if first < len(x) else 'missing'} != "
                                 f"{y[first] if first < len(y) else 'missing'}); lengths {len(x)}, {len(y)}")
                else:
                    diffs.append(f"{name}.{field}: {x} != {y}")
    return diffs
