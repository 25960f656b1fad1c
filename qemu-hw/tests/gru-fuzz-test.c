/*
 * Seeded random qtest fuzzer for the gru-tlb device.
 *
 * The test plays a hostile guest: bursts of random register, window,
 * MSI-X and PCI config accesses, drop-ins, doorbells, fault answers,
 * machine resets and clock steps.  Between bursts it puts PCI back in
 * order and checks what a correct device keeps true whatever the guest
 * did: constant registers, counters that only grow, reserved space that
 * reads 0, reset values after a reset, and guest RAM that no writable
 * translation points to left untouched.  QEMU dying, a sanitizer report
 * (which makes a sanitizer build exit), or a broken invariant fails it.
 *
 * GRU_FUZZ_SEED    first seed (default: from the clock); always printed
 * GRU_FUZZ_SEEDS   number of seeds, seed, seed + 1, ... (default 8)
 * GRU_FUZZ_OPS     operations per seed (default 50000)
 * GRU_FUZZ_VERBOSE 1: print every operation
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/host-utils.h"
#include "libqtest.h"
#include "libqos/libqos-pc.h"
#include "libqos/pci.h"
#include "qapi/qmp/qdict.h"
#include "hw/pci/pci_regs.h"
#include "hw/misc/gru_regs.h"
#include "standard-headers/misc/gru.h"

#define PAGE            4096ULL
#define MIB             (1ULL << 20)
#define GIB             (1ULL << 30)
#define NR_RW           16          /* pages any translation may write */
#define NR_RO           4           /* pages only read-only entries map */
#define NR_VPAGES       48          /* 4 KiB VA pages the fuzzer maps */
#define VA4K            0x10000000ULL
#define VA2M            0x40000000ULL
#define VA1G            0x80000000ULL
#define VA_TOP          (GRU_VA_LIMIT - 2 * MIB)
#define NR_ASIDS        4
#define MSI_DATA(v)     (0x4000u + (v))
#define RING            64          /* operations shown when a run fails */
#define DEFAULT_OPS     50000
#define DEFAULT_SEEDS   8

/* The PCI window the fuzzer moves its BARs in: 1 MiB per BAR. */
#define POOL_BAR0       0
#define POOL_BAR2       1
#define POOL_BAR4       2
#define POOL_SIZE       (3 * MIB)

typedef struct FuzzOp {
    uint64_t n;             /* operation number, or ~0 for bookkeeping */
    const char *what;
    uint64_t addr;
    uint64_t val;
    unsigned int size;
} FuzzOp;

typedef struct Fuzz {
    uint32_t seed;
    GRand *r;
    QOSState *qs;
    QTestState *qts;
    QPCIDevice *dev;
    /* geometry */
    unsigned int nr_ctx, sets, ways, vectors;
    uint64_t bar2_size, bar4_size;
    uint8_t msix_cap;
    uint32_t msix_table_off, msix_pba_off;
    /* where the BARs are now */
    uint64_t pool;
    uint64_t bar[3];        /* BAR0, BAR2, BAR4 */
    /* guest RAM */
    uint64_t msi;           /* where well-aimed MSI-X messages land */
    uint64_t big;           /* 2 MiB, 2 MiB aligned: any entry may write */
    uint64_t rw;            /* NR_RW pages: any entry may write */
    uint64_t ro;            /* NR_RO pages: only read-only entries */
    uint64_t canary[4];     /* pages no translation ever points to */
    uint8_t ro_data[NR_RO * PAGE];
    uint8_t rom[PAGE];      /* the top page of the BIOS ROM */
    /* what the checks compare with */
    uint64_t stats[(GRU_REG_STAT_END - GRU_REG_STAT_HITS) / 8];
    uint64_t inv_gen;
    /* counts; seq also counts the fuzzer's own bookkeeping accesses */
    bool quiet;
    uint64_t seq, ops, bursts, resets, doorbells, faults_served, checks;
    uint64_t done, failed;  /* instructions, summed over resets */
    FuzzOp ring[RING];
    bool verbose;
} Fuzz;

static Fuzz *cur;

/* ------------------------------------------------------- bookkeeping */

static void note(Fuzz *f, const char *what, uint64_t addr, uint64_t val,
                 unsigned int size)
{
    FuzzOp *o = &f->ring[f->seq++ % RING];

    o->n = f->quiet ? ~0ULL : f->ops++;
    o->what = what;
    o->addr = addr;
    o->val = val;
    o->size = size;
    if (f->verbose) {
        fprintf(stderr, "gru-fuzz: %" PRId64 " %s 0x%" PRIx64 " 0x%" PRIx64
                " /%u\n", (int64_t)o->n, what, addr, val, size);
    }
}

/* On a failed assertion or a dead QEMU: how to get back here. */
static void dump_ring(void *opaque)
{
    Fuzz *f = cur;
    uint64_t i, first;

    if (!f) {
        return;
    }
    fprintf(stderr, "gru-fuzz: FAILED with seed %u after %" PRIu64
            " operations; rerun with GRU_FUZZ_SEED=%u GRU_FUZZ_SEEDS=1 "
            "GRU_FUZZ_OPS=%" PRIu64 " (GRU_FUZZ_VERBOSE=1 lists them)\n",
            f->seed, f->ops, f->seed, f->ops);
    fprintf(stderr, "gru-fuzz: the last accesses (-1: the fuzzer's own "
            "set-up and checks):\n");
    first = f->seq > RING ? f->seq - RING : 0;
    for (i = first; i < f->seq; i++) {
        FuzzOp *o = &f->ring[i % RING];

        fprintf(stderr, "gru-fuzz:   %" PRId64 " %s 0x%" PRIx64 " 0x%"
                PRIx64 " /%u\n", (int64_t)o->n, o->what, o->addr, o->val,
                o->size);
    }
    cur = NULL;
}

static uint64_t rnd(Fuzz *f, uint64_t n)
{
    return n <= 1 ? 0 :
           n <= G_MAXINT32 ? (uint64_t)g_rand_int_range(f->r, 0, n) :
           ((((uint64_t)g_rand_int(f->r) << 32) | g_rand_int(f->r)) % n);
}

static uint64_t rnd64(Fuzz *f)
{
    return ((uint64_t)g_rand_int(f->r) << 32) | g_rand_int(f->r);
}

static bool chance(Fuzz *f, unsigned int percent)
{
    return rnd(f, 100) < percent;
}

#define PICK(f, arr)    ((arr)[rnd(f, ARRAY_SIZE(arr))])

/* ------------------------------------------------------------- access */

static uint64_t mmio_read(Fuzz *f, const char *what, uint64_t addr,
                          unsigned int size)
{
    uint64_t v;

    switch (size) {
    case 1:
        v = qtest_readb(f->qts, addr);
        break;
    case 2:
        v = qtest_readw(f->qts, addr);
        break;
    case 4:
        v = qtest_readl(f->qts, addr);
        break;
    default:
        v = qtest_readq(f->qts, addr);
        break;
    }
    note(f, what, addr, v, size);
    return v;
}

static void mmio_write(Fuzz *f, const char *what, uint64_t addr, uint64_t val,
                       unsigned int size)
{
    note(f, what, addr, val, size);
    switch (size) {
    case 1:
        qtest_writeb(f->qts, addr, val);
        break;
    case 2:
        qtest_writew(f->qts, addr, val);
        break;
    case 4:
        qtest_writel(f->qts, addr, val);
        break;
    default:
        qtest_writeq(f->qts, addr, val);
        break;
    }
}

/* Checked accesses: these must work, so they go through known state. */
static uint64_t rd(Fuzz *f, uint64_t off)
{
    return qtest_readq(f->qts, f->bar[0] + off);
}

static void wr(Fuzz *f, uint64_t off, uint64_t val)
{
    mmio_write(f, "bar0", f->bar[0] + off, val, 8);
}

static uint64_t win_rd(Fuzz *f, unsigned int n, uint64_t off)
{
    return qtest_readq(f->qts, f->bar[1] + n * GRU_WINDOW_SIZE + off);
}

static void cfg_write(Fuzz *f, const char *what, uint8_t off, uint32_t val,
                      unsigned int size)
{
    note(f, what, off, val, size);
    if (size == 1) {
        qpci_config_writeb(f->dev, off, val);
    } else if (size == 2) {
        qpci_config_writew(f->dev, off, val);
    } else {
        qpci_config_writel(f->dev, off, val);
    }
}

static const uint8_t bar_reg[3] = {
    PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_2, PCI_BASE_ADDRESS_4,
};

static uint64_t bar_size(Fuzz *f, int i)
{
    return i == 0 ? GRU_BAR0_SIZE : i == 1 ? f->bar2_size : f->bar4_size;
}

/* Put BAR i at slot s of its pool area. */
static void place_bar(Fuzz *f, int i, unsigned int slot)
{
    f->bar[i] = f->pool + i * MIB + slot * bar_size(f, i);
    cfg_write(f, "cfg-bar", bar_reg[i], f->bar[i], 4);
}

static void msix_aim(Fuzz *f, unsigned int v, uint64_t addr, uint32_t data,
                     bool masked)
{
    uint64_t e = f->bar[2] + f->msix_table_off + v * PCI_MSIX_ENTRY_SIZE;

    mmio_write(f, "msix-addr-lo", e + PCI_MSIX_ENTRY_LOWER_ADDR,
               (uint32_t)addr, 4);
    mmio_write(f, "msix-addr-hi", e + PCI_MSIX_ENTRY_UPPER_ADDR,
               addr >> 32, 4);
    mmio_write(f, "msix-data", e + PCI_MSIX_ENTRY_DATA, data, 4);
    mmio_write(f, "msix-ctrl", e + PCI_MSIX_ENTRY_VECTOR_CTRL,
               masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0, 4);
}

/*
 * Back to the configuration the checks rely on: BARs where the fuzzer
 * thinks they are, memory decode and bus mastering on, MSI-X enabled and
 * every vector aimed at the landing area.
 */
static void pci_restore(Fuzz *f)
{
    bool quiet = f->quiet;
    unsigned int v;
    int i;

    f->quiet = true;
    cfg_write(f, "cfg-cmd", PCI_COMMAND, 0, 2);
    for (i = 0; i < 3; i++) {
        cfg_write(f, "cfg-bar", bar_reg[i], f->bar[i], 4);
    }
    cfg_write(f, "cfg-cmd", PCI_COMMAND,
              PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    cfg_write(f, "cfg-msix", f->msix_cap + PCI_MSIX_FLAGS,
              PCI_MSIX_FLAGS_ENABLE, 2);
    for (v = 0; v < f->vectors; v++) {
        msix_aim(f, v, f->msi + 4 * v, MSI_DATA(v), false);
    }
    f->quiet = quiet;
}

/* ------------------------------------------------------------- setup */

static void fill_pattern(uint8_t *buf, size_t len, uint32_t salt)
{
    size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t)((i * 131 + salt * 29 + (i >> 12)) ^ 0xa5);
    }
}

static void canary_fill(Fuzz *f)
{
    g_autofree uint8_t *buf = g_malloc(PAGE);
    unsigned int i;

    for (i = 0; i < ARRAY_SIZE(f->canary); i++) {
        fill_pattern(buf, PAGE, i + 1);
        qtest_memwrite(f->qts, f->canary[i], buf, PAGE);
    }
    qtest_memwrite(f->qts, f->ro, f->ro_data, sizeof(f->ro_data));
}

static void fuzz_start(Fuzz *f)
{
    static const unsigned int ctxs[] = { 1, 2, 3, 4, 5, 8, 16, 64 };
    static const unsigned int sets[] = { 1, 2, 4, 64, 1024 };
    static const unsigned int ways[] = { 1, 2, 4, 16 };
    static const unsigned int vecs[] = { 2, 3, 9, 32 };
    static const unsigned int lat[] = { 0, 1, 7, 100, 1000 };
    unsigned int latency = PICK(f, lat), fadd = chance(f, 20) ? rnd(f, 40) : 0;
    uint64_t region;
    uint32_t table, pba;

    f->nr_ctx = PICK(f, ctxs);
    f->sets = PICK(f, sets);
    f->ways = PICK(f, ways);
    f->vectors = PICK(f, vecs);
    fprintf(stderr, "gru-fuzz: seed %u: contexts=%u tlb-sets=%u tlb-ways=%u "
            "vectors=%u insn-latency-ns=%u x-fadd-interference=%u\n",
            f->seed, f->nr_ctx, f->sets, f->ways, f->vectors, latency, fadd);
    f->qs = qtest_pc_boot("-M q35 -m 256M -device gru-tlb,id=gru0,addr=04.0,"
                          "contexts=%u,tlb-sets=%u,tlb-ways=%u,vectors=%u,"
                          "insn-latency-ns=%u,x-fadd-interference=%u",
                          f->nr_ctx, f->sets, f->ways, f->vectors, latency,
                          fadd);
    f->qts = f->qs->qts;
    f->dev = qpci_device_find(f->qs->pcibus, QPCI_DEVFN(4, 0));
    g_assert(f->dev);

    f->bar2_size = pow2ceil((uint64_t)f->nr_ctx * GRU_WINDOW_SIZE);
    f->msix_cap = qpci_find_capability(f->dev, PCI_CAP_ID_MSIX, 0);
    g_assert(f->msix_cap);
    table = qpci_config_readl(f->dev, f->msix_cap + PCI_MSIX_TABLE);
    pba = qpci_config_readl(f->dev, f->msix_cap + PCI_MSIX_PBA);
    g_assert_cmpuint(table & PCI_MSIX_FLAGS_BIRMASK, ==, GRU_BAR_MSIX);
    f->msix_table_off = table & ~PCI_MSIX_FLAGS_BIRMASK;
    f->msix_pba_off = pba & ~PCI_MSIX_FLAGS_BIRMASK;
    f->bar4_size = 4096;
    while (f->bar4_size < f->msix_pba_off + 8) {
        f->bar4_size *= 2;
    }

    /* A PCI window of our own, so that BARs can move without libqos. */
    f->pool = QEMU_ALIGN_UP(f->qs->pcibus->mmio_alloc_ptr, MIB);
    f->qs->pcibus->mmio_alloc_ptr = f->pool + POOL_SIZE;
    g_assert_cmpuint(f->qs->pcibus->mmio_alloc_ptr, <=,
                     f->qs->pcibus->mmio_limit);
    f->bar[0] = f->pool + POOL_BAR0 * MIB;
    f->bar[1] = f->pool + POOL_BAR2 * MIB;
    f->bar[2] = f->pool + POOL_BAR4 * MIB;

    /*
     * Guest RAM: a canary page, the 2 MiB page, a canary, the RW pages, a
     * canary, the read-only pages, a canary.
     */
    f->msi = guest_alloc(&f->qs->alloc, 4 * GRU_MAX_VECTORS);
    region = guest_alloc(&f->qs->alloc, 8 * MIB);
    f->big = QEMU_ALIGN_UP(region + PAGE, 2 * MIB);
    f->canary[0] = f->big - PAGE;
    f->canary[1] = f->big + 2 * MIB;
    f->rw = f->canary[1] + PAGE;
    f->canary[2] = f->rw + NR_RW * PAGE;
    f->ro = f->canary[2] + PAGE;
    f->canary[3] = f->ro + NR_RO * PAGE;
    g_assert_cmpuint(f->canary[3] + PAGE, <=, region + 8 * MIB);
    fill_pattern(f->ro_data, sizeof(f->ro_data), f->seed);
    canary_fill(f);
    qtest_memread(f->qts, 0xfffff000, f->rom, PAGE);

    pci_restore(f);
}

/* ------------------------------------------------------------ values */

/* A guest physical address for a 4 KiB entry: ours, or not RAM at all. */
static uint64_t pick_pa4k(Fuzz *f, bool *writable)
{
    uint64_t bad[] = {
        0xfed00000, f->bar[0], f->bar[1], f->bar[2], 0xd0000000,
        0x10000000, 0xfffff000, 0xc0000, 1ULL << 40, GRU_VA_LIMIT - PAGE,
        ~0ULL & ~(PAGE - 1), 0xfee00000 - PAGE,
    };

    *writable = true;
    switch (rnd(f, 8)) {
    case 0:
    case 1:
    case 2:
        return f->rw + rnd(f, NR_RW) * PAGE;
    case 3:
        return f->big + rnd(f, 512) * PAGE;
    case 4:
    case 5:
        *writable = false;
        return f->ro + rnd(f, NR_RO) * PAGE;
    default:
        return PICK(f, bad);
    }
}

static uint64_t pick_va(Fuzz *f)
{
    uint64_t va;

    switch (rnd(f, 12)) {
    case 0:
        va = VA2M + rnd(f, 4 * MIB);
        break;
    case 1:
        va = VA1G + rnd(f, 2 * GIB);
        break;
    case 2:
        va = GRU_VA_LIMIT - rnd(f, 3 * PAGE);
        break;
    case 3:
        va = VA_TOP + rnd(f, 2 * MIB);
        break;
    case 4:
        va = chance(f, 50) ? rnd64(f) : ~0ULL - rnd(f, 2 * PAGE);
        break;
    default:
        va = VA4K + rnd(f, NR_VPAGES * PAGE);
        break;
    }
    if (chance(f, 80)) {
        va &= ~7ULL;
    }
    return va;
}

static uint64_t pick_len(Fuzz *f)
{
    static const uint64_t lens[] = {
        0, 1, 7, 8, 9, 4095, 4096, 4097, 8192, 3 * PAGE + 5,
        GRU_INSN_MAX_LEN, GRU_INSN_MAX_LEN + 1, GRU_INSN_MAX_LEN - 1,
        ~0ULL, 1ULL << 63, GRU_VA_LIMIT,
    };

    return chance(f, 60) ? rnd(f, 3 * PAGE) : PICK(f, lens);
}

static uint64_t pick_val(Fuzz *f)
{
    static const uint64_t vals[] = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0x100, 0xffff, 0x10000,
        0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ULL,
        GRU_CTX_ASID_VALID | 1, GRU_CTX_ASID_VALID | 0xffff,
        GRU_VA_LIMIT - 1, GRU_VA_LIMIT, GRU_VA_LIMIT - 8,
        0x7fffffffffffffffULL, 0x8000000000000000ULL, ~0ULL,
    };

    switch (rnd(f, 4)) {
    case 0:
        return rnd64(f);
    case 1:
        return pick_va(f);
    default:
        return PICK(f, vals);
    }
}

static uint16_t pick_asid(Fuzz *f)
{
    return chance(f, 90) ? 1 + rnd(f, NR_ASIDS) : rnd(f, 0x10000);
}

/* ------------------------------------------------------- operations */

static void op_bar0_random(Fuzz *f)
{
    static const unsigned int sizes[] = { 8, 8, 8, 4, 4, 2, 1 };
    static const uint64_t regs[] = {
        GRU_REG_ID, GRU_REG_VERSION, GRU_REG_CAPS, GRU_REG_CTRL,
        GRU_REG_FAULT_PENDING, GRU_REG_IRQ_CAUSE, GRU_REG_DONE_PENDING,
        GRU_REG_CLOCK, GRU_REG_INV_ASID, GRU_REG_INV_START, GRU_REG_INV_END,
        GRU_REG_INV_CMD, GRU_REG_INV_STATUS, GRU_REG_INV_GEN,
        GRU_REG_DI_ASID, GRU_REG_DI_VA, GRU_REG_DI_PA, GRU_REG_DI_ATTR,
        GRU_REG_DI_GEN, GRU_REG_DI_CMD, GRU_REG_DI_RESULT, GRU_REG_AGE_ASID,
        GRU_REG_AGE_START, GRU_REG_AGE_END, GRU_REG_AGE_CMD,
        GRU_REG_AGE_RESULT, GRU_REG_PROBE_ASID, GRU_REG_PROBE_VA,
        GRU_REG_PROBE_CMD, GRU_REG_PROBE_RESULT, GRU_REG_PROBE_PA,
        GRU_REG_CPUVEC(0), GRU_REG_CPUVEC(63), GRU_REG_STAT_HITS,
        GRU_REG_STAT_BYTES, GRU_REG_STAT_END, GRU_REG_CTX_BASE - 8,
    };
    unsigned int size = PICK(f, sizes);
    uint64_t off;

    switch (rnd(f, 4)) {
    case 0:
        off = rnd(f, GRU_BAR0_SIZE);
        break;
    case 1:
        off = GRU_REG_CTX(rnd(f, GRU_MAX_CONTEXTS + 1)) + 8 * rnd(f, 16);
        break;
    default:
        off = PICK(f, regs);
        break;
    }
    if (chance(f, 80)) {
        off &= ~(uint64_t)(size - 1);
    }
    if (chance(f, 10)) {
        off += 4;
    }
    if (chance(f, 50)) {
        mmio_read(f, "bar0-rd", f->bar[0] + off, size);
    } else {
        mmio_write(f, "bar0-wr", f->bar[0] + off, pick_val(f), size);
    }
}

static void op_dropin(Fuzz *f)
{
    uint64_t gen = rd(f, GRU_REG_INV_GEN), va, pa, attr, perm;
    unsigned int size = rnd(f, 10);
    bool writable;

    perm = PICK(f, ((const uint64_t[]){ GRU_ATTR_READ | GRU_ATTR_WRITE,
                                        GRU_ATTR_READ | GRU_ATTR_WRITE,
                                        GRU_ATTR_READ, GRU_ATTR_WRITE, 0 }));
    if (size < 7) {
        va = VA4K + rnd(f, NR_VPAGES) * PAGE;
        if (chance(f, 5)) {
            va = GRU_VA_LIMIT - PAGE * (1 + rnd(f, 2));
        }
        pa = pick_pa4k(f, &writable);
        attr = GRU_ATTR_SIZE_4K;
    } else if (size < 9) {
        va = chance(f, 80) ? VA2M + rnd(f, 2) * 2 * MIB : VA_TOP;
        switch (rnd(f, 3)) {
        case 0:
            pa = f->big;
            writable = true;
            break;
        case 1:
            pa = 0xfe000000;
            writable = true;
            break;
        default:
            pa = 1ULL << 41;
            writable = true;
            break;
        }
        attr = GRU_ATTR_SIZE_2M;
    } else {
        va = VA1G + rnd(f, 2) * GIB;
        pa = PICK(f, ((const uint64_t[]){ 0x40000000, 0xc0000000,
                                          0x7fffc0000000ULL }));
        writable = true;
        attr = GRU_ATTR_SIZE_1G;
    }
    if (!writable) {
        perm &= ~(uint64_t)GRU_ATTR_WRITE;
    }
    attr |= perm;
    /* Malformed ones too; none of them may point anywhere else. */
    if (chance(f, 10)) {
        switch (rnd(f, 6)) {
        case 0:
            va += 8;
            break;
        case 1:
            attr |= 3;
            break;
        case 2:
            attr |= 0x10ULL << rnd(f, 40);
            break;
        case 3:
            va = GRU_VA_LIMIT + rnd(f, 4) * PAGE;
            break;
        case 4:
            gen += 1 + rnd(f, 3);
            break;
        default:
            pa += PAGE / 2;
            break;
        }
    }
    if (chance(f, 15)) {
        gen -= MIN(gen, rnd(f, 70));
    }
    wr(f, GRU_REG_DI_ASID, chance(f, 95) ? pick_asid(f) : pick_val(f));
    wr(f, GRU_REG_DI_VA, va);
    wr(f, GRU_REG_DI_PA, pa);
    wr(f, GRU_REG_DI_ATTR, attr);
    wr(f, GRU_REG_DI_GEN, gen);
    wr(f, GRU_REG_DI_CMD, chance(f, 95) ? GRU_DI_INSERT : pick_val(f));
    mmio_read(f, "di-result", f->bar[0] + GRU_REG_DI_RESULT, 8);
}

static void op_range_cmd(Fuzz *f)
{
    static const uint64_t cmd_base[] = {
        GRU_REG_INV_ASID, GRU_REG_AGE_ASID, GRU_REG_PROBE_ASID,
    };
    unsigned int which = rnd(f, 3);
    uint64_t base = cmd_base[which], start, end;

    start = chance(f, 70) ? pick_va(f) & ~(PAGE - 1) : pick_val(f);
    switch (rnd(f, 5)) {
    case 0:
        end = start;
        break;
    case 1:
        end = start - rnd(f, 2 * PAGE);
        break;
    case 2:
        end = ~0ULL;
        break;
    case 3:
        end = start + rnd(f, 64) * PAGE;
        break;
    default:
        end = start + 1 + rnd(f, 4 * MIB);
        break;
    }
    wr(f, base, chance(f, 90) ? pick_asid(f) : pick_val(f));
    if (which == 2) {
        wr(f, GRU_REG_PROBE_VA, start + rnd(f, PAGE));
        wr(f, GRU_REG_PROBE_CMD, chance(f, 90) ? 1 : pick_val(f));
        mmio_read(f, "probe-result", f->bar[0] + GRU_REG_PROBE_RESULT, 8);
        mmio_read(f, "probe-pa", f->bar[0] + GRU_REG_PROBE_PA, 8);
        return;
    }
    wr(f, base + 8, start);
    wr(f, base + 16, end);
    wr(f, base + 24, chance(f, 90) ? 1 + rnd(f, which ? 2 : 3) : pick_val(f));
    mmio_read(f, "cmd-result", f->bar[0] + base + 32, 8);
}

static unsigned int pick_ctx(Fuzz *f)
{
    /* Mostly real contexts, sometimes the pages past them. */
    if (chance(f, 95) || f->bar2_size / GRU_WINDOW_SIZE == f->nr_ctx) {
        return rnd(f, f->nr_ctx);
    }
    return f->nr_ctx + rnd(f, f->bar2_size / GRU_WINDOW_SIZE - f->nr_ctx);
}

/* A 4 KiB drop-in of page va for asid, to one of the allowed targets. */
static void map_page(Fuzz *f, uint16_t asid, uint64_t va)
{
    bool writable;
    uint64_t pa = pick_pa4k(f, &writable);
    uint64_t attr = GRU_ATTR_READ |
                    (writable && chance(f, 85) ? GRU_ATTR_WRITE : 0);

    wr(f, GRU_REG_DI_ASID, asid);
    wr(f, GRU_REG_DI_VA, va & ~(PAGE - 1));
    wr(f, GRU_REG_DI_PA, pa);
    wr(f, GRU_REG_DI_ATTR, attr);
    wr(f, GRU_REG_DI_GEN, rd(f, GRU_REG_INV_GEN));
    wr(f, GRU_REG_DI_CMD, GRU_DI_INSERT);
}

static void op_issue(Fuzz *f)
{
    unsigned int n = pick_ctx(f);
    uint64_t w = f->bar[1] + n * GRU_WINDOW_SIZE, op;
    unsigned int opc = chance(f, 90) ? rnd(f, GRU_OPC_MAX + 1) : rnd(f, 256);
    unsigned int flags = chance(f, 85) ? rnd(f, 4) : rnd(f, 256);
    uint64_t addr = pick_va(f), src = pick_va(f), len = pick_len(f);
    bool good = chance(f, 60);

    if (good) {
        /*
         * Mostly well-formed: a loaded context, mapped pages, a short
         * length, so that instructions get as far as DMA and completion.
         */
        uint16_t asid = 1 + rnd(f, NR_ASIDS);

        opc = rnd(f, GRU_OPC_MAX + 1);
        flags = rnd(f, 4);
        src = VA4K + rnd(f, NR_VPAGES / 2) * PAGE + rnd(f, PAGE);
        addr = VA4K + (NR_VPAGES / 2 + rnd(f, NR_VPAGES / 2)) * PAGE +
               rnd(f, PAGE);
        if (opc != GRU_OPC_BCOPY && opc != GRU_OPC_BSET) {
            addr &= ~7ULL;
        }
        len = rnd(f, 2 * PAGE);
        if (chance(f, 50)) {
            /* A driver reusing the context ends what it still holds. */
            mmio_write(f, "ctx-cmd", f->bar[0] + GRU_REG_CTX(n) + GRU_CTX_CMD,
                       GRU_CMD(chance(f, 50) ? GRU_CMD_RESET : GRU_CMD_ABORT,
                               0), 8);
        }
        if (chance(f, 70)) {
            mmio_write(f, "ctx-asid", f->bar[0] + GRU_REG_CTX(n) +
                       GRU_CTX_ASID, GRU_CTX_ASID_VALID | asid, 8);
        }
        if (chance(f, 70)) {
            map_page(f, asid, addr);
            map_page(f, asid, addr + len);
            if (opc == GRU_OPC_BCOPY) {
                map_page(f, asid, src);
                map_page(f, asid, src + len);
            }
        }
    }
    op = GRU_OP_ENCODE(opc, flags, rnd(f, 256));
    if (!good && chance(f, 3)) {
        op |= 1ULL << (24 + rnd(f, 40));
    }
    mmio_write(f, "win-op", w + GRU_WIN_OP, op, 8);
    mmio_write(f, "win-addr", w + GRU_WIN_ADDR, addr, 8);
    mmio_write(f, "win-src", w + GRU_WIN_SRC, src, 8);
    mmio_write(f, "win-len", w + GRU_WIN_LEN, len, 8);
    mmio_write(f, "win-op0", w + GRU_WIN_OPERAND0, pick_val(f), 8);
    mmio_write(f, "win-op1", w + GRU_WIN_OPERAND1, pick_val(f), 8);
    if (chance(f, 90)) {
        f->doorbells++;
        mmio_write(f, "doorbell", w + GRU_WIN_DOORBELL,
                   chance(f, 90) ? GRU_DB_START : pick_val(f),
                   chance(f, 90) ? 8 : 4);
    }
}

static void op_window_random(Fuzz *f)
{
    static const unsigned int sizes[] = { 8, 8, 4, 4, 2, 1 };
    unsigned int size = PICK(f, sizes);
    uint64_t off = chance(f, 80) ? 8 * rnd(f, 16) : rnd(f, GRU_WINDOW_SIZE);
    uint64_t a = f->bar[1] + pick_ctx(f) * GRU_WINDOW_SIZE + off;

    if (chance(f, 85)) {
        a &= ~(uint64_t)(size - 1);
    }
    if (chance(f, 60)) {
        mmio_read(f, "win-rd", a, size);
    } else {
        mmio_write(f, "win-wr", a, pick_val(f), size);
    }
}

static void op_ctx_reg(Fuzz *f)
{
    static const uint64_t regs[] = {
        GRU_CTX_ASID, GRU_CTX_ASID, GRU_CTX_VECTOR, GRU_CTX_CMD,
        GRU_CTX_STATUS, GRU_CTX_STATUS, GRU_CTX_ERROR, GRU_CTX_RESULT,
        GRU_CTX_EXC_VA, GRU_CTX_EXC_INFO, GRU_CTX_PROGRESS,
        GRU_CTX_SERVICE_NS, 0x68, 0x78,
    };
    unsigned int n = chance(f, 95) ? rnd(f, f->nr_ctx) :
                     rnd(f, GRU_MAX_CONTEXTS + 1);
    uint64_t reg = PICK(f, regs), val;

    switch (reg) {
    case GRU_CTX_ASID:
        val = chance(f, 80) ? GRU_CTX_ASID_VALID | pick_asid(f) :
              chance(f, 50) ? pick_asid(f) : pick_val(f);
        break;
    case GRU_CTX_STATUS:
        val = chance(f, 90) ? rnd(f, 6) : pick_val(f);
        break;
    case GRU_CTX_CMD:
        val = chance(f, 90) ? GRU_CMD(rnd(f, 8), rnd(f, 20)) : pick_val(f);
        break;
    case GRU_CTX_VECTOR:
        val = chance(f, 90) ? rnd(f, f->vectors + 2) : pick_val(f);
        break;
    default:
        val = pick_val(f);
        break;
    }
    mmio_write(f, "ctx-wr", f->bar[0] + GRU_REG_CTX(n) + reg, val,
               chance(f, 85) ? 8 : 4);
}

/* Answer a latched fault the way a driver (good or bad) might. */
static void op_serve_fault(Fuzz *f)
{
    uint64_t pending = mmio_read(f, "fault-pending",
                                 f->bar[0] + GRU_REG_FAULT_PENDING, 8);
    uint64_t va, info, pa, attr;
    unsigned int n;
    bool writable;

    if (!pending) {
        return;
    }
    /* Any of them, not only the lowest: drivers serve in any order. */
    n = rnd(f, 64);
    while (!(pending & (1ULL << n))) {
        n = (n + 1) % 64;
    }
    va = mmio_read(f, "fault-va", f->bar[0] + GRU_REG_CTX(n) +
                   GRU_CTX_FAULT_VA, 8);
    info = mmio_read(f, "fault-info", f->bar[0] + GRU_REG_CTX(n) +
                     GRU_CTX_FAULT_INFO, 8);
    f->faults_served++;
    if (va >= VA4K && va < VA4K + NR_VPAGES * PAGE && chance(f, 80)) {
        pa = pick_pa4k(f, &writable);
        attr = GRU_ATTR_READ | (writable ? GRU_ATTR_WRITE : 0);
        if ((info & GRU_FAULT_WRITE) && !writable && chance(f, 70)) {
            /* Leave it to the answer below rather than loop on it. */
            attr = GRU_ATTR_READ;
        }
        wr(f, GRU_REG_DI_ASID, mmio_read(f, "ctx-asid", f->bar[0] +
                                         GRU_REG_CTX(n) + GRU_CTX_ASID, 8) &
                               GRU_CTX_ASID_MASK);
        wr(f, GRU_REG_DI_VA, va & ~(PAGE - 1));
        wr(f, GRU_REG_DI_PA, pa);
        wr(f, GRU_REG_DI_ATTR, attr);
        wr(f, GRU_REG_DI_GEN, rd(f, GRU_REG_INV_GEN));
        wr(f, GRU_REG_DI_CMD, GRU_DI_INSERT);
    }
    switch (rnd(f, 10)) {
    case 0:
        wr(f, GRU_REG_CTX(n) + GRU_CTX_CMD,
           GRU_CMD(GRU_CMD_FAIL, rnd(f, 20)));
        break;
    case 1:
        wr(f, GRU_REG_CTX(n) + GRU_CTX_CMD,
           GRU_CMD(GRU_CMD_CALLOS, rnd(f, 256)));
        break;
    case 2:
        wr(f, GRU_REG_CTX(n) + GRU_CTX_CMD, GRU_CMD(GRU_CMD_ABORT, 0));
        break;
    case 3:
        wr(f, GRU_REG_CTX(n) + GRU_CTX_CMD, GRU_CMD(GRU_CMD_ACK, 0));
        break;
    case 4:
        wr(f, GRU_REG_CTX(n) + GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESET, 0));
        break;
    default:
        wr(f, GRU_REG_CTX(n) + GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESUME, 0));
        break;
    }
}

static void op_clock(Fuzz *f)
{
    static const int64_t big[] = { 1, 1000, 100000, 1000000, 50000000 };
    int64_t ns = chance(f, 90) ? 1 + rnd(f, 3000) : PICK(f, big);

    note(f, "clock-step", 0, ns, 0);
    qtest_clock_step(f->qts, ns);
}

static void op_msix(Fuzz *f)
{
    unsigned int v = rnd(f, f->vectors + (chance(f, 90) ? 0 : 4));
    uint64_t target;
    uint32_t data;

    switch (rnd(f, 8)) {
    case 0:
        target = f->bar[0] + 8 * rnd(f, GRU_BAR0_SIZE / 8);
        break;
    case 1:
        target = f->bar[1] + rnd(f, f->nr_ctx) * GRU_WINDOW_SIZE +
                 (chance(f, 50) ? GRU_WIN_DOORBELL : 8 * rnd(f, 16));
        break;
    case 2:
        target = f->bar[2] + 4 * rnd(f, f->bar4_size / 4);
        break;
    case 3:
        target = PICK(f, ((const uint64_t[]){ 0xd0000000, 0, 1ULL << 40,
                                              ~0ULL & ~3ULL }));
        break;
    default:
        target = f->msi + 4 * rnd(f, GRU_MAX_VECTORS);
        break;
    }
    switch (rnd(f, 6)) {
    case 0:
        cfg_write(f, "cfg-msix", f->msix_cap + PCI_MSIX_FLAGS,
                  PICK(f, ((const uint32_t[]){ 0, PCI_MSIX_FLAGS_ENABLE,
                           PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL,
                           PCI_MSIX_FLAGS_MASKALL, 0xffff })), 2);
        break;
    case 1:
        /* The PBA is read-only; writing it must change nothing. */
        mmio_write(f, "msix-pba", f->bar[2] + f->msix_pba_off,
                   rnd64(f), chance(f, 50) ? 4 : 8);
        break;
    case 2:
        mmio_write(f, "msix-ctrl", f->bar[2] + f->msix_table_off +
                   v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL,
                   rnd(f, 2), 4);
        break;
    default:
        if (target >= f->bar[2] && target < f->bar[2] + f->bar4_size) {
            /*
             * The message rewrites an MSI-X entry: what it writes may
             * become an address, so it must be one the checks allow.
             */
            data = PICK(f, ((const uint32_t[]){ 0, 0xd0000000,
                                                f->msi + 4 * v }));
        } else {
            data = chance(f, 50) ? MSI_DATA(v) : g_rand_int(f->r);
        }
        msix_aim(f, v, target, data, chance(f, 20));
        break;
    }
}

static void op_config(Fuzz *f)
{
    static const uint16_t cmds[] = {
        0, PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER,
        PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
        PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE,
        0xffff,
    };
    int i = rnd(f, 3);

    switch (rnd(f, 4)) {
    case 0:
    case 1:
        cfg_write(f, "cfg-cmd", PCI_COMMAND, PICK(f, cmds), 2);
        break;
    case 2:
        /* Move a BAR inside its own MiB, so BARs never overlap. */
        place_bar(f, i, rnd(f, MIB / bar_size(f, i)));
        break;
    default:
        /* A sizing probe, then back: the BAR is gone meanwhile. */
        cfg_write(f, "cfg-bar", bar_reg[i], 0xffffffff, 4);
        qpci_config_readl(f->dev, bar_reg[i]);
        if (chance(f, 70)) {
            cfg_write(f, "cfg-bar", bar_reg[i], f->bar[i], 4);
        }
        break;
    }
}

static void op_qom(Fuzz *f)
{
    QDict *r;
    bool on = chance(f, 50);

    note(f, "qom-set x-no-gen-check", 0, on, 0);
    r = qtest_qmp(f->qts, "{'execute': 'qom-set', 'arguments': "
                  "{'path': '/machine/peripheral/gru0', "
                  "'property': 'x-no-gen-check', 'value': %i}}", on);
    g_assert(qdict_haskey(r, "return"));
    qobject_unref(r);
}

/* ------------------------------------------------------------ checks */

static void check_ram(Fuzz *f)
{
    g_autofree uint8_t *buf = g_malloc(NR_RO * PAGE);
    g_autofree uint8_t *want = g_malloc(PAGE);
    unsigned int i;

    for (i = 0; i < ARRAY_SIZE(f->canary); i++) {
        fill_pattern(want, PAGE, i + 1);
        qtest_memread(f->qts, f->canary[i], buf, PAGE);
        if (memcmp(buf, want, PAGE)) {
            fprintf(stderr, "gru-fuzz: canary page %u at 0x%" PRIx64
                    " was written by DMA\n", i, f->canary[i]);
            g_assert_not_reached();
        }
    }
    qtest_memread(f->qts, f->ro, buf, NR_RO * PAGE);
    if (memcmp(buf, f->ro_data, NR_RO * PAGE)) {
        fprintf(stderr, "gru-fuzz: a page mapped only read-only was "
                "written\n");
        g_assert_not_reached();
    }
    qtest_memread(f->qts, 0xfffff000, buf, PAGE);
    g_assert(!memcmp(buf, f->rom, PAGE));
}

static void read_stats(Fuzz *f, uint64_t *s)
{
    unsigned int i;

    for (i = 0; i < ARRAY_SIZE(f->stats); i++) {
        s[i] = rd(f, GRU_REG_STAT_HITS + 8 * i);
    }
}

#define ST(s, reg)      ((s)[((reg) - GRU_REG_STAT_HITS) / 8])

static void check_device(Fuzz *f, bool after_reset)
{
    uint64_t caps = rd(f, GRU_REG_CAPS), ctx_mask, s[ARRAY_SIZE(f->stats)];
    uint64_t gen, v;
    unsigned int n, i, pages = f->bar2_size / GRU_WINDOW_SIZE;

    f->checks++;
    g_assert_cmphex(rd(f, GRU_REG_ID), ==, GRU_MAGIC);
    g_assert_cmphex(rd(f, GRU_REG_VERSION), ==, GRU_VERSION);
    g_assert_cmpuint(GRU_CAPS_CONTEXTS(caps), ==, f->nr_ctx);
    g_assert_cmpuint(GRU_CAPS_WAYS(caps), ==, f->ways);
    g_assert_cmpuint(GRU_CAPS_SETS(caps), ==, f->sets);
    g_assert_cmpuint(GRU_CAPS_VECTORS(caps), ==, f->vectors);
    g_assert_cmpuint(rd(f, GRU_REG_INV_STATUS), ==, 0);
    g_assert_cmphex(rd(f, GRU_REG_CTRL) & ~(uint64_t)GRU_CTRL_ENABLE, ==, 0);
    ctx_mask = f->nr_ctx == 64 ? ~0ULL : (1ULL << f->nr_ctx) - 1;
    g_assert_cmphex(rd(f, GRU_REG_FAULT_PENDING) & ~ctx_mask, ==, 0);
    g_assert_cmphex(rd(f, GRU_REG_DONE_PENDING) & ~ctx_mask, ==, 0);
    g_assert_cmphex(rd(f, GRU_REG_IRQ_CAUSE) &
                    ~(uint64_t)(GRU_CAUSE_DONE | GRU_CAUSE_ERROR), ==, 0);
    /* Write-only and reserved registers read 0. */
    g_assert_cmphex(rd(f, GRU_REG_INV_CMD), ==, 0);
    g_assert_cmphex(rd(f, GRU_REG_DI_CMD), ==, 0);
    g_assert_cmphex(rd(f, GRU_REG_AGE_CMD), ==, 0);
    g_assert_cmphex(rd(f, GRU_REG_PROBE_CMD), ==, 0);
    g_assert_cmphex(rd(f, 0x40), ==, 0);
    g_assert_cmphex(rd(f, 0x138), ==, 0);
    g_assert_cmphex(rd(f, GRU_REG_STAT_END), ==, 0);
    g_assert_cmphex(rd(f, GRU_BAR0_SIZE - 8), ==, 0);
    g_assert_cmpuint(rd(f, GRU_REG_DI_RESULT), <=, GRU_DI_BAD);

    read_stats(f, s);
    gen = rd(f, GRU_REG_INV_GEN);
    g_assert_cmpuint(ST(s, GRU_REG_STAT_FAULTS), ==,
                     ST(s, GRU_REG_STAT_MISSES));
    g_assert_cmpuint(gen, ==, ST(s, GRU_REG_STAT_INV_RANGE) +
                     ST(s, GRU_REG_STAT_INV_ASID) +
                     ST(s, GRU_REG_STAT_INV_ALL));
    g_assert_cmpuint(ST(s, GRU_REG_STAT_MISS_SERVICED), <=,
                     ST(s, GRU_REG_STAT_FAULTS));
    if (!after_reset) {
        for (i = 0; i < ARRAY_SIZE(s); i++) {
            if (GRU_REG_STAT_HITS + 8 * i != GRU_REG_STAT_MISS_NS_LAST) {
                g_assert_cmpuint(s[i], >=, f->stats[i]);
            }
        }
        g_assert_cmpuint(gen, >=, f->inv_gen);
    }
    memcpy(f->stats, s, sizeof(s));
    f->inv_gen = gen;

    for (n = 0; n < f->nr_ctx; n++) {
        uint64_t st = win_rd(f, n, GRU_WIN_STATUS);

        g_assert_cmpuint(st, <=, GRU_ST_CALLOS);
        g_assert_cmpuint(rd(f, GRU_REG_CTX(n) + GRU_CTX_STATUS), ==, st);
        g_assert_cmphex(rd(f, GRU_REG_CTX(n) + GRU_CTX_ASID) &
                        ~(GRU_CTX_ASID_MASK | GRU_CTX_ASID_VALID), ==, 0);
        g_assert_cmphex(rd(f, GRU_REG_CTX(n) + GRU_CTX_FAULT_INFO) &
                        ~(GRU_FAULT_VALID | GRU_FAULT_WRITE | GRU_FAULT_SRC),
                        ==, 0);
        g_assert_cmphex(rd(f, GRU_REG_CTX(n) + GRU_CTX_CMD), ==, 0);
        g_assert_cmphex(rd(f, GRU_REG_CTX(n) + 0x78), ==, 0);
        g_assert_cmphex(win_rd(f, n, GRU_WIN_DOORBELL), ==, 0);
        g_assert_cmphex(win_rd(f, n, 0x30), ==, 0);
        g_assert_cmphex(win_rd(f, n, GRU_WINDOW_SIZE - 8), ==, 0);
        /* One chunk at a time, and never past 64 MiB. */
        g_assert_cmpuint(win_rd(f, n, GRU_WIN_PROGRESS), <=,
                         GRU_INSN_MAX_LEN);
        if (after_reset) {
            g_assert_cmpuint(st, ==, GRU_ST_IDLE);
            g_assert_cmphex(rd(f, GRU_REG_CTX(n) + GRU_CTX_ASID), ==, 0);
            g_assert_cmpuint(rd(f, GRU_REG_CTX(n) + GRU_CTX_VECTOR), ==,
                             GRU_VEC_FAULT0);
            g_assert_cmphex(rd(f, GRU_REG_CTX(n) + GRU_CTX_FAULT_INFO),
                            ==, 0);
            for (i = 0; i < GRU_WIN_DOORBELL; i += 8) {
                g_assert_cmphex(win_rd(f, n, i), ==, 0);
            }
        }
    }
    /* Contexts past the last one do not exist. */
    for (n = f->nr_ctx; n < GRU_MAX_CONTEXTS; n += 7) {
        g_assert_cmphex(rd(f, GRU_REG_CTX(n) + GRU_CTX_STATUS), ==, 0);
        g_assert_cmphex(rd(f, GRU_REG_CTX(n) + GRU_CTX_ASID), ==, 0);
    }
    for (n = f->nr_ctx; n < pages; n++) {
        g_assert_cmphex(win_rd(f, n, GRU_WIN_STATUS), ==, 0);
        g_assert_cmphex(win_rd(f, n, GRU_WIN_OP), ==, 0);
    }

    if (after_reset) {
        for (i = 0; i < ARRAY_SIZE(s); i++) {
            g_assert_cmpuint(s[i], ==, 0);
        }
        g_assert_cmpuint(gen, ==, 0);
        g_assert_cmphex(rd(f, GRU_REG_CTRL), ==, GRU_CTRL_ENABLE);
        g_assert_cmphex(rd(f, GRU_REG_FAULT_PENDING), ==, 0);
        g_assert_cmphex(rd(f, GRU_REG_DONE_PENDING), ==, 0);
        g_assert_cmphex(rd(f, GRU_REG_IRQ_CAUSE), ==, 0);
        for (v = GRU_REG_INV_ASID; v < GRU_REG_CPUVEC(0); v += 8) {
            g_assert_cmphex(rd(f, v), ==, 0);
        }
        for (i = 0; i < GRU_CPUVEC_ENTRIES; i += 9) {
            g_assert_cmpuint(rd(f, GRU_REG_CPUVEC(i)), ==, GRU_VEC_FAULT0);
        }
    }
    check_ram(f);
}

/*
 * Reset the machine, usually with instructions in flight, and check that
 * nothing of them is left: reset values, and no engine running later.
 */
static void op_reset(Fuzz *f)
{
    /* Counted for the summary: decode must be on to read them. */
    pci_restore(f);
    f->done += rd(f, GRU_REG_STAT_INSN_DONE);
    f->failed += rd(f, GRU_REG_STAT_INSN_ERROR);
    note(f, "system_reset", 0, 0, 0);
    f->resets++;
    qtest_qmp_assert_success(f->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(f->qts, "RESET");
    pci_restore(f);
    check_device(f, true);
    f->quiet = true;
    note(f, "clock-step", 0, 10000000, 0);
    qtest_clock_step(f->qts, 10000000);
    f->quiet = false;
    g_assert_cmpuint(rd(f, GRU_REG_STAT_INSN_DONE) +
                     rd(f, GRU_REG_STAT_INSN_ERROR) +
                     rd(f, GRU_REG_STAT_MISSES) + rd(f, GRU_REG_STAT_BYTES),
                     ==, 0);
}

static void dropin_now(Fuzz *f, uint64_t va, uint64_t pa, uint64_t attr)
{
    wr(f, GRU_REG_DI_ASID, 1);
    wr(f, GRU_REG_DI_VA, va);
    wr(f, GRU_REG_DI_PA, pa);
    wr(f, GRU_REG_DI_ATTR, attr);
    wr(f, GRU_REG_DI_GEN, rd(f, GRU_REG_INV_GEN));
    wr(f, GRU_REG_DI_CMD, GRU_DI_INSERT);
    g_assert_cmpuint(rd(f, GRU_REG_DI_RESULT), ==, GRU_DI_INSTALLED);
}

/* Run an instruction on context 0 and serve its faults as a driver does. */
static uint64_t run_served(Fuzz *f, uint64_t op, uint64_t addr, uint64_t len,
                           uint64_t operand)
{
    uint64_t va;
    unsigned int i;

    mmio_write(f, "win-op", f->bar[1] + GRU_WIN_OP, op, 8);
    mmio_write(f, "win-addr", f->bar[1] + GRU_WIN_ADDR, addr, 8);
    mmio_write(f, "win-len", f->bar[1] + GRU_WIN_LEN, len, 8);
    mmio_write(f, "win-op0", f->bar[1] + GRU_WIN_OPERAND0, operand, 8);
    mmio_write(f, "doorbell", f->bar[1] + GRU_WIN_DOORBELL, GRU_DB_START, 8);
    for (i = 0; i < 100 && win_rd(f, 0, GRU_WIN_STATUS) == GRU_ST_BUSY; i++) {
        qtest_clock_step(f->qts, 1000000);
        if (!rd(f, GRU_REG_FAULT_PENDING)) {
            continue;
        }
        g_assert_cmphex(rd(f, GRU_REG_FAULT_PENDING), ==, 1);
        va = rd(f, GRU_REG_CTX(0) + GRU_CTX_FAULT_VA);
        if (va >= VA2M && va < VA2M + 2 * MIB) {
            dropin_now(f, VA2M, f->big, GRU_ATTR_SIZE_2M | GRU_ATTR_READ);
        } else {
            g_assert_cmphex(va, >=, VA4K);
            g_assert_cmphex(va, <, VA4K + NR_RW * PAGE);
            va &= ~(PAGE - 1);
            dropin_now(f, va, f->rw + va - VA4K,
                       GRU_ATTR_READ | GRU_ATTR_WRITE);
        }
        wr(f, GRU_REG_CTX(0) + GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESUME, 0));
    }
    return win_rd(f, 0, GRU_WIN_STATUS);
}

/*
 * After everything: the device still does its job, for a driver that
 * serves its faults.  One translation per step, because with one TLB way
 * a BCOPY whose two pages share a set can never have both at once.
 */
static void check_works(Fuzz *f)
{
    g_autofree uint8_t *buf = g_malloc(2 * PAGE);
    g_autofree uint8_t *want = g_malloc(2 * PAGE);

    op_reset(f);
    f->quiet = true;
    qtest_writeq(f->qts, f->big + 0x1238, 0x0123456789abcdefULL);
    wr(f, GRU_REG_CTX(0) + GRU_CTX_ASID, GRU_CTX_ASID_VALID | 1);
    g_assert_cmpuint(run_served(f, GRU_OP_ENCODE(GRU_OPC_BSET, 0, 0),
                                VA4K + 8, 2 * PAGE - 16, 0x5a), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(run_served(f, GRU_OP_ENCODE(GRU_OPC_STORE, 0, 0),
                                VA4K, 0, 0x1122334455667788ULL), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(run_served(f, GRU_OP_ENCODE(GRU_OPC_LOAD, 0, 0),
                                VA2M + 0x1238, 0, 0), ==, GRU_ST_DONE);
    g_assert_cmphex(win_rd(f, 0, GRU_WIN_RESULT), ==, 0x0123456789abcdefULL);
    memset(want, 0x5a, 2 * PAGE);
    stq_le_p(want, 0x1122334455667788ULL);
    qtest_memread(f->qts, f->rw, buf, 2 * PAGE - 8);
    g_assert(!memcmp(buf, want, 2 * PAGE - 8));
    check_ram(f);
    f->quiet = false;
}

/* ------------------------------------------------------------- driver */

static void op_any(Fuzz *f)
{
    unsigned int w = rnd(f, 1000);

    if (w < 150) {
        op_bar0_random(f);
    } else if (w < 260) {
        op_dropin(f);
    } else if (w < 320) {
        op_range_cmd(f);
    } else if (w < 470) {
        op_issue(f);
    } else if (w < 540) {
        op_window_random(f);
    } else if (w < 640) {
        op_ctx_reg(f);
    } else if (w < 740) {
        op_serve_fault(f);
    } else if (w < 900) {
        op_clock(f);
    } else if (w < 940) {
        op_msix(f);
    } else if (w < 960) {
        op_config(f);
    } else if (w < 980) {
        /* Engine off and on again. */
        wr(f, GRU_REG_CTRL, chance(f, 90) ? chance(f, 70) : pick_val(f));
    } else if (w < 998) {
        mmio_write(f, "cpuvec", f->bar[0] + GRU_REG_CPUVEC(rnd(f, 64)),
                   chance(f, 90) ? rnd(f, f->vectors + 2) : pick_val(f),
                   8);
    } else if (w < 999) {
        op_qom(f);
    } else {
        op_reset(f);
    }
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = g_getenv(name);
    char *end;
    uint64_t v;

    if (!s || !*s) {
        return def;
    }
    errno = 0;
    v = g_ascii_strtoull(s, &end, 0);
    if (errno || *end) {
        fprintf(stderr, "gru-fuzz: %s=%s is not a number\n", name, s);
        exit(1);
    }
    return v;
}

static void fuzz_one(uint32_t seed, uint64_t nops, Fuzz *total)
{
    Fuzz *f = g_new0(Fuzz, 1);
    uint64_t burst_end = 0;

    f->seed = seed;
    f->r = g_rand_new_with_seed(seed);
    f->verbose = env_u64("GRU_FUZZ_VERBOSE", 0);
    cur = f;
    fuzz_start(f);
    check_device(f, true);

    while (f->ops < nops) {
        if (f->ops >= burst_end) {
            if (f->bursts++) {
                pci_restore(f);
                check_device(f, false);
            }
            burst_end = f->ops + 50 + rnd(f, 450);
        }
        op_any(f);
    }
    pci_restore(f);
    check_device(f, false);
    check_works(f);

    fprintf(stderr, "gru-fuzz: seed %u: %" PRIu64 " operations, %" PRIu64
            " bursts, %" PRIu64 " doorbells, %" PRIu64 " faults served, %"
            PRIu64 " resets, %" PRIu64 " checks; instructions done %" PRIu64
            ", error %" PRIu64 "\n", seed, f->ops, f->bursts, f->doorbells,
            f->faults_served, f->resets, f->checks, f->done, f->failed);
    total->ops += f->ops;
    total->resets += f->resets;
    total->checks += f->checks;
    cur = NULL;
    g_rand_free(f->r);
    g_free(f->dev);
    qtest_shutdown(f->qs);
    g_free(f);
}

static void test_fuzz(void)
{
    uint32_t seed = env_u64("GRU_FUZZ_SEED", (uint32_t)g_get_real_time());
    uint64_t seeds = env_u64("GRU_FUZZ_SEEDS", DEFAULT_SEEDS);
    uint64_t nops = env_u64("GRU_FUZZ_OPS", DEFAULT_OPS), i;
    Fuzz total = { 0 };

    fprintf(stderr, "gru-fuzz: GRU_FUZZ_SEED=%u GRU_FUZZ_SEEDS=%" PRIu64
            " GRU_FUZZ_OPS=%" PRIu64 "\n", seed, seeds, nops);
    g_assert_cmpuint(seeds, >, 0);
    for (i = 0; i < seeds; i++) {
        fuzz_one(seed + i, nops, &total);
    }
    fprintf(stderr, "gru-fuzz: total: %" PRIu64 " operations over %" PRIu64
            " seeds from %u, %" PRIu64 " resets, %" PRIu64 " checks\n",
            total.ops, seeds, seed, total.resets, total.checks);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_abrt_handler(dump_ring, NULL);
    qtest_add_func("/gru/fuzz", test_fuzz);
    return g_test_run();
}
