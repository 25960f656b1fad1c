// SPDX-License-Identifier: GPL-2.0
/*
 * Safety rules that no other test pins down:
 *
 * - batch_walk: a batched fill takes its neighbours from the PTE table of
 *   the faulting address only, whatever the address's offset in its page.
 *   Any entry the device holds for memory it never touched came from a
 *   word that was not that memory's PTE.
 * - ioctls_owner_only: every ioctl of a context is refused (-EPERM) to a
 *   process other than the context's own mm, whether it inherited the fd
 *   by fork or was handed it over a unix socket, and such a call neither
 *   changes the context nor reveals anything about it.
 * - pkey: the device is a remote agent and ignores protection keys, like
 *   get_user_pages_remote(), IOMMU SVA and KVM: whatever the issuing
 *   thread's PKRU says, device loads and stores of pkey-tagged memory
 *   succeed, whichever path fills the miss.
 * - shadow_stack: the device may read a shadow stack but never write it.
 * - preempt_rt: on PREEMPT_RT no miss is filled by the hard-IRQ walk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#ifndef __NR_map_shadow_stack
#define __NR_map_shadow_stack	453
#endif
/* map_shadow_stack() flag: put a restore token at the top */
#define GRU_SHSTK_SET_TOKEN	0x1

/* ------------------------------------------------------------------ */
/* batch_walk                                                          */
/* ------------------------------------------------------------------ */

/* one PTE table maps this much (x86-64, 4 KiB pages) */
#define PTE_TABLE_SPAN		HPAGE_SZ
#define PTES_PER_TABLE		(PTE_TABLE_SPAN / PAGE_SZ)
/* the largest batch gru_ctx_opts.batch accepts */
#define BATCH_MAX		16
/* pages at the end of the region the CPU writes so that their PTEs exist */
#define TAIL_PAGES		BATCH_MAX
/* failing trials described one by one; the rest are only counted */
#define WALK_LOG_MAX		8

FIXTURE(batch_walk)
{
	struct gru_ctx ctx;
	unsigned long trials;
	unsigned long logged;
	unsigned long wrong_hit_trials;	/* trials with entries in the next region */
	unsigned long wrong_hits;	/* such entries, summed */
	unsigned long over_batch;	/* more neighbours than the table holds */
	unsigned long bad_data;		/* load failed or returned wrong data */
	unsigned long bad_path;		/* miss not filled by the expected path */
	unsigned long stale;		/* entry present before the device access */
	unsigned long long fill_batch;
	unsigned long long fill_irq;
	unsigned long long fill_worker;
};

FIXTURE_VARIANT(batch_walk)
{
	uint32_t fill_mode;
	bool next_mapped;	/* next region mapped and populated by the CPU */
};

FIXTURE_VARIANT_ADD(batch_walk, irq_fill_next_region_unmapped)
{
	.fill_mode = GRU_FILL_IRQ, .next_mapped = false,
};

FIXTURE_VARIANT_ADD(batch_walk, irq_fill_next_region_populated)
{
	.fill_mode = GRU_FILL_IRQ, .next_mapped = true,
};

FIXTURE_VARIANT_ADD(batch_walk, worker_fill_next_region_unmapped)
{
	.fill_mode = GRU_FILL_WORKER, .next_mapped = false,
};

FIXTURE_VARIANT_ADD(batch_walk, worker_fill_next_region_populated)
{
	.fill_mode = GRU_FILL_WORKER, .next_mapped = true,
};

FIXTURE_SETUP(batch_walk)
{
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	/* no call-OS: a miss must be filled by the mode under test */
	ASSERT_EQ(0, gru_open(&self->ctx, 0));
}

FIXTURE_TEARDOWN(batch_walk)
{
	if (self->ctx.win)
		gru_close(&self->ctx);
}

/* decoy PTE tables allocated just before, and just after, the region's */
#define DECOY_TABLES		8
#define DECOY_SPAN		(DECOY_TABLES * PTE_TABLE_SPAN)

/*
 * DECOY_TABLES 2 MiB-aligned regions of 4 KiB pages, each with its first
 * BATCH_MAX pages written by the CPU: that allocates DECOY_TABLES PTE
 * tables in a row, each starting with present entries.
 */
static uint8_t *decoy_tables(void)
{
	uint8_t *d = map_aligned(DECOY_SPAN, PTE_TABLE_SPAN);

	if (!d)
		return NULL;
	if (madvise(d, DECOY_SPAN, MADV_NOHUGEPAGE)) {
		munmap(d, DECOY_SPAN);
		return NULL;
	}
	for (unsigned int t = 0; t < DECOY_TABLES; t++)
		for (unsigned int i = 0; i < BATCH_MAX; i++)
			*(volatile uint64_t *)(d + t * PTE_TABLE_SPAN + i * PAGE_SZ) = i;
	return d;
}

static bool probe_hit(struct gru_ctx *ctx, uint64_t va, uint32_t *shift)
{
	struct gru_tlb_probe p;

	if (gru_tlb_probe(ctx, va, &p))
		return false;
	if (shift)
		*shift = p.size_shift;
	return p.hit;
}

/*
 * One trial: a 2 MiB-aligned region of 4 KiB pages whose last TAIL_PAGES
 * pages the CPU has written, followed by a second 2 MiB region that the
 * device never touches.  The device loads from page (last - @k) at @off,
 * with batch @batch; the walk may take up to k neighbours from the same
 * table, and nothing beyond it.
 */
static void walk_trial(struct __test_metadata *_metadata,
		       FIXTURE_DATA(batch_walk) *self,
		       const FIXTURE_VARIANT(batch_walk) *variant,
		       unsigned int batch, unsigned int k, unsigned int off)
{
	struct gru_ctx_stats s0, s1;
	uint8_t *decoy_before, *decoy_after;
	unsigned long hits = 0, first_hit = 0, stale = 0;
	unsigned long long extra, fills;
	uint32_t shift = 0, first_shift = 0;
	uint8_t *reg, *next, *fault_page;
	uint64_t want, got = 0;
	unsigned int limit;
	int ret;

	self->trials++;
	reg = map_aligned(2 * PTE_TABLE_SPAN, PTE_TABLE_SPAN);
	ASSERT_NE(NULL, reg);
	/* 4 KiB PTEs: a THP would be one 2 MiB entry and no table at all */
	ASSERT_EQ(0, madvise(reg, 2 * PTE_TABLE_SPAN, MADV_NOHUGEPAGE));
	next = reg + PTE_TABLE_SPAN;
	if (variant->next_mapped) {
		/* real PTEs in the next table, none of them device-accessed */
		for (unsigned long i = 0; i < PTE_TABLE_SPAN; i += PAGE_SZ)
			*(volatile uint64_t *)(next + i) = ~(uint64_t)i;
	} else {
		ASSERT_EQ(0, munmap(next, PTE_TABLE_SPAN));
	}
	/*
	 * Page tables are allocated one after the other from the same free
	 * lists, so the page physically next to the region's PTE table is
	 * likely another fresh table.  Allocate some just before and some
	 * just after it, all holding present PTEs: a walk that runs off the end
	 * of its table then finds plausible translations rather than zeros,
	 * and the defect shows whether or not the next region is mapped.
	 */
	decoy_before = decoy_tables();
	ASSERT_NE(NULL, decoy_before);
	/* present, writable, dirty PTEs: the walk accepts them as neighbours */
	for (unsigned int i = 0; i < TAIL_PAGES; i++) {
		uint8_t *pg = next - (TAIL_PAGES - i) * PAGE_SZ;

		*(volatile uint64_t *)(pg + off) =
			0x5afe000000000000ULL | (uint64_t)self->trials << 8 | i;
	}
	decoy_after = decoy_tables();
	ASSERT_NE(NULL, decoy_after);
	fault_page = next - (k + 1) * PAGE_SZ;
	want = *(uint64_t *)(fault_page + off);

	/*
	 * The range is fresh, so the device can hold nothing for it yet; an
	 * entry here would be a leftover that could hide or fake a result.
	 */
	if (probe_hit(&self->ctx, (uintptr_t)fault_page, NULL))
		stale++;
	for (unsigned int i = 0; i < BATCH_MAX; i++)
		if (probe_hit(&self->ctx, (uintptr_t)(next + i * PAGE_SZ), NULL))
			stale++;

	ASSERT_EQ(0, gru_stats(&self->ctx, &s0));
	ret = gru_load(&self->ctx, fault_page + off, &got);
	ASSERT_EQ(0, gru_stats(&self->ctx, &s1));

	/* the device never accessed the next region: it must hold nothing there */
	for (unsigned long i = 0; i < PTES_PER_TABLE; i++) {
		if (!probe_hit(&self->ctx, (uintptr_t)(next + i * PAGE_SZ), &shift))
			continue;
		if (!hits++) {
			first_hit = i;
			first_shift = shift;
		}
	}

	extra = s1.fill_batch - s0.fill_batch;
	fills = (s1.fill_irq - s0.fill_irq) + (s1.fill_worker - s0.fill_worker);
	limit = batch - 1 < k ? batch - 1 : k;
	self->fill_batch += extra;
	self->fill_irq += s1.fill_irq - s0.fill_irq;
	self->fill_worker += s1.fill_worker - s0.fill_worker;

	if (stale)
		self->stale++;
	if (ret || got != want)
		self->bad_data++;
	if (hits) {
		self->wrong_hit_trials++;
		self->wrong_hits += hits;
	}
	if (extra > limit)
		self->over_batch++;
	if (variant->fill_mode == GRU_FILL_WORKER ?
	    (s1.fill_worker == s0.fill_worker || s1.fill_irq != s0.fill_irq) :
	    !fills)
		self->bad_path++;

	if ((stale || ret || got != want || hits || extra > limit) &&
	    self->logged++ < WALK_LOG_MAX)
		TH_LOG("batch %u, load at last page - %u + %#x: %s, got %#llx want %#llx; "
		       "%lu entries in the next region (first +%#lx, shift %u); "
		       "%llu neighbours (at most %u); %lu leftover entries",
		       batch, k, off, ret ? strerror(-ret) : "ok",
		       (unsigned long long)got, (unsigned long long)want,
		       hits, first_hit * PAGE_SZ, first_shift, extra, limit, stale);

	ASSERT_EQ(0, munmap(decoy_before, DECOY_SPAN));
	ASSERT_EQ(0, munmap(decoy_after, DECOY_SPAN));
	if (!variant->next_mapped) {
		/*
		 * Map the next region again so that the munmap below covers
		 * it: that invalidates whatever the device holds there, and
		 * the next trial (perhaps at an overlapping address) starts
		 * clean.  NOREPLACE: never clobber a mapping made meanwhile.
		 */
		if (mmap(next, PTE_TABLE_SPAN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0) == next) {
			ASSERT_EQ(0, munmap(reg, 2 * PTE_TABLE_SPAN));
		} else {
			ASSERT_EQ(0, munmap(reg, PTE_TABLE_SPAN));
		}
	} else {
		ASSERT_EQ(0, munmap(reg, 2 * PTE_TABLE_SPAN));
	}
}

/*
 * For every batch 1..16, every byte offset in {0, 8, 0x800, 0xff8} and
 * every faulting page from which that batch reaches the end of the table
 * (last - (batch - 1) .. last), the device gets no entry in the next 2 MiB
 * region, the neighbours it takes are at most those left in the table, and
 * the load returns the CPU's data.
 */
TEST_F_TIMEOUT(batch_walk, never_leaves_its_pte_table, 900)
{
	static const unsigned int offs[] = { 0, 8, 0x800, 0xff8 };

	for (unsigned int b = 1; b <= BATCH_MAX; b++) {
		struct gru_ctx_opts o = { .fill_mode = variant->fill_mode, .batch = b };
		struct gru_ctx_opts back;

		ASSERT_EQ(0, gru_set_opts(&self->ctx, &o));
		ASSERT_EQ(0, gru_get_opts(&self->ctx, &back));
		ASSERT_EQ(b, back.batch);
		for (unsigned int j = 0; j < ARRAY_SIZE(offs); j++)
			for (unsigned int k = 0; k < b; k++)
				walk_trial(_metadata, self, variant, b, k, offs[j]);
	}
	TH_LOG("%lu trials: %lu with entries in the next region (%lu entries), "
	       "%lu with too many neighbours, %lu bad loads, %lu wrong fill path, "
	       "%lu with leftovers; neighbours %llu, fills irq %llu worker %llu",
	       self->trials, self->wrong_hit_trials, self->wrong_hits,
	       self->over_batch, self->bad_data, self->bad_path, self->stale,
	       self->fill_batch, self->fill_irq, self->fill_worker);
	EXPECT_EQ(0, self->wrong_hit_trials);
	EXPECT_EQ(0, self->over_batch);
	EXPECT_EQ(0, self->bad_data);
	EXPECT_EQ(0, self->bad_path);
	EXPECT_EQ(0, self->stale);
	/* the trials are only meaningful if batching was really at work */
	EXPECT_GT(self->fill_batch, 0);
	if (variant->fill_mode == GRU_FILL_IRQ) {
		EXPECT_GT(self->fill_irq, 0);
	}
}

/* ------------------------------------------------------------------ */
/* ioctls_owner_only                                                   */
/* ------------------------------------------------------------------ */

/* any ioctl argument; unused bytes hold a pattern that must survive */
union ioc_arg {
	struct gru_info info;
	struct gru_ctx_opts opts;
	struct gru_call_os call_os;
	struct gru_ctx_stats stats;
	struct gru_tlb_probe probe;
	struct gru_wait wait;
	unsigned char raw[256];
};

struct ioc_result {
	int ret;
	int err;
	int arg_changed;	/* the driver wrote into the argument */
	union ioc_arg arg;
};

/* what the stranger is asked to do */
struct ioc_request {
	unsigned long req;
	uint64_t va;
};

#define ARG_PATTERN	0xa5

/*
 * The argument a non-owner passes: valid in every field the driver reads,
 * so that only the ownership rule can refuse it.  SET_OPTS asks for what
 * broke the owner before (call-OS, which made its next store -EAGAIN).
 */
static void ioc_fill_arg(unsigned long req, uint64_t va, union ioc_arg *a)
{
	memset(a, ARG_PATTERN, sizeof(*a));
	switch (req) {
	case GRU_IOC_SET_OPTS:
		memset(&a->opts, 0, sizeof(a->opts));
		a->opts.flags = GRU_OPT_CALLOS;
		a->opts.fill_mode = GRU_FILL_WORKER;
		a->opts.batch = BATCH_MAX;
		break;
	case GRU_IOC_TLB_PROBE:
		a->probe.va = va;
		memset(a->probe.reserved, 0, sizeof(a->probe.reserved));
		break;
	case GRU_IOC_WAIT:
		a->wait.timeout_ms = 0;
		memset(a->wait.reserved, 0, sizeof(a->wait.reserved));
		break;
	default:
		break;
	}
}

static struct ioc_result ioc_call(int fd, unsigned long req, uint64_t va)
{
	struct ioc_result r;
	union ioc_arg before;

	memset(&r, 0, sizeof(r));
	ioc_fill_arg(req, va, &r.arg);
	before = r.arg;
	r.ret = ioctl(fd, req, &r.arg);
	r.err = r.ret < 0 ? errno : 0;
	r.arg_changed = memcmp(&before, &r.arg, _IOC_SIZE(req)) != 0;
	return r;
}

/*
 * The unrelated process: it never had the fd before it arrives over the
 * socket, and it has its own mm.  One request per message, answered with
 * the ioctl's outcome; EOF ends it.
 */
static void stranger_loop(int sock)
{
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct ioc_request rq;
		struct ioc_result r;
		struct iovec iov = { &rq, sizeof(rq) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		struct cmsghdr *cm;
		ssize_t n;
		int fd = -1;

		n = recvmsg(sock, &mh, 0);
		if (n == 0)
			_exit(0);
		if (n != sizeof(rq))
			_exit(1);
		cm = CMSG_FIRSTHDR(&mh);
		if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
		if (fd < 0)
			_exit(2);
		r = ioc_call(fd, rq.req, rq.va);
		close(fd);
		if (write(sock, &r, sizeof(r)) != sizeof(r))
			_exit(3);
	}
}

FIXTURE(ioctls_owner_only)
{
	struct gru_ctx ctx;
	uint64_t *page;		/* device-touched: what a probe could reveal */
	uint64_t *stall_page;	/* target of the CALL_OS variant's stall */
	struct gru_ctx_opts opts;	/* what the owner set */
	int sock;
	pid_t stranger;
};

FIXTURE_VARIANT(ioctls_owner_only)
{
	unsigned long req;
};

FIXTURE_VARIANT_ADD(ioctls_owner_only, info) { .req = GRU_IOC_INFO };
FIXTURE_VARIANT_ADD(ioctls_owner_only, set_opts) { .req = GRU_IOC_SET_OPTS };
FIXTURE_VARIANT_ADD(ioctls_owner_only, get_opts) { .req = GRU_IOC_GET_OPTS };
FIXTURE_VARIANT_ADD(ioctls_owner_only, call_os) { .req = GRU_IOC_CALL_OS };
FIXTURE_VARIANT_ADD(ioctls_owner_only, stats) { .req = GRU_IOC_STATS };
FIXTURE_VARIANT_ADD(ioctls_owner_only, tlb_probe) { .req = GRU_IOC_TLB_PROBE };
FIXTURE_VARIANT_ADD(ioctls_owner_only, wait) { .req = GRU_IOC_WAIT };

FIXTURE_SETUP(ioctls_owner_only)
{
	int sv[2];

	self->sock = -1;
	self->stranger = -1;
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	/* the stranger is forked before the context exists: it inherits no fd */
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
	self->stranger = fork();
	ASSERT_GE(self->stranger, 0);
	if (self->stranger == 0) {
		close(sv[0]);
		stranger_loop(sv[1]);
	}
	close(sv[1]);
	self->sock = sv[0];

	self->page = mmap(NULL, 2 * PAGE_SZ, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->page);
	self->stall_page = self->page + PAGE_SZ / 8;
	/* no auto call-OS: a context switched to call-OS shows as -EAGAIN */
	ASSERT_EQ(0, gru_open(&self->ctx, 0));
	self->opts = (struct gru_ctx_opts){ .fill_mode = GRU_FILL_IRQ, .batch = 2 };
	ASSERT_EQ(0, gru_set_opts(&self->ctx, &self->opts));
	/* loaded, with an ASID and an entry: there is something to reveal */
	ASSERT_EQ(0, gru_store(&self->ctx, self->page, 0x0123));
	ASSERT_EQ(0x0123, *self->page);
}

FIXTURE_TEARDOWN(ioctls_owner_only)
{
	int status;

	if (self->ctx.win)
		gru_close(&self->ctx);
	if (self->sock >= 0)
		close(self->sock);
	if (self->stranger > 0)
		waitpid(self->stranger, &status, 0);
	if (self->page && self->page != MAP_FAILED)
		munmap(self->page, 2 * PAGE_SZ);
}

/* For CALL_OS the owner must be stalled, or there is nothing to take over. */
static void owner_prepare(struct __test_metadata *_metadata,
			  FIXTURE_DATA(ioctls_owner_only) *self,
			  const FIXTURE_VARIANT(ioctls_owner_only) *variant)
{
	struct gru_insn in = {
		.opcode = GRU_OPC_STORE, .addr = (uintptr_t)self->stall_page,
		.op0 = 0x57a1,
	};

	if (variant->req != GRU_IOC_CALL_OS)
		return;
	self->opts.flags = GRU_OPT_CALLOS;
	ASSERT_EQ(0, gru_set_opts(&self->ctx, &self->opts));
	ASSERT_EQ(0, gru_issue(&self->ctx, &in));
	/* an untouched page: the fast path can't fill it, so it stalls */
	ASSERT_EQ(-EAGAIN, gru_wait(&self->ctx, NULL));
}

/*
 * After a refused call: the owner's options are what it set, a CALL_OS
 * stall is still the owner's to resolve, and stores and loads work.  The
 * store goes to an untouched page, so a context switched to call-OS (and
 * not told so) would report -EAGAIN here.
 */
static void owner_intact(struct __test_metadata *_metadata,
			 FIXTURE_DATA(ioctls_owner_only) *self,
			 bool stalled)
{
	struct gru_ctx_opts now;
	uint64_t *fresh, v = 0;

	if (stalled) {
		ASSERT_EQ(-EAGAIN, gru_wait(&self->ctx, NULL));
		ASSERT_EQ(0, gru_call_os(&self->ctx, NULL));
		ASSERT_EQ(0, gru_wait(&self->ctx, NULL));
		EXPECT_EQ(0x57a1, *self->stall_page);
	}
	ASSERT_EQ(0, gru_get_opts(&self->ctx, &now));
	EXPECT_EQ(self->opts.flags, now.flags);
	EXPECT_EQ(self->opts.fill_mode, now.fill_mode);
	EXPECT_EQ(self->opts.batch, now.batch);

	if (self->opts.flags & GRU_OPT_CALLOS)
		self->ctx.lib_flags |= GRU_LIB_AUTO_CALLOS;
	fresh = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, fresh);
	EXPECT_EQ(0, gru_store(&self->ctx, fresh, 0x0a7e));
	EXPECT_EQ(0x0a7e, *fresh);
	EXPECT_EQ(0, gru_load(&self->ctx, self->page, &v));
	EXPECT_EQ(0x0123, v);
	munmap(fresh, PAGE_SZ);
}

static void expect_refused(struct __test_metadata *_metadata,
			   const struct ioc_result *r, const char *who)
{
	EXPECT_EQ(-1, r->ret) TH_LOG("%s: ioctl returned %d", who, r->ret);
	EXPECT_EQ(EPERM, r->err) TH_LOG("%s: errno %d (%s)", who, r->err,
					strerror(r->err));
	/* a refused call tells nothing: ASID, addresses, counters, options */
	EXPECT_EQ(0, r->arg_changed) TH_LOG("%s: the argument was written", who);
}

/* A child that inherited the fd across fork is refused, and changes nothing. */
TEST_F(ioctls_owner_only, forked_child_with_inherited_fd_gets_eperm)
{
	struct ioc_result r;
	int p[2], status;
	pid_t pid;

	owner_prepare(_metadata, self, variant);
	ASSERT_EQ(0, pipe(p));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		r = ioc_call(self->ctx.fd, variant->req, (uintptr_t)self->page);
		_exit(write(p[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	ASSERT_EQ(sizeof(r), read(p[0], &r, sizeof(r)));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(p[0]);
	close(p[1]);
	expect_refused(_metadata, &r, "forked child");
	owner_intact(_metadata, self, variant->req == GRU_IOC_CALL_OS);
}

/* A process given the fd with SCM_RIGHTS is refused, and changes nothing. */
TEST_F(ioctls_owner_only, process_given_fd_over_unix_socket_gets_eperm)
{
	struct ioc_request rq = { variant->req, (uintptr_t)self->page };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &rq, sizeof(rq) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	struct ioc_result r;

	owner_prepare(_metadata, self, variant);
	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &self->ctx.fd, sizeof(int));
	ASSERT_EQ(sizeof(rq), sendmsg(self->sock, &mh, 0));
	ASSERT_EQ(sizeof(r), read(self->sock, &r, sizeof(r)));
	expect_refused(_metadata, &r, "fd receiver");
	owner_intact(_metadata, self, variant->req == GRU_IOC_CALL_OS);
}

/* The owner itself, with the very argument the others were refused, succeeds. */
TEST_F(ioctls_owner_only, owner_itself_succeeds)
{
	struct gru_ctx_opts now;
	struct ioc_result r;

	owner_prepare(_metadata, self, variant);
	r = ioc_call(self->ctx.fd, variant->req, (uintptr_t)self->page);
	ASSERT_EQ(0, r.ret) TH_LOG("owner: errno %d (%s)", r.err, strerror(r.err));
	switch (variant->req) {
	case GRU_IOC_INFO:
		EXPECT_NE(0, r.arg.info.asid);
		EXPECT_GE(r.arg.info.hw_contexts, 1);
		EXPECT_EQ(GRU_WINDOW_SIZE, r.arg.info.window_size);
		break;
	case GRU_IOC_SET_OPTS:
		ASSERT_EQ(0, gru_get_opts(&self->ctx, &now));
		EXPECT_EQ(GRU_OPT_CALLOS, now.flags);
		EXPECT_EQ(GRU_FILL_WORKER, now.fill_mode);
		EXPECT_EQ(BATCH_MAX, now.batch);
		ASSERT_EQ(0, gru_set_opts(&self->ctx, &self->opts));
		break;
	case GRU_IOC_GET_OPTS:
		EXPECT_EQ(self->opts.flags, r.arg.opts.flags);
		EXPECT_EQ(self->opts.fill_mode, r.arg.opts.fill_mode);
		EXPECT_EQ(self->opts.batch, r.arg.opts.batch);
		break;
	case GRU_IOC_CALL_OS:
		EXPECT_EQ((uintptr_t)self->stall_page, r.arg.call_os.va);
		EXPECT_EQ(1, r.arg.call_os.write);
		ASSERT_EQ(0, gru_wait(&self->ctx, NULL));
		EXPECT_EQ(0x57a1, *self->stall_page);
		break;
	case GRU_IOC_STATS:
		EXPECT_GE(r.arg.stats.faults, 1);
		EXPECT_GE(r.arg.stats.fill_irq + r.arg.stats.fill_worker, 1);
		break;
	case GRU_IOC_TLB_PROBE:
		EXPECT_EQ(1, r.arg.probe.hit);
		break;
	case GRU_IOC_WAIT:
		EXPECT_EQ(GRU_ST_DONE, r.arg.wait.status);
		break;
	}
	owner_intact(_metadata, self, false);
}

/* ------------------------------------------------------------------ */
/* pkey                                                                */
/* ------------------------------------------------------------------ */

FIXTURE(pkey)
{
	struct gru_ctx ctx;
	int pkey;
};

FIXTURE_VARIANT(pkey)
{
	uint32_t fill_mode;
	bool callos;
};

FIXTURE_VARIANT_ADD(pkey, irq_fill) { .fill_mode = GRU_FILL_IRQ };
FIXTURE_VARIANT_ADD(pkey, worker_fill) { .fill_mode = GRU_FILL_WORKER };
/* call-OS with the worker mode: every miss is resolved by this thread */
FIXTURE_VARIANT_ADD(pkey, call_os) { .fill_mode = GRU_FILL_WORKER, .callos = true };

FIXTURE_SETUP(pkey)
{
	struct gru_ctx_opts o = { .fill_mode = variant->fill_mode, .batch = 1 };

	self->pkey = -1;
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	self->pkey = pkey_alloc(0, 0);
	if (self->pkey < 0 && (errno == ENOSPC || errno == EINVAL || errno == ENOSYS))
		SKIP(return, "no protection keys on this CPU or kernel (pkey_alloc: %s)",
		     strerror(errno));
	ASSERT_GE(self->pkey, 0);
	ASSERT_EQ(0, gru_open(&self->ctx, variant->callos ? GRU_LIB_AUTO_CALLOS : 0));
	ASSERT_EQ(0, gru_set_opts(&self->ctx, &o));
	if (variant->callos) {
		ASSERT_EQ(0, gru_set_callos(&self->ctx, 1));
	}
}

FIXTURE_TEARDOWN(pkey)
{
	if (self->pkey >= 0) {
		pkey_set(self->pkey, 0);
		pkey_free(self->pkey);
	}
	if (self->ctx.win)
		gru_close(&self->ctx);
}

/*
 * Fresh pkey-tagged pages, so that each access misses: a load from a page
 * the CPU wrote, a store to a page the CPU wrote (a walk can fill both),
 * and a store to a page nobody touched (it must be faulted in first).
 * While the device works, this thread's PKRU holds @rights for the key.
 */
static void pkey_case(struct __test_metadata *_metadata,
		      FIXTURE_DATA(pkey) *self,
		      const FIXTURE_VARIANT(pkey) *variant, unsigned int rights)
{
	struct gru_exc e_ld = { 0 }, e_st = { 0 }, e_new = { 0 };
	struct gru_ctx_stats s0, s1;
	uint64_t *ld, *st, *untouched, v = 0;
	int r_ld, r_st, r_new;
	uint8_t *m;

	m = mmap(NULL, 3 * PAGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, pkey_mprotect(m, 3 * PAGE_SZ, PROT_READ | PROT_WRITE, self->pkey));
	ld = (uint64_t *)m + 1;
	st = (uint64_t *)(m + PAGE_SZ) + 1;
	untouched = (uint64_t *)(m + 2 * PAGE_SZ) + 1;
	ASSERT_EQ(0, pkey_set(self->pkey, 0));
	*ld = 0x1d1d1d1d;
	*st = 0x5757;
	ASSERT_EQ(0, gru_stats(&self->ctx, &s0));

	/* nothing in here may touch the pages from the CPU */
	ASSERT_EQ(0, pkey_set(self->pkey, rights));
	r_ld = gru_load(&self->ctx, ld, &v);
	if (r_ld)
		gru_exception(&self->ctx, &e_ld);
	r_st = gru_store(&self->ctx, st, 0x5858);
	if (r_st)
		gru_exception(&self->ctx, &e_st);
	r_new = gru_store(&self->ctx, untouched, 0x6e6e);
	if (r_new)
		gru_exception(&self->ctx, &e_new);
	ASSERT_EQ(0, pkey_set(self->pkey, 0));

	ASSERT_EQ(0, gru_stats(&self->ctx, &s1));
	EXPECT_EQ(0, r_ld) TH_LOG("load: %s (%s)", strerror(-r_ld), gru_err_name(e_ld.error));
	EXPECT_EQ(0x1d1d1d1d, v);
	EXPECT_EQ(0, r_st) TH_LOG("store: %s (%s)", strerror(-r_st), gru_err_name(e_st.error));
	EXPECT_EQ(0x5858, *st);
	EXPECT_EQ(0, r_new) TH_LOG("store to untouched page: %s (%s)", strerror(-r_new),
				   gru_err_name(e_new.error));
	EXPECT_EQ(0x6e6e, *untouched);
	/* every access really missed, and the path under test filled it */
	EXPECT_GE(s1.faults - s0.faults, 3);
	if (variant->callos) {
		EXPECT_GE(s1.fill_callos - s0.fill_callos, 3);
	} else if (variant->fill_mode == GRU_FILL_WORKER) {
		EXPECT_GE(s1.fill_worker - s0.fill_worker, 3);
	} else {
		EXPECT_GE(s1.fill_irq + s1.fill_worker - s0.fill_irq - s0.fill_worker, 3);
	}
	munmap(m, 3 * PAGE_SZ);
}

TEST_F_TIMEOUT(pkey, device_ignores_pkey_with_full_rights, 120)
{
	pkey_case(_metadata, self, variant, 0);
}

TEST_F_TIMEOUT(pkey, device_ignores_pkru_write_disable, 120)
{
	pkey_case(_metadata, self, variant, PKEY_DISABLE_WRITE);
}

TEST_F_TIMEOUT(pkey, device_ignores_pkru_access_disable, 120)
{
	pkey_case(_metadata, self, variant, PKEY_DISABLE_ACCESS);
}

/* ------------------------------------------------------------------ */
/* shadow_stack                                                        */
/* ------------------------------------------------------------------ */

static bool cpu_has_flag(const char *flag)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *tok, *save, *colon = strchr(line, ':');

		if (strncmp(line, "flags", 5) || !colon)
			continue;
		for (tok = strtok_r(colon + 1, " \t\n", &save); tok;
		     tok = strtok_r(NULL, " \t\n", &save))
			if (!strcmp(tok, flag))
				found = true;
		break;
	}
	fclose(f);
	return found;
}

FIXTURE(shadow_stack)
{
	struct gru_ctx ctx;
};

FIXTURE_SETUP(shadow_stack)
{
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	if (!cpu_has_flag("user_shstk"))
		SKIP(return, "no user shadow stack on this CPU");
	ASSERT_EQ(0, gru_open(&self->ctx, 0));
}

FIXTURE_TEARDOWN(shadow_stack)
{
	if (self->ctx.win)
		gru_close(&self->ctx);
}

/*
 * A shadow stack is writable only by call/ret and WRSS: a device store
 * to one, present or untouched, fails with PROT and writes nothing, while
 * a device load reads it like the CPU does.  Both fill paths.
 */
TEST_F(shadow_stack, device_store_refused_load_allowed)
{
	static const uint32_t modes[] = { GRU_FILL_IRQ, GRU_FILL_WORKER };

	for (unsigned int i = 0; i < 2; i++) {
		struct gru_ctx_opts o = { .fill_mode = modes[i], .batch = 1 };
		uint64_t *low, *top, *token, before, v = 0;
		struct gru_exc e;
		long ss;

		ASSERT_EQ(0, gru_set_opts(&self->ctx, &o));
		ss = syscall(__NR_map_shadow_stack, 0UL, 2 * PAGE_SZ,
			     GRU_SHSTK_SET_TOKEN);
		ASSERT_NE(-1, ss) TH_LOG("map_shadow_stack: %s", strerror(errno));
		low = (uint64_t *)ss;			/* untouched page */
		top = (uint64_t *)(ss + PAGE_SZ);	/* present: holds the token */
		token = (uint64_t *)(ss + 2 * PAGE_SZ) - 1;
		before = *top;

		EXPECT_EQ(-EACCES, gru_store(&self->ctx, top, 0xbad));
		gru_exception(&self->ctx, &e);
		EXPECT_EQ(GRU_ERR_PROT, e.error) TH_LOG("mode %u, present page: %s",
							modes[i], gru_err_name(e.error));
		EXPECT_EQ(before, *top);

		EXPECT_EQ(-EACCES, gru_store(&self->ctx, low, 0xbad));
		gru_exception(&self->ctx, &e);
		EXPECT_EQ(GRU_ERR_PROT, e.error) TH_LOG("mode %u, untouched page: %s",
							modes[i], gru_err_name(e.error));
		EXPECT_EQ(0, *low);

		EXPECT_EQ(0, gru_load(&self->ctx, token, &v));
		EXPECT_EQ(*token, v);
		EXPECT_EQ(0, gru_load(&self->ctx, low, &v));
		EXPECT_EQ(0, v);
		ASSERT_EQ(0, munmap((void *)ss, 2 * PAGE_SZ));
	}
}

/* ------------------------------------------------------------------ */
/* preempt_rt                                                          */
/* ------------------------------------------------------------------ */

/*
 * PREEMPT_RT runs the fault handler as a thread with IRQs on, where no
 * flush IPI or RCU grace period waits for a lockless walk: there, every
 * miss must be filled from process context, never by the IRQ walk.
 */
TEST(preempt_rt_never_walks_in_the_fault_handler)
{
	struct gru_ctx_stats a, b;
	struct gru_ctx ctx;
	uint64_t *buf, v = 0;
	int i;

	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	if (read_num("/sys/kernel/realtime") != 1)
		SKIP(return, "not a PREEMPT_RT kernel");
	ASSERT_EQ(0, gru_open(&ctx, 0));
	buf = mmap(NULL, 8 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, gru_stats(&ctx, &a));
	for (i = 0; i < 8; i++) {
		/* present and dirty: the IRQ walk would fill it elsewhere */
		buf[i * PAGE_SZ / 8] = 0x5000 + i;
		ASSERT_EQ(0, gru_load(&ctx, &buf[i * PAGE_SZ / 8], &v));
		EXPECT_EQ(0x5000 + i, v);
	}
	ASSERT_EQ(0, gru_stats(&ctx, &b));
	EXPECT_EQ(0, b.fill_irq - a.fill_irq);
	EXPECT_EQ(8, b.fill_worker - a.fill_worker);
	munmap(buf, 8 * PAGE_SZ);
	gru_close(&ctx);
}

TEST_HARNESS_MAIN
