"""Save and restore of device state: a virtual device's, or the whole Device's.

What a restore needs is small (``docs/migration.md``): each ADI's ring
configuration, pointers, state, arbiter weight and quantum, and DMA binding;
the IMS entries; each domain's window and page bitmaps; for the whole Device
its settings registers. Queues and data live in guest memory, which the
caller copies (as Linux's hisi_acc VFIO migration driver leaves queues in
guest memory and saves only the device's registers). Every value is read and
written through real registers, by the driver of the physical function
(:class:`~siov.sw.hv.pf.PfDriver`), so save and restore run on either backend,
and a state saved on one restores on the other.

The public functions:

* :func:`save` reads the state of some ADIs, IMS entries and domains (a
  virtual device), or with ``whole=True`` of the whole Device, into a blob;
* :func:`restore` checks a blob completely against the destination Device,
  then writes it (onto the same indexes, or onto others through a
  :class:`Placement`); it refuses, having changed nothing, a blob that is
  corrupt, truncated, of another version, or from a Device with other
  parameters or another Verilog fingerprint, or a destination whose ADIs
  are in use;
* :func:`check` makes every check :func:`restore` makes, and writes nothing;
* :func:`decode` reads a blob into a :class:`DeviceState` without a device
  (to inspect it, or to check it early).

The blob (version :data:`VERSION`), all integers little-endian::

    magic "SIOVDST\\0" | u16 version | u16 flags (bit 0: whole Device)
    | u32 payload length | payload | 8-byte checksum (SHA-256 of all before it)

The payload holds the Device's parameters (``DeviceParams``, five u32), its
Verilog fingerprint (:func:`siov.sw.results.device_fingerprint`, 12 ASCII
hex digits), then the ADIs (33 bytes each), the IMS entries (18 bytes
each), the domains (each a window and its page runs) and, for the whole
Device, the settings registers (address and value, 8 bytes each).

An ADI in ERROR is refused at save (:class:`AdiInError`): its error code is
what the guest's driver must see and reset, and no register sequence can
put an ADI into ERROR with a given code, so it could not be restored
faithfully. The hypervisor reports the error to the guest, which resets
it (RESET_ERROR), or gives up the save. An IMS entry's PENDING bit (an
interrupt held by a masked entry) cannot be set through registers either:
it is saved, and :func:`restore` returns the handles that held one, for
the caller to deliver on unmask (:attr:`DeviceState.pending_handles`).

Ref: ``rtl/regs.rdl`` (CMD, ENG, DMA and IRQ windows); the VFIO migration v2
uAPI (include/uapi/linux/vfio.h) for the device-state stream this fills.
"""

import hashlib
import struct
from dataclasses import dataclass, field

from ...rtl import regmap
from ...rtl.dma.defs import GUEST_MAP, GUEST_UNMAP, Bitmap, GuestResult, RangeOp, guest_word
from ...rtl.params import DeviceParams
from ...rtl.regmap import AdiState
from .errors import DeviceTimeout, HypervisorError
from .pf import _get, _put

__all__ = ["MAGIC", "VERSION", "save", "restore", "check", "decode", "DeviceState", "AdiRecord", "ImsRecord",
           "DomainRecord", "Placement", "DeviceStateError", "CorruptState", "IncompatibleState",
           "AdiInError", "NotQuiesced", "TargetInUse", "SETTINGS", "STATE", "HIDDEN_STATE",
           "SAVED", "REDERIVED", "RESET", "CONSTANT", "COMMAND", "render_state_table"]

MAGIC = b"SIOVDST\0"
VERSION = 1
_HEADER = struct.Struct("<8sHHI")
_CHECKSUM_BYTES = 8
_FLAG_WHOLE = 1
_PARAMS = struct.Struct("<5I12s")
_ADI = struct.Struct("<BBBHHQHIBBBIIB")
_IMS = struct.Struct("<H4I")
_DOMAIN = struct.Struct("<BQII")
_RUN = struct.Struct("<IIB")
_SETTING = struct.Struct("<II")
_COUNT = struct.Struct("<I")


# -- errors -------------------------------------------------------------------------------

class DeviceStateError(HypervisorError):
    """Base of the refusals of :func:`save` and :func:`restore`; nothing was changed."""


class CorruptState(DeviceStateError, ValueError):
    """The blob is not a device state this code reads: wrong magic number or version,
    truncated or too long, or its checksum does not match (a flipped byte)."""


class IncompatibleState(DeviceStateError, ValueError):
    """The blob was saved from a Device that the destination is not: other parameters
    (fewer ADIs, other table sizes), another Verilog fingerprint, or indexes it lacks."""


class AdiInError(DeviceStateError):
    """An ADI to be saved is in ERROR: see the module's description."""


class NotQuiesced(DeviceStateError):
    """An ADI to be saved could still move: it is ENABLED or DRAINING and eligible for
    dispatch, or a descriptor of it stayed in flight."""


class TargetInUse(DeviceStateError):
    """An ADI of the destination is not DISABLED and idle: a restore does not overwrite
    an ADI in use."""


# -- records --------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdiRecord:
    """One ADI as saved: its state (DISABLED, ENABLED or DRAINING), ring pointers and
    configuration as the hardware holds them (CMD.ADI_PTRS, CMD.RING_CUR_*, CMD.ADI_CUR_CFG),
    its arbiter weight and quantum (ENG.ARB_CUR) and its DMA ADI-table entry (DMA.ADI_CUR)."""
    index: int
    state: int
    head: int
    tail: int
    base: int
    size: int
    pasid: int
    domain: int
    engine: int
    weight: int
    quantum: int
    dma_pasid: int
    dma_domain: int
    dma_valid: bool


@dataclass(frozen=True)
class ImsRecord:
    """One IMS entry as saved: its four words (ADDR_LO, ADDR_HI, DATA, CTRL with PENDING)."""
    handle: int
    words: tuple


@dataclass(frozen=True)
class DomainRecord:
    """One DMA domain as saved: its window (DMA.DOM_CUR_*) and its pages as runs
    ``(first page, count, code)``, code 1 pinned, 2 pinned and mapped, 3 pinned with an
    unmap requested (pages in no run are not pinned). The dirty bitmap is not saved: the
    caller harvests it into the pages it copies, and the destination's log starts clean."""
    index: int
    base: int
    limit: int
    runs: tuple


@dataclass(frozen=True)
class DeviceState:
    """A decoded blob (:func:`decode`), or what :func:`restore` restored.

    ``settings`` are ``(address, value)`` pairs of the whole Device's settings
    registers (:data:`SETTINGS`), empty for a virtual device.
    """
    params: DeviceParams
    fingerprint: str
    whole: bool
    adis: tuple = ()
    ims: tuple = ()
    domains: tuple = ()
    settings: tuple = ()

    @property
    def pending_handles(self):
        """Handles of the IMS entries that held a pending interrupt (CTRL.PENDING) when saved:
        the restore cannot set the bit, so the caller delivers these on unmask."""
        return [e.handle for e in self.ims if e.words[3] & regmap.IRQ_IMS_ENTRY_PENDING_MASK]


@dataclass(frozen=True)
class Placement:
    """Where a virtual device's state goes on the destination: ``adis``, ``handles`` and
    ``domains`` map a saved index to the destination's (an index not given stays the same).
    The PASIDs are restored as saved: the destination's hypervisor gives the guest the
    PASIDs it had."""
    adis: dict = field(default_factory=dict)
    handles: dict = field(default_factory=dict)
    domains: dict = field(default_factory=dict)


def _settings_registers():
    """Registers whose software-written fields hold a setting of the whole Device: every
    register with a read/write field (not a command pulse), less the staged values and
    selects that a restore writes with its own sequences first and last."""
    out = []
    for reg in regmap.REGISTERS.values():
        if any(f.sw_readable and f.has_storage and not f.singlepulse for f in reg.fields):
            out.append(reg.path)
    return tuple(out)


#: The whole Device's settings registers, saved by address and value and written back
#: last (after every command of the restore, so the staged and select registers read as
#: they did at save): the registers of ``rtl/regs.rdl`` with a read/write field.
SETTINGS = _settings_registers()


# -- what is device state ----------------------------------------------------------------------

#: How a save treats each register and window of ``rtl/regs.rdl``.
SAVED = "saved"            # read by save, written back by restore: compares equal afterwards
REDERIVED = "re-derived"   # follows from saved state or recomputes itself after restore
RESET = "reset"            # deliberately not carried over: starts afresh on the destination
CONSTANT = "constant"      # build-time: must be equal, which the parameters' check ensures
COMMAND = "command"        # write-only pulses: no state

#: Every register and window of ``rtl/regs.rdl`` -> (disposition, the select register
#: that indexes it or None, why). ``docs/migration.md`` renders it
#: (:func:`render_state_table`); tests/test_devstate.py checks it against the register map,
#: and reads every SAVED and CONSTANT entry of a restored Device against its source.
STATE = {
    "GLOBAL.ID": (CONSTANT, None, "the magic number"),
    "GLOBAL.VERSION": (CONSTANT, None, "register-map version"),
    "GLOBAL.CAP0": (CONSTANT, None, "parameters, checked against the blob's"),
    "GLOBAL.CAP1": (CONSTANT, None, "parameters, checked against the blob's"),
    "GLOBAL.GENCAP": (CONSTANT, None, "descriptor rules, fixed by the Verilog fingerprint"),
    "GLOBAL.SCRATCH": (SAVED, None, "a settings register (whole Device)"),
    "GLOBAL.CYCLE_LO": (RESET, None, "the destination's own timebase"),
    "GLOBAL.CYCLE_HI": (RESET, None, "the destination's own timebase"),
    "IRQ": (COMMAND, None, "the window itself"),
    "IRQ.FAULT_STATUS": (RESET, None, "fault queues are the hypervisor's to drain before a save; the "
                                      "destination's start empty"),
    "IRQ.FAULT_REC0": (RESET, None, "fault queue, as FAULT_STATUS"),
    "IRQ.FAULT_REC1": (RESET, None, "fault queue, as FAULT_STATUS"),
    "IRQ.FAULT_CTRL": (COMMAND, None, "pulses"),
    "IRQ.FAULT_OVF_COUNT": (RESET, None, "fault statistics"),
    "IRQ.FAULT_CAP": (CONSTANT, None, "fixed by the Verilog fingerprint"),
    "IRQ.FAULT_LOST": (RESET, None, "read-and-clear statistics, polled by the hypervisor"),
    "IRQ.CNT_DELIVERED": (RESET, None, "event counters: statistics of the source Device"),
    "IRQ.CNT_PENDED": (RESET, None, "event counter"),
    "IRQ.CNT_FAULTED": (RESET, None, "event counter"),
    "IRQ.CNT_DMA": (RESET, None, "event counter"),
    "IRQ.CNT_CTRL": (COMMAND, None, "pulse"),
    "IRQ.DRAIN_CMD": (COMMAND, None, "pulse; save drains the remapper first"),
    "IRQ.DRAIN_STATUS": (REDERIVED, None, "0 once drained, as save leaves the source"),
    "IRQ.IMS": (SAVED, None, "every word of each entry in the state; CTRL.PENDING cannot be written, "
                             "so restore returns the handles that held one (pending_handles) for the "
                             "caller to deliver"),
    "DMA": (COMMAND, None, "the window itself"),
    "DMA.STATUS": (REDERIVED, None, "idle after every range operation"),
    "DMA.OP": (SAVED, None, "a settings register (CODE, DOMAIN)"),
    "DMA.OP_START": (SAVED, None, "a settings register"),
    "DMA.OP_COUNT": (SAVED, None, "a settings register"),
    "DMA.ADI_SEL": (SAVED, None, "a select, written last"),
    "DMA.ADI_ENTRY": (SAVED, None, "staged, written last"),
    "DMA.ADI_CMD": (COMMAND, None, "pulse"),
    "DMA.ADI_CUR": (SAVED, "DMA.ADI_SEL", "each ADI's PASID, domain and valid bit"),
    "DMA.DOM_SEL": (SAVED, None, "a select, written last"),
    "DMA.DOM_BASE_LO": (SAVED, None, "staged, written last"),
    "DMA.DOM_BASE_HI": (SAVED, None, "staged, written last"),
    "DMA.DOM_LIMIT": (SAVED, None, "staged, written last"),
    "DMA.DOM_CMD": (COMMAND, None, "pulse"),
    "DMA.DOM_CUR_BASE_LO": (SAVED, "DMA.DOM_SEL", "the domain window"),
    "DMA.DOM_CUR_BASE_HI": (SAVED, "DMA.DOM_SEL", "the domain window"),
    "DMA.DOM_CUR_LIMIT": (SAVED, "DMA.DOM_SEL", "the domain window"),
    "DMA.BMAP_SEL": (SAVED, None, "a select, written last"),
    "DMA.BMAP": (SAVED, "DMA.BMAP_SEL", "pinned, mapped and unmap-requested bitmaps, as page runs; the "
                                        "dirty bitmap (3) is reset: harvested into the copied pages, and "
                                        "the destination's log starts clean"),
    "DMA.HARVEST_CTRL": (SAVED, None, "a settings register"),
    "DMA.HARVEST": (RESET, None, "the dirty log, as BMAP's bitmap 3"),
    "DMA.GUEST": (COMMAND, None, "the guest fast path's map and unmap words"),
    "DMA.GUEST_STATUS": (RESET, None, "result of the last fast-path map, which restore itself uses"),
    "DMA.FAULT_STATUS": (RESET, None, "fault queue, as IRQ.FAULT_STATUS"),
    "DMA.FAULT_REC0": (RESET, None, "fault queue"),
    "DMA.FAULT_REC1": (RESET, None, "fault queue"),
    "DMA.FAULT_CTRL": (COMMAND, None, "pulses"),
    "DMA.FAULT_OVF_COUNT": (RESET, None, "fault statistics"),
    "DMA.FAULT_CAP": (CONSTANT, None, "fixed by the Verilog fingerprint"),
    "DMA.FAULT_LOST": (RESET, None, "read-and-clear statistics"),
    "DMA.CNT_ALLOWED": (RESET, None, "event counter"),
    "DMA.CNT_BLOCKED": (RESET, None, "event counter"),
    "DMA.CNT_DIRTIED": (RESET, None, "event counter"),
    "DMA.CNT_CTRL": (COMMAND, None, "pulse"),
    "CMD": (COMMAND, None, "the window itself"),
    "CMD.ADI_SEL": (SAVED, None, "a select, written last"),
    "CMD.RING_BASE_LO": (SAVED, None, "staged, written last"),
    "CMD.RING_BASE_HI": (SAVED, None, "staged, written last"),
    "CMD.RING_SIZE": (SAVED, None, "staged, written last"),
    "CMD.ADI_CFG": (SAVED, None, "staged, written last"),
    "CMD.RING_PTRS": (SAVED, None, "staged, written last (zero but during a restore)"),
    "CMD.ADI_CMD": (COMMAND, None, "pulses"),
    "CMD.ADI_STATUS": (SAVED, "CMD.ADI_SEL", "STATE (an ADI in ERROR is refused at save; INFLIGHT is 0 "
                                             "in a quiesced save)"),
    "CMD.ADI_PTRS": (SAVED, "CMD.ADI_SEL", "HEAD and TAIL, restored through RING_PTRS"),
    "CMD.RING_CUR_BASE_LO": (SAVED, "CMD.ADI_SEL", "ring configuration, restored by ENABLE or LOAD"),
    "CMD.RING_CUR_BASE_HI": (SAVED, "CMD.ADI_SEL", "ring configuration"),
    "CMD.RING_CUR_SIZE": (SAVED, "CMD.ADI_SEL", "ring configuration"),
    "CMD.ADI_CUR_CFG": (SAVED, "CMD.ADI_SEL", "PASID, domain and engine"),
    "CMD.DROPPED_DOORBELLS": (RESET, None, "event counter"),
    "ADI_PAGES": (SAVED, None, "TAIL, HEAD and STATE of each ADI, as CMD.ADI_PTRS and ADI_STATUS"),
    "ENG": (COMMAND, None, "the window itself"),
    "ENG.ARB_CTRL": (SAVED, None, "arbiter policy (whole Device)"),
    "ENG.ARB_SLICE": (SAVED, None, "slice length (whole Device)"),
    "ENG.COST_A": (SAVED, None, "cost model (whole Device)"),
    "ENG.COST_B": (SAVED, None, "cost model (whole Device)"),
    "ENG.ARB_SEL": (SAVED, None, "a select, written last"),
    "ENG.ARB_WEIGHT": (SAVED, None, "staged, written last"),
    "ENG.ARB_QUANTUM": (SAVED, None, "staged, written last"),
    "ENG.ARB_CMD": (COMMAND, None, "pulse"),
    "ENG.ARB_CUR": (SAVED, "ENG.ARB_SEL", "each ADI's weight and quantum"),
    "ENG.ARB_BUDGET": (REDERIVED, "ENG.ARB_SEL", "remaining budget: refilled at the first slice end "
                                                 "after restore (the slice restarts)"),
    "ENG.ENG_STATUS": (RESET, None, "last dispatch and status: history of the source"),
    "ENG.DESC_DONE": (RESET, None, "event counter"),
    "ENG.DESC_FAILED": (RESET, None, "event counter"),
    "ENG.DESC_REFUSED": (RESET, None, "event counter"),
    "ENG.LAST_CYCLES": (RESET, None, "history of the source"),
    "ENG.ELIGIBLE_LO": (SAVED, None, "staged mask, committed by the driver"),
    "ENG.ELIGIBLE_HI": (SAVED, None, "staged mask, committed by the driver"),
    "ENG.ELIGIBLE_CMD": (COMMAND, None, "pulse"),
    "ENG.ELIGIBLE_CUR_LO": (SAVED, None, "the mask in force: the saved staged mask, committed"),
    "ENG.ELIGIBLE_CUR_HI": (SAVED, None, "the mask in force"),
    "ENG.WAIT_RECHECK": (SAVED, None, "WAIT re-check period (whole Device)"),
    "ENG.WAIT_TIMEOUT": (SAVED, None, "WAIT timeout (whole Device)"),
    "ENG.WAIT_RETRIES": (RESET, None, "event counter"),
    "ENG.WAIT_CYCLES": (RESET, None, "event counter"),
    "ENG.IDLE_INELIGIBLE": (RESET, None, "event counter"),
    "ENG.IDLE_WAITING": (RESET, None, "event counter"),
}

#: State that no register shows, and what happens to it.
HIDDEN_STATE = {
    "prefetch slots": (REDERIVED, "each pending ADI's head descriptor is fetched again from guest memory "
                                  "(HEAD is advanced only when a descriptor is taken, so none is lost)"),
    "WAIT re-check hold": (RESET, "a WAIT at a ring's head is checked afresh on the destination's first "
                                  "re-check tick"),
    "WAIT timeout start": (RESET, "a WAIT's timeout counts from its first check on the destination"),
    "QoS slice position": (RESET, "the slice restarts, budgets full"),
    "round-robin and weighted round-robin position": (RESET, "the arbiters start from ADI 0"),
    "descriptors in flight": (RESET, "none: save waits until no ADI has one (CMD.ADI_STATUS.INFLIGHT)"),
    "interrupt messages in the remapper": (RESET, "none: save drains the remapper (IRQ.DRAIN_CMD)"),
}


def render_state_table():
    """The Markdown tables of :data:`STATE` and :data:`HIDDEN_STATE` (in ``docs/migration.md``)."""
    lines = ["| register or window | disposition | indexed by | why |", "|---|---|---|---|"]
    for path, (kind, sel, why) in STATE.items():
        lines.append(f"| `{path}` | {kind} | {f'`{sel}`' if sel else ''} | {why} |")
    lines += ["", "| state no register shows | disposition | why |", "|---|---|---|"]
    for what, (kind, why) in HIDDEN_STATE.items():
        lines.append(f"| {what} | {kind} | {why} |")
    return "\n".join(lines) + "\n"


# -- encoding -------------------------------------------------------------------------------

def _encode(state):
    p = state.params
    out = bytearray(_PARAMS.pack(p.num_adis, p.ims_entries, p.num_domains, p.pages_per_domain, p.num_engines,
                                 state.fingerprint.encode("ascii")))
    out += _COUNT.pack(len(state.adis))
    for a in state.adis:
        out += _ADI.pack(a.index, a.state, a.engine, a.head, a.tail, a.base, a.size, a.pasid, a.domain,
                         a.weight, int(a.dma_valid), a.quantum, a.dma_pasid, a.dma_domain)
    out += _COUNT.pack(len(state.ims))
    for e in state.ims:
        out += _IMS.pack(e.handle, *e.words)
    out += _COUNT.pack(len(state.domains))
    for d in state.domains:
        out += _DOMAIN.pack(d.index, d.base, d.limit, len(d.runs))
        for run in d.runs:
            out += _RUN.pack(*run)
    out += _COUNT.pack(len(state.settings))
    for addr, value in state.settings:
        out += _SETTING.pack(addr, value)
    head = _HEADER.pack(MAGIC, VERSION, _FLAG_WHOLE if state.whole else 0, len(out))
    body = head + bytes(out)
    return body + hashlib.sha256(body).digest()[:_CHECKSUM_BYTES]


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, st):
        if self.pos + st.size > len(self.data):
            raise CorruptState(f"device state truncated: {st.size} more bytes needed at offset {self.pos}")
        values = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return values

    def count(self, what, most):
        (n,) = self.take(_COUNT)
        if n > most:
            raise CorruptState(f"device state holds {n} {what}, more than any Device has ({most})")
        return n


def decode(blob):
    """The :class:`DeviceState` in ``blob``; :class:`CorruptState` if it is not one.

    Checks, in order: the length, the magic number, the version, the payload's
    length, the checksum, then the payload's own structure.
    """
    blob = bytes(blob)
    if len(blob) < _HEADER.size + _CHECKSUM_BYTES:
        raise CorruptState(f"device state truncated: {len(blob)} bytes, less than a header")
    magic, version, flags, length = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CorruptState(f"not a siov device state: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise CorruptState(f"device state version {version}; this code reads version {VERSION}")
    if len(blob) != _HEADER.size + length + _CHECKSUM_BYTES:
        raise CorruptState(f"device state is {len(blob)} bytes; its header says "
                           f"{_HEADER.size + length + _CHECKSUM_BYTES} (truncated or extended)")
    body, check = blob[:-_CHECKSUM_BYTES], blob[-_CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest()[:_CHECKSUM_BYTES] != check:
        raise CorruptState("device state checksum mismatch: the blob was altered or damaged")
    r = _Reader(body[_HEADER.size:])
    *numbers, fp = r.take(_PARAMS)
    try:
        params = DeviceParams(num_adis=numbers[0], ims_entries=numbers[1], num_domains=numbers[2],
                              pages_per_domain=numbers[3], num_engines=numbers[4])
    except ValueError as e:
        raise CorruptState(f"device state names impossible Device parameters: {e}") from None
    adis = []
    for _ in range(r.count("ADIs", 64)):
        (index, state, engine, head, tail, base, size, pasid, domain, weight, dma_valid, quantum, dma_pasid,
         dma_domain) = r.take(_ADI)
        adis.append(AdiRecord(index, state, head, tail, base, size, pasid, domain, engine, weight, quantum,
                              dma_pasid, dma_domain, bool(dma_valid)))
    ims = [ImsRecord(h, tuple(w)) for h, *w in (r.take(_IMS) for _ in range(r.count("IMS entries", 2048)))]
    domains = []
    for _ in range(r.count("domains", 64)):
        index, base, limit, nruns = r.take(_DOMAIN)
        if nruns > 65536:
            raise CorruptState(f"domain {index} has {nruns} page runs, more than its pages")
        domains.append(DomainRecord(index, base, limit, tuple(r.take(_RUN) for _ in range(nruns))))
    settings = tuple(r.take(_SETTING) for _ in range(r.count("settings", len(SETTINGS))))
    if r.pos != len(r.data):
        raise CorruptState(f"device state has {len(r.data) - r.pos} bytes after its last record")
    return DeviceState(params, fp.decode("ascii", "replace"), bool(flags & _FLAG_WHOLE), tuple(adis),
                       tuple(ims), tuple(domains), settings)


# -- device access ------------------------------------------------------------------------------

async def _params(pf):
    caps = await pf.identify()
    return DeviceParams(num_adis=caps.num_adis, ims_entries=caps.ims_entries, num_domains=caps.num_domains,
                        pages_per_domain=caps.pages_per_domain, num_engines=caps.num_engines)


def _fingerprint(params, fingerprint):
    if fingerprint is not None:
        return fingerprint
    from ..results import device_fingerprint
    return device_fingerprint(params)


async def _read_adi(bus, i):
    """ADI ``i``'s record; the caller holds the driver's lock."""
    await bus.write(regmap.CMD_ADI_SEL, i)
    st = await bus.read(regmap.CMD_ADI_STATUS)
    ptrs = await bus.read(regmap.CMD_ADI_PTRS)
    lo = await bus.read(regmap.CMD_RING_CUR_BASE_LO)
    hi = await bus.read(regmap.CMD_RING_CUR_BASE_HI)
    size = await bus.read(regmap.CMD_RING_CUR_SIZE)
    cfg = await bus.read(regmap.CMD_ADI_CUR_CFG)
    await bus.write(regmap.ENG_ARB_SEL, i)
    arb = await bus.read(regmap.ENG_ARB_CUR)
    await bus.write(regmap.DMA_ADI_SEL, i)
    ent = await bus.read(regmap.DMA_ADI_CUR)
    return st, AdiRecord(
        index=i, state=_get(st, "CMD_ADI_STATUS_STATE"),
        head=_get(ptrs, "CMD_ADI_PTRS_HEAD"), tail=_get(ptrs, "CMD_ADI_PTRS_TAIL"),
        base=hi << 32 | lo & regmap.CMD_RING_CUR_BASE_LO_ADDR_MASK, size=_get(size, "CMD_RING_CUR_SIZE_ENTRIES"),
        pasid=_get(cfg, "CMD_ADI_CUR_CFG_PASID"), domain=_get(cfg, "CMD_ADI_CUR_CFG_DOMAIN"),
        engine=_get(cfg, "CMD_ADI_CUR_CFG_ENGINE"),
        weight=_get(arb, "ENG_ARB_CUR_WEIGHT"), quantum=_get(arb, "ENG_ARB_CUR_QUANTUM"),
        dma_pasid=_get(ent, "DMA_ADI_CUR_PASID"), dma_domain=_get(ent, "DMA_ADI_CUR_DOMAIN"),
        dma_valid=bool(_get(ent, "DMA_ADI_CUR_VALID")))


def _runs(pinned, mapped, unmap, pages):
    """Page runs ``(first, count, code)`` of the three bitmaps (lists of 32-bit words)."""
    runs, start, code = [], 0, None
    for p in range(pages):
        w, b = divmod(p, 32)
        c = 0
        if pinned[w] >> b & 1:
            c = 2 if mapped[w] >> b & 1 else 3 if unmap[w] >> b & 1 else 1
        if c != code:
            if code:
                runs.append((start, p - start, code))
            start, code = p, c
    if code:
        runs.append((start, pages - start, code))
    return tuple(runs)


async def _read_domain(pf, d, pages):
    bus = pf.bus
    await bus.write(regmap.DMA_DOM_SEL, d)
    lo = await bus.read(regmap.DMA_DOM_CUR_BASE_LO)
    hi = await bus.read(regmap.DMA_DOM_CUR_BASE_HI)
    limit = await bus.read(regmap.DMA_DOM_CUR_LIMIT)
    maps = {}
    for bm in (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP):
        await bus.write(regmap.DMA_BMAP_SEL, _put("DMA_BMAP_SEL_BITMAP", bm) | _put("DMA_BMAP_SEL_DOMAIN", d))
        maps[bm] = [await bus.read(regmap.DMA_BMAP_BASE + 4 * w) for w in range(pages // 32)]
    return DomainRecord(d, hi << 32 | lo & regmap.DMA_DOM_CUR_BASE_LO_ADDR_MASK, limit,
                        _runs(maps[Bitmap.PINNED], maps[Bitmap.MAPPED], maps[Bitmap.UNMAP], pages))


async def save(pf, adis=(), handles=(), domains=(), *, whole=False, fingerprint=None):
    """Save the state of ADIs ``adis``, IMS entries ``handles`` and DMA domains ``domains``
    (a virtual device's), or with ``whole`` of every ADI, entry and domain and the Device's
    settings; return the blob (see the module's description for its format).

    The ADIs must be quiet: each is made undispatchable first by the caller (held out of
    the eligibility mask, :meth:`~siov.sw.hv.pf.PfDriver.hold`, or stopped), and this
    waits, through :meth:`~siov.sw.hv.pf.PfDriver.quiesce_adis`, until none has a
    descriptor in flight and the interrupt remapper has drained. The guest's doorbells
    must be stopped too (its vCPUs paused): the device cannot tell.

    ``fingerprint``: the Device's Verilog fingerprint, computed from its parameters
    (:func:`siov.sw.results.device_fingerprint`) when not given.

    Raises
    ------
    AdiInError
        An ADI is in ERROR (nothing was written).
    NotQuiesced
        An ADI is ENABLED or DRAINING and eligible for dispatch.
    ValueError
        An index beyond the Device.
    """
    bus = pf.bus
    params = await _params(pf)
    if whole:
        adis, handles, domains = range(params.num_adis), range(params.ims_entries), range(params.num_domains)
    adis, handles, domains = sorted(set(adis)), sorted(set(handles)), sorted(set(domains))
    for what, idx, n in (("ADI", adis, params.num_adis), ("IMS handle", handles, params.ims_entries),
                         ("domain", domains, params.num_domains)):
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise ValueError(f"{what} {bad[0]} is beyond the Device's {n}")
    settings = ()
    if whole:       # first: what follows moves the selects among them
        async with pf.exclusive():
            settings = tuple([(regmap.REGISTERS[p].offset, await bus.read(regmap.REGISTERS[p].offset))
                              for p in SETTINGS])
    for i in adis:
        state, code = await pf.adi_state(i)
        if state == AdiState.ERROR:
            raise AdiInError(f"ADI {i} is in ERROR ({regmap.AdiError(code).name}): the guest must see and "
                             f"reset the error (RESET_ERROR) before its device state can be saved")
    try:
        await pf.quiesce_adis(adis)
    except ValueError as e:
        raise NotQuiesced(str(e)) from None
    async with pf.exclusive():
        records = []
        for i in adis:
            st, rec = await _read_adi(bus, i)
            if rec.state == AdiState.ERROR:
                raise AdiInError(f"ADI {i} went into ERROR while being saved")
            if _get(st, "CMD_ADI_STATUS_INFLIGHT"):
                raise NotQuiesced(f"ADI {i} took a descriptor while being saved: hold it first")
            records.append(rec)
        ims = []
        for h in handles:
            base = regmap.IRQ_IMS_BASE + 16 * h
            ims.append(ImsRecord(h, tuple([await bus.read(base + 4 * w) for w in range(4)])))
        doms = [await _read_domain(pf, d, params.pages_per_domain) for d in domains]
    state = DeviceState(params, _fingerprint(params, fingerprint), whole, tuple(records), tuple(ims),
                        tuple(doms), settings)
    return _encode(state)


async def _check_target(pf, state, placement, params, fingerprint):
    """Everything :func:`restore` checks before its first write; the placed state."""
    if state.params != params:
        diff = {k: (v, getattr(params, k)) for k, v in vars(state.params).items() if getattr(params, k) != v}
        raise IncompatibleState(f"device state saved from a Device with other parameters "
                                f"(saved, destination): {diff}")
    if state.fingerprint != fingerprint:
        raise IncompatibleState(f"device state saved from Verilog {state.fingerprint}; the destination "
                                f"runs {fingerprint}")
    if state.whole and placement != Placement():
        raise ValueError("a whole Device's state restores onto the same indexes; a Placement is for a "
                         "virtual device")
    place_adi = {a.index: placement.adis.get(a.index, a.index) for a in state.adis}
    place_ims = {e.handle: placement.handles.get(e.handle, e.handle) for e in state.ims}
    place_dom = {d.index: placement.domains.get(d.index, d.index) for d in state.domains}
    for what, mapping, n in (("ADI", place_adi, params.num_adis), ("IMS handle", place_ims, params.ims_entries),
                             ("domain", place_dom, params.num_domains)):
        bad = [v for v in mapping.values() if not 0 <= v < n]
        if bad:
            raise IncompatibleState(f"destination {what} {bad[0]} is beyond the Device's {n}")
        if len(set(mapping.values())) != len(mapping):
            raise ValueError(f"the placement puts two saved {what}s on one")
    for a in state.adis:
        if a.state not in (AdiState.DISABLED, AdiState.ENABLED, AdiState.DRAINING):
            raise CorruptState(f"ADI {a.index} saved in state {a.state}, which a save never records")
        if a.state != AdiState.DISABLED and not (a.size and a.head < a.size and a.tail < a.size):
            raise CorruptState(f"ADI {a.index} saved {AdiState(a.state).name} with pointers {a.head}/{a.tail} "
                               f"outside its ring of {a.size}")
    for i in place_adi.values():
        st, _ = await pf.adi_state(i)
        if st != AdiState.DISABLED:
            raise TargetInUse(f"destination ADI {i} is {AdiState(st).name}: disable it (or give the "
                              f"state another placement) before restoring")
    return place_adi, place_ims, place_dom


async def _write_domain(pf, d, dest, map_adi, pages):
    """Domain ``dest``'s window and pages as saved in ``d``; ADI ``map_adi`` is bound to it."""
    bus = pf.bus
    await bus.write(regmap.DMA_DOM_SEL, dest)
    await bus.write(regmap.DMA_DOM_BASE_LO, d.base & regmap.DMA_DOM_BASE_LO_ADDR_MASK)
    await bus.write(regmap.DMA_DOM_BASE_HI, d.base >> 32)
    await bus.write(regmap.DMA_DOM_LIMIT, d.limit)
    await bus.write(regmap.DMA_DOM_CMD, regmap.DMA_DOM_CMD_WRITE_MASK)
    await _range_op(pf, RangeOp.UNPIN, dest, 0, pages)
    for first, count, code in d.runs:
        await _range_op(pf, RangeOp.PIN, dest, first, count)
        if code == 1:
            continue
        for page in range(first, first + count):
            await _guest_map(bus, GUEST_MAP, map_adi, page)
            if code == 3:
                await _guest_map(bus, GUEST_UNMAP, map_adi, page)
    # The destination's dirty log starts clean: harvest (and drop) whatever it held.
    await bus.write(regmap.DMA_HARVEST_CTRL, _put("DMA_HARVEST_CTRL_DOMAIN", dest))
    for w in range(pages // 32):
        await bus.read(regmap.DMA_HARVEST_BASE + 4 * w)


async def _range_op(pf, code, dom, start, count):
    bus = pf.bus
    await bus.write(regmap.DMA_OP_START, start)
    await bus.write(regmap.DMA_OP_COUNT, count)
    await bus.write(regmap.DMA_OP, _put("DMA_OP_GO", 1) | _put("DMA_OP_DOMAIN", dom) | _put("DMA_OP_CODE", code))
    waited = 0
    while (st := await bus.read(regmap.DMA_STATUS)) & regmap.DMA_STATUS_BUSY_MASK:
        if waited >= pf.timeout_cycles:
            raise DeviceTimeout(f"DMA range operation not done after {waited} cycles")
        await bus.wait_cycles(pf.poll_cycles)
        waited += pf.poll_cycles
    if st & regmap.DMA_STATUS_ERR_MASK:
        raise DeviceStateError(f"the DMA tracker refused {RangeOp(code).name} of pages {start}+{count} "
                               f"of domain {dom}")


async def _guest_map(bus, word, adi, page):
    await bus.write(regmap.DMA_GUEST_BASE + word, guest_word(adi, page))
    result = _get(await bus.read(regmap.DMA_GUEST_STATUS), "DMA_GUEST_STATUS_RESULT")
    if result != GuestResult.OK:
        raise DeviceStateError(f"restoring page {page} through ADI {adi}: the tracker answered "
                               f"{GuestResult(result).name}")


async def _bind(bus, i, pasid, dom, valid):
    await bus.write(regmap.DMA_ADI_SEL, i)
    await bus.write(regmap.DMA_ADI_ENTRY, _put("DMA_ADI_ENTRY_PASID", pasid) | _put("DMA_ADI_ENTRY_DOMAIN", dom)
                    | _put("DMA_ADI_ENTRY_VALID", int(valid)))
    await bus.write(regmap.DMA_ADI_CMD, regmap.DMA_ADI_CMD_WRITE_MASK)


async def _write_adi(bus, a, dest, dom):
    await bus.write(regmap.CMD_ADI_SEL, dest)
    await bus.write(regmap.CMD_RING_BASE_LO, a.base & regmap.CMD_RING_BASE_LO_ADDR_MASK)
    await bus.write(regmap.CMD_RING_BASE_HI, a.base >> 32)
    await bus.write(regmap.CMD_RING_SIZE, a.size)
    await bus.write(regmap.CMD_ADI_CFG, _put("CMD_ADI_CFG_PASID", a.pasid) | _put("CMD_ADI_CFG_DOMAIN", dom)
                    | _put("CMD_ADI_CFG_ENGINE", a.engine))
    await bus.write(regmap.CMD_RING_PTRS, _put("CMD_RING_PTRS_HEAD", a.head) | _put("CMD_RING_PTRS_TAIL", a.tail))
    if a.state == AdiState.DISABLED:
        await bus.write(regmap.CMD_ADI_CMD, regmap.CMD_ADI_CMD_LOAD_MASK)
    else:
        await bus.write(regmap.CMD_ADI_CMD, regmap.CMD_ADI_CMD_ENABLE_MASK)
        if a.state == AdiState.DRAINING:
            await bus.write(regmap.CMD_ADI_CMD, regmap.CMD_ADI_CMD_DRAIN_MASK)
    await bus.write(regmap.CMD_RING_PTRS, 0)      # later ENABLEs start fresh rings at 0
    st = await bus.read(regmap.CMD_ADI_STATUS)
    if _get(st, "CMD_ADI_STATUS_STATE") != a.state:
        raise DeviceStateError(f"ADI {dest} restored as {AdiState(_get(st, 'CMD_ADI_STATUS_STATE')).name}, "
                               f"saved {AdiState(a.state).name}")
    await bus.write(regmap.ENG_ARB_SEL, dest)
    await bus.write(regmap.ENG_ARB_WEIGHT, a.weight)
    await bus.write(regmap.ENG_ARB_QUANTUM, a.quantum)
    await bus.write(regmap.ENG_ARB_CMD, regmap.ENG_ARB_CMD_WRITE_MASK)


async def check(pf, blob, placement=Placement(), *, fingerprint=None):
    """Everything :func:`restore` checks before its first write, writing nothing but the select
    register through which it reads the destination ADIs' states: the blob's
    structure and checksum, the Device's parameters and Verilog fingerprint (``fingerprint``,
    as for :func:`save`), the placement, and that every destination ADI is DISABLED. Returns
    the decoded :class:`DeviceState`; raises what :func:`restore` would (CorruptState,
    IncompatibleState, TargetInUse). A caller that must write something between the check
    and the restore (a migration's guest pages) checks first, as VFIO's RESUMING does."""
    state = decode(blob)
    params = await _params(pf)
    await _check_target(pf, state, placement, params, _fingerprint(params, fingerprint))
    return state


async def restore(pf, blob, placement=Placement(), *, fingerprint=None):
    """Restore ``blob`` (from :func:`save`) onto the Device of ``pf``; return its
    :class:`DeviceState` (whose :attr:`~DeviceState.pending_handles` the caller delivers).

    Everything is checked before the first write, and a refusal changes nothing: the
    blob's structure and checksum, the Device's parameters and Verilog fingerprint
    (``fingerprint``, as for :func:`save`), the placement, and that every destination
    ADI is DISABLED. Then, in order: each domain's window and pages (the dirty log left
    clean), the DMA ADI-table entries, the IMS entries (a pending interrupt the destination's entry held dropped
    first, CTRL last), each ADI's ring
    (ENABLE or LOAD with the staged pointers, then DRAIN for a DRAINING one) and arbiter
    weight and quantum, and for a whole Device its settings registers, written last.

    The restored ADIs are dispatched as soon as the eligibility mask allows: hold them
    (:meth:`~siov.sw.hv.pf.PfDriver.hold`) before restoring to resume them later. A whole
    Device's restore gives the driver the saved mask (:meth:`~siov.sw.hv.pf.PfDriver.set_eligible`).

    Raises
    ------
    CorruptState, IncompatibleState, TargetInUse
        The refusals; nothing was written.
    DeviceStateError
        The Device answered a step otherwise than its registers promise (a defect).
    """
    state = decode(blob)
    params = await _params(pf)
    place_adi, place_ims, place_dom = await _check_target(pf, state, placement, params,
                                                          _fingerprint(params, fingerprint))
    bus = pf.bus
    if state.whole:
        await pf.set_eligible([])
    async with pf.exclusive():
        # Settings first (the prefetch estimates a restored ring's head descriptor with
        # the cost model in force), and again last (the sequences below move the
        # staged and select registers among them).
        await _write_settings(bus, state.settings)
        # Pages are mapped through an ADI bound to their domain: the first ADI in the state
        # is bound to each domain in turn, and every entry is then written as saved.
        map_adi = place_adi[state.adis[0].index] if state.adis else None
        for d in state.domains:
            if any(code != 1 for _, _, code in d.runs) and map_adi is None:
                raise IncompatibleState("the state maps pages but holds no ADI to map them through")
            if map_adi is not None:
                await _bind(bus, map_adi, state.adis[0].dma_pasid, place_dom[d.index], True)
            await _write_domain(pf, d, place_dom[d.index], map_adi, params.pages_per_domain)
        for a in state.adis:
            await _bind(bus, place_adi[a.index], a.dma_pasid, place_dom.get(a.dma_domain, a.dma_domain),
                        a.dma_valid)
        for e in state.ims:
            base = regmap.IRQ_IMS_BASE + 16 * place_ims[e.handle]
            # An interrupt the destination's entry holds pending is not the state's: drop it
            # undelivered (a CTRL write that changes PASID_EN clears PENDING, rtl/regs.rdl
            # IRQ.IMS), masked, or the writes below would leave it for the next unmask.
            ctrl = await bus.read(base + 12)
            if ctrl & regmap.IRQ_IMS_ENTRY_PENDING_MASK:
                await bus.write(base + 12, (ctrl | regmap.IRQ_IMS_ENTRY_MASK_MASK) ^ regmap.IRQ_IMS_ENTRY_PASID_EN_MASK)
            for w in range(4):
                await bus.write(base + 4 * w, e.words[w] & ~(regmap.IRQ_IMS_ENTRY_PENDING_MASK if w == 3 else 0))
        for a in state.adis:
            await _write_adi(bus, a, place_adi[a.index], place_dom.get(a.domain, a.domain))
        await _write_settings(bus, state.settings)
    for a in state.adis:
        if a.size:
            pf.adopt_ring(place_adi[a.index], a.base, a.size, a.pasid, place_dom.get(a.domain, a.domain), a.engine)
    if state.whole:
        saved = dict(state.settings)
        mask = saved[regmap.ENG_ELIGIBLE_LO] | saved[regmap.ENG_ELIGIBLE_HI] << 32
        await pf.set_eligible([i for i in range(64) if mask >> i & 1])
    return state


async def _write_settings(bus, settings):
    """The settings registers as saved, less the eligibility mask (the driver commits it)."""
    for addr, value in settings:
        if addr not in (regmap.ENG_ELIGIBLE_LO, regmap.ENG_ELIGIBLE_HI):
            await bus.write(addr, value)
