// SPDX-License-Identifier: GPL-2.0
/*
 * Lifecycle under abuse: teardown while the worker sleeps in a fault that
 * never completes (userfaultfd), stalled contexts that would park every
 * hardware slot, a late GRU_IOC_CALL_OS answer, a function reset with
 * instructions in flight, and kill storms followed by a leak count.
 *
 * The leak counts come from /sys/kernel/debug/gru/live (contexts that a
 * work item still holds count too).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#define LIVE_PATH	"/sys/kernel/debug/gru/live"

/* The state letter of /proc/PID/stat, or 0. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	return p && p[1] ? p[2] : 0;
}

/* waitpid() with a deadline: 0 and *@status, or -ETIMEDOUT. */
static int wait_child(pid_t pid, int ms, int *status)
{
	uint64_t end = mono_ms() + ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0)
			return -errno;
		if (mono_ms() > end)
			return -ETIMEDOUT;
		usleep(10000);
	}
}

static int uffd_new(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -errno;
	}
	return fd;
}

static int uffd_register(int fd, void *addr, size_t len)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

/* Wait for one fault event on @fd; its address, or 0. */
static uint64_t uffd_wait_event(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct uffd_msg msg;

	if (poll(&p, 1, ms) != 1)
		return 0;
	if (read(fd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		return 0;
	return msg.arg.pagefault.address;
}

static int uffd_copy(int fd, void *dst, const void *src, bool wake)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = PAGE_SZ,
		.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
	};

	return ioctl(fd, UFFDIO_COPY, &c) ? -errno : 0;
}

static int uffd_wake(int fd, void *addr)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = PAGE_SZ };

	return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

/*
 * Make @g's worker sleep in a userfaultfd fault nobody answers: a LOAD in
 * fill mode @mode on a fresh page registered with a new userfaultfd, and
 * the fault's event read.  0, or -errno; *@uffd is -1 when the kernel has
 * no userfaultfd for us (the caller skips then).
 */
static int worker_asleep_in_uffd(struct gru_ctx *g, uint32_t mode, int *uffd,
				 char **mem)
{
	struct gru_insn i = { .opcode = GRU_OPC_LOAD };
	int ret;

	*uffd = uffd_new();
	if (*uffd < 0) {
		ret = *uffd;
		*uffd = -1;
		return ret;
	}
	*mem = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*mem == MAP_FAILED)
		return -errno;
	ret = uffd_register(*uffd, *mem, PAGE_SZ);
	if (!ret)
		ret = gru_set_mode(g, mode, false);
	i.addr = (uintptr_t)*mem;
	if (!ret)
		ret = gru_issue(g, &i);
	if (!ret && !uffd_wait_event(*uffd, 20000))
		ret = -ETIMEDOUT;
	return ret;
}

/*
 * A miss whose worker sleeps in a userfaultfd fault nobody answers, then
 * the process goes away.  Without the uffd's own close (which only exit
 * does, after the gru file when its number is lower) the fault never
 * completes, so release must not wait for the worker.  The window VMA
 * holds the file, so release runs where the last of the two goes: at
 * close() after munmap(), or in exit_files() when only the window was
 * unmapped.
 */
FIXTURE(teardown) {
	long base;
};

FIXTURE_VARIANT(teardown) {
	bool close_first;	/* munmap + close the context, then exit */
};

FIXTURE_VARIANT_ADD(teardown, close_then_exit) { .close_first = true };
FIXTURE_VARIANT_ADD(teardown, unmap_then_exit) { .close_first = false };

FIXTURE_SETUP(teardown)
{
	if (!gru_present())
		SKIP(return, "no /dev/gru");
	/* without it (an older driver) only the leak counts are skipped */
	self->base = gru_live("contexts");
}

FIXTURE_TEARDOWN(teardown)
{
}

/* The other tests: one run each, and a leak count against the start. */
FIXTURE(life) {
	long base;
};

FIXTURE_SETUP(life)
{
	if (!gru_present())
		SKIP(return, "no /dev/gru");
	/* without it (an older driver) only the leak counts are skipped */
	self->base = gru_live("contexts");
}

FIXTURE_TEARDOWN(life)
{
}

TEST_F_TIMEOUT(teardown, uffd_miss_never_answered, 90)
{
	int pfd[2], status, rc;
	char c = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct gru_ctx g;
		char *mem;
		int uffd;

		close(pfd[0]);
		/* the gru file gets the lower number: exit closes it first */
		if (gru_open(&g, 0))
			_exit(10);
		/* the worker is in the fault once the event arrives */
		if (worker_asleep_in_uffd(&g, GRU_FILL_IRQ, &uffd, &mem))
			_exit(uffd < 0 ? 4 : 11);
		c = 1;
		if (write(pfd[1], &c, 1) != 1)
			_exit(16);
		if (variant->close_first)
			gru_close(&g);
		else
			munmap((void *)g.win, GRU_WINDOW_SIZE);
		_exit(0);
	}
	close(pfd[1]);
	ASSERT_EQ(1, read(pfd[0], &c, 1)) {
		wait_child(pid, 5000, &status);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 4)
			SKIP(return, "no userfaultfd in this kernel");
		TH_LOG("child failed before the miss (exit %d)",
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	close(pfd[0]);
	rc = wait_child(pid, 20000, &status);
	if (rc) {
		TH_LOG("child did not exit in 20 s: state %c", proc_state(pid));
		kill(pid, SIGKILL);
	}
	ASSERT_EQ(0, rc);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* the uffd closed at exit: the worker finishes and frees it */
	if (self->base >= 0) {
		EXPECT_EQ(self->base, gru_live_wait("contexts", self->base, 10000));
		EXPECT_EQ(0, gru_live_wait("works", 0, 10000));
	}
}

/*
 * The same miss, never answered, and the file closed: close returns at
 * once, and the worker is told nobody waits for its answer any more
 * (SIGKILL), so the context goes without the handler's help.
 */
TEST_F_TIMEOUT(life, close_releases_a_worker_asleep_in_a_fault, 60)
{
	static char page[PAGE_SZ] __attribute__((aligned(4096)));
	struct gru_ctx g;
	char *mem;
	int uffd, ret;

	if (self->base < 0)
		SKIP(return, "no %s (debugfs not mounted?)", LIVE_PATH);
	ASSERT_EQ(0, gru_open(&g, 0));
	ret = worker_asleep_in_uffd(&g, GRU_FILL_IRQ, &uffd, &mem);
	if (uffd < 0) {
		gru_close(&g);
		SKIP(return, "no userfaultfd: %s", strerror(-ret));
	}
	ASSERT_EQ(0, ret);
	/* the worker sleeps in the fault, holding the context */
	usleep(200000);
	EXPECT_EQ(1, gru_live("works"));
	EXPECT_EQ(self->base + 1, gru_live("contexts"));

	/* a close that waited for the worker would hang here */
	gru_close(&g);
	EXPECT_EQ(self->base, gru_live_wait("contexts", self->base, 10000));
	EXPECT_EQ(0, gru_live_wait("works", 0, 10000));

	/* the abandoned fault is still there to answer, harmlessly */
	memset(page, 0x5a, sizeof(page));
	uffd_copy(uffd, mem, page, true);
	EXPECT_EQ(0x5a, mem[0]);
	close(uffd);
	munmap(mem, PAGE_SZ);
}

/* debugfs stats of the device behind /dev/gru: one counter, or -1 */
static long long dev_stat(const char *name)
{
	char dev[PATH_MAX], path[PATH_MAX + 64], key[64];
	long long val;
	const char *bdf;
	FILE *f;

	if (!realpath("/sys/class/misc/gru/device", dev))
		return -1;
	bdf = strrchr(dev, '/');
	if (!bdf)
		return -1;
	snprintf(path, sizeof(path), "/sys/kernel/debug/gru/%s/stats", bdf + 1);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &val) == 2) {
		if (!strcmp(key, name)) {
			fclose(f);
			return val;
		}
	}
	fclose(f);
	return -1;
}

/*
 * In pinned mode a worker asleep in the fault must not pin (or install)
 * anything once its context is closed, even when the fault is answered
 * after the close.  A second context of the process keeps the mm's
 * device state (and so any such pin) alive while we look.
 */
TEST_F_TIMEOUT(life, closed_pinned_worker_pins_nothing, 60)
{
	static char page[PAGE_SZ] __attribute__((aligned(4096)));
	struct gru_tlb_probe pr;
	struct gru_ctx g, keep;
	long long pins;
	char *mem;
	int uffd, ret;

	pins = dev_stat("pins_live");
	if (self->base < 0 || pins < 0)
		SKIP(return, "no gru debugfs");
	ASSERT_EQ(0, gru_open(&keep, 0));
	ASSERT_EQ(0, gru_nop(&keep));
	ASSERT_EQ(0, gru_open(&g, 0));
	ret = worker_asleep_in_uffd(&g, GRU_FILL_PINNED, &uffd, &mem);
	if (uffd < 0) {
		gru_close(&g);
		gru_close(&keep);
		SKIP(return, "no userfaultfd: %s", strerror(-ret));
	}
	ASSERT_EQ(0, ret);
	gru_close(&g);
	memset(page, 0x6b, sizeof(page));
	uffd_copy(uffd, mem, page, true);
	EXPECT_EQ(self->base + 1, gru_live_wait("contexts", self->base + 1, 10000));
	EXPECT_EQ(pins, dev_stat("pins_live"));
	ASSERT_EQ(0, gru_tlb_probe(&keep, (uintptr_t)mem, &pr));
	EXPECT_EQ(0, pr.hit);
	gru_close(&keep);
	close(uffd);
	munmap(mem, PAGE_SZ);
}

struct handler_arg {
	int uffd;
	void *page;
	uint64_t val;
	int ret;
};

static void *uffd_answer_one(void *p)
{
	struct handler_arg *a = p;
	static uint64_t src[PAGE_SZ / 8] __attribute__((aligned(4096)));
	size_t k;

	if (!uffd_wait_event(a->uffd, 20000)) {
		a->ret = -ETIMEDOUT;
		return NULL;
	}
	for (k = 0; k < PAGE_SZ / 8; k++)
		src[k] = a->val;
	a->ret = uffd_copy(a->uffd, a->page, src, true);
	return NULL;
}

/* Every fill mode waits for a userfaultfd handler; hmm mode used to fail. */
TEST(hmm_mode_waits_for_userfaultfd_handler)
{
	struct handler_arg a = { .val = 0x1234567890abcdefULL };
	struct gru_ctx g;
	pthread_t th;
	uint64_t v = 0;
	int ret;

	if (!gru_present())
		SKIP(return, "no /dev/gru");
	ASSERT_EQ(0, gru_open(&g, 0));
	ret = gru_set_mode(&g, GRU_FILL_HMM, false);
	if (ret == -EOPNOTSUPP) {
		gru_close(&g);
		SKIP(return, "no HMM in this kernel");
	}
	ASSERT_EQ(0, ret);
	a.uffd = uffd_new();
	if (a.uffd < 0) {
		gru_close(&g);
		SKIP(return, "no userfaultfd: %s", strerror(-a.uffd));
	}
	a.page = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, a.page);
	ASSERT_EQ(0, uffd_register(a.uffd, a.page, PAGE_SZ));
	ASSERT_EQ(0, pthread_create(&th, NULL, uffd_answer_one, &a));
	ret = gru_load(&g, a.page, &v);
	pthread_join(th, NULL);
	EXPECT_EQ(0, a.ret);
	EXPECT_EQ(0, ret) TH_LOG("load: %s", strerror(-ret));
	EXPECT_EQ(a.val, v);
	gru_close(&g);
	close(a.uffd);
	munmap(a.page, PAGE_SZ);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

struct race_arg {
	struct gru_ctx *g;
	void *big;
	size_t len;
	volatile int go, go_enable, done, entered;
	int ret, pop_ret;
	uint64_t pop_ms;
};

/* Holds the mmap lock for reading for as long as the populate runs. */
static void *hold_mmap_lock(void *p)
{
	struct race_arg *a = p;
	uint64_t t0;

	while (!a->go)
		;
	t0 = mono_ms();
	a->pop_ret = madvise(a->big, a->len, MADV_POPULATE_READ) ? errno : 0;
	a->pop_ms = mono_ms() - t0;
	a->done = 1;
	return NULL;
}

static void *enable_hmm(void *p)
{
	struct race_arg *a = p;
	struct gru_ctx_opts o = { .flags = GRU_OPT_CALLOS,
				  .fill_mode = GRU_FILL_HMM };

	while (!a->go_enable)
		usleep(1000);
	a->entered = 1;
	a->ret = ioctl(a->g->fd, GRU_IOC_SET_OPTS, &o) ? -errno : 0;
	return NULL;
}

/*
 * Two GRU_IOC_SET_OPTS(HMM) at once, the first stuck inserting its
 * interval notifier (which waits for the mmap lock): the second must not
 * switch the context to a notifier that is not there yet.  It used to
 * return at once, and the next miss used the half-made notifier (a NULL
 * mm: an oops).
 */
TEST(hmm_enable_race_waits_for_the_first)
{
	struct gru_insn nop = { .opcode = GRU_OPC_NOP };
	struct gru_insn ld = { .opcode = GRU_OPC_LOAD };
	struct gru_ctx_opts o = { .flags = GRU_OPT_CALLOS,
				  .fill_mode = GRU_FILL_HMM };
	struct race_arg a = { .len = 2UL << 30 };
	pthread_t th, te;
	struct gru_ctx g;
	uint64_t *buf;
	int ret;

	if (!gru_present())
		SKIP(return, "no /dev/gru");
	/* a kernel without HMM refuses the mode at once: no race to see */
	ASSERT_EQ(0, gru_open(&g, 0));
	ret = gru_set_mode(&g, GRU_FILL_HMM, false);
	gru_close(&g);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no HMM in this kernel");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, gru_open(&g, 0));
	a.g = &g;
	ASSERT_EQ(0, gru_run(&g, &nop, NULL));	/* window PTE present */
	buf = mmap(NULL, 16 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	buf[0] = 0x4d4d;
	/*
	 * Nothing of ours may queue behind the waiting mmap_write_lock: no
	 * page fault (mlockall), no mmap (both threads exist before).
	 */
	ASSERT_EQ(0, pthread_create(&th, NULL, hold_mmap_lock, &a));
	ASSERT_EQ(0, pthread_create(&te, NULL, enable_hmm, &a));
	/* before the big mapping, which the holder alone may populate */
	if (mlockall(MCL_CURRENT))
		SKIP(return, "mlockall: %s", strerror(errno));
	a.big = mmap(NULL, a.len, PROT_READ,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, a.big);
	madvise(a.big, a.len, MADV_NOHUGEPAGE);

	a.go = 1;
	usleep(100000);
	a.go_enable = 1;
	usleep(200000);
	/* the race needs the first insertion still waiting for the lock */
	if (a.done || !a.entered || a.ret) {
		pthread_join(te, NULL);
		pthread_join(th, NULL);
		munlockall();
		SKIP(return, "the mmap lock was not held long enough (populate done %d: errno %d in %llu ms, enable entered %d ret %d)",
		     a.done, a.pop_ret, (unsigned long long)a.pop_ms,
		     a.entered, a.ret);
	}
	/*
	 * Returns once the first has inserted (the populate may let the
	 * insertion in before it ends, so that is all one can tell), and
	 * the miss below must find a whole notifier.
	 */
	ret = ioctl(g.fd, GRU_IOC_SET_OPTS, &o) ? -errno : 0;
	ASSERT_EQ(0, ret);
	ld.addr = (uintptr_t)buf;
	ASSERT_EQ(0, gru_issue(&g, &ld));
	ASSERT_EQ(GRU_ST_CALLOS, gru_wait_not_busy(&g, 10000));
	ASSERT_EQ(0, gru_call_os(&g, NULL));
	ASSERT_EQ(GRU_ST_DONE, gru_wait_not_busy(&g, 10000));
	EXPECT_EQ(0x4d4d, g.win[GRU_WIN_RESULT / 8]);
	pthread_join(te, NULL);
	pthread_join(th, NULL);
	EXPECT_EQ(0, a.ret);
	munlockall();
	munmap(a.big, a.len);
	gru_close(&g);
}

/*
 * More processes than hardware contexts park their instruction in
 * call-OS and never answer.  Another process must still get a slot and
 * complete its instructions: the parked ones are preempted.
 */
TEST_F_TIMEOUT(life, stalled_contexts_cannot_park_every_slot, 240)
{
	const int m = 24;
	struct gru_ctx_stats st;
	struct gru_info info;
	struct gru_ctx g;
	uint64_t *mem, v;
	int n, k, parked = 0, pfd[2], status;
	pid_t *pids;
	char c;

	ASSERT_EQ(0, gru_open(&g, 0));
	ASSERT_EQ(0, gru_info(&g, &info));
	n = info.hw_contexts + 2;
	pids = calloc(n, sizeof(*pids));
	ASSERT_NE(NULL, pids);
	ASSERT_EQ(0, pipe(pfd));
	for (k = 0; k < n; k++) {
		pids[k] = fork();
		ASSERT_GE(pids[k], 0);
		if (!pids[k]) {
			struct gru_insn i = { .opcode = GRU_OPC_LOAD };
			struct gru_ctx p;
			void *fresh;

			gru_close(&g);
			close(pfd[0]);
			if (gru_open(&p, 0) || gru_set_mode(&p, GRU_FILL_IRQ, true))
				_exit(1);
			fresh = mmap(NULL, PAGE_SZ, PROT_READ,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (fresh == MAP_FAILED)
				_exit(2);
			i.addr = (uintptr_t)fresh;
			/* may wait in the window fault for a slot: fine */
			if (gru_issue(&p, &i))
				_exit(3);
			c = 1;
			if (write(pfd[1], &c, 1) != 1)
				_exit(4);
			for (;;)
				pause();
		}
	}
	close(pfd[1]);
	/* at least every slot's worth must have parked */
	while (parked < (int)info.hw_contexts && read(pfd[0], &c, 1) == 1)
		parked++;
	EXPECT_EQ((int)info.hw_contexts, parked);

	mem = map_aligned(m * PAGE_SZ, PAGE_SZ);
	ASSERT_NE(NULL, mem);
	for (k = 0; k < m; k++) {
		uint64_t *p = mem + k * (PAGE_SZ / 8);

		ASSERT_EQ(0, gru_store(&g, p, 0xabc000 + k)) TH_LOG("insn %d", k);
		ASSERT_EQ(0, gru_load(&g, p, &v));
		ASSERT_EQ(0xabc000 + k, v);
	}
	ASSERT_EQ(0, gru_stats(&g, &st));
	/* no preemption of ours: we never stalled that long */
	EXPECT_EQ(0, st.preempted);

	for (k = 0; k < n; k++)
		kill(pids[k], SIGKILL);
	for (k = 0; k < n; k++)
		EXPECT_EQ(0, wait_child(pids[k], 20000, &status));
	close(pfd[0]);
	gru_close(&g);
	free(pids);
	if (self->base >= 0)
		EXPECT_EQ(self->base, gru_live_wait("contexts", self->base, 10000));
}

/*
 * The same with a user that answers every stall of a long instruction just
 * before the preemption limit: what counts is how long it has held its
 * slot, not how old its current stall is.
 */
TEST_F_TIMEOUT(life, stalls_answered_in_time_still_give_way, 180)
{
	const size_t len = 4UL << 20;
	struct gru_info info;
	struct gru_ctx g;
	uint64_t *mem, v;
	int k, pfd[2], status;
	pid_t pid;
	char c;

	ASSERT_EQ(0, gru_open(&g, 0));
	ASSERT_EQ(0, gru_info(&g, &info));
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int n = info.hw_contexts;
		struct gru_ctx *p = calloc(n, sizeof(*p));
		uint64_t *seen = calloc(n, sizeof(*seen));
		struct gru_insn i = { .opcode = GRU_OPC_BSET, .len = len };
		char *big;

		gru_close(&g);
		big = mmap(NULL, n * len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (!p || !seen || big == MAP_FAILED)
			_exit(1);
		madvise(big, n * len, MADV_NOHUGEPAGE);
		for (k = 0; k < n; k++) {
			if (gru_open(&p[k], 0) || gru_set_mode(&p[k], GRU_FILL_IRQ, true))
				_exit(2);
			i.addr = (uintptr_t)(big + k * len);
			if (gru_issue(&p[k], &i))
				_exit(3);
		}
		c = 1;
		if (write(pfd[1], &c, 1) != 1)
			_exit(4);
		for (;;) {
			for (k = 0; k < n; k++) {
				uint64_t st = p[k].win[GRU_WIN_STATUS / 8];

				if (st != GRU_ST_CALLOS) {
					seen[k] = 0;
					if (st == GRU_ST_BUSY)
						continue;
					/* done or preempted: start over */
					madvise(big + k * len, len, MADV_DONTNEED);
					i.addr = (uintptr_t)(big + k * len);
					gru_issue(&p[k], &i);
					continue;
				}
				if (!seen[k]) {
					seen[k] = mono_ms();
				} else if (mono_ms() - seen[k] >= 30) {
					gru_call_os(&p[k], NULL);
					seen[k] = 0;
				}
			}
			usleep(2000);
		}
	}
	close(pfd[1]);
	ASSERT_EQ(1, read(pfd[0], &c, 1));
	usleep(300000);

	mem = map_aligned(8 * PAGE_SZ, PAGE_SZ);
	ASSERT_NE(NULL, mem);
	/* without preemption this waits forever: the harness times it out */
	for (k = 0; k < 8; k++) {
		uint64_t *q = mem + k * (PAGE_SZ / 8);

		ASSERT_EQ(0, gru_store(&g, q, 0xcafe00 + k)) TH_LOG("insn %d", k);
		ASSERT_EQ(0, gru_load(&g, q, &v));
		ASSERT_EQ(0xcafe00 + k, v);
	}
	kill(pid, SIGKILL);
	EXPECT_EQ(0, wait_child(pid, 20000, &status));
	close(pfd[0]);
	gru_close(&g);
}

/* The parked instruction learns why it lost its slot. */
TEST_F_TIMEOUT(life, preempted_instruction_fails_with_preempted, 120)
{
	struct gru_insn i = { .opcode = GRU_OPC_LOAD };
	struct gru_ctx_stats st;
	struct gru_info info;
	struct gru_ctx g, *o, *who;
	struct gru_exc e;
	uint64_t total;
	void *fresh;
	int k, n;

	ASSERT_EQ(0, gru_open(&g, 0));
	ASSERT_EQ(0, gru_info(&g, &info));
	ASSERT_EQ(0, gru_set_mode(&g, GRU_FILL_IRQ, true));
	fresh = mmap(NULL, PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	ASSERT_NE(MAP_FAILED, fresh);
	i.addr = (uintptr_t)fresh;
	ASSERT_EQ(0, gru_issue(&g, &i));
	ASSERT_EQ(GRU_ST_CALLOS, gru_wait_not_busy(&g, 10000));

	/* every other slot runs the same never-answered stall */
	n = info.hw_contexts;
	o = calloc(n, sizeof(*o));
	ASSERT_NE(NULL, o);
	for (k = 0; k < n; k++) {
		ASSERT_EQ(0, gru_open(&o[k], 0));
		ASSERT_EQ(0, gru_set_mode(&o[k], GRU_FILL_IRQ, true));
		ASSERT_EQ(0, gru_issue(&o[k], &i));
	}
	/*
	 * The last open needed a slot when every slot was stalled: exactly
	 * one stall older than GRU_STALL_PREEMPT_MS gave way, and its
	 * instruction failed with PREEMPTED (reading its window reloads it).
	 */
	total = 0;
	who = NULL;
	for (k = -1; k < n; k++) {
		struct gru_ctx *c = k < 0 ? &g : &o[k];

		ASSERT_EQ(0, gru_stats(c, &st));
		total += st.preempted;
		if (st.preempted)
			who = c;
	}
	EXPECT_EQ(1, total);
	ASSERT_NE(NULL, who);
	gru_exception(who, &e);
	EXPECT_EQ(GRU_ST_ERROR, e.status);
	EXPECT_EQ(GRU_ERR_PREEMPTED, e.error) TH_LOG("error %s", gru_err_name(e.error));
	for (k = 0; k < n; k++)
		gru_close(&o[k]);
	free(o);
	gru_close(&g);
	munmap(fresh, PAGE_SZ);
}

struct callos_arg {
	struct gru_ctx *g;
	int ret;
};

static void *call_os_thread(void *p)
{
	struct callos_arg *a = p;

	a->ret = gru_call_os(a->g, NULL);
	return NULL;
}

/*
 * Two GRU_IOC_CALL_OS callers on one stall: the slow one must not answer
 * the next stall, which the instruction reached thanks to the fast one.
 * The slow one sleeps in a userfaultfd fault that is filled without waking
 * it, and is woken only once the instruction stalls again.
 */
TEST_F_TIMEOUT(life, late_call_os_answer_is_dropped, 60)
{
	static char pat[PAGE_SZ] __attribute__((aligned(4096)));
	struct callos_arg b;
	struct gru_ctx_stats st;
	struct gru_insn i = { .opcode = GRU_OPC_BCOPY };
	struct gru_ctx g;
	struct gru_exc e;
	char *src, *dst;
	uint64_t faults;
	pthread_t th;
	int uffd, k;

	ASSERT_EQ(0, gru_open(&g, 0));
	uffd = uffd_new();
	if (uffd < 0) {
		gru_close(&g);
		SKIP(return, "no userfaultfd: %s", strerror(-uffd));
	}
	ASSERT_EQ(0, gru_set_mode(&g, GRU_FILL_IRQ, true));
	src = mmap(NULL, 2 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = map_aligned(2 * PAGE_SZ, PAGE_SZ);
	ASSERT_NE(MAP_FAILED, src);
	ASSERT_NE(NULL, dst);
	memset(dst, 0xee, 2 * PAGE_SZ);		/* present and dirty */
	/* src page 0 waits for us, page 1 is a plain untouched page */
	ASSERT_EQ(0, uffd_register(uffd, src, PAGE_SZ));

	i.addr = (uintptr_t)dst;
	i.src = (uintptr_t)src;
	i.len = 2 * PAGE_SZ;
	ASSERT_EQ(0, gru_issue(&g, &i));
	ASSERT_EQ(GRU_ST_CALLOS, gru_wait_not_busy(&g, 10000));

	/* the slow caller: it sleeps in the fault on src page 0 */
	b.g = &g;
	ASSERT_EQ(0, pthread_create(&th, NULL, call_os_thread, &b));
	ASSERT_NE(0, uffd_wait_event(uffd, 20000));
	memset(pat, 0x3c, sizeof(pat));
	ASSERT_EQ(0, uffd_copy(uffd, src, pat, false));

	/* the fast caller answers the same stall; the copy stalls on page 1 */
	ASSERT_EQ(0, gru_call_os(&g, NULL));
	ASSERT_EQ(GRU_ST_CALLOS, gru_wait_not_busy(&g, 10000));
	gru_exception(&g, &e);
	ASSERT_EQ((uintptr_t)src + PAGE_SZ, e.va & ~(PAGE_SZ - 1));
	ASSERT_EQ(0, gru_stats(&g, &st));
	faults = st.faults;

	/*
	 * Now the slow one finishes: its answer is for a stall that ended.
	 * Resuming the new stall unanswered would make the device miss on
	 * page 1 again (one more fault).
	 */
	ASSERT_EQ(0, uffd_wake(uffd, src));
	pthread_join(th, NULL);
	EXPECT_EQ(0, b.ret);
	usleep(200000);
	ASSERT_EQ(0, gru_stats(&g, &st));
	EXPECT_EQ(faults, st.faults) TH_LOG("a stale answer resumed the newer stall");
	EXPECT_EQ(GRU_ST_CALLOS, gru_wait_not_busy(&g, 1000));

	ASSERT_EQ(0, gru_call_os(&g, NULL));
	EXPECT_EQ(GRU_ST_DONE, gru_wait_not_busy(&g, 10000));
	for (k = 0; k < (int)PAGE_SZ; k++)
		if (dst[k] != 0x3c || dst[PAGE_SZ + k] != 0)
			break;
	EXPECT_EQ((int)PAGE_SZ, k);
	gru_close(&g);
	close(uffd);
}

/* sysfs reset path of the device behind /dev/gru, or NULL */
static char *reset_path(char *buf, size_t len)
{
	char dev[PATH_MAX];

	if (!realpath("/sys/class/misc/gru/device", dev) ||
	    strlen(dev) + sizeof("/reset") > len)
		return NULL;
	strcpy(buf, dev);
	strcat(buf, "/reset");
	return access(buf, W_OK) ? NULL : buf;
}

/*
 * A function reset with one instruction stalled and another context
 * loaded: the stalled one fails with ABORTED, then both work again (the
 * device came back enabled, with its vectors, and drop-ins are accepted).
 */
TEST_F_TIMEOUT(life, function_reset_aborts_and_recovers, 120)
{
	struct gru_insn i = { .opcode = GRU_OPC_LOAD };
	struct gru_ctx a, b;
	struct gru_exc e;
	char path[PATH_MAX];
	uint64_t *mem, v;
	void *fresh;
	int k;

	if (!reset_path(path, sizeof(path)))
		SKIP(return, "the device has no reset method");
	ASSERT_EQ(0, gru_open(&a, 0));
	ASSERT_EQ(0, gru_open(&b, 0));
	mem = map_aligned(64 * PAGE_SZ, PAGE_SZ);
	ASSERT_NE(NULL, mem);
	ASSERT_EQ(0, gru_store(&a, mem, 1));
	ASSERT_EQ(0, gru_set_mode(&b, GRU_FILL_IRQ, true));
	fresh = mmap(NULL, PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	ASSERT_NE(MAP_FAILED, fresh);
	i.addr = (uintptr_t)fresh;
	ASSERT_EQ(0, gru_issue(&b, &i));
	ASSERT_EQ(GRU_ST_CALLOS, gru_wait_not_busy(&b, 10000));

	ASSERT_EQ(0, write_str(path, "1"));

	gru_exception(&b, &e);
	EXPECT_EQ(GRU_ST_ERROR, e.status);
	EXPECT_EQ(GRU_ERR_ABORTED, e.error) TH_LOG("error %s", gru_err_name(e.error));
	EXPECT_EQ(-EINVAL, gru_call_os(&b, NULL));
	/* new translations (fresh pages) and the old ones (refilled) */
	for (k = 0; k < 64; k++) {
		uint64_t *p = mem + k * (PAGE_SZ / 8);

		ASSERT_EQ(0, gru_store(&a, p, 0x77000 + k)) TH_LOG("page %d", k);
		ASSERT_EQ(0, gru_load(&a, p, &v));
		ASSERT_EQ(0x77000 + k, v);
		EXPECT_EQ(0x77000 + k, *p);
	}
	ASSERT_EQ(0, gru_set_mode(&b, GRU_FILL_IRQ, false));
	ASSERT_EQ(0, gru_load(&b, mem + PAGE_SZ / 8, &v));
	EXPECT_EQ(0x77001, v);
	ASSERT_EQ(0, gru_load(&b, fresh, &v));
	EXPECT_EQ(0, v);
	gru_close(&a);
	gru_close(&b);
}

/*
 * Kill storm: many processes issuing instructions in every fill mode
 * (IRQ, worker, call-OS, with steals: more contexts than slots) are
 * killed, exit or exec at random points.  Afterwards nothing may be left:
 * no context, no gru_mm, no work item.  Seeded; the seed is printed.
 */
static void storm_child(unsigned int seed, int fate)
{
	struct gru_ctx g[3];
	uint64_t *mem, v;
	int k, n, r;

	srand(seed);
	n = 1 + rand() % 3;
	mem = mmap(NULL, 256 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		_exit(1);
	for (k = 0; k < n; k++) {
		if (gru_open(&g[k], GRU_LIB_AUTO_CALLOS))
			_exit(2);
		r = rand() % 4;
		gru_set_mode(&g[k], r == 3 ? GRU_FILL_HMM : GRU_FILL_IRQ, r == 2);
		if (r == 1)
			gru_set_opts(&g[k], &(struct gru_ctx_opts){
				.fill_mode = GRU_FILL_IRQ, .batch = 4 });
	}
	for (k = 0; k < 400; k++) {
		struct gru_ctx *c = &g[rand() % n];
		uint64_t *p = mem + (rand() % 256) * (PAGE_SZ / 8);

		switch (rand() % 5) {
		case 0:
			gru_store(c, p, k);
			break;
		case 1:
			gru_load(c, p, &v);
			break;
		case 2:
			gru_bcopy(c, mem + 128 * (PAGE_SZ / 8),
				  mem + (rand() % 64) * (PAGE_SZ / 8),
				  (1 + rand() % 32) * PAGE_SZ);
			break;
		case 3:
			madvise(mem + (rand() % 128) * (PAGE_SZ / 8),
				16 * PAGE_SZ, MADV_DONTNEED);
			break;
		default:
			gru_fadd(c, p, 1, &v);
			break;
		}
		if (fate == 1 && k == 200)
			_exit(0);	/* exit with everything open */
		if (fate == 2 && k == 200) {
			/* exec: the files close (O_CLOEXEC), the mm goes */
			execl("/bin/true", "true", (char *)NULL);
			_exit(0);
		}
	}
	_exit(0);
}

TEST_F_TIMEOUT(life, kill_storm_leaves_nothing_behind, 600)
{
	unsigned int seed = getenv("GRU_SEED") ? atoi(getenv("GRU_SEED")) :
			    (unsigned int)time(NULL);
	const int rounds = 12, per_round = 8;
	int r, k, status, killed = 0;
	pid_t pids[8];

	TH_LOG("seed %u (GRU_SEED=%u reproduces)", seed, seed);
	srand(seed);
	for (r = 0; r < rounds; r++) {
		for (k = 0; k < per_round; k++) {
			unsigned int cs = rand();
			int fate = rand() % 3;

			pids[k] = fork();
			ASSERT_GE(pids[k], 0);
			if (!pids[k])
				storm_child(cs, fate);
		}
		for (k = 0; k < per_round; k++) {
			usleep((rand() % 50) * 1000);
			if (rand() % 3) {
				kill(pids[k], SIGKILL);
				killed++;
			}
		}
		for (k = 0; k < per_round; k++) {
			ASSERT_EQ(0, wait_child(pids[k], 60000, &status))
				TH_LOG("round %d child %d stuck: state %c",
				       r, k, proc_state(pids[k]));
		}
	}
	TH_LOG("%d processes, %d killed", rounds * per_round, killed);
	if (self->base >= 0) {
		EXPECT_EQ(self->base, gru_live_wait("contexts", self->base, 20000));
		EXPECT_EQ(0, gru_live_wait("works", 0, 20000));
	}
}

TEST_HARNESS_MAIN
