// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input: every ioctl, the mmap of the window and every instruction
 * field, given wrong values, fail with the documented error and leave all
 * other data unchanged.  The runner checks that the kernel log stays clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#define KADDR	0xffff888000000000ULL

FIXTURE(bad)
{
	struct gru_ctx ctx;
	uint8_t *buf;		/* 4 pages RW, filled with a pattern */
	uint8_t *copy;		/* the pattern, to prove nothing changed */
	size_t size;
};

FIXTURE_SETUP(bad)
{
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	ASSERT_EQ(0, gru_open(&self->ctx, GRU_LIB_AUTO_CALLOS));
	self->size = 4 * PAGE_SZ;
	self->buf = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	self->copy = malloc(self->size);
	ASSERT_NE(NULL, self->copy);
	for (size_t i = 0; i < self->size; i++)
		self->buf[i] = (uint8_t)(i * 13 + 1);
	memcpy(self->copy, self->buf, self->size);
}

FIXTURE_TEARDOWN(bad)
{
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, self->size);
	free(self->copy);
	if (self->ctx.win)
		gru_close(&self->ctx);
}

static int raw_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

/* Unknown ioctl numbers, wrong magic and wrong argument size: -ENOTTY. */
TEST_F(bad, unknown_ioctls_get_enotty)
{
	char arg[256] = { 0 };
	int fd = self->ctx.fd;

	EXPECT_EQ(-ENOTTY, raw_ioctl(fd, _IOR(GRU_IOC_MAGIC, 0x3f, struct gru_info), arg));
	EXPECT_EQ(-ENOTTY, raw_ioctl(fd, _IOR('x', 0x00, struct gru_info), arg));
	EXPECT_EQ(-ENOTTY, raw_ioctl(fd, _IOR(GRU_IOC_MAGIC, 0x00, char[3]), arg));
	EXPECT_EQ(-ENOTTY, raw_ioctl(fd, _IOW(GRU_IOC_MAGIC, 0x04, struct gru_ctx_stats), arg));
	EXPECT_EQ(-ENOTTY, raw_ioctl(fd, _IO(GRU_IOC_MAGIC, 0x01), arg));
	EXPECT_EQ(-ENOTTY, raw_ioctl(fd, TCGETS, arg));
	ASSERT_EQ(0, gru_nop(&self->ctx));
}

/* Every ioctl given an unusable user pointer: -EFAULT, no crash. */
TEST_F(bad, ioctls_with_bad_pointers_get_efault)
{
	static const unsigned long reqs[] = {
		GRU_IOC_INFO, GRU_IOC_SET_OPTS, GRU_IOC_GET_OPTS, GRU_IOC_STATS,
		GRU_IOC_TLB_PROBE, GRU_IOC_WAIT,
	};
	void *ptrs[] = { NULL, (void *)1, (void *)(uintptr_t)KADDR, NULL };
	struct gru_ctx_opts o;
	int fd = self->ctx.fd;

	/* a read-only page: the ioctls that write back must fault too */
	ptrs[3] = mmap(NULL, PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ptrs[3]);
	for (unsigned int r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
		for (int p = 0; p < 3; p++) {
			EXPECT_EQ(-EFAULT, raw_ioctl(fd, reqs[r], ptrs[p]))
				TH_LOG("ioctl %#lx ptr %p", reqs[r], ptrs[p]);
		}
		if (reqs[r] != GRU_IOC_SET_OPTS) {
			EXPECT_EQ(-EFAULT, raw_ioctl(fd, reqs[r], ptrs[3]))
				TH_LOG("ioctl %#lx read-only buffer", reqs[r]);
		}
	}
	munmap(ptrs[3], PAGE_SZ);
	ASSERT_EQ(0, gru_get_opts(&self->ctx, &o));
	EXPECT_EQ(0, o.flags);
	EXPECT_EQ(GRU_FILL_IRQ, o.fill_mode);
}

/* SET_OPTS with unknown flags, modes or reserved fields: -EINVAL, unchanged. */
TEST_F(bad, set_opts_rejects_reserved_and_unknown)
{
	struct gru_ctx_opts o, got;

	memset(&o, 0, sizeof(o));
	o.flags = GRU_OPT_CALLOS;
	ASSERT_EQ(0, gru_set_opts(&self->ctx, &o));

	memset(&o, 0, sizeof(o));
	o.flags = 0x80;
	EXPECT_EQ(-EINVAL, gru_set_opts(&self->ctx, &o));
	memset(&o, 0, sizeof(o));
	o.fill_mode = GRU_FILL_MAX + 1;
	EXPECT_EQ(-EINVAL, gru_set_opts(&self->ctx, &o));
	memset(&o, 0, sizeof(o));
	o.fill_mode = 0xffffffff;
	EXPECT_EQ(-EINVAL, gru_set_opts(&self->ctx, &o));
	for (int i = 0; i < 5; i++) {
		memset(&o, 0, sizeof(o));
		o.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, gru_set_opts(&self->ctx, &o)) {
			TH_LOG("reserved[%d]", i);
		}
	}
	ASSERT_EQ(0, gru_get_opts(&self->ctx, &got));
	EXPECT_EQ(GRU_OPT_CALLOS, got.flags);
	EXPECT_EQ(GRU_FILL_IRQ, got.fill_mode);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(0, got.reserved[i]);
}

static bool module_has_param(const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "/sys/module/gru_tlb/parameters/%s", name);
	return access(p, F_OK) == 0;
}

/*
 * The test hooks exist in a GRU_TLB_DEBUG build only.  GRU_EXPECT_BUILD
 * (make check sets it for each boot) says which module the guest loaded,
 * so that a production module that grew a hook, or a debug one that lost
 * one, fails here.
 */
TEST_F(bad, test_hooks_only_in_debug_build)
{
	const char *want = getenv("GRU_EXPECT_BUILD");
	struct gru_ctx_opts o, got;
	bool debug;

	if (!want)
		SKIP(return, "GRU_EXPECT_BUILD (debug or production) not set");
	debug = !strcmp(want, "debug");
	ASSERT_TRUE(debug || !strcmp(want, "production"));

	EXPECT_EQ(debug, module_has_param("max_asid"));
	EXPECT_EQ(debug, module_has_param("asid_wrap_delay_us"));
	/* The coherency breakers are fault points, never parameters. */
	EXPECT_FALSE(module_has_param("no_seq_check"));
	EXPECT_FALSE(module_has_param("no_post_inval"));
	if (!debug) {
		EXPECT_NE(0, access("/sys/kernel/debug/gru/fail_seq_check", F_OK));
		EXPECT_NE(0, access("/sys/kernel/debug/gru/fail_post_inval", F_OK));
	}

	memset(&o, 0, sizeof(o));
	o.flags = GRU_OPT_CALLOS;
	ASSERT_EQ(0, gru_set_opts(&self->ctx, &o));
	memset(&o, 0, sizeof(o));
	o.fill_mode = GRU_FILL_PINNED;
	EXPECT_EQ(debug ? 0 : -EOPNOTSUPP, gru_set_opts(&self->ctx, &o));
	memset(&o, 0, sizeof(o));
	o.flags = GRU_OPT_NULL_FILL;
	EXPECT_EQ(debug ? 0 : -EOPNOTSUPP, gru_set_opts(&self->ctx, &o));
	if (!debug) {
		memset(&o, 0, sizeof(o));
		o.fill_mode = GRU_FILL_HMM;
		EXPECT_EQ(-EOPNOTSUPP, gru_set_opts(&self->ctx, &o));
		/* A refused mode leaves the options as they were. */
		ASSERT_EQ(0, gru_get_opts(&self->ctx, &got));
		EXPECT_EQ(GRU_OPT_CALLOS, got.flags);
		EXPECT_EQ(GRU_FILL_IRQ, got.fill_mode);
	}
	memset(&o, 0, sizeof(o));
	o.flags = GRU_OPT_CALLOS;
	EXPECT_EQ(0, gru_set_opts(&self->ctx, &o));
}

/* CALL_OS without a CALLOS stall, and with reserved bits: refused. */
TEST_F(bad, call_os_without_stall_is_refused)
{
	struct gru_call_os c;
	int ret;

	memset(&c, 0, sizeof(c));
	ret = raw_ioctl(self->ctx.fd, GRU_IOC_CALL_OS, &c);
	EXPECT_EQ(-EINVAL, ret);
	ASSERT_EQ(0, gru_nop(&self->ctx));
	ret = raw_ioctl(self->ctx.fd, GRU_IOC_CALL_OS, &c);
	EXPECT_EQ(-EINVAL, ret);
	ASSERT_EQ(0, gru_nop(&self->ctx));
}

/* TLB_PROBE with reserved fields set: -EINVAL. */
TEST_F(bad, tlb_probe_rejects_reserved)
{
	struct gru_tlb_probe p;

	memset(&p, 0, sizeof(p));
	p.va = (uintptr_t)self->buf;
	p.reserved[0] = 1;
	EXPECT_EQ(-EINVAL, raw_ioctl(self->ctx.fd, GRU_IOC_TLB_PROBE, &p));
	memset(&p, 0, sizeof(p));
	p.va = (uintptr_t)self->buf;
	EXPECT_EQ(0, raw_ioctl(self->ctx.fd, GRU_IOC_TLB_PROBE, &p));
}

/* WAIT on an idle context does not sleep and reports the status. */
TEST_F(bad, wait_on_idle_returns_status)
{
	uint32_t st = 99;

	ASSERT_EQ(0, gru_wait_ioctl(&self->ctx, 0, &st));
	EXPECT_TRUE(st == GRU_ST_IDLE || st == GRU_ST_DONE);
	ASSERT_EQ(0, gru_nop(&self->ctx));
	ASSERT_EQ(0, gru_wait_ioctl(&self->ctx, 100, &st));
	EXPECT_EQ(GRU_ST_DONE, st);
}

/* Reserved room: WAIT refuses it set; INFO and CALL_OS return it zero. */
TEST_F(bad, reserved_fields_refused_or_zeroed)
{
	struct gru_wait w;
	struct gru_info info;
	int i;

	for (i = 0; i < 2; i++) {
		memset(&w, 0, sizeof(w));
		w.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, raw_ioctl(self->ctx.fd, GRU_IOC_WAIT, &w));
	}
	memset(&info, 0xa5, sizeof(info));
	ASSERT_EQ(0, raw_ioctl(self->ctx.fd, GRU_IOC_INFO, &info));
	EXPECT_EQ(0, info.reserved0);
	for (i = 0; i < 4; i++)
		EXPECT_EQ(0, info.reserved[i]);
	EXPECT_EQ(GRU_INSN_MAX_LEN, info.max_len);
	ASSERT_EQ(0, gru_nop(&self->ctx));
}

/* mmap: wrong size, offset, MAP_PRIVATE, a second mapping: all -EINVAL-ish. */
TEST_F(bad, mmap_bad_size_offset_flags)
{
	int fd, ret;
	void *m;

	fd = open(GRU_DEV_PATH, O_RDWR);
	ASSERT_GE(fd, 0);
	m = mmap(NULL, 2 * GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	m = mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, GRU_WINDOW_SIZE);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	m = mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	/* the good mapping works, then a second one is refused */
	m = mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, m);
	EXPECT_EQ(GRU_ST_IDLE, ((volatile uint64_t *)m)[GRU_WIN_STATUS / 8]);
	ret = mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED;
	EXPECT_TRUE(ret);
	EXPECT_EQ(EBUSY, errno);
	/* the window can't be moved or grown */
	EXPECT_EQ(MAP_FAILED, mremap(m, GRU_WINDOW_SIZE, 2 * GRU_WINDOW_SIZE, MREMAP_MAYMOVE));
	EXPECT_EQ(0, munmap(m, GRU_WINDOW_SIZE));
	close(fd);
	ASSERT_EQ(0, gru_nop(&self->ctx));
}

/* An mmap of a window with an instruction in flight, then close: no crash. */
TEST_F(bad, close_with_instruction_in_flight)
{
	struct gru_ctx c;
	uint8_t *big;
	size_t len = 16UL << 20;
	uint64_t v;

	big = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, big);
	for (int i = 0; i < 8; i++) {
		struct gru_insn in = {
			.opcode = GRU_OPC_BSET, .addr = (uintptr_t)big, .len = len, .op0 = 0x77,
		};

		ASSERT_EQ(0, gru_open(&c, 0));
		ASSERT_EQ(0, gru_issue(&c, &in));
		gru_close(&c);
	}
	munmap(big, len);
	/* the device and our own context still work */
	self->buf[0] = 3;
	ASSERT_EQ(0, gru_load(&self->ctx, self->buf, &v));
	EXPECT_EQ(0, memcmp(&v, self->buf, 8));
}

static void expect_insn_error(struct __test_metadata *_metadata,
			      struct gru_ctx *ctx, const struct gru_insn *in,
			      int want_errno, uint64_t want_err)
{
	struct gru_exc e;
	int ret = gru_run(ctx, in, NULL);

	gru_exception(ctx, &e);
	EXPECT_EQ(want_errno, ret) TH_LOG("opcode %u: %s", in->opcode, strerror(-ret));
	EXPECT_EQ(GRU_ST_ERROR, e.status);
	EXPECT_EQ(want_err, e.error) TH_LOG("got %s, want %s",
					    gru_err_name(e.error),
					    gru_err_name(want_err));
}

/* Opcodes outside enum gru_opcode: BAD_OPCODE (-EINVAL). */
TEST_F(bad, bad_opcode)
{
	unsigned int opcs[] = { GRU_OPC_MAX + 1, 0x10, 0x7f, 0xff };

	for (unsigned int i = 0; i < 4; i++) {
		struct gru_insn in = {
			.raw_op = opcs[i], .addr = (uintptr_t)self->buf, .op0 = 1,
		};

		expect_insn_error(_metadata, &self->ctx, &in, -EINVAL, GRU_ERR_BAD_OPCODE);
	}
	EXPECT_EQ(0, memcmp(self->buf, self->copy, self->size));
}

/* Unknown flags or reserved bits 63:24 set: BAD_INSN (-EINVAL). */
TEST_F(bad, bad_flags_and_reserved_bits)
{
	uint64_t ops[] = {
		GRU_OP_ENCODE(GRU_OPC_STORE, 0x80, 0),
		GRU_OP_ENCODE(GRU_OPC_STORE, 0x04, 0),
		GRU_OP_ENCODE(GRU_OPC_STORE, 0, 0) | (1ULL << 24),
		GRU_OP_ENCODE(GRU_OPC_STORE, 0, 0) | (1ULL << 63),
		GRU_OP_ENCODE(GRU_OPC_NOP, 0, 0) | (1ULL << 40),
	};

	for (unsigned int i = 0; i < 5; i++) {
		struct gru_insn in = {
			.raw_op = ops[i], .addr = (uintptr_t)self->buf, .op0 = 1,
		};

		expect_insn_error(_metadata, &self->ctx, &in, -EINVAL, GRU_ERR_BAD_INSN);
	}
	EXPECT_EQ(0, memcmp(self->buf, self->copy, self->size));
}

/* A doorbell value other than GRU_DB_START: BAD_DOORBELL (-EINVAL). */
TEST_F(bad, bad_doorbell)
{
	struct gru_exc e;

	gru_ring(&self->ctx, 0x2);
	EXPECT_EQ(-EINVAL, gru_wait(&self->ctx, NULL));
	gru_exception(&self->ctx, &e);
	EXPECT_EQ(GRU_ERR_BAD_DOORBELL, e.error);
	ASSERT_EQ(0, gru_nop(&self->ctx));
}

/* 8-byte ops on unaligned addresses: MISALIGNED (-EINVAL), data unchanged. */
TEST_F(bad, misaligned_8byte_ops)
{
	unsigned int opcs[] = {
		GRU_OPC_LOAD, GRU_OPC_STORE, GRU_OPC_FADD, GRU_OPC_SWAP, GRU_OPC_CAS,
	};

	for (unsigned int i = 0; i < 5; i++) {
		for (int off = 1; off < 8; off += 3) {
			struct gru_insn in = {
				.opcode = opcs[i], .addr = (uintptr_t)self->buf + off,
				.op0 = ~0ULL, .op1 = 0,
			};

			expect_insn_error(_metadata, &self->ctx, &in, -EINVAL,
					  GRU_ERR_MISALIGNED);
		}
	}
	EXPECT_EQ(0, memcmp(self->buf, self->copy, self->size));
}

/* BCOPY/BSET longer than GRU_INSN_MAX_LEN: TOO_LONG (-E2BIG), nothing written. */
TEST_F(bad, oversized_block_ops)
{
	struct gru_insn set = {
		.opcode = GRU_OPC_BSET, .addr = (uintptr_t)self->buf,
		.len = GRU_INSN_MAX_LEN + 1, .op0 = 0xee,
	};
	struct gru_insn cp = {
		.opcode = GRU_OPC_BCOPY, .addr = (uintptr_t)self->buf,
		.src = (uintptr_t)self->buf + 2 * PAGE_SZ, .len = ~0ULL,
	};

	expect_insn_error(_metadata, &self->ctx, &set, -E2BIG, GRU_ERR_TOO_LONG);
	expect_insn_error(_metadata, &self->ctx, &cp, -E2BIG, GRU_ERR_TOO_LONG);
	EXPECT_EQ(0, memcmp(self->buf, self->copy, self->size));
}

/* BCOPY with overlapping source and destination: OVERLAP (-EINVAL). */
TEST_F(bad, overlapping_bcopy)
{
	struct gru_insn in = {
		.opcode = GRU_OPC_BCOPY, .addr = (uintptr_t)self->buf + 100,
		.src = (uintptr_t)self->buf, .len = 200,
	};

	expect_insn_error(_metadata, &self->ctx, &in, -EINVAL, GRU_ERR_OVERLAP);
	in.addr = (uintptr_t)self->buf;
	in.src = (uintptr_t)self->buf + 100;
	expect_insn_error(_metadata, &self->ctx, &in, -EINVAL, GRU_ERR_OVERLAP);
	EXPECT_EQ(0, memcmp(self->buf, self->copy, self->size));
}

/* Kernel addresses, as target, source or straddling the limit: KERNEL_ADDR. */
TEST_F(bad, kernel_addresses_refused)
{
	struct gru_insn ld = { .opcode = GRU_OPC_LOAD, .addr = KADDR };
	struct gru_insn st = { .opcode = GRU_OPC_STORE, .addr = KADDR, .op0 = 1 };
	struct gru_insn cp = {
		.opcode = GRU_OPC_BCOPY, .addr = (uintptr_t)self->buf,
		.src = KADDR, .len = 64,
	};
	struct gru_insn straddle = { .opcode = GRU_OPC_BSET, .len = 16 };
	struct gru_info info;

	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	/* The device's limit, not the architecture's: 47 bits either way. */
	ASSERT_EQ(1ULL << 47, info.va_limit);
	straddle.addr = info.va_limit - 8;
	expect_insn_error(_metadata, &self->ctx, &ld, -EFAULT, GRU_ERR_KERNEL_ADDR);
	expect_insn_error(_metadata, &self->ctx, &st, -EFAULT, GRU_ERR_KERNEL_ADDR);
	expect_insn_error(_metadata, &self->ctx, &cp, -EFAULT, GRU_ERR_KERNEL_ADDR);
	expect_insn_error(_metadata, &self->ctx, &straddle, -EFAULT, GRU_ERR_KERNEL_ADDR);
	EXPECT_EQ(0, memcmp(self->buf, self->copy, self->size));
}

/* Unmapped address: UNMAPPED (-EFAULT) with the exact VA in EXC_VA. */
TEST_F(bad, unmapped_address)
{
	struct gru_insn in = { .opcode = GRU_OPC_STORE, .op0 = 5 };
	struct gru_exc e;
	uint8_t *hole;

	hole = mmap(NULL, PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, PAGE_SZ));
	in.addr = (uintptr_t)hole + 16;
	expect_insn_error(_metadata, &self->ctx, &in, -EFAULT, GRU_ERR_UNMAPPED);
	gru_exception(&self->ctx, &e);
	EXPECT_EQ((uintptr_t)hole + 16, e.va);
	EXPECT_TRUE(e.info & GRU_EXC_WRITE);
	in.opcode = GRU_OPC_LOAD;
	expect_insn_error(_metadata, &self->ctx, &in, -EFAULT, GRU_ERR_UNMAPPED);
	gru_exception(&self->ctx, &e);
	EXPECT_FALSE(e.info & GRU_EXC_WRITE);
}

/* A BCOPY running into an unmapped page stops there: PROGRESS tells where. */
TEST_F(bad, bcopy_into_hole_reports_progress)
{
	struct gru_insn in = {
		.opcode = GRU_OPC_BCOPY, .addr = (uintptr_t)self->buf + 2 * PAGE_SZ,
		.src = (uintptr_t)self->buf, .len = 2 * PAGE_SZ,
	};
	struct gru_exc e;

	ASSERT_EQ(0, munmap(self->buf + 3 * PAGE_SZ, PAGE_SZ));
	expect_insn_error(_metadata, &self->ctx, &in, -EFAULT, GRU_ERR_UNMAPPED);
	gru_exception(&self->ctx, &e);
	EXPECT_EQ((uintptr_t)self->buf + 3 * PAGE_SZ, e.va);
	EXPECT_EQ(PAGE_SZ, e.progress);
	EXPECT_FALSE(e.info & GRU_EXC_SRC);
	/* the part before the hole was copied */
	EXPECT_EQ(0, memcmp(self->buf + 2 * PAGE_SZ, self->copy, PAGE_SZ));
	/* a hole in the source is flagged as such */
	in.addr = (uintptr_t)self->buf;
	in.src = (uintptr_t)self->buf + 3 * PAGE_SZ;
	in.len = 64;
	expect_insn_error(_metadata, &self->ctx, &in, -EFAULT, GRU_ERR_UNMAPPED);
	gru_exception(&self->ctx, &e);
	EXPECT_TRUE(e.info & GRU_EXC_SRC);
	EXPECT_EQ(0, memcmp(self->buf, self->copy, PAGE_SZ));
	self->size = 3 * PAGE_SZ;
}

/* Writes to PROT_NONE and read-only memory: PROT (-EACCES), data unchanged. */
TEST_F(bad, writes_to_protected_memory)
{
	struct gru_insn st = { .opcode = GRU_OPC_STORE, .op0 = ~0ULL };
	struct gru_insn ld = { .opcode = GRU_OPC_LOAD };
	struct gru_insn set = { .opcode = GRU_OPC_BSET, .len = 64, .op0 = 0xff };

	ASSERT_EQ(0, mprotect(self->buf, PAGE_SZ, PROT_READ));
	ASSERT_EQ(0, mprotect(self->buf + PAGE_SZ, PAGE_SZ, PROT_NONE));
	st.addr = set.addr = (uintptr_t)self->buf;
	expect_insn_error(_metadata, &self->ctx, &st, -EACCES, GRU_ERR_PROT);
	expect_insn_error(_metadata, &self->ctx, &set, -EACCES, GRU_ERR_PROT);
	st.addr = set.addr = ld.addr = (uintptr_t)self->buf + PAGE_SZ;
	expect_insn_error(_metadata, &self->ctx, &st, -EACCES, GRU_ERR_PROT);
	expect_insn_error(_metadata, &self->ctx, &set, -EACCES, GRU_ERR_PROT);
	expect_insn_error(_metadata, &self->ctx, &ld, -EACCES, GRU_ERR_PROT);
	ASSERT_EQ(0, mprotect(self->buf, 2 * PAGE_SZ, PROT_READ | PROT_WRITE));
	EXPECT_EQ(0, memcmp(self->buf, self->copy, self->size));
}

/* A doorbell while BUSY is dropped: the running instruction is unaffected. */
TEST_F(bad, doorbell_while_busy_is_dropped)
{
	size_t len = 8UL << 20;
	uint8_t *big = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct gru_insn in = {
		.opcode = GRU_OPC_BSET, .len = len, .op0 = 0x3c,
	};

	ASSERT_NE(MAP_FAILED, big);
	in.addr = (uintptr_t)big;
	ASSERT_EQ(0, gru_issue(&self->ctx, &in));
	gru_ring(&self->ctx, GRU_DB_START);
	ASSERT_EQ(0, gru_wait(&self->ctx, NULL));
	for (size_t i = 0; i < len; i += PAGE_SZ / 2) {
		ASSERT_EQ(0x3c, big[i]) TH_LOG("offset %zu", i);
	}
	munmap(big, len);
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], c;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return fd;
}

static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = "f", .iov_len = 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

/*
 * A context whose process exited (its mm released) and whose fd lives on
 * in another process: mapping it (-EPERM) and CALL_OS (-EPERM) are
 * refused, the other ioctls and close don't crash.
 */
TEST_F(bad, released_context_refuses_use)
{
	struct gru_ctx_stats st;
	struct gru_info info;
	struct gru_call_os co;
	int sv[2], fd, status;
	pid_t pid;
	void *m;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct gru_ctx c;
		uint64_t *p = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED || gru_open(&c, 0) || gru_store(&c, p, 1))
			_exit(1);
		_exit(send_fd(sv[1], c.fd) ? 2 : 0);
	}
	fd = recv_fd(sv[0]);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the opener is gone: its mm has been released */
	m = mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EPERM, errno);
	memset(&co, 0, sizeof(co));
	EXPECT_EQ(-EPERM, raw_ioctl(fd, GRU_IOC_CALL_OS, &co));
	/* harmless ioctls may answer; they must not crash */
	raw_ioctl(fd, GRU_IOC_INFO, &info);
	raw_ioctl(fd, GRU_IOC_STATS, &st);
	EXPECT_EQ(0, close(fd));
	ASSERT_EQ(0, gru_nop(&self->ctx));
	close(sv[0]);
	close(sv[1]);
}

TEST_HARNESS_MAIN
