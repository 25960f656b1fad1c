/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * GRU-style external TLB: the user-visible contract.
 *
 * This header is shared by the QEMU device model, the Linux driver and
 * user space.  It describes the per-context window that a process maps
 * from /dev/gru (the instruction block and its status registers) and the
 * ioctl interface of /dev/gru.  docs/device.md and docs/driver.md are the
 * prose form of the same contract.
 */
#ifndef _UAPI_MISC_GRU_H
#define _UAPI_MISC_GRU_H

#include <linux/types.h>
#include <linux/ioctl.h>

/*
 * Context window.  One 4 KiB page per hardware context, mapped with
 * mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0).
 * All registers are 64 bits wide, little endian, and must be accessed
 * with naturally aligned 64-bit loads and stores.
 */
#define GRU_WINDOW_SIZE		0x1000

/* Instruction block, read-write from user space. */
#define GRU_WIN_OP		0x000	/* opcode, flags, cpu hint */
#define GRU_WIN_ADDR		0x008	/* target (destination) VA */
#define GRU_WIN_SRC		0x010	/* source VA (BCOPY) */
#define GRU_WIN_LEN		0x018	/* length in bytes (BCOPY, BSET) */
#define GRU_WIN_OPERAND0	0x020	/* value / addend / swap / new */
#define GRU_WIN_OPERAND1	0x028	/* CAS compare value */
/* Control and status. */
#define GRU_WIN_DOORBELL	0x040	/* WO: write GRU_DB_START */
#define GRU_WIN_STATUS		0x048	/* RO: GRU_ST_* */
#define GRU_WIN_ERROR		0x050	/* RO: GRU_ERR_* when ERROR/CALLOS */
#define GRU_WIN_RESULT		0x058	/* RO: loaded or old value */
#define GRU_WIN_EXC_VA		0x060	/* RO: VA of the exception */
#define GRU_WIN_EXC_INFO	0x068	/* RO: GRU_EXC_* bits */
#define GRU_WIN_PROGRESS	0x070	/* RO: bytes done (BCOPY, BSET) */

/* GRU_WIN_OP layout */
#define GRU_OP_OPCODE_MASK	0xffULL		/* bits 7:0 */
#define GRU_OP_FLAGS_SHIFT	8		/* bits 15:8 */
#define GRU_OP_FLAGS_MASK	(0xffULL << GRU_OP_FLAGS_SHIFT)
#define GRU_OP_HINT_SHIFT	16		/* bits 23:16: issuing CPU */
#define GRU_OP_HINT_MASK	(0xffULL << GRU_OP_HINT_SHIFT)
/* bits 63:24 are reserved and must be zero (else GRU_ERR_BAD_INSN) */
#define GRU_OP_RSVD_MASK	(~0xffffffULL)

#define GRU_OP_ENCODE(opc, flags, hint)				\
	(((__u64)(opc) & GRU_OP_OPCODE_MASK) |			\
	 (((__u64)(flags) << GRU_OP_FLAGS_SHIFT) & GRU_OP_FLAGS_MASK) | \
	 (((__u64)(hint) << GRU_OP_HINT_SHIFT) & GRU_OP_HINT_MASK))

/* Opcodes */
enum gru_opcode {
	GRU_OPC_NOP	= 0x00,	/* completes without touching memory */
	GRU_OPC_LOAD	= 0x01,	/* RESULT = *(u64 *)ADDR */
	GRU_OPC_STORE	= 0x02,	/* *(u64 *)ADDR = OPERAND0 */
	GRU_OPC_BCOPY	= 0x03,	/* memcpy(ADDR, SRC, LEN), no overlap */
	GRU_OPC_BSET	= 0x04,	/* memset(ADDR, OPERAND0 & 0xff, LEN) */
	GRU_OPC_FADD	= 0x05,	/* RESULT = fetch_add(ADDR, OPERAND0) */
	GRU_OPC_SWAP	= 0x06,	/* RESULT = xchg(ADDR, OPERAND0) */
	GRU_OPC_CAS	= 0x07,	/* RESULT = cmpxchg(ADDR, OPERAND1, OPERAND0) */
	GRU_OPC_MAX	= GRU_OPC_CAS,
};

/* Instruction flags (GRU_WIN_OP bits 15:8) */
#define GRU_IF_IRQ		0x01	/* raise the completion vector when done */
#define GRU_IF_CPU_HINT		0x02	/* the hint field names the issuing CPU */
#define GRU_IF_VALID_MASK	(GRU_IF_IRQ | GRU_IF_CPU_HINT)

/* Doorbell commands */
#define GRU_DB_START		0x1

/* Longest BCOPY/BSET; longer gets GRU_ERR_TOO_LONG. */
#define GRU_INSN_MAX_LEN	(64ULL << 20)

/* GRU_WIN_STATUS values */
enum gru_status {
	GRU_ST_IDLE	= 0,	/* nothing issued since load/reset */
	GRU_ST_BUSY	= 1,	/* running, or stalled on a TLB miss */
	GRU_ST_DONE	= 2,	/* completed successfully */
	GRU_ST_ERROR	= 3,	/* failed: see GRU_WIN_ERROR */
	GRU_ST_CALLOS	= 4,	/* stalled: resolve with GRU_IOC_CALL_OS */
};

/* GRU_WIN_ERROR values: precise failure causes */
enum gru_error {
	GRU_ERR_NONE		= 0,
	GRU_ERR_BAD_OPCODE	= 1,	/* opcode not in enum gru_opcode */
	GRU_ERR_BAD_INSN	= 2,	/* reserved bits or unknown flags set */
	GRU_ERR_MISALIGNED	= 3,	/* 8-byte op on a non-8-byte address */
	GRU_ERR_TOO_LONG	= 4,	/* LEN > GRU_INSN_MAX_LEN */
	GRU_ERR_OVERLAP		= 5,	/* BCOPY source and destination overlap */
	GRU_ERR_KERNEL_ADDR	= 6,	/* address at or above gru_info.va_limit */
	GRU_ERR_UNMAPPED	= 7,	/* no mapping (would be SIGSEGV/MAPERR) */
	GRU_ERR_PROT		= 8,	/* mapping forbids the access */
	GRU_ERR_BUSY		= 9,	/* doorbell while an instruction runs */
	GRU_ERR_NO_CONTEXT	= 10,	/* context not loaded (no ASID) */
	GRU_ERR_ABORTED		= 11,	/* context released or process exiting */
	GRU_ERR_DMA		= 12,	/* translation points outside RAM */
	GRU_ERR_BAD_DOORBELL	= 13,	/* unknown doorbell command */
	GRU_ERR_FAULT		= 14,	/* driver could not resolve (OOM, ...) */
	GRU_ERR_PREEMPTED	= 15,	/* stalled on the OS while others waited
					 * for a context: issue it again */
	GRU_ERR_MAX		= GRU_ERR_PREEMPTED,
};

/* GRU_WIN_EXC_INFO bits */
#define GRU_EXC_WRITE		0x1	/* the access was a write */
#define GRU_EXC_SRC		0x2	/* it was the BCOPY source operand */

/*
 * /dev/gru ioctls.  Each open() is one context bound to the opener's mm.
 * Every ioctl fails with EPERM when called from another mm (a child that
 * inherited the file, or a process it was passed to).
 *
 * Every structure has reserved room: fields a call reads must be zero there
 * (else EINVAL), fields it writes come back zero, so that later versions
 * can give them a meaning.
 */
#define GRU_IOC_MAGIC		0xE7	/* 0xE7 00-06, free in ioctl-number.rst */

/* GRU_IOC_INFO: device geometry. */
struct gru_info {
	__u32 version;		/* GRU_REG_VERSION of the device */
	__u32 hw_contexts;	/* hardware contexts (windows) */
	__u32 tlb_sets;
	__u32 tlb_ways;
	__u32 vectors;		/* MSI-X vectors */
	__u32 window_size;	/* GRU_WINDOW_SIZE */
	__u64 max_len;		/* GRU_INSN_MAX_LEN */
	__u32 asid;		/* this context's current ASID, 0 if unloaded */
	__u32 reserved0;	/* zero */
	__u64 va_limit;		/* lowest VA the device refuses (KERNEL_ADDR) */
	__u32 reserved[4];	/* zero */
};

/* How a context's TLB misses are filled (gru_ctx_opts.fill_mode). */
enum gru_fill_mode {
	GRU_FILL_IRQ	= 0,	/* lockless walk in hard IRQ, worker fallback */
	GRU_FILL_WORKER	= 1,	/* always resolve in the process-context worker */
	GRU_FILL_HMM	= 2,	/* baseline: hmm_range_fault in the worker */
	GRU_FILL_PINNED	= 3,	/* baseline: pin at drop-in, unpin at invalidate */
	GRU_FILL_MAX	= GRU_FILL_PINNED,
};

/* gru_ctx_opts.flags */
#define GRU_OPT_CALLOS		0x1	/* misses the fast path can't fill go to user */
#define GRU_OPT_NULL_FILL	0x2	/* test-only: ack misses without a walk */
#define GRU_OPT_VALID_MASK	(GRU_OPT_CALLOS | GRU_OPT_NULL_FILL)

/* GRU_IOC_SET_OPTS / GRU_IOC_GET_OPTS */
struct gru_ctx_opts {
	__u32 flags;		/* GRU_OPT_* */
	__u32 fill_mode;	/* enum gru_fill_mode */
	__u32 batch;		/* drop in up to this many neighbours (0 = 1) */
	__u32 reserved[5];	/* zero */
};

/* GRU_IOC_CALL_OS: resolve the fault of a context in GRU_ST_CALLOS. */
struct gru_call_os {
	__u64 va;		/* out: the VA resolved */
	__u32 write;		/* out: it was a write */
	__u32 reserved[5];	/* out: zero */
};

/* GRU_IOC_STATS: per-context counters, since open. */
struct gru_ctx_stats {
	__u64 faults;		/* TLB-miss interrupts for this context */
	__u64 fill_irq;		/* drop-ins from the hard-IRQ walk */
	__u64 fill_worker;	/* drop-ins from the process-context worker */
	__u64 fill_callos;	/* drop-ins from GRU_IOC_CALL_OS */
	__u64 fill_hmm;		/* drop-ins in GRU_FILL_HMM mode */
	__u64 fill_pinned;	/* drop-ins in GRU_FILL_PINNED mode */
	__u64 fill_null;	/* misses acked without a walk (NULL_FILL) */
	__u64 fill_batch;	/* extra neighbour drop-ins */
	__u64 retries;		/* walks redone because an invalidation raced */
	__u64 ignored;		/* drop-ins the device rejected as stale */
	__u64 invalidations;	/* device invalidations for this ASID */
	__u64 steals;		/* times this context lost its hardware slot */
	__u64 loads;		/* times it was loaded into a hardware slot */
	__u64 errors;		/* instructions failed by the driver */
	__u64 last_service_ns;	/* device clock: last miss raise -> resume */
	/* Misses the hard-IRQ walk left to the worker or call-OS, by cause: */
	__u64 defer_cpumask;	/* IRQ CPU not in the mm's cpumask: no walk */
	__u64 defer_walk;	/* no usable leaf (not present, COW, clean) */
	__u64 defer_race;	/* invalidations kept racing the walk */
	__u64 preempted;	/* instructions failed with GRU_ERR_PREEMPTED */
	__u64 reserved[4];
};

/* GRU_IOC_TLB_PROBE: look up this context's VA in the device TLB. */
struct gru_tlb_probe {
	__u64 va;		/* in */
	__u32 hit;		/* out: 1 if an entry maps va */
	__u32 size_shift;	/* out: 12, 21 or 30 */
	__u32 writable;		/* out */
	__u32 accessed;		/* out */
	__u64 reserved[2];
};

/* GRU_IOC_WAIT: sleep until the instruction is no longer BUSY. */
struct gru_wait {
	__u32 timeout_ms;	/* in: 0 = do not sleep */
	__u32 status;		/* out: GRU_ST_* */
	__u64 reserved[2];	/* in: zero */
};

#define GRU_IOC_INFO		_IOR(GRU_IOC_MAGIC, 0x00, struct gru_info)
#define GRU_IOC_SET_OPTS	_IOW(GRU_IOC_MAGIC, 0x01, struct gru_ctx_opts)
#define GRU_IOC_GET_OPTS	_IOR(GRU_IOC_MAGIC, 0x02, struct gru_ctx_opts)
#define GRU_IOC_CALL_OS		_IOR(GRU_IOC_MAGIC, 0x03, struct gru_call_os)
#define GRU_IOC_STATS		_IOR(GRU_IOC_MAGIC, 0x04, struct gru_ctx_stats)
#define GRU_IOC_TLB_PROBE	_IOWR(GRU_IOC_MAGIC, 0x05, struct gru_tlb_probe)
#define GRU_IOC_WAIT		_IOWR(GRU_IOC_MAGIC, 0x06, struct gru_wait)

#endif /* _UAPI_MISC_GRU_H */
