/*
 * qtests for the gru-tlb device: the test plays the driver through libqos
 * PCI, with guest RAM as the data and MSI-X messages written into RAM so
 * that every interrupt can be observed.  The engine runs on the virtual
 * clock, which only clock_step() advances, so every timing is exact.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "libqos/libqos-pc.h"
#include "libqos/pci.h"
#include "qapi/qmp/qdict.h"
#include "hw/pci/pci_regs.h"
#include "hw/misc/gru_regs.h"
#include "standard-headers/misc/gru.h"

#define GRU_SLOT        4
#define MSI_DATA(v)     (0x4000u + (v))
#define TICK            1000000     /* ns: plenty for any test instruction */
#define PAGE            4096ULL
#define RW              (GRU_ATTR_READ | GRU_ATTR_WRITE)
#define VA0             0x10000000ULL
#define RP_SLOT         5
#define ECAM_BASE       0xb0000000ULL   /* q35's default MMCONFIG base */
#define ECAM(devfn, off) (ECAM_BASE + ((uint64_t)(devfn) << 12) + (off))
#define MCH_PCIEXBAR    0x60
#define MCH_PAM1        0x91            /* low nibble: 0xc0000-0xc3fff */
#define PAM_RE          1               /* reads from RAM, writes dropped */
#define PAM_RW          3

typedef struct Gru {
    QOSState *qs;
    QTestState *qts;
    QPCIDevice *dev;
    QPCIBar bar0;
    QPCIBar win;
    uint64_t msi;           /* guest RAM the MSI-X messages land in */
    unsigned int vectors;
    int devfn;              /* bus << 8 | devfn, as libqos' pc config takes */
} Gru;

/* ---------------------------------------------------------- plumbing */

static void gru_setup_pci(Gru *g)
{
    unsigned int v;

    g->dev = qpci_device_find(g->qs->pcibus, g->devfn);
    g_assert(g->dev);
    qpci_device_enable(g->dev);
    g->bar0 = qpci_iomap(g->dev, GRU_BAR_REGS, NULL);
    g->win = qpci_iomap(g->dev, GRU_BAR_WINDOWS, NULL);
    qpci_msix_enable(g->dev);
    g->vectors = qpci_msix_table_size(g->dev);
    for (v = 0; v < g->vectors; v++) {
        uint64_t e = g->dev->msix_table_off + v * PCI_MSIX_ENTRY_SIZE;

        qpci_io_writel(g->dev, g->dev->msix_table_bar,
                       e + PCI_MSIX_ENTRY_LOWER_ADDR, g->msi + 4 * v);
        qpci_io_writel(g->dev, g->dev->msix_table_bar,
                       e + PCI_MSIX_ENTRY_UPPER_ADDR, 0);
        qpci_io_writel(g->dev, g->dev->msix_table_bar,
                       e + PCI_MSIX_ENTRY_DATA, MSI_DATA(v));
        qpci_io_writel(g->dev, g->dev->msix_table_bar,
                       e + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    }
}

static Gru *gru_start(const char *props)
{
    Gru *g = g_new0(Gru, 1);

    g->qs = qtest_pc_boot("-M q35 -m 256M "
                          "-device gru-tlb,id=gru0,addr=%02x.0%s%s",
                          GRU_SLOT, *props ? "," : "", props);
    g->qts = g->qs->qts;
    g->devfn = QPCI_DEVFN(GRU_SLOT, 0);
    g->msi = guest_alloc(&g->qs->alloc, 4 * GRU_MAX_VECTORS);
    qtest_memset(g->qts, g->msi, 0, 4 * GRU_MAX_VECTORS);
    gru_setup_pci(g);
    return g;
}

static void gru_stop(Gru *g)
{
    g_free(g->dev);
    qtest_shutdown(g->qs);
    g_free(g);
}

static uint64_t rd(Gru *g, uint64_t off)
{
    return qpci_io_readq(g->dev, g->bar0, off);
}

static void wr(Gru *g, uint64_t off, uint64_t val)
{
    qpci_io_writeq(g->dev, g->bar0, off, val);
}

static uint64_t crd(Gru *g, int n, uint64_t off)
{
    return rd(g, GRU_REG_CTX(n) + off);
}

static void cwr(Gru *g, int n, uint64_t off, uint64_t val)
{
    wr(g, GRU_REG_CTX(n) + off, val);
}

static uint64_t wrd(Gru *g, int n, uint64_t off)
{
    return qpci_io_readq(g->dev, g->win, n * GRU_WINDOW_SIZE + off);
}

static void wwr(Gru *g, int n, uint64_t off, uint64_t val)
{
    qpci_io_writeq(g->dev, g->win, n * GRU_WINDOW_SIZE + off, val);
}

static uint64_t qom_u64(Gru *g, const char *prop)
{
    QDict *r = qtest_qmp(g->qts, "{'execute': 'qom-get', 'arguments': "
                         "{'path': '/machine/peripheral/gru0', "
                         "'property': %s}}", prop);
    uint64_t v;

    g_assert(qdict_haskey(r, "return"));
    v = qdict_get_int(r, "return");
    qobject_unref(r);
    return v;
}

static void qom_set_bool(Gru *g, const char *prop, bool value)
{
    QDict *r = qtest_qmp(g->qts, "{'execute': 'qom-set', 'arguments': "
                         "{'path': '/machine/peripheral/gru0', "
                         "'property': %s, 'value': %i}}", prop, value);

    g_assert(qdict_haskey(r, "return"));
    qobject_unref(r);
}

static void load_ctx(Gru *g, int n, uint16_t asid)
{
    cwr(g, n, GRU_CTX_ASID, asid | GRU_CTX_ASID_VALID);
}

static uint64_t dropin_gen(Gru *g, uint64_t asid, uint64_t va, uint64_t pa,
                           uint64_t attr, uint64_t gen)
{
    wr(g, GRU_REG_DI_ASID, asid);
    wr(g, GRU_REG_DI_VA, va);
    wr(g, GRU_REG_DI_PA, pa);
    wr(g, GRU_REG_DI_ATTR, attr);
    wr(g, GRU_REG_DI_GEN, gen);
    wr(g, GRU_REG_DI_CMD, GRU_DI_INSERT);
    return rd(g, GRU_REG_DI_RESULT);
}

/* Drop in with the current generation, as a driver with no race does. */
static void dropin(Gru *g, uint16_t asid, uint64_t va, uint64_t pa,
                   uint64_t attr)
{
    g_assert_cmpuint(dropin_gen(g, asid, va, pa, attr,
                                rd(g, GRU_REG_INV_GEN)), ==, GRU_DI_INSTALLED);
}

/* Map [va, va + len) page by page onto the physically contiguous pa. */
static void map_range(Gru *g, uint16_t asid, uint64_t va, uint64_t pa,
                      uint64_t len, uint64_t attr)
{
    uint64_t off;

    for (off = 0; off < len; off += PAGE) {
        dropin(g, asid, va + off, pa + off, attr);
    }
}

static void issue(Gru *g, int n, uint64_t op, uint64_t addr, uint64_t src,
                  uint64_t len, uint64_t o0, uint64_t o1)
{
    wwr(g, n, GRU_WIN_OP, op);
    wwr(g, n, GRU_WIN_ADDR, addr);
    wwr(g, n, GRU_WIN_SRC, src);
    wwr(g, n, GRU_WIN_LEN, len);
    wwr(g, n, GRU_WIN_OPERAND0, o0);
    wwr(g, n, GRU_WIN_OPERAND1, o1);
    wwr(g, n, GRU_WIN_DOORBELL, GRU_DB_START);
}

static void step(Gru *g)
{
    qtest_clock_step(g->qts, TICK);
}

/* Issue, run the engine, and return the final status. */
static uint64_t run(Gru *g, int n, uint64_t op, uint64_t addr, uint64_t src,
                    uint64_t len, uint64_t o0, uint64_t o1)
{
    issue(g, n, op, addr, src, len, o0, o1);
    step(g);
    return wrd(g, n, GRU_WIN_STATUS);
}

static uint32_t msi_read(Gru *g, unsigned int v)
{
    return qtest_readl(g->qts, g->msi + 4 * v);
}

static void msi_clear(Gru *g)
{
    qtest_memset(g->qts, g->msi, 0, 4 * GRU_MAX_VECTORS);
}

static uint64_t probe(Gru *g, uint16_t asid, uint64_t va, uint64_t *pa)
{
    wr(g, GRU_REG_PROBE_ASID, asid);
    wr(g, GRU_REG_PROBE_VA, va);
    wr(g, GRU_REG_PROBE_CMD, 1);
    if (pa) {
        *pa = rd(g, GRU_REG_PROBE_PA);
    }
    return rd(g, GRU_REG_PROBE_RESULT);
}

static void invalidate(Gru *g, uint64_t kind, uint16_t asid, uint64_t start,
                       uint64_t end)
{
    wr(g, GRU_REG_INV_ASID, asid);
    wr(g, GRU_REG_INV_START, start);
    wr(g, GRU_REG_INV_END, end);
    wr(g, GRU_REG_INV_CMD, kind);
    g_assert_cmpuint(rd(g, GRU_REG_INV_STATUS), ==, 0);
}

static uint64_t alloc_buf(Gru *g, size_t len)
{
    uint64_t pa = guest_alloc(&g->qs->alloc, len + PAGE);

    return QEMU_ALIGN_UP(pa, PAGE);
}

#define OP(opc, flags, hint)    GRU_OP_ENCODE(opc, flags, hint)

/* ------------------------------------------------------------- tests */

static void test_reset_values(void)
{
    Gru *g = gru_start("contexts=8,tlb-sets=32,tlb-ways=2,vectors=5");
    uint64_t caps = rd(g, GRU_REG_CAPS), off;
    int n;

    g_assert_cmphex(qpci_config_readw(g->dev, PCI_VENDOR_ID), ==,
                    GRU_PCI_VENDOR_ID);
    g_assert_cmphex(qpci_config_readw(g->dev, PCI_DEVICE_ID), ==,
                    GRU_PCI_DEVICE_ID);
    g_assert_cmphex(qpci_config_readb(g->dev, PCI_REVISION_ID), ==,
                    GRU_PCI_REVISION);
    g_assert_cmphex(qpci_config_readw(g->dev, PCI_CLASS_DEVICE), ==, 0x0880);
    g_assert_cmpuint(g->vectors, ==, 5);

    g_assert_cmphex(rd(g, GRU_REG_ID), ==, GRU_MAGIC);
    g_assert_cmphex(rd(g, GRU_REG_VERSION), ==, GRU_VERSION);
    g_assert_cmpuint(GRU_CAPS_CONTEXTS(caps), ==, 8);
    g_assert_cmpuint(GRU_CAPS_SETS(caps), ==, 32);
    g_assert_cmpuint(GRU_CAPS_WAYS(caps), ==, 2);
    g_assert_cmpuint(GRU_CAPS_VECTORS(caps), ==, 5);
    g_assert_cmphex(rd(g, GRU_REG_CTRL), ==, GRU_CTRL_ENABLE);
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 0);
    g_assert_cmphex(rd(g, GRU_REG_IRQ_CAUSE), ==, 0);
    g_assert_cmphex(rd(g, GRU_REG_DONE_PENDING), ==, 0);
    g_assert_cmpuint(rd(g, GRU_REG_INV_GEN), ==, 0);
    g_assert_cmpuint(rd(g, GRU_REG_INV_STATUS), ==, 0);
    for (off = GRU_REG_STAT_HITS; off < GRU_REG_STAT_END; off += 8) {
        g_assert_cmpuint(rd(g, off), ==, 0);
    }
    g_assert_cmpuint(rd(g, GRU_REG_CPUVEC(7)), ==, GRU_VEC_FAULT0);
    for (n = 0; n < 8; n++) {
        g_assert_cmpuint(wrd(g, n, GRU_WIN_STATUS), ==, GRU_ST_IDLE);
        g_assert_cmpuint(crd(g, n, GRU_CTX_ASID), ==, 0);
        g_assert_cmpuint(crd(g, n, GRU_CTX_VECTOR), ==, GRU_VEC_FAULT0);
        g_assert_cmpuint(crd(g, n, GRU_CTX_FAULT_INFO), ==, 0);
    }
    g_assert_cmpuint(qom_u64(g, "stat-hits"), ==, 0);
    g_assert_cmpuint(qom_u64(g, "inv-gen"), ==, 0);

    /* The clock is the virtual clock: exactly what clock_step moved. */
    off = rd(g, GRU_REG_CLOCK);
    qtest_clock_step(g->qts, 12345);
    g_assert_cmpuint(rd(g, GRU_REG_CLOCK), ==, off + 12345);
    gru_stop(g);
}

static void test_dropin_hit(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE), ppa;

    load_ctx(g, 0, 7);
    dropin(g, 7, VA0, pa, RW);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_DROPINS), ==, 1);
    g_assert_cmphex(probe(g, 7, VA0 + 0x18, &ppa), ==,
                    GRU_PROBE_HIT | (RW << GRU_PROBE_ATTR_SHIFT));
    g_assert_cmphex(ppa, ==, pa + 0x18);

    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_STORE, 0, 0), VA0 + 0x18, 0, 0,
                         0x1122334455667788ULL, 0), ==, GRU_ST_DONE);
    g_assert_cmphex(qtest_readq(g->qts, pa + 0x18), ==, 0x1122334455667788ULL);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_HITS), ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISSES), ==, 0);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_INSN_DONE), ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_BYTES), ==, 8);
    g_assert_cmpuint(qom_u64(g, "stat-hits"), ==, 1);
    g_assert_cmpuint(qom_u64(g, "stat-dropins"), ==, 1);
    /* A hit sets accessed; a probe does not. */
    g_assert_cmphex(probe(g, 7, VA0, NULL), ==, GRU_PROBE_HIT |
                    (RW << GRU_PROBE_ATTR_SHIFT) | GRU_PROBE_ACCESSED);
    /* Another ASID does not see it. */
    g_assert_cmphex(probe(g, 8, VA0, NULL), ==, 0);
    /* Same (asid, va, size) replaces in place. */
    dropin(g, 7, VA0, pa + PAGE, GRU_ATTR_READ);
    g_assert_cmphex(probe(g, 7, VA0, &ppa), ==,
                    GRU_PROBE_HIT | (GRU_ATTR_READ << GRU_PROBE_ATTR_SHIFT));
    g_assert_cmphex(ppa, ==, pa + PAGE);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_EVICTIONS), ==, 0);
    /* No completion interrupt without GRU_IF_IRQ. */
    g_assert_cmpuint(msi_read(g, GRU_VEC_MISC), ==, 0);
    g_assert_cmphex(rd(g, GRU_REG_DONE_PENDING), ==, 0);
    gru_stop(g);
}

static void test_miss_fault_resume(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE), t0, t1;

    qtest_writeq(g->qts, pa + 8, 0xabcdef);
    load_ctx(g, 2, 5);
    cwr(g, 2, GRU_CTX_VECTOR, 3);

    /* Load misses: the fault record latches, vector 3 fires. */
    issue(g, 2, OP(GRU_OPC_LOAD, 0, 0), VA0 + 8, 0, 0, 0, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 2, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 1ULL << 2);
    g_assert_cmphex(crd(g, 2, GRU_CTX_FAULT_VA), ==, VA0 + 8);
    g_assert_cmphex(crd(g, 2, GRU_CTX_FAULT_INFO), ==, GRU_FAULT_VALID);
    g_assert_cmphex(wrd(g, 2, GRU_WIN_EXC_VA), ==, VA0 + 8);
    g_assert_cmphex(wrd(g, 2, GRU_WIN_EXC_INFO), ==, 0);
    g_assert_cmpuint(msi_read(g, 3), ==, MSI_DATA(3));
    g_assert_cmpuint(msi_read(g, 1), ==, 0);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISSES), ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_FAULTS), ==, 1);
    t0 = crd(g, 2, GRU_CTX_FAULT_TIME);
    g_assert_cmpuint(t0, <=, rd(g, GRU_REG_CLOCK));

    /* The fault stays latched: more time, no progress, no new fault. */
    msi_clear(g);
    step(g);
    g_assert_cmpuint(wrd(g, 2, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISSES), ==, 1);
    g_assert_cmpuint(msi_read(g, 3), ==, 0);

    /* ACK only clears the pending bit. */
    cwr(g, 2, GRU_CTX_CMD, GRU_CMD(GRU_CMD_ACK, 0));
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 2, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmphex(crd(g, 2, GRU_CTX_FAULT_INFO), ==, GRU_FAULT_VALID);

    /* Drop in and resume: done, and the service time is exact. */
    dropin(g, 5, VA0, pa, GRU_ATTR_READ);
    t1 = rd(g, GRU_REG_CLOCK);
    cwr(g, 2, GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESUME, 0));
    g_assert_cmpuint(crd(g, 2, GRU_CTX_SERVICE_NS), ==, t1 - t0);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISS_NS_LAST), ==, t1 - t0);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISS_NS_TOTAL), ==, t1 - t0);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISS_SERVICED), ==, 1);
    g_assert_cmphex(crd(g, 2, GRU_CTX_FAULT_INFO) & GRU_FAULT_VALID, ==, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 2, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    g_assert_cmphex(wrd(g, 2, GRU_WIN_RESULT), ==, 0xabcdef);
    g_assert_cmpuint(qom_u64(g, "stat-miss-serviced"), ==, 1);

    /* Store to a read-only entry: a miss with WRITE. */
    msi_clear(g);
    issue(g, 2, OP(GRU_OPC_STORE, 0, 0), VA0 + 16, 0, 0, 42, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 2, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmphex(crd(g, 2, GRU_CTX_FAULT_INFO), ==,
                    GRU_FAULT_VALID | GRU_FAULT_WRITE);
    g_assert_cmphex(wrd(g, 2, GRU_WIN_EXC_INFO), ==, GRU_EXC_WRITE);
    g_assert_cmpuint(msi_read(g, 3), ==, MSI_DATA(3));
    dropin(g, 5, VA0, pa, RW);
    cwr(g, 2, GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESUME, 0));
    step(g);
    g_assert_cmpuint(wrd(g, 2, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    g_assert_cmphex(qtest_readq(g->qts, pa + 16), ==, 42);

    /* With a CPU hint the fault goes to CPUVEC[hint]; clamped to range. */
    msi_clear(g);
    wr(g, GRU_REG_CPUVEC(5), 7);
    issue(g, 2, OP(GRU_OPC_LOAD, GRU_IF_CPU_HINT, 5), VA0 + PAGE, 0, 0, 0, 0);
    step(g);
    g_assert_cmpuint(msi_read(g, 7), ==, MSI_DATA(7));
    g_assert_cmpuint(msi_read(g, 3), ==, 0);
    cwr(g, 2, GRU_CTX_CMD, GRU_CMD(GRU_CMD_ABORT, 0));
    wr(g, GRU_REG_CPUVEC(5), 200);
    msi_clear(g);
    issue(g, 2, OP(GRU_OPC_LOAD, GRU_IF_CPU_HINT, 5), VA0 + PAGE, 0, 0, 0, 0);
    step(g);
    g_assert_cmpuint(msi_read(g, g->vectors - 1), ==,
                     MSI_DATA(g->vectors - 1));
    cwr(g, 2, GRU_CTX_CMD, GRU_CMD(GRU_CMD_ABORT, 0));
    gru_stop(g);
}

/* A miss stalls only its own context. */
static void test_miss_isolated(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE);

    load_ctx(g, 0, 1);
    load_ctx(g, 1, 2);
    dropin(g, 2, VA0, pa, RW);
    issue(g, 0, OP(GRU_OPC_LOAD, 0, 0), VA0, 0, 0, 0, 0);
    issue(g, 1, OP(GRU_OPC_STORE, 0, 0), VA0, 0, 0, 99, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmpuint(wrd(g, 1, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 1);
    g_assert_cmphex(qtest_readq(g->qts, pa), ==, 99);
    gru_stop(g);
}

static void test_stale_dropin(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE);
    int i;

    /* The driver read gen 0, then an invalidation covering VA0 ran. */
    invalidate(g, GRU_INV_RANGE, 3, VA0, VA0 + PAGE);
    g_assert_cmpuint(rd(g, GRU_REG_INV_GEN), ==, 1);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 0), ==, GRU_DI_STALE);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_DROPINS_STALE), ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_DROPINS), ==, 0);
    g_assert_cmphex(probe(g, 3, VA0, NULL), ==, 0);
    /* A 2M entry around it is covered too. */
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa & ~0x1fffffULL,
                                RW | GRU_ATTR_SIZE_2M, 0), ==, GRU_DI_STALE);
    /* Invalidations that do not cover the entry do not stale it. */
    invalidate(g, GRU_INV_RANGE, 3, VA0 + PAGE, VA0 + 2 * PAGE);
    invalidate(g, GRU_INV_ASID, 4, 0, 0);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 1), ==, GRU_DI_INSTALLED);
    /* An ASID-wide or global invalidation does. */
    invalidate(g, GRU_INV_ASID, 3, 0, 0);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 3), ==, GRU_DI_STALE);
    invalidate(g, GRU_INV_ALL, 0, 0, 0);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 4), ==, GRU_DI_STALE);
    /* A generation the device has not reached is a bad drop-in. */
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 6), ==, GRU_DI_BAD);
    /* Once the ring no longer reaches back, everything older is stale. */
    for (i = 0; i < 65; i++) {
        invalidate(g, GRU_INV_ASID, 9, 0, 0);
    }
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 5), ==, GRU_DI_STALE);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 6), ==, GRU_DI_INSTALLED);
    g_assert_cmpuint(qom_u64(g, "stat-dropins-stale"), ==, 5);
    gru_stop(g);

    /* The test-only x-no-gen-check build accepts the late drop-in. */
    g = gru_start("x-no-gen-check=on");
    pa = alloc_buf(g, PAGE);
    invalidate(g, GRU_INV_RANGE, 3, VA0, VA0 + PAGE);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 0), ==, GRU_DI_INSTALLED);
    g_assert_cmphex(probe(g, 3, VA0, NULL) & GRU_PROBE_HIT, ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_DROPINS_STALE), ==, 0);
    gru_stop(g);

    /* It can be switched while the device runs, both ways. */
    g = gru_start("");
    pa = alloc_buf(g, PAGE);
    qom_set_bool(g, "x-no-gen-check", true);
    invalidate(g, GRU_INV_RANGE, 3, VA0, VA0 + PAGE);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 0), ==, GRU_DI_INSTALLED);
    qom_set_bool(g, "x-no-gen-check", false);
    invalidate(g, GRU_INV_RANGE, 3, VA0, VA0 + PAGE);
    g_assert_cmpuint(dropin_gen(g, 3, VA0, pa, RW, 1), ==, GRU_DI_STALE);
    gru_stop(g);
}

static void test_bad_dropin(void)
{
    Gru *g = gru_start("");
    uint64_t pa = 0x200000;

    g_assert_cmpuint(dropin_gen(g, 0, VA0, pa, RW, 0), ==, GRU_DI_BAD);
    g_assert_cmpuint(dropin_gen(g, 0x10000, VA0, pa, RW, 0), ==, GRU_DI_BAD);
    g_assert_cmpuint(dropin_gen(g, 1, VA0 + 8, pa, RW, 0), ==, GRU_DI_BAD);
    g_assert_cmpuint(dropin_gen(g, 1, VA0, pa + 8, RW, 0), ==, GRU_DI_BAD);
    g_assert_cmpuint(dropin_gen(g, 1, VA0 + PAGE, pa, RW | GRU_ATTR_SIZE_2M,
                                0), ==, GRU_DI_BAD);
    g_assert_cmpuint(dropin_gen(g, 1, VA0, pa, RW | 3, 0), ==, GRU_DI_BAD);
    g_assert_cmpuint(dropin_gen(g, 1, VA0, pa, RW | 0x10, 0), ==, GRU_DI_BAD);
    g_assert_cmpuint(dropin_gen(g, 1, GRU_VA_LIMIT, pa, RW, 0), ==,
                     GRU_DI_BAD);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_DROPINS_BAD), ==, 8);
    g_assert_cmpuint(dropin_gen(g, 1, VA0, pa, RW | GRU_ATTR_SIZE_2M, 0), ==,
                     GRU_DI_INSTALLED);
    gru_stop(g);
}

static void test_invalidate(void)
{
    Gru *g = gru_start("");
    uint64_t va2m = 0x40000000ULL;

    dropin(g, 1, VA0, 0x100000, RW);
    dropin(g, 1, VA0 + PAGE, 0x101000, RW);
    dropin(g, 1, va2m, 0x200000, RW | GRU_ATTR_SIZE_2M);
    dropin(g, 1, 0x80000000ULL, 0x40000000, RW | GRU_ATTR_SIZE_1G);
    dropin(g, 2, VA0, 0x102000, RW);

    /* Range: only overlapping entries of that ASID. */
    invalidate(g, GRU_INV_RANGE, 1, VA0, VA0 + PAGE);
    g_assert_cmphex(probe(g, 1, VA0, NULL), ==, 0);
    g_assert_cmphex(probe(g, 1, VA0 + PAGE, NULL) & 1, ==, 1);
    g_assert_cmphex(probe(g, 2, VA0, NULL) & 1, ==, 1);
    g_assert_cmphex(probe(g, 1, va2m + 0x1000, NULL) & 1, ==, 1);
    /* A range touching one byte of a 2M entry removes it. */
    invalidate(g, GRU_INV_RANGE, 1, va2m + 0x1fffff, va2m + 0x200000);
    g_assert_cmphex(probe(g, 1, va2m, NULL), ==, 0);
    g_assert_cmphex(probe(g, 1, 0x80000000ULL + 0x12345000, NULL) & 1, ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_INV_RANGE), ==, 2);

    /* ASID: all of ASID 1, none of ASID 2. */
    invalidate(g, GRU_INV_ASID, 1, 0, 0);
    g_assert_cmphex(probe(g, 1, VA0 + PAGE, NULL), ==, 0);
    g_assert_cmphex(probe(g, 1, 0x80000000ULL, NULL), ==, 0);
    g_assert_cmphex(probe(g, 2, VA0, NULL) & 1, ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_INV_ASID), ==, 1);

    /* All. */
    dropin(g, 1, VA0, 0x100000, RW);
    invalidate(g, GRU_INV_ALL, 0, 0, 0);
    g_assert_cmphex(probe(g, 2, VA0, NULL), ==, 0);
    g_assert_cmphex(probe(g, 1, VA0, NULL), ==, 0);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_INV_ALL), ==, 1);
    g_assert_cmpuint(rd(g, GRU_REG_INV_GEN), ==, 4);
    g_assert_cmpuint(qom_u64(g, "stat-inv-range"), ==, 2);

    /* Malformed commands change nothing, not even the generation. */
    invalidate(g, 7, 1, 0, 0);
    invalidate(g, GRU_INV_ASID, 0, 0, 0);
    invalidate(g, GRU_INV_RANGE, 1, VA0, VA0);
    g_assert_cmpuint(rd(g, GRU_REG_INV_GEN), ==, 4);
    gru_stop(g);
}

/* Invalidation is a fence: a running instruction misses right after it. */
static void test_invalidate_fence(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, 4 * PAGE);

    load_ctx(g, 0, 1);
    map_range(g, 1, VA0, pa, 4 * PAGE, RW);
    /* One page per tick: stop after the first chunk. */
    issue(g, 0, OP(GRU_OPC_BSET, 0, 0), VA0, 0, 4 * PAGE, 0x5a, 0);
    qtest_clock_step(g->qts, 100);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_PROGRESS), ==, PAGE);
    invalidate(g, GRU_INV_RANGE, 1, VA0 + PAGE, VA0 + 4 * PAGE);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmphex(crd(g, 0, GRU_CTX_FAULT_VA), ==, VA0 + PAGE);
    g_assert_cmpuint(qtest_readb(g->qts, pa + PAGE), ==, 0);
    g_assert_cmpuint(qtest_readb(g->qts, pa + PAGE - 1), ==, 0x5a);
    cwr(g, 0, GRU_CTX_CMD, GRU_CMD(GRU_CMD_ABORT, 0));
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_ABORTED);
    gru_stop(g);
}

static void test_aging(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE);

    load_ctx(g, 0, 1);
    dropin(g, 1, VA0, pa, RW);
    wr(g, GRU_REG_AGE_ASID, 1);
    wr(g, GRU_REG_AGE_START, VA0);
    wr(g, GRU_REG_AGE_END, VA0 + PAGE);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_TEST);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 0);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_LOAD, 0, 0), VA0, 0, 0, 0, 0), ==,
                     GRU_ST_DONE);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_TEST);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 1);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_TEST);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 1);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_CLEAR);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 1);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_TEST);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 0);
    /* Other ASIDs and ranges are not reported. */
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_LOAD, 0, 0), VA0, 0, 0, 0, 0), ==,
                     GRU_ST_DONE);
    wr(g, GRU_REG_AGE_ASID, 2);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_TEST);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 0);
    wr(g, GRU_REG_AGE_ASID, 1);
    wr(g, GRU_REG_AGE_START, VA0 + PAGE);
    wr(g, GRU_REG_AGE_END, VA0 + 2 * PAGE);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_TEST);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 0);
    gru_stop(g);
}

static void test_eviction(void)
{
    Gru *g = gru_start("tlb-sets=1,tlb-ways=2");

    dropin(g, 1, VA0, 0x100000, RW);
    dropin(g, 1, VA0 + PAGE, 0x101000, RW);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_EVICTIONS), ==, 0);
    dropin(g, 1, VA0 + 2 * PAGE, 0x102000, RW);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_EVICTIONS), ==, 1);
    /* Round-robin victim: way 0 (VA0) went first. */
    g_assert_cmphex(probe(g, 1, VA0, NULL), ==, 0);
    g_assert_cmphex(probe(g, 1, VA0 + PAGE, NULL) & 1, ==, 1);
    g_assert_cmphex(probe(g, 1, VA0 + 2 * PAGE, NULL) & 1, ==, 1);
    dropin(g, 1, VA0 + 3 * PAGE, 0x103000, RW);
    g_assert_cmphex(probe(g, 1, VA0 + PAGE, NULL), ==, 0);
    g_assert_cmpuint(qom_u64(g, "stat-evictions"), ==, 2);
    gru_stop(g);
}

static void test_opcodes(void)
{
    Gru *g = gru_start("");
    const uint64_t len = 3 * PAGE;
    uint64_t pa = alloc_buf(g, 2 * len), pa2m, i, w;
    uint8_t *src = g_malloc(len), *dst = g_malloc(len);
    uint64_t va_src = VA0, va_dst = VA0 + 0x100000;
    uint64_t bytes;

    load_ctx(g, 1, 11);
    map_range(g, 11, va_src, pa, len, GRU_ATTR_READ);
    map_range(g, 11, va_dst, pa + len, len, RW);

    /* NOP touches nothing. */
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_NOP, 0, 0), 0, 0, 0, 0, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_HITS), ==, 0);

    /* STORE then LOAD. */
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_STORE, 0, 0), va_dst + 0x40, 0, 0,
                         0xfeedfacecafebeefULL, 0), ==, GRU_ST_DONE);
    g_assert_cmphex(qtest_readq(g->qts, pa + len + 0x40), ==,
                    0xfeedfacecafebeefULL);
    qtest_writeq(g->qts, pa + 0x80, 0x0123456789abcdefULL);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_LOAD, 0, 0), va_src + 0x80, 0, 0,
                         0, 0), ==, GRU_ST_DONE);
    g_assert_cmphex(wrd(g, 1, GRU_WIN_RESULT), ==, 0x0123456789abcdefULL);

    /* BCOPY across pages with different page offsets on each side. */
    for (i = 0; i < len; i++) {
        src[i] = i * 7 + 3;
    }
    qtest_memwrite(g->qts, pa, src, len);
    qtest_memset(g->qts, pa + len, 0, len);
    bytes = rd(g, GRU_REG_STAT_BYTES);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_BCOPY, 0, 0), va_dst + 3000,
                         va_src + 100, 8000, 0, 0), ==, GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 1, GRU_WIN_PROGRESS), ==, 8000);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_BYTES) - bytes, ==, 2 * 8000);
    qtest_memread(g->qts, pa + len, dst, len);
    for (i = 0; i < len; i++) {
        uint8_t want = (i >= 3000 && i < 11000) ? src[i - 3000 + 100] : 0;

        g_assert_cmpuint(dst[i], ==, want);
    }

    /* BSET of an odd length, only OPERAND0's low byte used. */
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_BSET, 0, 0), va_dst + 1, 0,
                         PAGE + 5, 0x1234a5, 0), ==, GRU_ST_DONE);
    qtest_memread(g->qts, pa + len, dst, len);
    g_assert_cmpuint(dst[0], ==, 0);
    for (i = 1; i < PAGE + 6; i++) {
        g_assert_cmpuint(dst[i], ==, 0xa5);
    }
    g_assert_cmpuint(dst[PAGE + 6], ==, src[PAGE + 6 - 3000 + 100]);
    /* Zero length completes without touching memory. */
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_BSET, 0, 0), VA0 + 0x3000000, 0,
                         0, 0, 0), ==, GRU_ST_DONE);

    /* Atomics on a 2M entry. */
    pa2m = QEMU_ALIGN_UP(guest_alloc(&g->qs->alloc, 4 << 20), 2 << 20);
    dropin(g, 11, 0x40000000ULL, pa2m, RW | GRU_ATTR_SIZE_2M);
    w = 0x40000000ULL + 0x12340;
    qtest_writeq(g->qts, pa2m + 0x12340, 100);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_FADD, 0, 0), w, 0, 0, 23, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 1, GRU_WIN_RESULT), ==, 100);
    g_assert_cmpuint(qtest_readq(g->qts, pa2m + 0x12340), ==, 123);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_FADD, 0, 0), w, 0, 0,
                         (uint64_t)-124, 0), ==, GRU_ST_DONE);
    g_assert_cmphex(qtest_readq(g->qts, pa2m + 0x12340), ==, UINT64_MAX);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_SWAP, 0, 0), w, 0, 0, 77, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmphex(wrd(g, 1, GRU_WIN_RESULT), ==, UINT64_MAX);
    g_assert_cmpuint(qtest_readq(g->qts, pa2m + 0x12340), ==, 77);
    /* CAS that fails leaves memory alone and returns the current value. */
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_CAS, 0, 0), w, 0, 0, 5, 76), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 1, GRU_WIN_RESULT), ==, 77);
    g_assert_cmpuint(qtest_readq(g->qts, pa2m + 0x12340), ==, 77);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_CAS, 0, 0), w, 0, 0, 5, 77), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 1, GRU_WIN_RESULT), ==, 77);
    g_assert_cmpuint(qtest_readq(g->qts, pa2m + 0x12340), ==, 5);

    /* A 1G entry translates too. */
    dropin(g, 11, 0x80000000ULL, 0, RW | GRU_ATTR_SIZE_1G);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_LOAD, 0, 0),
                         0x80000000ULL + pa2m + 0x12340, 0, 0, 0, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 1, GRU_WIN_RESULT), ==, 5);

    /* GRU_IF_IRQ: DONE_PENDING, IRQ_CAUSE and vector 0; W1C clears. */
    msi_clear(g);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_NOP, GRU_IF_IRQ, 0), 0, 0, 0, 0, 0),
                     ==, GRU_ST_DONE);
    g_assert_cmphex(rd(g, GRU_REG_DONE_PENDING), ==, 1 << 1);
    g_assert_cmphex(rd(g, GRU_REG_IRQ_CAUSE), ==, GRU_CAUSE_DONE);
    g_assert_cmpuint(msi_read(g, GRU_VEC_MISC), ==, MSI_DATA(GRU_VEC_MISC));
    wr(g, GRU_REG_DONE_PENDING, 1 << 1);
    wr(g, GRU_REG_IRQ_CAUSE, GRU_CAUSE_DONE);
    g_assert_cmphex(rd(g, GRU_REG_DONE_PENDING), ==, 0);
    g_assert_cmphex(rd(g, GRU_REG_IRQ_CAUSE), ==, 0);
    g_assert_cmpuint(run(g, 1, OP(GRU_OPC_NOP | 0x40, GRU_IF_IRQ, 0), 0, 0,
                         0, 0, 0), ==, GRU_ST_ERROR);
    g_assert_cmphex(rd(g, GRU_REG_IRQ_CAUSE), ==, GRU_CAUSE_ERROR);
    g_assert_cmphex(rd(g, GRU_REG_DONE_PENDING), ==, 1 << 1);

    g_free(src);
    g_free(dst);
    gru_stop(g);
}

/* Refused at the doorbell: status ERROR with the precise cause at once. */
static void expect_refused(Gru *g, int n, uint64_t op, uint64_t addr,
                           uint64_t src, uint64_t len, uint64_t err)
{
    issue(g, n, op, addr, src, len, 0, 0);
    g_assert_cmpuint(wrd(g, n, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, n, GRU_WIN_ERROR), ==, err);
}

static void test_errors_immediate(void)
{
    Gru *g = gru_start("");
    uint64_t lim = GRU_VA_LIMIT, errs;

    load_ctx(g, 0, 1);
    expect_refused(g, 0, OP(GRU_OPC_MAX + 1, 0, 0), VA0, 0, 0,
                   GRU_ERR_BAD_OPCODE);
    expect_refused(g, 0, OP(0xff, 0, 0), VA0, 0, 0, GRU_ERR_BAD_OPCODE);
    expect_refused(g, 0, OP(GRU_OPC_LOAD, 0, 0) | (1ULL << 24), VA0, 0, 0,
                   GRU_ERR_BAD_INSN);
    expect_refused(g, 0, OP(GRU_OPC_LOAD, 0x4, 0), VA0, 0, 0,
                   GRU_ERR_BAD_INSN);
    expect_refused(g, 0, OP(GRU_OPC_LOAD, 0, 0), VA0 + 4, 0, 0,
                   GRU_ERR_MISALIGNED);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_VA), ==, VA0 + 4);
    expect_refused(g, 0, OP(GRU_OPC_CAS, 0, 0), VA0 + 1, 0, 0,
                   GRU_ERR_MISALIGNED);
    expect_refused(g, 0, OP(GRU_OPC_BSET, 0, 0), VA0, 0,
                   GRU_INSN_MAX_LEN + 1, GRU_ERR_TOO_LONG);
    expect_refused(g, 0, OP(GRU_OPC_BCOPY, 0, 0), VA0, VA0 + 100, 200,
                   GRU_ERR_OVERLAP);
    expect_refused(g, 0, OP(GRU_OPC_BCOPY, 0, 0), VA0 + 100, VA0, 200,
                   GRU_ERR_OVERLAP);
    expect_refused(g, 0, OP(GRU_OPC_LOAD, 0, 0), lim, 0, 0,
                   GRU_ERR_KERNEL_ADDR);
    expect_refused(g, 0, OP(GRU_OPC_STORE, 0, 0), 0xffffffff80000000ULL, 0, 0,
                   GRU_ERR_KERNEL_ADDR);
    /* One byte over the limit is enough. */
    expect_refused(g, 0, OP(GRU_OPC_BSET, 0, 0), lim - 16, 0, 17,
                   GRU_ERR_KERNEL_ADDR);
    expect_refused(g, 0, OP(GRU_OPC_BCOPY, 0, 0), VA0, lim - 16, 17,
                   GRU_ERR_KERNEL_ADDR);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_VA), ==, lim - 16);
    /* ... and just below it is fine (it misses instead). */
    issue(g, 0, OP(GRU_OPC_BSET, 0, 0), lim - 16, 0, 16, 0, 0);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    cwr(g, 0, GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESET, 0));

    /* Unknown doorbell command. */
    wwr(g, 0, GRU_WIN_OP, OP(GRU_OPC_NOP, 0, 0));
    wwr(g, 0, GRU_WIN_DOORBELL, 2);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_BAD_DOORBELL);

    /* No ASID loaded (never, or loaded with VALID clear, or ASID 0). */
    expect_refused(g, 3, OP(GRU_OPC_NOP, 0, 0), 0, 0, 0, GRU_ERR_NO_CONTEXT);
    cwr(g, 3, GRU_CTX_ASID, 5);
    expect_refused(g, 3, OP(GRU_OPC_NOP, 0, 0), 0, 0, 0, GRU_ERR_NO_CONTEXT);
    cwr(g, 3, GRU_CTX_ASID, GRU_CTX_ASID_VALID);
    expect_refused(g, 3, OP(GRU_OPC_NOP, 0, 0), 0, 0, 0, GRU_ERR_NO_CONTEXT);

    errs = rd(g, GRU_REG_STAT_INSN_ERROR);
    g_assert_cmpuint(errs, ==, 17);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_INSN_DONE), ==, 0);
    gru_stop(g);
}

static void test_errors_dma(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE);

    load_ctx(g, 0, 1);
    /* HPET registers: a valid translation that points outside RAM. */
    dropin(g, 1, VA0, 0xfed00000, RW);
    dropin(g, 1, VA0 + PAGE, pa, RW);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_LOAD, 0, 0), VA0, 0, 0, 0, 0), ==,
                     GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_VA), ==, VA0);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_SWAP, 0, 0), VA0 + 8, 0, 0, 1, 0),
                     ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_BCOPY, 0, 0), VA0 + PAGE, VA0, 64,
                         0, 0), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_INFO), ==, GRU_EXC_SRC);

    /* Nothing moves until the driver enables bus mastering. */
    qtest_writeq(g->qts, pa, 0x77);
    qpci_config_writew(g->dev, PCI_COMMAND,
                       qpci_config_readw(g->dev, PCI_COMMAND) &
                       ~PCI_COMMAND_MASTER);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_STORE, 0, 0), VA0 + PAGE, 0, 0, 9,
                         0), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_FADD, 0, 0), VA0 + PAGE, 0, 0, 9,
                         0), ==, GRU_ST_ERROR);
    g_assert_cmpuint(qtest_readq(g->qts, pa), ==, 0x77);
    gru_stop(g);
}

/*
 * Every kind of device write with Bus Master Enable off fails with DMA and
 * leaves memory alone.  The address space is then empty, which the RAM
 * check must not look into for the read-only test (undefined behaviour
 * that only the sanitizer stage, make qtests-san, sees).
 */
static void test_dma_bus_master_off(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, 2 * PAGE);
    uint16_t cmd = qpci_config_readw(g->dev, PCI_COMMAND);
    static const unsigned int writers[] = {
        GRU_OPC_STORE, GRU_OPC_BSET, GRU_OPC_BCOPY, GRU_OPC_FADD,
        GRU_OPC_SWAP, GRU_OPC_CAS,
    };
    unsigned int i;

    load_ctx(g, 0, 1);
    map_range(g, 1, VA0, pa, 2 * PAGE, RW);
    qtest_writeq(g->qts, pa, 0x77);
    qpci_config_writew(g->dev, PCI_COMMAND, cmd & ~PCI_COMMAND_MASTER);
    for (i = 0; i < ARRAY_SIZE(writers); i++) {
        g_assert_cmpuint(run(g, 0, OP(writers[i], 0, 0), VA0, VA0 + PAGE, 8,
                             9, 0x77), ==, GRU_ST_ERROR);
        g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
        g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_INFO) & GRU_EXC_WRITE, ==,
                        writers[i] == GRU_OPC_BCOPY ? 0 : GRU_EXC_WRITE);
    }
    g_assert_cmpuint(qtest_readq(g->qts, pa), ==, 0x77);

    qpci_config_writew(g->dev, PCI_COMMAND, cmd);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_STORE, 0, 0), VA0, 0, 0, 9, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmpuint(qtest_readq(g->qts, pa), ==, 9);
    gru_stop(g);
}

/* Miss, then the driver answers with each CTX_CMD. */
static void start_miss(Gru *g, int n, uint64_t va)
{
    issue(g, n, OP(GRU_OPC_STORE, GRU_IF_IRQ, 0), va, 0, 0, 0x55, 0);
    step(g);
    g_assert_cmpuint(wrd(g, n, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 1ULL << n);
}

static void test_errors_cmd(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE);

    load_ctx(g, 4, 2);

    /* FAIL with the driver's cause. */
    start_miss(g, 4, VA0);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_FAIL, GRU_ERR_UNMAPPED));
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 0);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_UNMAPPED);
    g_assert_cmphex(wrd(g, 4, GRU_WIN_EXC_VA), ==, VA0);
    g_assert_cmphex(rd(g, GRU_REG_IRQ_CAUSE), ==, GRU_CAUSE_ERROR);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISS_SERVICED), ==, 1);
    start_miss(g, 4, VA0);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_FAIL, GRU_ERR_PROT));
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_PROT);
    start_miss(g, 4, VA0);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_FAIL, GRU_ERR_FAULT));
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_FAULT);
    /* An out-of-range cause becomes FAULT. */
    start_miss(g, 4, VA0);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_FAIL, 200));
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_FAULT);

    /* CALLOS: stalled with the cause; RESUME later finishes it. */
    start_miss(g, 4, VA0);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_CALLOS, GRU_ERR_UNMAPPED));
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_CALLOS);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_UNMAPPED);
    step(g);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_CALLOS);
    /* A doorbell while CALLOS is dropped. */
    wwr(g, 4, GRU_WIN_OP, OP(GRU_OPC_NOP, 0, 0));
    wwr(g, 4, GRU_WIN_DOORBELL, GRU_DB_START);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_CALLOS);
    dropin(g, 2, VA0, pa, RW);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESUME, 0));
    step(g);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_NONE);
    g_assert_cmphex(qtest_readq(g->qts, pa), ==, 0x55);
    /* CALLOS then FAIL. */
    start_miss(g, 4, VA0 + PAGE);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_CALLOS, GRU_ERR_UNMAPPED));
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_FAIL, GRU_ERR_UNMAPPED));
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_UNMAPPED);

    /* ABORT. */
    start_miss(g, 4, VA0 + PAGE);
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_ABORT, 0));
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_ERROR), ==, GRU_ERR_ABORTED);
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 0);

    /* Doorbell while BUSY is dropped: the stalled instruction is kept. */
    start_miss(g, 4, VA0 + PAGE);
    issue(g, 4, OP(GRU_OPC_NOP, 0, 0), 0, 0, 0, 0, 0);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmphex(crd(g, 4, GRU_CTX_FAULT_VA), ==, VA0 + PAGE);

    /* RESET: idle, window cleared, fault forgotten. */
    cwr(g, 4, GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESET, 0));
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_IDLE);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_OP), ==, 0);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_EXC_VA), ==, 0);
    g_assert_cmphex(crd(g, 4, GRU_CTX_FAULT_INFO) & GRU_FAULT_VALID, ==, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 4, GRU_WIN_STATUS), ==, GRU_ST_IDLE);
    gru_stop(g);
}

static void test_engine_enable(void)
{
    Gru *g = gru_start("");

    load_ctx(g, 0, 1);
    wr(g, GRU_REG_CTRL, 0);
    issue(g, 0, OP(GRU_OPC_NOP, 0, 0), 0, 0, 0, 0, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    wr(g, GRU_REG_CTRL, GRU_CTRL_ENABLE);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_DONE);

    /* Unloading the ASID parks a running instruction until reloaded. */
    issue(g, 0, OP(GRU_OPC_LOAD, 0, 0), VA0, 0, 0, 0, 0);
    cwr(g, 0, GRU_CTX_ASID, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISSES), ==, 0);
    load_ctx(g, 0, 1);
    step(g);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISSES), ==, 1);
    gru_stop(g);
}

/* The driver's save/restore path through BAR0 when it steals a context. */
static void test_save_restore(void)
{
    Gru *g = gru_start("");
    uint64_t pa = alloc_buf(g, PAGE);

    load_ctx(g, 0, 1);
    dropin(g, 1, VA0, pa, RW);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_STORE, 0, 0), VA0, 0, 0, 3, 0), ==,
                     GRU_ST_DONE);
    cwr(g, 0, GRU_CTX_STATUS, GRU_ST_ERROR);
    cwr(g, 0, GRU_CTX_ERROR, GRU_ERR_PROT);
    cwr(g, 0, GRU_CTX_RESULT, 0x1234);
    cwr(g, 0, GRU_CTX_EXC_VA, 0x5000);
    cwr(g, 0, GRU_CTX_EXC_INFO, GRU_EXC_WRITE);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_PROT);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_RESULT), ==, 0x1234);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_VA), ==, 0x5000);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_INFO), ==, GRU_EXC_WRITE);
    /* Restoring BUSY restarts the window's instruction block. */
    wwr(g, 0, GRU_WIN_OP, OP(GRU_OPC_STORE, 0, 0));
    wwr(g, 0, GRU_WIN_ADDR, VA0 + 8);
    wwr(g, 0, GRU_WIN_OPERAND0, 66);
    cwr(g, 0, GRU_CTX_STATUS, GRU_ST_BUSY);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    g_assert_cmpuint(qtest_readq(g->qts, pa + 8), ==, 66);
    /* A restored instruction is validated like one from the doorbell. */
    wwr(g, 0, GRU_WIN_OP, 0xff);
    cwr(g, 0, GRU_CTX_STATUS, GRU_ST_BUSY);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_BAD_OPCODE);
    wwr(g, 0, GRU_WIN_OP, OP(GRU_OPC_LOAD, 0, 0));
    wwr(g, 0, GRU_WIN_ADDR, GRU_VA_LIMIT);
    cwr(g, 0, GRU_CTX_STATUS, GRU_ST_CALLOS);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_KERNEL_ADDR);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    /* Values beyond CALLOS are refused. */
    cwr(g, 0, GRU_CTX_STATUS, 5);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    wwr(g, 0, GRU_WIN_ADDR, VA0);
    /* The window's status registers are read-only from user space. */
    wwr(g, 0, GRU_WIN_STATUS, GRU_ST_IDLE);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_ERROR);
    gru_stop(g);
}

static void test_access_sizes(void)
{
    Gru *g = gru_start("contexts=3");

    g_assert_cmphex(qpci_io_readl(g->dev, g->bar0, GRU_REG_ID), ==,
                    GRU_MAGIC);
    g_assert_cmphex(qpci_io_readl(g->dev, g->bar0, GRU_REG_CAPS + 4), ==,
                    9);
    qpci_io_writel(g->dev, g->bar0, GRU_REG_DI_VA, 0x89abc000);
    qpci_io_writel(g->dev, g->bar0, GRU_REG_DI_VA + 4, 0x1234);
    g_assert_cmphex(rd(g, GRU_REG_DI_VA), ==, 0x123489abc000ULL);
    qpci_io_writel(g->dev, g->bar0, GRU_REG_DI_VA, 0x1000);
    g_assert_cmphex(rd(g, GRU_REG_DI_VA), ==, 0x123400001000ULL);
    /* A 32-bit command write acts through the low half. */
    load_ctx(g, 1, 3);
    wwr(g, 1, GRU_WIN_OP, OP(GRU_OPC_NOP, 0, 0));
    qpci_io_writel(g->dev, g->win, GRU_WINDOW_SIZE + GRU_WIN_DOORBELL,
                   GRU_DB_START);
    step(g);
    g_assert_cmpuint(wrd(g, 1, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    /* Unknown offsets read as zero and ignore writes. */
    g_assert_cmphex(rd(g, 0x3ff8), ==, 0);
    wr(g, 0x3ff8, 1);
    g_assert_cmphex(rd(g, 0x3ff8), ==, 0);
    wr(g, GRU_REG_ID, 1);
    g_assert_cmphex(rd(g, GRU_REG_ID), ==, GRU_MAGIC);
    g_assert_cmphex(crd(g, 3, GRU_CTX_ASID), ==, 0);
    /* BAR2 is a power of two; only the first three pages are windows. */
    wwr(g, 3, GRU_WIN_OP, 1);
    g_assert_cmphex(wrd(g, 3, GRU_WIN_OP), ==, 0);
    g_assert_cmphex(wrd(g, 0, 0x800), ==, 0);
    /* Reserved bits in CTRL and CTX_ASID are refused. */
    wr(g, GRU_REG_CTRL, 0x3);
    g_assert_cmphex(rd(g, GRU_REG_CTRL), ==, GRU_CTRL_ENABLE);
    cwr(g, 0, GRU_CTX_ASID, 0x10001);
    g_assert_cmphex(crd(g, 0, GRU_CTX_ASID), ==, 0);
    gru_stop(g);
}

/* Point MSI-X vector v at any address, with any data. */
static void aim_vector(Gru *g, unsigned int v, uint64_t addr, uint32_t data)
{
    uint64_t e = g->dev->msix_table_off + v * PCI_MSIX_ENTRY_SIZE;

    qpci_io_writel(g->dev, g->dev->msix_table_bar,
                   e + PCI_MSIX_ENTRY_LOWER_ADDR, (uint32_t)addr);
    qpci_io_writel(g->dev, g->dev->msix_table_bar,
                   e + PCI_MSIX_ENTRY_UPPER_ADDR, addr >> 32);
    qpci_io_writel(g->dev, g->dev->msix_table_bar,
                   e + PCI_MSIX_ENTRY_DATA, data);
}

/* An MSI-X message aimed at the device's own doorbell must not recurse. */
static void test_msi_self_target(void)
{
    Gru *g = gru_start("");

    aim_vector(g, GRU_VEC_MISC, g->win.addr + GRU_WIN_DOORBELL, 2);
    load_ctx(g, 0, 1);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_NOP, GRU_IF_IRQ, 0), 0, 0, 0, 0,
                         0), ==, GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_NONE);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_INSN_ERROR), ==, 0);
    gru_stop(g);
}

/*
 * Random register traffic (fixed seed, so a failure reproduces) must never
 * take QEMU down: every guest mistake ends in an error status or a log.
 */
static void test_random_writes(void)
{
    Gru *g = gru_start("contexts=4,tlb-sets=4,tlb-ways=2,vectors=3");
    uint64_t pa = alloc_buf(g, 4 * PAGE);
    static const uint64_t regs[] = {
        GRU_REG_CTRL, GRU_REG_IRQ_CAUSE, GRU_REG_DONE_PENDING,
        GRU_REG_INV_ASID, GRU_REG_INV_START, GRU_REG_INV_END,
        GRU_REG_INV_CMD, GRU_REG_DI_ASID, GRU_REG_DI_VA, GRU_REG_DI_PA,
        GRU_REG_DI_ATTR, GRU_REG_DI_GEN, GRU_REG_DI_CMD, GRU_REG_AGE_ASID,
        GRU_REG_AGE_START, GRU_REG_AGE_END, GRU_REG_AGE_CMD,
        GRU_REG_PROBE_ASID, GRU_REG_PROBE_VA, GRU_REG_PROBE_CMD,
        GRU_REG_CPUVEC(0), GRU_REG_CPUVEC(63), GRU_REG_STAT_HITS,
    };
    static const uint64_t ctx_regs[] = {
        GRU_CTX_ASID, GRU_CTX_VECTOR, GRU_CTX_CMD, GRU_CTX_STATUS,
        GRU_CTX_ERROR, GRU_CTX_EXC_VA,
    };
    GRand *r = g_rand_new_with_seed(20261125);
    int i;

    for (i = 0; i < 20000; i++) {
        uint64_t vals[] = {
            0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, GRU_DB_START,
            GRU_CTX_ASID_VALID | 1, GRU_CTX_ASID_VALID | 2,
            GRU_CMD(g_rand_int_range(r, 0, 8), g_rand_int_range(r, 0, 16)),
            VA0 + g_rand_int_range(r, 0, 4) * PAGE +
                g_rand_int_range(r, 0, 512) * 8,
            pa + g_rand_int_range(r, 0, 4) * PAGE, 0xfed00000,
            GRU_OP_ENCODE(g_rand_int_range(r, 0, 9),
                          g_rand_int_range(r, 0, 4), g_rand_int(r)),
            g_rand_int_range(r, 0, 20000), GRU_VA_LIMIT - 8,
            ((uint64_t)g_rand_int(r) << 32) | g_rand_int(r),
        };
        uint64_t v = vals[g_rand_int_range(r, 0, ARRAY_SIZE(vals))];
        int n = g_rand_int_range(r, 0, 4);

        switch (g_rand_int_range(r, 0, 6)) {
        case 4: {
            /* A well-formed drop-in, sometimes with an old generation. */
            uint64_t gen = rd(g, GRU_REG_INV_GEN);

            dropin_gen(g, g_rand_int_range(r, 1, 3),
                       VA0 + g_rand_int_range(r, 0, 4) * PAGE,
                       pa + g_rand_int_range(r, 0, 4) * PAGE,
                       g_rand_int_range(r, 0, 4) << 2,
                       gen - MIN(gen, g_rand_int_range(r, 0, 2)));
            break;
        }
        case 5:
            /* Load a context and ring its doorbell properly. */
            load_ctx(g, n, g_rand_int_range(r, 1, 3));
            wwr(g, n, GRU_WIN_DOORBELL, GRU_DB_START);
            break;
        case 0:
            wr(g, regs[g_rand_int_range(r, 0, ARRAY_SIZE(regs))], v);
            break;
        case 1:
            cwr(g, n, ctx_regs[g_rand_int_range(r, 0, ARRAY_SIZE(ctx_regs))],
                v);
            break;
        case 2:
            wwr(g, n, 8 * g_rand_int_range(r, 0, 16), v);
            break;
        default:
            qtest_clock_step(g->qts, g_rand_int_range(r, 1, 2000));
            break;
        }
    }
    g_rand_free(r);
    step(g);
    g_assert_cmphex(rd(g, GRU_REG_ID), ==, GRU_MAGIC);
    /* The device still works normally afterwards. */
    invalidate(g, GRU_INV_ALL, 0, 0, 0);
    wr(g, GRU_REG_CTRL, GRU_CTRL_ENABLE);
    cwr(g, 0, GRU_CTX_CMD, GRU_CMD(GRU_CMD_RESET, 0));
    load_ctx(g, 0, 1);
    dropin(g, 1, VA0, pa, RW);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_STORE, 0, 0), VA0, 0, 0, 31, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmphex(qtest_readq(g->qts, pa), ==, 31);
    gru_stop(g);
}

static void test_system_reset(void)
{
    Gru *g = gru_start("");
    uint64_t off;

    load_ctx(g, 0, 1);
    dropin(g, 1, VA0, 0x100000, RW);
    invalidate(g, GRU_INV_ASID, 2, 0, 0);
    start_miss(g, 0, VA0 + PAGE);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_DROPINS), ==, 1);

    qtest_qmp_assert_success(g->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(g->qts, "RESET");
    g_free(g->dev);
    gru_setup_pci(g);

    for (off = GRU_REG_STAT_HITS; off < GRU_REG_STAT_END; off += 8) {
        g_assert_cmpuint(rd(g, off), ==, 0);
    }
    g_assert_cmpuint(rd(g, GRU_REG_INV_GEN), ==, 0);
    g_assert_cmphex(rd(g, GRU_REG_FAULT_PENDING), ==, 0);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_IDLE);
    g_assert_cmpuint(crd(g, 0, GRU_CTX_ASID), ==, 0);
    g_assert_cmphex(probe(g, 1, VA0, NULL), ==, 0);
    g_assert_cmpuint(qom_u64(g, "stat-dropins"), ==, 0);
    /* Nothing left running after reset. */
    step(g);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_MISSES), ==, 0);
    gru_stop(g);
}

static void test_unmigratable(void)
{
    QTestState *qts = qtest_init("-M q35 -device gru-tlb");
    QDict *r = qtest_qmp(qts, "{'execute': 'migrate', 'arguments': "
                         "{'uri': 'exec:cat >/dev/null'}}");
    QDict *err = qdict_get_qdict(r, "error");

    g_assert(err);
    g_assert(strstr(qdict_get_str(err, "desc"), "gru-tlb"));
    qobject_unref(r);
    qtest_quit(qts);
}

static void test_bad_props(void)
{
    static const char *const bad[] = {
        "contexts=0", "contexts=65", "tlb-sets=48", "tlb-sets=0",
        "tlb-ways=0", "tlb-ways=17", "vectors=1", "vectors=33",
        "insn-latency-ns=1000000001",
    };
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    unsigned int i;
    QTestState *qts;

    g_assert(qemu);
    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        g_autofree char *dev = g_strdup_printf("gru-tlb,%s", bad[i]);
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *prop = g_strndup(bad[i], strcspn(bad[i], "="));
        const char *argv[] = {
            qemu, "-M", "q35", "-accel", "qtest", "-display", "none",
            "-nodefaults", "-device", dev, NULL,
        };
        int status;

        g_assert(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT,
                              NULL, NULL, &out, &err, &status, NULL));
        g_assert_cmpint(status, !=, 0);
        /* Refused for the value, with a message naming the property. */
        g_assert(strstr(err, prop));
        g_assert(strstr(err, "must be"));
    }
    /* The limits themselves are accepted. */
    qts = qtest_init("-M q35 -device gru-tlb,contexts=64,tlb-sets=1,"
                     "tlb-ways=16,vectors=32,insn-latency-ns=0 "
                     "-device gru-tlb,contexts=1,tlb-sets=32768,vectors=2");
    qtest_quit(qts);
}

/*
 * q35 with native PCIe hot-plug and the device behind a root port, set up
 * as firmware would: bus numbers, a memory window over the addresses
 * libqos hands BARs out from, and MMCONFIG, so that a memory write (an
 * MSI-X message, say) can reach the port's config space.
 */
static Gru *gru_start_behind_port(QPCIDevice **port, uint8_t *exp)
{
    Gru *g = g_new0(Gru, 1);
    QPCIDevice *mch, *rp;

    g->qs = qtest_pc_boot("-M q35 -m 256M "
                          "-global ICH9-LPC.acpi-pci-hotplug-with-bridge-"
                          "support=off -device pcie-root-port,id=rp0,"
                          "bus=pcie.0,addr=%02x.0,chassis=1,slot=1 "
                          "-device gru-tlb,id=gru0,bus=rp0,addr=00.0",
                          RP_SLOT);
    g->qts = g->qs->qts;
    g->devfn = 1 << 8;      /* bus 1, 00.0 */
    g->msi = guest_alloc(&g->qs->alloc, 4 * GRU_MAX_VECTORS);
    qtest_memset(g->qts, g->msi, 0, 4 * GRU_MAX_VECTORS);

    mch = qpci_device_find(g->qs->pcibus, 0);
    g_assert(mch);
    qpci_config_writel(mch, MCH_PCIEXBAR + 4, 0);
    qpci_config_writel(mch, MCH_PCIEXBAR, ECAM_BASE | 1);
    g_free(mch);

    rp = qpci_device_find(g->qs->pcibus, QPCI_DEVFN(RP_SLOT, 0));
    g_assert(rp);
    qpci_config_writeb(rp, PCI_PRIMARY_BUS, 0);
    qpci_config_writeb(rp, PCI_SECONDARY_BUS, 1);
    qpci_config_writeb(rp, PCI_SUBORDINATE_BUS, 1);
    qpci_config_writew(rp, PCI_MEMORY_BASE, 0xe000);
    qpci_config_writew(rp, PCI_MEMORY_LIMIT, 0xeff0);
    qpci_config_writew(rp, PCI_COMMAND,
                       PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    *exp = qpci_find_capability(rp, PCI_CAP_ID_EXP, 0);
    g_assert(*exp);
    g_assert_cmphex(qtest_readw(g->qts, ECAM(QPCI_DEVFN(RP_SLOT, 0),
                                             PCI_VENDOR_ID)), ==,
                    qpci_config_readw(rp, PCI_VENDOR_ID));
    g_assert(qtest_readw(g->qts, ECAM(QPCI_DEVFN(RP_SLOT, 0),
                                      *exp + PCI_EXP_SLTSTA)) &
             PCI_EXP_SLTSTA_PDS);

    gru_setup_pci(g);
    g_assert_cmphex(g->bar0.addr >> 28, ==, 0xe);
    g_assert_cmphex(g->win.addr >> 28, ==, 0xe);
    *port = rp;
    return g;
}

/* Aim vector v at the port's Slot Control, with "power off". */
static void aim_at_slot_power_off(Gru *g, unsigned int v, uint8_t exp)
{
    aim_vector(g, v, ECAM(QPCI_DEVFN(RP_SLOT, 0), exp + PCI_EXP_SLTCTL),
               PCI_EXP_SLTCTL_PWR_OFF | PCI_EXP_SLTCTL_PWR_IND_OFF);
}

/* QEMU is still there, and the device is gone from the slot and QOM. */
static void assert_unplugged(Gru *g, QPCIDevice *rp, uint8_t exp)
{
    QDict *r;

    g_assert_cmphex(qpci_config_readw(g->dev, PCI_VENDOR_ID), ==, 0xffff);
    g_assert_cmphex(qpci_config_readw(rp, exp + PCI_EXP_SLTSTA) &
                    PCI_EXP_SLTSTA_PDS, ==, 0);
    r = qtest_qmp(g->qts, "{'execute': 'qom-get', 'arguments': "
                  "{'path': '/machine/peripheral/gru0', "
                  "'property': 'type'}}");
    g_assert(qdict_haskey(r, "error"));
    qobject_unref(r);
    /* Nothing of the device is left armed on the virtual clock. */
    step(g);
    step(g);
    g_assert_cmphex(qpci_config_readw(rp, PCI_VENDOR_ID), !=, 0xffff);
}

/*
 * A completion message that powers the slot off unplugs the device from
 * inside the engine tick, with more contexts still to serve in it.
 */
static void test_msi_unplug_tick(void)
{
    QPCIDevice *rp;
    uint8_t exp;
    Gru *g = gru_start_behind_port(&rp, &exp);
    int n;

    aim_at_slot_power_off(g, GRU_VEC_MISC, exp);
    for (n = 0; n < 4; n++) {
        load_ctx(g, n, 1);
        issue(g, n, OP(GRU_OPC_NOP, GRU_IF_IRQ, 0), 0, 0, 0, 0, 0);
    }
    step(g);
    assert_unplugged(g, rp, exp);
    g_free(rp);
    gru_stop(g);
}

/* The same from inside a CTX_CMD write: FAIL ends an IRQ instruction. */
static void test_msi_unplug_ctx_cmd(void)
{
    QPCIDevice *rp;
    uint8_t exp;
    Gru *g = gru_start_behind_port(&rp, &exp);

    load_ctx(g, 0, 1);
    issue(g, 0, OP(GRU_OPC_STORE, GRU_IF_IRQ, 0), VA0, 0, 0, 1, 0);
    step(g);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmpuint(msi_read(g, GRU_VEC_FAULT0), ==,
                     MSI_DATA(GRU_VEC_FAULT0));
    aim_at_slot_power_off(g, GRU_VEC_MISC, exp);
    cwr(g, 0, GRU_CTX_CMD, GRU_CMD(GRU_CMD_FAIL, GRU_ERR_UNMAPPED));
    assert_unplugged(g, rp, exp);
    g_free(rp);
    gru_stop(g);
}

/*
 * A CPU that keeps changing the word makes FADD's compare-and-swap fail;
 * after 16 failures in one step the FADD waits for the next tick.
 */
static void test_fadd_bounded(void)
{
    Gru *g = gru_start("x-fadd-interference=20");
    uint64_t pa = alloc_buf(g, PAGE);

    load_ctx(g, 0, 1);
    dropin(g, 1, VA0, pa, RW);
    qtest_writeq(g->qts, pa, 100);
    issue(g, 0, OP(GRU_OPC_FADD, 0, 0), VA0, 0, 0, 5, 0);
    qtest_clock_step(g->qts, 100);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    g_assert_cmpuint(qtest_readq(g->qts, pa), ==, 116);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_RESULT), ==, 0);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_BYTES), ==, 0);
    qtest_clock_step(g->qts, 100);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_RESULT), ==, 120);
    g_assert_cmpuint(qtest_readq(g->qts, pa), ==, 125);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_HITS), ==, 2);
    g_assert_cmpuint(rd(g, GRU_REG_STAT_BYTES), ==, 8);
    gru_stop(g);
}

/* With insn-latency-ns=0, one timer expiry still runs one tick only. */
static void test_tick_bounded(void)
{
    Gru *g = gru_start("insn-latency-ns=0");
    uint64_t pa = alloc_buf(g, 16 * PAGE), progress;

    load_ctx(g, 0, 1);
    map_range(g, 1, VA0, pa, 16 * PAGE, RW);
    issue(g, 0, OP(GRU_OPC_BSET, 0, 0), VA0, 0, 16 * PAGE, 0x3c, 0);
    qtest_clock_step(g->qts, 1);
    progress = wrd(g, 0, GRU_WIN_PROGRESS);
    g_assert_cmpuint(progress, >=, PAGE);
    g_assert_cmpuint(progress, <=, 2 * PAGE);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_BUSY);
    qtest_clock_step(g->qts, 16);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_STATUS), ==, GRU_ST_DONE);
    g_assert_cmpuint(qtest_readb(g->qts, pa + 16 * PAGE - 1), ==, 0x3c);
    gru_stop(g);
}

/*
 * INV_CMD and AGE_CMD run inside the MMIO write.  A short range looks only
 * at the sets its pages hash to; nothing looks at more than the TLB.
 */
static void test_walk_bounded(void)
{
    Gru *g = gru_start("tlb-sets=32768,tlb-ways=16");
    const uint64_t all = 32768 * 16, probe1 = 3 * 16;
    const uint64_t va2m = 0x40000000ULL, va1g = 0x80000000ULL;

    dropin(g, 1, VA0, 0x100000, RW);
    dropin(g, 1, VA0 + PAGE, 0x101000, RW);
    dropin(g, 2, VA0, 0x102000, RW);
    dropin(g, 1, va2m, 0x200000, RW | GRU_ATTR_SIZE_2M);
    dropin(g, 1, va1g, 0x40000000, RW | GRU_ATTR_SIZE_1G);

    /* One page: one set per size class. */
    invalidate(g, GRU_INV_RANGE, 1, VA0, VA0 + PAGE);
    g_assert_cmpuint(qom_u64(g, "x-tlb-walked"), ==, probe1);
    g_assert_cmphex(probe(g, 1, VA0, NULL), ==, 0);
    g_assert_cmphex(probe(g, 1, VA0 + PAGE, NULL) & 1, ==, 1);
    g_assert_cmphex(probe(g, 2, VA0, NULL) & 1, ==, 1);
    /* A page inside a 2M entry finds it through the 2M set. */
    invalidate(g, GRU_INV_RANGE, 1, va2m + 0x5000, va2m + 0x6000);
    g_assert_cmpuint(qom_u64(g, "x-tlb-walked"), ==, probe1);
    g_assert_cmphex(probe(g, 1, va2m, NULL), ==, 0);
    /* 1 MiB: 256 4K sets, one 2M and one 1G set. */
    wr(g, GRU_REG_AGE_ASID, 1);
    wr(g, GRU_REG_AGE_START, va1g + 0x100000);
    wr(g, GRU_REG_AGE_END, va1g + 0x200000);
    wr(g, GRU_REG_AGE_CMD, GRU_AGE_TEST);
    g_assert_cmpuint(qom_u64(g, "x-tlb-walked"), ==, (256 + 2) * 16);
    g_assert_cmpuint(rd(g, GRU_REG_AGE_RESULT), ==, 0);
    invalidate(g, GRU_INV_RANGE, 1, va1g + 0x100000, va1g + 0x200000);
    g_assert_cmphex(probe(g, 1, va1g, NULL), ==, 0);
    g_assert_cmphex(probe(g, 1, VA0 + PAGE, NULL) & 1, ==, 1);
    /* Longer ranges, ASID and ALL walk the array once. */
    invalidate(g, GRU_INV_RANGE, 1, 0, GRU_VA_LIMIT);
    g_assert_cmpuint(qom_u64(g, "x-tlb-walked"), ==, all);
    g_assert_cmphex(probe(g, 1, VA0 + PAGE, NULL), ==, 0);
    invalidate(g, GRU_INV_ASID, 2, 0, 0);
    g_assert_cmpuint(qom_u64(g, "x-tlb-walked"), ==, all);
    g_assert_cmphex(probe(g, 2, VA0, NULL), ==, 0);
    invalidate(g, GRU_INV_ALL, 0, 0, 0);
    g_assert_cmpuint(qom_u64(g, "x-tlb-walked"), ==, all);
    gru_stop(g);
}

/*
 * Shadow RAM that the chipset has made read-only (PAM "read enable") is
 * RAM behind a read-only alias: the device may read it, never write it.
 */
static void test_dma_readonly(void)
{
    Gru *g = gru_start("");
    QPCIDevice *mch = qpci_device_find(g->qs->pcibus, 0);
    const uint64_t shadow = 0xc0000, pattern = 0x1122334455667788ULL;
    uint64_t pa = alloc_buf(g, PAGE);
    uint8_t pam = qpci_config_readb(mch, MCH_PAM1) & 0xf0;

    qpci_config_writeb(mch, MCH_PAM1, pam | PAM_RW);
    qtest_writeq(g->qts, shadow, pattern);
    qpci_config_writeb(mch, MCH_PAM1, pam | PAM_RE);

    load_ctx(g, 0, 1);
    dropin(g, 1, VA0, shadow, RW);
    dropin(g, 1, VA0 + PAGE, pa, RW);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_LOAD, 0, 0), VA0, 0, 0, 0, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_RESULT), ==, pattern);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_STORE, 0, 0), VA0, 0, 0, 1, 0), ==,
                     GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_VA), ==, VA0);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_INFO), ==, GRU_EXC_WRITE);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_FADD, 0, 0), VA0 + 8, 0, 0, 1, 0),
                     ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_BSET, 0, 0), VA0, 0, 64, 0, 0), ==,
                     GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_BCOPY, 0, 0), VA0, VA0 + PAGE, 64,
                         0, 0), ==, GRU_ST_ERROR);
    g_assert_cmpuint(wrd(g, 0, GRU_WIN_ERROR), ==, GRU_ERR_DMA);
    g_assert_cmphex(wrd(g, 0, GRU_WIN_EXC_INFO), ==, GRU_EXC_WRITE);
    g_assert_cmphex(qtest_readq(g->qts, shadow), ==, pattern);
    g_assert_cmphex(qtest_readq(g->qts, shadow + 8), ==, 0);

    /* Once the chipset makes it writable again, the device may write. */
    qpci_config_writeb(mch, MCH_PAM1, pam | PAM_RW);
    g_assert_cmpuint(run(g, 0, OP(GRU_OPC_STORE, 0, 0), VA0, 0, 0, 1, 0), ==,
                     GRU_ST_DONE);
    g_assert_cmphex(qtest_readq(g->qts, shadow), ==, 1);
    g_free(mch);
    gru_stop(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/gru/reset-values", test_reset_values);
    qtest_add_func("/gru/dropin-hit", test_dropin_hit);
    qtest_add_func("/gru/miss-fault-resume", test_miss_fault_resume);
    qtest_add_func("/gru/miss-stalls-only-its-context", test_miss_isolated);
    qtest_add_func("/gru/stale-dropin", test_stale_dropin);
    qtest_add_func("/gru/bad-dropin", test_bad_dropin);
    qtest_add_func("/gru/invalidate", test_invalidate);
    qtest_add_func("/gru/invalidate-fence", test_invalidate_fence);
    qtest_add_func("/gru/aging", test_aging);
    qtest_add_func("/gru/eviction", test_eviction);
    qtest_add_func("/gru/opcodes", test_opcodes);
    qtest_add_func("/gru/errors-immediate", test_errors_immediate);
    qtest_add_func("/gru/errors-dma", test_errors_dma);
    qtest_add_func("/gru/errors-ctx-cmd", test_errors_cmd);
    qtest_add_func("/gru/engine-enable", test_engine_enable);
    qtest_add_func("/gru/save-restore", test_save_restore);
    qtest_add_func("/gru/access-sizes", test_access_sizes);
    qtest_add_func("/gru/msi-self-target", test_msi_self_target);
    qtest_add_func("/gru/msi-unplug/engine-tick", test_msi_unplug_tick);
    qtest_add_func("/gru/msi-unplug/ctx-cmd", test_msi_unplug_ctx_cmd);
    qtest_add_func("/gru/bounds/fadd", test_fadd_bounded);
    qtest_add_func("/gru/bounds/tick", test_tick_bounded);
    qtest_add_func("/gru/bounds/tlb-walk", test_walk_bounded);
    qtest_add_func("/gru/errors-dma-readonly", test_dma_readonly);
    qtest_add_func("/gru/errors-dma-bus-master-off", test_dma_bus_master_off);
    qtest_add_func("/gru/random-writes", test_random_writes);
    qtest_add_func("/gru/system-reset", test_system_reset);
    qtest_add_func("/gru/unmigratable", test_unmigratable);
    qtest_add_func("/gru/bad-props", test_bad_props);
    return g_test_run();
}
