"""The VFIO migration v2 state machine of a virtual device.

Ref: Linux ``include/uapi/linux/vfio.h`` (``enum vfio_device_mig_state``,
VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_MIG_GET_PRECOPY_INFO) and
``drivers/vfio/vfio_main.c`` (``vfio_mig_get_next_state``).

Each :class:`~siov.sw.hv.vdcm.VirtualDevice` has one :class:`DeviceMigration`
(``vdev.migration``). Its states and their numbers are the uAPI's; this
device supports STOP_COPY, P2P and PRE_COPY, so all eight exist.

**Arcs.** :data:`ARCS` holds the fifteen arcs the uAPI defines for a device
with all three features. Any other (from, to) pair is a *combination*: it is
carried out as the shortest path through :data:`ARCS` whose interior states
are not in the saving group (PRE_COPY, PRE_COPY_P2P, STOP_COPY), unless the
whole path stays inside the group, as the uAPI's rules and
``vfio_mig_get_next_state`` choose it (:func:`path`). Refused, with
:class:`MigrationArcRefused` and nothing changed: any request for ERROR,
any request from ERROR (only :meth:`DeviceMigration.reset`, the uAPI's
VFIO_DEVICE_RESET, leaves it), and STOP_COPY to PRE_COPY or PRE_COPY_P2P.

**What each state does to the device.**

* RUNNING, PRE_COPY: the device runs.
* RUNNING_P2P, PRE_COPY_P2P: the uAPI asks that the device start no new
  peer-to-peer DMA. Every DMA of this device goes through the DMA tracker
  into its tenant's window of host memory; it cannot address a peer's BAR.
  So, as the uAPI allows for a device that can tell P2P DMA apart, these
  states run as RUNNING and PRE_COPY do.
* STOP, STOP_COPY, RESUMING: no DMA and no interrupt from the device's ADIs.
  Entering them holds its ADIs out of the engines' eligibility mask
  (:meth:`~siov.sw.hv.pf.PfDriver.hold`, one COMMIT of ENG.ELIGIBLE_*), masks
  its IMS entries (an interrupt raised meanwhile stays pending in its entry,
  IRQ.IMS, as MSI-X's PBA), and returns once nothing of its ADIs is in flight
  and the interrupt remapper has drained
  (:meth:`~siov.sw.hv.pf.PfDriver.quiesce_adis`). Posted descriptors stay in
  their rings (no ABORT), so RUNNING takes them up where they stopped, and
  the interrupts held pending are delivered on unmask: nothing is lost. Its
  configuration space and MSI-X table and PBA are still answered, as the
  uAPI requires; a guest's MSI-X write while stopped changes the table but
  unmasks nothing. A doorbell written while stopped (the uAPI leaves it to the
  user to keep the guest off the device) moves TAIL; nothing runs.

**Data.** The data transfer session of the saving group and of RESUMING is a
byte stream of records (:func:`encode_records`): guest pages (the device's
queues and records live in guest memory, as in hisi_acc's VFIO driver) and,
last, the device state. PRE_COPY's stream is the tenant's guest window
(``initial_bytes``), then the pages dirtied since they were read
(``dirty_bytes``, what the session has to send beyond the initial data):
the DMA tracker's dirty log, read with NO_CLEAR for
:meth:`DeviceMigration.precopy_info` and cleared only by a read of the data,
with the pages the VMM's own log names (``cpu_dirty``: a real VMM has KVM's
dirty log for its vCPUs' writes; the device cannot see them), which are kept
from the call that names them until a read sends them. STOP_COPY's
stream ends with what is left and the device state (``codec.save``).
RESUMING buffers what is written; the RESUMING to STOP arc decodes it whole,
restores the device state (``codec.restore``, which refuses an incompatible
Device) and only then writes the pages, so a refused stream changes nothing
and the device stays in RESUMING.

The device state's save and restore are a codec's: ``save(vdev) -> bytes``
and ``restore(vdev, data)``, both async. By default it is
:mod:`siov.sw.hv.devstate`'s.
"""

import enum
import json
import logging
import struct
from collections import deque
from dataclasses import dataclass

from ...rtl.dma.defs import PAGE_SHIFT
from .errors import HypervisorError

__all__ = ["MigrationState", "MigrationError", "MigrationArcRefused", "DeviceMigration", "PrecopyInfo",
           "DevstateCodec", "ARCS", "SAVING", "STOPPED", "path", "encode_records", "decode_records", "dirty_pages"]

PAGE = 1 << PAGE_SHIFT


class MigrationState(enum.IntEnum):
    """The uAPI's ``enum vfio_device_mig_state``, with its values."""
    ERROR = 0
    STOP = 1
    RUNNING = 2
    STOP_COPY = 3
    RESUMING = 4
    RUNNING_P2P = 5
    PRE_COPY = 6
    PRE_COPY_P2P = 7


S = MigrationState
#: The arcs the uAPI defines for a device with STOP_COPY, P2P and PRE_COPY (vfio.h's FSM
#: description; vfio_main.c lists the same fifteen as the arcs a driver implements).
ARCS = frozenset({
    (S.RUNNING, S.RUNNING_P2P), (S.RUNNING, S.PRE_COPY),
    (S.RUNNING_P2P, S.RUNNING), (S.RUNNING_P2P, S.STOP), (S.RUNNING_P2P, S.PRE_COPY_P2P),
    (S.STOP, S.RUNNING_P2P), (S.STOP, S.STOP_COPY), (S.STOP, S.RESUMING),
    (S.STOP_COPY, S.STOP), (S.RESUMING, S.STOP),
    (S.PRE_COPY, S.RUNNING), (S.PRE_COPY, S.PRE_COPY_P2P),
    (S.PRE_COPY_P2P, S.PRE_COPY), (S.PRE_COPY_P2P, S.RUNNING_P2P), (S.PRE_COPY_P2P, S.STOP_COPY),
})
#: The saving group: states that share one data transfer session.
SAVING = frozenset({S.PRE_COPY, S.PRE_COPY_P2P, S.STOP_COPY})
#: States in which the device does no DMA and raises no interrupt.
STOPPED = frozenset({S.STOP, S.STOP_COPY, S.RESUMING})


class MigrationError(HypervisorError):
    """A migration request could not be carried out (see the message)."""


class MigrationArcRefused(MigrationError):
    """A transition the uAPI refuses; nothing was changed."""


def _refusal(cur, new):
    """Why the uAPI refuses ``cur -> new``, or None."""
    if new is S.ERROR:
        return "ERROR cannot be requested; a failed arc enters it"
    if cur is S.ERROR:
        return "the device is in ERROR; only a reset (VFIO_DEVICE_RESET) leaves it"
    if cur is S.STOP_COPY and new in (S.PRE_COPY, S.PRE_COPY_P2P):
        return "the uAPI does not permit STOP_COPY to PRE_COPY or PRE_COPY_P2P"
    return None


def _allowed_path(states):
    """Whether a candidate path (start .. end) keeps saving-group states off its interior,
    unless it stays in the group throughout."""
    if all(s in SAVING for s in states):
        return True
    return not any(s in SAVING for s in states[1:-1])


def _shortest(cur, new):
    """The shortest allowed paths from ``cur`` to ``new`` (breadth first over :data:`ARCS`)."""
    frontier, found = [(cur,)], []
    while frontier and not found:
        nxt = []
        for p in frontier:
            for a, b in ARCS:
                if a is p[-1] and b not in p:
                    q = p + (b,)
                    if b is new:
                        if _allowed_path(q):
                            found.append(q)
                    else:
                        nxt.append(q)
        frontier = nxt
    return found


def _table():
    table = {}
    for cur in S:
        for new in S:
            if cur is new or _refusal(cur, new):
                continue
            paths = _shortest(cur, new)
            if len(paths) != 1:          # the rules pick one path for every pair; say so if not
                raise AssertionError(f"{cur.name} -> {new.name}: {len(paths)} shortest paths {paths}")
            table[cur, new] = paths[0][1:]
    return table


_PATHS = _table()


def path(cur, new):
    """The states a transition from ``cur`` to ``new`` steps through, ``new`` last (empty when
    ``cur`` is ``new``); :class:`MigrationArcRefused` for a transition the uAPI refuses."""
    cur, new = S(cur), S(new)
    why = _refusal(cur, new)
    if why:
        raise MigrationArcRefused(f"{cur.name} -> {new.name} refused: {why}")
    return () if cur is new else _PATHS[cur, new]


# -- the data stream -------------------------------------------------------------------------

_REC = struct.Struct("<BII")          # kind, page (or 0), payload length
_PAGE_REC, _STATE_REC = 1, 2


def encode_records(pages=(), device_state=None):
    """Bytes of a migration stream: ``(page, 4096 bytes)`` records, then the device state's."""
    out = bytearray()
    for page, data in pages:
        if len(data) != PAGE:
            raise ValueError(f"a page record holds {PAGE} bytes, not {len(data)}")
        out += _REC.pack(_PAGE_REC, page, PAGE) + data
    if device_state is not None:
        out += _REC.pack(_STATE_REC, 0, len(device_state)) + device_state
    return bytes(out)


def decode_records(data):
    """``(pages, device_state)`` of a stream (:func:`encode_records`): ``{page: bytes}``, the
    later record of a page winning, and the device state or None; :class:`MigrationError`
    for a truncated or unknown record."""
    pages, state, off = {}, None, 0
    while off < len(data):
        if off + _REC.size > len(data):
            raise MigrationError(f"migration stream truncated in a record header at byte {off}")
        kind, page, n = _REC.unpack_from(data, off)
        off += _REC.size
        if off + n > len(data):
            raise MigrationError(f"migration stream truncated: a record of {n} bytes at byte {off}")
        body = bytes(data[off:off + n])
        off += n
        if kind == _PAGE_REC and n == PAGE:
            pages[page] = body
        elif kind == _STATE_REC and state is None:
            state = body
        else:
            raise MigrationError(f"migration stream: unexpected record kind {kind} of {n} bytes")
    return pages, state


def dirty_pages(bitmap, pages):
    """Page numbers set in a VFIO-format dirty bitmap (little-endian u64 words, bit n = page n)."""
    v = int.from_bytes(bitmap, "little")
    return {p for p in range(pages) if v >> p & 1}


@dataclass(frozen=True)
class PrecopyInfo:
    """What VFIO_MIG_GET_PRECOPY_INFO reports (``struct vfio_precopy_info``): bytes of the
    initial pre-copy data not yet read, and bytes dirtied since they were read."""
    initial_bytes: int
    dirty_bytes: int


class DevstateCodec:
    """The device state of a virtual device through :mod:`siov.sw.hv.devstate`: its ADIs, IMS
    entries and domain, read and written through the physical function's registers.

    The bytes are a small JSON header (the source's ADIs, IMS handles and domain, in the
    virtual device's own order: queue ``k`` is ``adis[k]``) and then ``devstate``'s blob
    (magic, version, DeviceParams, Verilog fingerprint, checksum). :meth:`restore` puts the
    saved ADIs, handles and domain onto the destination's in that order (a
    :class:`~siov.sw.hv.devstate.Placement`); ``devstate.restore`` checks everything before
    its first write and refuses an incompatible Device. The restored ADIs must be DISABLED
    (a fresh virtual device whose guest has not enabled its queues).

    The PASIDs are restored as saved, not set to the destination tenant's: the PASID is the
    guest's (its descriptors in its memory carry it, and the IMS check compares it), so a
    migration of one guest keeps it. Between two virtual devices of one Device the source
    must therefore be released before the destination runs (``docs/migration.md``).

    ``fingerprint``: the Device's Verilog fingerprint; None computes it from the parameters
    (:func:`siov.sw.results.device_fingerprint`), as ``devstate`` does.
    """

    _LEN = struct.Struct("<I")

    def __init__(self, fingerprint=None):
        self.fingerprint = fingerprint

    async def save(self, vdev):
        """The device state of ``vdev`` (stopped: its ADIs held and quiesced)."""
        from . import devstate
        t = vdev.tenant
        head = json.dumps({"adis": list(vdev.adis), "handles": list(vdev.handles), "domain": t.domain}).encode()
        blob = await devstate.save(vdev.vdcm.pf, adis=vdev.adis, handles=vdev.handles, domains=[t.domain],
                                   fingerprint=self.fingerprint)
        return self._LEN.pack(len(head)) + head + blob

    @classmethod
    def split(cls, data):
        """``(header, devstate blob)`` of :meth:`save`'s bytes; :class:`MigrationError` if they
        are not such bytes."""
        data = bytes(data)
        if len(data) < cls._LEN.size:
            raise MigrationError(f"device state of {len(data)} bytes: too short for its header")
        n, = cls._LEN.unpack_from(data)
        try:
            head = json.loads(data[cls._LEN.size:cls._LEN.size + n])
            head = {"adis": [int(a) for a in head["adis"]], "handles": [int(h) for h in head["handles"]],
                    "domain": int(head["domain"])}
        except (ValueError, KeyError, TypeError) as e:
            raise MigrationError(f"device state header unreadable: {e}") from None
        return head, data[cls._LEN.size + n:]

    def _placement(self, vdev, head):
        from . import devstate
        if len(head["adis"]) != len(vdev.adis) or len(head["handles"]) != len(vdev.handles):
            raise MigrationError(f"device state of {len(head['adis'])} ADIs and {len(head['handles'])} vectors; "
                                 f"{vdev.tenant.name}'s device has {len(vdev.adis)} and {len(vdev.handles)}")
        return devstate.Placement(adis=dict(zip(head["adis"], vdev.adis)),
                                  handles=dict(zip(head["handles"], vdev.handles)),
                                  domains={head["domain"]: vdev.tenant.domain})

    async def check(self, vdev, data):
        """Everything :meth:`restore` would refuse, checked without writing anything: the bytes,
        the virtual device's shape, the Device's parameters and fingerprint, and that the
        destination's ADIs are DISABLED (``devstate``'s own checks)."""
        from . import devstate
        head, blob = self.split(data)
        return await devstate.check(vdev.vdcm.pf, blob, self._placement(vdev, head), fingerprint=self.fingerprint)

    async def restore(self, vdev, data):
        """Restore ``data`` onto ``vdev``'s ADIs, IMS entries and domain; the interrupts its
        IMS entries held pending are delivered when the device next runs
        (:attr:`DeviceMigration.held_vectors`). Refused (nothing written): bytes that are not
        a device state, another shape of virtual device, or an incompatible Device."""
        from . import devstate
        head, blob = self.split(data)
        place = self._placement(vdev, head)
        state = await devstate.restore(vdev.vdcm.pf, blob, place, fingerprint=self.fingerprint)
        where = {h: k for k, h in enumerate(head["handles"])}
        vdev.migration.held_vectors.extend(where[h] for h in state.pending_handles)
        return state


def _devstate_codec():
    """The default device-state codec: :class:`DevstateCodec` over :mod:`siov.sw.hv.devstate`."""
    return DevstateCodec()


class DeviceMigration:
    """The migration state of one virtual device, and its data transfer session.

    Parameters
    ----------
    vdev : VirtualDevice
    codec : object, optional
        ``async save(vdev) -> bytes`` and ``async restore(vdev, data)``: the device state.

    Attributes
    ----------
    state : MigrationState
    cpu_dirty : async callable ``() -> set of pages``, optional
        Guest pages the VMM's own dirty log says its vCPUs wrote since the last call (a real
        VMM's KVM dirty log); added to the pages the device's dirty log names.
    history : list of (from, to)
        Every arc taken, in order.
    held_vectors : list of int
        Vectors (indexes into the device's vectors) whose interrupt a restored IMS entry held
        pending: the pending bit cannot be written, so each is raised in the tenant's virtual
        interrupt controller when the device runs with that vector unmasked (at RUNNING, or at
        the guest's later unmask: :meth:`deliver_held`), as the unmask would have delivered it.
    """

    def __init__(self, vdev, codec=None):
        self.vdev = vdev
        self.state = S.RUNNING
        self._codec = codec
        self.cpu_dirty = None
        self.history = []
        self.held_vectors = []
        self.log = logging.getLogger("siov.hv.migration")
        self._initial = deque()           # pages of the pre-copy image not yet read
        self._saved = None                # the device state STOP_COPY took, not yet read
        self._incoming = bytearray()
        self._ended = False
        self._stop_flag = False
        self._cpu_pending = set()         # pages cpu_dirty named that no read has sent yet

    @property
    def codec(self):
        """The device-state codec (by default :mod:`siov.sw.hv.devstate`'s)."""
        if self._codec is None:
            self._codec = _devstate_codec()
        return self._codec

    @codec.setter
    def codec(self, codec):
        self._codec = codec

    @property
    def stopped(self):
        """Whether the device may do no DMA and raise no interrupt (STOP, STOP_COPY, RESUMING)."""
        return self.state in STOPPED

    def _tenant(self):
        return self.vdev.tenant

    async def set_state(self, new):
        """Move to ``new`` along :func:`path`, arc by arc; the states stepped through.

        Raises
        ------
        MigrationArcRefused
            The uAPI refuses the transition; nothing changed.
        MigrationError
            RESUMING's data was refused (the device stays in RESUMING, nothing restored).
        Exception
            An arc's device work failed (a timeout, a save that failed): the device is in
            ERROR, as the uAPI says of an arc that could not be completed nor undone.
        """
        steps = path(self.state, new)
        for nxt in steps:
            await self._arc(self.state, nxt)
        return steps

    async def _arc(self, cur, nxt):
        if nxt is S.STOP_COPY or cur is S.RESUMING:
            self.codec                    # no codec: MigrationError before anything changes
        try:
            if nxt in STOPPED and cur not in STOPPED:
                await self._stop()
            if cur is S.RESUMING:
                await self._load()        # refused: MigrationError, still RESUMING
            if cur in STOPPED and nxt not in STOPPED:
                await self._run()
            if nxt is S.PRE_COPY and cur is S.RUNNING or nxt is S.PRE_COPY_P2P and cur is S.RUNNING_P2P:
                await self._open_precopy()
            if nxt is S.STOP_COPY:
                await self._open_stop_copy(from_precopy=cur is S.PRE_COPY_P2P)
            if nxt is S.RESUMING:
                self._incoming = bytearray()
            if cur in SAVING and nxt not in SAVING:
                self._close_session()
        except MigrationError:
            raise
        except Exception:
            self.log.exception("%s: arc %s -> %s failed; the device is in ERROR", self._tenant().name,
                               cur.name, nxt.name)
            self.state = S.ERROR
            raise
        self.history.append((cur, nxt))
        self.state = nxt

    # -- the device ---------------------------------------------------------------------------

    async def _stop(self):
        pf = self.vdev.vdcm.pf
        await pf.hold(self, self.vdev.adis)
        self._stop_flag = True
        await self.vdev._sync_interrupts()
        await pf.quiesce_adis(self.vdev.adis)

    async def _run(self):
        self._stop_flag = False
        await self.vdev._sync_interrupts()          # delivers the held vectors not masked
        await self.vdev.vdcm.pf.hold(self, ())

    def deliver_held(self):
        """Raise each held vector (:attr:`held_vectors`) that may now send its message, once;
        one still masked stays held. The VDCM calls it whenever it brings the IMS entries in
        line with the guest's controls, so a vector the guest unmasks after the resume gets its
        interrupt then, as MSI-X's pending bit delivers it (PCIe 6.0 6.1.4.5)."""
        if self.holds_interrupts or not self.held_vectors:
            return
        held, self.held_vectors = self.held_vectors, []
        for k in held:
            if self.vdev._vector_masked(k):          # still masked by the guest: still pending
                self.held_vectors.append(k)
            else:
                self._tenant().vic.raise_vector(self.vdev._ims[k][1], self.vdev.bus.now())

    @property
    def holds_interrupts(self):
        """Whether this device's IMS entries are to stay masked for migration (the VDCM's
        interrupt sync asks)."""
        return self._stop_flag

    # -- the data transfer session -------------------------------------------------------------

    async def _harvest(self, clear):
        t = self._tenant()
        bitmap = await self.vdev.vdcm.pf.harvest(t.domain, t.pages, no_clear=not clear)
        return dirty_pages(bitmap, t.pages)

    async def _open_precopy(self):
        await self._harvest(clear=True)            # the image starts now: every page is initial
        self._initial = deque(range(self._tenant().pages))
        self._saved, self._ended = None, False

    async def _open_stop_copy(self, from_precopy):
        if not from_precopy:
            self._initial = deque(range(self._tenant().pages))
            await self._harvest(clear=True)
        self._saved = await self.codec.save(self.vdev)
        self._ended = False

    def _close_session(self):
        self._initial.clear()
        self._saved = None
        self._cpu_pending = set()

    async def precopy_info(self):
        """VFIO_MIG_GET_PRECOPY_INFO: a :class:`PrecopyInfo` (PRE_COPY and PRE_COPY_P2P only).

        ``dirty_bytes`` is what the session has to send beyond the initial data, as the uAPI
        defines it (the data dirtied since it was read): the pages the device's dirty log
        (read with NO_CLEAR) names and the pages the VMM's own log names (``cpu_dirty``),
        less those still waiting in the initial image. ``cpu_dirty`` is consumed when called,
        so the pages it names are kept until a read sends them.
        """
        if self.state not in (S.PRE_COPY, S.PRE_COPY_P2P):
            raise MigrationError(f"pre-copy information exists in PRE_COPY states only, not {self.state.name}")
        await self._take_cpu_dirty()
        dirty = (await self._harvest(clear=False) | self._cpu_pending) - set(self._initial)
        return PrecopyInfo(len(self._initial) * PAGE, len(dirty) * PAGE)

    async def _take_cpu_dirty(self):
        if self.cpu_dirty is not None:
            self._cpu_pending |= set(await self.cpu_dirty())

    async def _dirty(self):
        """Pages dirtied since the last read: the device's log (cleared now), the VMM's."""
        pages = await self._harvest(clear=True)
        await self._take_cpu_dirty()
        pages |= self._cpu_pending
        self._cpu_pending = set()
        return pages

    async def read_data(self, max_pages=None):
        """The next chunk of the saving session's stream (:func:`encode_records`); ``b""`` at
        its end (STOP_COPY) or at pre-copy's temporary end (nothing initial nor dirty left).

        In PRE_COPY states: initial pages first (up to ``max_pages``), then the pages dirtied
        since the last read. In STOP_COPY: everything left, the device state last.
        """
        if self.state not in SAVING:
            raise MigrationError(f"no data to read in {self.state.name}")
        mem = self._tenant().memory
        if self.state is S.STOP_COPY:
            if self._ended:
                return b""
            pages = sorted(set(self._initial) | await self._dirty())
            self._initial.clear()
            self._ended = True
            return encode_records([(p, await mem.read(p * PAGE, PAGE)) for p in pages], self._saved)
        if self._initial:
            n = len(self._initial) if max_pages is None else max_pages
            pages = [self._initial.popleft() for _ in range(min(n, len(self._initial)))]
        else:
            pages = sorted(await self._dirty())
        return encode_records([(p, await mem.read(p * PAGE, PAGE)) for p in pages])

    def write_data(self, data):
        """Append ``data`` to RESUMING's stream (applied whole on the RESUMING to STOP arc)."""
        if self.state is not S.RESUMING:
            raise MigrationError(f"data is written in RESUMING only, not {self.state.name}")
        self._incoming += data

    async def _load(self):
        pages, state = decode_records(self._incoming)
        if state is None:
            raise MigrationError("the migration stream holds no device state; the device stays in RESUMING")
        t = self._tenant()
        bad = [p for p in pages if not 0 <= p < t.pages]
        if bad:
            raise MigrationError(f"the migration stream names pages {bad[:4]} outside {t.name}'s {t.pages} pages")
        # A codec that can check without writing is checked first, then the pages are written,
        # then the device state: a restored ring's prefetch reads its head descriptor when the
        # ADI is enabled, so the ring must be in memory by then. Without a check, the restore
        # (which validates whole) comes first, so a refusal still writes nothing.
        check = getattr(self.codec, "check", None)
        try:
            if check is not None:
                await check(self.vdev, state)
            else:
                await self.codec.restore(self.vdev, state)
        except Exception as e:
            raise MigrationError(f"the device state was refused, the device stays in RESUMING: {e}") from e
        for p in sorted(pages):
            await t.memory.write(p * PAGE, pages[p])
        if check is not None:
            try:
                await self.codec.restore(self.vdev, state)
            except Exception as e:
                self.log.exception("%s: the device state passed its check, then failed", t.name)
                raise MigrationError(f"the device state failed after its check: {e}") from e
        self._incoming = bytearray()

    async def reset(self):
        """VFIO_DEVICE_RESET: the device back to RUNNING from any state, ERROR included; the
        session is dropped. (The function's own reset is its FLR, a configuration write.)"""
        self._close_session()
        self._incoming = bytearray()
        if self.holds_interrupts:
            await self._run()
        else:
            await self.vdev.vdcm.pf.hold(self, ())
        self.history.append((self.state, S.RUNNING))
        self.state = S.RUNNING
