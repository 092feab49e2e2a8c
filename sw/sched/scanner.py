"""The command scanner: every ring's pending descriptors, read before the device runs them.

GVT-g traps each submission to scan it; siov does not have to. The
hypervisor owns host memory and reads each ADI's HEAD and TAIL through the
PF (:meth:`~siov.sw.hv.pf.PfDriver.ring_tail`, :meth:`~siov.sw.hv.pf.PfDriver.ring_head`), so the scanner reads the
pending window HEAD .. TAIL - 1 of each ring from guest memory, with no trap:
the fast path (the doorbell) stays as it is. Host reads of host memory take
no device time; a ring costs one or two MMIO accesses (its pointers) a scan.

For each descriptor (:class:`ScannedDescriptor`) it tells, from the opcode
table (:mod:`siov.sw.sched.opcodes`):

* the guest pages it reads and writes, its completion record included;
* its semaphore, for WAIT and SIGNAL, and the interrupt handle it raises;
* its predicted cycles, from the timing model fitted on the RTL
  (:mod:`siov.sw.platform.timing`);
* an audit, as GVT-g audits the addresses of a command: against the device's
  rules (GENCAP, as :class:`~siov.sw.hv.pf.DeviceCaps` reports them; the
  checks in the engine's order) and the tenant's mappings (the tracker's
  MAPPED bitmap and the domain's window), the descriptor will run
  (:attr:`Verdict.RUN`), fault (:attr:`Verdict.FAULT`, with the address), be
  failed by a check (:attr:`Verdict.REFUSED`, with the status), be refused
  for its PASID (:attr:`Verdict.PASID`: the ADI goes to ERROR), or cannot be
  fetched at all (:attr:`Verdict.UNFETCHABLE`).

Rules:

* **Incremental.** A ring's entries are read once: a scan reads only the
  slots that entered the window since the last scan, and hands back the
  descriptors that left it (run, or aborted) as retired.
* **Cheap.** A scan of a ring reads its TAIL (one access of its doorbell
  page); how far the ring has run it learns from the completion records
  (host memory: a written record means its descriptor and every one before
  it in the ring ran, since one engine runs a ring in order), and it reads
  HEAD only when the records cannot tell (a descriptor without a record, a
  TAIL that moved back, a ring that has not moved since the last full scan,
  or ``trust_records=False``). Between scans, :meth:`CommandScanner.poll`
  looks at guest memory alone: the records, and the slot at each ring's
  TAIL, whose new bytes *hint* that the guest has posted there.
* **Guest memory is never trusted.** Any 64 bytes are classified; nothing a
  guest writes makes the scanner raise. What it says is a prediction for
  decisions: the device still checks every access, and the dirty log is the
  ground truth. A guest may rewrite a slot after it was scanned; the device
  runs what it fetches.
* **The mappings are a snapshot.** The MAPPED bitmap of a tenant is read at
  most every ``map_ttl`` cycles, and again before a descriptor is predicted
  to fault on it, so a page mapped since is not a false rejection.
"""

import collections
import enum
import logging
from dataclasses import dataclass, field

from ...rtl.cmd.dsa import CR_ALIGN, DESC_BYTES, MAX_XFER, RESERVED_FLAGS, Flag, Opcode, Status
from ...rtl.dma.defs import PAGE_SHIFT, TRANSLATABLE_BITS, WORD_PAGES, Bitmap
from ..model.dsa import CompletionRecord, Descriptor
from ..model.engine import Engine, Outcome, descending
from ..platform.timing import TimingModel
from .metrics import MmioMeter
from .opcodes import CMD_INFO, RECORD, Align, cmd_info

__all__ = ["CommandScanner", "ScannedDescriptor", "Verdict", "Ring", "SemOp", "Rules", "predict"]

PAGE = 1 << PAGE_SHIFT
ADDR_MASK = (1 << 64) - 1


class Verdict(enum.Enum):
    """What the scanner predicts the device will do with a descriptor."""
    RUN = "run"                 #: every check passes and every page it touches is mapped
    FAULT = "fault"             #: a page fault (data or record): status PAGE_FAULT
    REFUSED = "refused"         #: a check before execution fails: the status names it, no data moves
    PASID = "pasid"             #: not its ADI's PASID: consumed without a record; the ADI goes to ERROR
    UNFETCHABLE = "unfetchable"  #: its ring slot cannot be fetched: the ADI goes to ERROR (FETCH_FAULT)


@dataclass(frozen=True)
class Rules:
    """The device's descriptor rules, as GENCAP and CAP0 report them.

    Build one with :meth:`from_caps`; the defaults are those of
    :mod:`siov.rtl.cmd.dsa`.
    """
    max_xfer: int = MAX_XFER
    cr_align: int = CR_ALIGN
    fill_align: int = Align.FILL.bytes()
    sem_align: int = Align.SEMAPHORE.bytes()
    ims_entries: int = 256
    pages_per_domain: int = 4096

    @classmethod
    def from_caps(cls, caps):
        """The rules of a device whose capabilities are ``caps`` (:class:`~siov.sw.hv.pf.DeviceCaps`)."""
        return cls(max_xfer=caps.max_xfer, cr_align=caps.cr_align, fill_align=caps.fill_align,
                   ims_entries=caps.ims_entries, pages_per_domain=caps.pages_per_domain)

    def align(self, rule):
        """Bytes of alignment rule ``rule`` (:class:`~siov.sw.sched.opcodes.Align`)."""
        return rule.bytes(self)


@dataclass(frozen=True)
class SemOp:
    """A WAIT (``wait``) or SIGNAL on the 8 bytes at guest address ``addr``: a WAIT completes when
    ``(memory & mask) == value``, a SIGNAL stores ``value`` (``mask`` all ones)."""
    wait: bool
    addr: int
    value: int
    mask: int

    def satisfied_by(self, value):
        """Whether a WAIT holds once the semaphore holds ``value``."""
        return value & self.mask == self.value


@dataclass
class ScannedDescriptor:
    """One descriptor of a ring's pending window, as the scanner read and judged it.

    Attributes
    ----------
    adi, slot : int
        Its ADI and ring slot.
    seq : int
        Its position in the ADI's stream of scanned descriptors (0, 1, ...).
    tenant : str
        The name of the tenant that owns the ring.
    desc : Descriptor
        The 64 bytes, unpacked (any value is accepted).
    opcode : str
        The opcode's name, or ``"0x.."`` for one the engine does not implement.
    verdict : Verdict
    status : Status
        The predicted status of its completion (SUCCESS for a run).
    reason : str
        Why, in words (empty for a run).
    fault_addr : int or None
        The predicted faulting device address.
    reads, writes : frozenset of int
        Guest pages it is predicted to read and to write (its record included).
    record_addr : int or None
        Guest address of its completion record if one is predicted to be written.
    interrupt : int or None
        The IMS handle of its completion interrupt, if it will raise one.
    sem : SemOp or None
        Its semaphore (WAIT and SIGNAL).
    size : int
        The size its cost depends on (``xfer_size`` for sized opcodes, else 0).
    pieces : int
        Page-bounded pieces of its transfer (one translation each).
    cycles : int
        Predicted cycles (the record's count), from the timing model.
    seen_at : int
        The device cycle of the scan that first read it.
    """
    adi: int
    slot: int
    seq: int
    tenant: str
    desc: Descriptor
    opcode: str
    verdict: Verdict
    status: Status
    reason: str = ""
    fault_addr: "int | None" = None
    reads: frozenset = frozenset()
    writes: frozenset = frozenset()
    record_addr: "int | None" = None
    interrupt: "int | None" = None
    sem: "SemOp | None" = None
    size: int = 0
    pieces: int = 0
    cycles: int = 0
    seen_at: int = 0
    raw: bytes = field(default=b"", repr=False)


def _pages(addr, n):
    """Guest pages ``n`` bytes at ``addr`` touch (none for ``n`` = 0)."""
    if n <= 0:
        return range(0)
    return range(addr >> PAGE_SHIFT, (addr + n - 1 >> PAGE_SHIFT) + 1)


def _translatable(addr):
    return 0 <= addr and not addr >> TRANSLATABLE_BITS


def _checks(desc, info, rules):
    """``(status, reason)`` of the engine's checks before execution, in its order
    (``rtl/regs.rdl`` GLOBAL.GENCAP); SUCCESS if they all pass."""
    if info is None:
        return Status.BAD_OPCODE, f"opcode {desc.opcode:#04x} is not implemented"
    bad = desc.flags & RESERVED_FLAGS
    if desc.flags & Flag.RCR and not desc.flags & Flag.CRAV:
        bad |= Flag.RCR.value
    if bad:
        return Status.INVALID_FLAGS, f"flags {bad:#x} are reserved or RCR lacks CRAV"
    if desc.flags & Flag.RCI and desc.int_handle >= rules.ims_entries:
        return Status.INVALID_INT_HANDLE, f"interrupt handle {desc.int_handle} >= {rules.ims_entries}"
    if info.sized and not 0 < desc.xfer_size <= rules.max_xfer:
        return Status.XFER_SIZE, f"transfer size {desc.xfer_size} not in 1..{rules.max_xfer}"
    if desc.flags & Flag.CRAV and desc.completion_addr % rules.align(RECORD.align):
        return Status.ADDR_ALIGN, f"record at {desc.completion_addr:#x} not {rules.cr_align}-byte aligned"
    for a in info.accesses:
        n = rules.align(a.align)
        if getattr(desc, a.field) % n:
            return Status.ADDR_ALIGN, f"{a.field} {getattr(desc, a.field):#x} not {n}-byte aligned"
    return Status.SUCCESS, ""


def _first_fault(desc, info, mapped):
    """Walk the transfer as the engine does, piece by piece (descending for an overlapping
    MEMMOVE), each piece's translations in the table's order. Returns ``(fault, done, written,
    pieces)``: the first ``(address, write)`` that does not translate or None, the bytes done
    before its piece, the pages written before it, and the number of pieces."""
    if not info.accesses:
        return None, 0, set(), 0
    n = info.accesses[0].nbytes(desc)
    addrs = [getattr(desc, a.field) for a in info.accesses]
    down = info.opcode is Opcode.MEMMOVE and descending(desc)
    pieces = Engine._pieces(addrs, n, down)
    written = set()
    for lo, hi in pieces:
        for a, base in zip(info.accesses, addrs):
            addr = base + lo
            if not (_translatable(addr) and mapped(addr >> PAGE_SHIFT)):
                return (addr & ADDR_MASK, a.write), (n - hi if down else lo), written, len(pieces)
        for a, base in zip(info.accesses, addrs):
            if a.write:
                written.update(_pages(base + lo, hi - lo))
    return None, n, written, len(pieces)


def predict(desc, rules, mapped, pasid=None, timing=None, data=None):
    """Judge one descriptor: a dict of the :class:`ScannedDescriptor` fields that follow from
    its bytes, the device's ``rules``, ``mapped(page) -> bool`` (the tenant's mapped pages
    inside its window) and the ADI's ``pasid``.

    A COMPARE stops at its first difference, so whether it reaches a page
    that faults depends on the data: with ``data(addr, n) -> bytes or None``
    (guest memory as it is now), the prediction compares the two sources up
    to the first fault, as the engine will if nothing writes them meanwhile.

    Never raises for any 64 bytes a guest may write.
    """
    timing = timing or TimingModel()
    info = cmd_info(desc.opcode)
    name = info.name if info else f"{desc.opcode:#04x}"
    out = dict(opcode=name, size=desc.xfer_size if info is not None and info.sized else 0)
    if pasid is not None and desc.pasid != pasid:
        return dict(out, verdict=Verdict.PASID, status=Status.NONE, cycles=0, pieces=0, fault_addr=None,
                    reads=frozenset(), writes=frozenset(), record_addr=None, interrupt=None, sem=None,
                    reason=f"PASID {desc.pasid:#x} is not the ADI's {pasid:#x}")
    status, reason = _checks(desc, info, rules)
    fault, done, written, pieces, reads = None, 0, set(), 0, set()
    first_difference = None
    if status is Status.SUCCESS:
        fault, done, written, pieces = _first_fault(desc, info, mapped)
        if info.opcode is Opcode.COMPARE and data is not None and done:
            a, b = data(desc.src_addr, done), data(desc.dst_addr, done)
            if a is not None and b is not None and a != b:
                first_difference = next(i for i in range(done) if a[i] != b[i])
                fault = None
        if fault is None:
            for a in info.reads:
                reads.update(_pages(getattr(desc, a.field), a.nbytes(desc)))
        else:
            status, reason = Status.PAGE_FAULT, f"page {fault[0] >> PAGE_SHIFT:#x} is not mapped " \
                                                f"({'write' if fault[1] else 'read'} at {fault[0]:#x})"
    executed = CompletionRecord(status=status.value, bytes_completed=done if status in (
        Status.SUCCESS, Status.PAGE_FAULT) else 0)
    if first_difference is not None:
        executed.result, executed.bytes_completed = 1, first_difference
    if info is not None and info.opcode is Opcode.MEMMOVE and status in (Status.SUCCESS, Status.PAGE_FAULT):
        executed.result = int(descending(desc))
    if fault is not None:
        executed.fault_addr, executed.status_write = fault[0], int(fault[1])
    record = executed
    record_addr = None
    flags = desc.flags
    if flags & Flag.CRAV and desc.completion_addr % rules.cr_align == 0 and \
            (flags & Flag.RCR or status is not Status.SUCCESS):
        addr = desc.completion_addr
        if _translatable(addr) and mapped(addr >> PAGE_SHIFT):
            record_addr = addr
            written.update(_pages(addr, RECORD.nbytes(desc)))
        else:
            record = CompletionRecord(status=Status.PAGE_FAULT.value, status_write=1, fault_addr=addr)
            if status is not Status.PAGE_FAULT:
                reason = (reason + "; " if reason else "") + f"its record's page {addr >> PAGE_SHIFT:#x} is not mapped"
            fault, status = (addr, True), Status.PAGE_FAULT
    outcome = Outcome(status, record, b"\0" * RECORD.length if record_addr is not None else None,
                      executed=executed)
    interrupt = desc.int_handle if flags & Flag.RCI and desc.int_handle < rules.ims_entries else None
    sem = None
    if info is not None and info.semaphore is not None:
        s = info.semaphore
        sem = SemOp(s.wait, getattr(desc, s.address), desc.sem_value,
                    getattr(desc, s.mask) if s.mask else ADDR_MASK)
    if status is Status.SUCCESS:
        verdict = Verdict.RUN
    elif status is Status.PAGE_FAULT:
        verdict = Verdict.FAULT
    else:
        verdict = Verdict.REFUSED
    return dict(out, verdict=verdict, status=status, reason=reason, pieces=pieces,
                fault_addr=None if fault is None else fault[0], reads=frozenset(reads),
                writes=frozenset(written), record_addr=record_addr, interrupt=interrupt, sem=sem,
                cycles=timing.descriptor_cycles(desc, outcome))


class Ring:
    """What the scanner holds of one ADI's ring: its configuration, its owner, its pointers as
    last known and the pending descriptors in ring order (:attr:`pending`).

    ``head`` is the ADI's HEAD as last read, or past the last descriptor whose completion
    record the scanner has seen written since (a record is written once its descriptor has
    been handed over and run, and a ring runs in order); ``tail`` is TAIL as last read.
    """

    def __init__(self, adi, config, tenant):
        self.adi, self.config, self.tenant = adi, config, tenant
        self.head = self.tail = 0
        self.entries = {}           # slot -> ScannedDescriptor
        self.seq = 0
        self.raw = {}               # slot -> the bytes the scanner last read there
        self.peeked = None          # the bytes at slot `tail` that last caused a hint
        self.stalled_at = None      # head at the last full scan, to catch a ring that stopped
        self.tokens, self.tokens_at = 8.0, 0       # hints left, and when they were counted
        self.synced = False         # HEAD read at least once
        self.unscanned = False      # a slot from TAIL on holds work posted since the scan, not yet run
        self.posted = set()         # slots from TAIL on seen posted since the last scan
        self.ran = 0                # of those, how many from TAIL on were seen run
        self.rewritten = False      # the slot at TAIL holds other bytes than the scanner last read there

    @property
    def engine(self):
        """The engine the ring is bound to."""
        return self.config.engine

    @property
    def size(self):
        """Entries in the ring."""
        return self.config.size

    def window(self, head, tail):
        """The slots HEAD .. TAIL - 1."""
        return [(head + k) % self.size for k in range((tail - head) % self.size)]

    @property
    def busy(self):
        """Whether the ring has work: descriptors scanned and not seen completed, or a slot
        written past the TAIL of the last scan (:meth:`CommandScanner.poll` looks)."""
        return bool(self.entries) and bool(self.pending) or self.unscanned

    @property
    def pending(self):
        """The scanned descriptors not yet seen completed, head first."""
        return [self.entries[s] for s in self.window(self.head, self.tail) if s in self.entries]


class CommandScanner:
    """Reads and judges the pending descriptors of every ring of the hypervisor's tenants.

    Parameters
    ----------
    hv : Hypervisor
        Started; its driver (``hv.pf``) reads the ring pointers and bitmaps.
    timing : TimingModel, optional
        Predicts each descriptor's cycles (default: the one fitted on the RTL).
    map_ttl : int
        Cycles a tenant's MAPPED bitmap is trusted before it is read again.
    trust_records : bool
        Whether a full scan may skip reading HEAD of a ring whose completion records show it
        moving. Records are guest memory: a guest can write one early. With False, every full
        scan reads HEAD of each ring that has work.
    meter : MmioMeter, optional
        Where its MMIO is counted (default: a meter of its own).

    Attributes
    ----------
    rings : dict
        ADI -> :class:`Ring`, for every ring scanned so far.
    meter : MmioMeter
        Counts the scanner's own MMIO accesses and their device cycles, by purpose: ``"tail"``,
        ``"head"`` (ring pointers), ``"bitmap"`` (mappings). The scheduler passes its own, so
        one meter counts both.
    read : int
        Descriptors read from guest memory (each once).
    predicted_writes : dict
        Tenant name -> every guest page a descriptor scanned so far was predicted to write
        (to compare with its dirty log).
    """

    def __init__(self, hv, timing=None, map_ttl=50_000, trust_records=True, meter=None):
        self.hv, self.pf, self.bus = hv, hv.pf, hv.bus
        self.timing = timing or TimingModel()
        self.rules = Rules.from_caps(hv.caps)
        self.map_ttl = map_ttl
        self.trust_records = trust_records
        self.rings = {}
        self.meter = meter or MmioMeter(self.bus)
        self.read = 0
        self.predicted_writes = collections.defaultdict(set)
        self._maps = {}             # domain -> (cycle read, set of mapped pages)
        self._vdcm_adis = set()     # ADIs a virtual device has held: once released, not scanned
        self.log = logging.getLogger("siov.sched.scanner")

    # -- which rings ---------------------------------------------------------------------

    def _owners(self):
        """ADI -> live tenant, for every enabled ring of a live tenant."""
        by_dom = {t.domain: t for t in self.hv.tenants.values()}
        owned = {a: v.tenant for a, v in self.hv.vdcm.adi_owner.items()}
        self._vdcm_adis |= set(owned)
        out = {}
        for adi in range(self.hv.caps.num_adis):
            cfg = self.pf.ring_config(adi)
            if cfg is None:
                continue
            t = owned.get(adi)
            if t is None and adi not in self._vdcm_adis:
                t = by_dom.get(cfg.dom)
            if t is not None and t.domain == cfg.dom:
                out[adi] = t
        return out

    # -- mappings ------------------------------------------------------------------------

    async def _mapped_pages(self, t, fresh=False):
        now = self.bus.now()
        seen = self._maps.get(t.domain)
        if seen is not None and not fresh and now - seen[0] < self.map_ttl:
            return seen[1]
        if seen is not None and fresh and seen[0] == now:
            return seen[1]
        words = -(-t.pages // WORD_PAGES)
        bits = await self.meter("bitmap", 1 + words, self.pf.read_bitmap(Bitmap.MAPPED, t.domain, words))
        pages = {w * WORD_PAGES + b for w, v in enumerate(bits) for b in range(WORD_PAGES) if v >> b & 1}
        self._maps[t.domain] = (self.bus.now(), pages)
        return pages

    def forget_mappings(self):
        """Read every tenant's MAPPED bitmap again at the next scan that needs it."""
        self._maps.clear()

    def _mapped(self, t, pages):
        limit = min(t.pages, self.rules.pages_per_domain)
        return lambda page: page < limit and page in pages

    # -- scanning ------------------------------------------------------------------------

    async def scan(self, adis=None):
        """Scan the rings of ``adis`` (default: every ring of a live tenant): read each one's TAIL
        (and its HEAD when the records cannot tell how far it went), and read and judge the
        descriptors that entered its window.

        Returns ``(new, retired)``: the descriptors read for the first time,
        and those that left their ring's window since the last scan (handed
        to an engine and completed, or aborted), in ring order per ADI.
        """
        owners = self._owners()
        for adi in [a for a in self.rings if a not in owners]:
            del self.rings[adi]
        full = adis is None
        new, retired = [], []
        for adi in sorted(owners if full else [a for a in adis if a in owners]):
            n, r = await self._scan_ring(adi, owners[adi], full)
            new += n
            retired += r
        return new, retired

    async def poll(self, hint_gap=1024, burst=8, want=None, lookahead=4):
        """What can be learned without MMIO, from guest memory alone (no device time).

        Retires the descriptors whose completion records are written (and
        those before them in their ring), and looks at the slots from each
        ring's TAIL on: if the first holds other bytes than the scanner last
        read there, the guest has likely posted (:attr:`Ring.unscanned`), and
        the ring is *hinted* for a scan if ``want(ring, descriptors)`` says so
        for the (up to ``lookahead``) new-looking descriptors peeked there
        (default: any). Hints are rationed per ring (a bucket of ``burst``
        refilled one per ``hint_gap`` cycles), so a guest that keeps
        rewriting its slots costs at most one TAIL read per ``hint_gap``
        cycles. Returns ``(retired, hinted ADIs)``.
        """
        retired, hinted = [], []
        now = self.bus.now()
        for adi, ring in self.rings.items():
            retired += await self._retire_by_records(ring)
            first = await self._peek(ring)
            ring.rewritten = first is not None and first != ring.raw.get(ring.tail, bytes(DESC_BYTES))
            raw = await self._posted(ring)
            ring.unscanned = raw is not None
            if not ring.unscanned or raw == ring.peeked:
                continue
            if want is not None:
                peeked = [Descriptor.unpack(raw)]
                for k in range(1, lookahead):
                    more = await self._peek(ring, k)
                    if more is None or more == ring.raw.get((ring.tail + k) % ring.size, bytes(DESC_BYTES)):
                        break
                    peeked.append(Descriptor.unpack(more))
                if not want(ring, peeked):
                    continue
            ring.tokens = min(burst, ring.tokens + (now - ring.tokens_at) / hint_gap)
            ring.tokens_at = now
            if ring.tokens >= 1:
                ring.tokens -= 1
                ring.peeked = raw
                hinted.append(adi)
        return retired, hinted

    async def _posted(self, ring, limit=4):
        """The bytes of the first slot from the TAIL of the last scan on that the guest has
        posted since and the device has not run yet, as far as guest memory shows, or None.

        The bytes of a slot cannot always tell: a guest that repeats one descriptor writes the
        same ones each lap. Its completion record can: a descriptor that asks for a record on
        every completion (CRAV and RCR) is posted with its record zeroed (the guest's driver
        clears it, as idxd's submitters do) and has run once the record is written. A slot
        seen so is remembered until the next scan reads TAIL, and once its record is written
        the slots after it are looked at too (from the first not seen run, up to ``limit`` a
        call). A slot whose descriptor asks for no such record is posted if it holds other
        bytes than the scanner last read there. Guest memory is only a hint: a scan is the
        truth."""
        for k in range(ring.ran, min(ring.ran + limit, ring.size - 1)):
            slot = (ring.tail + k) % ring.size
            raw = await self._peek(ring, k)
            if raw is None:
                return None
            pending = await self._pending(ring, raw)
            if pending:
                ring.posted.add(slot)
                return raw
            if slot not in ring.posted:
                return raw if pending is None and raw != ring.raw.get(slot, bytes(DESC_BYTES)) else None
            ring.ran = k + 1
        return None

    async def _pending(self, ring, raw):
        """For a descriptor ``raw`` that asks for a record on every completion, whether its
        record still reads zero; None for one that does not (or whose record is not the
        tenant's memory)."""
        d = Descriptor.unpack(raw)
        if d.flags & (Flag.CRAV | Flag.RCR) != Flag.CRAV | Flag.RCR:
            return None
        t = ring.tenant
        if not t.alive or not t.memory.contains(d.completion_addr, 1):
            return None
        return not (await t.memory.read(d.completion_addr, 1))[0]

    async def _peek(self, ring, ahead=0):
        addr = self._slot_addr(ring, (ring.tail + ahead) % ring.size)
        if not ring.tenant.alive or not ring.tenant.memory.contains(addr, DESC_BYTES):
            return None
        return await ring.tenant.memory.read(addr, DESC_BYTES)

    async def _retire_by_records(self, ring, lookahead=4):
        """Retire what the completion records show done: a written record means its descriptor
        and every one before it in the ring were handed over (one engine runs a ring, in order)."""
        done, blind = None, 0
        t = ring.tenant
        for k, e in enumerate(ring.pending):
            if e.record_addr is None:
                blind += 1
                if blind > lookahead:
                    break
                continue
            if not t.alive or not (await t.memory.read(e.record_addr, 1))[0]:
                break
            done, blind = k, 0
        if done is None:
            return []
        out = ring.pending[:done + 1]
        for e in out:
            del ring.entries[e.slot]
        ring.head = (out[-1].slot + 1) % ring.size
        return out

    async def _scan_ring(self, adi, tenant, full):
        cfg = self.pf.ring_config(adi)
        ring = self.rings.get(adi)
        retired = []
        if ring is None or ring.config is not cfg or ring.tenant is not tenant:
            if ring is not None:
                retired = ring.pending
            ring = self.rings[adi] = Ring(adi, cfg, tenant)
        if not (2 <= cfg.size <= 4096 and cfg.size & (cfg.size - 1) == 0):
            return [], retired            # the ADI went to ERROR at ENABLE: nothing runs
        tail = await self.meter("tail", 1, self.pf.ring_tail(adi)) % ring.size
        retired += await self._retire_by_records(ring)
        pending = ring.pending
        moved_back = (tail - ring.head) % ring.size < (ring.tail - ring.head) % ring.size
        stalled = full and pending and (ring.stalled_at == ring.head or not self.trust_records)
        if not ring.synced or moved_back or stalled or any(e.record_addr is None for e in pending):
            head = await self.meter("head", 1, self.pf.ring_head(adi)) % ring.size
            keep = set(ring.window(head, tail))
            for e in pending:
                if e.slot not in keep:
                    retired.append(ring.entries.pop(e.slot))
                    continue
            for slot in [s for s in ring.entries if s not in keep]:
                del ring.entries[slot]
            ring.head, ring.synced = head, True
        ring.tail = tail
        ring.unscanned = ring.rewritten = False
        ring.posted, ring.ran = set(), 0
        if full:
            ring.stalled_at = ring.head if tail != ring.head else None
        fresh = [s for s in ring.window(ring.head, tail) if s not in ring.entries]
        new = []
        if fresh:
            pages = await self._mapped_pages(tenant)
            for slot in fresh:
                entry = await self._read_slot(ring, slot, pages)
                if entry.verdict in (Verdict.FAULT, Verdict.UNFETCHABLE) and \
                        self._maps[tenant.domain][0] != self.bus.now():
                    pages = await self._mapped_pages(tenant, fresh=True)     # not on a stale snapshot
                    entry = await self._read_slot(ring, slot, pages, seq=entry.seq)
                ring.entries[slot] = entry
                self.predicted_writes[tenant.name] |= entry.writes
                new.append(entry)
        return new, retired

    def _slot_addr(self, ring, slot):
        return (ring.config.ring & ~(DESC_BYTES - 1) & ADDR_MASK) + slot * DESC_BYTES

    async def _read_slot(self, ring, slot, pages, seq=None):
        """Read and judge the descriptor in ``slot`` of ``ring``."""
        t, cfg = ring.tenant, ring.config
        if seq is None:
            seq = ring.seq
            ring.seq += 1
        addr = self._slot_addr(ring, slot)
        mapped = self._mapped(t, pages)
        base = dict(adi=ring.adi, slot=slot, seq=seq, tenant=t.name, seen_at=self.bus.now())
        if not (t.memory.contains(addr, DESC_BYTES) and mapped(addr >> PAGE_SHIFT)):
            return ScannedDescriptor(**base, desc=Descriptor(), opcode="?", verdict=Verdict.UNFETCHABLE,
                                     status=Status.NONE, reason=f"ring slot at {addr:#x} is not mapped")
        raw = await t.memory.read(addr, DESC_BYTES)
        ring.raw[slot] = raw
        self.read += 1
        desc = Descriptor.unpack(raw)
        data = await self._compared(t, desc) if cmd_info(desc.opcode) is CMD_INFO[Opcode.COMPARE] else None
        return ScannedDescriptor(**base, desc=desc, raw=raw,
                                 **predict(desc, self.rules, mapped, cfg.pasid, self.timing, data))

    async def _compared(self, t, desc):
        """``data(addr, n)`` over the two sources of a COMPARE as guest memory holds them now
        (host reads, no device time); None for bytes outside the guest's memory."""
        n = min(desc.xfer_size, self.rules.max_xfer)
        held = {}
        for addr in (desc.src_addr, desc.dst_addr):
            if t.memory.contains(addr, n):
                held[addr] = await t.memory.read(addr, n)

        def data(addr, k):
            buf = held.get(addr)
            return None if buf is None or k > len(buf) else buf[:k]
        return data

    def pending(self, adi=None):
        """The pending descriptors of ring ``adi`` (or of every ring), head first."""
        rings = self.rings.values() if adi is None else [self.rings[adi]] if adi in self.rings else []
        return [d for r in rings for d in r.pending]
