// SPDX-License-Identifier: GPL-2.0
/*
 * Basic claims (issue 3 "done when"): every opcode works on the caller's
 * own anonymous memory, each fill path is really taken and counted, and
 * the device holds no page references (no-pin proof via /proc/kpagecount).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#define NPAGES 16

FIXTURE(gru)
{
	struct gru_ctx ctx;
	char *buf;
	size_t size;
};

FIXTURE_VARIANT(gru)
{
	bool callos;
};

/* misses the IRQ walk can't fill go to the kernel worker */
FIXTURE_VARIANT_ADD(gru, irq)
{
	.callos = false,
};

/* misses the IRQ walk can't fill go back to libgru (GRU_IOC_CALL_OS) */
FIXTURE_VARIANT_ADD(gru, callos)
{
	.callos = true,
};

FIXTURE_SETUP(gru)
{
	int ret;

	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	ret = gru_open(&self->ctx, GRU_LIB_AUTO_CALLOS);
	ASSERT_EQ(0, ret) TH_LOG("gru_open: %s", strerror(-ret));
	if (variant->callos)
		ASSERT_EQ(0, gru_set_callos(&self->ctx, 1));
	self->size = NPAGES * PAGE_SZ;
	self->buf = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(gru)
{
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, self->size);
	if (self->ctx.win)
		gru_close(&self->ctx);
}

/* The geometry ioctl reports what the contract header promises. */
TEST_F(gru, open_reports_geometry)
{
	struct gru_info info;
	struct gru_ctx_opts o;
	struct gru_ctx c2;

	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	EXPECT_EQ(GRU_WINDOW_SIZE, info.window_size);
	EXPECT_EQ(GRU_INSN_MAX_LEN, info.max_len);
	EXPECT_GT(info.hw_contexts, 0);
	EXPECT_GT(info.tlb_sets, 0);
	EXPECT_GT(info.tlb_ways, 0);
	EXPECT_GE(info.vectors, 2);
	EXPECT_EQ(1ULL << 47, info.va_limit);
	EXPECT_EQ(0, info.reserved0);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(0, info.reserved[i]);
	ASSERT_EQ(0, gru_get_opts(&self->ctx, &o));
	EXPECT_EQ(variant->callos ? GRU_OPT_CALLOS : 0, o.flags);
	EXPECT_EQ(GRU_FILL_IRQ, o.fill_mode);
	/* a second open is an independent context of the same process */
	ASSERT_EQ(0, gru_open(&c2, 0));
	ASSERT_EQ(0, gru_nop(&c2));
	gru_close(&c2);
	ASSERT_EQ(0, gru_nop(&self->ctx));
}

/* Every opcode on the caller's anonymous memory, data read back by the CPU. */
TEST_F(gru, every_opcode_on_anon_memory)
{
	uint64_t *w = (uint64_t *)self->buf;
	char *b = self->buf;
	uint64_t v = 0;

	ASSERT_EQ(0, gru_nop(&self->ctx));

	/* STORE into untouched memory (first touch), CPU sees it */
	ASSERT_EQ(0, gru_store(&self->ctx, &w[0], 0x1122334455667788ULL));
	EXPECT_EQ(0x1122334455667788ULL, w[0]);

	/* LOAD of a CPU-written value */
	w[1] = 0xdeadbeefcafef00dULL;
	ASSERT_EQ(0, gru_load(&self->ctx, &w[1], &v));
	EXPECT_EQ(0xdeadbeefcafef00dULL, v);

	/* BSET across a page boundary, bytes around it untouched */
	memset(b + PAGE_SZ - 200, 0x11, 600);
	ASSERT_EQ(0, gru_bset(&self->ctx, b + PAGE_SZ - 100, 0xa5, 300));
	for (int i = -200; i < 400; i++) {
		unsigned char want = (i >= -100 && i < 200) ? 0xa5 : 0x11;

		ASSERT_EQ(want, (unsigned char)b[PAGE_SZ + i]) TH_LOG("byte %d", i);
	}

	/* BCOPY 3 pages into 3 other (untouched) pages, unaligned */
	for (size_t i = 0; i < 3 * PAGE_SZ; i++)
		b[4 * PAGE_SZ + i] = (char)(i * 7 + 3);
	ASSERT_EQ(0, gru_bcopy(&self->ctx, b + 9 * PAGE_SZ + 5,
			       b + 4 * PAGE_SZ, 3 * PAGE_SZ - 10));
	EXPECT_EQ(0, memcmp(b + 9 * PAGE_SZ + 5, b + 4 * PAGE_SZ, 3 * PAGE_SZ - 10));
	EXPECT_EQ(0, b[9 * PAGE_SZ + 4]);
	EXPECT_EQ(0, b[12 * PAGE_SZ - 5]);

	/* FADD returns the old value and adds */
	w[2] = 40;
	ASSERT_EQ(0, gru_fadd(&self->ctx, &w[2], 2, &v));
	EXPECT_EQ(40, v);
	EXPECT_EQ(42, w[2]);

	/* SWAP */
	ASSERT_EQ(0, gru_swap(&self->ctx, &w[2], 7, &v));
	EXPECT_EQ(42, v);
	EXPECT_EQ(7, w[2]);

	/* CAS that matches, then one that does not */
	ASSERT_EQ(0, gru_cas(&self->ctx, &w[2], 7, 99, &v));
	EXPECT_EQ(7, v);
	EXPECT_EQ(99, w[2]);
	ASSERT_EQ(0, gru_cas(&self->ctx, &w[2], 7, 5, &v));
	EXPECT_EQ(99, v);
	EXPECT_EQ(99, w[2]);
}

/* Device atomics and CPU atomics on one word don't lose updates. */
TEST_F(gru, fadd_is_atomic_against_cpu)
{
	int n = 2000;
	pid_t pid;
	int status;
	uint64_t *shared = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, shared);
	*shared = 0;
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		for (int i = 0; i < n; i++)
			__atomic_fetch_add(shared, 1, __ATOMIC_SEQ_CST);
		_exit(0);
	}
	for (int i = 0; i < n; i++)
		ASSERT_EQ(0, gru_fadd(&self->ctx, shared, 1ULL << 32, NULL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ((uint64_t)n << 32 | (uint64_t)n, *shared);
	munmap(shared, PAGE_SZ);
}

/*
 * The three fill paths are all taken and counted: a present, dirty page is
 * filled from the hard-IRQ walk; a first touch and a COW break need the
 * page fault handler (worker, or call-OS in that mode).
 */
TEST_F(gru, counters_show_each_fill_path)
{
	struct gru_ctx_stats s0, s1, s2, s3;
	uint64_t *w = (uint64_t *)self->buf;
	int status, fds[2];
	pid_t pid;

	/* present, writable, dirty: the IRQ fast path */
	w[0] = 1;
	ASSERT_EQ(0, gru_stats(&self->ctx, &s0));
	ASSERT_EQ(0, gru_store(&self->ctx, &w[0], 2));
	ASSERT_EQ(0, gru_stats(&self->ctx, &s1));
	EXPECT_EQ(2, w[0]);
	EXPECT_GE(s1.faults, s0.faults + 1);
	/* PREEMPT_RT has no IRQ walk (gru_safety_test checks that) */
	if (read_num("/sys/kernel/realtime") != 1)
		EXPECT_GE(s1.fill_irq, s0.fill_irq + 1);

	/* never touched: no PTE, the fast path must defer */
	ASSERT_EQ(0, gru_store(&self->ctx, &w[PAGE_SZ / 8 * 3], 3));
	ASSERT_EQ(0, gru_stats(&self->ctx, &s2));
	EXPECT_EQ(3, w[PAGE_SZ / 8 * 3]);
	if (variant->callos) {
		EXPECT_GE(s2.fill_callos, s1.fill_callos + 1);
		EXPECT_GE(self->ctx.callos_resolved, 1);
		EXPECT_EQ(s1.fill_worker, s2.fill_worker);
	} else {
		EXPECT_GE(s2.fill_worker, s1.fill_worker + 1);
		EXPECT_EQ(0, s2.fill_callos);
	}

	/* COW: after fork the parent's PTE is read-only */
	w[PAGE_SZ / 8 * 5] = 50;
	ASSERT_EQ(0, pipe(fds));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char c;

		/* the child keeps the original page shared until told */
		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			_exit(2);
		_exit(w[PAGE_SZ / 8 * 5] == 50 ? 0 : 1);
	}
	close(fds[0]);
	ASSERT_EQ(0, gru_store(&self->ctx, &w[PAGE_SZ / 8 * 5], 51));
	ASSERT_EQ(0, gru_stats(&self->ctx, &s3));
	EXPECT_EQ(51, w[PAGE_SZ / 8 * 5]);
	if (variant->callos) {
		EXPECT_GE(s3.fill_callos, s2.fill_callos + 1);
	} else {
		EXPECT_GE(s3.fill_worker, s2.fill_worker + 1);
	}
	ASSERT_EQ(1, write(fds[1], "x", 1));
	close(fds[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	/* the child still sees the pre-fork value: the device broke COW */
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TH_LOG("faults=%llu irq=%llu worker=%llu callos=%llu",
	       (unsigned long long)s3.faults, (unsigned long long)s3.fill_irq,
	       (unsigned long long)s3.fill_worker,
	       (unsigned long long)s3.fill_callos);
}

/*
 * No pins: while the device holds live translations of our pages, the
 * kernel's reference counts of those pages are what they were before.
 */
TEST_F(gru, no_pin_kpagecount_unchanged)
{
	uint64_t pfn[NPAGES];
	int64_t before[NPAGES], after;
	struct gru_tlb_probe p;
	int live = 0;

	if (kpagecount(1) < 0)
		SKIP(return, "/proc/kpagecount unreadable (needs root and PROC_PAGE_MONITOR)");
	for (int i = 0; i < NPAGES; i++) {
		self->buf[i * PAGE_SZ] = (char)i;
		pfn[i] = va_to_pfn(self->buf + i * PAGE_SZ);
		ASSERT_NE(0, pfn[i]);
		before[i] = kpagecount(pfn[i]);
		ASSERT_GE(before[i], 1);
	}
	for (int i = 0; i < NPAGES; i++) {
		char *p8 = self->buf + i * PAGE_SZ + 8;

		ASSERT_EQ(0, gru_store(&self->ctx, p8, 0x5a5a0000ULL + i));
	}
	for (int i = 0; i < NPAGES; i++) {
		ASSERT_EQ(0, gru_tlb_probe(&self->ctx,
					   (uintptr_t)self->buf + i * PAGE_SZ, &p));
		live += p.hit;
		ASSERT_EQ(pfn[i], va_to_pfn(self->buf + i * PAGE_SZ));
		after = kpagecount(pfn[i]);
		EXPECT_EQ(before[i], after) TH_LOG("page %d pfn %#llx", i,
						   (unsigned long long)pfn[i]);
		EXPECT_EQ(0x5a5a0000ULL + i, *(uint64_t *)(self->buf + i * PAGE_SZ + 8));
	}
	/* the proof is only worth something if translations are live */
	EXPECT_GT(live, 0);
	TH_LOG("%d of %d pages live in the device TLB", live, NPAGES);
}

/* A context's window survives close and reopen cycles; no leak of slots. */
TEST_F(gru, reopen_many_times)
{
	struct gru_info info;
	uint64_t *w = (uint64_t *)self->buf;

	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	for (unsigned int i = 0; i < 4 * info.hw_contexts; i++) {
		struct gru_ctx c;

		ASSERT_EQ(0, gru_open(&c, 0));
		ASSERT_EQ(0, gru_store(&c, &w[i % 512], i));
		gru_close(&c);
		ASSERT_EQ(i, w[i % 512]);
	}
}

TEST_HARNESS_MAIN
