"""Device state across backends: a state saved on the model restores onto a fresh rtl
Device and reads back register for register, and the rtl Device's own save restores onto
a fresh model (one seed, in the rtl backend's shared build)."""

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
