// SPDX-License-Identifier: GPL-2.0
/*
 * gru-race: stale-translation race detector.
 *
 * A writer thread streams device STOREs and BSETs into a target page T
 * that maps one page of a memfd.  A replacer thread keeps changing what T
 * maps, by one kind of replacement per test: MAP_FIXED remap to another
 * memfd page, munmap, mprotect(PROT_READ), MADV_DONTNEED (on a private
 * mapping, so the COW copy the device writes is freed) and migration to
 * the other NUMA node.  The memfd is also mapped a second time (W), which
 * no replacement touches, so the CPU can watch every page.
 *
 * Three kinds of violation, each meaning the device used a translation the
 * kernel had already removed when the replacement syscall returned:
 *  - old page changed: a page T no longer maps (seen through W) changes
 *    after the replacement returned;
 *  - write through a removed translation: a store reports DONE although T
 *    was unmapped or read-only during the whole store;
 *  - lost write: a store reports DONE, no replacement overlapped it, yet
 *    the page T maps does not hold the value (it went to a stale page).
 * Overlap is detected with a seqcount around each replacement; stores that
 * overlap one are counted as "raced" and not judged.
 *
 * Bounded by count: each kind runs until it has done --replacements
 * replacements and --writes device writes.  Output is KTAP, through the
 * kselftest helpers; without /dev/gru the whole run is a skip.
 *
 *   gru-race [--writes N] [--replacements N] [--kind NAME]
 *            [--expect-violations]
 *
 * --expect-violations is for the mutation run (the device's x-no-gen-check
 * on and the driver's fault points fail_seq_check and fail_post_inval
 * failing): the run then passes only if violations were seen, proving the
 * detector catches a broken protocol.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gru/libgru.h>
#include "../../../kselftest.h"
#include "gru_test_util.h"

#define NPAGES		64	/* memfd pages the mappings rotate over */
#define BSET_OFF	64
#define BSET_LEN	64

enum tstate { ST_MAPPED, ST_UNMAPPED, ST_READONLY };

struct kind {
	const char *name;
	bool private_map;	/* T is MAP_PRIVATE (DONTNEED kind) */
	bool needs_numa;
};

static const struct kind kinds[] = {
	{ .name = "map_fixed_remap" },
	{ .name = "munmap" },
	{ .name = "mprotect" },
	{ .name = "madv_dontneed", .private_map = true },
	{ .name = "migration", .needs_numa = true },
};
#define NKINDS ((int)(sizeof(kinds) / sizeof(kinds[0])))

struct run {
	const struct kind *k;
	int fd;
	uint8_t *W;		/* whole memfd, shared, CPU only */
	uint8_t *T;		/* the target page the device writes */
	struct gru_ctx ctx;

	/* published by the replacer, seqcount-protected */
	unsigned long seq;
	int state;
	int page;

	/* writer progress and verdicts */
	volatile int stop;
	unsigned long attempts, writes_ok, writes_failed;
	unsigned long checked, raced, unexpected;
	unsigned long lost_writes, removed_writes, old_changed;
	int last_unexpected;
	unsigned long replacements;

	/* old-page watch: snapshot taken when the replacement returned */
	bool watched[NPAGES];
	uint8_t snap[NPAGES][PAGE_SZ];
};

static unsigned long opt_writes = 100000, opt_repl = 1000;
static int opt_expect;
static unsigned long total_violations;	/* over all kinds, for --expect-violations */

static unsigned long seq_begin_read(struct run *r)
{
	return __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
}

static bool seq_retry(struct run *r, unsigned long s0)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return (s0 & 1) || __atomic_load_n(&r->seq, __ATOMIC_RELAXED) != s0;
}

static void seq_write_begin(struct run *r)
{
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void seq_write_end(struct run *r)
{
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
}

static void *writer(void *arg)
{
	struct run *r = arg;
	uint64_t v = (uint64_t)(r->k - kinds) << 56;

	while (!r->stop) {
		unsigned long s0 = seq_begin_read(r);
		int st = __atomic_load_n(&r->state, __ATOMIC_RELAXED);
		int pg = __atomic_load_n(&r->page, __ATOMIC_RELAXED);
		bool is_store = !(v & 1);
		struct gru_insn in;
		const uint8_t *view;
		bool seen = false;
		int ret;

		v++;
		memset(&in, 0, sizeof(in));
		if (is_store) {
			in.opcode = GRU_OPC_STORE;
			in.addr = (uintptr_t)r->T;
			in.op0 = v;
		} else {
			in.opcode = GRU_OPC_BSET;
			in.addr = (uintptr_t)r->T + BSET_OFF;
			in.len = BSET_LEN;
			in.op0 = (v & 0xff) | 1;
		}
		ret = gru_run(&r->ctx, &in, NULL);
		__atomic_fetch_add(&r->attempts, 1, __ATOMIC_RELAXED);
		if (!ret)
			__atomic_fetch_add(&r->writes_ok, 1, __ATOMIC_RELAXED);
		else
			r->writes_failed++;

		if (!ret && st == ST_MAPPED) {
			/* T itself is mapped for the whole check in the private kind */
			view = r->k->private_map ? r->T : r->W + (size_t)pg * PAGE_SZ;
			if (is_store) {
				seen = *(volatile uint64_t *)view == v;
			} else {
				seen = true;
				for (int i = 0; i < BSET_LEN; i++)
					seen &= ((volatile uint8_t *)view)[BSET_OFF + i] ==
						(uint8_t)in.op0;
			}
		}
		if (seq_retry(r, s0)) {
			r->raced++;
			continue;
		}
		r->checked++;
		if (st == ST_MAPPED) {
			if (ret) {
				r->unexpected++;
				r->last_unexpected = ret;
			} else if (!seen) {
				r->lost_writes++;
			}
		} else if (!ret) {
			r->removed_writes++;
		} else if (ret != -EFAULT && ret != -EACCES) {
			r->unexpected++;
			r->last_unexpected = ret;
		}
	}
	return NULL;
}

/* Let the writer run at least @n attempts (and one success if @need_ok). */
static void let_writer_run(struct run *r, unsigned long n, bool need_ok)
{
	unsigned long a0 = __atomic_load_n(&r->attempts, __ATOMIC_RELAXED);
	unsigned long o0 = __atomic_load_n(&r->writes_ok, __ATOMIC_RELAXED);

	for (;;) {
		unsigned long a = __atomic_load_n(&r->attempts, __ATOMIC_RELAXED);
		unsigned long o = __atomic_load_n(&r->writes_ok, __ATOMIC_RELAXED);

		/* a writer that keeps failing can't stall the run forever */
		if (a >= a0 + n && (!need_ok || o > o0 || a >= a0 + 1000))
			return;
		sched_yield();
	}
}

static void watch(struct run *r, int pg)
{
	memcpy(r->snap[pg], r->W + (size_t)pg * PAGE_SZ, PAGE_SZ);
	r->watched[pg] = true;
}

static void check_watch(struct run *r, int pg)
{
	if (!r->watched[pg])
		return;
	if (memcmp(r->snap[pg], r->W + (size_t)pg * PAGE_SZ, PAGE_SZ))
		r->old_changed++;
	r->watched[pg] = false;
}

static int map_target(struct run *r, int pg, int prot)
{
	int flags = (r->k->private_map ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED;
	void *m;

	m = mmap(r->T, PAGE_SZ, prot, flags, r->fd, (off_t)pg * PAGE_SZ);
	return m == MAP_FAILED ? -errno : 0;
}

/*
 * Put T back in a mapped state on page @pg.  munmap leaves a hole that must
 * still be ours when we map it again: MAP_FIXED_NOREPLACE notices if not.
 */
static int remap_hole(struct run *r, int pg)
{
	void *m = mmap(r->T, PAGE_SZ, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_FIXED_NOREPLACE, r->fd, (off_t)pg * PAGE_SZ);

	if (m == MAP_FAILED)
		return -errno;
	if (m != r->T) {
		munmap(m, PAGE_SZ);
		return -EEXIST;
	}
	return 0;
}

static void publish(struct run *r, int state, int pg)
{
	__atomic_store_n(&r->state, state, __ATOMIC_RELAXED);
	__atomic_store_n(&r->page, pg, __ATOMIC_RELAXED);
}

/* One replacement of the run's kind: 0, 1 if nothing was replaced, or -errno. */
static int replace_once(struct run *r, unsigned long i)
{
	int pg = r->page, next = (int)((i + 1) % NPAGES), ret = 0;
	int node;

	switch (r->k - kinds) {
	case 0:	/* MAP_FIXED remap T onto another page */
		check_watch(r, next);
		seq_write_begin(r);
		ret = map_target(r, next, PROT_READ | PROT_WRITE);
		publish(r, ST_MAPPED, next);
		seq_write_end(r);
		watch(r, pg);
		let_writer_run(r, 2, true);
		break;
	case 1:	/* munmap T, then map it again on another page */
		seq_write_begin(r);
		ret = munmap(r->T, PAGE_SZ) ? -errno : 0;
		publish(r, ST_UNMAPPED, pg);
		seq_write_end(r);
		watch(r, pg);
		let_writer_run(r, 2, false);
		check_watch(r, next);
		seq_write_begin(r);
		if (!ret)
			ret = remap_hole(r, next);
		publish(r, ST_MAPPED, next);
		seq_write_end(r);
		let_writer_run(r, 2, true);
		break;
	case 2:	/* mprotect T read-only, then writable again */
		seq_write_begin(r);
		ret = mprotect(r->T, PAGE_SZ, PROT_READ) ? -errno : 0;
		publish(r, ST_READONLY, pg);
		seq_write_end(r);
		watch(r, pg);
		let_writer_run(r, 2, false);
		check_watch(r, pg);
		seq_write_begin(r);
		if (!ret)
			ret = mprotect(r->T, PAGE_SZ, PROT_READ | PROT_WRITE) ? -errno : 0;
		publish(r, ST_MAPPED, pg);
		seq_write_end(r);
		let_writer_run(r, 2, true);
		break;
	case 3:	/* MADV_DONTNEED frees the device-written COW copy */
		seq_write_begin(r);
		ret = madvise(r->T, PAGE_SZ, MADV_DONTNEED) ? -errno : 0;
		seq_write_end(r);
		let_writer_run(r, 2, true);
		break;
	case 4:	/* migrate T's page to the other node */
		/* the query needs a present PTE: fault it in by a CPU read */
		(void)*(volatile uint8_t *)r->T;
		node = page_node(r->T);
		seq_write_begin(r);
		ret = node < 0 ? node : move_page_to(r->T, !node);
		seq_write_end(r);
		/*
		 * A page busy or unmapped at that instant is not moved: no
		 * replacement happened, try again (bounded by the caller).
		 */
		if (ret == -EBUSY || ret == -EAGAIN || ret == -ENOENT)
			ret = 1;
		let_writer_run(r, 2, true);
		break;
	}
	return ret;
}

static void run_kind(const struct kind *k)
{
	struct run *r = calloc(1, sizeof(*r));
	pthread_t t;
	int ret, err = 0;
	unsigned long viol, misses = 0;
	char name[64];
	bool ok;

	snprintf(name, sizeof(name), "race_%s", k->name);

	if (!r) {
		ksft_test_result_code(KSFT_FAIL, name, "out of memory");
		return;
	}
	r->k = k;
	if (k->needs_numa && numa_nodes() < 2) {
		ksft_test_result_code(KSFT_SKIP, name,
				      "one NUMA node (boot the guest with --numa 2)");
		free(r);
		return;
	}
	r->fd = memfd_create("gru-race", 0);
	if (r->fd < 0 || ftruncate(r->fd, NPAGES * PAGE_SZ)) {
		ksft_test_result_code(KSFT_FAIL, name, "memfd: %s", strerror(errno));
		free(r);
		return;
	}
	r->W = mmap(NULL, NPAGES * PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	r->T = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->W == MAP_FAILED || r->T == MAP_FAILED) {
		ksft_test_result_code(KSFT_FAIL, name, "mmap: %s", strerror(errno));
		return;
	}
	/* every file page carries a recognisable pattern the device never writes */
	memset(r->W, 0xee, NPAGES * PAGE_SZ);
	ret = map_target(r, 0, PROT_READ | PROT_WRITE);
	if (!ret)
		ret = gru_open(&r->ctx, 0);
	if (ret) {
		ksft_test_result_code(KSFT_FAIL, name, "setup: %s", strerror(-ret));
		return;
	}
	/* the file page under a private mapping must never see a device write */
	if (k->private_map)
		watch(r, 0);
	publish(r, ST_MAPPED, 0);

	pthread_create(&t, NULL, writer, r);
	let_writer_run(r, 1, true);
	while (r->replacements < opt_repl ||
	       __atomic_load_n(&r->attempts, __ATOMIC_RELAXED) < opt_writes) {
		ret = replace_once(r, r->replacements);
		if (ret == 1 && ++misses < 100 * opt_repl)
			continue;
		if (ret) {
			err = ret == 1 ? -EAGAIN : ret;
			break;
		}
		r->replacements++;
		if (k->private_map && r->replacements % 64 == 0) {
			check_watch(r, 0);
			watch(r, 0);
		}
	}
	r->stop = 1;
	pthread_join(t, NULL);
	for (int p = 0; p < NPAGES; p++)
		check_watch(r, p);

	viol = r->lost_writes + r->removed_writes + r->old_changed;
	total_violations += viol;
	ksft_print_msg("%s: replacements %lu (%lu attempts replaced nothing), device writes %lu (ok %lu, refused %lu), checked %lu, raced %lu\n",
		       k->name, r->replacements, misses, r->attempts, r->writes_ok,
		       r->writes_failed, r->checked, r->raced);
	ksft_print_msg("%s: violations %lu (old page changed %lu, write through removed translation %lu, lost write %lu), unexpected errors %lu%s%s\n",
		       k->name, viol, r->old_changed, r->removed_writes, r->lost_writes,
		       r->unexpected, r->unexpected ? ", last " : "",
		       r->unexpected ? strerror(-r->last_unexpected) : "");
	if (err)
		ksft_print_msg("%s: replacement failed: %s\n", k->name, strerror(-err));
	ok = !err && r->replacements >= opt_repl && r->attempts >= opt_writes;
	if (!opt_expect)
		ok = ok && !viol && !r->unexpected;
	ksft_test_result(ok, "%s\n", name);
	gru_close(&r->ctx);
	munmap(r->T, PAGE_SZ);
	munmap(r->W, NPAGES * PAGE_SZ);
	close(r->fd);
	free(r);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: gru-race [--writes N] [--replacements N] [--kind NAME] [--expect-violations]\n"
		"  kinds: map_fixed_remap munmap mprotect madv_dontneed migration\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "writes", required_argument, NULL, 'w' },
		{ "replacements", required_argument, NULL, 'r' },
		{ "kind", required_argument, NULL, 'k' },
		{ "expect-violations", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *only = NULL;
	int c, n = 0;

	while ((c = getopt_long(argc, argv, "w:r:k:eh", lo, NULL)) != -1) {
		switch (c) {
		case 'w': opt_writes = strtoul(optarg, NULL, 0); break;
		case 'r': opt_repl = strtoul(optarg, NULL, 0); break;
		case 'k': only = optarg; break;
		case 'e': opt_expect = 1; break;
		default: usage(); return c == 'h' ? 0 : 2;
		}
	}
	for (int i = 0; i < NKINDS; i++)
		n += !only || !strcmp(only, kinds[i].name);
	if (!n) {
		usage();
		return 2;
	}
	ksft_print_header();
	if (!gru_present())
		ksft_exit_skip("no %s (gru_tlb not loaded)\n", GRU_DEV_PATH);
	ksft_print_msg("gru-race: %lu device writes and %lu replacements per kind%s\n",
		       opt_writes, opt_repl, opt_expect ? ", expecting violations" : "");
	ksft_set_plan(n + opt_expect);
	for (int i = 0; i < NKINDS; i++) {
		if (only && strcmp(only, kinds[i].name))
			continue;
		run_kind(&kinds[i]);
	}
	if (opt_expect) {
		unsigned long v = total_violations;

		ksft_print_msg("mutation run: %lu violations in total\n", v);
		ksft_test_result(v, "race_detector_catches_broken_protocol\n");
	}
	ksft_finished();
}
