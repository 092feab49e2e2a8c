"""The backends of the Bus protocol, and one entry to run a host program on either.

* ``model``: :class:`~siov.sw.platform.model.ModelBus`, the whole Device in
  Python on a virtual-time asyncio loop (:mod:`siov.sw.platform.vtime`);
* ``rtl``: the Verilated Device under cocotb. Its bus lives in
  :mod:`siov.tb.host` (sw/ never imports cocotb); this package only starts
  it through the cocotb runner and reads the result back.

A host program is named by ``"module:function"`` (:func:`program_ref`,
:func:`load_program`): the rtl backend imports it by that name inside the
simulator.
"""

import importlib

from ...rtl.params import DeviceParams

__all__ = ["run_program", "BACKENDS", "program_ref", "load_program"]

BACKENDS = ("model", "rtl")


def program_ref(program):
    """``"module:function"`` naming ``program`` (a function or such a string)."""
    if isinstance(program, str):
        return program
    return f"{program.__module__}:{program.__qualname__}"


def load_program(ref):
    """The function that ``"module:function"`` names."""
    module, _, name = ref.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def run_program(program, backend="model", seed=0, params=DeviceParams(), arg=None, **options):
    """Run ``async def program(bus, seed)`` on ``backend``; return what it returns.

    With ``arg`` (JSON-able), the program is called as ``program(bus, seed, arg)``.

    ``program`` is a function or a ``"module:function"`` string; on the rtl
    backend it must be importable by that name, and its result must be
    JSON-able (it crosses into the simulator's process and back).

    Options: ``timing`` (:class:`~siov.sw.platform.timing.TimingModel`) and
    ``bus_hook`` (called with the new ModelBus) for the model backend;
    ``waves`` (dump a waveform) and ``quiet`` (the simulator's output to a log file) for the
    rtl backend.
    """
    if backend == "model":
        from . import vtime
        from .model import ModelBus
        fn = load_program(program) if isinstance(program, str) else program

        async def main():
            bus = ModelBus(params, timing=options.get("timing"))
            if options.get("bus_hook"):
                options["bus_hook"](bus)
            return await (fn(bus, seed) if arg is None else fn(bus, seed, arg))
        return vtime.run(main())
    if backend == "rtl":
        from ...tb.host.run import run_on_rtl
        return run_on_rtl(program_ref(program), seed=seed, params=params, waves=options.get("waves", False),
                          arg=arg, quiet=options.get("quiet", False))
    raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
