"""Differential harness: one host program on both backends, and the result records compared.

A host program is ``async def program(bus, seed) -> dict`` in an importable
module (the ``rtl`` backend imports it by name inside the simulator). It
sets the Device up through :class:`~siov.sw.hv.pf.PfDriver`, runs tenants,
and returns the record that :class:`Recorder` builds:

* per tenant: a digest of its guest memory, its completion records in the
  order it posted them (the ``cycles`` field zeroed: that one is timing),
  the interrupts delivered to its destination in arrival order, the DMA and
  interrupt faults that name its PASID in queue order, and its dirty log;
* the device's event counters (:data:`~siov.sw.hv.pf.COUNTERS`);
* faults that name nobody's PASID;
* under ``"timing"``, what depends on timing and is never compared: each
  record's cycles and the device time of the run.

:func:`run` runs a program on a backend; :func:`compare` lists the
differences between two records (order across tenants may differ, order
within one tenant may not).
"""

import hashlib
import importlib
import json

from ..rtl.cmd.dsa import COMPLETION_BYTES
from ..rtl.dma.defs import PAGE_SHIFT
from ..rtl.params import DeviceParams
from .hv.pf import PfDriver
from .model.dsa import CompletionRecord

__all__ = ["run", "compare", "Recorder", "program_ref", "load_program"]

PAGE = 1 << PAGE_SHIFT


def program_ref(program):
    """``"module:function"`` naming ``program`` (a function or such a string)."""
    if isinstance(program, str):
        return program
    return f"{program.__module__}:{program.__qualname__}"


def load_program(ref):
    module, _, name = ref.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


class _Tenant:
    def __init__(self, name, pasid, dest, host_base, pages):
        self.name, self.pasid, self.dest = name, pasid, dest
        self.host_base, self.pages = host_base, pages
        self.record_addrs = []
        self.interrupts = []
        self.dma_faults = []
        self.irq_faults = []
        self.dirty = b""
        self.events = []


class Recorder:
    """Collects a program's result record as it runs on ``bus``.

    Register each tenant with :meth:`tenant`; note each completion record's
    host address with :meth:`expect_record` as it is posted; call
    :meth:`collect_faults` whenever the device is idle and :meth:`finish`
    at the end.
    """

    def __init__(self, bus, timing_counters=()):
        self.bus = bus
        #: Counters whose value depends on timing in this program (a WAIT's re-checks each
        #: make a tracker request, so DMA.CNT_ALLOWED counts them): recorded under "timing".
        self.timing_counters = tuple(timing_counters)
        self.pf = PfDriver(bus)
        self.tenants = {}
        self._by_dest = {}
        self._by_pasid = {}
        self.unattributed = []
        self.stray_interrupts = []
        bus.on_irq(self._irq)

    def tenant(self, name, *, pasid, dest, host_base, pages):
        t = _Tenant(name, pasid, dest, host_base, pages)
        self.tenants[name] = t
        self._by_dest[dest] = t
        self._by_pasid[pasid] = t
        return t

    def _irq(self, irq):
        t = self._by_dest.get(irq.dest)
        if t is None:
            self.stray_interrupts.append([irq.dest, irq.vector])
        else:
            t.interrupts.append([irq.dest, irq.vector])

    def note(self, name, *event):
        """Record a functional observation of the program's own (an ADI state it read)."""
        self.tenants[name].events.append(list(event))

    def expect_record(self, name, host_addr):
        self.tenants[name].record_addrs.append(host_addr)

    async def collect_faults(self):
        """Drain both fault queues and file each record under the tenant of its PASID."""
        dma, dma_ovf = await self.pf.pop_dma_faults()
        irq, irq_ovf = await self.pf.pop_irq_faults()
        for f in dma:
            t = self._by_pasid.get(f.pasid)
            rec = ["dma", f.reason, f.pasid, f.page, int(f.write)]
            (t.dma_faults if t else self.unattributed).append(rec)
        for f in irq:
            t = self._by_pasid.get(f.pasid)
            rec = ["irq", f.reason, f.pasid, f.handle]
            (t.irq_faults if t else self.unattributed).append(rec)
        if dma_ovf or irq_ovf:
            self.unattributed.append(["overflow", dma_ovf, irq_ovf])

    async def harvest(self, name, dom):
        t = self.tenants[name]
        t.dirty = await self.pf.harvest(dom, t.pages)

    async def finish(self):
        """The result record (a JSON-able dict)."""
        await self.collect_faults()
        out = {"tenants": {}, "timing": {"cycles": {}, "end": self.bus.now()}}
        for name, t in sorted(self.tenants.items()):
            mem = bytearray(await self.bus.mem_read(t.host_base, t.pages * PAGE))
            records, cycles = [], []
            for addr in t.record_addrs:
                raw = await self.bus.mem_read(addr, COMPLETION_BYTES)
                rec = CompletionRecord.unpack(raw)
                cycles.append(rec.cycles)
                rec.cycles = 0
                records.append(rec.pack().hex())
                # The digest leaves out what is timing: the records' cycles fields.
                off = addr - t.host_base
                if 0 <= off < len(mem):
                    mem[off:off + COMPLETION_BYTES] = rec.pack()
            out["tenants"][name] = {
                "memory": hashlib.sha256(mem).hexdigest(), "records": records,
                "interrupts": t.interrupts, "dma_faults": t.dma_faults, "irq_faults": t.irq_faults,
                "dirty": t.dirty.hex(), "events": t.events,
            }
            out["timing"]["cycles"][name] = list(zip(t.record_addrs, cycles))
        counters = await self.pf.counters()
        out["timing"]["counters"] = {k: counters.pop(k) for k in self.timing_counters}
        out["counters"] = counters
        out["unattributed"] = self.unattributed
        out["stray_interrupts"] = self.stray_interrupts
        return out


def run(program, backend="model", seed=0, params=DeviceParams(), **options):
    """Run host program ``program`` on ``backend`` (``"model"`` or ``"rtl"``); return its record.

    ``options`` go to the backend: ``timing`` (a TimingModel) for the model,
    ``waves`` for the rtl backend.
    """
    from .platform import run_program
    record = run_program(program, backend=backend, seed=seed, params=params, **options)
    return json.loads(json.dumps(record))       # the same plain types from either backend


def compare(a, b):
    """Differences between two result records, as readable lines (empty if identical)."""
    diffs = []
    for key in ("counters", "unattributed", "stray_interrupts"):
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
