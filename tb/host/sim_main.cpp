// The simulator's main for every cocotb + Verilator build of siov.
//
// Its loop is cocotb's own (cocotb 2.1, share/lib/verilator/verilator.cpp,
// Copyright cocotb contributors, BSD-3-Clause): evaluate, run the VPI
// callbacks that wake Python, jump to the next timed callback. To it this
// file adds the host side of the simulation that must not cost Python time
// (shared_host.h): the clock, toggled in place; and on every rising edge,
// before the edge is evaluated, it samples the Device's outputs and steps
// the host-memory slave, the MMIO master and the tap log, and just after
// the edge's evaluation it drives their outputs, as cocotb coroutines woken
// by RisingEdge would. It is idle unless SIOV_HOST_MEM names a folder for
// the shared file and the top has the Device's `mem` port; Python turns
// each part on through the file (tb/host/shared.py).

#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "Vtop.h"
#include "shared_host.h"
#include "verilated.h"
#include "verilated_syms.h"
#include "verilated_vpi.h"

#ifndef VM_TRACE_FST
#define VM_TRACE_FST 0
#endif

#if VM_TRACE
#if VM_TRACE_FST
#include <verilated_fst_c.h>
using verilated_trace_t = VerilatedFstC;
#else
#include <verilated_vcd_c.h>
using verilated_trace_t = VerilatedVcdC;
#endif
static verilated_trace_t *tfp;
#endif

static vluint64_t main_time = 0;

double sc_time_stamp() { return main_time; }

extern "C" {
void vlog_startup_routines_bootstrap(void);
}

namespace siov_host {

// The scopes that hold the top's public variables: Verilator keeps the ports in
// one ("TOP") and the module's own signals in another.
struct Scopes {
    std::vector<const VerilatedScope *> list;

    const VerilatedVar *find(const char *name) const {
        for (const VerilatedScope *s : list)
            if (const VerilatedVar *v = s->varFind(name)) return v;
        return nullptr;
    }
};

// A public variable of the top, read and written in place.
struct Sig {
    void *p = nullptr;
    VerilatedVarType type = VLVT_UNKNOWN;

    bool bind(const Scopes &scopes, const char *name) {
        const VerilatedVar *v = scopes.find(name);
        if (!v) return false;
        p = v->datap();
        type = v->vltype();
        return type >= VLVT_UINT8 && type <= VLVT_UINT64;
    }
    uint64_t get() const {
        switch (type) {
            case VLVT_UINT8: return *static_cast<CData *>(p);
            case VLVT_UINT16: return *static_cast<SData *>(p);
            case VLVT_UINT32: return *static_cast<IData *>(p);
            default: return *static_cast<QData *>(p);
        }
    }
    // Returns whether the value changed.
    bool set(uint64_t v) {
        if (get() == v) return false;
        switch (type) {
            case VLVT_UINT8: *static_cast<CData *>(p) = v; break;
            case VLVT_UINT16: *static_cast<SData *>(p) = v; break;
            case VLVT_UINT32: *static_cast<IData *>(p) = v; break;
            default: *static_cast<QData *>(p) = v; break;
        }
        return true;
    }
};

static inline uint64_t xorshift(uint64_t &s) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
}

// One channel's pause source, as cocotbext-axi's set_pause_generator.
struct Pauser {
    uint32_t generation = ~0u;
    uint64_t state = 1, step = 0;

    bool next(const Pause &p) {
        if (p.generation != generation) {
            generation = p.generation;
            state = p.seed ? p.seed : 0x9E3779B97F4A7C15ULL;
            step = 0;
        }
        switch (p.mode) {
            case 1: return (xorshift(state) >> 32) < p.threshold;
            case 2: return p.pattern >> (step++ % p.length) & 1;
            default: return false;
        }
    }
};

struct Addr {
    uint64_t id, addr, len, size, burst;
};
struct RBeat {
    uint64_t id, data, resp, last;
};
struct WBeat {
    uint64_t data, strb, last;
};

class Host {
public:
    Control *ctl = nullptr;

    // Called once the model exists: binds the ports and maps the shared file.
    void open(const char *dir) {
        Scopes scope;
        for (const auto &it : *Verilated::threadContextp()->scopeNameMap()) {
            // The top's own scopes: the ports' and the top module's (no dot below it).
            const std::string name = it.second->name();
            if (name.find('.', name.find('.') + 1) == std::string::npos) scope.list.push_back(it.second);
        }
        if (!scope.find("mem__arvalid")) return;  // not the Device: nothing to serve
        if (getenv("SIOV_HOST_VERBOSE"))
            for (const VerilatedScope *s : scope.list) fprintf(stderr, "siov host: scope %s\n", s->name());
        bool ok = clk.bind(scope, "clk") && rst.bind(scope, "rst");
        const char *mem_names[] = {"arid", "araddr", "arlen", "arsize", "arburst", "arvalid", "arready",
                                   "rid", "rdata", "rresp", "rlast", "rvalid", "rready",
                                   "awid", "awaddr", "awlen", "awsize", "awburst", "awvalid", "awready",
                                   "wdata", "wstrb", "wlast", "wvalid", "wready",
                                   "bid", "bresp", "bvalid", "bready"};
        Sig *mem_sigs[] = {&arid, &araddr, &arlen, &arsize, &arburst, &arvalid, &arready,
                           &rid, &rdata, &rresp, &rlast, &rvalid, &rready,
                           &awid, &awaddr, &awlen, &awsize, &awburst, &awvalid, &awready,
                           &wdata, &wstrb, &wlast, &wvalid, &wready,
                           &bid, &bresp, &bvalid, &bready};
        for (size_t i = 0; i < sizeof mem_names / sizeof *mem_names; ++i)
            ok = ok && mem_sigs[i]->bind(scope, ("mem__" + std::string(mem_names[i])).c_str());
        ok = ok && irq_valid.bind(scope, "irq_out__valid") && irq_ready.bind(scope, "irq_out__ready") &&
             irq_payload.bind(scope, "irq_out__payload");
        if (!ok) {
            fprintf(stderr, "siov host: the top's mem or irq_out port is not public; host memory is off\n");
            return;
        }
        const char *csr_names[] = {"araddr", "arvalid", "arready", "rdata", "rresp", "rvalid", "rready",
                                   "awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
                                   "bresp", "bvalid", "bready"};
        Sig *csr_sigs[] = {&c_araddr, &c_arvalid, &c_arready, &c_rdata, &c_rresp, &c_rvalid, &c_rready,
                           &c_awaddr, &c_awvalid, &c_awready, &c_wdata, &c_wstrb, &c_wvalid, &c_wready,
                           &c_bresp, &c_bvalid, &c_bready};
        mmio = true;
        for (size_t i = 0; i < sizeof csr_names / sizeof *csr_names; ++i)
            mmio = mmio && csr_sigs[i]->bind(scope, ("csr__" + std::string(csr_names[i])).c_str());
        taps = tap_consume.bind(scope, "tap_consume_valid") && tap_consume_adi.bind(scope, "tap_consume_adi") &&
               tap_slice.bind(scope, "tap_slice_end") && tap_dispatch.bind(scope, "tap_dispatch_valid") &&
               tap_dispatch_adi.bind(scope, "tap_dispatch_adi") &&
               tap_dispatch_engine.bind(scope, "tap_dispatch_engine");
        const char *size_env = getenv("SIOV_HOST_MEM_SIZE");
        const uint64_t ram_size = size_env ? strtoull(size_env, nullptr, 0) : (1ULL << 28);
        const uint64_t total = ram_size + CONTROL_BYTES + NLOG * LOG_CAP * sizeof(LogEntry);
        path = std::string(dir) + "/siov-host-" + std::to_string(getpid());
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ftruncate(fd, total) != 0) {
            perror(("siov host: " + path).c_str());
            return;
        }
        void *base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        if (base == MAP_FAILED) {
            perror("siov host: mmap");
            return;
        }
        ctl = static_cast<Control *>(base);
        mem = static_cast<uint8_t *>(base) + CONTROL_BYTES;
        logs = reinterpret_cast<LogEntry *>(mem + ram_size);
        ctl->version = VERSION;
        ctl->header_size = sizeof(Control);
        ctl->ram_size = ram_size;
        ctl->log_cap = LOG_CAP;
        ctl->magic = MAGIC;
        last_clk = clk.get();
    }

    // Python unlinks the file once it has mapped it; unlink it here if it never did.
    void close() {
        if (!path.empty()) unlink(path.c_str());
    }

    bool active() const { return ctl != nullptr; }

    // The C++ clock: when its next toggle is due, and the toggle itself.
    uint64_t clock_deadline() const { return ctl->clock_half ? ctl->clock_next : ~0ULL; }
    void tick_clock(uint64_t now) {
        if (ctl->clock_half && now >= ctl->clock_next) {
            clk.set(!clk.get());
            ctl->clock_next += ctl->clock_half;
        }
    }

    // Whenever the clock may have changed (after the timed callbacks, before an
    // evaluation): on a rising edge not yet seen, sample the Device's outputs (the
    // edge is not evaluated yet) and step. This runs before the Python that the
    // edge wakes, as cocotbext-axi's channel tasks run before the host tasks they wake.
    void edge() {
        const uint64_t c = clk.get();
        if (c && !last_clk) {
            step();
            drive_pending = true;
        }
        last_clk = c;
    }

    // After an evaluation: if it was the rising edge's, drive what changed; true if
    // the design must settle again.
    bool after_eval() {
        if (!drive_pending) return false;
        drive_pending = false;
        bool changed = false;
        const uint32_t flags = ctl->flags;
        if (flags & FLAG_MEMORY) {
            changed |= arready.set(o_arready);
            changed |= awready.set(o_awready);
            changed |= wready.set(o_wready);
            changed |= rvalid.set(o_rvalid);
            if (o_rvalid) {
                changed |= rid.set(o_r.id);
                changed |= rdata.set(o_r.data);
                changed |= rresp.set(o_r.resp);
                changed |= rlast.set(o_r.last);
            }
            changed |= bvalid.set(o_bvalid);
            if (o_bvalid) {
                changed |= bid.set(o_b.id);
                changed |= bresp.set(o_b.resp);
            }
        }
        if (flags & FLAG_IRQ_READY) changed |= irq_ready.set(o_irq_ready);
        if ((flags & FLAG_MMIO) && mmio) {
            changed |= c_arvalid.set(m_arvalid);
            if (m_arvalid) changed |= c_araddr.set(m_araddr);
            changed |= c_awvalid.set(m_awvalid);
            if (m_awvalid) changed |= c_awaddr.set(m_awaddr);
            changed |= c_wvalid.set(m_wvalid);
            if (m_wvalid) {
                changed |= c_wdata.set(m_wdata);
                changed |= c_wstrb.set(m_wstrb);
            }
            changed |= c_rready.set(m_ready);
            changed |= c_bready.set(m_ready);
        }
        return changed;
    }

private:
    std::string path;
    uint8_t *mem = nullptr;
    LogEntry *logs = nullptr;
    uint64_t last_clk = 0;
    bool taps = false, drive_pending = false;

    Sig clk, rst;
    Sig arid, araddr, arlen, arsize, arburst, arvalid, arready;
    Sig rid, rdata, rresp, rlast, rvalid, rready;
    Sig awid, awaddr, awlen, awsize, awburst, awvalid, awready;
    Sig wdata, wstrb, wlast, wvalid, wready;
    Sig bid, bresp, bvalid, bready;
    Sig irq_valid, irq_ready, irq_payload;
    Sig tap_consume, tap_consume_adi, tap_slice, tap_dispatch, tap_dispatch_adi, tap_dispatch_engine;
    Sig c_araddr, c_arvalid, c_arready, c_rdata, c_rresp, c_rvalid, c_rready;
    Sig c_awaddr, c_awvalid, c_awready, c_wdata, c_wstrb, c_wvalid, c_wready, c_bresp, c_bvalid, c_bready;
    bool mmio = false;

    // The MMIO master's state, as cocotbext-axi's AxiLiteMaster holds it: each
    // channel's source queue of two, and the accesses awaiting their response.
    uint64_t r_moved = 0, w_moved = 0;
    std::deque<uint32_t> ar_q, aw_q, w_q, r_wait, b_wait;
    bool w_half = false;  // an access whose AW is queued and whose W waits for room
    uint32_t w_half_slot = 0;
    bool m_arvalid = false, m_awvalid = false, m_wvalid = false, m_ready = false;
    uint64_t m_araddr = 0, m_awaddr = 0, m_wdata = 0, m_wstrb = 0;

    // The slave's state, as cocotbext-axi's queues and processes hold it.
    std::deque<Addr> arq, awq;
    std::deque<WBeat> wq;
    std::vector<std::pair<uint64_t, WBeat>> wburst;  // the open burst's beats, stored at its last
    std::deque<RBeat> rq;
    std::deque<RBeat> bq;  // id and resp
    bool o_arready = false, o_awready = false, o_wready = false, o_rvalid = false, o_bvalid = false;
    RBeat o_r{}, o_b{};
    bool rbusy = false, wbusy = false, wdone = false;
    Addr rcur{}, wcur{};
    uint64_t rn = 0, wn = 0, wresp = 0;
    uint64_t rwrap_lo = 0, rwrap_hi = 0, wwrap_lo = 0, wwrap_hi = 0;
    Pauser pausers[NCHAN];
    uint32_t irq_generation = ~0u;
    uint64_t irq_state = 1;
    bool o_irq_ready = true;

    void log(int which, uint64_t value) {
        uint64_t &n = ctl->log_count[which];
        if (n < LOG_CAP) logs[which * LOG_CAP + n] = LogEntry{ctl->cycle, value};
        ++n;  // Python sees the overflow
    }

    bool error(uint64_t lo, uint64_t hi, bool write) const {
        for (uint32_t i = 0; i < ctl->n_errors && i < MAX_ERRORS; ++i) {
            const ErrorRange &e = ctl->errors[i];
            if (e.start < hi && lo < e.end && (write ? e.write : e.read)) return true;
        }
        return false;
    }

    void step() {
        const uint32_t flags = ctl->flags;
        ++ctl->cycle;
        if (flags & (FLAG_TAPS | FLAG_IRQ_READY)) step_taps(flags);
        if ((flags & FLAG_MMIO) && mmio) step_mmio();
        if (!(flags & FLAG_MEMORY)) return;
        if (rst.get()) {
            reset();
            return;
        }
        // The channels sample the handshakes of the cycle that ends at this edge...
        bool pause[NCHAN];
        for (int c = 0; c < NCHAN; ++c) pause[c] = pausers[c].next(ctl->pause[c]);
        if (o_arready && arvalid.get())
            arq.push_back({arid.get(), araddr.get(), arlen.get(), arsize.get(), arburst.get()});
        o_arready = !(arq.size() >= 2 || pause[CH_AR]);
        if (o_awready && awvalid.get())
            awq.push_back({awid.get(), awaddr.get(), awlen.get(), awsize.get(), awburst.get()});
        o_awready = !(awq.size() >= 2 || pause[CH_AW]);
        if (o_wready && wvalid.get()) wq.push_back({wdata.get(), wstrb.get(), wlast.get()});
        o_wready = !(wq.size() >= 2 || pause[CH_W]);
        if ((o_rvalid && rready.get()) || !o_rvalid) {
            if (!rq.empty() && !pause[CH_R]) {
                o_r = rq.front();
                rq.pop_front();
                o_rvalid = true;
            } else {
                o_rvalid = false;
            }
        }
        if ((o_bvalid && bready.get()) || !o_bvalid) {
            if (!bq.empty() && !pause[CH_B]) {
                o_b = bq.front();
                bq.pop_front();
                o_bvalid = true;
            } else {
                o_bvalid = false;
            }
        }
        // ...then the read and write processes run as far as the queues let them.
        process_write();
        process_read();
    }

    // Accesses Python posted move into the AR, AW and W queues while they have room;
    // cocotbext-axi's processes move them the moment they are posted, and again
    // whenever a channel takes one.
    void move_mmio() {
        MmioRing &r = ctl->mmio_read;
        while (r_moved < r.posted && ar_q.size() < 2) {
            const uint32_t i = r_moved++ % MMIO_SLOTS;
            ar_q.push_back(i);
            r_wait.push_back(i);
        }
        MmioRing &w = ctl->mmio_write;
        for (;;) {
            if (w_half) {
                if (w_q.size() >= 2) break;
                w_q.push_back(w_half_slot);
                w_half = false;
                continue;
            }
            if (w_moved >= w.posted || aw_q.size() >= 2) break;
            const uint32_t i = w_moved++ % MMIO_SLOTS;
            aw_q.push_back(i);
            b_wait.push_back(i);
            w_half = true;
            w_half_slot = i;
        }
    }

    // A source channel: a new beat once the current one is taken (or none is offered).
    static bool source(bool &valid, bool ready, std::deque<uint32_t> &q, uint32_t &slot) {
        if (valid && !ready) return false;
        valid = !q.empty();
        if (!valid) return false;
        slot = q.front();
        q.pop_front();
        return true;
    }

    void step_mmio() {
        if (rst.get()) {
            ar_q.clear();
            aw_q.clear();
            w_q.clear();
            r_wait.clear();
            b_wait.clear();
            w_half = false;
            m_arvalid = m_awvalid = m_wvalid = m_ready = false;
            r_moved = ctl->mmio_read.posted;
            w_moved = ctl->mmio_write.posted;
            ctl->mmio_read.done = r_moved;
            ctl->mmio_write.done = w_moved;
            return;
        }
        move_mmio();
        MmioRing &r = ctl->mmio_read, &w = ctl->mmio_write;
        if (m_ready && c_rvalid.get() && !r_wait.empty()) {
            MmioSlot &s = r.slot[r_wait.front()];
            r_wait.pop_front();
            s.rdata = c_rdata.get();
            s.resp = c_rresp.get();
            ++r.done;
        }
        if (m_ready && c_bvalid.get() && !b_wait.empty()) {
            w.slot[b_wait.front()].resp = c_bresp.get();
            b_wait.pop_front();
            ++w.done;
        }
        m_ready = true;
        uint32_t i;
        if (source(m_arvalid, c_arready.get(), ar_q, i)) m_araddr = r.slot[i].addr;
        if (source(m_awvalid, c_awready.get(), aw_q, i)) m_awaddr = w.slot[i].addr;
        if (source(m_wvalid, c_wready.get(), w_q, i)) {
            m_wdata = w.slot[i].data;
            m_wstrb = w.slot[i].strb;
        }
        move_mmio();
    }

    void step_taps(uint32_t flags) {
        if ((flags & FLAG_TAPS) && taps) {
            if (tap_consume.get()) log(LOG_DISPATCH, tap_consume_adi.get());
            if (tap_dispatch.get()) log(LOG_HANDOVER, tap_dispatch_adi.get() | tap_dispatch_engine.get() << 8);
            if (tap_slice.get()) log(LOG_SLICE_END, 0);
        }
        if ((flags & FLAG_TAPS) && irq_valid.get() && irq_ready.get()) log(LOG_IRQ, irq_payload.get());
        if (flags & FLAG_IRQ_READY) {
            if (ctl->irq_generation != irq_generation) {
                irq_generation = ctl->irq_generation;
                irq_state = ctl->irq_seed ? ctl->irq_seed : 0x9E3779B97F4A7C15ULL;
            }
            o_irq_ready = (xorshift(irq_state) >> 32) < ctl->irq_ready_threshold ||
                          ctl->irq_ready_threshold == 0xFFFFFFFFu;
        }
    }

    void reset() {
        arq.clear();
        awq.clear();
        wq.clear();
        rq.clear();
        bq.clear();
        rbusy = wbusy = wdone = false;
        wburst.clear();
        o_arready = o_awready = o_wready = o_rvalid = o_bvalid = false;
    }

    // Start a burst: its first address aligned to its beat size, and its wrap bounds.
    bool start(Addr &a, uint64_t &lo, uint64_t &hi) {
        const uint64_t bytes = 1ULL << a.size;
        if (bytes > 8) {
            ++ctl->protocol_errors;
            fprintf(stderr, "siov host: burst of %llu-byte beats on a 64-bit bus\n", (unsigned long long)bytes);
            return false;
        }
        const uint64_t total = bytes * (a.len + 1);
        a.addr &= ~(bytes - 1);
        if (a.burst == 2) {  // WRAP
            lo = a.addr / total * total;
            hi = lo + total;
        } else if (a.burst == 1 && 0x1000 - (a.addr & 0xfff) < total) {
            ++ctl->protocol_errors;
            fprintf(stderr, "siov host: INCR burst at %#llx of %llu bytes crosses 4 KiB\n",
                    (unsigned long long)a.addr, (unsigned long long)total);
        }
        return true;
    }

    static void advance(Addr &a, uint64_t lo, uint64_t hi) {
        if (a.burst == 0) return;  // FIXED
        a.addr += 1ULL << a.size;
        if (a.burst == 2 && a.addr == hi) a.addr = lo;
    }

    void process_read() {
        for (;;) {
            if (!rbusy) {
                if (arq.empty()) return;
                rcur = arq.front();
                arq.pop_front();
                rn = 0;
                rbusy = start(rcur, rwrap_lo, rwrap_hi);
                if (!rbusy) continue;
            }
            while (rbusy && rq.size() < 2) {
                const uint64_t word = rcur.addr & ~7ULL;
                RBeat b{rcur.id, 0, 0, rn == rcur.len};
                if (word + 8 > ctl->ram_size || error(word, word + 8, false)) {
                    b.resp = 2;  // SLVERR, data zero
                } else {
                    memcpy(&b.data, mem + word, 8);
                }
                rq.push_back(b);
                ++ctl->beats[0];
                advance(rcur, rwrap_lo, rwrap_hi);
                if (rn++ == rcur.len) rbusy = false;
            }
            if (rbusy) return;  // R is full
        }
    }

    void process_write() {
        for (;;) {
            if (!wbusy) {
                if (awq.empty()) return;
                wcur = awq.front();
                awq.pop_front();
                wn = 0;
                wresp = 0;
                wdone = false;
                wbusy = start(wcur, wwrap_lo, wwrap_hi);
                if (!wbusy) continue;
            }
            while (!wdone) {
                if (wq.empty()) return;
                const WBeat w = wq.front();
                wq.pop_front();
                wburst.push_back({wcur.addr & ~7ULL, w});
                ++ctl->beats[1];
                advance(wcur, wwrap_lo, wwrap_hi);
                if (wn++ == wcur.len) wdone = true;
            }
            // A burst is stored whole at its last beat, as a host bridge commits
            // one cache-line write: a host polling a completion record's status
            // byte (beat 0) never sees it before the record's later beats.
            for (const auto &b : wburst) write_beat(b.first, b.second);
            wburst.clear();
            if (bq.size() >= 2) return;  // B is full
            bq.push_back(RBeat{wcur.id, 0, wresp, 0});
            wbusy = false;
        }
    }

    // Each run of strobed bytes is one store; a run in an error range fails the
    // burst (SLVERR) and the beat's later runs are not stored.
    void write_beat(uint64_t word, const WBeat &w) {
        uint64_t lane = 0;
        while (lane < 8) {
            if (!(w.strb >> lane & 1)) {
                ++lane;
                continue;
            }
            uint64_t end = lane;
            while (end < 8 && (w.strb >> end & 1)) ++end;
            const uint64_t lo = word + lane, hi = word + end;
            if (hi > ctl->ram_size || error(lo, hi, true)) {
                wresp = 2;
                return;
            }
            for (uint64_t i = lane; i < end; ++i) mem[word + i] = w.data >> (8 * i) & 0xff;
            lane = end;
        }
    }
};

static Host host;

}  // namespace siov_host

static inline bool siov_eval_step(Vtop *top) {
    if (!siov_host::host.active()) {
        top->eval_step();
        return false;
    }
    siov_host::host.edge();
    top->eval_step();
    return siov_host::host.after_eval();
}

static inline bool settle_value_callbacks() {
    bool cbs_called, again;
    cbs_called = again = VerilatedVpi::callValueCbs();
    while (again) again = VerilatedVpi::callValueCbs();
    return cbs_called;
}

void wrap_up() {
    VerilatedVpi::callCbs(cbEndOfSimulation);
    siov_host::host.close();
#if VM_TRACE
    if (tfp) tfp->close();
#endif
}

int main(int argc, char **argv) {
#if VM_TRACE_FST
    const char *traceFile = "dump.fst";
#else
    const char *traceFile = "dump.vcd";
#endif
    bool traceOn = false;
    for (int i = 1; i < argc; i++) {
        std::string arg = std::string(argv[i]);
        if (arg == "--trace") {
#if VM_TRACE
            traceOn = true;
#else
            fprintf(stderr, "Error: --trace requires the design to be built with trace support\n");
            return -1;
#endif
        } else if (arg == "--trace-file") {
            if (++i < argc) {
                traceFile = argv[i];
            } else {
                fprintf(stderr, "Error: --trace-file requires a parameter\n");
                return -1;
            }
        }
    }

    Verilated::commandArgs(argc, argv);
    std::unique_ptr<Vtop> top(new Vtop(""));
    Verilated::fatalOnVpiError(false);

#if VM_TRACE
    Verilated::traceEverOn(true);
    if (traceOn) {
        tfp = new verilated_trace_t;
        top->trace(tfp, 99);
        tfp->open(traceFile);
    }
#endif
    if (const char *dir = getenv("SIOV_HOST_MEM")) siov_host::host.open(dir);

    vlog_startup_routines_bootstrap();
    Verilated::addExitCb([](void *) { wrap_up(); }, nullptr);
    VerilatedVpi::callCbs(cbStartOfSimulation);
    settle_value_callbacks();

    while (!Verilated::gotFinish()) {
        bool again;
        do {
            do {
                again = siov_eval_step(top.get());
                VerilatedVpi::clearEvalNeeded();
                VerilatedVpi::doInertialPuts();
                settle_value_callbacks();
            } while (VerilatedVpi::evalNeeded() || again);
            VerilatedVpi::callCbs(cbReadWriteSynch);
            VerilatedVpi::doInertialPuts();
            settle_value_callbacks();
        } while (VerilatedVpi::evalNeeded());

        top->eval_end_step();
        VerilatedVpi::callCbs(cbReadOnlySynch);

#if VM_TRACE
        if (tfp) tfp->dump(main_time);
#endif
        const vluint64_t NO_TOP_EVENTS_PENDING = static_cast<vluint64_t>(~0ULL);
        vluint64_t next_time_cocotb = VerilatedVpi::cbNextDeadline();
        vluint64_t next_time_timing = top->eventsPending() ? top->nextTimeSlot() : NO_TOP_EVENTS_PENDING;
        vluint64_t next_time = std::min(next_time_cocotb, next_time_timing);
        if (siov_host::host.active()) next_time = std::min<vluint64_t>(next_time, siov_host::host.clock_deadline());
        if (next_time == NO_TOP_EVENTS_PENDING) break;
        main_time = next_time;

        VerilatedVpi::callCbs(cbNextSimTime);
        settle_value_callbacks();
        VerilatedVpi::callTimedCbs();
        if (siov_host::host.active()) {
            siov_host::host.tick_clock(main_time);
            siov_host::host.edge();
        }
        settle_value_callbacks();
    }

    top->final();
    wrap_up();
#if VM_TRACE
    if (tfp) {
        delete tfp;
        tfp = nullptr;
    }
#endif
    if (Verilated::threadContextp()->errorCount() > 0) return 1;
    return 0;
}
