"""Checkpoint storage: a full base image, then deltas, each sealed with a checksum.

An image holds the guest pages it carries (all of them in a base, the pages
written since the previous image in a delta) and named sections of bytes
(the device state, the virtual interrupt controller, the program's outputs).
Each image's bytes are::

    header  magic "SIOVCKPT", version, kind (base or delta), epoch,
            the SHA-256 of the image it follows (zeros for a base),
            the counts of what follows and the image's length
    meta    JSON: the identity of what was checkpointed (the Device's
            parameters and fingerprint, the tenant); a delta's must equal
            its base's
    sections, pages
    digest  SHA-256 of everything above

A chain is a base and the deltas that follow it, each naming its
predecessor's digest and the next epoch. :func:`load_chain` checks every
image and every link before it returns anything, and returns a new
:class:`Snapshot` (the pages merged, the sections of the last image); the
caller applies it only then. So a flipped byte, a truncated image, a delta
on another base, a gap, or another Device's image is refused with
:class:`CheckpointError` and nothing is half-restored.
"""

import hashlib
import json
import struct
from dataclasses import dataclass, field

from ...rtl.dma.defs import PAGE_SHIFT

__all__ = ["Image", "Snapshot", "CheckpointError", "CorruptCheckpoint", "TruncatedCheckpoint",
           "MismatchedCheckpoint", "encode_image", "decode_image", "load_chain", "ChainWriter", "MAGIC", "VERSION"]

PAGE = 1 << PAGE_SHIFT
MAGIC = b"SIOVCKPT"
VERSION = 1
BASE, DELTA = 0, 1
_HEADER = struct.Struct("<8sHBxI32sIIIQ")    # magic, version, kind, epoch, parent, meta, sections, pages, total
_SECTION = struct.Struct("<HI")               # name length, data length
_PAGE_NO = struct.Struct("<I")
_DIGEST = 32


class CheckpointError(Exception):
    """A checkpoint that cannot be restored; nothing was applied."""


class CorruptCheckpoint(CheckpointError):
    """An image whose checksum does not match its bytes, or that is not a checkpoint."""


class TruncatedCheckpoint(CheckpointError):
    """An image shorter than its header says."""


class MismatchedCheckpoint(CheckpointError):
    """An image that does not follow the one before it, or was taken of something else."""


@dataclass
class Image:
    """One checkpoint image: ``epoch``; ``pages`` (guest page -> 4096 bytes); ``sections``
    (name -> bytes); ``meta`` (JSON-able identity); ``base`` True for a full image."""
    epoch: int
    pages: dict
    sections: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    base: bool = False


@dataclass
class Snapshot:
    """A restored chain: every page as of the last image, the last image's sections and epoch,
    and the number of images read."""
    epoch: int
    pages: dict
    sections: dict
    meta: dict
    images: int


def encode_image(image, parent=bytes(_DIGEST)):
    """The bytes of ``image``, following the image whose digest is ``parent``; and its digest."""
    meta = json.dumps(image.meta, sort_keys=True).encode()
    body = bytearray()
    for name, data in sorted(image.sections.items()):
        raw = name.encode()
        body += _SECTION.pack(len(raw), len(data)) + raw + bytes(data)
    for page in sorted(image.pages):
        data = image.pages[page]
        if len(data) != PAGE:
            raise ValueError(f"page {page} holds {len(data)} bytes, not {PAGE}")
        body += _PAGE_NO.pack(page) + bytes(data)
    total = _HEADER.size + len(meta) + len(body) + _DIGEST
    head = _HEADER.pack(MAGIC, VERSION, BASE if image.base else DELTA, image.epoch,
                        bytes(_DIGEST) if image.base else parent, len(meta), len(image.sections), len(image.pages),
                        total)
    out = head + meta + bytes(body)
    digest = hashlib.sha256(out).digest()
    return out + digest, digest


def _take(data, off, n, what):
    if off + n > len(data) - _DIGEST:
        raise TruncatedCheckpoint(f"checkpoint image truncated: {what} needs bytes {off}..{off + n}, "
                                  f"the image has {max(len(data) - _DIGEST, 0)} before its checksum")
    return data[off:off + n], off + n


def decode_image(data):
    """``(image, digest, parent)`` of an image's bytes; :class:`CheckpointError` if they are not
    a whole, intact image of this version."""
    data = bytes(data)
    if len(data) < _HEADER.size + _DIGEST:
        raise TruncatedCheckpoint(f"checkpoint image of {len(data)} bytes is shorter than a header and checksum")
    if data[:len(MAGIC)] != MAGIC:
        raise CorruptCheckpoint(f"not a checkpoint image (magic {data[:len(MAGIC)]!r})")
    magic, version, kind, epoch, parent, n_meta, n_sections, n_pages, total = _HEADER.unpack_from(data)
    if version != VERSION:
        raise MismatchedCheckpoint(f"checkpoint image version {version}; this reader takes {VERSION}")
    digest = hashlib.sha256(data[:-_DIGEST]).digest()
    if digest != data[-_DIGEST:]:
        if len(data) < total:
            raise TruncatedCheckpoint(f"checkpoint image of epoch {epoch} truncated: {len(data)} bytes of "
                                      f"{total}")
        raise CorruptCheckpoint(f"checkpoint image of epoch {epoch}: checksum mismatch (a damaged byte)")
    if kind not in (BASE, DELTA):
        raise CorruptCheckpoint(f"checkpoint image of epoch {epoch}: unknown kind {kind}")
    off = _HEADER.size
    meta, off = _take(data, off, n_meta, "the metadata")
    sections = {}
    for _ in range(n_sections):
        raw, off = _take(data, off, _SECTION.size, "a section header")
        n_name, n_data = _SECTION.unpack(raw)
        name, off = _take(data, off, n_name, "a section name")
        sections[name.decode()], off = _take(data, off, n_data, "a section")
    pages = {}
    for _ in range(n_pages):
        raw, off = _take(data, off, _PAGE_NO.size + PAGE, "a page")
        pages[_PAGE_NO.unpack_from(raw)[0]] = raw[_PAGE_NO.size:]
    if off != len(data) - _DIGEST:
        raise CorruptCheckpoint(f"checkpoint image of epoch {epoch}: {len(data) - _DIGEST - off} bytes past its end")
    image = Image(epoch, pages, sections, json.loads(meta), base=kind == BASE)
    return image, digest, parent


def load_chain(blobs):
    """The :class:`Snapshot` that a base and its deltas (``blobs``, in order) restore.

    Every image is decoded and every link checked (a base first and only first; each delta
    names the previous image's digest, carries the next epoch and the base's meta) before
    the pages are merged into a new dictionary: on any :class:`CheckpointError` nothing was
    applied anywhere.
    """
    blobs = list(blobs)
    if not blobs:
        raise MismatchedCheckpoint("no checkpoint images: a chain starts with a base")
    decoded = []
    for k, blob in enumerate(blobs):
        try:
            decoded.append(decode_image(blob))
        except CheckpointError as e:
            raise type(e)(f"image {k} of {len(blobs)}: {e}") from None
    first, digest, _ = decoded[0]
    if not first.base:
        raise MismatchedCheckpoint(f"image 0 (epoch {first.epoch}) is a delta; a chain starts with a base")
    for k, (image, d, parent) in enumerate(decoded[1:], 1):
        if image.base:
            raise MismatchedCheckpoint(f"image {k} (epoch {image.epoch}) is a second base")
        if parent != digest:
            raise MismatchedCheckpoint(f"image {k} (epoch {image.epoch}) is a delta of another image than "
                                       f"image {k - 1} (epoch {decoded[k - 1][0].epoch})")
        if image.epoch != decoded[k - 1][0].epoch + 1:
            raise MismatchedCheckpoint(f"image {k} is epoch {image.epoch}; after epoch "
                                       f"{decoded[k - 1][0].epoch} comes {decoded[k - 1][0].epoch + 1}")
        if image.meta != first.meta:
            raise MismatchedCheckpoint(f"image {k} (epoch {image.epoch}) was taken of {image.meta}, its base "
                                       f"of {first.meta}")
        digest = d
    pages = {}
    for image, _, _ in decoded:
        pages.update(image.pages)
    last = decoded[-1][0]
    return Snapshot(last.epoch, pages, dict(last.sections), dict(first.meta), len(decoded))


class ChainWriter:
    """Seals images into a chain: the first :meth:`add` is the base, each later one a delta of
    the one before. ``blobs`` is the chain so far (the storage a secondary reads)."""

    def __init__(self, meta):
        self.meta = dict(meta)
        self.blobs = []
        self._digest = None
        self._epoch = -1

    def add(self, pages, sections):
        """Seal the next image (the base if it is the first) of ``pages`` and ``sections``;
        its bytes."""
        image = Image(self._epoch + 1, dict(pages), dict(sections), self.meta, base=not self.blobs)
        blob, self._digest = encode_image(image, self._digest or bytes(_DIGEST))
        self._epoch += 1
        self.blobs.append(blob)
        return blob
