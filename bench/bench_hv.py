"""Benchmark of the hypervisor and the guest driver (make bench BENCH=hv).

On the model backend (device time, so the figures do not depend on the host):

* map hypercalls per ``dma_map`` for a workload that maps and unmaps the same
  buffers again and again: this driver (fast-path map first, a hypercall only
  for a page that is not pinned) against a naive one (a hypercall on every map);
* slow-path traps per submitted descriptor;
* pinned memory over time for a working set that moves through guest memory,
  under each lazy-unpin policy and under static pinning of the whole guest
  (as coIOMMU's evaluation compares them), plotted to docs/pinned_memory.png.

On the rtl backend: cycles from a completion record becoming visible to its
interrupt being raised in the tenant's virtual interrupt controller.

Writes build/bench/hv.json.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
PLOT = ROOT / "docs" / "pinned_memory.png"
PAGE = 4096


async def _vm(bus, hv, pages, ring=16):
    from siov.sw.guest.driver import FrontendDriver
    from siov.sw.hv.hypervisor import TenantKind
    t = await hv.create_tenant("vm0", TenantKind.VM, pages)
    vdev = await hv.vdcm.create(t)
    drv = await FrontendDriver(vdev).open()
    await drv.queues[0].open(ring)
    await drv.queues[0].enable()
    return t, vdev, drv


def hypercalls():
    from siov.sw.guest.driver import FrontendDriver
    from siov.sw.hv.hypervisor import Hypervisor
    from siov.sw.platform import run_program

    class NaiveDriver(FrontendDriver):
        """Pins on every map, as a driver without the DMA bitmap must."""

        async def dma_map(self, addr, nbytes):
            for page in self.memory.pages_of(addr, nbytes):
                self.stats["maps"] += 1
                self.stats["map_hypercalls"] += 1
                await self.vdev.hypercall_map(page)
                await self.vdev.guest_map(page)

    async def workload(bus, seed, naive):
        hv = Hypervisor(bus)
        await hv.start()
        t, vdev, drv = await _vm(bus, hv, 128)
        if naive:
            drv.__class__ = NaiveDriver
        bufs = [t.memory.alloc(2 * PAGE) for _ in range(8)]
        before = dict(drv.stats)
        for _ in range(20):
            for b in bufs:
                await drv.dma_map(b, 2 * PAGE)
            for b in bufs:
                await drv.dma_unmap(b, 2 * PAGE)
        maps = drv.stats["maps"] - before["maps"]
        calls = drv.stats["map_hypercalls"] - before["map_hypercalls"]
        return {"maps": maps, "hypercalls": calls, "hypercalls_per_map": round(calls / maps, 4),
                "hypercalls_after_first_pin": calls - 16}

    ours = run_program(lambda bus, seed: workload(bus, seed, False))
    naive = run_program(lambda bus, seed: workload(bus, seed, True))
    return {"workload": "8 buffers of 2 pages, mapped and unmapped 20 times", "this_driver": ours,
            "naive_driver": naive}


def traps():
    from siov.rtl.cmd.dsa import Opcode
    from siov.sw.hv.hypervisor import Hypervisor
    from siov.sw.model.dsa import Descriptor
    from siov.sw.platform import run_program

    async def prog(bus, seed):
        hv = Hypervisor(bus)
        await hv.start()
        t, vdev, drv = await _vm(bus, hv, 32, ring=64)
        q = drv.queues[0]
        buf = t.memory.alloc(2 * PAGE)
        await drv.dma_map(buf, 2 * PAGE)
        before, n = vdev.traps, 0
        for _ in range(20):
            tickets = await q.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=buf, dst_addr=buf + PAGE,
                                                 xfer_size=512)] * 8, interrupt=True)
            for tk in tickets:
                await q.wait(tk)
            n += len(tickets)
        return {"descriptors": n, "traps": vdev.traps - before,
                "traps_per_descriptor": (vdev.traps - before) / n, "fast_path_accesses": vdev.fast_path}
    return run_program(prog)


def pinned_over_time():
    from siov.rtl.cmd.dsa import Opcode
    from siov.sw.hv.hypervisor import Hypervisor
    from siov.sw.hv.unpin import LruUnpin, NeverUnpin, ThresholdUnpin
    from siov.sw.model.dsa import Descriptor
    from siov.sw.platform import run_program

    pages, window, step, steps = 512, 48, 8, 60

    async def prog(bus, seed, policy, static):
        hv = Hypervisor(bus, unpin_policy=policy)
        await hv.start()
        t, vdev, drv = await _vm(bus, hv, pages)
        base = 8                                     # ring and records live below
        if static:
            await hv.hc_map(t, 0, pages)
        series = []
        q = drv.queues[0]
        for s in range(steps):
            lo = base + (s * step) % (pages - base - window)
            for p in range(lo, lo + window):
                await drv.dma_map(p * PAGE, PAGE)
            (tk,) = await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=lo * PAGE, xfer_size=window * PAGE,
                                               src_addr=s)])
            await q.wait(tk)
            # The hypervisor's periodic scan finds the working set mapped and the pages
            # that left it unmap-requested.
            await hv.lazy_unpin(t)
            series.append((bus.now(), len(await hv.pinned_pages(t))))
            await bus.wait_cycles(2000)
            for p in range(lo, lo + window):
                await drv.dma_unmap(p * PAGE, PAGE)
        return {"series": series, "hypercalls": t.hypercalls["map"], "unpinned": t.unpinned}

    runs = {"static pinning": (NeverUnpin(), True), "never unpin": (NeverUnpin(), False),
            "threshold 128 pages": (ThresholdUnpin(128), False), "LRU 150k cycles": (LruUnpin(150_000), False),
            "LRU 40k cycles": (LruUnpin(40_000), False)}
    data = {name: run_program(lambda bus, seed, p=p, st=st: prog(bus, seed, p, st)) for name, (p, st) in runs.items()}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, d in data.items():
        xs, ys = zip(*d["series"])
        ax.plot([x / 1000 for x in xs], [y * 4 for y in ys], label=name)
    ax.set_xlabel("device time (k cycles)")
    ax.set_ylabel("pinned guest memory (KiB)")
    ax.set_title(f"Working set of {window} pages moving through {pages} pages")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    return {name: {"peak_pinned_pages": max(y for _, y in d["series"]),
                   "final_pinned_pages": d["series"][-1][1],
                   "mean_pinned_pages": round(sum(y for _, y in d["series"]) / len(d["series"]), 1),
                   "map_hypercalls": d["hypercalls"], "pages_unpinned": d["unpinned"]}
            for name, d in data.items()}


def irq_latency():
    from siov.sw.platform import run_program
    lat = run_program("siov.sw.programs.probe:irq_latency", "rtl")
    model = run_program("siov.sw.programs.probe:irq_latency", "model")
    return {"rtl_cycles": lat, "model_cycles": model,
            "what": "record visible in guest memory (polled every cycle) to vector raised in the VM's vIC"}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"title": "Hypervisor and guest driver (device cycles)", "map_hypercalls": hypercalls(),
              "slow_path_traps": traps(), "pinned_memory": pinned_over_time(),
              "interrupt_delivery": irq_latency()}
    result["pinned_memory"]["plot"] = str(PLOT.relative_to(ROOT))
    (OUT / "hv.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
