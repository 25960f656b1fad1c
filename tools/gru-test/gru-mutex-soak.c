// SPDX-License-Identifier: GPL-2.0
/*
 * gru-mutex-soak: a mutex shared by the device and the CPUs, soaked while
 * the kernel keeps replacing the pages under it.
 *
 * One 64-bit lock word is taken with the device's SWAP by device owners and
 * with __atomic_exchange (x86 xchg) by CPU owners.  Inside the critical
 * section each owner increments a shared counter NON-atomically:
 *
 *   device owner: LOAD counter, then STORE counter + 1 (two device
 *                 instructions, both translated by the device TLB; with
 *                 --dev-inc fadd one device FADD instead)
 *   CPU owner:    plain load, a short random spin, plain store
 *
 * LOAD + STORE is the default because it is the stronger detector: it
 * opens a window of two device round trips in which any second owner
 * loses an increment, it exercises the device's read and write
 * translations separately, and its store is ordinary DMA (a memcpy into
 * guest RAM), not a host atomic, so it also tests the ordering of plain
 * device stores against the CPU's later loads.  A FADD would be atomic
 * against the CPUs by itself and would lose nothing the lock fails to
 * protect on the device side.
 *
 * An owner word next to the lock (same page) is checked on entry (must be
 * 0), set to a unique tag, and checked on exit (must still be the tag) by
 * both kinds of owner.  The device owner writes and checks it with CPU
 * accesses, the ground truth, and also reads it through the device at
 * exit: a device LOAD that disagrees with the CPU's load of the same word
 * is a "view mismatch", i.e. the device translated the lock page to
 * another frame.  At the end the counter must equal the initial value plus
 * the number of acquisitions, and the lock must be free.  Before each
 * acquisition the device owner also reads, through the device, one of the
 * 15 pages after the lock page (unique, never-written first words) or, in
 * the edge layout, one of the 15 before the counter page: a value that
 * differs from the CPU's is a device entry pointing at the wrong frame.
 * An epoch in which one kind of owner makes no progress for 20 s while the
 * lock is held (a release that went elsewhere) counts as stuck; with the
 * lock free it is only a stall (an owner waiting in a slow fault).
 *
 * Churners, each switchable, run in the same process while the owners run:
 *   ksm      ksmd on with fast scanning; MADV_MERGEABLE on the whole lock
 *            arena and on fresh decoy pages (re-mmapped every cycle, so
 *            their page tables are freed) that are given the very content
 *            of the lock and counter pages during a short quiesce, so that
 *            KSM merges the live pages; periodic MADV_UNMERGEABLE
 *   numa     /proc/sys/kernel/numa_balancing=1 with a fast scan (hinting
 *            faults make the PTEs PROT_NONE, and pages migrate)
 *   migrate  move_pages() of the lock and counter pages between nodes
 *   thp      the arena is MADV_HUGEPAGE; mprotect of a 4K subrange splits
 *            the PMD, MADV_COLLAPSE (or khugepaged) collapses it again
 *   spray    (for the old batch-walk defect) fresh 2 MiB regions with
 *            their first 16 pages present, allocated just before and just
 *            after the arena's page tables, so the page after a PTE table
 *            is likely another PTE table full of plausible entries; their
 *            pages are checked at the end for stray device writes
 *
 * Layouts (--layout): "same" puts the lock page and the counter page next
 * to each other at the start of the arena's first 2 MiB region; "edge" puts
 * the counter in the LAST page of the first region and the lock in the
 * FIRST page of the second, so a batched walk that starts on the counter
 * with a page offset and runs off the end of its PTE table drops entries
 * for the lock page.  Offsets within the page are unaligned by default.
 *
 * Pacing (measured in a 4-vCPU MTTCG guest on a loaded 2-core host): a
 * device owner alone does ~57k acquisitions/s, a CPU owner alone ~6M/s;
 * a spinning CPU owner slows the device's MMIO a hundredfold, so a device
 * owner lets --dev-gap CPU acquisitions pass after each release and a CPU
 * owner steps aside for a waiting device owner every --ratio acquisitions.
 * Waits spin (a guest pause only every 64 iterations) because on a loaded
 * host every sleep's wake-up waits for QEMU's main loop thread.  Migrating
 * a PTE-mapped THP costs 512 TLB shootdowns, each a cross-vCPU IPI: with
 * --migrate and --thp together, expect far fewer acquisitions per second.
 *
 * Output is KTAP.  Example:
 *   gru-mutex-soak --seconds 600 --batch 16 --layout edge --spray 16
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <gru/libgru.h>
#include "gru_test_util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

#define SZ_2M		(2UL << 20)
#define ARENA_SZ	(2 * SZ_2M)
#define MAX_DEV		4
#define MAX_CPU		4
#define SPRAY_PAGES	16
#define MAX_SPRAY	256
#define DECOY_PAGES	32
#define EVLOG		8

enum hint_mode { HINT_SELF, HINT_OTHER, HINT_NONE };
enum layout { LAYOUT_SAME, LAYOUT_EDGE };

static struct {
	double seconds;
	uint64_t acquisitions;
	unsigned int batch;
	uint64_t seed;
	int dev_threads, cpu_threads;
	enum hint_mode hint;
	int hint_cpu;			/* -1: a random other CPU */
	enum layout layout;
	long lock_off, counter_off;	/* -1: seeded, unaligned */
	bool dev_fadd, dev_release_store, dev_swap_spin;
	bool ksm, numa, migrate, thp, pin, nbr_check;
	int spray;
	unsigned int ratio;		/* CPU acquisitions before yielding to a waiting device owner */
	unsigned int dev_gap;		/* CPU acquisitions a device owner lets pass after its release */
	unsigned int cs_spin;
	unsigned int move_us, thp_us, ksm_ms, ksm_wait_ms;
	unsigned int fill_mode;
	int epochs;
	unsigned int progress_s;
} opt = {
	.seconds = 60, .acquisitions = 0, .batch = 1, .seed = 1,
	.dev_threads = 1, .cpu_threads = 1, .hint = HINT_SELF, .hint_cpu = -1,
	.layout = LAYOUT_SAME, .lock_off = -1, .counter_off = -1,
	.ksm = true, .numa = true, .migrate = true, .thp = true, .pin = true,
	.nbr_check = true,
	.spray = 0, .ratio = 64, .dev_gap = 200, .cs_spin = 16,
	.move_us = 2000, .thp_us = 20000, .ksm_ms = 700, .ksm_wait_ms = 120,
	.fill_mode = GRU_FILL_IRQ, .epochs = 1, .progress_s = 60,
};

static int ncpus;

/* ---- the shared words --------------------------------------------------- */

static uint8_t *arena;			/* ARENA_SZ, 2 MiB aligned */
static volatile uint64_t *lockw, *ownerw, *counterw;
static uint8_t *lock_page, *counter_page;
static uint64_t counter_init;

static volatile int stop;		/* epoch over */
static volatile int fatal;		/* give up the run */
static volatile int pause_req;
static int paused;			/* owners parked for a KSM quiesce */
static int dev_want;			/* device owners waiting for the lock */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_us(unsigned long us)
{
	struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/*
 * Spin politely, but not on every iteration: under MTTCG a guest pause
 * leaves the translated code and the vCPU thread takes QEMU's big lock on
 * the way back (which the device's MMIO needs too), while a plain load
 * loop stays in the translated code and never gives the host CPU away.
 * Sleeping is worse: on a loaded host each wake-up waits for QEMU's main
 * loop thread.  So: plain loads, and a pause every 64 iterations.
 */
static void cpu_relax_n(unsigned long i)
{
	if ((i & 63) == 0)
		__builtin_ia32_pause();
	else
		__asm__ __volatile__("" ::: "memory");
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (!opt.pin || cpu < 0 || cpu >= ncpus)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* ---- event log ---------------------------------------------------------- */

struct evlog {
	int n;
	char msg[EVLOG][160];
};

static void ev(struct evlog *l, const char *fmt, ...)
{
	va_list ap;

	if (l->n < EVLOG) {
		va_start(ap, fmt);
		vsnprintf(l->msg[l->n], sizeof(l->msg[0]), fmt, ap);
		va_end(ap);
	}
	l->n++;
}

/* tag: bit 63 device, bits 55:48 thread, low bits sequence (never 0) */
#define TAG_DEV		(1ULL << 63)
static uint64_t mktag(bool dev, int t, uint64_t seq)
{
	return (dev ? TAG_DEV : 0) | (uint64_t)(t & 0xff) << 48 |
	       ((seq + 1) & 0xffffffffffffULL);
}

static const char *tagstr(uint64_t tag, char *buf, size_t len)
{
	if (!tag)
		snprintf(buf, len, "0");
	else
		snprintf(buf, len, "%s%d#%" PRIu64, tag & TAG_DEV ? "dev" : "cpu",
			 (int)(tag >> 48 & 0xff), (uint64_t)(tag & 0xffffffffffffULL));
	return buf;
}

/* ---- owners ------------------------------------------------------------- */

struct owner {
	pthread_t th;
	int id, cpu;
	bool dev;
	struct gru_ctx ctx;
	uint64_t rng;
	/* results (read by main with relaxed loads) */
	uint64_t acq, overlap, ov_entry, ov_exit, view_mismatch, rel_anom;
	uint64_t swap_tries, dev_ops, dev_errors, handoff_waits, handoff_timeouts;
	uint64_t hint_other, weird_lock, nbr_checks, nbr_mismatch, nbr_idx;
	struct evlog log;
	char pad[64];
} __attribute__((aligned(64)));

static struct owner dev_owner[MAX_DEV];
static struct owner cpu_owner[MAX_CPU];

static void maybe_pause(void)
{
	if (!pause_req)
		return;
	__atomic_fetch_add(&paused, 1, __ATOMIC_SEQ_CST);
	while (pause_req && !stop)
		sleep_us(200);
	__atomic_fetch_sub(&paused, 1, __ATOMIC_SEQ_CST);
}

static int other_cpu(struct owner *o, int cur)
{
	int t;

	if (opt.hint_cpu >= 0)
		return opt.hint_cpu;
	if (ncpus < 2)
		return cur;
	t = (int)(rng_next(&o->rng) % (uint64_t)(ncpus - 1));
	return t >= cur ? t + 1 : t;
}

/* One device instruction; retried a few times on error.  0 or -errno. */
static int dev_op(struct owner *o, unsigned int opc, volatile uint64_t *addr,
		  uint64_t op0, uint64_t *res)
{
	struct gru_insn in = {
		.opcode = (uint8_t)opc, .addr = (uintptr_t)addr, .op0 = op0,
	};
	int ret = 0;

	for (int tries = 0; tries < 5; tries++) {
		if (opt.hint == HINT_OTHER) {
			int cur = sched_getcpu();
			int t = other_cpu(o, cur < 0 ? 0 : cur);

			in.raw_op = GRU_OP_ENCODE(opc, GRU_IF_CPU_HINT, t);
			o->hint_other += t != cur;
		}
		o->dev_ops++;
		ret = gru_run(&o->ctx, &in, res);
		if (!ret)
			return 0;
		o->dev_errors++;
		ev(&o->log, "dev%d: %s at %p: %s", o->id, gru_opcode_name(opc),
		   (void *)addr, strerror(-ret));
		if (ret == -ETIMEDOUT || ret == -ECANCELED)
			break;
	}
	fatal = 1;
	stop = 1;
	return ret;
}

static void check_exit(struct owner *o, uint64_t tag, uint64_t seen_entry,
		       uint64_t seen_exit)
{
	char a[40], b[40];
	bool bad = false;

	if (seen_entry) {
		o->ov_entry++;
		bad = true;
		ev(&o->log, "%s%d#%" PRIu64 ": owner %s on entry", o->dev ? "dev" : "cpu",
		   o->id, o->acq, tagstr(seen_entry, a, sizeof(a)));
	}
	if (seen_exit != tag) {
		o->ov_exit++;
		bad = true;
		ev(&o->log, "%s%d#%" PRIu64 ": owner %s on exit, want %s", o->dev ? "dev" : "cpu",
		   o->id, o->acq, tagstr(seen_exit, a, sizeof(a)), tagstr(tag, b, sizeof(b)));
	}
	o->overlap += bad;
}

static uint64_t cpu_acq_now(void)
{
	uint64_t n = 0;

	for (int i = 0; i < opt.cpu_threads; i++)
		n += __atomic_load_n(&cpu_owner[i].acq, __ATOMIC_RELAXED);
	return n;
}

static void *dev_main(void *arg)
{
	struct owner *o = arg;
	uint64_t old, c, od, oc, tag;
	unsigned long spins;
	bool got;

	pin_self(o->cpu);
	o->nbr_idx = 15;	/* edge layout: the first device access is next to the counter */
	while (!stop) {
		maybe_pause();
		if (stop)
			break;
		/*
		 * Outside the lock: read one of the 15 pages after the lock page
		 * through the device.  Their first words are unique and never
		 * written, so any difference from the CPU's view is a device
		 * entry that maps the page to another frame.  In the edge
		 * layout every other check reads one of the 15 pages before the
		 * counter page instead, at the counter's (unaligned) offset, so
		 * that misses next to the end of that PTE table also happen
		 * while the lock is free.
		 */
		if (opt.nbr_check && !stop) {
			unsigned int k = o->nbr_idx++ % 30;
			uint8_t *pg;
			volatile uint64_t *w;
			uint64_t dv;

			if (k < 15 || opt.layout != LAYOUT_EDGE) {
				pg = lock_page + (1 + k % 15) * PAGE_SZ;
				if (pg == counter_page)	/* "same" layout: skip it */
					pg += PAGE_SZ;
				w = (volatile uint64_t *)pg;
			} else {
				pg = counter_page - (k - 14) * PAGE_SZ;
				w = (volatile uint64_t *)(pg + ((uintptr_t)counterw & (PAGE_SZ - 1)));
			}

			if (!dev_op(o, GRU_OPC_LOAD, w, 0, &dv)) {
				o->nbr_checks++;
				if (dv != *w) {
					o->nbr_mismatch++;
					ev(&o->log, "dev%d: lock page %+ld: device reads %#" PRIx64
					   ", CPU %#" PRIx64, o->id,
					   (long)(pg - lock_page) / (long)PAGE_SZ, dv, *w);
				}
			}
		}
		/* let the CPU owners run dev_gap acquisitions (at most ~5 ms) */
		if (opt.dev_gap && opt.cpu_threads) {
			uint64_t target = cpu_acq_now() + opt.dev_gap;
			double t0 = now_s();

			for (spins = 1; cpu_acq_now() < target && !stop && !pause_req; spins++) {
				if ((spins & 1023) == 0 && now_s() - t0 > 0.005)
					break;
				cpu_relax_n(spins);
			}
		}
		/* acquire: test (CPU load), then test-and-set through the device */
		__atomic_fetch_add(&dev_want, 1, __ATOMIC_SEQ_CST);
		got = false;
		spins = 0;
		while (!stop) {
			if (!opt.dev_swap_spin && __atomic_load_n(lockw, __ATOMIC_RELAXED)) {
				cpu_relax_n(++spins);
				continue;
			}
			o->swap_tries++;
			if (dev_op(o, GRU_OPC_SWAP, lockw, 1, &old))
				break;		/* device error: fatal */
			if (old == 0) {
				got = true;
				break;
			}
			if (old != 1 && o->weird_lock++ < 4)
				ev(&o->log, "dev%d: SWAP saw lock %#" PRIx64, o->id, old);
		}
		__atomic_fetch_sub(&dev_want, 1, __ATOMIC_SEQ_CST);
		if (!got)
			break;		/* stopped while waiting */

		tag = mktag(true, o->id, o->acq);
		{
			uint64_t e = *ownerw;

			*ownerw = tag;
			if (opt.dev_fadd) {
				if (dev_op(o, GRU_OPC_FADD, counterw, 1, &c))
					goto release;
			} else {
				if (dev_op(o, GRU_OPC_LOAD, counterw, 0, &c) ||
				    dev_op(o, GRU_OPC_STORE, counterw, c + 1, NULL))
					goto release;
			}
			if (dev_op(o, GRU_OPC_LOAD, ownerw, 0, &od))
				goto release;
			oc = *ownerw;
			if (od != oc) {
				char a[40], b[40];

				o->view_mismatch++;
				ev(&o->log, "dev%d#%" PRIu64 ": device sees owner %s, CPU sees %s",
				   o->id, o->acq, tagstr(od, a, sizeof(a)), tagstr(oc, b, sizeof(b)));
			}
			check_exit(o, tag, e, oc);
			*ownerw = 0;
		}
		o->acq++;
release:
		if (opt.dev_release_store) {
			dev_op(o, GRU_OPC_STORE, lockw, 0, NULL);
		} else if (!dev_op(o, GRU_OPC_SWAP, lockw, 0, &old) && old != 1) {
			o->rel_anom++;
			ev(&o->log, "dev%d: release SWAP found lock %#" PRIx64, o->id, old);
		}
	}
	return NULL;
}

static void *cpu_main(void *arg)
{
	struct owner *o = arg;
	unsigned int since = 0;
	uint64_t tag, e, c, x, old;
	unsigned long spins;
	bool got;

	pin_self(o->cpu);
	while (!stop) {
		maybe_pause();
		if (stop)
			break;
		/* let a waiting device owner in every opt.ratio acquisitions */
		if (since >= opt.ratio && __atomic_load_n(&dev_want, __ATOMIC_RELAXED)) {
			double t0 = now_s();

			o->handoff_waits++;
			for (spins = 1; __atomic_load_n(&dev_want, __ATOMIC_RELAXED) &&
			     !stop && !pause_req; spins++) {
				if ((spins & 1023) == 0 && now_s() - t0 > 0.005) {
					o->handoff_timeouts++;
					break;
				}
				cpu_relax_n(spins);
			}
			since = 0;
		}
		/* test and test-and-set; once taken, always finish and release */
		got = false;
		spins = 0;
		while (!stop) {
			if (__atomic_load_n(lockw, __ATOMIC_RELAXED)) {
				cpu_relax_n(++spins);
				continue;
			}
			if (__atomic_exchange_n(lockw, 1, __ATOMIC_SEQ_CST) == 0) {
				got = true;
				break;
			}
		}
		if (!got)
			break;
		tag = mktag(false, o->id, o->acq);
		e = *ownerw;
		*ownerw = tag;
		c = *counterw;
		x = opt.cs_spin ? rng_next(&o->rng) % (opt.cs_spin + 1) : 0;
		while (x--)
			__asm__ __volatile__("" ::: "memory");
		*counterw = c + 1;
		check_exit(o, tag, e, *ownerw);
		*ownerw = 0;
		o->acq++;
		since++;
		old = __atomic_exchange_n(lockw, 0, __ATOMIC_SEQ_CST);
		if (old != 1) {
			o->rel_anom++;
			ev(&o->log, "cpu%d: release found lock %#" PRIx64, o->id, old);
		}
	}
	return NULL;
}

/* ---- quiesce (for KSM) -------------------------------------------------- */

static bool pause_owners(void)
{
	int n = opt.dev_threads + opt.cpu_threads;
	double t0 = now_s();

	pause_req = 1;
	while (__atomic_load_n(&paused, __ATOMIC_SEQ_CST) < n) {
		if (stop || now_s() - t0 > 2.0) {
			pause_req = 0;
			return false;
		}
		sleep_us(100);
	}
	return true;
}

static void resume_owners(void)
{
	pause_req = 0;
}

/* ---- churners ----------------------------------------------------------- */

struct churn {
	uint64_t ksm_cycles, ksm_quiesce, ksm_quiesce_timeout, ksm_lock_merged,
		 ksm_counter_merged, ksm_unmerge, ksm_decoy_remaps, ksm_errors;
	uint64_t move_ok, move_busy, move_err;
	uint64_t thp_split, thp_split_err, thp_collapse_ok, thp_collapse_fail,
		 thp_collapse_unsupported, thp_collapse_einval, thp_lock_huge_samples,
		 thp_samples;
	uint64_t spray_resprays;
	int thp_last_errno, move_last_err;
};

static struct churn ch;

static bool page_is_ksm(const void *va)
{
	uint64_t pfn = va_to_pfn(va);

	return pfn && (kpageflags(pfn) >> KPF_KSM_BIT & 1);
}

static bool page_is_thp(const void *va)
{
	uint64_t pfn = va_to_pfn(va);

	return pfn && (kpageflags(pfn) >> KPF_THP_BIT & 1);
}

static void *ksm_main(void *arg)
{
	uint64_t rng = opt.seed ^ 0x6b736dULL;
	uint8_t *decoy = NULL;

	(void)arg;
	while (!stop) {
		unsigned long ms = opt.ksm_ms / 2 + rng_next(&rng) % (opt.ksm_ms + 1);

		for (unsigned long i = 0; i < ms / 10 && !stop; i++)
			sleep_us(10000);
		if (stop)
			break;
		ch.ksm_cycles++;
		/* fresh decoys: the old ones' page table is freed with them */
		if (decoy)
			munmap(decoy, DECOY_PAGES * PAGE_SZ);
		decoy = mmap(NULL, DECOY_PAGES * PAGE_SZ, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (decoy == MAP_FAILED) {
			decoy = NULL;
			ch.ksm_errors++;
			continue;
		}
		ch.ksm_decoy_remaps++;
		/* identical content: pairs of decoys per pattern, so they merge too */
		for (int p = 4; p < DECOY_PAGES; p++)
			memset(decoy + p * PAGE_SZ, 0x40 + (p & 3), PAGE_SZ);
		if (madvise(decoy, DECOY_PAGES * PAGE_SZ, MADV_MERGEABLE) ||
		    madvise(arena, ARENA_SZ, MADV_MERGEABLE))
			ch.ksm_errors++;

		/*
		 * A page under the lock changes all the time and never merges.
		 * Park the owners, give decoys the same content, and let ksmd
		 * merge the live lock and counter pages (or time out).
		 */
		if (pause_owners()) {
			double t0 = now_s();
			bool lm = false, cm = false;

			ch.ksm_quiesce++;
			memcpy(decoy, lock_page, PAGE_SZ);
			memcpy(decoy + PAGE_SZ, lock_page, PAGE_SZ);
			memcpy(decoy + 2 * PAGE_SZ, counter_page, PAGE_SZ);
			memcpy(decoy + 3 * PAGE_SZ, counter_page, PAGE_SZ);
			while (now_s() - t0 < opt.ksm_wait_ms / 1000.0 && !stop) {
				lm = lm || page_is_ksm(lock_page);
				cm = cm || page_is_ksm(counter_page);
				if (lm && cm)
					break;
				sleep_us(2000);
			}
			ch.ksm_lock_merged += lm;
			ch.ksm_counter_merged += cm;
			resume_owners();
		} else {
			ch.ksm_quiesce_timeout++;
		}
		/* unmerge everything now and then, with the owners running */
		if (ch.ksm_cycles % 4 == 0) {
			if (madvise(arena, ARENA_SZ, MADV_UNMERGEABLE))
				ch.ksm_errors++;
			else
				ch.ksm_unmerge++;
		}
	}
	if (decoy)
		munmap(decoy, DECOY_PAGES * PAGE_SZ);
	return NULL;
}

static void *move_main(void *arg)
{
	uint8_t *pages[2] = { lock_page, counter_page };
	uint64_t i = 0;

	(void)arg;
	while (!stop) {
		uint8_t *p = pages[i++ & 1];
		int node = page_node(p), r;

		r = node < 0 ? node : move_page_to(p, !node);
		if (!r)
			ch.move_ok++;
		else if (r == -EBUSY || r == -EAGAIN || r == -ENOENT || r == -ENOMEM)
			ch.move_busy++;
		else {
			ch.move_err++;
			ch.move_last_err = r;
		}
		sleep_us(opt.move_us);
	}
	return NULL;
}

static void *thp_main(void *arg)
{
	int nreg = opt.layout == LAYOUT_EDGE ? 2 : 1;
	bool collapse = true;
	uint64_t i = 0;

	(void)arg;
	while (!stop) {
		uint8_t *reg = arena + (i++ % nreg) * SZ_2M;
		uint8_t *sub = reg + 256 * PAGE_SZ;	/* neither lock nor counter page */

		ch.thp_samples++;
		ch.thp_lock_huge_samples += page_is_thp(lock_page);
		if (mprotect(sub, PAGE_SZ, PROT_READ) ||
		    mprotect(sub, PAGE_SZ, PROT_READ | PROT_WRITE)) {
			ch.thp_split_err++;
			ch.thp_last_errno = errno;
		} else {
			ch.thp_split++;
		}
		sleep_us(opt.thp_us / 2);
		if (collapse) {
			if (!madvise(reg, SZ_2M, MADV_COLLAPSE)) {
				ch.thp_collapse_ok++;
			} else if (errno == EINVAL && ++ch.thp_collapse_einval > 200 &&
				   !ch.thp_collapse_ok) {
				/* no MADV_COLLAPSE: khugepaged (tuned fast) does it */
				collapse = false;
				ch.thp_collapse_unsupported = 1;
			} else {
				ch.thp_collapse_fail++;
				ch.thp_last_errno = errno;
			}
		}
		sleep_us(opt.thp_us / 2);
	}
	return NULL;
}

/* ---- spray: PTE tables with plausible entries around the arena's -------- */

static uint8_t *spray_reg[MAX_SPRAY];

static void spray_make(int from, int to, uint64_t *rng)
{
	int idx[MAX_SPRAY], n = 0;

	for (int i = from; i < to; i++) {
		spray_reg[i] = map_aligned(SZ_2M, SZ_2M);
		if (!spray_reg[i])
			continue;
		madvise(spray_reg[i], SZ_2M, MADV_NOHUGEPAGE);
		idx[n++] = i;
	}
	/* shuffled, so neighbouring tables map unrelated addresses */
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rng_next(rng) % (uint64_t)(i + 1)), t = idx[i];

		idx[i] = idx[j];
		idx[j] = t;
	}
	for (int k = 0; k < n; k++)
		for (int p = 0; p < SPRAY_PAGES; p++)	/* all zero, but present */
			*(volatile uint64_t *)(spray_reg[idx[k]] + p * PAGE_SZ) = 0;
}

static uint64_t spray_check_free(void)
{
	uint64_t bad = 0;

	for (int i = 0; i < opt.spray && i < MAX_SPRAY; i++) {
		if (!spray_reg[i])
			continue;
		for (int p = 0; p < SPRAY_PAGES; p++) {
			const uint64_t *w = (const uint64_t *)(spray_reg[i] + p * PAGE_SZ);

			for (unsigned int k = 0; k < PAGE_SZ / 8; k++)
				bad += w[k] != 0;
		}
		munmap(spray_reg[i], SZ_2M);
		spray_reg[i] = NULL;
	}
	return bad;
}

/* ---- system knobs ------------------------------------------------------- */

static void knob(const char *path, const char *val)
{
	int r = write_str(path, val);

	if (r)
		printf("# knob %s=%s: %s\n", path, val, strerror(-r));
}

static void setup_knobs(void)
{
	if (opt.ksm) {
		knob("/sys/kernel/mm/ksm/pages_to_scan", "2000");
		knob("/sys/kernel/mm/ksm/sleep_millisecs", "5");
		knob("/sys/kernel/mm/ksm/run", "1");
	}
	if (opt.numa) {
		knob("/proc/sys/kernel/numa_balancing", "1");
		knob("/sys/kernel/debug/sched/numa_balancing/scan_delay_ms", "0");
		knob("/sys/kernel/debug/sched/numa_balancing/scan_period_min_ms", "20");
		knob("/sys/kernel/debug/sched/numa_balancing/scan_period_max_ms", "200");
	} else {
		knob("/proc/sys/kernel/numa_balancing", "0");
	}
	if (opt.thp) {
		knob("/sys/kernel/mm/transparent_hugepage/enabled", "always");
		knob("/sys/kernel/mm/transparent_hugepage/defrag", "madvise");
		knob("/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs", "10");
		knob("/sys/kernel/mm/transparent_hugepage/khugepaged/alloc_sleep_millisecs", "10");
		knob("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan", "4096");
	}
}

/* /proc/vmstat counters reported as deltas */
static const char *const vm_names[] = {
	"numa_pte_updates", "numa_hint_faults", "numa_pages_migrated",
	"pgmigrate_success", "pgmigrate_fail", "thp_migration_success",
	"thp_split_pmd", "thp_split_page", "thp_collapse_alloc", "thp_fault_alloc",
	"thp_deferred_split_page", "ksm_swpin_copy", "cow_ksm",
};
#define NVM ((int)(sizeof(vm_names) / sizeof(vm_names[0])))

static void vmstat_read(long long *v)
{
	char name[64];
	long long x;
	FILE *f = fopen("/proc/vmstat", "r");

	for (int i = 0; i < NVM; i++)
		v[i] = 0;
	if (!f)
		return;
	while (fscanf(f, "%63s %lld", name, &x) == 2)
		for (int i = 0; i < NVM; i++)
			if (!strcmp(name, vm_names[i]))
				v[i] = x;
	fclose(f);
}

/* ---- one epoch ---------------------------------------------------------- */

struct totals {
	uint64_t dev_acq, cpu_acq, overlaps, ov_entry, ov_exit, view_mismatch,
		 rel_anom, dev_errors, dev_ops, swap_tries, hint_other, nbr_checks,
		 nbr_mismatch,
		 handoff_waits, handoff_timeouts;
	int64_t lost;			/* expected - final, summed over epochs */
	uint64_t final_mismatch;	/* device LOAD of the final counter != CPU load */
	uint64_t stray, stuck, stalls;
	struct gru_ctx_stats st;	/* summed over device contexts */
	uint64_t epochs;
};

static struct totals tot;

static uint64_t live_acq(void)
{
	uint64_t n = 0;

	for (int i = 0; i < opt.dev_threads; i++)
		n += __atomic_load_n(&dev_owner[i].acq, __ATOMIC_RELAXED);
	for (int i = 0; i < opt.cpu_threads; i++)
		n += __atomic_load_n(&cpu_owner[i].acq, __ATOMIC_RELAXED);
	return n;
}

/*
 * Idle pages get unique content: only the lock and counter pages (at a
 * quiesce) and the decoys merge, so KSM does not pin the region's other
 * pages and MADV_COLLAPSE can still succeed.  The lock and counter pages
 * start zeroed.
 */
static void fill_unique(uint8_t *reg, uint64_t *rng)
{
	for (size_t off = 0; off < SZ_2M; off += PAGE_SZ) {
		uint8_t *pg = reg + off;

		if (pg == lock_page || pg == counter_page) {
			memset(pg, 0, PAGE_SZ);
			continue;
		}
		for (size_t k = 0; k < PAGE_SZ; k += 8)
			*(uint64_t *)(pg + k) = k ? 0 : rng_next(rng);
	}
}

static int setup_arena(uint64_t *rng)
{
	long loff, coff;
	size_t lpg, cpg;
	int half = opt.spray / 2;

	arena = map_aligned(ARENA_SZ, SZ_2M);
	if (!arena)
		return -ENOMEM;
	madvise(arena, ARENA_SZ, opt.thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	loff = opt.lock_off >= 0 ? opt.lock_off :
	       (long)(8 + 8 * (rng_next(rng) % (PAGE_SZ / 8 - 2)));
	coff = opt.counter_off >= 0 ? opt.counter_off :
	       (long)(8 + 8 * (rng_next(rng) % (PAGE_SZ / 8 - 1)));
	loff &= (long)PAGE_SZ - 8;	/* owner word = lock ^ 8, same page */
	coff &= (long)PAGE_SZ - 8;
	if (opt.layout == LAYOUT_EDGE) {
		cpg = 511;		/* last page of region A */
		lpg = 512;		/* first page of region B */
	} else {
		lpg = 0;
		cpg = 1;
	}
	lock_page = arena + lpg * PAGE_SZ;
	counter_page = arena + cpg * PAGE_SZ;
	lockw = (volatile uint64_t *)(lock_page + loff);
	ownerw = (volatile uint64_t *)(lock_page + (loff ^ 8));
	counterw = (volatile uint64_t *)(counter_page + coff);

	/*
	 * Page tables: A's, then half the spray, then B's, then the rest, so
	 * that tables allocated around A's and B's hold plausible entries.
	 */
	fill_unique(arena, rng);
	if (opt.spray)
		spray_make(0, half, rng);
	fill_unique(arena + SZ_2M, rng);
	if (opt.spray)
		spray_make(half, opt.spray, rng);
	counter_init = rng_next(rng) & 0xffffffffULL;
	*counterw = counter_init;
	*lockw = 0;
	*ownerw = 0;
	return 0;
}

static void print_owner_logs(void)
{
	for (int i = 0; i < opt.dev_threads; i++)
		for (int k = 0; k < dev_owner[i].log.n && k < EVLOG; k++)
			printf("# event: %s\n", dev_owner[i].log.msg[k]);
	for (int i = 0; i < opt.cpu_threads; i++)
		for (int k = 0; k < cpu_owner[i].log.n && k < EVLOG; k++)
			printf("# event: %s\n", cpu_owner[i].log.msg[k]);
}

static void print_progress(double t0, const char *what)
{
	uint64_t d = 0, c = 0, ov = 0, vm = 0;

	for (int i = 0; i < opt.dev_threads; i++) {
		d += __atomic_load_n(&dev_owner[i].acq, __ATOMIC_RELAXED);
		ov += __atomic_load_n(&dev_owner[i].overlap, __ATOMIC_RELAXED);
		vm += __atomic_load_n(&dev_owner[i].view_mismatch, __ATOMIC_RELAXED);
		vm += __atomic_load_n(&dev_owner[i].nbr_mismatch, __ATOMIC_RELAXED);
	}
	for (int i = 0; i < opt.cpu_threads; i++) {
		c += __atomic_load_n(&cpu_owner[i].acq, __ATOMIC_RELAXED);
		ov += __atomic_load_n(&cpu_owner[i].overlap, __ATOMIC_RELAXED);
	}
	printf("# %s t=%.0fs epoch %" PRIu64 ": acq dev %" PRIu64 " cpu %" PRIu64
	       " (+%" PRIu64 " dev %" PRIu64 " cpu before), overlaps %" PRIu64
	       " view_mismatch %" PRIu64 "; ksm q %" PRIu64 " merged lock %" PRIu64
	       " ctr %" PRIu64 "; moves %" PRIu64 "; split %" PRIu64 " collapse %" PRIu64 "\n",
	       what, now_s() - t0, tot.epochs, d, c, tot.dev_acq, tot.cpu_acq, ov, vm,
	       ch.ksm_quiesce, ch.ksm_lock_merged, ch.ksm_counter_merged, ch.move_ok,
	       ch.thp_split, ch.thp_collapse_ok);
	fflush(stdout);
}

static void add_stats(struct gru_ctx_stats *sum, const struct gru_ctx_stats *a,
		      const struct gru_ctx_stats *b)
{
	const uint64_t *pa = (const uint64_t *)a, *pb = (const uint64_t *)b;
	uint64_t *ps = (uint64_t *)sum;

	for (size_t i = 0; i < sizeof(*sum) / 8; i++)
		ps[i] += pb[i] - pa[i];
}

static int run_epoch(double t_start, double t_end, uint64_t acq_goal, uint64_t *rng)
{
	pthread_t tk, tm, tt;
	bool rk = false, rm = false, rt = false;
	struct gru_ctx_stats s0[MAX_DEV], s1;
	uint64_t final_cpu, final_dev = 0, expected, acq = 0;
	uint64_t acq_base = tot.dev_acq + tot.cpu_acq;
	double last = now_s(), t_dev = last, t_cpu = last;
	uint64_t last_dev = 0, last_cpu = 0;
	int ret;

	ret = setup_arena(rng);
	if (ret)
		return ret;
	stop = 0;
	pause_req = 0;
	for (int i = 0; i < opt.dev_threads; i++) {
		struct owner *o = &dev_owner[i];
		struct gru_ctx keep = o->ctx;

		memset(o, 0, sizeof(*o));
		o->ctx = keep;
		o->id = i;
		o->dev = true;
		o->rng = opt.seed * 1000003 + i + tot.epochs * 7919;
		/* device owners on node 0's CPUs, CPU owners on node 1's */
		o->cpu = (i % (ncpus > 1 ? ncpus / 2 : 1));
		gru_stats(&o->ctx, &s0[i]);
		pthread_create(&o->th, NULL, dev_main, o);
	}
	for (int i = 0; i < opt.cpu_threads; i++) {
		struct owner *o = &cpu_owner[i];

		memset(o, 0, sizeof(*o));
		o->id = i;
		o->rng = opt.seed * 2000003 + i + tot.epochs * 7919;
		o->cpu = ncpus > 1 ? ncpus / 2 + i % (ncpus - ncpus / 2) : 0;
		pthread_create(&o->th, NULL, cpu_main, o);
	}
	if (opt.ksm)
		rk = !pthread_create(&tk, NULL, ksm_main, NULL);
	if (opt.migrate && numa_nodes() >= 2)
		rm = !pthread_create(&tm, NULL, move_main, NULL);
	if (opt.thp)
		rt = !pthread_create(&tt, NULL, thp_main, NULL);

	while (!fatal) {
		double t = now_s();

		acq = live_acq();
		if (t >= t_end || (acq_goal && acq_base + acq >= acq_goal))
			break;
		/* a lock that nobody of one kind can take any more ends the epoch */
		if (acq - cpu_acq_now() != last_dev) {
			last_dev = acq - cpu_acq_now();
			t_dev = t;
		}
		if (cpu_acq_now() != last_cpu) {
			last_cpu = cpu_acq_now();
			t_cpu = t;
		}
		if ((opt.dev_threads && t - t_dev > 20) || (opt.cpu_threads && t - t_cpu > 20)) {
			bool held = *lockw != 0;

			/*
			 * Held: a release went elsewhere and nobody can get
			 * in (a failure).  Free: that owner is only stalled,
			 * e.g. in a fault behind a slow migration (a note).
			 */
			printf("# epoch %" PRIu64 ": %s, no %s acquisition for 20 s (lock %#" PRIx64
			       ", owner %#" PRIx64 ")\n", tot.epochs, held ? "stuck" : "stalled",
			       t - t_dev > 20 ? "device" : "CPU", *lockw, *ownerw);
			if (held) {
				tot.stuck++;
				break;
			}
			tot.stalls++;
			t_dev = t_cpu = t;
		}
		if (opt.progress_s && t - last >= opt.progress_s) {
			print_progress(t_start, "progress");
			last = t;
		}
		sleep_us(100000);
	}
	stop = 1;
	pause_req = 0;
	if (rk)
		pthread_join(tk, NULL);
	if (rm)
		pthread_join(tm, NULL);
	if (rt)
		pthread_join(tt, NULL);
	for (int i = 0; i < opt.dev_threads; i++)
		pthread_join(dev_owner[i].th, NULL);
	for (int i = 0; i < opt.cpu_threads; i++)
		pthread_join(cpu_owner[i].th, NULL);

	/* verdict of this epoch */
	expected = counter_init;
	for (int i = 0; i < opt.dev_threads; i++) {
		struct owner *o = &dev_owner[i];

		expected += o->acq;
		tot.dev_acq += o->acq;
		tot.overlaps += o->overlap;
		tot.ov_entry += o->ov_entry;
		tot.ov_exit += o->ov_exit;
		tot.view_mismatch += o->view_mismatch;
		tot.rel_anom += o->rel_anom;
		tot.dev_errors += o->dev_errors;
		tot.dev_ops += o->dev_ops;
		tot.swap_tries += o->swap_tries;
		tot.hint_other += o->hint_other;
		tot.nbr_checks += o->nbr_checks;
		tot.nbr_mismatch += o->nbr_mismatch;
		if (!gru_stats(&o->ctx, &s1))
			add_stats(&tot.st, &s0[i], &s1);
	}
	for (int i = 0; i < opt.cpu_threads; i++) {
		struct owner *o = &cpu_owner[i];

		expected += o->acq;
		tot.cpu_acq += o->acq;
		tot.overlaps += o->overlap;
		tot.ov_entry += o->ov_entry;
		tot.ov_exit += o->ov_exit;
		tot.rel_anom += o->rel_anom;
		tot.handoff_waits += o->handoff_waits;
		tot.handoff_timeouts += o->handoff_timeouts;
	}
	final_cpu = *counterw;
	if (!fatal && opt.dev_threads &&
	    !gru_load(&dev_owner[0].ctx, (const void *)counterw, &final_dev) &&
	    final_dev != final_cpu)
		tot.final_mismatch++;
	tot.lost += (int64_t)(expected - final_cpu);
	if (*lockw || *ownerw)
		tot.rel_anom++;		/* the lock must end free and unowned */
	if (!opt.dev_threads)
		final_dev = final_cpu;
	if (expected != final_cpu || *lockw || *ownerw)
		printf("# epoch %" PRIu64 ": counter %" PRIu64 " (device view %" PRIu64
		       "), expected %" PRIu64 ", lock %#" PRIx64 ", owner %#" PRIx64 "\n",
		       tot.epochs, final_cpu - counter_init, final_dev - counter_init,
		       expected - counter_init, *lockw, *ownerw);
	print_owner_logs();
	if (opt.spray)
		tot.stray += spray_check_free();
	munmap(arena, ARENA_SZ);
	tot.epochs++;
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
"usage: gru-mutex-soak [options]\n"
"  --seconds S          run time (default 60)\n"
"  --acquisitions N     stop after N acquisitions in total (device + CPU)\n"
"  --batch B            gru_ctx_opts.batch for the device contexts (1..16)\n"
"  --seed N             seeds offsets, spray order, timings\n"
"  --dev-threads N      device owners, one context each (default 1)\n"
"  --cpu-threads N      CPU owners (default 1)\n"
"  --hint self|other|none  CPU hint: the issuing CPU (libgru default), another\n"
"                       CPU (random, or --hint-cpu N), or none (context vector)\n"
"  --layout same|edge   lock and counter pages side by side, or counter in the\n"
"                       last page of a 2 MiB region and lock in the next one's first\n"
"  --lock-off N --counter-off N   byte offsets in their pages (default: seeded,\n"
"                       never 0); --aligned puts both at offset 0 (owner at 8)\n"
"  --dev-inc loadstore|fadd   device increment (default loadstore)\n"
"  --dev-release swap|store   device release (default swap, checks old == 1)\n"
"  --dev-spin ttas|swap  device waits by CPU loads of the lock, then SWAP\n"
"                       (default), or by SWAPs alone\n"
"  --no-ksm --no-numa --no-migrate --no-thp --no-pin   switch churners off\n"
"  --no-nbr-check       don't read the 15 pages after the lock page through the\n"
"                       device after each release (wrong-frame detector)\n"
"  --spray N            N sprayed 2 MiB regions around the arena's page tables\n"
"  --ratio N            CPU acquisitions before yielding to a waiting device owner (64)\n"
"  --dev-gap N          CPU acquisitions a device owner waits for (<= 5 ms) after\n"
"                       each release (200; 0 = contend all the time)\n"
"  --cs-spin N          random pause loop of up to N in the CPU critical section\n"
"  --move-us N --thp-us N --ksm-ms N --ksm-wait-ms N   churn periods\n"
"  --fill irq|worker    device fill mode (default irq)\n"
"  --epochs N           rebuild the arena (new page tables) N times\n"
"  --progress S         progress line every S seconds (default 60, 0 = never)\n");
}

int main(int argc, char **argv)
{
	enum { O_SEC = 256, O_ACQ, O_BATCH, O_SEED, O_DEVT, O_CPUT, O_HINT, O_HINTCPU,
	       O_LAYOUT, O_LOFF, O_COFF, O_ALIGNED, O_DEVINC, O_DEVREL, O_NOKSM,
	       O_NONUMA, O_NOMIG, O_NOTHP, O_NOPIN, O_SPRAY, O_RATIO, O_DEVGAP, O_CSSPIN,
	       O_MOVEUS, O_THPUS, O_KSMMS, O_KSMWAIT, O_FILL, O_EPOCHS, O_PROG, O_NONBR, O_DEVSPIN };
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, O_SEC },
		{ "acquisitions", required_argument, NULL, O_ACQ },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "seed", required_argument, NULL, O_SEED },
		{ "dev-threads", required_argument, NULL, O_DEVT },
		{ "cpu-threads", required_argument, NULL, O_CPUT },
		{ "hint", required_argument, NULL, O_HINT },
		{ "hint-cpu", required_argument, NULL, O_HINTCPU },
		{ "layout", required_argument, NULL, O_LAYOUT },
		{ "lock-off", required_argument, NULL, O_LOFF },
		{ "counter-off", required_argument, NULL, O_COFF },
		{ "aligned", no_argument, NULL, O_ALIGNED },
		{ "dev-inc", required_argument, NULL, O_DEVINC },
		{ "dev-release", required_argument, NULL, O_DEVREL },
		{ "dev-spin", required_argument, NULL, O_DEVSPIN },
		{ "no-ksm", no_argument, NULL, O_NOKSM },
		{ "no-numa", no_argument, NULL, O_NONUMA },
		{ "no-migrate", no_argument, NULL, O_NOMIG },
		{ "no-thp", no_argument, NULL, O_NOTHP },
		{ "no-pin", no_argument, NULL, O_NOPIN },
		{ "no-nbr-check", no_argument, NULL, O_NONBR },
		{ "spray", required_argument, NULL, O_SPRAY },
		{ "ratio", required_argument, NULL, O_RATIO },
		{ "dev-gap", required_argument, NULL, O_DEVGAP },
		{ "cs-spin", required_argument, NULL, O_CSSPIN },
		{ "move-us", required_argument, NULL, O_MOVEUS },
		{ "thp-us", required_argument, NULL, O_THPUS },
		{ "ksm-ms", required_argument, NULL, O_KSMMS },
		{ "ksm-wait-ms", required_argument, NULL, O_KSMWAIT },
		{ "fill", required_argument, NULL, O_FILL },
		{ "epochs", required_argument, NULL, O_EPOCHS },
		{ "progress", required_argument, NULL, O_PROG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long long vm0[NVM], vm1[NVM];
	long long ksm_full0, ksm_full1;
	struct utsname un;
	uint64_t rng;
	double t0, t_end;
	bool ok_ov, ok_lost, ok_view, ok_stray, ok_err;
	int c, n = 0;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_SEC: opt.seconds = strtod(optarg, NULL); break;
		case O_ACQ: opt.acquisitions = strtoull(optarg, NULL, 0); break;
		case O_BATCH: opt.batch = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_SEED: opt.seed = strtoull(optarg, NULL, 0); break;
		case O_DEVT: opt.dev_threads = atoi(optarg); break;
		case O_CPUT: opt.cpu_threads = atoi(optarg); break;
		case O_HINT:
			opt.hint = !strcmp(optarg, "other") ? HINT_OTHER :
				   !strcmp(optarg, "none") ? HINT_NONE : HINT_SELF;
			break;
		case O_HINTCPU: opt.hint_cpu = atoi(optarg); opt.hint = HINT_OTHER; break;
		case O_LAYOUT:
			opt.layout = !strcmp(optarg, "edge") ? LAYOUT_EDGE : LAYOUT_SAME;
			break;
		case O_LOFF: opt.lock_off = strtol(optarg, NULL, 0); break;
		case O_COFF: opt.counter_off = strtol(optarg, NULL, 0); break;
		case O_ALIGNED: opt.lock_off = 0; opt.counter_off = 0; break;
		case O_DEVINC: opt.dev_fadd = !strcmp(optarg, "fadd"); break;
		case O_DEVREL: opt.dev_release_store = !strcmp(optarg, "store"); break;
		case O_DEVSPIN: opt.dev_swap_spin = !strcmp(optarg, "swap"); break;
		case O_NOKSM: opt.ksm = false; break;
		case O_NONUMA: opt.numa = false; break;
		case O_NOMIG: opt.migrate = false; break;
		case O_NOTHP: opt.thp = false; break;
		case O_NOPIN: opt.pin = false; break;
		case O_NONBR: opt.nbr_check = false; break;
		case O_SPRAY: opt.spray = atoi(optarg); break;
		case O_RATIO: opt.ratio = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_DEVGAP: opt.dev_gap = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_CSSPIN: opt.cs_spin = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_MOVEUS: opt.move_us = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_THPUS: opt.thp_us = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_KSMMS: opt.ksm_ms = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_KSMWAIT: opt.ksm_wait_ms = (unsigned int)strtoul(optarg, NULL, 0); break;
		case O_FILL: opt.fill_mode = !strcmp(optarg, "worker") ? GRU_FILL_WORKER : GRU_FILL_IRQ; break;
		case O_EPOCHS: opt.epochs = atoi(optarg); break;
		case O_PROG: opt.progress_s = (unsigned int)strtoul(optarg, NULL, 0); break;
		default: usage(); return c == 'h' ? 0 : 2;
		}
	}
	if (opt.dev_threads < 0 || opt.dev_threads > MAX_DEV || opt.cpu_threads < 0 ||
	    opt.cpu_threads > MAX_CPU || opt.spray < 0 || opt.spray > MAX_SPRAY ||
	    opt.epochs < 1 || opt.batch > 16) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	uname(&un);
	printf("KTAP version 1\n");
	printf("# gru-mutex-soak: kernel %s, %d CPUs, %d nodes, driver srcversion %s\n",
	       un.release, ncpus, numa_nodes(),
	       access("/sys/module/gru_tlb/srcversion", R_OK) ? "?" : "see below");
	{
		char sv[64] = "";
		FILE *f = fopen("/sys/module/gru_tlb/srcversion", "r");

		if (f) {
			if (fgets(sv, sizeof(sv), f))
				sv[strcspn(sv, "\n")] = 0;
			fclose(f);
			printf("# gru_tlb srcversion %s\n", sv);
		}
	}
	printf("# options: seconds %.0f acquisitions %" PRIu64 " batch %u seed %" PRIu64
	       " dev %d cpu %d hint %s%s layout %s lock_off %ld counter_off %ld dev_inc %s"
	       " dev_release %s dev_spin %s fill %s ksm %d numa %d migrate %d thp %d pin %d spray %d"
	       " ratio %u dev_gap %u cs_spin %u epochs %d\n",
	       opt.seconds, opt.acquisitions, opt.batch, opt.seed, opt.dev_threads,
	       opt.cpu_threads, opt.hint == HINT_OTHER ? "other" : opt.hint == HINT_NONE ?
	       "none" : "self", opt.hint_cpu >= 0 ? "(fixed)" : "",
	       opt.layout == LAYOUT_EDGE ? "edge" : "same", opt.lock_off, opt.counter_off,
	       opt.dev_fadd ? "fadd" : "loadstore", opt.dev_release_store ? "store" : "swap",
	       opt.dev_swap_spin ? "swap" : "ttas", opt.fill_mode == GRU_FILL_WORKER ? "worker" : "irq",
	       opt.ksm, opt.numa, opt.migrate, opt.thp, opt.pin, opt.spray, opt.ratio,
	       opt.dev_gap, opt.cs_spin, opt.epochs);
	printf("1..5\n");
	if (!gru_present()) {
		for (int i = 1; i <= 5; i++)
			printf("not ok %d gru_mutex_soak # no %s\n", i, GRU_DEV_PATH);
		return 1;
	}
	for (int i = 0; i < opt.dev_threads; i++) {
		struct gru_ctx_opts o = { .fill_mode = opt.fill_mode, .batch = opt.batch };
		int r = gru_open(&dev_owner[i].ctx, opt.hint == HINT_NONE ? GRU_LIB_NO_HINT : 0);

		if (!r)
			r = gru_set_opts(&dev_owner[i].ctx, &o);
		if (r) {
			printf("not ok 1 gru_mutex_soak # context %d: %s\n", i, strerror(-r));
			return 1;
		}
	}
	setup_knobs();
	vmstat_read(vm0);
	ksm_full0 = read_num("/sys/kernel/mm/ksm/full_scans");
	rng = opt.seed * 0x2545f4914f6cdd1dULL + 1;
	t0 = now_s();
	t_end = t0 + opt.seconds;
	for (int e = 0; e < opt.epochs && !fatal; e++) {
		double te = t0 + opt.seconds * (e + 1) / opt.epochs;

		if (run_epoch(t0, te < t_end ? te : t_end, opt.acquisitions, &rng))
			break;
		if (opt.acquisitions && tot.dev_acq + tot.cpu_acq >= opt.acquisitions)
			break;
	}
	vmstat_read(vm1);
	ksm_full1 = read_num("/sys/kernel/mm/ksm/full_scans");

	printf("# ran %.1f s, %" PRIu64 " epoch(s)\n", now_s() - t0, tot.epochs);
	printf("# acquisitions: device %" PRIu64 ", cpu %" PRIu64 ", total %" PRIu64 "\n",
	       tot.dev_acq, tot.cpu_acq, tot.dev_acq + tot.cpu_acq);
	printf("# overlaps %" PRIu64 " (entry %" PRIu64 ", exit %" PRIu64 "), lost increments %" PRId64
	       ", view mismatches %" PRIu64 ", final device/CPU counter mismatch %" PRIu64
	       ", release anomalies %" PRIu64 ", stuck epochs %" PRIu64 " (stalls %" PRIu64 ")"
	       ", stray spray words %" PRIu64 "\n",
	       tot.overlaps, tot.ov_entry, tot.ov_exit, tot.lost, tot.view_mismatch,
	       tot.final_mismatch, tot.rel_anom, tot.stuck, tot.stalls, tot.stray);
	printf("# neighbour pages read through the device %" PRIu64 ", wrong %" PRIu64 "\n",
	       tot.nbr_checks, tot.nbr_mismatch);
	printf("# device: ops %" PRIu64 ", errors %" PRIu64 ", swap tries %" PRIu64
	       ", hints at another CPU %" PRIu64 "; cpu handoffs %" PRIu64 " (timeouts %" PRIu64 ")\n",
	       tot.dev_ops, tot.dev_errors, tot.swap_tries, tot.hint_other,
	       tot.handoff_waits, tot.handoff_timeouts);
	{
		const uint64_t *w = (const uint64_t *)&tot.st;

		printf("# ctx stats: faults %" PRIu64 " fill_irq %" PRIu64 " fill_worker %" PRIu64
		       " fill_batch %" PRIu64 " retries %" PRIu64 " ignored %" PRIu64
		       " invalidations %" PRIu64 " errors %" PRIu64
		       " defer_cpumask %" PRIu64 " defer_walk %" PRIu64 " defer_race %" PRIu64 "\n",
		       w[0], w[1], w[2], w[7], w[8], w[9], w[10], w[13], w[15], w[16], w[17]);
	}
	printf("# churn ksm: cycles %" PRIu64 " quiesces %" PRIu64 " (timeouts %" PRIu64
	       ") lock page merged %" PRIu64 " counter page merged %" PRIu64 " unmerges %" PRIu64
	       " decoy remaps %" PRIu64 " errors %" PRIu64 " full_scans %lld\n",
	       ch.ksm_cycles, ch.ksm_quiesce, ch.ksm_quiesce_timeout, ch.ksm_lock_merged,
	       ch.ksm_counter_merged, ch.ksm_unmerge, ch.ksm_decoy_remaps, ch.ksm_errors,
	       ksm_full1 - ksm_full0);
	printf("# churn migrate: moved %" PRIu64 " busy %" PRIu64 " errors %" PRIu64 " (last %d)\n",
	       ch.move_ok, ch.move_busy, ch.move_err, ch.move_last_err);
	printf("# churn thp: splits %" PRIu64 " (errors %" PRIu64 ") collapses %" PRIu64
	       " (failed %" PRIu64 ", EINVAL %" PRIu64 ", MADV_COLLAPSE %s, last errno %d), lock page in a THP %" PRIu64
	       "/%" PRIu64 " samples\n",
	       ch.thp_split, ch.thp_split_err, ch.thp_collapse_ok, ch.thp_collapse_fail,
	       ch.thp_collapse_einval,
	       ch.thp_collapse_unsupported ? "unsupported" : "used", ch.thp_last_errno,
	       ch.thp_lock_huge_samples, ch.thp_samples);
	printf("# vmstat deltas:");
	for (int i = 0; i < NVM; i++) {
		if (vm1[i] - vm0[i]) {
			printf(" %s %lld", vm_names[i], vm1[i] - vm0[i]);
			n++;
		}
	}
	printf("%s\n", n ? "" : " none");
	for (int i = 0; i < opt.dev_threads; i++)
		gru_close(&dev_owner[i].ctx);

	ok_ov = !tot.overlaps && !tot.rel_anom && !tot.stuck;
	ok_lost = tot.lost == 0;
	ok_view = !tot.view_mismatch && !tot.final_mismatch && !tot.nbr_mismatch;
	ok_stray = !tot.stray;
	ok_err = !fatal && !tot.dev_errors && tot.epochs > 0 &&
		 (!opt.dev_threads || tot.dev_acq) && (!opt.cpu_threads || tot.cpu_acq);
	printf("%sok 1 mutex_no_overlap # device %" PRIu64 " cpu %" PRIu64 " overlaps %" PRIu64 "\n",
	       ok_ov ? "" : "not ", tot.dev_acq, tot.cpu_acq, tot.overlaps);
	printf("%sok 2 mutex_no_lost_increment # lost %" PRId64 "\n", ok_lost ? "" : "not ", tot.lost);
	printf("%sok 3 device_view_matches_cpu # mismatches %" PRIu64 "\n", ok_view ? "" : "not ",
	       tot.view_mismatch + tot.final_mismatch + tot.nbr_mismatch);
	printf("%sok 4 no_stray_device_writes # %" PRIu64 " words\n", ok_stray ? "" : "not ",
	       tot.stray);
	printf("%sok 5 soak_ran_clean # device errors %" PRIu64 "%s\n", ok_err ? "" : "not ",
	       tot.dev_errors, fatal ? ", stopped on a device error" : "");
	return ok_ov && ok_lost && ok_view && ok_stray && ok_err ? 0 : 1;
}
