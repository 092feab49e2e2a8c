"""Lattice ECP5 block RAM (``DP16KD``) instances in 1024 x 18 mode, with the output register.

Why: as ``synth_ecp5`` infers it, a DP16KD never uses its output register,
and its clock-to-out is then about 5.6 ns (nextpnr's ECP5 timing data), most
of a 200 MHz cycle before any routing. With ``REGMODE = "OUTREG"`` the
register inside the block RAM holds the word one cycle after the array read,
and its clock-to-out is about 1 ns. A design that reads a block RAM straight
into a register can use the primitive instead of the inferred memory and the
register, with the same latency, which is what the ``primitive="ecp5"``
options of the interrupt remapper and the DMA tracker's bitmap RAM do.

Port semantics used here (Lattice TN1264, *ECP5 and ECP5-5G Memory Usage
Guide*, DP16KD): in x18 mode the word address is ``AD[13:4]``, and on a
write ``AD[1:0]`` enable the two 9-bit halves of the data; ``WRITEMODE``
``READBEFOREWRITE`` puts the old word on the array output during a write;
``CE`` enables the port, ``OCE`` the output register. Chip selects are tied
off (``CSDECODE = 0b000``), resets and GSR are not used.

Simulation and lint use ``tb/models/dp16kd.v``, a behavioural model of that
subset (:data:`SIM_MODEL`), so the tests run the same instance wiring that
synthesis maps.
"""

import pathlib

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal

__all__ = ["DP16KD_DEPTH", "DP16KD_WIDTH", "SIM_MODEL", "dp16kd"]

#: Words and bits of one DP16KD in x18 mode.
DP16KD_DEPTH = 1024
DP16KD_WIDTH = 18
#: Behavioural model of the primitive's x18 subset, for Verilator.
SIM_MODEL = pathlib.Path(__file__).resolve().parent.parent / "tb" / "models" / "dp16kd.v"

_REGMODES = ("NOREG", "OUTREG")
_WRITEMODES = ("NORMAL", "WRITETHROUGH", "READBEFOREWRITE")


def _port(ports, side, spec, name):
    """Fill the ports of side ``"A"`` or ``"B"`` from ``spec`` (None: idle)."""
    spec = dict(spec or {})
    addr = spec.pop("addr", Const(0, 10))
    we = spec.pop("we", Const(0))
    wdata = spec.pop("wdata", Const(0, DP16KD_WIDTH))
    rdata = spec.pop("rdata", None)
    regmode = spec.pop("regmode", "NOREG")
    writemode = spec.pop("writemode", "NORMAL")
    if spec:
        raise TypeError(f"Unknown DP16KD port option(s) {sorted(spec)}")
    if len(addr) > 10:
        raise ValueError(f"A DP16KD in x18 mode has 10 address bits, not {len(addr)}")
    if regmode not in _REGMODES or writemode not in _WRITEMODES:
        raise ValueError(f"DP16KD REGMODE must be one of {_REGMODES} and WRITEMODE one of "
                         f"{_WRITEMODES}, not {regmode!r}/{writemode!r}")
    s = side.lower()
    ports[f"p_REGMODE_{side}"] = regmode
    ports[f"p_WRITEMODE_{side}"] = writemode
    ports[f"p_DATA_WIDTH_{side}"] = DP16KD_WIDTH
    ports[f"p_CSDECODE_{side}"] = "0b000"
    ports[f"i_CLK{side}"] = ClockSignal()
    ports[f"i_CE{side}"] = Const(1)
    ports[f"i_OCE{side}"] = Const(1)
    ports[f"i_RST{side}"] = Const(0)
    ports[f"i_WE{side}"] = we
    for i in range(3):
        ports[f"i_CS{side}{i}"] = Const(0)
    word = Cat(addr, Const(0, 10 - len(addr)))
    for i in range(14):
        # x18: AD[1:0] are the byte (9-bit half) enables of a write; AD[3:2] unused.
        ports[f"i_AD{side}{i}"] = Const(1) if i < 2 else Const(0) if i < 4 else word[i - 4]
    wdata = Cat(wdata, Const(0, DP16KD_WIDTH - len(wdata)))
    out = rdata if rdata is not None else Signal(DP16KD_WIDTH, name=f"{name}_do{s}")
    for i in range(DP16KD_WIDTH):
        ports[f"i_DI{side}{i}"] = wdata[i]
        ports[f"o_DO{side}{i}"] = out[i] if i < len(out) else Signal(name=f"{name}_do{s}{i}_nc")


def dp16kd(name, *, a=None, b=None):
    """One DP16KD in x18 mode (1024 words of 18 bits), as an Amaranth ``Instance``.

    Parameters
    ----------
    name : str
        Prefix of the signals created for unused outputs.
    a, b : dict or None
        Port A and port B: ``addr`` (up to 10 bits), ``we``, ``wdata`` (up
        to 18 bits), ``rdata`` (a Signal of up to 18 bits to drive, or
        omitted), ``regmode`` (``"NOREG"`` or ``"OUTREG"``) and ``writemode``
        (``"NORMAL"``, ``"WRITETHROUGH"`` or ``"READBEFOREWRITE"``). ``None``
        leaves the port idle (never written; its output unused).

    Returns
    -------
    amaranth.hdl.Instance
    """
    ports = dict(p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_GSR="DISABLED")
    _port(ports, "A", a, name)
    _port(ports, "B", b, name)
    return Instance("DP16KD", **ports)
