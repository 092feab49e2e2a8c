"""Checkpoint storage (sw/ckpt/storage.py): a base and deltas restore the last state; a damaged,
truncated or mismatched chain is refused with a clear error before anything is applied."""

import random

import pytest

from siov.sw.ckpt.storage import (ChainWriter, CorruptCheckpoint, MismatchedCheckpoint, TruncatedCheckpoint,
                                  load_chain)

PAGE = 4096
META = {"params": {"num_adis": 8}, "fingerprint": "abc", "tenant": "vm0"}


def page(b):
    return bytes([b]) * PAGE


def chain(meta=META):
    w = ChainWriter(meta)
    w.add({p: page(p) for p in range(8)}, {"device": b"d0", "vic": b"v0"})
    w.add({3: page(0x33)}, {"device": b"d1", "vic": b"v1"})
    w.add({5: page(0x55), 3: page(0x34)}, {"device": b"d2", "vic": b"v2"})
    return w.blobs


def test_base_and_deltas_restore_the_last_state():
    snap = load_chain(chain())
    want = {p: page(p) for p in range(8)}
    want.update({3: page(0x34), 5: page(0x55)})
    assert snap.pages == want
    assert (snap.epoch, snap.sections, snap.meta, snap.images) == (2, {"device": b"d2", "vic": b"v2"}, META, 3)
    assert load_chain(chain()[:2]).pages[3] == page(0x33)        # any prefix is a restorable checkpoint


@pytest.mark.parametrize("seed", range(8))
def test_a_flipped_byte_anywhere_is_refused(seed):
    blobs = chain()
    rng = random.Random(seed)
    k = rng.randrange(len(blobs))
    damaged = bytearray(blobs[k])
    damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
    blobs[k] = bytes(damaged)
    with pytest.raises((CorruptCheckpoint, TruncatedCheckpoint, MismatchedCheckpoint), match=f"image {k} of 3"):
        load_chain(blobs)


def test_a_flipped_page_byte_names_the_checksum():
    blobs = chain()
    damaged = bytearray(blobs[1])
    damaged[-PAGE // 2] ^= 0x80
    blobs[1] = bytes(damaged)
    with pytest.raises(CorruptCheckpoint, match="image 1 of 3: checkpoint image of epoch 1: checksum mismatch"):
        load_chain(blobs)


@pytest.mark.parametrize("cut", [1, 32, PAGE, "header"])
def test_a_truncated_image_is_refused(cut):
    blobs = chain()
    blobs[2] = blobs[2][:20] if cut == "header" else blobs[2][:-cut]
    with pytest.raises(TruncatedCheckpoint, match="image 2 of 3: .*(truncated|shorter)"):
        load_chain(blobs)


def test_a_delta_on_the_wrong_base_is_refused():
    other = chain(meta=META)
    w = ChainWriter(META)
    w.add({p: page(0xEE) for p in range(8)}, {"device": b"x"})   # another base of the same tenant
    with pytest.raises(MismatchedCheckpoint, match="image 1 .* is a delta of another image than image 0"):
        load_chain([w.blobs[0], other[1]])


def test_gaps_order_and_identity_are_checked():
    blobs = chain()
    with pytest.raises(MismatchedCheckpoint, match="is a delta of another image"):
        load_chain([blobs[0], blobs[2]])                         # a delta skipped
    with pytest.raises(MismatchedCheckpoint, match="a chain starts with a base"):
        load_chain(blobs[1:])
    with pytest.raises(MismatchedCheckpoint, match="second base"):
        load_chain([blobs[0], blobs[0]])
    with pytest.raises(MismatchedCheckpoint, match="a chain starts with a base"):
        load_chain([])
    with pytest.raises(CorruptCheckpoint, match="not a checkpoint image"):
        load_chain([b"X" * 200])


def test_a_delta_of_another_device_is_refused():
    w = ChainWriter(META)
    w.add({0: page(1)}, {})
    w.meta = dict(META, fingerprint="other")                    # the same chain, another Device's delta
    w.add({0: page(2)}, {})
    with pytest.raises(MismatchedCheckpoint, match="image 1 .* was taken of"):
        load_chain(w.blobs)


def test_nothing_is_half_restored():
    """The caller's pages are untouched by a refused chain: load_chain builds a new snapshot and
    returns it only once every image and link has been checked."""
    blobs = chain()
    blobs[2] = blobs[2][:-1]
    target = {p: page(0) for p in range(8)}
    before = dict(target)
    with pytest.raises(TruncatedCheckpoint):
        target.update(load_chain(blobs).pages)
    assert target == before
