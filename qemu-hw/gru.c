/*
 * GRU-style external TLB: an emulated PCI device with ASID-tagged,
 * set-associative translation, a per-context instruction engine and a
 * fault/drop-in protocol driven by the guest driver.
 *
 * The register contract lives in the project's include/ (shared with the
 * Linux driver and user space); docs/device.md is its prose form.
 *
 * The engine runs only from a QEMU_CLOCK_VIRTUAL timer, never from a host
 * thread: MMIO handlers and the timer both run under the BQL, so a driver
 * register write (an invalidation in particular) is serialized against
 * every device access, and -icount gives deterministic timing.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/timer.h"
#include "qemu/atomic.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "qemu/host-utils.h"
#include "qapi/error.h"
#include "hw/pci/pci.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "sysemu/dma.h"
#include "exec/memory.h"
#include "qom/object.h"
#include "hw/misc/gru_regs.h"
#include "standard-headers/misc/gru.h"
#include "trace.h"

#define TYPE_GRU_TLB "gru-tlb"
OBJECT_DECLARE_SIMPLE_TYPE(GruState, GRU_TLB)

#define GRU_INV_RING        64
/*
 * Limits on the work one timer tick or one register access may do while
 * it holds the BQL; docs/device.md, "Bounds", states them for the guest.
 */
#define GRU_FADD_TRIES      16      /* CAS attempts per FADD step */
#define GRU_MIN_TICK_NS     1       /* the engine never re-arms at "now" */
#define GRU_NR_STATS        ((GRU_REG_STAT_END - GRU_REG_STAT_HITS) / 8)
#define GRU_STAT(reg)       (((reg) - GRU_REG_STAT_HITS) / 8)
#define GRU_PAGE            4096ULL
#define GRU_ATTR_VALID_MASK \
    (GRU_ATTR_SIZE_MASK | GRU_ATTR_READ | GRU_ATTR_WRITE)
#define GRU_OP_8BYTE(opc) \
    ((opc) == GRU_OPC_LOAD || (opc) == GRU_OPC_STORE || \
     (opc) == GRU_OPC_FADD || (opc) == GRU_OPC_SWAP || (opc) == GRU_OPC_CAS)

typedef struct GruTlbEntry {
    uint64_t va;            /* aligned to the entry size */
    uint64_t pa;
    uint16_t asid;
    uint8_t attr;           /* GRU_ATTR_* */
    bool valid;
    bool accessed;
} GruTlbEntry;

typedef struct GruInvRecord {
    uint64_t gen;
    uint64_t start;
    uint64_t end;
    uint32_t kind;
    uint16_t asid;
} GruInvRecord;

typedef struct GruCtx {
    /* Window instruction block, as the user last wrote it. */
    uint64_t win[6];        /* OP, ADDR, SRC, LEN, OPERAND0, OPERAND1 */
    /* Window status, also visible (and writable) through BAR0. */
    uint64_t status;
    uint64_t error;
    uint64_t result;
    uint64_t exc_va;
    uint64_t exc_info;
    uint64_t progress;
    /* The instruction latched at the doorbell; the window may change. */
    uint64_t op;
    uint64_t addr;
    uint64_t src;
    uint64_t len;
    uint64_t operand0;
    uint64_t operand1;
    bool runnable;          /* BUSY and not waiting for the driver */
    bool parked;            /* BUSY, but its ASID was unloaded under it */
    /* BAR0 per-context registers */
    uint64_t asid_reg;
    uint64_t vector;
    uint64_t fault_va;
    uint64_t fault_info;
    uint64_t fault_time;
    uint64_t service_ns;
} GruCtx;

struct GruState {
    PCIDevice parent_obj;

    MemoryRegion regs;
    MemoryRegion windows;
    QEMUTimer engine;

    /* properties */
    uint32_t nr_ctx;
    uint32_t tlb_sets;
    uint32_t tlb_ways;
    uint32_t nr_vectors;
    uint64_t insn_latency_ns;
    bool no_gen_check;
    uint32_t fadd_interference;     /* test only: CAS attempts to spoil */

    GruCtx *ctx;
    GruTlbEntry *tlb;       /* tlb_sets * tlb_ways */
    uint8_t *victim;        /* round-robin replacement pointer per set */
    unsigned int rr;        /* next context the engine serves first */

    uint64_t ctrl;
    uint64_t fault_pending;
    uint64_t irq_cause;
    uint64_t done_pending;

    uint64_t inv_asid, inv_start, inv_end, inv_gen;
    GruInvRecord inv_ring[GRU_INV_RING];

    uint64_t di_asid, di_va, di_pa, di_attr, di_gen, di_result;
    uint64_t age_asid, age_start, age_end, age_result;
    uint64_t probe_asid, probe_va, probe_result, probe_pa;
    uint64_t cpuvec[GRU_CPUVEC_ENTRIES];

    uint64_t stats[GRU_NR_STATS];
    uint64_t tlb_walked;    /* entries the last INV or AGE command inspected */
    uint32_t msi_pending;   /* vectors to send when the access or tick ends */
    unsigned int notify_depth;  /* inside gru_send_irqs() */
};

static const char *const gru_stat_names[GRU_NR_STATS] = {
    [GRU_STAT(GRU_REG_STAT_HITS)] = "stat-hits",
    [GRU_STAT(GRU_REG_STAT_MISSES)] = "stat-misses",
    [GRU_STAT(GRU_REG_STAT_FAULTS)] = "stat-faults",
    [GRU_STAT(GRU_REG_STAT_DROPINS)] = "stat-dropins",
    [GRU_STAT(GRU_REG_STAT_DROPINS_STALE)] = "stat-dropins-stale",
    [GRU_STAT(GRU_REG_STAT_DROPINS_BAD)] = "stat-dropins-bad",
    [GRU_STAT(GRU_REG_STAT_INV_RANGE)] = "stat-inv-range",
    [GRU_STAT(GRU_REG_STAT_INV_ASID)] = "stat-inv-asid",
    [GRU_STAT(GRU_REG_STAT_INV_ALL)] = "stat-inv-all",
    [GRU_STAT(GRU_REG_STAT_INSN_DONE)] = "stat-insn-done",
    [GRU_STAT(GRU_REG_STAT_INSN_ERROR)] = "stat-insn-error",
    [GRU_STAT(GRU_REG_STAT_EVICTIONS)] = "stat-evictions",
    [GRU_STAT(GRU_REG_STAT_MISS_NS_TOTAL)] = "stat-miss-ns-total",
    [GRU_STAT(GRU_REG_STAT_MISS_NS_LAST)] = "stat-miss-ns-last",
    [GRU_STAT(GRU_REG_STAT_MISS_SERVICED)] = "stat-miss-serviced",
    [GRU_STAT(GRU_REG_STAT_BYTES)] = "stat-bytes",
};

static uint64_t gru_now(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
}

static void gru_count(GruState *s, hwaddr reg, uint64_t n)
{
    s->stats[GRU_STAT(reg)] += n;
}

/* ------------------------------------------------------------------ TLB */

static unsigned int gru_size_shift(unsigned int size_code)
{
    static const unsigned int shift[] = { 12, 21, 30 };

    return shift[size_code];
}

static uint32_t gru_tlb_set(GruState *s, uint16_t asid, uint64_t va,
                            unsigned int size_code)
{
    uint64_t h = (va >> gru_size_shift(size_code)) ^
                 ((uint64_t)asid * 0x9e3779b97f4a7c15ULL) ^ size_code;

    /* Fold the high bits in so that neighbouring ASIDs spread. */
    h ^= h >> 29;
    h ^= h >> 13;
    return h & (s->tlb_sets - 1);
}

static GruTlbEntry *gru_tlb_way(GruState *s, uint32_t set, uint32_t way)
{
    return &s->tlb[set * s->tlb_ways + way];
}

/* Find the entry mapping (asid, va) in any size class, or NULL. */
static GruTlbEntry *gru_tlb_find(GruState *s, uint16_t asid, uint64_t va)
{
    unsigned int sc;
    uint32_t w;

    for (sc = GRU_ATTR_SIZE_4K; sc <= GRU_ATTR_SIZE_1G; sc++) {
        uint64_t base = va & ~((1ULL << gru_size_shift(sc)) - 1);
        uint32_t set = gru_tlb_set(s, asid, base, sc);

        for (w = 0; w < s->tlb_ways; w++) {
            GruTlbEntry *e = gru_tlb_way(s, set, w);

            if (e->valid && e->asid == asid && e->va == base &&
                (e->attr & GRU_ATTR_SIZE_MASK) == sc) {
                return e;
            }
        }
    }
    return NULL;
}

static void gru_tlb_insert(GruState *s, uint16_t asid, uint64_t va,
                           uint64_t pa, uint8_t attr)
{
    unsigned int sc = attr & GRU_ATTR_SIZE_MASK;
    uint32_t set = gru_tlb_set(s, asid, va, sc);
    GruTlbEntry *e = NULL;
    uint32_t w;

    for (w = 0; w < s->tlb_ways; w++) {
        GruTlbEntry *t = gru_tlb_way(s, set, w);

        if (t->valid && t->asid == asid && t->va == va &&
            (t->attr & GRU_ATTR_SIZE_MASK) == sc) {
            e = t;
            break;
        }
    }
    for (w = 0; !e && w < s->tlb_ways; w++) {
        if (!gru_tlb_way(s, set, w)->valid) {
            e = gru_tlb_way(s, set, w);
        }
    }
    if (!e) {
        e = gru_tlb_way(s, set, s->victim[set]);
        s->victim[set] = (s->victim[set] + 1) % s->tlb_ways;
        gru_count(s, GRU_REG_STAT_EVICTIONS, 1);
    }
    e->valid = true;
    e->asid = asid;
    e->va = va;
    e->pa = pa;
    e->attr = attr;
    e->accessed = false;
}

static uint64_t gru_entry_end(const GruTlbEntry *e)
{
    return e->va + (1ULL << gru_size_shift(e->attr & GRU_ATTR_SIZE_MASK));
}

static bool gru_overlaps(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
    return a0 < b1 && b0 < a1;
}

typedef void GruTlbVisit(GruState *s, GruTlbEntry *e, void *opaque);

/*
 * Call fn on every valid entry of asid that overlaps [start, end).
 *
 * INV_CMD and AGE_CMD complete inside the MMIO write, so this is work a
 * guest can make the device do under the BQL with one access.  A range
 * covering few pages probes only the sets its pages can live in (one set
 * per page base of each size class); any other range walks the array
 * once.  Either way one call inspects at most sets * ways entries.
 */
static void gru_tlb_for_range(GruState *s, uint16_t asid, uint64_t start,
                              uint64_t end, GruTlbVisit *fn, void *opaque)
{
    uint64_t bases[GRU_ATTR_SIZE_1G + 1], probes = 0, i, b;
    unsigned int sc;
    uint32_t w;

    s->tlb_walked = 0;
    if (start >= end) {
        return;
    }
    for (sc = GRU_ATTR_SIZE_4K; sc <= GRU_ATTR_SIZE_1G; sc++) {
        unsigned int shift = gru_size_shift(sc);

        bases[sc] = ((end - 1) >> shift) - (start >> shift) + 1;
        probes += bases[sc];
    }

    if (probes > s->tlb_sets) {
        s->tlb_walked = (uint64_t)s->tlb_sets * s->tlb_ways;
        for (i = 0; i < (uint64_t)s->tlb_sets * s->tlb_ways; i++) {
            GruTlbEntry *e = &s->tlb[i];

            if (e->valid && e->asid == asid &&
                gru_overlaps(e->va, gru_entry_end(e), start, end)) {
                fn(s, e, opaque);
            }
        }
        return;
    }

    s->tlb_walked = probes * s->tlb_ways;
    for (sc = GRU_ATTR_SIZE_4K; sc <= GRU_ATTR_SIZE_1G; sc++) {
        unsigned int shift = gru_size_shift(sc);

        for (b = 0; b < bases[sc]; b++) {
            uint64_t va = ((start >> shift) + b) << shift;
            uint32_t set = gru_tlb_set(s, asid, va, sc);

            for (w = 0; w < s->tlb_ways; w++) {
                GruTlbEntry *e = gru_tlb_way(s, set, w);

                if (e->valid && e->asid == asid && e->va == va &&
                    (e->attr & GRU_ATTR_SIZE_MASK) == sc) {
                    fn(s, e, opaque);
                }
            }
        }
    }
}

/* ---------------------------------------------------------- interrupts */

/*
 * Interrupts are only queued here and go out in gru_send_irqs(), after
 * the register access or engine tick that raised them has finished with
 * the device state.
 */
static void gru_notify(GruState *s, unsigned int vector)
{
    s->msi_pending |= 1u << vector;
}

/*
 * Send the queued MSI-X messages.  Every entry point (register access,
 * engine tick) calls this as its very last action.  A message is a
 * memory write to a guest-chosen address: it can land on this device's
 * own BARs or config space, or on the Slot Control register of the port
 * above it, which unplugs and unrealizes the device before msix_notify()
 * returns.  Hence nothing but this loop runs after the first message;
 * the reference keeps the object (and the arrays, freed only at
 * finalize) alive for the loop, and the loop stops once the device is no
 * longer realized, because msix_notify() must not run after exit.
 *
 * The depth count makes writes to our BARs from the messages ignorable
 * (see gru_write_sized()) and lets a nested call leave its vectors to
 * the outer loop.
 */
static void gru_send_irqs(GruState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    Object *obj = OBJECT(s);

    if (!s->msi_pending || s->notify_depth) {
        return;
    }
    object_ref(obj);
    s->notify_depth++;
    while (s->msi_pending && qatomic_read(&DEVICE(s)->realized)) {
        unsigned int vector = ctz32(s->msi_pending);

        s->msi_pending &= ~(1u << vector);
        trace_gru_irq(gru_now(), vector);
        if (msix_enabled(pdev)) {
            msix_notify(pdev, vector);
        }
    }
    s->notify_depth--;
    object_unref(obj);
}

static unsigned int gru_fault_vector(GruState *s, GruCtx *c)
{
    uint64_t v;

    if ((c->op >> GRU_OP_FLAGS_SHIFT) & GRU_IF_CPU_HINT) {
        unsigned int hint = (c->op & GRU_OP_HINT_MASK) >> GRU_OP_HINT_SHIFT;

        v = s->cpuvec[hint % GRU_CPUVEC_ENTRIES];
    } else {
        v = c->vector;
    }
    return MAX(GRU_VEC_FAULT0, MIN(v, s->nr_vectors - 1));
}

/* -------------------------------------------------------------- engine */

static int gru_ctx_index(GruState *s, GruCtx *c)
{
    return c - s->ctx;
}

static void gru_kick(GruState *s)
{
    unsigned int i;

    if (!(s->ctrl & GRU_CTRL_ENABLE) || timer_pending(&s->engine)) {
        return;
    }
    for (i = 0; i < s->nr_ctx; i++) {
        if (s->ctx[i].runnable) {
            /*
             * Never at "now": timerlist_run_timers() would run a timer
             * that is already due again in the same pass, so with
             * insn-latency-ns=0 one pass (and one BQL hold) would run
             * every queued instruction to the end.
             */
            timer_mod(&s->engine, gru_now() +
                      MAX(s->insn_latency_ns, GRU_MIN_TICK_NS));
            return;
        }
    }
}

static void gru_finish(GruState *s, GruCtx *c, uint64_t status, uint64_t err)
{
    int n = gru_ctx_index(s, c);

    c->runnable = false;
    c->parked = false;
    c->status = status;
    c->error = err;
    if (status == GRU_ST_DONE) {
        gru_count(s, GRU_REG_STAT_INSN_DONE, 1);
        trace_gru_insn_done(gru_now(), n, c->op & GRU_OP_OPCODE_MASK,
                            c->result);
    } else {
        gru_count(s, GRU_REG_STAT_INSN_ERROR, 1);
        trace_gru_insn_error(gru_now(), n, err, c->exc_va);
    }
    if ((c->op >> GRU_OP_FLAGS_SHIFT) & GRU_IF_IRQ) {
        s->done_pending |= 1ULL << n;
        s->irq_cause |= status == GRU_ST_DONE ? GRU_CAUSE_DONE
                                              : GRU_CAUSE_ERROR;
        gru_notify(s, GRU_VEC_MISC);
    }
}

static void gru_fail(GruState *s, GruCtx *c, uint64_t err, uint64_t va)
{
    c->exc_va = va;
    gru_finish(s, c, GRU_ST_ERROR, err);
}

static bool gru_ctx_asid(GruCtx *c, uint16_t *asid)
{
    *asid = c->asid_reg & GRU_CTX_ASID_MASK;
    return (c->asid_reg & GRU_CTX_ASID_VALID) && *asid;
}

/*
 * Translate va for the running instruction of c.  On a miss the context
 * stalls with its fault record latched and the fault vector raised; the
 * caller stops serving it.
 */
static bool gru_translate(GruState *s, GruCtx *c, uint64_t va, bool write,
                          bool src, uint64_t *pa)
{
    int n = gru_ctx_index(s, c);
    uint16_t asid;
    GruTlbEntry *e;
    unsigned int vec;

    gru_ctx_asid(c, &asid);
    e = gru_tlb_find(s, asid, va);
    if (e && (e->attr & (write ? GRU_ATTR_WRITE : GRU_ATTR_READ))) {
        e->accessed = true;
        *pa = e->pa + (va - e->va);
        gru_count(s, GRU_REG_STAT_HITS, 1);
        trace_gru_tlb_hit(gru_now(), n, asid, va, *pa);
        return true;
    }

    gru_count(s, GRU_REG_STAT_MISSES, 1);
    trace_gru_tlb_miss(gru_now(), n, asid, va, write, src);
    c->runnable = false;
    c->fault_va = va;
    c->fault_info = GRU_FAULT_VALID | (write ? GRU_FAULT_WRITE : 0) |
                    (src ? GRU_FAULT_SRC : 0);
    c->fault_time = gru_now();
    c->exc_va = va;
    c->exc_info = (write ? GRU_EXC_WRITE : 0) | (src ? GRU_EXC_SRC : 0);
    s->fault_pending |= 1ULL << n;
    vec = gru_fault_vector(s, c);
    gru_count(s, GRU_REG_STAT_FAULTS, 1);
    trace_gru_fault_raise(gru_now(), n, va, c->fault_info, vec);
    gru_notify(s, vec);
    return false;
}

/*
 * True if some part of [pa, pa + len) is mapped read-only in as.  The
 * chipset makes shadow RAM read-only (PAM "read enable" on i440fx and
 * q35) with a read-only alias of plain RAM: address_space_translate()
 * resolves the alias to the RAM region, whose own readonly flag is
 * clear, and DMA through the address space writes it regardless.  Only
 * the flat view's section carries the flag, so look it up there.
 */
static bool gru_pa_readonly(AddressSpace *as, uint64_t pa, uint64_t len)
{
    while (len) {
        MemoryRegionSection sec = memory_region_find(as->root, pa, len);
        uint64_t n;
        bool ro;

        if (!sec.mr) {
            return false;   /* a hole: the RAM check refuses it */
        }
        ro = sec.readonly;
        n = sec.offset_within_address_space - pa + int128_get64(sec.size);
        memory_region_unref(sec.mr);
        if (ro) {
            return true;
        }
        n = MIN(n, len);
        pa += n;
        len -= n;
    }
    return false;
}

/*
 * True if [pa, pa + len) is guest RAM (writable RAM when write) in the
 * device's bus-master address space.  Also false while bus mastering is
 * off, because the bus-master region is then disabled.
 */
static bool gru_pa_is_ram(GruState *s, uint64_t pa, uint64_t len, bool write)
{
    AddressSpace *as = pci_get_address_space(PCI_DEVICE(s));
    uint64_t addr = pa, left = len;

    RCU_READ_LOCK_GUARD();
    while (left) {
        hwaddr xlat, plen = left;
        MemoryRegion *mr = address_space_translate(as, addr, &xlat, &plen,
                                                   write,
                                                   MEMTXATTRS_UNSPECIFIED);

        if (!memory_region_is_ram(mr) || memory_region_is_ram_device(mr) ||
            (write && mr->readonly) || !plen) {
            return false;
        }
        plen = MIN(plen, left);
        addr += plen;
        left -= plen;
    }
    /*
     * Only after the walk above found RAM: with bus mastering off the
     * flat view is empty, and memory_region_find() would hand its NULL
     * range array to bsearch(), which is undefined behaviour.
     */
    return !write || !gru_pa_readonly(as, pa, len);
}

static bool gru_dma(GruState *s, GruCtx *c, uint64_t va, uint64_t pa,
                    void *buf, uint64_t len, bool write, bool src)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    MemTxResult r = MEMTX_ERROR;

    if (gru_pa_is_ram(s, pa, len, write)) {
        r = write ? pci_dma_write(pdev, pa, buf, len)
                  : pci_dma_read(pdev, pa, buf, len);
    }
    if (r != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "gru: ctx %d: DMA %s of PA 0x%" PRIx64 " (VA 0x%"
                      PRIx64 ") is not to RAM\n", gru_ctx_index(s, c),
                      write ? "write" : "read", pa, va);
        c->exc_info = (write ? GRU_EXC_WRITE : 0) | (src ? GRU_EXC_SRC : 0);
        gru_fail(s, c, GRU_ERR_DMA, va);
        return false;
    }
    gru_count(s, GRU_REG_STAT_BYTES, len);
    return true;
}

typedef enum GruAtomicResult {
    GRU_ATOMIC_DONE,
    GRU_ATOMIC_FAILED,      /* the instruction has ended with an error */
    GRU_ATOMIC_AGAIN,       /* nothing done: retry on the next tick */
} GruAtomicResult;

/*
 * 8-byte atomics operate on the host mapping of guest RAM so that they are
 * atomic against vCPUs running in parallel under MTTCG, and unmap with the
 * access length so that dirty tracking and TB invalidation happen.
 */
static GruAtomicResult gru_atomic(GruState *s, GruCtx *c, uint64_t pa)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    unsigned int opc = c->op & GRU_OP_OPCODE_MASK;
    dma_addr_t len = 8;
    uint64_t *p, old, cur;
    unsigned int tries;

    p = gru_pa_is_ram(s, pa, 8, true) ?
        pci_dma_map(pdev, pa, &len, DMA_DIRECTION_FROM_DEVICE) : NULL;
    if (!p || len != 8) {
        if (p) {
            pci_dma_unmap(pdev, p, len, DMA_DIRECTION_FROM_DEVICE, 0);
        }
        qemu_log_mask(LOG_GUEST_ERROR,
                      "gru: ctx %d: atomic on PA 0x%" PRIx64
                      " which is not RAM\n", gru_ctx_index(s, c), pa);
        c->exc_info = GRU_EXC_WRITE;
        gru_fail(s, c, GRU_ERR_DMA, c->addr);
        return GRU_ATOMIC_FAILED;
    }

    switch (opc) {
    case GRU_OPC_FADD:
        /*
         * A CAS loop keeps the memory little endian on any host.  vCPUs
         * that keep changing the word can make every attempt fail, so the
         * loop is bounded: the step then has no effect, and the FADD is
         * retried from its translation on the next tick, after the BQL
         * has been released.
         */
        old = qatomic_read(p);
        for (tries = 0; tries < GRU_FADD_TRIES; tries++) {
            uint64_t new = cpu_to_le64(le64_to_cpu(old) + c->operand0);

            if (s->fadd_interference) {
                /* A racing CPU store, so that tests can reach the bound. */
                s->fadd_interference--;
                qatomic_set(p, cpu_to_le64(le64_to_cpu(old) + 1));
            }
            cur = qatomic_cmpxchg(p, old, new);
            if (cur == old) {
                break;
            }
            old = cur;
        }
        if (tries == GRU_FADD_TRIES) {
            pci_dma_unmap(pdev, p, 8, DMA_DIRECTION_FROM_DEVICE, 0);
            trace_gru_fadd_retry(gru_now(), gru_ctx_index(s, c), c->addr);
            return GRU_ATOMIC_AGAIN;
        }
        break;
    case GRU_OPC_SWAP:
        old = qatomic_xchg(p, cpu_to_le64(c->operand0));
        break;
    default: /* GRU_OPC_CAS */
        old = qatomic_cmpxchg(p, cpu_to_le64(c->operand1),
                              cpu_to_le64(c->operand0));
        break;
    }
    pci_dma_unmap(pdev, p, 8, DMA_DIRECTION_FROM_DEVICE, 8);
    c->result = le64_to_cpu(old);
    gru_count(s, GRU_REG_STAT_BYTES, 8);
    return GRU_ATOMIC_DONE;
}

/* Run one step of c: an 8-byte op, or one page-bounded BCOPY/BSET chunk. */
static void gru_step(GruState *s, GruCtx *c)
{
    unsigned int opc = c->op & GRU_OP_OPCODE_MASK;
    uint64_t pa, spa, val, chunk, dst, src;
    uint8_t buf[GRU_PAGE];
    uint16_t asid;

    if (!gru_ctx_asid(c, &asid)) {
        /* Unloaded under us: wait until the driver loads an ASID again. */
        c->runnable = false;
        c->parked = true;
        return;
    }

    switch (opc) {
    case GRU_OPC_NOP:
        break;
    case GRU_OPC_LOAD:
        if (!gru_translate(s, c, c->addr, false, false, &pa)) {
            return;
        }
        if (!gru_dma(s, c, c->addr, pa, &val, 8, false, false)) {
            return;
        }
        c->result = le64_to_cpu(val);
        break;
    case GRU_OPC_STORE:
        if (!gru_translate(s, c, c->addr, true, false, &pa)) {
            return;
        }
        val = cpu_to_le64(c->operand0);
        if (!gru_dma(s, c, c->addr, pa, &val, 8, true, false)) {
            return;
        }
        break;
    case GRU_OPC_FADD:
    case GRU_OPC_SWAP:
    case GRU_OPC_CAS:
        if (!gru_translate(s, c, c->addr, true, false, &pa)) {
            return;
        }
        if (gru_atomic(s, c, pa) != GRU_ATOMIC_DONE) {
            return;     /* ended, or still runnable for a retry */
        }
        break;
    case GRU_OPC_BCOPY:
    case GRU_OPC_BSET:
        if (c->progress < c->len) {
            dst = c->addr + c->progress;
            src = c->src + c->progress;
            chunk = MIN(c->len - c->progress,
                        GRU_PAGE - (dst & (GRU_PAGE - 1)));
            if (opc == GRU_OPC_BCOPY) {
                chunk = MIN(chunk, GRU_PAGE - (src & (GRU_PAGE - 1)));
                if (!gru_translate(s, c, src, false, true, &spa)) {
                    return;
                }
            }
            if (!gru_translate(s, c, dst, true, false, &pa)) {
                return;
            }
            if (opc == GRU_OPC_BCOPY) {
                if (!gru_dma(s, c, src, spa, buf, chunk, false, true)) {
                    return;
                }
            } else {
                memset(buf, c->operand0 & 0xff, chunk);
            }
            if (!gru_dma(s, c, dst, pa, buf, chunk, true, false)) {
                return;
            }
            c->progress += chunk;
        }
        if (c->progress < c->len) {
            return;     /* still runnable: next chunk on a later tick */
        }
        break;
    default:
        /* Unreachable: the doorbell and the restore path validate it. */
        gru_fail(s, c, GRU_ERR_BAD_OPCODE, 0);
        return;
    }
    gru_finish(s, c, GRU_ST_DONE, GRU_ERR_NONE);
}

/* One tick: at most one step of each context, so at most contexts steps. */
static void gru_tick(GruState *s)
{
    unsigned int i, first = s->rr;

    if (!(s->ctrl & GRU_CTRL_ENABLE)) {
        return;
    }
    for (i = 0; i < s->nr_ctx; i++) {
        unsigned int n = (first + i) % s->nr_ctx;

        if (s->ctx[n].runnable) {
            gru_step(s, &s->ctx[n]);
        }
    }
    s->rr = (first + 1) % s->nr_ctx;
    gru_kick(s);
}

static void gru_engine_tick(void *opaque)
{
    GruState *s = opaque;

    gru_tick(s);
    gru_send_irqs(s);
}

/*
 * Run a tick whose deadline has already passed, from a register read.
 * Without this, a tick that is due waits for QEMU's main loop to wake up,
 * and the interrupts it raises come from that thread: tens of us under
 * MTTCG.  A CPU polling STATUS gets the same result at the same virtual
 * time, raised from its own thread.  Under -icount the vCPU stops at the
 * deadline to run timers, so this never fires early there either.
 */
static void gru_catch_up(GruState *s)
{
    if (timer_pending(&s->engine) &&
        timer_expire_time_ns(&s->engine) <= gru_now()) {
        timer_del(&s->engine);
        gru_tick(s);
    }
}

/* Validate and latch the window's instruction; 0 or a GRU_ERR_*. */
static uint64_t gru_check_insn(GruCtx *c, uint64_t *bad_va)
{
    uint64_t op = c->win[0], addr = c->win[1], src = c->win[2];
    uint64_t len = c->win[3];
    unsigned int opc = op & GRU_OP_OPCODE_MASK;
    unsigned int flags = (op & GRU_OP_FLAGS_MASK) >> GRU_OP_FLAGS_SHIFT;

    *bad_va = 0;
    if (opc > GRU_OPC_MAX) {
        return GRU_ERR_BAD_OPCODE;
    }
    if ((op & GRU_OP_RSVD_MASK) || (flags & ~GRU_IF_VALID_MASK)) {
        return GRU_ERR_BAD_INSN;
    }
    if (GRU_OP_8BYTE(opc)) {
        if (addr & 7) {
            *bad_va = addr;
            return GRU_ERR_MISALIGNED;
        }
        if (addr > GRU_VA_LIMIT - 8) {
            *bad_va = addr;
            return GRU_ERR_KERNEL_ADDR;
        }
    } else if (opc == GRU_OPC_BCOPY || opc == GRU_OPC_BSET) {
        if (len > GRU_INSN_MAX_LEN) {
            return GRU_ERR_TOO_LONG;
        }
        if (opc == GRU_OPC_BCOPY && len &&
            gru_overlaps(src, src + len, addr, addr + len)) {
            *bad_va = src;
            return GRU_ERR_OVERLAP;
        }
        /* LEN <= 64 MiB, so the comparisons below cannot wrap. */
        if (len && addr > GRU_VA_LIMIT - len) {
            *bad_va = addr;
            return GRU_ERR_KERNEL_ADDR;
        }
        if (len && opc == GRU_OPC_BCOPY && src > GRU_VA_LIMIT - len) {
            *bad_va = src;
            return GRU_ERR_KERNEL_ADDR;
        }
    }
    return GRU_ERR_NONE;
}

static void gru_latch(GruCtx *c)
{
    c->op = c->win[0];
    c->addr = c->win[1];
    c->src = c->win[2];
    c->len = c->win[3];
    c->operand0 = c->win[4];
    c->operand1 = c->win[5];
    c->error = GRU_ERR_NONE;
    c->result = 0;
    c->exc_va = 0;
    c->exc_info = 0;
    c->progress = 0;
}

static void gru_doorbell(GruState *s, GruCtx *c, uint64_t val)
{
    int n = gru_ctx_index(s, c);
    uint64_t err, bad_va;
    uint16_t asid;

    trace_gru_doorbell(gru_now(), n, val, c->win[0], c->win[1], c->win[3]);
    if (c->status == GRU_ST_BUSY || c->status == GRU_ST_CALLOS) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "gru: ctx %d: doorbell 0x%" PRIx64 " while %s dropped\n",
                      n, val, c->status == GRU_ST_BUSY ? "BUSY" : "CALLOS");
        return;
    }
    gru_latch(c);
    if (val != GRU_DB_START) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "gru: ctx %d: unknown doorbell 0x%" PRIx64 "\n", n, val);
        gru_fail(s, c, GRU_ERR_BAD_DOORBELL, 0);
        return;
    }
    err = gru_check_insn(c, &bad_va);
    if (err == GRU_ERR_NONE && !gru_ctx_asid(c, &asid)) {
        err = GRU_ERR_NO_CONTEXT;
    }
    if (err != GRU_ERR_NONE) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "gru: ctx %d: instruction 0x%" PRIx64
                      " refused with error %" PRIu64 "\n", n, c->op, err);
        gru_fail(s, c, err, bad_va);
        return;
    }
    c->status = GRU_ST_BUSY;
    c->runnable = true;
    gru_kick(s);
}

/* Account the service time of a latched fault the driver just handled. */
static void gru_fault_serviced(GruState *s, GruCtx *c)
{
    uint64_t ns;

    if (!(c->fault_info & GRU_FAULT_VALID)) {
        return;
    }
    ns = gru_now() - c->fault_time;
    c->service_ns = ns;
    c->fault_info &= ~GRU_FAULT_VALID;
    s->stats[GRU_STAT(GRU_REG_STAT_MISS_NS_TOTAL)] += ns;
    s->stats[GRU_STAT(GRU_REG_STAT_MISS_NS_LAST)] = ns;
    gru_count(s, GRU_REG_STAT_MISS_SERVICED, 1);
}

static void gru_ctx_clear_window(GruCtx *c)
{
    memset(c->win, 0, sizeof(c->win));
    c->status = GRU_ST_IDLE;
    c->error = 0;
    c->result = 0;
    c->exc_va = 0;
    c->exc_info = 0;
    c->progress = 0;
    c->op = c->addr = c->src = c->len = c->operand0 = c->operand1 = 0;
    c->runnable = false;
    c->parked = false;
}

static void gru_ctx_cmd(GruState *s, GruCtx *c, uint64_t val)
{
    int n = gru_ctx_index(s, c);
    unsigned int cmd = val & 0xff;
    uint64_t arg = (val >> GRU_CMD_ARG_SHIFT) & 0xff;
    bool active = c->status == GRU_ST_BUSY || c->status == GRU_ST_CALLOS;

    s->fault_pending &= ~(1ULL << n);
    if (val >> 16) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: ctx %d: CMD 0x%" PRIx64
                      " has reserved bits set, ignored\n", n, val);
        return;
    }
    switch (cmd) {
    case GRU_CMD_RESUME:
        if (!active) {
            goto inactive;
        }
        gru_fault_serviced(s, c);
        c->status = GRU_ST_BUSY;
        c->error = GRU_ERR_NONE;
        c->runnable = true;
        gru_kick(s);
        break;
    case GRU_CMD_FAIL:
        if (!active) {
            goto inactive;
        }
        if (arg == GRU_ERR_NONE || arg > GRU_ERR_MAX) {
            qemu_log_mask(LOG_GUEST_ERROR, "gru: ctx %d: FAIL with invalid "
                          "error %" PRIu64 ", using FAULT\n", n, arg);
            arg = GRU_ERR_FAULT;
        }
        gru_fault_serviced(s, c);
        gru_finish(s, c, GRU_ST_ERROR, arg);
        break;
    case GRU_CMD_CALLOS:
        if (!active) {
            goto inactive;
        }
        gru_fault_serviced(s, c);
        c->runnable = false;
        c->parked = false;
        c->status = GRU_ST_CALLOS;
        c->error = arg;
        break;
    case GRU_CMD_ABORT:
        if (!active) {
            break;      /* nothing running: harmless */
        }
        c->fault_info &= ~GRU_FAULT_VALID;
        gru_finish(s, c, GRU_ST_ERROR, GRU_ERR_ABORTED);
        break;
    case GRU_CMD_RESET:
        c->fault_info &= ~GRU_FAULT_VALID;
        gru_ctx_clear_window(c);
        break;
    case GRU_CMD_ACK:
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "gru: ctx %d: unknown CMD %u\n",
                      n, cmd);
        break;
    }
    trace_gru_ctx_cmd(gru_now(), n, cmd, arg, c->status, c->service_ns);
    return;

inactive:
    qemu_log_mask(LOG_GUEST_ERROR, "gru: ctx %d: CMD %u with no instruction "
                  "running (status %" PRIu64 "), ignored\n", n, cmd, c->status);
}

/* ------------------------------------------------------- invalidation */

static void gru_inv_entry(GruState *s, GruTlbEntry *e, void *opaque)
{
    uint32_t *removed = opaque;

    e->valid = false;
    (*removed)++;
}

static void gru_invalidate(GruState *s, uint64_t kind)
{
    uint16_t asid = s->inv_asid & GRU_CTX_ASID_MASK;
    uint64_t start = s->inv_start, end = s->inv_end;
    GruInvRecord *r;
    uint32_t i, removed = 0;

    if (kind < GRU_INV_RANGE || kind > GRU_INV_ALL) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: unknown INV_CMD %" PRIu64 "\n",
                      kind);
        return;
    }
    if (kind != GRU_INV_ALL && !asid) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: INV_CMD %" PRIu64
                      " with ASID 0 ignored\n", kind);
        return;
    }
    if (kind == GRU_INV_RANGE && start >= end) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: INV range [0x%" PRIx64 ", 0x%"
                      PRIx64 ") is empty, ignored\n", start, end);
        return;
    }

    if (kind == GRU_INV_RANGE) {
        gru_tlb_for_range(s, asid, start, end, gru_inv_entry, &removed);
    } else {
        s->tlb_walked = (uint64_t)s->tlb_sets * s->tlb_ways;
        for (i = 0; i < s->tlb_sets * s->tlb_ways; i++) {
            GruTlbEntry *e = &s->tlb[i];

            if (e->valid && (kind == GRU_INV_ALL || e->asid == asid)) {
                gru_inv_entry(s, e, &removed);
            }
        }
    }

    s->inv_gen++;
    r = &s->inv_ring[s->inv_gen % GRU_INV_RING];
    r->gen = s->inv_gen;
    r->kind = kind;
    r->asid = asid;
    r->start = kind == GRU_INV_RANGE ? start : 0;
    r->end = kind == GRU_INV_RANGE ? end : UINT64_MAX;
    gru_count(s, kind == GRU_INV_RANGE ? GRU_REG_STAT_INV_RANGE :
                 kind == GRU_INV_ASID ? GRU_REG_STAT_INV_ASID :
                 GRU_REG_STAT_INV_ALL, 1);
    trace_gru_invalidate(gru_now(), kind, asid, start, end, s->inv_gen,
                         removed);
}

/* ------------------------------------------------------------ drop-in */

/* True if an invalidation newer than gen may have removed this entry. */
static bool gru_dropin_stale(GruState *s, uint16_t asid, uint64_t va,
                             uint64_t end, uint64_t gen)
{
    uint64_t g;

    if (s->inv_gen - gen > GRU_INV_RING) {
        return true;    /* the ring no longer reaches back to gen */
    }
    for (g = gen + 1; g <= s->inv_gen; g++) {
        GruInvRecord *r = &s->inv_ring[g % GRU_INV_RING];

        if (r->kind == GRU_INV_ALL ||
            (r->asid == asid && gru_overlaps(r->start, r->end, va, end))) {
            return true;
        }
    }
    return false;
}

static void gru_dropin(GruState *s, uint64_t cmd)
{
    uint64_t attr = s->di_attr, va = s->di_va, pa = s->di_pa;
    unsigned int sc = attr & GRU_ATTR_SIZE_MASK;
    uint64_t mask;
    const char *what;

    if (cmd != GRU_DI_INSERT) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: unknown DI_CMD %" PRIu64 "\n",
                      cmd);
        return;
    }
    mask = sc <= GRU_ATTR_SIZE_1G ? (1ULL << gru_size_shift(sc)) - 1 : 0;
    if ((attr & ~(uint64_t)GRU_ATTR_VALID_MASK) || sc > GRU_ATTR_SIZE_1G ||
        (va & mask) || (pa & mask) || !s->di_asid ||
        s->di_asid > GRU_CTX_ASID_MASK || va >= GRU_VA_LIMIT ||
        s->di_gen > s->inv_gen) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: bad drop-in asid 0x%" PRIx64
                      " va 0x%" PRIx64 " pa 0x%" PRIx64 " attr 0x%" PRIx64
                      " gen %" PRIu64 " (INV_GEN %" PRIu64 ")\n", s->di_asid,
                      va, pa, attr, s->di_gen, s->inv_gen);
        s->di_result = GRU_DI_BAD;
        gru_count(s, GRU_REG_STAT_DROPINS_BAD, 1);
        what = "bad";
    } else if (!s->no_gen_check &&
               gru_dropin_stale(s, s->di_asid, va, va + mask + 1, s->di_gen)) {
        s->di_result = GRU_DI_STALE;
        gru_count(s, GRU_REG_STAT_DROPINS_STALE, 1);
        what = "stale";
    } else {
        gru_tlb_insert(s, s->di_asid, va, pa, attr);
        s->di_result = GRU_DI_INSTALLED;
        gru_count(s, GRU_REG_STAT_DROPINS, 1);
        what = "installed";
    }
    trace_gru_dropin(gru_now(), s->di_asid, va, pa, attr, s->di_gen, what);
}

static void gru_age_entry(GruState *s, GruTlbEntry *e, void *opaque)
{
    bool clear = *(uint64_t *)opaque == GRU_AGE_CLEAR;

    if (e->accessed) {
        s->age_result = 1;
    }
    if (clear) {
        e->accessed = false;
    }
}

static void gru_age(GruState *s, uint64_t cmd)
{
    uint16_t asid = s->age_asid & GRU_CTX_ASID_MASK;

    if (cmd != GRU_AGE_TEST && cmd != GRU_AGE_CLEAR) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: unknown AGE_CMD %" PRIu64 "\n",
                      cmd);
        return;
    }
    s->age_result = 0;
    gru_tlb_for_range(s, asid, s->age_start, s->age_end, gru_age_entry, &cmd);
    trace_gru_age(gru_now(), cmd, asid, s->age_start, s->age_end,
                  s->age_result);
}

static void gru_probe(GruState *s, uint64_t cmd)
{
    GruTlbEntry *e;

    if (cmd != 1) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: unknown PROBE_CMD %" PRIu64 "\n",
                      cmd);
        return;
    }
    e = gru_tlb_find(s, s->probe_asid & GRU_CTX_ASID_MASK, s->probe_va);
    if (e) {
        s->probe_result = GRU_PROBE_HIT |
                          ((uint64_t)e->attr << GRU_PROBE_ATTR_SHIFT) |
                          (e->accessed ? GRU_PROBE_ACCESSED : 0);
        s->probe_pa = e->pa + (s->probe_va - e->va);
    } else {
        s->probe_result = 0;
        s->probe_pa = 0;
    }
}

/* ------------------------------------------------------------ BAR0 */

static uint64_t gru_ctx_reg_read(GruState *s, GruCtx *c, hwaddr off)
{
    switch (off) {
    case GRU_CTX_ASID:
        return c->asid_reg;
    case GRU_CTX_VECTOR:
        return c->vector;
    case GRU_CTX_FAULT_VA:
        return c->fault_va;
    case GRU_CTX_FAULT_INFO:
        return c->fault_info;
    case GRU_CTX_FAULT_TIME:
        return c->fault_time;
    case GRU_CTX_STATUS:
        return c->status;
    case GRU_CTX_ERROR:
        return c->error;
    case GRU_CTX_RESULT:
        return c->result;
    case GRU_CTX_EXC_VA:
        return c->exc_va;
    case GRU_CTX_EXC_INFO:
        return c->exc_info;
    case GRU_CTX_PROGRESS:
        return c->progress;
    case GRU_CTX_SERVICE_NS:
        return c->service_ns;
    default:
        return 0;
    }
}

static uint64_t gru_reg_read(GruState *s, hwaddr addr)
{
    if (addr >= GRU_REG_CTX_BASE &&
        addr < GRU_REG_CTX(s->nr_ctx)) {
        return gru_ctx_reg_read(s, &s->ctx[(addr - GRU_REG_CTX_BASE) /
                                           GRU_REG_CTX_STRIDE],
                                (addr - GRU_REG_CTX_BASE) % GRU_REG_CTX_STRIDE);
    }
    if (addr >= GRU_REG_STAT_HITS && addr < GRU_REG_STAT_END) {
        return s->stats[GRU_STAT(addr)];
    }
    if (addr >= GRU_REG_CPUVEC(0) &&
        addr < GRU_REG_CPUVEC(GRU_CPUVEC_ENTRIES)) {
        return s->cpuvec[(addr - GRU_REG_CPUVEC(0)) / 8];
    }

    switch (addr) {
    case GRU_REG_ID:
        return GRU_MAGIC;
    case GRU_REG_VERSION:
        return GRU_VERSION;
    case GRU_REG_CAPS:
        return (uint64_t)s->nr_ctx | ((uint64_t)s->tlb_ways << 8) |
               ((uint64_t)s->tlb_sets << 16) | ((uint64_t)s->nr_vectors << 32);
    case GRU_REG_CTRL:
        return s->ctrl;
    case GRU_REG_FAULT_PENDING:
        return s->fault_pending;
    case GRU_REG_IRQ_CAUSE:
        return s->irq_cause;
    case GRU_REG_DONE_PENDING:
        return s->done_pending;
    case GRU_REG_CLOCK:
        return gru_now();
    case GRU_REG_INV_ASID:
        return s->inv_asid;
    case GRU_REG_INV_START:
        return s->inv_start;
    case GRU_REG_INV_END:
        return s->inv_end;
    case GRU_REG_INV_STATUS:
        return 0;   /* invalidations complete inside the CMD write */
    case GRU_REG_INV_GEN:
        return s->inv_gen;
    case GRU_REG_DI_ASID:
        return s->di_asid;
    case GRU_REG_DI_VA:
        return s->di_va;
    case GRU_REG_DI_PA:
        return s->di_pa;
    case GRU_REG_DI_ATTR:
        return s->di_attr;
    case GRU_REG_DI_GEN:
        return s->di_gen;
    case GRU_REG_DI_RESULT:
        return s->di_result;
    case GRU_REG_AGE_ASID:
        return s->age_asid;
    case GRU_REG_AGE_START:
        return s->age_start;
    case GRU_REG_AGE_END:
        return s->age_end;
    case GRU_REG_AGE_RESULT:
        return s->age_result;
    case GRU_REG_PROBE_ASID:
        return s->probe_asid;
    case GRU_REG_PROBE_VA:
        return s->probe_va;
    case GRU_REG_PROBE_RESULT:
        return s->probe_result;
    case GRU_REG_PROBE_PA:
        return s->probe_pa;
    default:
        return 0;
    }
}

static void gru_ctx_status_write(GruState *s, GruCtx *c, uint64_t val)
{
    if (val > GRU_ST_CALLOS) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: ctx %d: STATUS %" PRIu64
                      " invalid, ignored\n", gru_ctx_index(s, c), val);
        return;
    }
    c->runnable = false;
    c->parked = false;
    if (val == GRU_ST_BUSY || val == GRU_ST_CALLOS) {
        /*
         * Restoring a stolen context: restart the instruction block that
         * the driver put back in the window, from its beginning.
         */
        uint64_t err = c->error, res = c->result;
        uint64_t va = c->exc_va, info = c->exc_info, bad, bad_va;

        gru_latch(c);
        c->error = err;
        c->result = res;
        c->exc_va = va;
        c->exc_info = info;
        bad = gru_check_insn(c, &bad_va);
        if (bad != GRU_ERR_NONE) {
            qemu_log_mask(LOG_GUEST_ERROR, "gru: ctx %d: restored "
                          "instruction 0x%" PRIx64 " refused with error %"
                          PRIu64 "\n", gru_ctx_index(s, c), c->op, bad);
            gru_fail(s, c, bad, bad_va);
            return;
        }
        c->runnable = val == GRU_ST_BUSY;
    }
    c->status = val;
    gru_kick(s);
}

static bool gru_ctx_reg_write(GruState *s, GruCtx *c, hwaddr off,
                              uint64_t val)
{
    switch (off) {
    case GRU_CTX_ASID:
        if (val & ~(GRU_CTX_ASID_MASK | GRU_CTX_ASID_VALID)) {
            return false;
        }
        c->asid_reg = val;
        if (c->parked && (val & GRU_CTX_ASID_VALID) &&
            (val & GRU_CTX_ASID_MASK)) {
            c->parked = false;
            c->runnable = true;
            gru_kick(s);
        }
        return true;
    case GRU_CTX_VECTOR:
        c->vector = val;
        return true;
    case GRU_CTX_CMD:
        gru_ctx_cmd(s, c, val);
        return true;
    case GRU_CTX_STATUS:
        gru_ctx_status_write(s, c, val);
        return true;
    case GRU_CTX_ERROR:
        c->error = val;
        return true;
    case GRU_CTX_RESULT:
        c->result = val;
        return true;
    case GRU_CTX_EXC_VA:
        c->exc_va = val;
        return true;
    case GRU_CTX_EXC_INFO:
        c->exc_info = val;
        return true;
    default:
        return false;
    }
}

static bool gru_reg_write64(GruState *s, hwaddr addr, uint64_t val)
{
    if (addr >= GRU_REG_CTX_BASE && addr < GRU_REG_CTX(s->nr_ctx)) {
        return gru_ctx_reg_write(s, &s->ctx[(addr - GRU_REG_CTX_BASE) /
                                            GRU_REG_CTX_STRIDE],
                                 (addr - GRU_REG_CTX_BASE) %
                                 GRU_REG_CTX_STRIDE, val);
    }
    if (addr >= GRU_REG_CPUVEC(0) &&
        addr < GRU_REG_CPUVEC(GRU_CPUVEC_ENTRIES)) {
        s->cpuvec[(addr - GRU_REG_CPUVEC(0)) / 8] = val;
        return true;
    }

    switch (addr) {
    case GRU_REG_CTRL:
        if (val & ~(uint64_t)GRU_CTRL_ENABLE) {
            return false;
        }
        s->ctrl = val;
        gru_kick(s);
        return true;
    case GRU_REG_IRQ_CAUSE:
        s->irq_cause &= ~val;
        return true;
    case GRU_REG_DONE_PENDING:
        s->done_pending &= ~val;
        return true;
    case GRU_REG_INV_ASID:
        s->inv_asid = val;
        return true;
    case GRU_REG_INV_START:
        s->inv_start = val;
        return true;
    case GRU_REG_INV_END:
        s->inv_end = val;
        return true;
    case GRU_REG_INV_CMD:
        gru_invalidate(s, val);
        return true;
    case GRU_REG_DI_ASID:
        s->di_asid = val;
        return true;
    case GRU_REG_DI_VA:
        s->di_va = val;
        return true;
    case GRU_REG_DI_PA:
        s->di_pa = val;
        return true;
    case GRU_REG_DI_ATTR:
        s->di_attr = val;
        return true;
    case GRU_REG_DI_GEN:
        s->di_gen = val;
        return true;
    case GRU_REG_DI_CMD:
        gru_dropin(s, val);
        return true;
    case GRU_REG_AGE_ASID:
        s->age_asid = val;
        return true;
    case GRU_REG_AGE_START:
        s->age_start = val;
        return true;
    case GRU_REG_AGE_END:
        s->age_end = val;
        return true;
    case GRU_REG_AGE_CMD:
        gru_age(s, val);
        return true;
    case GRU_REG_PROBE_ASID:
        s->probe_asid = val;
        return true;
    case GRU_REG_PROBE_VA:
        s->probe_va = val;
        return true;
    case GRU_REG_PROBE_CMD:
        gru_probe(s, val);
        return true;
    default:
        return false;
    }
}

/* Registers that act on a write rather than store it. */
static bool gru_reg_is_cmd(GruState *s, hwaddr addr)
{
    if (addr >= GRU_REG_CTX_BASE && addr < GRU_REG_CTX(s->nr_ctx)) {
        addr = (addr - GRU_REG_CTX_BASE) % GRU_REG_CTX_STRIDE;
        return addr == GRU_CTX_CMD || addr == GRU_CTX_STATUS;
    }
    return addr == GRU_REG_INV_CMD || addr == GRU_REG_DI_CMD ||
           addr == GRU_REG_AGE_CMD || addr == GRU_REG_PROBE_CMD ||
           addr == GRU_REG_CTRL;
}

static bool gru_reg_is_w1c(hwaddr addr)
{
    return addr == GRU_REG_IRQ_CAUSE || addr == GRU_REG_DONE_PENDING;
}

/*
 * Both BARs are banks of 64-bit registers.  A 32-bit access reads either
 * half; a 32-bit write merges into a stored register, clears the matching
 * half of a write-1-to-clear one, and acts (zero-extended) on a command
 * register through its low half only.
 */
typedef uint64_t (*GruRead64)(GruState *s, hwaddr reg);
typedef bool (*GruWrite64)(GruState *s, hwaddr reg, uint64_t val);

static uint64_t gru_read_sized(GruState *s, hwaddr addr, unsigned size,
                               GruRead64 rd)
{
    uint64_t v = rd(s, addr & ~7ULL);

    if (size == 4) {
        v = (uint32_t)(v >> ((addr & 4) * 8));
    }
    return v;
}

static void gru_write_sized(GruState *s, const char *bar, hwaddr addr,
                            uint64_t val, unsigned size, GruRead64 rd,
                            GruWrite64 wr, bool is_cmd, bool is_w1c)
{
    hwaddr reg = addr & ~7ULL;
    bool ok;

    /*
     * A message that this device sends from its engine timer is not
     * caught by the memory core's re-entrancy guard, which only sees
     * MMIO nested in MMIO.  Refuse it, so that no register write runs in
     * the middle of gru_send_irqs().
     */
    if (s->notify_depth) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: %s: write to offset 0x%"
                      HWADDR_PRIx " by this device's own MSI-X message "
                      "ignored\n", bar, addr);
        return;
    }

    if (size == 4) {
        unsigned int shift = (addr & 4) * 8;

        if (is_cmd && shift) {
            ok = false;
        } else if (is_cmd) {
            ok = wr(s, reg, val);
        } else if (is_w1c) {
            ok = wr(s, reg, val << shift);
        } else {
            uint64_t cur = rd(s, reg);

            cur &= ~(0xffffffffULL << shift);
            ok = wr(s, reg, cur | (val << shift));
        }
    } else {
        ok = wr(s, reg, val);
    }
    if (!ok) {
        qemu_log_mask(LOG_GUEST_ERROR, "gru: %s: write of 0x%" PRIx64
                      " (%u bytes) to offset 0x%" HWADDR_PRIx
                      " ignored (read-only, reserved or bad value)\n",
                      bar, val, size, addr);
    }
}

static uint64_t gru_regs_read(void *opaque, hwaddr addr, unsigned size)
{
    GruState *s = opaque;
    uint64_t val;

    gru_catch_up(s);
    val = gru_read_sized(s, addr, size, gru_reg_read);
    gru_send_irqs(s);
    return val;
}

static void gru_regs_write(void *opaque, hwaddr addr, uint64_t val,
                           unsigned size)
{
    GruState *s = opaque;

    gru_write_sized(s, "BAR0", addr, val, size, gru_reg_read, gru_reg_write64,
                    gru_reg_is_cmd(s, addr & ~7ULL),
                    gru_reg_is_w1c(addr & ~7ULL));
    gru_send_irqs(s);
}

static const MemoryRegionOps gru_regs_ops = {
    .read = gru_regs_read,
    .write = gru_regs_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
        .unaligned = false,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
};

/* ----------------------------------------------------------- windows */

static GruCtx *gru_win_ctx(GruState *s, hwaddr addr, hwaddr *off)
{
    unsigned int n = addr / GRU_WINDOW_SIZE;

    *off = addr % GRU_WINDOW_SIZE;
    return n < s->nr_ctx ? &s->ctx[n] : NULL;
}

static uint64_t gru_win_read64(GruState *s, hwaddr addr)
{
    hwaddr off;
    GruCtx *c = gru_win_ctx(s, addr, &off);

    if (!c) {
        return 0;
    }
    if (off < GRU_WIN_DOORBELL) {
        return off / 8 < ARRAY_SIZE(c->win) ? c->win[off / 8] : 0;
    }
    switch (off) {
    case GRU_WIN_STATUS:
        return c->status;
    case GRU_WIN_ERROR:
        return c->error;
    case GRU_WIN_RESULT:
        return c->result;
    case GRU_WIN_EXC_VA:
        return c->exc_va;
    case GRU_WIN_EXC_INFO:
        return c->exc_info;
    case GRU_WIN_PROGRESS:
        return c->progress;
    default:
        return 0;
    }
}

static bool gru_win_write64(GruState *s, hwaddr addr, uint64_t val)
{
    hwaddr off;
    GruCtx *c = gru_win_ctx(s, addr, &off);

    if (!c) {
        return false;
    }
    if (off / 8 < ARRAY_SIZE(c->win)) {
        c->win[off / 8] = val;
        return true;
    }
    if (off == GRU_WIN_DOORBELL) {
        gru_doorbell(s, c, val);
        return true;
    }
    return false;
}

static uint64_t gru_win_read(void *opaque, hwaddr addr, unsigned size)
{
    GruState *s = opaque;
    uint64_t val;

    gru_catch_up(s);
    val = gru_read_sized(s, addr, size, gru_win_read64);
    gru_send_irqs(s);
    return val;
}

static void gru_win_write(void *opaque, hwaddr addr, uint64_t val,
                          unsigned size)
{
    GruState *s = opaque;

    gru_write_sized(s, "window", addr, val, size, gru_win_read64,
                    gru_win_write64,
                    (addr & (GRU_WINDOW_SIZE - 8)) == GRU_WIN_DOORBELL, false);
    gru_send_irqs(s);
}

static const MemoryRegionOps gru_win_ops = {
    .read = gru_win_read,
    .write = gru_win_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
        .unaligned = false,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
};

/* --------------------------------------------------------- lifecycle */

static void gru_reset(DeviceState *dev)
{
    GruState *s = GRU_TLB(dev);
    unsigned int i;

    timer_del(&s->engine);
    s->msi_pending = 0;
    for (i = 0; i < s->nr_ctx; i++) {
        memset(&s->ctx[i], 0, sizeof(s->ctx[i]));
        s->ctx[i].vector = GRU_VEC_FAULT0;
    }
    memset(s->tlb, 0, sizeof(*s->tlb) * s->tlb_sets * s->tlb_ways);
    memset(s->victim, 0, s->tlb_sets);
    memset(s->inv_ring, 0, sizeof(s->inv_ring));
    memset(s->stats, 0, sizeof(s->stats));
    s->tlb_walked = 0;
    for (i = 0; i < GRU_CPUVEC_ENTRIES; i++) {
        s->cpuvec[i] = GRU_VEC_FAULT0;
    }
    s->rr = 0;
    s->ctrl = GRU_CTRL_ENABLE;
    s->fault_pending = s->irq_cause = s->done_pending = 0;
    s->inv_asid = s->inv_start = s->inv_end = s->inv_gen = 0;
    s->di_asid = s->di_va = s->di_pa = s->di_attr = s->di_gen = 0;
    s->di_result = 0;
    s->age_asid = s->age_start = s->age_end = s->age_result = 0;
    s->probe_asid = s->probe_va = s->probe_result = s->probe_pa = 0;
}

static void gru_realize(PCIDevice *pdev, Error **errp)
{
    GruState *s = GRU_TLB(pdev);
    uint64_t win_bar;
    unsigned int i;

    if (s->nr_ctx < 1 || s->nr_ctx > GRU_MAX_CONTEXTS) {
        error_setg(errp, "gru-tlb: contexts=%u must be in 1..%u",
                   s->nr_ctx, GRU_MAX_CONTEXTS);
        return;
    }
    if (!is_power_of_2(s->tlb_sets) || s->tlb_sets > 0x8000) {
        error_setg(errp, "gru-tlb: tlb-sets=%u must be a power of two, "
                   "1..32768", s->tlb_sets);
        return;
    }
    if (s->tlb_ways < 1 || s->tlb_ways > 16) {
        error_setg(errp, "gru-tlb: tlb-ways=%u must be in 1..16",
                   s->tlb_ways);
        return;
    }
    if (s->nr_vectors < 2 || s->nr_vectors > GRU_MAX_VECTORS) {
        error_setg(errp, "gru-tlb: vectors=%u must be in 2..%u",
                   s->nr_vectors, GRU_MAX_VECTORS);
        return;
    }
    if (s->insn_latency_ns > NANOSECONDS_PER_SECOND) {
        error_setg(errp, "gru-tlb: insn-latency-ns=%" PRIu64
                   " must be at most 1000000000", s->insn_latency_ns);
        return;
    }

    if (msix_init_exclusive_bar(pdev, s->nr_vectors, GRU_BAR_MSIX, errp)) {
        return;
    }
    for (i = 0; i < s->nr_vectors; i++) {
        msix_vector_use(pdev, i);
    }

    s->ctx = g_new0(GruCtx, s->nr_ctx);
    s->tlb = g_new0(GruTlbEntry, s->tlb_sets * s->tlb_ways);
    s->victim = g_new0(uint8_t, s->tlb_sets);
    timer_init_ns(&s->engine, QEMU_CLOCK_VIRTUAL, gru_engine_tick, s);

    memory_region_init_io(&s->regs, OBJECT(s), &gru_regs_ops, s,
                          "gru-regs", GRU_BAR0_SIZE);
    pci_register_bar(pdev, GRU_BAR_REGS, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->regs);
    win_bar = pow2ceil((uint64_t)s->nr_ctx * GRU_WINDOW_SIZE);
    memory_region_init_io(&s->windows, OBJECT(s), &gru_win_ops, s,
                          "gru-windows", win_bar);
    pci_register_bar(pdev, GRU_BAR_WINDOWS, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->windows);

    gru_reset(DEVICE(s));
}

/*
 * Exit can run from inside msix_notify() (a message aimed at the Slot
 * Control of the port above us), with a register access or the engine
 * tick still on the stack.  So it only stops the device; the memory that
 * those frames may still read goes at finalize.
 */
static void gru_exit(PCIDevice *pdev)
{
    GruState *s = GRU_TLB(pdev);

    timer_del(&s->engine);
    s->msi_pending = 0;
    msix_unuse_all_vectors(pdev);
    msix_uninit_exclusive_bar(pdev);
}

static void gru_instance_finalize(Object *obj)
{
    GruState *s = GRU_TLB(obj);

    g_free(s->ctx);
    g_free(s->tlb);
    g_free(s->victim);
}

static void gru_instance_init(Object *obj)
{
    GruState *s = GRU_TLB(obj);
    unsigned int i;

    for (i = 0; i < GRU_NR_STATS; i++) {
        object_property_add_uint64_ptr(obj, gru_stat_names[i], &s->stats[i],
                                       OBJ_PROP_FLAG_READ);
    }
    object_property_add_uint64_ptr(obj, "inv-gen", &s->inv_gen,
                                   OBJ_PROP_FLAG_READ);
    /* Test only: shows that a short range does not walk the whole TLB. */
    object_property_add_uint64_ptr(obj, "x-tlb-walked", &s->tlb_walked,
                                   OBJ_PROP_FLAG_READ);
}

static const VMStateDescription gru_vmstate = {
    .name = "gru-tlb",
    /* The TLB and the engine state are not worth migrating. */
    .unmigratable = 1,
};

static Property gru_properties[] = {
    DEFINE_PROP_UINT32("contexts", GruState, nr_ctx, 16),
    DEFINE_PROP_UINT32("tlb-sets", GruState, tlb_sets, 64),
    DEFINE_PROP_UINT32("tlb-ways", GruState, tlb_ways, 4),
    DEFINE_PROP_UINT32("vectors", GruState, nr_vectors, 9),
    DEFINE_PROP_UINT64("insn-latency-ns", GruState, insn_latency_ns, 100),
    DEFINE_PROP_UINT32("x-fadd-interference", GruState, fadd_interference, 0),
    DEFINE_PROP_END_OF_LIST(),
};

/*
 * x-no-gen-check turns off the stale drop-in check for the race detector's
 * mutation run.  Unlike the static properties it may be changed while the
 * device runs (qom-set), so that one boot can test the driver's protocol
 * with and without the device's own check.
 */
static bool gru_get_no_gen_check(Object *obj, Error **errp)
{
    return GRU_TLB(obj)->no_gen_check;
}

static void gru_set_no_gen_check(Object *obj, bool value, Error **errp)
{
    GRU_TLB(obj)->no_gen_check = value;
}

static void gru_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = gru_realize;
    k->exit = gru_exit;
    k->vendor_id = GRU_PCI_VENDOR_ID;
    k->device_id = GRU_PCI_DEVICE_ID;
    k->revision = GRU_PCI_REVISION;
    k->class_id = PCI_CLASS_SYSTEM_OTHER;
    dc->desc = "GRU-style external TLB";
    dc->reset = gru_reset;
    dc->vmsd = &gru_vmstate;
    device_class_set_props(dc, gru_properties);
    object_class_property_add_bool(klass, "x-no-gen-check",
                                   gru_get_no_gen_check,
                                   gru_set_no_gen_check);
    object_class_property_set_description(klass, "x-no-gen-check",
        "test only: accept drop-ins older than an invalidation");
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo gru_info = {
    .name = TYPE_GRU_TLB,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(GruState),
    .instance_init = gru_instance_init,
    .instance_finalize = gru_instance_finalize,
    .class_init = gru_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void gru_register_types(void)
{
    type_register_static(&gru_info);
}

type_init(gru_register_types)
