"""Bitmap RAM of the DMA tracker: a simple dual-port block RAM with a registered output.

One write port, one read port, 32-bit words. A read address presented in
cycle ``c`` (sampled at the clock edge that ends ``c``) gives its word on
``r_data`` in cycle ``c + 2``: the block RAM's own read register, then an
output register. The output register is what lets the tracker run at its
clock: an ECP5 DP16KD without its output register has a clock-to-out of about
5.8 ns, with it about 1 ns.

The word read is the memory as it stood after every write made before cycle
``c``. A write made in cycle ``c`` itself (same edge) to the same address is
either also seen (``transparent=True``: the written word is substituted, by
a bypass after the output register) or must not matter to the user
(``transparent=False``: the tracker forwards those writes itself). That makes
the read-during-write behaviour of the block RAM irrelevant, so both
implementations behave identically cycle for cycle.

``write_reg=True`` puts a register stage in front of the write port: a
write made in cycle ``c`` reaches the block RAM at the end of ``c + 1``. The
block RAM's data and address pins then hang off flip-flops that can sit by
the RAM, however far the logic that makes the write is placed (on the ECP5
that route alone is 2.3 to 2.6 ns). The contract above is kept by a second
bypass: a read presented in the cycle where a registered write lands does not
see it in the RAM and is given that write's word after the output register.
With ``bypass_landing=False`` that substitution is left to the user, who gets
it as a flag and a word beside ``r_data`` (``landing_hits``,
``landing_words``) and can apply it a stage later, off the path from the
block RAM's output.

The two implementations:

* ``primitive=None`` (default): an Amaranth :class:`~amaranth.lib.memory.Memory`
  (inferred block RAM) followed by a fabric register. This is what
  simulation, formal proofs and lint see.
* ``primitive="ecp5"``: Lattice ECP5 ``DP16KD`` instances in 1024 x 18 mode
  (two per 32-bit word, 16 bits each), port A writes, port B reads with
  ``REGMODE_B = "OUTREG"`` (the output register inside the block RAM), see
  :mod:`siov.rtl.ecp5`. Simulated with the behavioural model
  ``tb/models/dp16kd.v``. Depth at most 1024 words.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib.memory import Memory
from amaranth.utils import ceil_log2

from ..ecp5 import DP16KD_DEPTH, dp16kd

__all__ = ["BitmapRam", "PRIMITIVES", "chunk_equal"]

#: Accepted values of ``primitive``.
PRIMITIVES = (None, "ecp5")


def chunk_equal(m, a, b, name, chunk=3):
    """``a == b`` (the narrower one zero-extended) by ``chunk``-bit slices,
    each slice's compare registered: returns the register, whose ``.all()``
    a cycle later is the equality. For compares one cycle can't hold, above
    all where one side is a block RAM address register (placed by the RAM's
    pins, far from the other side): a 3-bit compare is one LUT, a wide one a
    chain of them."""
    width = max(len(a), len(b))
    a, b = (Cat(v, Const(0, width - len(v))) if len(v) < width else v for v in (a, b))
    eq = Signal(-(-width // chunk), name=name)
    m.d.sync += eq.eq(Cat(*(a[k:k + chunk] == b[k:k + chunk] for k in range(0, width, chunk))))
    return eq


class BitmapRam(Elaboratable):
    """RAM of 32-bit words, one write port and read ports of latency 2 (registered output).

    Each read port is one simple dual-port block RAM (a second read port
    costs a second copy, written alike); the behavioural model is one memory
    with several read ports.

    Parameters
    ----------
    transparent : tuple of bool
        One per read port: whether it sees a write made in its own address
        cycle.
    write_reg : bool
        Register the write port (see the module's description); the read
        ports behave the same.
    bypass_landing : bool
        With ``write_reg``: substitute the landing write's word in
        ``r_data`` (default), or leave it to the user (``landing_hits``,
        ``landing_words``).

    Attributes
    ----------
    w_en, w_addr, w_data : Signal
        Write port (written at the end of the cycle, or of the next one
        with ``write_reg``).
    landing_hits, landing_words : list of Signal
        With ``write_reg`` and ``bypass_landing=False``, per read port,
        aligned with ``r_data``: the read's word is ``landing_words[i]``
        where ``landing_hits[i]`` is set, else ``r_data``.
    landing : tuple of Signal or None
        With ``write_reg``: ``(en, addr, data)`` of the registered write
        that lands at the end of this cycle (what a formal harness adds to
        the memory's contents to see every write made so far).
    r_addr : Signal
        Read address of port 0, sampled at the end of the cycle.
    r_data : Signal(32)
        The word port 0 read two cycles earlier.
    r_addrs, r_datas : list of Signal
        The same for every read port.
    """

    def __init__(self, depth, *, transparent=(False,), write_reg=False, bypass_landing=True, primitive=None,
                 name="ram"):
        if primitive not in PRIMITIVES:
            raise ValueError(f"Block RAM primitive must be one of {PRIMITIVES}, not {primitive!r}")
        if primitive == "ecp5" and depth > DP16KD_DEPTH:
            raise ValueError(f"The ECP5 bitmap RAM holds at most {DP16KD_DEPTH} words, not {depth}")
        if write_reg and not bypass_landing and any(transparent):
            # (its own-cycle write would have to be substituted after the landing one)
            raise ValueError("A transparent read port needs the landing write substituted inside "
                             "(bypass_landing=True)")
        self.depth = depth
        self.transparent = tuple(transparent)
        self.write_reg = write_reg
        self.bypass_landing = bypass_landing
        self.primitive = primitive
        aw = max(1, ceil_log2(depth))
        self.aw = aw
        self.w_en = Signal(name=f"{name}_w_en")
        self.w_addr = Signal(aw, name=f"{name}_w_addr")
        self.w_data = Signal(32, name=f"{name}_w_data")
        self.landing = ((Signal(name=f"{name}_wq_en"), Signal(aw, name=f"{name}_wq_addr"),
                         Signal(32, name=f"{name}_wq_data")) if write_reg else None)
        n = len(self.transparent)
        self.r_addrs = [Signal(aw, name=f"{name}_r{i}_addr") for i in range(n)]
        self.r_datas = [Signal(32, name=f"{name}_r{i}_data") for i in range(n)]
        self.r_addr, self.r_data = self.r_addrs[0], self.r_datas[0]
        outside = write_reg and not bypass_landing
        self.landing_hits = [Signal(name=f"{name}_r{i}_land") for i in range(n)] if outside else []
        self.landing_words = [Signal(32, name=f"{name}_r{i}_land_data") for i in range(n)] if outside else []
        # The behavioural memory (so a formal harness can add read ports to it).
        self.mem = Memory(shape=32, depth=depth, init=[]) if primitive is None else None

    def elaborate(self, platform):
        m = Module()
        # What the block RAM is written with: the port, or its register.
        w_en, w_addr, w_data = self.w_en, self.w_addr, self.w_data
        if self.write_reg:
            w_en, w_addr, w_data = self.landing
            m.d.sync += [w_en.eq(self.w_en), w_addr.eq(self.w_addr), w_data.eq(self.w_data)]
        if self.primitive is None:
            m.submodules.mem = mem = self.mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(w_en), wp.addr.eq(w_addr), wp.data.eq(w_data)]
        for i, (r_addr, r_data, transparent) in enumerate(zip(self.r_addrs, self.r_datas, self.transparent)):
            q = Signal(32, name=f"q{i}")      # the output register (cycle c + 2)
            if self.primitive is None:
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(r_addr), rp.en.eq(1)]
                m.d.sync += q.eq(rp.data)
            else:
                self._ecp5(m, q, r_addr, i, w_en, w_addr, w_data)
            if self.write_reg:
                # The registered write landing in the read's address cycle:
                # the RAM misses it, its word is substituted (here or by the user).
                hit, word = self._collision(m, w_en, w_addr, w_data, r_addr, f"land{i}")
                if self.bypass_landing:
                    q = self._substitute(m, q, hit, word, f"land{i}")
                else:
                    m.d.comb += [self.landing_hits[i].eq(hit), self.landing_words[i].eq(word)]
            if transparent:
                # A write in the read's own cycle: substitute its word after the
                # output register (the block RAM's collision result is not used).
                hit, word = self._collision(m, self.w_en, self.w_addr, self.w_data, r_addr, f"coll{i}")
                q = self._substitute(m, q, hit, word, f"coll{i}")
            m.d.comb += r_data.eq(q)
        return m

    @staticmethod
    def _collision(m, w_en, w_addr, w_data, r_addr, name):
        """Whether a write (``w_*``) made in the read's address cycle hits the
        read's address, and its word, both registers aligned with the read's
        data (the compare registered by chunks, ANDed in the next cycle)."""
        en0 = Signal(name=f"{name}_en")
        eq0 = chunk_equal(m, w_addr, r_addr, f"{name}_eq")
        hit = Signal(name=name)
        wd = [Signal(32, name=f"{name}_data{k}") for k in (1, 2)]
        m.d.sync += [en0.eq(w_en), wd[0].eq(w_data), hit.eq(en0 & eq0.all()), wd[1].eq(wd[0])]
        return hit, wd[1]

    @staticmethod
    def _substitute(m, q, hit, word, name):
        out = Signal(32, name=f"{name}_q")
        m.d.comb += out.eq(Mux(hit, word, q))
        return out

    def _ecp5(self, m, q, r_addr, port, w_en, w_addr, w_data):
        # Two x18 DP16KDs per 32-bit word, 16 bits each: port A writes,
        # port B reads into its output register.
        for half in range(2):
            m.submodules[f"dp16kd{port}_{half}"] = dp16kd(f"dp16kd{port}_{half}", a=dict(
                addr=w_addr, we=w_en, wdata=w_data[16 * half:][:16],
            ), b=dict(addr=r_addr, rdata=q[16 * half:][:16], regmode="OUTREG"))
