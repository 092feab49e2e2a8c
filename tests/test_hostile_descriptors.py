"""No descriptor a guest writes may stop the model Device, hang it, or cost it time the RTL would not spend.

The program (:mod:`siov.sw.programs.hostile_descriptors`) runs an attacker's
descriptors beside a victim that shares its engine. On the model backend
every run must finish, the victim's NOOP must succeed behind whatever the
attacker posted, and what a refused descriptor costs must be what the RTL
spends on it: its checks (the record's ``cycles`` is 2 on the RTL for any
descriptor the checks refuse, whether or not its record then faults). On the
rtl backend (``make sim``) the same descriptors give the same record.
"""

import time

import pytest

from siov.rtl.cmd.dsa import Flag, Opcode, Status
from siov.sw.model.dsa import CompletionRecord, Descriptor
from siov.sw.platform import run_program
from siov.sw.platform.timing import TimingModel, features
from siov.sw.model.engine import Engine, Memory, PageMap
from siov.sw.programs.hostile_descriptors import ATTACKER_PASID, UNMAPPED_PAGE

PROGRAM = "siov.sw.programs.hostile_descriptors:hostile_descriptors"
PAGE = 4096
CR = Flag.CRAV | Flag.RCR
UNMAPPED_RECORD = UNMAPPED_PAGE * PAGE


def _run(descriptors, backend="model", burst=0, seed=1):
    arg = {"descriptors": [d.pack().hex() for d in descriptors], "burst": burst}
    return run_program(PROGRAM, backend, seed=seed, arg=arg, quiet=True)


def _functional(record):
    return {k: v for k, v in record.items() if k != "timing"}


#: Issue 24's two descriptors: an opcode the engine does not implement, and a MEMMOVE of
#: 2**32 - 1 bytes, each with its record on a page the attacker never mapped.
BAD_OPCODE = Descriptor(pasid=ATTACKER_PASID, opcode=0xEE, flags=CR, completion_addr=UNMAPPED_RECORD)
HUGE_MOVE = Descriptor(pasid=ATTACKER_PASID, opcode=Opcode.MEMMOVE, xfer_size=(1 << 32) - 1, flags=CR,
                       completion_addr=UNMAPPED_RECORD + 32, src_addr=2 * PAGE, dst_addr=3 * PAGE)
NOOP = Descriptor(pasid=ATTACKER_PASID, opcode=Opcode.NOOP, flags=CR, completion_addr=PAGE)


def test_unimplemented_opcode_with_faulting_record_leaves_the_device_running():
    """BAD_OPCODE, then PAGE_FAULT on the record write: the engine goes on, for this tenant and the victim."""
    out = _run([BAD_OPCODE, NOOP], burst=2)
    bad, noop = out["outcomes"]
    assert bad["last_status"] == Status.PAGE_FAULT
    assert bad["faults"][0] == ["dma", 0x05, ATTACKER_PASID, UNMAPPED_PAGE, 1]
    assert noop["last_status"] == Status.SUCCESS
    assert CompletionRecord.unpack(bytes.fromhex(noop["record"])).status == Status.SUCCESS
    assert out["burst"]["victim_status"] == Status.SUCCESS


def test_refused_descriptor_costs_its_checks_not_its_size():
    """A MEMMOVE refused with XFER_SIZE moves nothing: it costs the checks (2 cycles to its
    record on the RTL), whatever its size, and the victim's NOOP waits for little else."""
    start = time.perf_counter()
    out = _run([HUGE_MOVE, HUGE_MOVE.__class__(**{**HUGE_MOVE.__dict__, "completion_addr": PAGE})],
               burst=15)
    wall = time.perf_counter() - start
    faulted, written = out["outcomes"]
    assert faulted["last_status"] == Status.PAGE_FAULT and written["last_status"] == Status.XFER_SIZE
    assert out["timing"]["descriptors"][1]["record_cycles"] == 2
    assert out["burst"]["victim_status"] == Status.SUCCESS
    # 15 refused copies ahead of it in the attacker's ring, round robin: the victim waits for at
    # most one of them, its fetch and its own NOOP (109 cycles on the RTL).
    assert out["timing"]["victim_latency"] < 200
    assert out["timing"]["end"] < 20_000
    assert wall < 5


@pytest.mark.parametrize("flags, record_ok", [(CR, True), (CR, False), (Flag.RCI, False)])
@pytest.mark.parametrize("desc", [
    Descriptor(opcode=0xEE),
    Descriptor(opcode=Opcode.MEMMOVE, xfer_size=(1 << 32) - 1),
    Descriptor(opcode=Opcode.MEMFILL, xfer_size=64, dst_addr=3),
    Descriptor(opcode=Opcode.COMPARE, xfer_size=0),
    Descriptor(opcode=Opcode.WAIT, src_addr=4),
    Descriptor(opcode=Opcode.NOOP, flags=1 << 20),
], ids=["bad-opcode", "xfer-size", "fill-align", "compare-size-0", "wait-align", "reserved-flag"])
def test_timing_of_a_refused_descriptor_is_a_check(desc, flags, record_ok):
    """Refused by its checks: the timing model's kind is CHECK, whatever the record's fate."""
    desc = Descriptor(**{**desc.__dict__, "flags": desc.flags | flags, "pasid": 1, "completion_addr": 0x1000})
    pages = PageMap({(1, 1): 5} if record_ok else {})
    out = Engine(Memory(), pages).execute(desc)
    assert out.op_status in (Status.BAD_OPCODE, Status.INVALID_FLAGS, Status.XFER_SIZE, Status.ADDR_ALIGN)
    assert features(desc, out)[0] == "CHECK"
    assert TimingModel().descriptor_cycles(desc, out) == 2


def test_timing_of_a_copy_whose_record_faults_covers_the_copy():
    """Data moved, then the record's page faults: the cost is the copy's, not a fault's."""
    desc = Descriptor(pasid=1, opcode=Opcode.MEMMOVE, xfer_size=512, src_addr=0x2000, dst_addr=0x3000,
                      flags=CR, completion_addr=0x2000)     # the record's page is read-only
    out = Engine(Memory(), PageMap({(1, 2): 7, (1, 3): 8}, readonly={(1, 2)})).execute(desc)
    assert out.status == Status.PAGE_FAULT and out.op_status == Status.SUCCESS
    assert features(desc, out)[:4] == ("MEMMOVE", 1, 64, 64)


@pytest.mark.sim
def test_hostile_descriptors_on_rtl_match_the_model():
    """Issue 24's descriptors, refused with their records faulting and not, give the same record
    on the RTL, and the engine spends on each what the RTL's does (ENG.LAST_CYCLES)."""
    descs = [NOOP, BAD_OPCODE, HUGE_MOVE, Descriptor(**{**HUGE_MOVE.__dict__, "completion_addr": PAGE + 64})]
    descs += [HUGE_MOVE] * 11
    rtl, model = _run(descs, "rtl", burst=15), _run(descs, "model", burst=15)
    assert _functional(model) == _functional(rtl)
    cycles = [[t["last_cycles"] for t in r["timing"]["descriptors"]] for r in (model, rtl)]
    assert cycles[0] == cycles[1]
