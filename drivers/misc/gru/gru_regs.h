/* SPDX-License-Identifier: GPL-2.0 */
/*
 * GRU-style external TLB: BAR0 register map.
 *
 * Shared by the QEMU device model (qemu-hw/) and the Linux driver
 * (drivers/misc/gru/).  Only the kernel touches BAR0; user space sees the
 * per-context windows of BAR2, described in <uapi/misc/gru.h>.
 * docs/device.md is the prose form of this map.
 *
 * All registers are 64 bits wide and little endian; 32-bit accesses to
 * the low half of a register are also accepted.
 */
#ifndef GRU_REGS_H
#define GRU_REGS_H

/* PCI identity (QEMU's experimental vendor ID, as hw/misc/edu.c uses) */
#define GRU_PCI_VENDOR_ID	0x1234
#define GRU_PCI_DEVICE_ID	0x6772
#define GRU_PCI_REVISION	0x01

/* BARs */
#define GRU_BAR_REGS		0	/* control registers, GRU_BAR0_SIZE */
#define GRU_BAR_WINDOWS		2	/* one GRU_WINDOW_SIZE page per context */
#define GRU_BAR_MSIX		4	/* MSI-X table and PBA */
#define GRU_BAR0_SIZE		0x4000

#define GRU_MAX_CONTEXTS	64
#define GRU_MAX_VECTORS		32
#define GRU_MAGIC		0x31555247	/* "GRU1" */
#define GRU_VERSION		0x00010000	/* 1.0 */

/*
 * The device translates 47-bit virtual addresses: an operand at or above
 * this fails with GRU_ERR_KERNEL_ADDR, and no drop-in may map one.  The
 * driver reports it in gru_info.va_limit.
 */
#define GRU_VA_LIMIT		0x800000000000ULL

/* MSI-X vectors */
#define GRU_VEC_MISC		0	/* completion (GRU_IF_IRQ) and errors */
#define GRU_VEC_FAULT0		1	/* first vector usable for faults */

/* ---- Global registers ---- */
#define GRU_REG_ID		0x0000	/* RO: GRU_MAGIC */
#define GRU_REG_VERSION		0x0008	/* RO: GRU_VERSION */
#define GRU_REG_CAPS		0x0010	/* RO: geometry, see GRU_CAPS_* */
#define GRU_REG_CTRL		0x0018	/* RW: GRU_CTRL_* */
#define GRU_REG_FAULT_PENDING	0x0020	/* RO: bit n: context n has a fault */
#define GRU_REG_IRQ_CAUSE	0x0028	/* RW1C: GRU_CAUSE_* */
#define GRU_REG_DONE_PENDING	0x0030	/* RW1C: bit n: context n completed */
#define GRU_REG_CLOCK		0x0038	/* RO: device clock, ns (QEMU virtual) */

#define GRU_CAPS_CONTEXTS(c)	((unsigned int)((c) & 0xff))
#define GRU_CAPS_WAYS(c)	((unsigned int)(((c) >> 8) & 0xff))
#define GRU_CAPS_SETS(c)	((unsigned int)(((c) >> 16) & 0xffff))
#define GRU_CAPS_VECTORS(c)	((unsigned int)(((c) >> 32) & 0xff))

#define GRU_CTRL_ENABLE		0x1	/* engine runs; clear = all contexts stall */

#define GRU_CAUSE_DONE		0x1	/* see GRU_REG_DONE_PENDING */
#define GRU_CAUSE_ERROR		0x2	/* an instruction failed */

/* ---- Invalidation: write ASID/START/END, then CMD; poll STATUS ---- */
#define GRU_REG_INV_ASID	0x0100
#define GRU_REG_INV_START	0x0108	/* first byte (inclusive) */
#define GRU_REG_INV_END		0x0110	/* last byte + 1 (exclusive) */
#define GRU_REG_INV_CMD		0x0118	/* WO: GRU_INV_* */
#define GRU_REG_INV_STATUS	0x0120	/* RO: GRU_INV_STATUS_BUSY while pending */
#define GRU_REG_INV_GEN		0x0128	/* RO: invalidations completed so far */

#define GRU_INV_RANGE		1	/* entries of ASID overlapping [START,END) */
#define GRU_INV_ASID		2	/* every entry of ASID */
#define GRU_INV_ALL		3	/* every entry */
#define GRU_INV_STATUS_BUSY	0x1

/* ---- Drop-in: write the fields, then CMD; read RESULT ---- */
#define GRU_REG_DI_ASID		0x0140
#define GRU_REG_DI_VA		0x0148	/* aligned to the entry size */
#define GRU_REG_DI_PA		0x0150	/* guest physical, aligned likewise */
#define GRU_REG_DI_ATTR		0x0158	/* GRU_ATTR_* */
#define GRU_REG_DI_GEN		0x0160	/* INV_GEN the driver read before its walk */
#define GRU_REG_DI_CMD		0x0168	/* WO: GRU_DI_INSERT */
#define GRU_REG_DI_RESULT	0x0170	/* RO: GRU_DI_* */

#define GRU_DI_INSERT		1

#define GRU_DI_INSTALLED	0
#define GRU_DI_STALE		1	/* a newer invalidation covers it: ignored */
#define GRU_DI_BAD		2	/* misaligned, bad size or ASID 0 */

/* Entry attributes (DI_ATTR, PROBE_RESULT) */
#define GRU_ATTR_SIZE_MASK	0x3
#define GRU_ATTR_SIZE_4K	0x0
#define GRU_ATTR_SIZE_2M	0x1
#define GRU_ATTR_SIZE_1G	0x2
#define GRU_ATTR_READ		0x4
#define GRU_ATTR_WRITE		0x8

/* ---- Accessed-bit aging over an ASID range ---- */
#define GRU_REG_AGE_ASID	0x0180
#define GRU_REG_AGE_START	0x0188
#define GRU_REG_AGE_END		0x0190
#define GRU_REG_AGE_CMD		0x0198	/* WO: GRU_AGE_* */
#define GRU_REG_AGE_RESULT	0x01a0	/* RO: 1 if any entry was accessed */

#define GRU_AGE_TEST		1	/* report, leave bits */
#define GRU_AGE_CLEAR		2	/* report, then clear bits */

/* ---- TLB probe (diagnostics) ---- */
#define GRU_REG_PROBE_ASID	0x01c0
#define GRU_REG_PROBE_VA	0x01c8
#define GRU_REG_PROBE_CMD	0x01d0	/* WO: 1 = look up */
#define GRU_REG_PROBE_RESULT	0x01d8	/* RO: GRU_PROBE_HIT | attr << 1 ... */
#define GRU_REG_PROBE_PA	0x01e0	/* RO: physical address of VA */

#define GRU_PROBE_HIT		0x1
#define GRU_PROBE_ATTR_SHIFT	1	/* GRU_ATTR_* */
#define GRU_PROBE_ACCESSED	0x20

/* ---- CPU -> fault vector map, used with GRU_IF_CPU_HINT ---- */
#define GRU_REG_CPUVEC(i)	(0x0200 + 8 * (i))	/* i < 64 */
#define GRU_CPUVEC_ENTRIES	64

/* ---- Statistics, RO, reset to zero ---- */
#define GRU_REG_STAT_HITS		0x0800
#define GRU_REG_STAT_MISSES		0x0808
#define GRU_REG_STAT_FAULTS		0x0810	/* fault interrupts raised */
#define GRU_REG_STAT_DROPINS		0x0818
#define GRU_REG_STAT_DROPINS_STALE	0x0820
#define GRU_REG_STAT_DROPINS_BAD	0x0828
#define GRU_REG_STAT_INV_RANGE		0x0830
#define GRU_REG_STAT_INV_ASID		0x0838
#define GRU_REG_STAT_INV_ALL		0x0840
#define GRU_REG_STAT_INSN_DONE		0x0848
#define GRU_REG_STAT_INSN_ERROR		0x0850
#define GRU_REG_STAT_EVICTIONS		0x0858
#define GRU_REG_STAT_MISS_NS_TOTAL	0x0860	/* sum of miss service times */
#define GRU_REG_STAT_MISS_NS_LAST	0x0868
#define GRU_REG_STAT_MISS_SERVICED	0x0870	/* resumes after a miss */
#define GRU_REG_STAT_BYTES		0x0878	/* bytes moved by DMA */
#define GRU_REG_STAT_END		0x0880

/* ---- Per-context registers: GRU_REG_CTX(n) + offset ---- */
#define GRU_REG_CTX_BASE	0x1000
#define GRU_REG_CTX_STRIDE	0x80
#define GRU_REG_CTX(n)		(GRU_REG_CTX_BASE + GRU_REG_CTX_STRIDE * (n))

#define GRU_CTX_ASID		0x00	/* RW: ASID [15:0], GRU_CTX_ASID_VALID */
#define GRU_CTX_VECTOR		0x08	/* RW: fault vector without a CPU hint */
#define GRU_CTX_FAULT_VA	0x10	/* RO: faulting VA */
#define GRU_CTX_FAULT_INFO	0x18	/* RO: GRU_FAULT_* */
#define GRU_CTX_FAULT_TIME	0x20	/* RO: device clock at the miss, ns */
#define GRU_CTX_CMD		0x28	/* WO: GRU_CMD_* [7:0], arg [15:8] */
#define GRU_CTX_STATUS		0x30	/* RW: the window's STATUS (save/restore) */
#define GRU_CTX_ERROR		0x38	/* RW: the window's ERROR */
#define GRU_CTX_RESULT		0x40	/* RW: the window's RESULT */
#define GRU_CTX_EXC_VA		0x48	/* RW: the window's EXC_VA */
#define GRU_CTX_EXC_INFO	0x50	/* RW: the window's EXC_INFO */
#define GRU_CTX_PROGRESS	0x58	/* RO: the window's PROGRESS */
#define GRU_CTX_SERVICE_NS	0x60	/* RO: last miss raise -> resume, ns */

#define GRU_CTX_ASID_MASK	0xffffULL
#define GRU_CTX_ASID_VALID	0x80000000ULL		/* bit 31 */

#define GRU_FAULT_WRITE		0x1	/* the missing access is a write */
#define GRU_FAULT_SRC		0x2	/* BCOPY source operand */
#define GRU_FAULT_VALID		0x8000000000000000ULL	/* bit 63 */

/* GRU_CTX_CMD commands; writing any of them clears FAULT_PENDING bit n */
#define GRU_CMD_RESUME		1	/* retry the translation */
#define GRU_CMD_FAIL		2	/* fail: ERROR with arg as GRU_ERR_* */
#define GRU_CMD_CALLOS		3	/* stall as CALLOS, arg as GRU_WIN_ERROR */
#define GRU_CMD_ABORT		4	/* running -> ERROR/ABORTED */
#define GRU_CMD_RESET		5	/* window to IDLE, instruction cleared */
#define GRU_CMD_ACK		6	/* clear the pending bit, stay stalled */
#define GRU_CMD_ARG_SHIFT	8
#define GRU_CMD(cmd, arg)	((cmd) | ((arg) << GRU_CMD_ARG_SHIFT))

#endif /* GRU_REGS_H */
