// SPDX-License-Identifier: GPL-2.0
/*
 * Isolation: the device refuses kernel addresses, a process reaches only
 * its own memory, and neither a reused ASID nor a context reloaded into a
 * hardware slot another process used sees any old translation.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#define KADDR	0xffff888000000000ULL

FIXTURE(iso)
{
	struct gru_ctx ctx;
	uint64_t *buf;
};

FIXTURE_SETUP(iso)
{
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	ASSERT_EQ(0, gru_open(&self->ctx, GRU_LIB_AUTO_CALLOS));
	self->buf = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(iso)
{
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, PAGE_SZ);
	if (self->ctx.win)
		gru_close(&self->ctx);
}

/* Every opcode on kernel addresses (direct map, text, vsyscall): refused. */
TEST_F(iso, kernel_addresses_refused)
{
	uint64_t addrs[] = {
		KADDR, 0xffffffff81000000ULL, 0xffffffffff600000ULL,
		0, ~7ULL,
	};
	unsigned int opcs[] = {
		GRU_OPC_LOAD, GRU_OPC_STORE, GRU_OPC_FADD, GRU_OPC_SWAP,
		GRU_OPC_CAS, GRU_OPC_BSET, GRU_OPC_BCOPY,
	};
	struct gru_info info;
	struct gru_exc e;

	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	addrs[3] = info.va_limit;
	for (unsigned int a = 0; a < sizeof(addrs) / sizeof(addrs[0]); a++) {
		for (unsigned int o = 0; o < sizeof(opcs) / sizeof(opcs[0]); o++) {
			struct gru_insn in = {
				.opcode = opcs[o], .addr = addrs[a], .len = 8,
				.src = (uintptr_t)self->buf,
			};

			EXPECT_EQ(-EFAULT, gru_run(&self->ctx, &in, NULL));
			gru_exception(&self->ctx, &e);
			EXPECT_EQ(GRU_ERR_KERNEL_ADDR, e.error) {
				TH_LOG("%s at %#llx: %s", gru_opcode_name(opcs[o]),
				       (unsigned long long)addrs[a], gru_err_name(e.error));
			}
		}
	}
	/* a kernel address as the BCOPY source must not leak into our buffer */
	memset(self->buf, 0x11, PAGE_SZ);
	{
		struct gru_insn in = {
			.opcode = GRU_OPC_BCOPY, .addr = (uintptr_t)self->buf,
			.src = KADDR, .len = 256,
		};

		EXPECT_EQ(-EFAULT, gru_run(&self->ctx, &in, NULL));
	}
	for (int i = 0; i < 32; i++)
		EXPECT_EQ(0x1111111111111111ULL, self->buf[i]);
}

/*
 * Two processes with different data at the same virtual address: each one's
 * device accesses see only its own page, before and after the other ran.
 */
TEST_F(iso, processes_see_only_their_own_memory)
{
	uint64_t *shared_va = self->buf;
	int go[2], done[2], status;
	uint64_t v;
	char c;
	pid_t pid;

	*shared_va = 0xAAAA;
	ASSERT_EQ(0, gru_load(&self->ctx, shared_va, &v));
	ASSERT_EQ(0xAAAA, v);
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(done));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct gru_ctx cc;
		uint64_t *mine;
		int bad = 0;

		/* replace the inherited page by a page of our own at the same VA */
		mine = mmap(shared_va, PAGE_SZ, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (mine != shared_va)
			_exit(10);
		*mine = 0xBBBB;
		if (gru_open(&cc, 0))
			_exit(11);
		if (gru_load(&cc, mine, &v) || v != 0xBBBB)
			bad |= 1;
		if (gru_store(&cc, mine, 0xBBBC) || *mine != 0xBBBC)
			bad |= 2;
		/* the parent's context fd is inherited: its window is not */
		if (mmap(NULL, GRU_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->ctx.fd, 0) != MAP_FAILED || errno != EPERM)
			bad |= 4;
		if (write(done[1], "c", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(12);
		if (gru_load(&cc, mine, &v) || v != 0xBBBC)
			bad |= 8;
		_exit(bad);
	}
	ASSERT_EQ(1, read(done[0], &c, 1));
	ASSERT_EQ(0, gru_load(&self->ctx, shared_va, &v));
	EXPECT_EQ(0xAAAA, v);
	ASSERT_EQ(0, gru_store(&self->ctx, shared_va, 0xAAAB));
	ASSERT_EQ(1, write(go[1], "p", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child failure bits %#x",
						 WEXITSTATUS(status));
	EXPECT_EQ(0xAAAB, *shared_va);
}

/* A child can't resolve a call-OS stall of its parent's context. */
TEST_F(iso, call_os_from_another_mm_refused)
{
	struct gru_insn in = { .opcode = GRU_OPC_STORE, .op0 = 9 };
	int status;
	uint64_t *fresh;
	pid_t pid;

	ASSERT_EQ(0, gru_set_callos(&self->ctx, 1));
	fresh = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, fresh);
	in.addr = (uintptr_t)fresh;
	ASSERT_EQ(0, gru_issue(&self->ctx, &in));
	/* untouched page: the fast path can't fill it, so it stalls in CALLOS */
	self->ctx.lib_flags &= ~GRU_LIB_AUTO_CALLOS;
	ASSERT_EQ(-EAGAIN, gru_wait(&self->ctx, NULL));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct gru_call_os co;

		memset(&co, 0, sizeof(co));
		_exit(ioctl(self->ctx.fd, GRU_IOC_CALL_OS, &co) == -1 && errno == EPERM ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* still stalled for us, and we can resolve it */
	ASSERT_EQ(-EAGAIN, gru_wait(&self->ctx, NULL));
	ASSERT_EQ(0, gru_call_os(&self->ctx, NULL));
	ASSERT_EQ(0, gru_wait(&self->ctx, NULL));
	EXPECT_EQ(9, *fresh);
	munmap(fresh, PAGE_SZ);
}

/*
 * Any task may write its own /proc/<tid>/fail-nth, and should_fail()
 * obeys it before it looks at the fault point's own settings.  The
 * driver's fault points (a GRU_TLB_DEBUG module on a kernel with fault
 * injection) break coherency, so an unarmed one must not even consume
 * the countdown: a CALL_OS fill and an invalidation of a page the device
 * maps must leave fail-nth at 1.
 */
TEST_F(iso, fail_nth_cannot_fire_unarmed_fault_points)
{
	static const char nth[] = "/proc/thread-self/fail-nth";
	struct gru_insn in = { .opcode = GRU_OPC_STORE, .op0 = 9 };
	const char *pts[] = { "/sys/kernel/debug/gru/fail_seq_check/probability",
			      "/sys/kernel/debug/gru/fail_post_inval/probability" };
	uint64_t *fresh;

	if (access(nth, W_OK))
		SKIP(return, "no %s (a kernel without fault injection)", nth);
	for (int i = 0; i < 2; i++)
		if (!access(pts[i], R_OK) && read_num(pts[i]) != 0)
			SKIP(return, "%s is armed", pts[i]);
	ASSERT_EQ(0, gru_set_callos(&self->ctx, 1));
	fresh = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, fresh);
	in.addr = (uintptr_t)fresh;
	ASSERT_EQ(0, gru_issue(&self->ctx, &in));
	self->ctx.lib_flags &= ~GRU_LIB_AUTO_CALLOS;
	ASSERT_EQ(-EAGAIN, gru_wait(&self->ctx, NULL));

	/* the fill: gru_fill_walk() */
	ASSERT_EQ(0, write_str(nth, "1"));
	ASSERT_EQ(0, gru_call_os(&self->ctx, NULL));
	EXPECT_EQ(1, read_num(nth));
	ASSERT_EQ(0, write_str(nth, "0"));
	ASSERT_EQ(0, gru_wait(&self->ctx, NULL));
	EXPECT_EQ(9, *fresh);

	/* the invalidation of a page the device maps: the notifier */
	ASSERT_EQ(0, write_str(nth, "1"));
	ASSERT_EQ(0, madvise(fresh, PAGE_SZ, MADV_DONTNEED));
	EXPECT_EQ(1, read_num(nth));
	ASSERT_EQ(0, write_str(nth, "0"));
	EXPECT_EQ(0, *fresh);
	munmap(fresh, PAGE_SZ);
}

/*
 * Child process: open a context, write @val at @va (mapped privately at
 * the same VA in every child), report the ASID and the probe result of
 * @va BEFORE the device touched it.  Returns via the pipe.
 */
struct asid_report {
	uint32_t asid;
	uint32_t hit_before;
	uint32_t ok;
	uint32_t steals;	/* second report: times this context lost its slot */
};

static void asid_child(uint64_t *va, uint64_t val, int wfd, bool wait_go, int rfd)
{
	struct asid_report rep = { 0 };
	struct gru_tlb_probe p;
	struct gru_info info;
	struct gru_ctx c;
	uint64_t v = 0;
	char ch;

	if (mmap(va, PAGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != va)
		_exit(1);
	*va = val;
	if (gru_open(&c, 0) || gru_nop(&c) || gru_info(&c, &info))
		_exit(2);
	rep.asid = info.asid;
	if (gru_tlb_probe(&c, (uintptr_t)va, &p))
		_exit(3);
	rep.hit_before = p.hit;
	rep.ok = !gru_load(&c, va, &v) && v == val &&
		 !gru_store(&c, va, val + 1) && *va == val + 1;
	if (write(wfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(4);
	if (!wait_go)
		_exit(0);
	if (read(rfd, &ch, 1) < 0)
		_exit(5);
	/* others have run since: our slot may have been stolen and reloaded */
	{
		struct gru_ctx_stats st;

		rep.ok = !gru_load(&c, va, &v) && v == val + 1 && !gru_stats(&c, &st);
		rep.steals = rep.ok ? (uint32_t)st.steals : 0;
	}
	if (write(wfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(6);
	_exit(0);
}

/*
 * With max_asid small, ASIDs are reused across processes; a process that
 * gets a reused ASID finds no translation of the previous owner and reads
 * its own data at the same VA.
 */
TEST_F_TIMEOUT(iso, reused_asid_sees_no_old_translations, 300)
{
	long long max_asid = gru_param("max_asid");
	int rounds, reused = 0, bad = 0, fds[2], go[2], status;
	uint32_t first_owner[65536] = { 0 };
	struct gru_info info;

	if (max_asid < 1 || max_asid > 64)
		SKIP(return, "max_asid is %lld: boot with gru_tlb.max_asid=8 to force reuse",
		     max_asid);
	/* the driver keeps at least one ASID per hardware context */
	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	if (max_asid < info.hw_contexts + 1)
		max_asid = info.hw_contexts + 1;
	rounds = 3 * (int)max_asid + 4;
	ASSERT_EQ(0, pipe(fds));
	ASSERT_EQ(0, pipe(go));
	/*
	 * Every child stays alive with its translations in place, so ASIDs
	 * are taken from live owners (the generation wrap), not just
	 * recycled from exited ones whose release already flushed them.
	 */
	for (int k = 0; k < rounds; k++) {
		struct asid_report rep;
		pid_t pid = fork();

		ASSERT_GE(pid, 0);
		if (pid == 0) {
			close(go[1]);
			asid_child(self->buf, 0x1000 * (k + 1), fds[1], true, go[0]);
		}
		ASSERT_EQ(sizeof(rep), read(fds[0], &rep, sizeof(rep)));
		ASSERT_NE(0, rep.asid);
		ASSERT_LE(rep.asid, max_asid);
		if (first_owner[rep.asid]) {
			reused++;
			if (rep.hit_before || !rep.ok)
				bad++;
		} else {
			first_owner[rep.asid] = k + 1;
			EXPECT_EQ(0, rep.hit_before);
			EXPECT_TRUE(rep.ok);
		}
	}
	close(go[1]);
	for (int k = 0; k < rounds; k++) {
		ASSERT_GT(wait(&status), 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	EXPECT_GT(reused, 0);
	EXPECT_EQ(0, bad);
	TH_LOG("%d processes, max_asid %lld, %d reused ASIDs", rounds, max_asid, reused);
}

/*
 * Processes hold more contexts than the hardware has: each context that
 * is reloaded (into a slot another process's context used) still finds
 * only its own data at the common VA.
 */
TEST_F_TIMEOUT(iso, reloaded_context_sees_no_old_translations, 600)
{
	struct gru_info info;
	struct gru_ctx_stats st;
	int fds[2], go[2], n, status, bad = 0;
	unsigned long long steals = 0;
	uint64_t v;

	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	n = (int)info.hw_contexts + 2;
	*self->buf = 0x5151;
	ASSERT_EQ(0, gru_load(&self->ctx, self->buf, &v));
	ASSERT_EQ(0, pipe(fds));
	ASSERT_EQ(0, pipe(go));
	for (int k = 0; k < n; k++) {
		pid_t pid = fork();

		ASSERT_GE(pid, 0);
		if (pid == 0) {
			close(go[1]);
			asid_child(self->buf, 0x7000 + 0x100 * k, fds[1], true, go[0]);
		}
	}
	close(go[0]);
	for (int k = 0; k < n; k++) {
		struct asid_report rep;

		ASSERT_EQ(sizeof(rep), read(fds[0], &rep, sizeof(rep)));
		if (rep.hit_before || !rep.ok)
			bad++;
	}
	close(go[1]);
	for (int k = 0; k < n; k++) {
		struct asid_report rep;

		ASSERT_EQ(sizeof(rep), read(fds[0], &rep, sizeof(rep)));
		if (!rep.ok)
			bad++;
		steals += rep.steals;
	}
	for (int k = 0; k < n; k++) {
		ASSERT_GT(wait(&status), 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	EXPECT_EQ(0, bad);
	/* the claim needs contexts that really were stolen and reloaded */
	EXPECT_GT(steals, 0);
	/* ours too reads only its own data, reloaded or not */
	ASSERT_EQ(0, gru_load(&self->ctx, self->buf, &v));
	EXPECT_EQ(0x5151, v);
	ASSERT_EQ(0, gru_stats(&self->ctx, &st));
	EXPECT_GE(st.loads, 1);
	TH_LOG("%d processes on %u hardware contexts: %llu steals among them; ours: %llu steals, %llu loads",
	       n, info.hw_contexts, steals, (unsigned long long)st.steals,
	       (unsigned long long)st.loads);
}

/* Sum of a device-wide driver counter over every gru device (debugfs). */
static long long dbg_counter(const char *name)
{
	long long sum = -1;
	char path[512], key[64];
	struct dirent *de;
	DIR *d = opendir("/sys/kernel/debug/gru");

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		long long v;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/gru/%s/stats",
			 de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fscanf(f, "%63s %lld", key, &v) == 2)
			if (!strcmp(key, name))
				sum = (sum < 0 ? 0 : sum) + v;
		fclose(f);
	}
	closedir(d);
	return sum;
}

static void pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* A fresh mm takes an ASID: report it (0 on failure), optionally wait. */
static uint32_t new_mm_asid(int ready_fd)
{
	int p[2];
	uint32_t asid = 0;
	pid_t pid;

	if (pipe(p))
		return 0;
	pid = fork();
	if (pid == 0) {
		struct gru_info info;
		struct gru_ctx c;

		if (gru_open(&c, 0))
			_exit(1);
		/* the first window access loads the context: the ASID */
		if (ready_fd >= 0 && write(ready_fd, "r", 1) != 1)
			_exit(2);
		if (gru_nop(&c) || gru_info(&c, &info))
			_exit(3);
		if (write(p[1], &info.asid, sizeof(info.asid)) != sizeof(info.asid))
			_exit(4);
		_exit(0);
	}
	close(p[1]);
	if (pid > 0) {
		if (read(p[0], &asid, sizeof(asid)) != sizeof(asid))
			asid = 0;
		waitpid(pid, NULL, 0);
	}
	close(p[0]);
	return asid;
}

/*
 * An ASID wrap must never make the notifier skip an invalidation while
 * the old entries are still in the device.  Fresh processes take ASIDs
 * until the next one must wrap; then one more fresh process triggers the
 * wrap while asid_wrap_delay_us holds its flush section open (as a
 * preempted vCPU would), and meanwhile this process unmaps a page the
 * device holds a translation for and loads it through the device again.
 * That load must miss and fail with UNMAPPED: reading the old data means
 * the device used a page the kernel had already freed.  The unmap is
 * moved across the wrap's window from trial to trial, with the trigger
 * and this process on different CPUs.
 */
TEST_F_TIMEOUT(iso, asid_wrap_never_skips_an_invalidation, 600)
{
	long long max_asid = gru_param("max_asid");
	long long wraps0, wraps1, delay0 = gru_param("asid_wrap_delay_us");
	int trials = 48, stale = 0, other = 0, ready[2], go[2], trigger_cpu;
	struct gru_info info;
	struct gru_exc e;
	char buf[32];

	if (max_asid < 1 || max_asid > 64)
		SKIP(return, "max_asid is %lld: boot with gru_tlb.max_asid=8 to force wraps",
		     max_asid);
	if (delay0 < 0)
		SKIP(return, "gru_tlb has no asid_wrap_delay_us parameter");
	wraps0 = dbg_counter("asid_wraps");
	if (wraps0 < 0)
		SKIP(return, "no /sys/kernel/debug/gru/*/stats (debugfs not mounted?)");
	ASSERT_EQ(0, gru_info(&self->ctx, &info));
	/* the driver keeps at least one ASID per hardware context */
	if (max_asid < info.hw_contexts + 1)
		max_asid = info.hw_contexts + 1;
	ASSERT_EQ(0, write_str("/sys/module/gru_tlb/parameters/asid_wrap_delay_us",
			       "2000"));
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	/* this process on CPU 0, the wrap on another: both run at once */
	trigger_cpu = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0;
	pin_to(0);

	for (int t = 0; t < trials; t++) {
		long long offset_us = (t % 24) * 100;
		uint64_t *p, v = 0;
		uint32_t asid = 0;
		long long t0;
		int ret, n;
		char ch;

		/* use ASIDs up until the next new mm has to wrap */
		for (n = 0; n < 2 * max_asid + 2 && asid != max_asid; n++)
			asid = new_mm_asid(-1);
		if (asid != max_asid) {
			other++;
			TH_LOG("trial %d: could not reach ASID %lld (last %u)", t,
			       max_asid, asid);
			continue;
		}
		/*
		 * The trigger is forked first: fork write-protects our private
		 * pages, and that invalidation would remove the entry below.
		 */
		if (fork() == 0) {
			close(ready[0]);
			pin_to(trigger_cpu);
			if (read(go[0], &ch, 1) != 1)
				_exit(1);
			_exit(new_mm_asid(ready[1]) ? 0 : 1);
		}
		p = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, p);
		*p = 0x5a5a0000ULL + t;
		ret = gru_load(&self->ctx, p, &v);
		ASSERT_EQ(1, write(go[1], "g", 1));
		if (ret || v != 0x5a5a0000ULL + t) {
			TH_LOG("trial %d: first load %d %#llx", t, ret,
			       (unsigned long long)v);
			other++;
			munmap(p, PAGE_SZ);
			wait(NULL);
			continue;
		}
		ASSERT_EQ(1, read(ready[0], &ch, 1));
		t0 = now_us();
		while (now_us() - t0 < offset_us)
			;
		ASSERT_EQ(0, munmap(p, PAGE_SZ));
		ret = gru_load(&self->ctx, p, &v);
		wait(NULL);
		if (ret == 0) {
			TH_LOG("trial %d: load after munmap read %#llx", t,
			       (unsigned long long)v);
			stale++;
			continue;
		}
		gru_exception(&self->ctx, &e);
		if (ret != -EFAULT || e.error != GRU_ERR_UNMAPPED) {
			TH_LOG("trial %d: load after munmap: %d, %s", t, ret,
			       gru_err_name(e.error));
			other++;
		}
	}
	wraps1 = dbg_counter("asid_wraps");
	snprintf(buf, sizeof(buf), "%lld", delay0);
	write_str("/sys/module/gru_tlb/parameters/asid_wrap_delay_us", buf);
	TH_LOG("%d trials, %lld wraps, %d stale loads, %d other failures",
	       trials, wraps1 - wraps0, stale, other);
	EXPECT_GE(wraps1 - wraps0, trials);
	EXPECT_EQ(0, stale);
	EXPECT_EQ(0, other);
}

TEST_HARNESS_MAIN
