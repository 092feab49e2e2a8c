"""Arbiter measurements on the Verilator simulation, for bench/bench_arbiter.py.

Measured (all in clock cycles, so independent of the host):
* decision latency: request raised -> grant valid, with no competition;
* WRR: each ADI's share of grants against its weight share, saturated;
* QoS: each ADI's share of dispatched cost against its quantum share, and the
  largest overrun of a slice (cost dispatched in one slice beyond the quantum).
Results are written as JSON to ``$SIOV_BENCH_OUT``.
"""

import collections
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from siov.sw.model.arbiter import Policy
from siov.tb.cmd.stimulus import AdiQueues
from siov.tb.layouts import pack_array

N = int(os.environ.get("SIOV_NUM_ADIS", "8"))
W = 24


async def setup(dut, policy, weight=None, quantum=None, slice_cycles=0):
    Clock(dut.clk, 10, unit="ns").start()
    dut.req.value = 0
    dut.cost.value = 0
    dut.grant0__ready.value = 1
    dut.policy.value = int(policy)
    dut.weight.value = pack_array(weight or [1] * N, 8)
    dut.quantum.value = pack_array(quantum or [0] * N, W)
    dut.slice_cycles.value = slice_cycles
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def drive(dut, queues, cycles, slice_cycles=0):
    """Saturating traffic; returns [(cycle, adi, cost)] of taken grants."""
    grants = []
    for t in range(cycles):
        await FallingEdge(dut.clk)
        if int(dut.grant0__valid.value) and int(dut.grant0__ready.value):
            pass
        queues.arrive()
        dut.req.value = pack_array([int(r) for r in queues.req()], 1)
        dut.cost.value = pack_array(queues.cost(), W)
        # Sample the grant that the coming edge takes (ready is held at 1).
        if int(dut.grant0__valid.value):
            adi = int(dut.grant0__payload.value)
            grants.append((t, adi, queues.pop(adi)))
            dut.req.value = pack_array([int(r) for r in queues.req()], 1)
            dut.cost.value = pack_array(queues.cost(), W)
    return grants


@cocotb.test()
async def bench_arbiter(dut):
    results = {"num_adis": N}
    # Decision latency.
    await setup(dut, Policy.RR)
    await FallingEdge(dut.clk)
    dut.req.value = 1 << (N // 2)
    dut.grant0__ready.value = 0
    latency = 0
    while True:
        await FallingEdge(dut.clk)
        latency += 1
        if int(dut.grant0__valid.value):
            break
    results["decision_latency_cycles"] = latency
    dut.req.value = 0
    dut.grant0__ready.value = 1
    await ClockCycles(dut.clk, 4)

    rng = random.Random(1)
    # WRR shares.
    weights = [1 + (i % 4) for i in range(N)]
    await setup(dut, Policy.WRR, weight=weights)
    q = AdiQueues(N, rng, arrival=1.0, cost_range=(1, 1))
    grants = await drive(dut, q, 8000)
    counts = collections.Counter(a for _, a, _ in grants)
    total = sum(counts.values())
    wsum = sum(weights)
    results["wrr_grants"] = total
    results["wrr_max_share_error"] = round(max(abs(counts[i] / total - weights[i] / wsum) for i in range(N)), 4)
    results["grants_per_cycle_saturated"] = round(total / 8000, 3)

    # QoS time slices.
    slice_cycles = 400
    quantum = [20 + 10 * (i % 5) for i in range(N)]
    await setup(dut, Policy.QOS, quantum=quantum, slice_cycles=slice_cycles)
    q = AdiQueues(N, rng, arrival=1.0, cost_range=(5, 40))
    cycles = 40 * slice_cycles
    grants = await drive(dut, q, cycles)
    per_slice = collections.defaultdict(lambda: collections.Counter())
    for t, adi, cost in grants:
        per_slice[t // slice_cycles][adi] += cost
    overrun = max(max(0, c[a] - quantum[a]) for c in per_slice.values() for a in c)
    spent = collections.Counter()
    for t, adi, cost in grants:
        spent[adi] += cost
    total_cost = sum(spent.values())
    qsum = sum(quantum)
    results["qos_slices"] = len(per_slice)
    results["qos_max_overrun_cost"] = overrun
    results["qos_max_overrun_fraction_of_quantum"] = round(
        max(max(0, c[a] - quantum[a]) / quantum[a] for c in per_slice.values() for a in c), 3)
    results["qos_max_share_error"] = round(max(abs(spent[i] / total_cost - quantum[i] / qsum) for i in range(N)), 4)
    results["qos_starved_adis"] = sum(1 for i in range(N) if spent[i] == 0)
    out = os.environ.get("SIOV_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
    dut._log.info(json.dumps(results, indent=1))
