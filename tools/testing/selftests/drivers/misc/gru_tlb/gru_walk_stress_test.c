// SPDX-License-Identifier: GPL-2.0
/*
 * The hard-IRQ page walk runs only where page tables cannot be freed
 * under it.
 *
 * On x86 up to 6.12, without a paravirt TLB flush (bare metal, TCG), the
 * mmu_gather frees a page table right after the TLB-flush IPI, and that
 * IPI goes only to the CPUs in mm_cpumask(mm).  A fault interrupt is
 * steered by the instruction's CPU hint, which may name a CPU that is
 * running another mm and so is not in the cpumask: an IRQs-off walk there
 * holds nothing off.  The driver must
 * leave such a miss to process context (defer_cpumask), and may walk in
 * the IRQ only on a CPU in the cpumask (or where tables are RCU-freed).
 *
 * foreign_cpu_hint_defers_irq_walk shows the rule through the counters.
 * munmap_thp_collapse_under_foreign_hints streams device accesses with
 * hints on every CPU over regions whose page tables are being freed
 * (munmap of 2 MiB- and 1 GiB-aligned regions), split (MADV_DONTNEED on
 * THPs) and retracted (khugepaged collapse): every result must be the
 * right data or a clean UNMAPPED, and on the lockdep+KASAN kernel the
 * runner fails on any report.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#define SZ_2M		(2UL << 20)
#define SZ_1G		(1UL << 30)

/*
 * The three defer counters follow last_service_ns in struct gru_ctx_stats
 * (they were taken from the start of its reserved words): read them by
 * offset, so this compiles against the header with or without the names.
 */
enum { DEFER_CPUMASK, DEFER_WALK, DEFER_RACE };

static uint64_t stat_defer(const struct gru_ctx_stats *st, unsigned int which)
{
	const unsigned char *p = (const unsigned char *)st;
	uint64_t v;

	memcpy(&v, p + offsetof(struct gru_ctx_stats, last_service_ns) +
		   sizeof(uint64_t) * (1 + which), sizeof(v));
	return v;
}

static uint64_t op_word(unsigned int opc, unsigned int cpu)
{
	return GRU_OP_ENCODE(opc, GRU_IF_CPU_HINT, cpu);
}

static int pin_to(pid_t pid, const int *cpus, int n)
{
	cpu_set_t set;
	int i;

	CPU_ZERO(&set);
	for (i = 0; i < n; i++)
		CPU_SET(cpus[i], &set);
	return sched_setaffinity(pid, sizeof(set), &set);
}

/* Interrupts of the gru_tlb vectors taken by @cpu so far (/proc/interrupts). */
static long long gru_irqs_on(int cpu)
{
	char line[4096];
	long long sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return -1;
	/* the header names the CPUs; IRQ lines then give one count per CPU */
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = strchr(line, ':');
		int i;

		if (!s || !strstr(line, "gru_tlb"))
			continue;
		s++;
		for (i = 0; i <= cpu; i++) {
			char *end;
			long long v = strtoll(s, &end, 10);

			if (end == s)
				break;
			if (i == cpu)
				sum += v;
			s = end;
		}
	}
	fclose(f);
	return sum;
}

/* Whether the driver said it walks on any CPU (page tables RCU-freed). */
static bool driver_walks_any_cpu(void)
{
	static char buf[1 << 20];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof(buf) - 1);

	if (n <= 0)
		return false;
	buf[n] = 0;
	return strstr(buf, "page tables RCU-freed: any CPU");
}

/*
 * A process of another mm on @cpu until killed: it busy-loops, or with
 * @light runs briefly and sleeps.  Either way @cpu switched to its mm, and
 * an idle CPU keeps the last mm it ran.  Writes a byte to @wfd (if >= 0)
 * once it runs there.
 */
static pid_t spin_on(int cpu, int wfd, bool light)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(1200);		/* never outlive a test that lost track of us */
	if (pin_to(0, &cpu, 1))
		_exit(1);
	while (sched_getcpu() != cpu)
		sched_yield();
	if (wfd >= 0 && write(wfd, "r", 1) != 1)
		_exit(2);
	for (;;) {
		if (light) {
			struct timespec t0, t1, nap = { 0, 300 * 1000 };

			clock_gettime(CLOCK_MONOTONIC, &t0);
			do {
				clock_gettime(CLOCK_MONOTONIC, &t1);
			} while ((t1.tv_sec - t0.tv_sec) * 1000000000L +
				 (t1.tv_nsec - t0.tv_nsec) < 100 * 1000);
			nanosleep(&nap, NULL);
		}
	}
}

static void stop_child(pid_t pid)
{
	int status;

	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
}

FIXTURE(walk)
{
	struct gru_ctx ctx;
	pid_t spinner[2];
	long long khd[3];	/* khugepaged knobs to restore, -1 untouched */
	int ncpus;
};

static const char *const khd_knob[3] = {
	"/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs",
	"/sys/kernel/mm/transparent_hugepage/khugepaged/alloc_sleep_millisecs",
	"/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan",
};

FIXTURE_SETUP(walk)
{
	int i;

	for (i = 0; i < 3; i++)
		self->khd[i] = -1;
	self->spinner[0] = -1;
	self->spinner[1] = -1;
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	self->ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (self->ncpus < 3)
		SKIP(return, "%d CPUs: needs CPU 2 to run another mm", self->ncpus);
}

/* Runs in the parent, so a test that died still restores khugepaged. */
FIXTURE_TEARDOWN_PARENT(walk)
{
	char buf[32];
	int i;

	for (i = 0; i < 3; i++) {
		if (self->khd[i] < 0)
			continue;
		snprintf(buf, sizeof(buf), "%lld", self->khd[i]);
		if (write_str(khd_knob[i], buf))
			TH_LOG("could not restore %s=%s", khd_knob[i], buf);
	}
}

/* Page @i of an area of fresh pages, and the value the test puts there. */
static uint64_t *page_at(uint64_t *area, int i)
{
	return area + i * (PAGE_SZ / 8);
}

static uint64_t val_of(int set, int i)
{
	return 0x5711000000000000ULL | (uint64_t)set << 16 | (uint64_t)i;
}

/*
 * LOAD from @n CPU-written pages of set @s (present, dirty), then STORE
 * to @n more of set @s + 1, each instruction hinted at @cpu.  Returns the
 * number of wrong results.
 */
static int loads_and_stores(struct __test_metadata *_metadata,
			    struct gru_ctx *ctx, uint64_t *area, int s,
			    int n, int cpu)
{
	int i, bad = 0, ret;
	uint64_t v;

	for (i = 0; i < n; i++) {
		struct gru_insn in = {
			.raw_op = op_word(GRU_OPC_LOAD, cpu),
			.addr = (uintptr_t)page_at(area, s * n + i),
		};

		ret = gru_run(ctx, &in, &v);
		EXPECT_EQ(0, ret) TH_LOG("LOAD hinted at CPU %d: %d", cpu, ret);
		if (!ret && v != val_of(s, i)) {
			TH_LOG("LOAD page %d: %#llx, want %#llx", i,
			       (unsigned long long)v,
			       (unsigned long long)val_of(s, i));
			bad++;
		}
	}
	for (i = 0; i < n; i++) {
		uint64_t *w = page_at(area, (s + 1) * n + i);
		struct gru_insn in = {
			.raw_op = op_word(GRU_OPC_STORE, cpu),
			.addr = (uintptr_t)w, .op0 = val_of(s + 1, i) ^ 1,
		};

		ret = gru_run(ctx, &in, NULL);
		EXPECT_EQ(0, ret) TH_LOG("STORE hinted at CPU %d: %d", cpu, ret);
		if (!ret && *w != (val_of(s + 1, i) ^ 1))
			bad++;
	}
	return bad;
}

/*
 * The whole process runs on CPU 0; CPU 2 runs another mm, so it is not in
 * our mm_cpumask.  Misses of present pages hinted at CPU 2 interrupt CPU 2:
 * they must be left to process context (defer_cpumask) and never filled
 * by the IRQ walk there.  Hinted at CPU 0, the same kind of miss is the
 * fast path's (fill_irq).  A miss the walk cannot fill (untouched page)
 * counts as defer_walk.
 */
TEST_F_TIMEOUT(walk, foreign_cpu_hint_defers_irq_walk, 300)
{
	const int n = 16, cpu0 = 0, cpu2 = 2;
	struct gru_ctx_stats s0, s1, s2, s3;
	uint64_t far_irq, far_worker, far_cpumask, near_irq, near_cpumask;
	uint64_t fresh_irq, fresh_walk;
	struct gru_ctx_opts o = { .fill_mode = GRU_FILL_IRQ, .batch = 1 };
	long long irq0[4], irq1[4];
	uint64_t *area, *fresh;
	int fds[2], i;
	char c;

	if (driver_walks_any_cpu())
		SKIP(return, "the driver walks on any CPU here (page tables RCU-freed)");
	if (read_num("/sys/kernel/realtime") == 1)
		SKIP(return, "PREEMPT_RT: no IRQ walk at all");
	/* before any thread exists: everything of ours stays on CPU 0 */
	ASSERT_EQ(0, pin_to(0, &cpu0, 1));
	sched_yield();
	ASSERT_EQ(cpu0, sched_getcpu());
	ASSERT_EQ(0, pipe(fds));
	/* CPU 2 switches to the spinner's mm, which drops it from ours */
	self->spinner[0] = spin_on(cpu2, fds[1], false);
	ASSERT_GT(self->spinner[0], 0);
	ASSERT_EQ(1, read(fds[0], &c, 1));
	close(fds[0]);
	close(fds[1]);

	ASSERT_EQ(0, gru_open(&self->ctx, GRU_LIB_NO_HINT));
	ASSERT_EQ(0, gru_set_opts(&self->ctx, &o));
	ASSERT_EQ(0, gru_nop(&self->ctx));
	/* sets 0-1 hinted at CPU 2, 2-3 at CPU 0: present and dirty */
	area = mmap(NULL, 4 * n * PAGE_SZ, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	ASSERT_EQ(0, madvise(area, 4 * n * PAGE_SZ, MADV_NOHUGEPAGE));
	for (i = 0; i < 4 * n; i++)
		*page_at(area, i) = val_of(i / n, i % n);
	/* set 4: never touched by the CPU */
	fresh = mmap(NULL, n * PAGE_SZ, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, fresh);
	ASSERT_EQ(0, madvise(fresh, n * PAGE_SZ, MADV_NOHUGEPAGE));

	ASSERT_EQ(0, gru_stats(&self->ctx, &s0));
	for (i = 0; i < 4; i++)
		irq0[i] = gru_irqs_on(i);
	EXPECT_EQ(0, loads_and_stores(_metadata, &self->ctx, area, 0, n, cpu2));
	for (i = 0; i < 4; i++)
		irq1[i] = gru_irqs_on(i);
	ASSERT_EQ(0, gru_stats(&self->ctx, &s1));
	/*
	 * The premise: those misses interrupted CPU 2 and no other CPU.  (One
	 * interrupt may announce several misses: the handler rechecks the
	 * slot before it returns.)
	 */
	for (i = 0; i < 4 && i < self->ncpus; i++) {
		if (i == cpu2) {
			ASSERT_GT(irq1[i] - irq0[i], 0)
				TH_LOG("no gru_tlb interrupt on CPU %d for misses hinted there", i);
		} else {
			ASSERT_EQ(irq1[i] - irq0[i], 0)
				TH_LOG("gru_tlb interrupts on CPU %d for misses hinted at CPU %d", i, cpu2);
		}
	}

	EXPECT_EQ(0, loads_and_stores(_metadata, &self->ctx, area, 2, n, cpu0));
	ASSERT_EQ(0, gru_stats(&self->ctx, &s2));

	for (i = 0; i < n; i++) {
		struct gru_insn in = {
			.raw_op = op_word(GRU_OPC_STORE, cpu0),
			.addr = (uintptr_t)page_at(fresh, i), .op0 = val_of(4, i),
		};

		EXPECT_EQ(0, gru_run(&self->ctx, &in, NULL));
		EXPECT_EQ(val_of(4, i), *page_at(fresh, i));
	}
	ASSERT_EQ(0, gru_stats(&self->ctx, &s3));

	/* what each phase added: CPU 2 (s0..s1), CPU 0 (s1..s2), untouched */
	far_irq = s1.fill_irq - s0.fill_irq;
	far_worker = s1.fill_worker - s0.fill_worker;
	far_cpumask = stat_defer(&s1, DEFER_CPUMASK) - stat_defer(&s0, DEFER_CPUMASK);
	near_irq = s2.fill_irq - s1.fill_irq;
	near_cpumask = stat_defer(&s2, DEFER_CPUMASK) - stat_defer(&s1, DEFER_CPUMASK);
	fresh_irq = s3.fill_irq - s2.fill_irq;
	fresh_walk = stat_defer(&s3, DEFER_WALK) - stat_defer(&s2, DEFER_WALK);
	TH_LOG("hint CPU %d: faults +%llu fill_irq +%llu fill_worker +%llu defer_cpumask +%llu, %lld interrupts there",
	       cpu2, (unsigned long long)(s1.faults - s0.faults),
	       (unsigned long long)far_irq, (unsigned long long)far_worker,
	       (unsigned long long)far_cpumask, irq1[cpu2] - irq0[cpu2]);
	TH_LOG("hint CPU %d: faults +%llu fill_irq +%llu defer_cpumask +%llu; untouched pages: fill_irq +%llu defer_walk +%llu",
	       cpu0, (unsigned long long)(s2.faults - s1.faults),
	       (unsigned long long)near_irq, (unsigned long long)near_cpumask,
	       (unsigned long long)fresh_irq, (unsigned long long)fresh_walk);

	/* CPU 2: no walk there, every miss handed on for its cpumask */
	EXPECT_EQ(0, far_irq);
	EXPECT_GE(far_cpumask, 2 * n);
	EXPECT_GE(far_worker, 2 * n);
	/* CPU 0 is ours: present, dirty pages are the IRQ walk's */
	EXPECT_GE(near_irq, n);
	/* untouched pages: the walk finds nothing, counted as such */
	EXPECT_EQ(0, fresh_irq);
	EXPECT_GE(fresh_walk, n);

	stop_child(self->spinner[0]);
	gru_close(&self->ctx);
	munmap(area, 4 * n * PAGE_SZ);
	munmap(fresh, n * PAGE_SZ);
}

/* ---- stress: device streams over regions being unmapped and collapsed ---- */

#define STRESS_ITERS_DEFAULT	5000	/* device instructions per thread */
#define STRESS_DEV_THREADS	2
#define STRESS_SPAN		8192	/* BCOPY length: two pages */
#define STRESS_BAD_LOG		8	/* wrong results described in full */
#define POISON			0xdeadbeefcafef00dULL

/* Every touched word of every region holds the value of its address. */
static uint64_t f_of(uintptr_t va)
{
	return 0x5eedULL << 48 | (uint64_t)va >> 3;
}

enum region_kind { K_THP, K_COLLAPSE, K_1G, K_1G_CHURN, K_NR };

static const char *const kind_name[K_NR] = {
	"thp_2m", "collapse_2m", "1g", "1g_churn",
};

/*
 * Pages touched in a 1 GiB region, in pairs that straddle a boundary: the
 * region's start, a PMD boundary, the middle (a PMD boundary too) and the
 * end.  Everything else stays untouched: no need to populate a GiB.
 */
static const unsigned long span_1g[] = {
	0, SZ_2M - PAGE_SZ, SZ_1G / 2 - PAGE_SZ, SZ_1G - 2 * PAGE_SZ,
};

#define NSPAN_1G	(sizeof(span_1g) / sizeof(span_1g[0]))

struct stress;

struct region {
	struct stress *s;
	atomic_ulong seq;	/* odd while the mutator changes it */
	atomic_uintptr_t base;	/* the last base, kept after munmap */
	enum region_kind kind;
	unsigned long size;
	/* the mutator's tally */
	unsigned long cycles, dontneed, collapsed, collapse_waits;
};

enum dev_op { OP_LOAD, OP_STORE, OP_COPY_OUT, OP_COPY_IN, OP_NR };

static const char *const op_name[OP_NR] = {
	"LOAD", "STORE", "BCOPY-out", "BCOPY-in",
};

struct dev_tally {
	unsigned long ops, stable, racing, unmapped, zero_racing;
	unsigned long by_hint[4], by_op[OP_NR];
	unsigned long bad;
	char msg[STRESS_BAD_LOG][256];
	struct gru_ctx_stats st;
	int open_err;
};

struct stress {
	struct region reg[K_NR];
	atomic_int stop;
	unsigned int iters;
	int nhint;
	struct dev_tally dev[STRESS_DEV_THREADS];
	pthread_t dev_thr[STRESS_DEV_THREADS], mut_thr[K_NR];
};

static void nap_us(unsigned int us)
{
	struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* @len bytes aligned to @align, of anonymous memory, never reserved. */
static void *map_region(unsigned long len, unsigned long align)
{
	return map_aligned_flags(len, align, MAP_NORESERVE);
}

static void fill(uintptr_t va, unsigned long len)
{
	uint64_t *w = (uint64_t *)va;
	unsigned long i;

	for (i = 0; i < len / 8; i++)
		w[i] = f_of(va + 8 * i);
}

static void begin_change(struct region *r)
{
	atomic_fetch_add(&r->seq, 1);
}

static void end_change(struct region *r)
{
	atomic_fetch_add(&r->seq, 1);
}

static bool is_thp(void *va)
{
	uint64_t pfn = va_to_pfn(va);

	return pfn && (kpageflags(pfn) >> KPF_THP_BIT & 1);
}

/*
 * One mutator per region kind.  Each cycle maps a new aligned region
 * (its address may be any earlier region's), fills it, changes it while
 * the device streams over it, and unmaps it, freeing its page tables.
 * Every change that touches content or mapping is inside an odd seq.
 */
static void *mutator(void *arg)
{
	struct region *r = arg;
	struct stress *s = r->s;
	unsigned int seed = 0x1234567u * (r->kind + 1);
	uintptr_t b;
	unsigned int j, k;

	/* seq is odd here: nothing published yet, or the last one unmapped */
	while (!atomic_load(&s->stop)) {
		b = (uintptr_t)map_region(r->size, r->size);
		if (!b) {
			nap_us(1000);
			continue;
		}
		switch (r->kind) {
		case K_THP:
			madvise((void *)b, SZ_2M, MADV_HUGEPAGE);
			fill(b, SZ_2M);
			break;
		case K_COLLAPSE:
			/* 512 small pages first, for khugepaged to collapse */
			madvise((void *)b, SZ_2M, MADV_NOHUGEPAGE);
			fill(b, SZ_2M);
			break;
		case K_1G:
			/* PTE tables on odd cycles, THPs near the spans on even */
			madvise((void *)b, SZ_1G, r->cycles & 1 ?
				MADV_NOHUGEPAGE : MADV_HUGEPAGE);
			for (k = 0; k < NSPAN_1G; k++)
				fill(b + span_1g[k], STRESS_SPAN);
			break;
		default:
			/* one PMD table and one PTE table, freed at once */
			madvise((void *)b, SZ_1G, MADV_NOHUGEPAGE);
			fill(b, STRESS_SPAN);
			break;
		}
		atomic_store(&r->base, b);
		end_change(r);

		switch (r->kind) {
		case K_THP:
			/* drop a piece or the whole THP, then refill it */
			for (j = 0; j < 4 && !atomic_load(&s->stop); j++) {
				unsigned long off = 0, len = SZ_2M;

				nap_us(2000 + rand_r(&seed) % 4000);
				if (rand_r(&seed) & 1) {
					len = (rand_r(&seed) & 1 ? 1 : 16) * PAGE_SZ;
					off = (rand_r(&seed) % (SZ_2M / PAGE_SZ - 16)) * PAGE_SZ;
				}
				begin_change(r);
				madvise((void *)(b + off), len, MADV_DONTNEED);
				fill(b + off, len);
				end_change(r);
				r->dontneed++;
			}
			break;
		case K_COLLAPSE:
			/* same data, one PMD instead of a PTE table */
			madvise((void *)b, SZ_2M, MADV_HUGEPAGE);
			for (j = 0; j < 400 && !atomic_load(&s->stop); j++) {
				if (is_thp((void *)b)) {
					r->collapsed++;
					break;
				}
				nap_us(2000);
			}
			r->collapse_waits += j;
			nap_us(2000 + rand_r(&seed) % 3000);
			break;
		case K_1G:
			nap_us(3000 + rand_r(&seed) % 5000);
			k = rand_r(&seed) % NSPAN_1G;
			begin_change(r);
			madvise((void *)(b + span_1g[k]), STRESS_SPAN, MADV_DONTNEED);
			fill(b + span_1g[k], STRESS_SPAN);
			end_change(r);
			r->dontneed++;
			nap_us(2000 + rand_r(&seed) % 3000);
			break;
		default:
			/*
			 * As short-lived as it gets: the tables go while
			 * misses hinted at other CPUs are walking them.
			 */
			nap_us(rand_r(&seed) % 300);
			break;
		}

		/* unmapped for a while: the device keeps aiming at it */
		begin_change(r);
		munmap((void *)b, r->size);
		nap_us(rand_r(&seed) % (r->kind == K_1G_CHURN ? 300 : 2000));
		r->cycles++;
		/* stays odd until the next region is published */
	}
	return NULL;
}

/* An 8-byte-aligned address and a span of STRESS_SPAN bytes in @r at @b. */
static uintptr_t pick(struct region *r, uintptr_t b, unsigned int *seed,
		      bool span)
{
	unsigned long off;

	if (r->kind == K_1G || r->kind == K_1G_CHURN) {
		off = span_1g[r->kind == K_1G ? rand_r(seed) % NSPAN_1G : 0];
		if (!span)
			off += (rand_r(seed) % (STRESS_SPAN / 8)) * 8;
		return b + off;
	}
	/* bias towards the ends of the region, where the tables split */
	switch (rand_r(seed) % 4) {
	case 0:
		off = 0;
		break;
	case 1:
		off = SZ_2M - STRESS_SPAN;
		break;
	default:
		off = (rand_r(seed) % ((SZ_2M - STRESS_SPAN) / 8)) * 8;
		break;
	}
	if (!span)
		off += (rand_r(seed) % (STRESS_SPAN / 8)) * 8;
	return b + off;
}

struct dev_arg {
	struct stress *s;
	int id;
};

static void bad(struct dev_tally *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bad(struct dev_tally *t, const char *fmt, ...)
{
	va_list ap;

	if (t->bad < STRESS_BAD_LOG) {
		va_start(ap, fmt);
		vsnprintf(t->msg[t->bad], sizeof(t->msg[0]), fmt, ap);
		va_end(ap);
	}
	t->bad++;
}

/* A word the device read: right, or (only while racing a change) zero. */
static bool word_ok(uint64_t got, uintptr_t va, bool stable)
{
	return got == f_of(va) || (!stable && got == 0);
}

/*
 * A device thread: LOAD, STORE, BCOPY out of a region and BCOPY into it,
 * at addresses of whatever region the mutators published last, hinted at
 * each CPU in turn.  An instruction that overlapped no change (same even
 * seq before and after) must be exact; one that raced may also see zeroes
 * (a fresh or dropped page) or fail with UNMAPPED, and nothing else.
 */
static void *device_thread(void *arg)
{
	struct dev_arg *a = arg;
	struct stress *s = a->s;
	struct dev_tally *t = &s->dev[a->id];
	unsigned int seed = 0xabcdefu * (a->id + 1), i, w;
	uint64_t *src, *sink, v;
	struct gru_ctx ctx;
	struct gru_exc e;
	int ret;

	t->open_err = gru_open(&ctx, GRU_LIB_NO_HINT);
	if (t->open_err)
		return NULL;
	src = mmap(NULL, 2 * STRESS_SPAN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (src == MAP_FAILED) {
		t->open_err = -errno;
		gru_close(&ctx);
		return NULL;
	}
	sink = src + STRESS_SPAN / 8;

	for (i = 0; i < s->iters; i++) {
		struct region *r = &s->reg[rand_r(&seed) % K_NR];
		unsigned long s1 = atomic_load(&r->seq), s2;
		uintptr_t b = atomic_load(&r->base), va;
		unsigned int hint = i % s->nhint, pick_op;
		enum dev_op op;
		struct gru_insn in = { 0 };
		bool stable;

		if (!b) {
			nap_us(200);
			continue;
		}
		pick_op = rand_r(&seed) % 8;
		op = pick_op < 3 ? OP_LOAD : pick_op < 5 ? OP_STORE :
		     pick_op < 7 ? OP_COPY_OUT : OP_COPY_IN;
		va = pick(r, b, &seed, op >= OP_COPY_OUT);
		switch (op) {
		case OP_LOAD:
			in.raw_op = op_word(GRU_OPC_LOAD, hint);
			in.addr = va;
			break;
		case OP_STORE:
			/* the value the word holds already */
			in.raw_op = op_word(GRU_OPC_STORE, hint);
			in.addr = va;
			in.op0 = f_of(va);
			break;
		case OP_COPY_OUT:
			/* what the device read, word by word */
			for (w = 0; w < STRESS_SPAN / 8; w++)
				sink[w] = POISON;
			in.raw_op = op_word(GRU_OPC_BCOPY, hint);
			in.addr = (uintptr_t)sink;
			in.src = va;
			in.len = STRESS_SPAN;
			break;
		default:
			/* the same values the region holds already */
			for (w = 0; w < STRESS_SPAN / 8; w++)
				src[w] = f_of(va + 8 * w);
			in.raw_op = op_word(GRU_OPC_BCOPY, hint);
			in.addr = va;
			in.src = (uintptr_t)src;
			in.len = STRESS_SPAN;
			break;
		}
		ret = gru_run(&ctx, &in, &v);
		gru_exception(&ctx, &e);
		s2 = atomic_load(&r->seq);
		stable = !(s1 & 1) && s1 == s2;
		t->ops++;
		t->by_hint[hint & 3]++;
		t->by_op[op]++;
		if (stable)
			t->stable++;
		else
			t->racing++;

		if (ret) {
			/* only an unmapped region may fail, and only the region */
			if (!stable && ret == -EFAULT &&
			    e.error == GRU_ERR_UNMAPPED &&
			    !!(e.info & GRU_EXC_SRC) == (op == OP_COPY_OUT) &&
			    e.va >= va && e.va < va + (in.len ? in.len : 8)) {
				t->unmapped++;
			} else {
				bad(t, "%s %s %#lx (dst %#llx src %#llx) hint %u: %d %s exc_va %#llx info %#llx progress %llu (%s)",
				    kind_name[r->kind], op_name[op],
				    (unsigned long)va,
				    (unsigned long long)in.addr,
				    (unsigned long long)in.src, hint, ret,
				    gru_err_name(e.error),
				    (unsigned long long)e.va,
				    (unsigned long long)e.info,
				    (unsigned long long)e.progress,
				    stable ? "no change overlapped" : "racing");
				continue;
			}
		}
		if (op == OP_LOAD && !ret) {
			if (!word_ok(v, va, stable))
				bad(t, "%s LOAD %#lx hint %u: %#llx, want %#llx (%s)",
				    kind_name[r->kind], (unsigned long)va, hint,
				    (unsigned long long)v,
				    (unsigned long long)f_of(va),
				    stable ? "no change overlapped" : "racing");
			else if (!v)
				t->zero_racing++;
		}
		if (op == OP_COPY_OUT) {
			/* DONE: all words; UNMAPPED: up to PROGRESS, poison after */
			unsigned long done = ret ? e.progress : STRESS_SPAN;

			for (w = 0; w < STRESS_SPAN / 8; w++) {
				uintptr_t wva = va + 8 * w;
				bool ok = 8 * w < done ?
					  word_ok(sink[w], wva, stable) :
					  sink[w] == POISON;

				if (!ok) {
					bad(t, "%s BCOPY-out %#lx hint %u: word %u %#llx, want %#llx (progress %lu, %s)",
					    kind_name[r->kind], (unsigned long)va,
					    hint, w, (unsigned long long)sink[w],
					    8 * w < done ?
					    (unsigned long long)f_of(wva) : POISON,
					    done, stable ? "no change overlapped" :
					    "racing");
					break;
				}
			}
		}
	}
	gru_stats(&ctx, &t->st);
	gru_close(&ctx);
	munmap(src, 2 * STRESS_SPAN);
	return NULL;
}

static unsigned int env_uint(const char *name, unsigned int def)
{
	const char *e = getenv(name);
	long v = e ? strtol(e, NULL, 0) : 0;

	return v > 0 ? (unsigned int)v : def;
}

static bool thp_never(void)
{
	char buf[128] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY);

	if (fd < 0)
		return true;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	return strstr(buf, "[never]");
}

/*
 * Our threads run on CPUs 0-1; CPUs 2-3 run processes of other mms, so
 * they leave our mm_cpumask.  Two device threads stream instructions with
 * hints rotating over every CPU at regions that mutators keep unmapping
 * (2 MiB- and 1 GiB-aligned: PTE and PMD tables freed), splitting
 * (MADV_DONTNEED on THPs) and collapsing (khugepaged).  Any wrong data,
 * or an error other than UNMAPPED while racing an unmap, fails; so does
 * any KASAN or lockdep report, through the runner's kernel-log check.
 */
TEST_F_TIMEOUT(walk, munmap_thp_collapse_under_foreign_hints, 3600)
{
	static const int ours[] = { 0, 1 };
	struct stress *s;
	struct dev_arg da[STRESS_DEV_THREADS];
	unsigned long tot_bad = 0, tot_ops = 0, stable = 0, racing = 0;
	unsigned long unmapped = 0, zeroes = 0, hints[4] = { 0 };
	unsigned long min_cycles = ~0UL;
	unsigned long long defer_cpumask = 0, fill_irq = 0, fill_worker = 0;
	long long collapsed0, collapsed1, v;
	bool collapse_possible = !thp_never();
	static const long long fast[3] = { 0, 0, 65536 };
	int i, k;
	char buf[32];

	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, s);
	memset(s, 0, sizeof(*s));
	s->iters = env_uint("GRU_STRESS_ITERS", STRESS_ITERS_DEFAULT);
	s->nhint = self->ncpus < 4 ? self->ncpus : 4;
	for (k = 0; k < K_NR; k++) {
		s->reg[k].s = s;
		s->reg[k].kind = k;
		s->reg[k].size = k >= K_1G ? SZ_1G : SZ_2M;
		atomic_store(&s->reg[k].seq, 1);	/* nothing published yet */
	}

	/* khugepaged as fast as it goes, restored by the teardown */
	for (i = 0; i < 3; i++) {
		v = read_num(khd_knob[i]);
		if (v < 0)
			continue;
		snprintf(buf, sizeof(buf), "%lld", fast[i]);
		if (!write_str(khd_knob[i], buf))
			self->khd[i] = v;
	}
	if (self->khd[0] < 0)
		collapse_possible = false;
	collapsed0 = read_num("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed");

	/* other mms on CPUs 2 and 3, before our threads exist */
	for (i = 0; i < 2 && 2 + i < self->ncpus; i++) {
		self->spinner[i] = spin_on(2 + i, -1, true);
		ASSERT_GT(self->spinner[i], 0);
	}
	ASSERT_EQ(0, pin_to(0, ours, 2));

	for (k = 0; k < K_NR; k++)
		ASSERT_EQ(0, pthread_create(&s->mut_thr[k], NULL, mutator,
					    &s->reg[k]));
	for (i = 0; i < STRESS_DEV_THREADS; i++) {
		da[i].s = s;
		da[i].id = i;
		ASSERT_EQ(0, pthread_create(&s->dev_thr[i], NULL, device_thread,
					    &da[i]));
	}
	for (i = 0; i < STRESS_DEV_THREADS; i++)
		pthread_join(s->dev_thr[i], NULL);
	atomic_store(&s->stop, 1);
	for (k = 0; k < K_NR; k++)
		pthread_join(s->mut_thr[k], NULL);
	for (i = 0; i < 2; i++)
		stop_child(self->spinner[i]);
	collapsed1 = read_num("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed");

	for (i = 0; i < STRESS_DEV_THREADS; i++) {
		struct dev_tally *t = &s->dev[i];
		unsigned long m;

		ASSERT_EQ(0, t->open_err);
		tot_ops += t->ops;
		tot_bad += t->bad;
		stable += t->stable;
		racing += t->racing;
		unmapped += t->unmapped;
		zeroes += t->zero_racing;
		for (k = 0; k < 4; k++)
			hints[k] += t->by_hint[k];
		fill_irq += t->st.fill_irq;
		fill_worker += t->st.fill_worker;
		defer_cpumask += stat_defer(&t->st, DEFER_CPUMASK);
		for (m = 0; m < t->bad && m < STRESS_BAD_LOG; m++)
			TH_LOG("thread %d: %s", i, t->msg[m]);
	}
	for (k = 0; k < K_NR; k++)
		TH_LOG("%s: %lu cycles (map, change, munmap), %lu MADV_DONTNEED, %lu collapsed (%lu waits of 2 ms)",
		       kind_name[k], s->reg[k].cycles, s->reg[k].dontneed,
		       s->reg[k].collapsed, s->reg[k].collapse_waits);
	TH_LOG("%lu instructions (hints cpu0 %lu cpu1 %lu cpu2 %lu cpu3 %lu): %lu with no change overlapping, %lu racing (%lu UNMAPPED, %lu read zeroes), %lu wrong",
	       tot_ops, hints[0], hints[1], hints[2], hints[3], stable, racing,
	       unmapped, zeroes, tot_bad);
	TH_LOG("fills: irq %llu, worker %llu; defer_cpumask %llu; khugepaged pages_collapsed +%lld",
	       fill_irq, fill_worker, defer_cpumask, collapsed1 - collapsed0);

	EXPECT_EQ(0, tot_bad);
	/* the run must have raced what it claims to race */
	EXPECT_GT(stable, 0);
	EXPECT_GT(unmapped, 0);
	for (k = 0; k < K_NR; k++)
		min_cycles = s->reg[k].cycles < min_cycles ?
			     s->reg[k].cycles : min_cycles;
	EXPECT_GE(min_cycles, 2);
	if (collapse_possible) {
		EXPECT_GT(s->reg[K_COLLAPSE].collapsed, 0);
	} else {
		TH_LOG("THP or khugepaged unavailable: collapse not exercised");
	}
	munmap(s, sizeof(*s));
}

TEST_HARNESS_MAIN
