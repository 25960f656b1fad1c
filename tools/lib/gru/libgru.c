// SPDX-License-Identifier: GPL-2.0
/*
 * libgru: see libgru.h for the API and its error convention.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <gru/libgru.h>

/* The window is device memory: one 64-bit access per register, never merged. */
static inline uint64_t win_rd(struct gru_ctx *ctx, unsigned int off)
{
	return ctx->win[off / 8];
}

static inline void win_wr(struct gru_ctx *ctx, unsigned int off, uint64_t v)
{
	ctx->win[off / 8] = v;
}

static int ioctl_errno(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

int gru_open(struct gru_ctx *ctx, unsigned int lib_flags)
{
	return gru_open_path(ctx, GRU_DEV_PATH, lib_flags);
}

int gru_open_path(struct gru_ctx *ctx, const char *path, unsigned int lib_flags)
{
	void *w;
	int err;

	memset(ctx, 0, sizeof(*ctx));
	ctx->fd = open(path, O_RDWR | O_CLOEXEC);
	if (ctx->fd < 0)
		return -errno;
	w = mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 ctx->fd, 0);
	if (w == MAP_FAILED) {
		err = -errno;
		close(ctx->fd);
		ctx->fd = -1;
		return err;
	}
	ctx->win = w;
	ctx->lib_flags = lib_flags;
	ctx->timeout_ms = GRU_WAIT_DEFAULT_MS;
	return 0;
}

void gru_close(struct gru_ctx *ctx)
{
	if (ctx->win)
		munmap((void *)ctx->win, GRU_WINDOW_SIZE);
	ctx->win = NULL;
	if (ctx->fd >= 0)
		close(ctx->fd);
	ctx->fd = -1;
}

int gru_info(struct gru_ctx *ctx, struct gru_info *info)
{
	memset(info, 0, sizeof(*info));
	return ioctl_errno(ctx->fd, GRU_IOC_INFO, info);
}

int gru_set_opts(struct gru_ctx *ctx, const struct gru_ctx_opts *opts)
{
	int ret = ioctl_errno(ctx->fd, GRU_IOC_SET_OPTS, (void *)opts);

	if (!ret)
		ctx->opt_flags = opts->flags;
	return ret;
}

int gru_get_opts(struct gru_ctx *ctx, struct gru_ctx_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	return ioctl_errno(ctx->fd, GRU_IOC_GET_OPTS, opts);
}

int gru_set_callos(struct gru_ctx *ctx, int on)
{
	struct gru_ctx_opts o;
	int ret = gru_get_opts(ctx, &o);

	if (ret)
		return ret;
	if (on)
		o.flags |= GRU_OPT_CALLOS;
	else
		o.flags &= ~GRU_OPT_CALLOS;
	return gru_set_opts(ctx, &o);
}

int gru_issue(struct gru_ctx *ctx, const struct gru_insn *insn)
{
	uint64_t st = win_rd(ctx, GRU_WIN_STATUS);
	uint64_t op;
	int cpu;

	if (st == GRU_ST_BUSY || st == GRU_ST_CALLOS)
		return -EBUSY;

	if (insn->raw_op) {
		op = insn->raw_op;
	} else {
		unsigned int flags = insn->flags;
		unsigned int hint = 0;

		cpu = sched_getcpu();
		if (!(ctx->lib_flags & GRU_LIB_NO_HINT) && cpu >= 0) {
			flags |= GRU_IF_CPU_HINT;
			hint = (unsigned int)cpu;
		}
		op = GRU_OP_ENCODE(insn->opcode, flags, hint);
	}
	win_wr(ctx, GRU_WIN_ADDR, insn->addr);
	win_wr(ctx, GRU_WIN_SRC, insn->src);
	win_wr(ctx, GRU_WIN_LEN, insn->len);
	win_wr(ctx, GRU_WIN_OPERAND0, insn->op0);
	win_wr(ctx, GRU_WIN_OPERAND1, insn->op1);
	win_wr(ctx, GRU_WIN_OP, op);
	/* The doorbell must not overtake the instruction words. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	win_wr(ctx, GRU_WIN_DOORBELL, GRU_DB_START);
	return 0;
}

void gru_ring(struct gru_ctx *ctx, uint64_t cmd)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	win_wr(ctx, GRU_WIN_DOORBELL, cmd);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Backoff: a miss served on this CPU's interrupt completes within a few
 * polls, so spin first; a worker or call-OS fill takes a scheduler round
 * trip, so yield next; a long BCOPY may take far longer, so finally sleep,
 * doubling up to 1 ms, to leave the (emulated) CPUs to the device.
 */
static void backoff(unsigned long *round)
{
	unsigned long r = (*round)++;

	if (r < 256) {
		__builtin_ia32_pause();
	} else if (r < 512) {
		sched_yield();
	} else {
		unsigned long us = 1UL << ((r - 512) / 64 < 10 ? (r - 512) / 64 : 10);
		struct timespec ts = { 0, (long)us * 1000 };

		nanosleep(&ts, NULL);
	}
}

int gru_wait(struct gru_ctx *ctx, uint64_t *result)
{
	uint64_t deadline = 0, st;
	unsigned long round = 0;
	int ret;

	for (;;) {
		st = win_rd(ctx, GRU_WIN_STATUS);
		switch (st) {
		case GRU_ST_DONE:
			if (result)
				*result = win_rd(ctx, GRU_WIN_RESULT);
			return 0;
		case GRU_ST_ERROR:
			return gru_err_to_errno(win_rd(ctx, GRU_WIN_ERROR));
		case GRU_ST_IDLE:
			return -ENODATA;
		case GRU_ST_CALLOS:
			if (!(ctx->lib_flags & GRU_LIB_AUTO_CALLOS) ||
			    !(ctx->opt_flags & GRU_OPT_CALLOS))
				return -EAGAIN;
			ret = gru_call_os(ctx, NULL);
			if (!ret) {
				ctx->callos_resolved++;
				round = 0;
				continue;
			}
			/* An unresolvable fault fails the instruction itself. */
			st = win_rd(ctx, GRU_WIN_STATUS);
			if (st == GRU_ST_ERROR)
				return gru_err_to_errno(win_rd(ctx, GRU_WIN_ERROR));
			return ret;
		case GRU_ST_BUSY:
		default:
			break;
		}
		if (!deadline)
			deadline = now_ms() + ctx->timeout_ms;
		else if ((round & 63) == 0 && now_ms() > deadline)
			return -ETIMEDOUT;
		backoff(&round);
	}
}

int gru_run(struct gru_ctx *ctx, const struct gru_insn *insn, uint64_t *result)
{
	int ret = gru_issue(ctx, insn);

	return ret ? ret : gru_wait(ctx, result);
}

int gru_exception(struct gru_ctx *ctx, struct gru_exc *exc)
{
	exc->status = win_rd(ctx, GRU_WIN_STATUS);
	exc->error = win_rd(ctx, GRU_WIN_ERROR);
	exc->va = win_rd(ctx, GRU_WIN_EXC_VA);
	exc->info = win_rd(ctx, GRU_WIN_EXC_INFO);
	exc->progress = win_rd(ctx, GRU_WIN_PROGRESS);
	exc->result = win_rd(ctx, GRU_WIN_RESULT);
	return 0;
}

int gru_call_os(struct gru_ctx *ctx, struct gru_call_os *out)
{
	struct gru_call_os c;
	int ret;

	memset(&c, 0, sizeof(c));
	ret = ioctl_errno(ctx->fd, GRU_IOC_CALL_OS, &c);
	if (!ret && out)
		*out = c;
	return ret;
}

int gru_stats(struct gru_ctx *ctx, struct gru_ctx_stats *st)
{
	memset(st, 0, sizeof(*st));
	return ioctl_errno(ctx->fd, GRU_IOC_STATS, st);
}

int gru_tlb_probe(struct gru_ctx *ctx, uint64_t va, struct gru_tlb_probe *probe)
{
	memset(probe, 0, sizeof(*probe));
	probe->va = va;
	return ioctl_errno(ctx->fd, GRU_IOC_TLB_PROBE, probe);
}

int gru_wait_ioctl(struct gru_ctx *ctx, uint32_t timeout_ms, uint32_t *status)
{
	struct gru_wait w = { .timeout_ms = timeout_ms };
	int ret = ioctl_errno(ctx->fd, GRU_IOC_WAIT, &w);

	if (!ret && status)
		*status = w.status;
	return ret;
}

int gru_nop(struct gru_ctx *ctx)
{
	struct gru_insn i = { .opcode = GRU_OPC_NOP };

	return gru_run(ctx, &i, NULL);
}

int gru_load(struct gru_ctx *ctx, const void *addr, uint64_t *val)
{
	struct gru_insn i = { .opcode = GRU_OPC_LOAD, .addr = (uintptr_t)addr };

	return gru_run(ctx, &i, val);
}

int gru_store(struct gru_ctx *ctx, void *addr, uint64_t val)
{
	struct gru_insn i = {
		.opcode = GRU_OPC_STORE, .addr = (uintptr_t)addr, .op0 = val,
	};

	return gru_run(ctx, &i, NULL);
}

int gru_bcopy(struct gru_ctx *ctx, void *dst, const void *src, size_t len)
{
	struct gru_insn i = {
		.opcode = GRU_OPC_BCOPY, .addr = (uintptr_t)dst,
		.src = (uintptr_t)src, .len = len,
	};

	return gru_run(ctx, &i, NULL);
}

int gru_bset(struct gru_ctx *ctx, void *dst, int c, size_t len)
{
	struct gru_insn i = {
		.opcode = GRU_OPC_BSET, .addr = (uintptr_t)dst,
		.op0 = (uint8_t)c, .len = len,
	};

	return gru_run(ctx, &i, NULL);
}

int gru_fadd(struct gru_ctx *ctx, void *addr, uint64_t add, uint64_t *old)
{
	struct gru_insn i = {
		.opcode = GRU_OPC_FADD, .addr = (uintptr_t)addr, .op0 = add,
	};

	return gru_run(ctx, &i, old);
}

int gru_swap(struct gru_ctx *ctx, void *addr, uint64_t val, uint64_t *old)
{
	struct gru_insn i = {
		.opcode = GRU_OPC_SWAP, .addr = (uintptr_t)addr, .op0 = val,
	};

	return gru_run(ctx, &i, old);
}

int gru_cas(struct gru_ctx *ctx, void *addr, uint64_t cmp, uint64_t val,
	    uint64_t *old)
{
	struct gru_insn i = {
		.opcode = GRU_OPC_CAS, .addr = (uintptr_t)addr,
		.op0 = val, .op1 = cmp,
	};

	return gru_run(ctx, &i, old);
}

int gru_err_to_errno(uint64_t err)
{
	switch (err) {
	case GRU_ERR_BAD_OPCODE:
	case GRU_ERR_BAD_INSN:
	case GRU_ERR_BAD_DOORBELL:
	case GRU_ERR_MISALIGNED:
	case GRU_ERR_OVERLAP:
		return -EINVAL;
	case GRU_ERR_TOO_LONG:
		return -E2BIG;
	case GRU_ERR_KERNEL_ADDR:
	case GRU_ERR_UNMAPPED:
		return -EFAULT;
	case GRU_ERR_PROT:
		return -EACCES;
	case GRU_ERR_NO_CONTEXT:
		return -ENXIO;
	case GRU_ERR_ABORTED:
		return -ECANCELED;
	case GRU_ERR_DMA:
		return -EIO;
	case GRU_ERR_FAULT:
		return -ENOMEM;
	case GRU_ERR_BUSY:
		return -EBUSY;
	case GRU_ERR_PREEMPTED:
		return -EAGAIN;
	default:
		return -EPROTO;
	}
}

static const char *const err_names[] = {
	[GRU_ERR_NONE] = "NONE",
	[GRU_ERR_BAD_OPCODE] = "BAD_OPCODE",
	[GRU_ERR_BAD_INSN] = "BAD_INSN",
	[GRU_ERR_MISALIGNED] = "MISALIGNED",
	[GRU_ERR_TOO_LONG] = "TOO_LONG",
	[GRU_ERR_OVERLAP] = "OVERLAP",
	[GRU_ERR_KERNEL_ADDR] = "KERNEL_ADDR",
	[GRU_ERR_UNMAPPED] = "UNMAPPED",
	[GRU_ERR_PROT] = "PROT",
	[GRU_ERR_BUSY] = "BUSY",
	[GRU_ERR_NO_CONTEXT] = "NO_CONTEXT",
	[GRU_ERR_ABORTED] = "ABORTED",
	[GRU_ERR_DMA] = "DMA",
	[GRU_ERR_BAD_DOORBELL] = "BAD_DOORBELL",
	[GRU_ERR_FAULT] = "FAULT",
	[GRU_ERR_PREEMPTED] = "PREEMPTED",
};

const char *gru_err_name(uint64_t err)
{
	return err <= GRU_ERR_MAX ? err_names[err] : "?";
}

const char *gru_status_name(uint64_t st)
{
	static const char *const n[] = {
		"IDLE", "BUSY", "DONE", "ERROR", "CALLOS",
	};

	return st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

const char *gru_opcode_name(unsigned int opc)
{
	static const char *const n[] = {
		"NOP", "LOAD", "STORE", "BCOPY", "BSET", "FADD", "SWAP", "CAS",
	};

	return opc <= GRU_OPC_MAX ? n[opc] : "?";
}
