// The speed limit of the Device in Verilator: a C++ harness with no cocotb, no VPI and no Python.
//
// Usage: harness IDLE_CYCLES STREAM_CYCLES
// Prints one JSON line: the wall and CPU seconds of N cycles with the Device
// idle, and of N cycles of a stream of
// AXI4-Lite reads of GLOBAL.SCRATCH issued one after the other, as host code
// polls a register (a new read once the previous one's R beat is taken).
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>

#include "Vdev.h"
#include "verilated.h"

// Verilator spells the double underscore of Amaranth's flattened port names "___05F".

static Vdev *top;
static unsigned long long cycle;

static inline void tick() {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
    ++cycle;
}

static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

static double cpu_since(std::clock_t c0) { return double(std::clock() - c0) / CLOCKS_PER_SEC; }

int main(int argc, char **argv) {
    const unsigned long long idle = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 1000000;
    const unsigned long long stream = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 1000000;
    Verilated::commandArgs(argc, argv);
    top = new Vdev;
    // Host memory is never touched here: its slave accepts and never answers.
    top->mem___05Farready = 1;
    top->mem___05Fawready = 1;
    top->mem___05Fwready = 1;
    top->irq_out___05Fready = 1;
    top->csr___05Frready = 1;
    top->csr___05Fbready = 1;
    top->rst = 1;
    for (int i = 0; i < 4; ++i) tick();
    top->rst = 0;
    for (int i = 0; i < 2; ++i) tick();

    auto t0 = std::chrono::steady_clock::now();
    std::clock_t c0 = std::clock();
    for (unsigned long long i = 0; i < idle; ++i) tick();
    const double idle_s = seconds_since(t0), idle_cpu = cpu_since(c0);

    unsigned long long reads = 0, bad = 0;
    bool ar_pending = false;
    t0 = std::chrono::steady_clock::now();
    c0 = std::clock();
    for (unsigned long long i = 0; i < stream; ++i) {
        if (!ar_pending && !top->csr___05Farvalid) {
            top->csr___05Faraddr = 0x10;  // GLOBAL.SCRATCH
            top->csr___05Farvalid = 1;
            ar_pending = true;
        }
        top->clk = 0;
        top->eval();
        const bool ar_fire = top->csr___05Farvalid && top->csr___05Farready;
        const bool r_fire = top->csr___05Frvalid && top->csr___05Frready;
        const unsigned resp = top->csr___05Frresp;
        top->clk = 1;
        top->eval();
        ++cycle;
        if (ar_fire) top->csr___05Farvalid = 0;
        if (r_fire) {
            ++reads;
            bad += resp != 0;
            ar_pending = false;
        }
    }
    const double stream_s = seconds_since(t0), stream_cpu = cpu_since(c0);
    top->final();
    std::printf("{\"idle_cycles\": %llu, \"idle_s\": %.6f, \"idle_cpu_s\": %.6f, \"stream_cycles\": %llu, "
                "\"stream_s\": %.6f, \"stream_cpu_s\": %.6f, \"reads\": %llu, \"bad_responses\": %llu}\n",
                idle, idle_s, idle_cpu, stream, stream_s, stream_cpu, reads, bad);
    delete top;
    return bad ? 1 : 0;
}
