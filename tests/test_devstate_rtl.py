"""Device state across backends: a state saved on the model restores onto a fresh rtl
Device and reads back register for register, and the rtl Device's own save restores onto
a fresh model (one seed, in the rtl backend's shared build); an interrupt pending at save
reaches the guest on the rtl Device as on the model."""

import pytest

from siov.rtl.params import DeviceParams
from siov.sw.hv import devstate
from siov.sw.hv.pf import PfDriver
from siov.sw.platform import run_program, vtime
from siov.sw.platform.model import ModelBus
from siov.sw.programs.save_restore import build_state, read_all
from siov.sw.results import device_fingerprint

PARAMS = DeviceParams()


def test_state_moves_between_model_and_rtl():
    fp = device_fingerprint(PARAMS)

    async def on_model():
        bus = ModelBus(PARAMS)
        pf = await build_state(bus, 7)
        before = await read_all(bus)
        return before, (await devstate.save(pf, whole=True, fingerprint=fp)).hex()
    before, blob = vtime.run(on_model())
    out = run_program("siov.sw.programs.save_restore:cross_backend", backend="rtl", seed=11, params=PARAMS,
                      arg={"blob": blob, "fingerprint": fp})
    diffs = {k: (v, out["restored"][k]) for k, v in before.items() if out["restored"][k] != v}
    assert not diffs, diffs

    async def back_on_model():
        bus = ModelBus(PARAMS)
        pd = PfDriver.of(bus)
        await devstate.restore(pd, bytes.fromhex(out["blob"]), fingerprint=fp)
        return await read_all(bus)
    after = vtime.run(back_on_model())
    diffs = {k: (v, after[k]) for k, v in out["built"].items() if after[k] != v}
    assert not diffs, diffs
    assert out["built"]["GLOBAL.SCRATCH"] == 11


@pytest.mark.sim
@pytest.mark.parametrize("fire_again", [False, True])
def test_interrupt_pending_at_save_on_rtl(fire_again):
    """tests/test_devstate.py's pending-interrupt program on the rtl Device: the same
    interrupts in the same order as the model's run without the save, and the entry
    pending again before the unmask exactly when another interrupt went through it."""
    arg = {"fire_again": fire_again, "fingerprint": device_fingerprint(PARAMS)}
    program = "siov.sw.programs.save_restore:pending_across_save"
    # One seed per case (the program ignores it): each rtl run gets its own run folder.
    rtl = run_program(program, backend="rtl", seed=int(fire_again), params=PARAMS, arg={**arg, "move": True})
    golden = run_program(program, backend="model", params=PARAMS, arg={**arg, "move": False})
    assert rtl["interrupts"] == golden["interrupts"]
    assert rtl["pending_handles"] == [0]
    assert rtl["pending_before_unmask"] is fire_again and rtl["delivered"] is not fire_again
