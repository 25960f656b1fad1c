// SPDX-License-Identifier: GPL-2.0
/*
 * Memory events: the device stays coherent with the process's page tables
 * through every kind of change the kernel makes to them (the scenarios of
 * selftests/mm/hmm-tests.c that apply to a mirror, plus the GRU's own).
 * Every test runs with misses filled by the IRQ walk and kernel worker
 * ("irq") and with the call-OS mode where libgru resolves them ("callos").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#define MAP_HUGE_1GB (30 << 26)
#endif

#define NPAGES 8

FIXTURE(mem)
{
	struct gru_ctx ctx;
	uint8_t *buf;
	size_t size;
};

FIXTURE_VARIANT(mem)
{
	bool callos;
};

FIXTURE_VARIANT_ADD(mem, irq)
{
	.callos = false,
};

FIXTURE_VARIANT_ADD(mem, callos)
{
	.callos = true,
};

FIXTURE_SETUP(mem)
{
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	ASSERT_EQ(0, gru_open(&self->ctx, GRU_LIB_AUTO_CALLOS));
	if (variant->callos)
		ASSERT_EQ(0, gru_set_callos(&self->ctx, 1));
	self->size = NPAGES * PAGE_SZ;
	self->buf = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(mem)
{
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, self->size);
	if (self->ctx.win)
		gru_close(&self->ctx);
}

static uint64_t *word(void *base, size_t page, size_t idx)
{
	return (uint64_t *)((uint8_t *)base + page * PAGE_SZ) + idx;
}

/* Device reads see CPU writes, on untouched and on touched pages. */
TEST_F(mem, anon_read)
{
	uint64_t v;

	/* untouched anon memory reads as zero through the device too */
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 3), &v));
	EXPECT_EQ(0, v);
	for (size_t p = 0; p < NPAGES; p++)
		*word(self->buf, p, p) = 0x1000 + p;
	for (size_t p = 0; p < NPAGES; p++) {
		ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, p, p), &v));
		EXPECT_EQ(0x1000 + p, v);
	}
	/* after a device read of the zero page, a CPU write must be seen */
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 3), &v));
	*word(self->buf, 0, 3) = 77;
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 3), &v));
	EXPECT_EQ(77, v);
}

/* CPU reads see device writes; a device write after a device read works. */
TEST_F(mem, anon_write)
{
	uint64_t v;

	for (size_t p = 0; p < NPAGES; p++)
		ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, p, 1), 0x2000 + p));
	for (size_t p = 0; p < NPAGES; p++)
		EXPECT_EQ(0x2000 + p, *word(self->buf, p, 1));
	/* read-only translation of the zero page, then a write must upgrade */
	munmap(self->buf, self->size);
	self->buf = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 2, 0), &v));
	ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, 2, 0), 5));
	EXPECT_EQ(5, *word(self->buf, 2, 0));
	/* the CPU now writes; the device must read the new page, not the zero page */
	*word(self->buf, 2, 0) = 6;
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 2, 0), &v));
	EXPECT_EQ(6, v);
}

/* PROT_NONE refuses device access; mprotect to RW lets it through. */
TEST_F(mem, prot_none_then_upgrade)
{
	uint64_t v;

	*word(self->buf, 0, 0) = 11;
	ASSERT_EQ(0, mprotect(self->buf, PAGE_SZ, PROT_NONE));
	EXPECT_EQ(-EACCES, gru_load(&self->ctx, word(self->buf, 0, 0), &v));
	EXPECT_EQ(-EACCES, gru_store(&self->ctx, word(self->buf, 0, 0), 12));
	ASSERT_EQ(0, mprotect(self->buf, PAGE_SZ, PROT_READ | PROT_WRITE));
	EXPECT_EQ(11, *word(self->buf, 0, 0));
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 0), &v));
	EXPECT_EQ(11, v);
	ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, 0, 0), 12));
	EXPECT_EQ(12, *word(self->buf, 0, 0));
}

/* Read-only: device reads work, writes fail; after mprotect RW, writes work. */
TEST_F(mem, read_only_then_upgrade)
{
	uint64_t v;

	*word(self->buf, 1, 0) = 21;
	ASSERT_EQ(0, mprotect(self->buf, self->size, PROT_READ));
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 1, 0), &v));
	EXPECT_EQ(21, v);
	EXPECT_EQ(-EACCES, gru_store(&self->ctx, word(self->buf, 1, 0), 22));
	EXPECT_EQ(-EACCES, gru_bset(&self->ctx, word(self->buf, 1, 0), 1, 64));
	EXPECT_EQ(21, *word(self->buf, 1, 0));
	ASSERT_EQ(0, mprotect(self->buf, self->size, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, 1, 0), 22));
	EXPECT_EQ(22, *word(self->buf, 1, 0));
}

/* A live writable translation is revoked by mprotect(PROT_READ). */
TEST_F(mem, write_revoked_by_mprotect)
{
	struct gru_tlb_probe p;

	ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, 0, 0), 1));
	ASSERT_EQ(0, gru_tlb_probe(&self->ctx, (uintptr_t)self->buf, &p));
	EXPECT_EQ(1, p.hit);
	EXPECT_EQ(1, p.writable);
	ASSERT_EQ(0, mprotect(self->buf, PAGE_SZ, PROT_READ));
	ASSERT_EQ(0, gru_tlb_probe(&self->ctx, (uintptr_t)self->buf, &p));
	EXPECT_FALSE(p.hit && p.writable);
	EXPECT_EQ(-EACCES, gru_store(&self->ctx, word(self->buf, 0, 0), 2));
	EXPECT_EQ(1, *word(self->buf, 0, 0));
}

/* fork: parent and child each write a private page; each sees only its own. */
TEST_F(mem, fork_cow_private_writes_from_parent_and_child)
{
	uint64_t *w = word(self->buf, 0, 0);
	int go[2], done[2], status;
	char c;
	pid_t pid;

	*w = 100;
	/* make the parent's translation live before the fork */
	ASSERT_EQ(0, gru_store(&self->ctx, w, 101));
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(done));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct gru_ctx cc;
		uint64_t v = 0;
		int bad = 0;

		/* the window is not inherited: the child opens its own */
		if (gru_open(&cc, GRU_LIB_AUTO_CALLOS))
			_exit(10);
		if (variant->callos && gru_set_callos(&cc, 1))
			_exit(11);
		if (gru_load(&cc, w, &v) || v != 101)
			bad |= 1;
		if (gru_store(&cc, w, 200) || *w != 200)
			bad |= 2;
		if (write(done[1], "c", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(12);
		/* the parent's later write must not show here */
		if (*w != 200 || gru_load(&cc, w, &v) || v != 200)
			bad |= 4;
		_exit(bad);
	}
	ASSERT_EQ(1, read(done[0], &c, 1));
	/* the child's write must not show in the parent */
	EXPECT_EQ(101, *w);
	ASSERT_EQ(0, gru_store(&self->ctx, w, 300));
	EXPECT_EQ(300, *w);
	ASSERT_EQ(1, write(go[1], "p", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(300, *w);
}

/* fork: a MAP_SHARED page stays shared, device writes cross both ways. */
TEST_F(mem, fork_shared_writes_from_parent_and_child)
{
	uint64_t *s = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int go[2], done[2], status;
	char c;
	pid_t pid;

	ASSERT_NE(MAP_FAILED, s);
	ASSERT_EQ(0, gru_store(&self->ctx, s, 1));
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(done));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct gru_ctx cc;
		uint64_t v = 0;
		int bad = 0;

		if (gru_open(&cc, GRU_LIB_AUTO_CALLOS))
			_exit(10);
		if (variant->callos && gru_set_callos(&cc, 1))
			_exit(11);
		if (gru_store(&cc, s, 2))
			bad |= 1;
		if (write(done[1], "c", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(12);
		if (gru_load(&cc, s, &v) || v != 3 || *s != 3)
			bad |= 2;
		_exit(bad);
	}
	ASSERT_EQ(1, read(done[0], &c, 1));
	EXPECT_EQ(2, *s);
	ASSERT_EQ(0, gru_store(&self->ctx, s, 3));
	ASSERT_EQ(1, write(go[1], "p", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	munmap(s, PAGE_SZ);
}

static bool is_thp(void *va)
{
	uint64_t pfn = va_to_pfn(va);

	return pfn && (kpageflags(pfn) >> KPF_THP_BIT & 1);
}

/* A THP is mapped by ONE 2 MiB device entry; a split brings 4 KiB entries. */
TEST_F(mem, thp_one_entry_then_split)
{
	struct gru_tlb_probe p;
	struct gru_ctx_stats s0, s1;
	uint8_t *h = map_aligned(HPAGE_SZ, HPAGE_SZ);
	uint64_t v;

	ASSERT_NE(NULL, h);
	madvise(h, HPAGE_SZ, MADV_HUGEPAGE);
	memset(h, 0x42, HPAGE_SZ);
	if (!is_thp(h)) {
		munmap(h, HPAGE_SZ);
		SKIP(return, "no THP for an aligned 2 MiB region (THP disabled?)");
	}
	ASSERT_EQ(0, gru_store(&self->ctx, h + 8, 7));
	ASSERT_EQ(0, gru_tlb_probe(&self->ctx, (uintptr_t)h + HPAGE_SZ - 8, &p));
	EXPECT_EQ(1, p.hit);
	EXPECT_EQ(21, p.size_shift);
	/* the far end of the huge page needs no new miss */
	ASSERT_EQ(0, gru_stats(&self->ctx, &s0));
	ASSERT_EQ(0, gru_load(&self->ctx, h + HPAGE_SZ - 8, &v));
	ASSERT_EQ(0, gru_stats(&self->ctx, &s1));
	EXPECT_EQ(0x4242424242424242ULL, v);
	EXPECT_EQ(s0.faults, s1.faults);

	/* split by protecting one 4 KiB page inside it */
	ASSERT_EQ(0, mprotect(h + PAGE_SZ, PAGE_SZ, PROT_READ));
	ASSERT_EQ(0, gru_tlb_probe(&self->ctx, (uintptr_t)h + HPAGE_SZ - 8, &p));
	EXPECT_EQ(0, p.hit);
	EXPECT_EQ(-EACCES, gru_store(&self->ctx, h + PAGE_SZ, 1));
	ASSERT_EQ(0, gru_store(&self->ctx, h + 3 * PAGE_SZ, 9));
	ASSERT_EQ(0, gru_tlb_probe(&self->ctx, (uintptr_t)h + 3 * PAGE_SZ, &p));
	EXPECT_EQ(1, p.hit);
	EXPECT_EQ(12, p.size_shift);
	EXPECT_EQ(7, *(uint64_t *)(h + 8));
	EXPECT_EQ(9, *(uint64_t *)(h + 3 * PAGE_SZ));
	EXPECT_EQ(0x42, h[PAGE_SZ]);
	/* MADV_DONTNEED of one 4 KiB piece: it reads as zero, the rest stays */
	ASSERT_EQ(0, madvise(h + 5 * PAGE_SZ, PAGE_SZ, MADV_DONTNEED));
	ASSERT_EQ(0, gru_load(&self->ctx, h + 5 * PAGE_SZ, &v));
	EXPECT_EQ(0, v);
	ASSERT_EQ(0, gru_load(&self->ctx, h + 6 * PAGE_SZ, &v));
	EXPECT_EQ(0x4242424242424242ULL, v);
	munmap(h, HPAGE_SZ);
}

static void hugetlb_case(struct __test_metadata *_metadata, struct gru_ctx *ctx,
			 size_t sz, int flag, unsigned int shift)
{
	struct gru_tlb_probe p;
	uint64_t v;
	uint8_t *h = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | flag, -1, 0);

	if (h == MAP_FAILED)
		SKIP(return, "no %zu MiB hugetlb page reservable: %s (boot with hugepages)",
		     sz >> 20, strerror(errno));
	/* first touch by the device itself */
	ASSERT_EQ(0, gru_store(ctx, h + sz - 8, 0xabc));
	EXPECT_EQ(0xabc, *(uint64_t *)(h + sz - 8));
	h[0] = 1;
	ASSERT_EQ(0, gru_load(ctx, h, &v));
	EXPECT_EQ(1, v);
	ASSERT_EQ(0, gru_tlb_probe(ctx, (uintptr_t)h + sz / 2, &p));
	EXPECT_EQ(1, p.hit);
	EXPECT_EQ(shift, p.size_shift);
	ASSERT_EQ(0, munmap(h, sz));
	ASSERT_EQ(0, gru_tlb_probe(ctx, (uintptr_t)h + sz / 2, &p));
	EXPECT_EQ(0, p.hit);
	EXPECT_EQ(-EFAULT, gru_load(ctx, h, &v));
}

/* hugetlbfs 2 MiB pages map as one 2 MiB device entry, gone after munmap. */
TEST_F(mem, hugetlb_2m)
{
	if (read_num("/proc/sys/vm/nr_hugepages") == 0)
		write_str("/proc/sys/vm/nr_hugepages", "4");
	hugetlb_case(_metadata, &self->ctx, HPAGE_SZ, MAP_HUGE_2MB, 21);
}

/* hugetlbfs 1 GiB pages map as one 1 GiB device entry. */
TEST_F(mem, hugetlb_1g)
{
	hugetlb_case(_metadata, &self->ctx, 1UL << 30, MAP_HUGE_1GB, 30);
}

static void file_case(struct __test_metadata *_metadata, struct gru_ctx *ctx, int fd)
{
	uint8_t *m, *m2;
	uint64_t v;
	char buf[8];

	ASSERT_EQ(0, ftruncate(fd, 4 * PAGE_SZ));
	ASSERT_EQ(8, pwrite(fd, "ABCDEFGH", 8, PAGE_SZ));
	m = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, m);
	/* device read of page-cache data written by write(2) */
	ASSERT_EQ(0, gru_load(ctx, m + PAGE_SZ, &v));
	EXPECT_EQ(0, memcmp(&v, "ABCDEFGH", 8));
	/* device write shows in read(2) and through a second mapping */
	ASSERT_EQ(0, gru_store(ctx, m + 2 * PAGE_SZ, 0x3837363534333231ULL));
	ASSERT_EQ(8, pread(fd, buf, 8, 2 * PAGE_SZ));
	EXPECT_EQ(0, memcmp(buf, "12345678", 8));
	m2 = mmap(NULL, 4 * PAGE_SZ, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, m2);
	EXPECT_EQ(0, memcmp(m2 + 2 * PAGE_SZ, "12345678", 8));
	/* write(2) after the device cached a translation is seen by the device */
	ASSERT_EQ(8, pwrite(fd, "zyxwvuts", 8, 2 * PAGE_SZ));
	ASSERT_EQ(0, gru_load(ctx, m + 2 * PAGE_SZ, &v));
	EXPECT_EQ(0, memcmp(&v, "zyxwvuts", 8));
	/* truncation removes the page: the device must not reach it */
	ASSERT_EQ(0, ftruncate(fd, PAGE_SZ));
	EXPECT_NE(0, gru_load(ctx, m + 2 * PAGE_SZ, &v));
	/* msync and the data on the file */
	ASSERT_EQ(0, gru_bset(ctx, m, 'q', 64));
	ASSERT_EQ(0, msync(m, PAGE_SZ, MS_SYNC));
	ASSERT_EQ(8, pread(fd, buf, 8, 0));
	EXPECT_EQ(0, memcmp(buf, "qqqqqqqq", 8));
	munmap(m, 4 * PAGE_SZ);
	munmap(m2, 4 * PAGE_SZ);
}

/* memfd (tmpfs) pages: device and read/write(2) agree; truncate revokes. */
TEST_F(mem, file_memfd)
{
	int fd = memfd_create("gru-test", 0);

	ASSERT_GE(fd, 0);
	file_case(_metadata, &self->ctx, fd);
	close(fd);
}

/* A file on a block-backed filesystem (ext2 in the guest): same claims. */
TEST_F(mem, file_on_real_fs)
{
	char dir[256], path[300];
	const char *d = find_real_fs(dir, sizeof(dir));
	int fd;

	if (!d)
		SKIP(return, "no writable ext2/ext4/xfs/btrfs/vfat mount (set GRU_REALFS)");
	snprintf(path, sizeof(path), "%s/gru-test.%d", d, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_GE(fd, 0) TH_LOG("%s: %s", path, strerror(errno));
	file_case(_metadata, &self->ctx, fd);
	close(fd);
	unlink(path);
}

struct hammer {
	struct gru_ctx *ctx;
	uint8_t *buf;
	size_t size;
	volatile int stop;
	unsigned long ok, efault, other;
	int last_other;
};

static void *hammer_fn(void *arg)
{
	struct hammer *h = arg;
	unsigned long i = 0;

	while (!h->stop) {
		int ret = gru_store(h->ctx, h->buf + (i % (h->size / 8)) * 8, i);

		i++;

		if (!ret)
			h->ok++;
		else if (ret == -EFAULT)
			h->efault++;
		else {
			h->other++;
			h->last_other = ret;
		}
	}
	return NULL;
}

/* munmap while the device writes: stores fail with -EFAULT, nothing else. */
TEST_F(mem, munmap_racing_device_access)
{
	struct hammer h = { .ctx = &self->ctx };
	pthread_t t;

	for (int round = 0; round < 20; round++) {
		h.size = 4 * PAGE_SZ;
		h.buf = mmap(NULL, h.size, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, h.buf);
		h.stop = 0;
		h.ok = 0;
		ASSERT_EQ(0, pthread_create(&t, NULL, hammer_fn, &h));
		while (!h.ok)
			sched_yield();
		ASSERT_EQ(0, munmap(h.buf, h.size));
		/* once munmap returned, every later device store must fail */
		h.efault = 0;
		while (h.efault < 4 && !h.other)
			sched_yield();
		h.stop = 1;
		pthread_join(t, NULL);
		EXPECT_EQ(0, h.other) TH_LOG("unexpected error %d", h.last_other);
		EXPECT_EQ(-EFAULT, gru_store(&self->ctx, h.buf, 1));
	}
}

/* mremap moves the data; the old address is gone for the device. */
TEST_F(mem, mremap_moves_translation)
{
	uint8_t *n;
	uint64_t v;

	ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, 1, 0), 0x77));
	n = mremap(self->buf, self->size, self->size, MREMAP_MAYMOVE | MREMAP_FIXED,
		   self->buf + 64 * PAGE_SZ);
	if (n == MAP_FAILED) {
		n = mremap(self->buf, self->size, 2 * self->size, MREMAP_MAYMOVE);
		ASSERT_NE(MAP_FAILED, n);
		self->size *= 2;
	}
	ASSERT_NE(self->buf, n);
	EXPECT_EQ(-EFAULT, gru_load(&self->ctx, word(self->buf, 1, 0), &v));
	ASSERT_EQ(0, gru_load(&self->ctx, word(n, 1, 0), &v));
	EXPECT_EQ(0x77, v);
	ASSERT_EQ(0, gru_store(&self->ctx, word(n, 1, 0), 0x78));
	EXPECT_EQ(0x78, *word(n, 1, 0));
	self->buf = n;
}

/* MADV_DONTNEED drops the page: the device then reads zero, not old data. */
TEST_F(mem, madv_dontneed_drops_translation)
{
	uint64_t v;

	ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, 0, 0), 0x99));
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 0), &v));
	ASSERT_EQ(0x99, v);
	ASSERT_EQ(0, madvise(self->buf, self->size, MADV_DONTNEED));
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 0), &v));
	EXPECT_EQ(0, v);
	ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, 0, 0), 0x9a));
	EXPECT_EQ(0x9a, *word(self->buf, 0, 0));
}

/* move_pages to the other NUMA node: the device follows the new page. */
TEST_F(mem, migrate_across_numa_nodes)
{
	uint64_t *w = word(self->buf, 0, 0);
	uint64_t pfn0, v;
	int node;

	if (numa_nodes() < 2)
		SKIP(return, "one NUMA node (boot the guest with --numa 2)");
	ASSERT_EQ(0, gru_store(&self->ctx, w, 0x51));
	pfn0 = va_to_pfn(w);
	node = page_node(w);
	ASSERT_GE(node, 0);
	ASSERT_EQ(0, move_page_to(w, !node));
	ASSERT_EQ(!node, page_node(w));
	EXPECT_NE(pfn0, va_to_pfn(w));
	ASSERT_EQ(0, gru_load(&self->ctx, w, &v));
	EXPECT_EQ(0x51, v);
	ASSERT_EQ(0, gru_store(&self->ctx, w, 0x52));
	EXPECT_EQ(0x52, *w);
	/* and back, with the device writing just before */
	ASSERT_EQ(0, move_page_to(w, node));
	ASSERT_EQ(0, gru_fadd(&self->ctx, w, 1, &v));
	EXPECT_EQ(0x52, v);
	EXPECT_EQ(0x53, *w);
}

/*
 * MADV_PAGEOUT to zram swaps the pages out, so the device holds no pin; the
 * device then faults them back in.  Reclaim honours the device's accessed
 * bits (clear_flush_young), so the first pass may keep pages the device
 * just used: up to four passes, each clearing those bits.
 */
TEST_F(mem, pageout_to_swap)
{
	int swapped = 0, rounds = 0;
	uint64_t v;
	FILE *f = fopen("/proc/swaps", "r");
	char line[256];

	while (f && fgets(line, sizeof(line), f))
		swapped += line[0] == '/';
	if (f)
		fclose(f);
	if (!swapped)
		SKIP(return, "no swap device (run-guest-tests.sh sets up zram)");
	for (size_t p = 0; p < NPAGES; p++)
		ASSERT_EQ(0, gru_store(&self->ctx, word(self->buf, p, 0), 0x600 + p));
	for (rounds = 1; rounds <= 4; rounds++) {
		/*
		 * Pages faulted in by the kernel worker sit in that CPU's LRU
		 * batch, which MADV_PAGEOUT can't isolate; compaction drains
		 * every CPU's batch (lru_add_drain_all()).
		 */
		write_str("/proc/sys/vm/compact_memory", "1");
		ASSERT_EQ(0, madvise(self->buf, self->size, MADV_PAGEOUT));
		swapped = 0;
		for (size_t p = 0; p < NPAGES; p++)
			swapped += !!(pagemap_entry(word(self->buf, p, 0)) & PM_SWAP);
		if (swapped == NPAGES)
			break;
	}
	TH_LOG("%d of %d pages swapped out after %d MADV_PAGEOUT passes",
	       swapped, NPAGES, rounds);
	/* a page the device held a reference to could not have been swapped */
	EXPECT_EQ(NPAGES, swapped);
	for (size_t p = 0; p < NPAGES; p++) {
		ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, p, 0), &v));
		EXPECT_EQ(0x600 + p, v);
	}
	EXPECT_TRUE(pagemap_entry(self->buf) & PM_PRESENT);
}

static int idle_bit(uint64_t pfn, int set)
{
	uint64_t w = 0;
	off_t off = (off_t)(pfn / 64 * 8);
	int fd = open("/sys/kernel/mm/page_idle/bitmap", O_RDWR);
	int ret;

	if (fd < 0)
		return -errno;
	if (set) {
		w = 1ULL << (pfn % 64);
		ret = pwrite(fd, &w, 8, off) == 8 ? 0 : -errno;
	} else {
		ret = pread(fd, &w, 8, off) == 8 ? (int)(w >> (pfn % 64) & 1) : -errno;
	}
	close(fd);
	return ret;
}

/*
 * Aging: a page the device accessed is reported young through the
 * notifier's clear_young (idle page tracking), one it did not stays idle.
 */
TEST_F(mem, device_access_clears_page_idle)
{
	uint64_t used, unused, v;

	if (access("/sys/kernel/mm/page_idle/bitmap", R_OK | W_OK))
		SKIP(return, "no /sys/kernel/mm/page_idle/bitmap (IDLE_PAGE_TRACKING)");
	*word(self->buf, 0, 0) = 1;
	*word(self->buf, 1, 0) = 2;
	/*
	 * Idle tracking skips folios that are not on an LRU list yet, and new
	 * anon folios wait in a per-CPU batch: compaction drains every CPU's.
	 * It may also move the pages, so their PFNs are read only after it.
	 */
	write_str("/proc/sys/vm/compact_memory", "1");
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 0), &v));
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 1, 0), &v));
	used = va_to_pfn(word(self->buf, 0, 0));
	unused = va_to_pfn(word(self->buf, 1, 0));
	ASSERT_NE(0, used);
	ASSERT_NE(0, unused);
	/* marking idle clears the CPU's and the device's accessed bits */
	ASSERT_EQ(0, idle_bit(used, 1));
	ASSERT_EQ(0, idle_bit(unused, 1));
	ASSERT_EQ(1, idle_bit(used, 0));
	ASSERT_EQ(1, idle_bit(unused, 0));
	/* only the device touches the first page now */
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 0), &v));
	EXPECT_EQ(1, v);
	EXPECT_EQ(0, idle_bit(used, 0));
	EXPECT_EQ(1, idle_bit(unused, 0));
}

/* KSM merges two identical pages; a device write breaks the merge (COW). */
TEST_F_TIMEOUT(mem, ksm_merge_then_device_write, 120)
{
	uint8_t *a = map_aligned(2 * PAGE_SZ, PAGE_SZ);
	uint64_t v;
	int i;

	if (read_num("/sys/kernel/mm/ksm/run") != 1 &&
	    write_str("/sys/kernel/mm/ksm/run", "1"))
		SKIP(return, "KSM not available");
	ASSERT_NE(NULL, a);
	memset(a, 0x5e, 2 * PAGE_SZ);
	ASSERT_EQ(0, gru_load(&self->ctx, a, &v));
	ASSERT_EQ(0, gru_load(&self->ctx, a + PAGE_SZ, &v));
	ASSERT_EQ(0, madvise(a, 2 * PAGE_SZ, MADV_MERGEABLE));
	/* bounded by scans, not by time: ksmd runs with sleep_millisecs=0 */
	for (i = 0; i < 2000 && va_to_pfn(a) != va_to_pfn(a + PAGE_SZ); i++)
		usleep(10000);
	if (va_to_pfn(a) != va_to_pfn(a + PAGE_SZ))
		SKIP(return, "ksmd did not merge within %d polls", i);
	EXPECT_TRUE(kpageflags(va_to_pfn(a)) >> KPF_KSM_BIT & 1);
	ASSERT_EQ(0, gru_load(&self->ctx, a + PAGE_SZ, &v));
	EXPECT_EQ(0x5e5e5e5e5e5e5e5eULL, v);
	ASSERT_EQ(0, gru_store(&self->ctx, a, 1));
	EXPECT_EQ(1, *(uint64_t *)a);
	EXPECT_EQ(0x5e5e5e5e5e5e5e5eULL, *(uint64_t *)(a + PAGE_SZ));
	EXPECT_NE(va_to_pfn(a), va_to_pfn(a + PAGE_SZ));
	ASSERT_EQ(0, gru_load(&self->ctx, a + PAGE_SZ, &v));
	EXPECT_EQ(0x5e5e5e5e5e5e5e5eULL, v);
	madvise(a, 2 * PAGE_SZ, MADV_UNMERGEABLE);
	munmap(a, 2 * PAGE_SZ);
}

/*
 * An instruction that stalled on the OS for too long while others waited
 * for a hardware context is failed with GRU_ERR_PREEMPTED (-EAGAIN) before
 * it did anything, and is to be issued again.  On a loaded host a worker's
 * first-touch fault can take that long.
 */
static int reissue_store(struct gru_ctx *c, uint64_t *va, uint64_t val,
			 unsigned long long *preempted)
{
	int r, n = 0;

	while ((r = gru_store(c, va, val)) == -EAGAIN && ++n < 100)
		(*preempted)++;
	return r;
}

static int reissue_load(struct gru_ctx *c, uint64_t *va, uint64_t *val,
			unsigned long long *preempted)
{
	int r, n = 0;

	while ((r = gru_load(c, va, val)) == -EAGAIN && ++n < 100)
		(*preempted)++;
	return r;
}

/* More processes than hardware contexts: contexts are stolen, data stays right. */
TEST_F_TIMEOUT(mem, more_processes_than_contexts, 600)
{
	struct gru_info info;
	struct gru_ctx_stats st;
	unsigned int n;
	int go[2], res[2], status, failed = 0;
	unsigned long long steals = 0, loads = 0, preempted = 0;

	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	n = 2 * info.hw_contexts + 1;
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(res));
	for (unsigned int k = 0; k < n; k++) {
		pid_t pid = fork();

		ASSERT_GE(pid, 0);
		if (pid == 0) {
			struct gru_ctx c;
			uint64_t *m = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			unsigned long long r[3] = { 0 };
			uint64_t v;
			char ch;

			close(go[1]);
			if (m == MAP_FAILED || gru_open(&c, GRU_LIB_AUTO_CALLOS))
				_exit(1);
			if (variant->callos && gru_set_callos(&c, 1))
				_exit(2);
			if (gru_nop(&c))
				_exit(3);
			/* everyone holds a context before anyone goes on */
			if (read(go[0], &ch, 1) != 0)
				_exit(4);
			for (int i = 0; i < 50; i++) {
				int e = reissue_store(&c, &m[i % 64],
						      (uint64_t)k << 32 | i,
						      &r[2]);

				if (e)	/* 9: preempted 100 times in a row */
					_exit(e == -EAGAIN ? 9 : 5);
				if (reissue_load(&c, &m[i % 64], &v, &r[2]) ||
				    v != ((uint64_t)k << 32 | i) || m[i % 64] != v)
					_exit(6);
			}
			if (gru_stats(&c, &st))
				_exit(7);
			r[0] = st.steals;
			r[1] = st.loads;
			if (write(res[1], r, sizeof(r)) != sizeof(r))
				_exit(8);
			_exit(0);
		}
	}
	close(go[0]);
	close(res[1]);
	close(go[1]);	/* EOF releases every child */
	for (unsigned int k = 0; k < n; k++) {
		ASSERT_GT(wait(&status), 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			failed++;
			TH_LOG("child failed: status %#x", status);
		}
	}
	for (;;) {
		unsigned long long r[3];

		if (read(res[0], r, sizeof(r)) != sizeof(r))
			break;
		steals += r[0];
		loads += r[1];
		preempted += r[2];
	}
	close(res[0]);
	EXPECT_EQ(0, failed);
	EXPECT_GT(steals, 0);
	EXPECT_GE(loads, n);
	TH_LOG("%u processes on %u hardware contexts: %llu steals, %llu loads, %llu preempted and reissued",
	       n, info.hw_contexts, steals, loads, preempted);
}

/* A process killed or exiting with instructions in flight leaves no harm. */
TEST_F_TIMEOUT(mem, exit_and_kill_with_instructions_in_flight, 300)
{
	uint64_t v;

	for (int i = 0; i < 16; i++) {
		int p[2], status;
		char c;
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			struct gru_ctx c2;
			size_t len = 32UL << 20;
			uint8_t *big = mmap(NULL, len, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			struct gru_insn in = {
				.opcode = GRU_OPC_BCOPY, .len = len / 2,
			};

			if (big == MAP_FAILED || gru_open(&c2, 0))
				_exit(1);
			in.addr = (uintptr_t)big;
			in.src = (uintptr_t)big + len / 2;
			if (gru_issue(&c2, &in))
				_exit(2);
			if (write(p[1], "r", 1) != 1)
				_exit(3);
			if (i & 1)
				_exit(0);	/* exit, instruction running */
			pause();		/* to be killed */
			_exit(4);
		}
		close(p[1]);
		ASSERT_EQ(1, read(p[0], &c, 1));
		close(p[0]);
		if (!(i & 1))
			kill(pid, SIGKILL);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		if (i & 1) {
			EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		} else {
			EXPECT_TRUE(WIFSIGNALED(status));
		}
	}
	/* the device still serves this process */
	*word(self->buf, 0, 0) = 5;
	ASSERT_EQ(0, gru_load(&self->ctx, word(self->buf, 0, 0), &v));
	EXPECT_EQ(5, v);
}

TEST_HARNESS_MAIN
