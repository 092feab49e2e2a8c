// Host memory, and the testbench's per-cycle work, inside the simulator process.
//
// The rtl backend's host memory is an AXI4 slave on the Device's `mem`
// port, run in C++ on every rising clock edge (tb/host/sim_main.cpp), over a
// sparse store in a memory-mapped file that Python maps too
// (tb/host/shared.py): host code reads and writes guest memory in place,
// with no copy and no simulator time, and no Python runs per beat or per
// cycle.
//
// The slave answers cycle for cycle as cocotbext-axi's AxiRam does (the
// AxiSlaveRead/AxiSlaveWrite of cocotbext-axi 0.1.28): a queue of two
// requests behind each of AR, AW and W, two beats queued behind R and B,
// memory read when a beat is queued and written when a W beat is taken,
// READY and VALID changed just after the clock edge. The MMIO master on the
// `csr` port runs here too, cycle for cycle as cocotbext-axi's
// AxiLiteMaster: Python posts an access in a ring and sleeps until its
// response. So the Device's timing is the same with either host side.
//
// What makes system tests adversarial is kept, set from Python at any time
// through the control block: a pause pattern per channel (a paused AW, W or
// AR holds READY low, a paused R or B holds VALID low), host address ranges
// that answer SLVERR per beat, and for tb/system a random irq_out.ready and
// a log of the Device's taps (dispatches, hand-overs, slice ends,
// interrupts), read by Python when it needs them. The clock runs here too,
// toggled in place instead of through a VPI callback.
//
// Layout of the file: the Control block (mirrored by tb/host/shared.py, which
// checks header_size) in its first CONTROL_BYTES; host memory, ram_size bytes;
// NLOG logs of log_cap entries {cycle, value} each.
#pragma once

#include <cstdint>

namespace siov_host {

constexpr uint64_t MAGIC = 0x54534f48564f4953ULL;  // "SIOVHOST"
constexpr uint32_t VERSION = 1;
constexpr uint32_t MAX_ERRORS = 64;
constexpr uint64_t LOG_CAP = 1ULL << 20;
constexpr uint64_t CONTROL_BYTES = 4096;

enum Flag : uint32_t {
    FLAG_MEMORY = 1,     // serve the `mem` port
    FLAG_TAPS = 2,       // log the taps and irq_out beats
    FLAG_IRQ_READY = 4,  // drive irq_out.ready, randomly
    FLAG_MMIO = 8,       // master the `csr` port
};

constexpr uint32_t MMIO_SLOTS = 32;

// One MMIO access: Python fills addr (data, strb for a write) and bumps the
// ring's posted count; C++ fills resp (rdata for a read) and bumps its done count.
struct MmioSlot {
    uint64_t addr;
    uint32_t data, strb;
    uint32_t resp, rdata;
};

struct MmioRing {
    uint64_t posted, done;
    MmioSlot slot[MMIO_SLOTS];
};

enum Channel { CH_AW, CH_W, CH_B, CH_AR, CH_R, NCHAN };
enum Log { LOG_DISPATCH, LOG_HANDOVER, LOG_SLICE_END, LOG_IRQ, NLOG };

struct Pause {
    uint32_t mode;        // 0 never; 1 random: pause when a draw < threshold / 2^32; 2 pattern
    uint32_t threshold;
    uint64_t pattern;     // mode 2: bit i pauses step i of a cycle of `length` steps
    uint32_t length;
    uint32_t generation;  // bumped by Python on every change: restarts the pattern and reseeds
    uint64_t seed;
};

struct ErrorRange {
    uint64_t start, end;  // end exclusive
    uint32_t read, write;
};

struct LogEntry {
    uint64_t cycle, value;
};

struct Control {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;       // sizeof(Control)
    uint64_t ram_size;
    uint64_t log_cap;
    uint64_t cycle;             // rising clock edges since the simulation started
    uint32_t flags;             // Flag bits, set by Python
    uint32_t irq_ready_threshold;
    uint64_t irq_seed;
    uint32_t irq_generation;
    uint32_t n_errors;
    Pause pause[NCHAN];
    ErrorRange errors[MAX_ERRORS];
    uint64_t log_count[NLOG];
    uint64_t protocol_errors;   // bursts the slave refused (a 4 KiB crossing, a size too large)
    uint64_t beats[2];          // R and W beats served
    uint64_t clock_half;        // Python: the clock's half period in simulator steps (0: no C++ clock)
    uint64_t clock_next;        // the time of its next toggle
    MmioRing mmio_read, mmio_write;
};

static_assert(sizeof(Control) <= CONTROL_BYTES, "the control block fits its page");

}  // namespace siov_host
