"""The table of cocotb regressions: which top, which test module, which parameters.

``tests/test_sim_*.py`` (``make sim``/``make test``) and ``make waves`` read
this one table, so a regression is declared once.
"""

import json
from dataclasses import dataclass, field

__all__ = ["Regression", "REGRESSIONS", "find_test", "device_build"]


@dataclass(frozen=True)
class Regression:
    """One cocotb regression: a test module run on one build of one top."""
    name: str                 # build folder under build/sim, unique
    top: str                  # Verilog module name
    test_module: str          # dotted cocotb test module
    factory: object           # () -> Amaranth component
    public: tuple = ()        # internal signals the tests poke or peek
    env: dict = field(default_factory=dict)
    sources: tuple = ()       # other Verilog the build needs (primitive models)
    build: str = ""           # build folder, if shared with other regressions (default: name)
    quick_build: bool = False  # C++ unoptimised: the simulation is short, the compile is not
    sweep: bool = False       # a point of a parameter sweep: make sim and make soak, not make test

    def run(self, **kwargs):
        """Build and run; a traced build gets its own folder so it never races a plain one."""
        from .runner import run_cocotb
        suffix = "-waves" if kwargs.get("waves") else ""
        return run_cocotb(component=self.factory(), top=self.top, test_module=self.test_module,
                          build_name=(self.build or self.name) + suffix, run_name=self.name + suffix,
                          public=self.public, extra_env=self.env, extra_sources=self.sources,
                          quick_build=self.quick_build, **kwargs)


def _device(params):
    def make():
        from ..rtl.device import Device
        return Device(params)
    return make


#: The default Device is built once for the register and the system
#: regressions (a Verilator build of it is about a minute of compile), with
#: the internal signals either one reads public.
_DEVICE_BUILD = "device"
_DEVICE_PUBLIC = ("cycles", "tap_consume_valid", "tap_consume_adi", "tap_slice_end",
                  "tap_dispatch_valid", "tap_dispatch_adi", "tap_dispatch_engine")


def _csr_regressions():
    """The default Device, in the shared build, and the largest one (64 ADIs,
    2048 IMS entries, 64 domains), whose simulation takes seconds and whose
    build is the longest of all: its C++ is compiled unoptimised, and it is a
    sweep point (make sim, make soak)."""
    from ..rtl.params import DeviceParams
    default, largest = DeviceParams(), DeviceParams(num_adis=64, ims_entries=2048, num_domains=64,
                                                    pages_per_domain=4096)
    return [Regression(f"csr-{p.tag}", "siov_device", "siov.tb.csr.test_csr", _device(p),
                       public=_DEVICE_PUBLIC if p == default else ("cycles",),
                       env={"SIOV_PARAMS": json.dumps(p.__dict__)},
                       build=f"{_DEVICE_BUILD}-{p.tag}" if p == default else "",
                       quick_build=p == largest, sweep=p == largest) for p in (default, largest)]


def _arbiter(n, engines=1):
    def make():
        from ..rtl.cmd.arbiter import QosArbiter
        return QosArbiter(n, num_engines=engines)
    return make


def _arbiter_regressions():
    return [Regression(f"arbiter-n{n}" + (f"-e{e}" if e > 1 else ""), "siov_arbiter", "siov.tb.cmd.test_arbiter",
                       _arbiter(n, e), env={"SIOV_NUM_ADIS": str(n), "SIOV_NUM_ENGINES": str(e)})
            for n, e in ((8, 1), (64, 1), (8, 2), (64, 2))]


def _primitive_sources(primitive):
    from ..rtl.ecp5 import SIM_MODEL
    return (SIM_MODEL,) if primitive == "ecp5" else ()


def _irq(entries, pipelined, primitive=None):
    def make():
        from ..rtl.irq.top import IrqTop
        return IrqTop(entries=entries, fault_depth=16, pipelined=pipelined, primitive=primitive)
    return make


def _irq_regressions():
    """Default, largest table, one message at a time, and the ECP5 block RAM
    primitive build; all but the default run seconds of simulation, so their
    C++ is compiled unoptimised."""
    sets = [(256, True, None), (2048, True, None), (256, False, None), (256, True, "ecp5")]
    return [Regression(f"irq-e{e}" + ("" if p else "-seq") + (f"-{prim}" if prim else ""), "siov_irq",
                       "siov.tb.irq.test_irq", _irq(e, p, prim), public=("probe",),
                       env={"SIOV_IRQ_ENTRIES": str(e), "SIOV_IRQ_FAULT_DEPTH": "16",
                            "SIOV_IRQ_PIPELINED": "1" if p else "0"},
                       sources=_primitive_sources(prim), quick_build=(e, p, prim) != sets[0])
            for e, p, prim in sets]


def _dma(params, primitive=None):
    def make():
        from ..rtl.dma.top import DmaTop
        return DmaTop(params, primitive=primitive)
    return make


def _dma_regressions(scale=1):
    """The default build, a small odd one (3 domains: not a power of two; a
    sweep point with seconds of simulation, so its C++ is compiled
    unoptimised), and the default build with the ECP5 block RAM primitive."""
    from ..rtl.params import DeviceParams
    sets = [(DeviceParams(), None, False),
            (DeviceParams(num_adis=12, num_domains=3, pages_per_domain=256), None, True),
            (DeviceParams(), "ecp5", False)]
    return [Regression(f"dma-{p.tag}" + (f"-{prim}" if prim else ""), "siov_dma", "siov.tb.dma.test_dma",
                       _dma(p, prim), public=("tap_harvest", "tap_fault_pop"),
                       env={"SIOV_PARAMS": json.dumps(p.__dict__), "SIOV_DMA_SCALE": str(scale)},
                       sources=_primitive_sources(prim), quick_build=quick, sweep=quick)
            for p, prim, quick in sets]


def _adi(params):
    def make():
        from ..rtl.cmd.adi_top import AdiTop
        return AdiTop(params)
    return make


def _adi_regressions():
    """The default build (16 ADIs) and a small odd one (5 ADIs: most pages are
    beyond NUM_ADIS; a sweep point)."""
    from ..rtl.params import DeviceParams
    sets = [DeviceParams(), DeviceParams(num_adis=5)]
    return [Regression(f"adi-{p.tag}", "siov_adi", "siov.tb.cmd.test_adi", _adi(p),
                       env={"SIOV_PARAMS": json.dumps(p.__dict__)}, sweep=p != sets[0]) for p in sets]


def device_build(params, test_module=""):
    """The shared build of a Device with ``params`` (one folder per parameter set), running
    ``test_module``: the system regression, and host programs on the rtl backend. Its
    simulator serves host memory in C++ (``SIOV_HOST_MEM``, :mod:`siov.tb.host.shared`)."""
    from .runner import host_mem_dir
    return Regression(f"device-{params.tag}", "siov_device", test_module, _device(params),
                      public=_DEVICE_PUBLIC, env={"SIOV_PARAMS": json.dumps(params.__dict__),
                                                  "SIOV_HOST_MEM": host_mem_dir()},
                      build=f"{_DEVICE_BUILD}-{params.tag}")


def _system_regressions():
    from dataclasses import replace
    from ..rtl.params import DeviceParams
    p = DeviceParams()
    return [replace(device_build(p, "siov.tb.system.test_device"), name=f"system-{p.tag}")]


REGRESSIONS = {r.name: r for r in _csr_regressions() + _arbiter_regressions() + _irq_regressions()
               + _dma_regressions() + _adi_regressions() + _system_regressions()}


def find_test(test_name):
    """The first regression whose test module defines cocotb test ``test_name``.

    A parametrized cocotb test is named by its function (``test_random_traffic``)
    or with its parameters (``test_random_traffic/pattern=heavy``).
    """
    import importlib.util
    func = test_name.split("/")[0]
    for reg in REGRESSIONS.values():
        spec = importlib.util.find_spec(reg.test_module)
        if spec and spec.origin:
            text = open(spec.origin).read()
            # cocotb tests are async functions; pyuvm tests are uvm_test classes.
            if f"async def {func}(" in text or f"class {func}(" in text:
                return reg
    known = sorted({r.test_module for r in REGRESSIONS.values()})
    raise LookupError(f"No regression defines a test named {func!r}; test modules: {', '.join(known)}")
