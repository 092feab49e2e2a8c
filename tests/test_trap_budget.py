"""TrapBudget: a tenant's share of trapped control work is bounded per window, as an arbiter bounds engine time."""

import pytest

from siov.rtl.params import DeviceParams
from siov.sw.bus import BusLock
from siov.sw.hv.traps import TrapBudget
from siov.sw.platform import vtime
from siov.sw.platform.model import ModelBus


class _T:
    """A stand-in tenant: the budget keys on identity only."""

    def __init__(self, name):
        self.name = name


def _run(program):
    async def main():
        return await program(ModelBus(DeviceParams()))
    return vtime.run(main())


@pytest.mark.parametrize("window, budget", [(0, 1), (10, 0), (10, 11), (10.0, 5), (True, 1)])
def test_bad_parameters_are_refused(window, budget):
    with pytest.raises(ValueError, match="Trap budget"):
        TrapBudget(object(), window=window, budget=budget)


@pytest.mark.parametrize("tenants", [1, 2, 3])
def test_a_tenant_trapping_without_pause_gets_at_most_its_budget(tenants):
    """Attackers trap back to back for 20 windows; each one's trapped work per window stays within budget
    (plus the one trap that may start just before the budget runs out), and the victim's lone trap waits
    at most one trap of each attacker."""
    window, budget, hold, windows = 1000, 250, 30, 20

    async def program(bus):
        lock, traps = BusLock(bus), TrapBudget(bus, window=window, budget=budget)
        attackers = [_T(f"a{i}") for i in range(tenants)]
        per_window = {a: [0] * (windows + 1) for a in attackers}

        async def attack(a):
            while bus.now() < windows * window:
                async with traps.charge(a):
                    async with lock:
                        per_window[a][bus.now() // window] += hold
                        await bus.wait_cycles(hold)

        tasks = [bus.spawn(attack(a)) for a in attackers]
        victim, worst = _T("victim"), 0
        for k in range(windows - 1):
            await bus.wait_cycles(window - bus.now() % window + 400)   # mid-window, budgets spent
            asked = bus.now()
            async with traps.charge(victim):
                async with lock:
                    worst = max(worst, bus.now() - asked)
                    await bus.wait_cycles(hold)
        for t in tasks:
            await t
        return per_window, worst, traps.throttled

    per_window, worst, throttled = _run(program)
    for a, cycles in per_window.items():
        assert max(cycles) <= budget + hold, f"{a.name} used {max(cycles)} cycles of one window"
        assert throttled[a] >= windows - 2
    assert worst <= tenants * hold


def test_queueing_behind_another_tenant_is_not_billed():
    """A tenant that waits for the lock is billed only from the moment its work starts."""
    async def program(bus):
        lock, traps = BusLock(bus), TrapBudget(bus, window=10_000, budget=100)
        a, b = _T("a"), _T("b")

        async def hog():
            async with lock:
                await bus.wait_cycles(500)

        h = bus.spawn(hog())
        await bus.wait_cycles(1)
        async with lock:                          # queue behind the hog first
            pass
        async with traps.charge(b):
            await bus.wait_cycles(40)
        await h
        return traps.spent(a), traps.spent(b)

    assert _run(program) == (0, 40)


def test_forgotten_tenant_starts_afresh():
    async def program(bus):
        traps = TrapBudget(bus, window=10_000, budget=100)
        t = _T("t")
        async with traps.charge(t):
            await bus.wait_cycles(150)
        spent = traps.spent(t)
        traps.forget(t)
        return spent, traps.spent(t)

    assert _run(program) == (150, 0)
