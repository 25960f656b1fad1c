/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libgru: user-space access to the GRU external TLB through /dev/gru.
 *
 * One struct gru_ctx is one open() of /dev/gru: a device context bound to
 * the calling process's mm, with its 4 KiB instruction window mapped.
 * Instructions are issued by writing the window's instruction words and
 * ringing the doorbell; completion is polled on the window's STATUS.
 *
 * Error convention: every function returns 0 (or a documented
 * non-negative value) on success and a negative errno value on failure.
 * A device error status (GRU_ST_ERROR with a GRU_ERR_* code in the
 * window) maps to errno values as follows (gru_err_to_errno()):
 *
 *   GRU_ERR_BAD_OPCODE    -EINVAL     opcode not in enum gru_opcode
 *   GRU_ERR_BAD_INSN      -EINVAL     reserved bits or unknown flags
 *   GRU_ERR_BAD_DOORBELL  -EINVAL     unknown doorbell command
 *   GRU_ERR_MISALIGNED    -EINVAL     8-byte op (LOAD, STORE, FADD, SWAP,
 *                                     CAS) on an address not 8-byte aligned;
 *                                     BCOPY/BSET have no alignment rule
 *   GRU_ERR_OVERLAP       -EINVAL     BCOPY source and destination overlap
 *   GRU_ERR_TOO_LONG      -E2BIG      LEN > GRU_INSN_MAX_LEN
 *   GRU_ERR_KERNEL_ADDR   -EFAULT     an operand byte >= gru_info.va_limit
 *   GRU_ERR_UNMAPPED      -EFAULT     no VMA covers the address
 *   GRU_ERR_PROT          -EACCES     the VMA forbids the access
 *   GRU_ERR_NO_CONTEXT    -ENXIO      context has no ASID (not loaded)
 *   GRU_ERR_ABORTED       -ECANCELED  context released or process exiting
 *   GRU_ERR_DMA           -EIO        translation points outside RAM
 *   GRU_ERR_FAULT         -ENOMEM     the driver could not resolve the
 *                                     fault (out of memory, ...)
 *   GRU_ERR_BUSY          -EBUSY      doorbell while an instruction ran
 *   unknown code          -EPROTO
 *
 * Since -EINVAL and -EFAULT each stand for several device codes,
 * gru_exception() gives the precise GRU_ERR_* and the faulting VA.
 * Library-level conditions: -EBUSY from gru_issue() when the previous
 * instruction has not completed, -ETIMEDOUT from gru_wait() when it did
 * not complete in time, -EAGAIN from gru_wait() when the instruction is
 * stalled in GRU_ST_CALLOS and auto-resolve is off.
 */
#ifndef LIBGRU_H
#define LIBGRU_H

#include <stddef.h>
#include <stdint.h>
#include <misc/gru.h>

#define GRU_DEV_PATH	"/dev/gru"

/* gru_open() flags */
#define GRU_LIB_AUTO_CALLOS	0x1	/* gru_wait() resolves CALLOS itself */
#define GRU_LIB_NO_HINT		0x2	/* don't set GRU_IF_CPU_HINT */

/* Default gru_wait() timeout (ms); generous because the guest runs on TCG */
#define GRU_WAIT_DEFAULT_MS	30000

struct gru_ctx {
	int fd;
	volatile uint64_t *win;		/* the mapped window */
	unsigned int lib_flags;		/* GRU_LIB_* */
	uint32_t opt_flags;		/* last GRU_OPT_* set via gru_set_opts */
	unsigned int timeout_ms;	/* gru_wait() bound */
	uint64_t callos_resolved;	/* CALL_OS ioctls made by gru_wait */
};

/* One instruction, in the window's terms. */
struct gru_insn {
	uint8_t opcode;		/* enum gru_opcode */
	uint8_t flags;		/* GRU_IF_*; GRU_IF_CPU_HINT is added by gru_issue */
	uint64_t addr;		/* GRU_WIN_ADDR */
	uint64_t src;		/* GRU_WIN_SRC */
	uint64_t len;		/* GRU_WIN_LEN */
	uint64_t op0;		/* GRU_WIN_OPERAND0 */
	uint64_t op1;		/* GRU_WIN_OPERAND1 */
	uint64_t raw_op;	/* if non-zero, written to GRU_WIN_OP verbatim */
};

/* Exception detail of the last instruction, read from the window. */
struct gru_exc {
	uint64_t status;	/* GRU_ST_* */
	uint64_t error;		/* GRU_ERR_* (ERROR, CALLOS) */
	uint64_t va;		/* GRU_WIN_EXC_VA */
	uint64_t info;		/* GRU_EXC_* bits */
	uint64_t progress;	/* bytes done (BCOPY, BSET) */
	uint64_t result;	/* GRU_WIN_RESULT */
};

/**
 * gru_open() - open /dev/gru and map this context's window
 * @ctx: filled in; pass to every other call
 * @lib_flags: GRU_LIB_* flags
 *
 * mmap()s GRU_WINDOW_SIZE bytes at offset 0, MAP_SHARED, read-write.
 * Return: 0, or -errno of open() (-ENOENT: driver not loaded) or mmap().
 */
int gru_open(struct gru_ctx *ctx, unsigned int lib_flags);

/**
 * gru_open_path() - gru_open() of another device node (/dev/gru1, ...)
 * @ctx: filled in
 * @path: the device node
 * @lib_flags: GRU_LIB_* flags
 * Return: as gru_open().
 */
int gru_open_path(struct gru_ctx *ctx, const char *path, unsigned int lib_flags);

/**
 * gru_close() - unmap the window and close the context
 * @ctx: an opened context; safe to call twice
 */
void gru_close(struct gru_ctx *ctx);

/**
 * gru_info() - device geometry and this context's ASID (GRU_IOC_INFO)
 * Return: 0 or -errno of the ioctl.
 */
int gru_info(struct gru_ctx *ctx, struct gru_info *info);

/**
 * gru_set_opts() - set fill mode and flags (GRU_IOC_SET_OPTS)
 * Also remembers GRU_OPT_CALLOS so gru_wait() knows whether CALLOS is
 * expected.  Return: 0, -EINVAL for unknown flags/mode or non-zero
 * reserved fields, -EOPNOTSUPP for a mode the driver lacks.
 */
int gru_set_opts(struct gru_ctx *ctx, const struct gru_ctx_opts *opts);

/**
 * gru_get_opts() - read back the options (GRU_IOC_GET_OPTS)
 * Return: 0 or -errno of the ioctl.
 */
int gru_get_opts(struct gru_ctx *ctx, struct gru_ctx_opts *opts);

/**
 * gru_set_callos() - switch call-OS mode on or off, keeping other options
 * Return: as gru_set_opts().
 */
int gru_set_callos(struct gru_ctx *ctx, int on);

/**
 * gru_issue() - write an instruction into the window and ring the doorbell
 * @ctx: context
 * @insn: the instruction
 *
 * Writes every instruction word, then GRU_DB_START to GRU_WIN_DOORBELL.
 * Unless GRU_LIB_NO_HINT, GRU_IF_CPU_HINT and sched_getcpu() are added so
 * the fault interrupt lands on this CPU.  Does not wait.
 * Return: 0, or -EBUSY if the previous instruction is still BUSY/CALLOS
 * (the device would drop the doorbell).
 */
int gru_issue(struct gru_ctx *ctx, const struct gru_insn *insn);

/**
 * gru_ring() - write a raw doorbell command (tests of GRU_ERR_BAD_DOORBELL)
 */
void gru_ring(struct gru_ctx *ctx, uint64_t cmd);

/**
 * gru_wait() - wait for the issued instruction to finish
 * @ctx: context
 * @result: if non-NULL, receives GRU_WIN_RESULT on success
 *
 * Spins on GRU_WIN_STATUS with a bounded backoff (busy polls, then
 * sched_yield, then sleeps of up to 1 ms) for at most ctx->timeout_ms.
 * On GRU_ST_CALLOS with GRU_LIB_AUTO_CALLOS set and the context in
 * call-OS mode, calls GRU_IOC_CALL_OS and keeps waiting; if that ioctl
 * fails and the instruction is not failed by it, its -errno is returned.
 * Return: 0 on GRU_ST_DONE; the mapped -errno (see top of file) on
 * GRU_ST_ERROR; -EAGAIN when stalled in CALLOS without auto-resolve;
 * -ETIMEDOUT if still BUSY at the deadline; -ENODATA if nothing was
 * issued (IDLE).
 */
int gru_wait(struct gru_ctx *ctx, uint64_t *result);

/**
 * gru_run() - gru_issue() then gru_wait()
 * Return: as gru_issue() or gru_wait().
 */
int gru_run(struct gru_ctx *ctx, const struct gru_insn *insn, uint64_t *result);

/**
 * gru_exception() - read the status and exception detail from the window
 * Return: 0.
 */
int gru_exception(struct gru_ctx *ctx, struct gru_exc *exc);

/**
 * gru_call_os() - resolve a CALLOS stall in this process (GRU_IOC_CALL_OS)
 * @out: if non-NULL, receives the VA resolved and whether it was a write
 *
 * The driver faults the page in from this process's context and resumes
 * the instruction, or fails it (UNMAPPED, PROT, ...) when the fault can't
 * be resolved; gru_wait() then reports the outcome.
 * Return: 0 once the stall is handled; -EINVAL if the context is not
 * stalled in CALLOS; -EPERM from a process other than the opener.
 */
int gru_call_os(struct gru_ctx *ctx, struct gru_call_os *out);

/**
 * gru_stats() - per-context counters (GRU_IOC_STATS)
 * Return: 0 or -errno of the ioctl.
 */
int gru_stats(struct gru_ctx *ctx, struct gru_ctx_stats *st);

/**
 * gru_tlb_probe() - look up @va of this context in the device TLB
 * @probe: filled in (hit, size_shift, writable, accessed)
 * Return: 0 or -errno of the ioctl.
 */
int gru_tlb_probe(struct gru_ctx *ctx, uint64_t va, struct gru_tlb_probe *probe);

/**
 * gru_wait_ioctl() - sleep in the driver until not BUSY (GRU_IOC_WAIT)
 * @timeout_ms: 0 = don't sleep
 * @status: receives GRU_ST_*
 * Return: 0 or -errno of the ioctl.
 */
int gru_wait_ioctl(struct gru_ctx *ctx, uint32_t timeout_ms, uint32_t *status);

/*
 * Convenience operations: issue and wait.  Each returns 0 or the -errno
 * of gru_issue()/gru_wait().  @old receives the previous value for the
 * atomics and may be NULL.
 */
int gru_nop(struct gru_ctx *ctx);
int gru_load(struct gru_ctx *ctx, const void *addr, uint64_t *val);
int gru_store(struct gru_ctx *ctx, void *addr, uint64_t val);
int gru_bcopy(struct gru_ctx *ctx, void *dst, const void *src, size_t len);
int gru_bset(struct gru_ctx *ctx, void *dst, int c, size_t len);
int gru_fadd(struct gru_ctx *ctx, void *addr, uint64_t add, uint64_t *old);
int gru_swap(struct gru_ctx *ctx, void *addr, uint64_t val, uint64_t *old);
int gru_cas(struct gru_ctx *ctx, void *addr, uint64_t cmp, uint64_t val,
	    uint64_t *old);

/**
 * gru_err_to_errno() - map a GRU_ERR_* code to the -errno listed above
 */
int gru_err_to_errno(uint64_t err);

/**
 * gru_err_name() - the GRU_ERR_* name of @err, for messages
 */
const char *gru_err_name(uint64_t err);

/**
 * gru_status_name() - the GRU_ST_* name of @st, for messages
 */
const char *gru_status_name(uint64_t st);

/**
 * gru_opcode_name() - the GRU_OPC_* name of @opc, for messages
 */
const char *gru_opcode_name(unsigned int opc);

#endif /* LIBGRU_H */
