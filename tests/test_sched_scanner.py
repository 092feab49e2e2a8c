"""The command scanner: its opcode table, its audit against the engine model, and its scans.

* The table states what rtl/cmd/dsa.py states (checked at import) and its
  accesses are the engine's: for any descriptor (hypothesis), the scanner's
  prediction (status, fault address, pages written, record) is what the
  engine model does with it, and the predicted cycles are the timing
  model's for what it did.
* A scan on the model backend reads only new slots, judges each
  descriptor, and predicts the cycles its record then carries.
* Garbage in a guest's ring is classified, never raised; every page the
  device wrote is among the pages the scanner predicted (recall), and no
  descriptor it predicted to fail succeeded (no false rejection).
"""

import collections
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siov.rtl.cmd.dsa import DESC_BYTES, MAX_XFER, SEMAPHORE_OPCODES, SIZED_OPCODES, Flag, Opcode, Status
from siov.sw.model.dsa import Descriptor
from siov.sw.model.engine import Engine, Memory, PageMap
from siov.sw.platform.timing import TimingModel
from siov.sw.sched.opcodes import CMD_INFO, RECORD, cmd_info
from siov.sw.sched.scanner import CommandScanner, Rules, Verdict, predict

from hv_support import PAGE, run, vm_with_queue

PASID = 0x123
MAPPED = frozenset(range(2, 12)) | {20}          # guest pages a tenant of 32 pages has mapped
WINDOW = 32


def _mapped(page):
    return page < WINDOW and page in MAPPED


def test_the_table_has_every_opcode_of_dsa_and_its_facts():
    assert set(CMD_INFO) == set(Opcode)
    assert {op for op, i in CMD_INFO.items() if i.sized} == set(SIZED_OPCODES)
    assert {op for op, i in CMD_INFO.items() if i.semaphore} == set(SEMAPHORE_OPCODES)
    assert CMD_INFO[Opcode.MEMMOVE].address_fields == ("src_addr", "dst_addr")
    assert [a.field for a in CMD_INFO[Opcode.MEMFILL].writes] == ["dst_addr"]      # src_addr is the pattern
    assert CMD_INFO[Opcode.WAIT].semaphore.mask == "sem_mask" and not CMD_INFO[Opcode.SIGNAL].semaphore.mask
    assert RECORD.field == "completion_addr" and RECORD.length == 32
    assert cmd_info(0x77) is None and cmd_info(0x03) is CMD_INFO[Opcode.MEMMOVE]


def _engine():
    pages = PageMap({(PASID, p): 0x1000 + p for p in MAPPED})
    return Engine(Memory(), pages)


ADDRESSES = st.one_of(
    st.builds(lambda p, off: p * PAGE + off, st.integers(0, 40), st.integers(0, PAGE - 1)),
    st.builds(lambda p, off: p * PAGE + off, st.sampled_from(sorted(MAPPED)), st.sampled_from([0, 8, 32, 4088, 4095])),
    st.integers(0, (1 << 44) - 1), st.integers(0, (1 << 64) - 1 - 2 * MAX_XFER))
FLAGS = st.one_of(st.sampled_from([0, int(Flag.CRAV | Flag.RCR), int(Flag.CRAV | Flag.RCR | Flag.RCI),
                                   int(Flag.CRAV), int(Flag.RCR), int(Flag.CRAV | Flag.RCR | Flag.FENCE | Flag.CC)]),
                  st.integers(0, (1 << 24) - 1))
DESCRIPTORS = st.builds(
    Descriptor,
    opcode=st.one_of(st.sampled_from([op.value for op in Opcode]), st.integers(0, 255)),
    flags=FLAGS,
    completion_addr=st.one_of(ADDRESSES, st.builds(lambda p, k: p * PAGE + 32 * k,
                                                   st.sampled_from(sorted(MAPPED) + [0, 30]), st.integers(0, 127))),
    src_addr=ADDRESSES, dst_addr=ADDRESSES,
    xfer_size=st.one_of(st.integers(0, 3 * PAGE), st.sampled_from([MAX_XFER, MAX_XFER + 1, (1 << 32) - 1])),
    int_handle=st.one_of(st.integers(0, 300), st.integers(0, (1 << 16) - 1)),
    sem_value=st.integers(0, (1 << 64) - 1), sem_mask=st.integers(0, (1 << 64) - 1),
    pasid=st.just(PASID))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DESCRIPTORS)
def test_the_prediction_is_what_the_engine_model_does(desc):
    timing = TimingModel()
    p = predict(desc, Rules(), _mapped, PASID, timing)
    out = _engine().execute(desc, wait_timed_out=True)
    op = cmd_info(desc.opcode)
    if op is not None and op.opcode is Opcode.WAIT and p["status"] is Status.SUCCESS:
        # The engine model's memory is zero, so a WAIT that would run may wait and time out, and
        # then write a record that it would not write on success, whose page may fault.
        assert out.status in (Status.SUCCESS, Status.WAIT_TIMEOUT) or \
            out.status is Status.PAGE_FAULT and out.record.fault_addr == desc.completion_addr
        return
    assert out.status == p["status"], (p["reason"], out.record)
    assert (p["verdict"] is Verdict.RUN) == (out.status is Status.SUCCESS)
    assert set(out.pages_written) == set(p["writes"])                 # recall, and nothing extra
    assert (out.completion is not None) == (p["record_addr"] is not None)
    if out.status is Status.PAGE_FAULT:
        assert out.record.fault_addr == p["fault_addr"]
    if out.interrupt is not None:
        assert out.interrupt.handle == p["interrupt"]
    assert timing.descriptor_cycles(desc, out) == p["cycles"]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=DESC_BYTES, max_size=DESC_BYTES), st.integers(0, (1 << 20) - 1))
def test_any_bytes_are_classified(raw, pasid):
    p = predict(Descriptor.unpack(raw), Rules(), _mapped, pasid)
    assert isinstance(p["verdict"], Verdict) and p["cycles"] >= 0
    assert all(isinstance(x, int) for x in p["writes"] | p["reads"])


def test_a_scan_reads_each_slot_once_and_predicts_the_records_cycles():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, adis=2, ring=16)
        sc = CommandScanner(hv)
        buf = drv.memory.alloc(4 * PAGE)
        await drv.dma_map(buf, 2 * PAGE)
        await hv.pf.set_eligible([])                  # hold the engines off while the scans look
        work = [Descriptor(opcode=Opcode.MEMMOVE, src_addr=buf, dst_addr=buf + PAGE + 100, xfer_size=3000),
                Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf + 3 * PAGE, xfer_size=64),        # not mapped
                Descriptor(opcode=Opcode.COMPARE, src_addr=buf, src2_addr=buf + PAGE, xfer_size=PAGE),
                Descriptor(opcode=0x77)]
        tickets = await q.submit(work)
        new, retired = await sc.scan()
        assert [d.verdict for d in new] == [Verdict.RUN, Verdict.FAULT, Verdict.RUN, Verdict.REFUSED]
        assert new[1].fault_addr == buf + 3 * PAGE and new[3].status == Status.BAD_OPCODE
        assert set(new[0].writes) == {(buf + PAGE) // PAGE, tickets[0].record_addr // PAGE} \
            | {(buf + PAGE + 3099) // PAGE}
        assert sc.read == 4 and not retired
        assert (await sc.scan()) == ([], []) and sc.read == 4        # nothing new: nothing read
        more = await q.submit([Descriptor(opcode=Opcode.NOOP)])
        new, _ = await sc.scan()
        assert [d.opcode for d in new] == ["NOOP"] and sc.read == 5
        await hv.pf.set_eligible(range(hv.caps.num_adis))
        await bus.wait_cycles(5000)
        _, retired = await sc.scan()
        assert [d.opcode for d in retired] == ["MEMMOVE", "MEMFILL", "COMPARE", "0x77", "NOOP"]
        for d, tk in zip(retired, tickets + more):
            raw = await drv.memory.read(tk.record_addr, 32)
            assert raw[0] & 0x7F == d.status
            assert int.from_bytes(raw[20:24], "little") == d.cycles
        assert sc.meter.accesses < 20
    run(prog)


def test_a_page_mapped_after_the_snapshot_is_not_a_false_rejection():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, ring=16)
        sc = CommandScanner(hv, map_ttl=10 ** 9)
        buf = drv.memory.alloc(2 * PAGE)
        await drv.dma_map(buf, PAGE)
        await hv.pf.set_eligible([])
        await q.submit([Descriptor(opcode=Opcode.NOOP)])
        await sc.scan()                               # the snapshot: buf + PAGE not mapped
        await drv.dma_map(buf + PAGE, PAGE)
        await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf + PAGE, xfer_size=64)])
        (d,), _ = await sc.scan()
        assert d.verdict is Verdict.RUN
    run(prog)


def test_garbage_rings_are_classified_and_the_predictions_hold():
    """A guest posts 120 descriptors of random or half-random bytes under its PASID, then one
    under another; the scanner never raises, every page the device wrote was predicted, and
    each record that only one descriptor writes holds the predicted status (so none predicted
    to fail succeeded)."""
    rng = random.Random(7)

    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, ring=256, pages=32)
        buf = drv.memory.alloc(8 * PAGE)
        await drv.dma_map(buf, 6 * PAGE)
        sc = CommandScanner(hv)
        posted, predicted = [], {}
        await hv.pf.set_eligible([])
        for k in range(120):
            if k % 3 == 0:
                raw = bytearray(rng.randbytes(DESC_BYTES))
            else:
                def data():            # pages 0-2 mapped, 6 not; page 5 holds the records
                    return buf + rng.choice([0, 1, 2, 6]) * PAGE + rng.randrange(0, PAGE, 8)
                d = Descriptor(opcode=rng.choice([0, 2, 3, 4, 5, 0xF1, 0x42]), xfer_size=rng.choice([0, 64, 5000]),
                               src_addr=data(), dst_addr=data(), flags=rng.choice([0x0C, 0x1C, 0x08, 0x4000C]),
                               completion_addr=buf + rng.choice([5 * PAGE + 32 * k] * 8 + [7 * PAGE, 5 * PAGE + 33]),
                               int_handle=rng.choice([vdev.handles[0], 999]))
                raw = bytearray(d.pack())
            raw[0:4] = t.pasid.to_bytes(4, "little")          # its own PASID, so it reaches the checks
            if k == 119:                                      # then one the ADI refuses: it goes to ERROR
                raw[0:4] = (t.pasid + 1).to_bytes(4, "little")
            posted.append(bytes(raw))
            await q.ring.post([bytes(raw)])
        new, _ = await sc.scan()
        assert [d.raw for d in new] == posted
        assert new[-1].verdict is Verdict.PASID
        await hv.pf.set_eligible(range(hv.caps.num_adis))
        await bus.wait_cycles(200_000)
        dirty = await hv.pf.harvest(t.domain, t.pages)
        written = {p for p in range(t.pages) if dirty[p // 8] >> p % 8 & 1}
        ring_pages = set(t.memory.pages_of(q.ring.guest_addr, q.size * DESC_BYTES))
        assert written - ring_pages <= set().union(*(d.writes for d in new))
        owners = collections.Counter(d.record_addr for d in new)
        checked = collections.Counter()
        for d in new:
            if d.record_addr is not None and owners[d.record_addr] == 1:
                status = (await drv.memory.read(d.record_addr, 32))[0] & 0x7F
                assert (status == Status.SUCCESS) == (d.verdict is Verdict.RUN), d
                assert status == d.status, d
                checked[d.verdict] += 1
        assert checked[Verdict.RUN] >= 10 and checked[Verdict.REFUSED] + checked[Verdict.FAULT] >= 10, checked
        return len(new)
    assert run(prog) == 120


def test_a_compare_that_differs_before_an_unmapped_page_is_predicted_to_run():
    """A COMPARE stops at its first difference: the scanner compares the sources in guest memory
    up to the first page that would fault, so it does not predict a fault the copy never reaches."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, ring=16)
        buf = drv.memory.alloc(4 * PAGE)
        await drv.dma_map(buf, 2 * PAGE)              # buf + 2 pages on are not mapped
        await drv.memory.write(buf, b"\1" * 64)
        sc = CommandScanner(hv)
        await hv.pf.set_eligible([])
        work = [Descriptor(opcode=Opcode.COMPARE, src_addr=buf, src2_addr=buf + PAGE + 2048, xfer_size=PAGE),
                Descriptor(opcode=Opcode.COMPARE, src_addr=buf + 1024, src2_addr=buf + PAGE + 2048, xfer_size=PAGE)]
        tickets = await q.submit(work)
        new, _ = await sc.scan()
        await hv.pf.set_eligible(range(hv.caps.num_adis))
        await bus.wait_cycles(3000)
        records = [await drv.memory.read(tk.record_addr, 32) for tk in tickets]
        return [(d.verdict, d.status) for d in new], [(r[0], r[1]) for r in records]
    predicted, records = run(prog)
    assert predicted == [(Verdict.RUN, Status.SUCCESS), (Verdict.FAULT, Status.PAGE_FAULT)]
    assert records == [(Status.SUCCESS, 1), (Status.PAGE_FAULT, 0)]
