// SPDX-License-Identifier: GPL-2.0
/*
 * gru-bench: TLB-miss latency of the gru-tlb device and its driver, measured
 * in the guest.  docs/benchmark.md explains every row.
 *
 * Each latency row is a series of single-miss instructions.  The device
 * side ("dev") is the context's last_service_ns after each one: the device's
 * virtual clock from the miss interrupt being raised to the driver's answer.
 * The user side ("user") is CLOCK_MONOTONIC around issue + wait, spinning on
 * the window.  A sample only counts when the per-context counters prove that
 * exactly one miss happened and that the intended path answered it; others
 * are dropped and counted, so a row never mixes paths.
 *
 * Output: "row:" lines (machine-readable, also written to
 * DIR/bench-MODE.txt), every sample in DIR/bench-MODE-samples.txt (for the
 * plot), and a readable table.  MODE names the timing mode of the QEMU run
 * (icount or mttcg), taken from the guest's kernel command line
 * (gru.timing=MODE) or -m.  No figure here is a pass/fail criterion: the
 * exit status only says whether the measurements could be taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gru/libgru.h>

#define PAGE		4096UL
#define HPAGE		(2UL << 20)
#define BCOPY_LEN	(64UL << 20)
#define INV_LEN		(1UL << 30)
#define WAIT_NS		(30ULL * 1000000000ULL)
#define MAX_ROWS	64
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

static unsigned int nsamples = 400;
static unsigned int nreps = 3;
static const char *outdir = "/results";
static char mode[32];
static int quick;
static int my_cpu, other_cpu = -1;
static FILE *rows_f, *samples_f;
static int hard_errors;

struct row {
	char name[40];
	char src[8];
	uint64_t p50, p99, mean;
	unsigned int count;
	char extra[224];
};

static struct row rows[MAX_ROWS];
static unsigned int nrows;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "gru-bench: %s: %s\n", what, strerror(err));
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted series. */
static uint64_t pct(const uint64_t *v, unsigned int n, unsigned int p)
{
	unsigned long r;

	if (!n)
		return 0;
	r = ((unsigned long)p * n + 99) / 100;
	return v[r ? r - 1 : 0];
}

/*
 * Record one row: sort, print "row: name mode src p50 p99 count mean extra"
 * and keep every sample for the plot.  An empty series is still a row
 * (count 0), with the reason in @extra, so no row silently disappears.
 */
static void emit(const char *name, const char *src, uint64_t *v,
		 unsigned int n, const char *extra)
{
	char line[256];
	struct row *r;
	uint64_t sum = 0;
	unsigned int i;

	qsort(v, n, sizeof(*v), cmp_u64);
	for (i = 0; i < n; i++) {
		sum += v[i];
		if (samples_f)
			fprintf(samples_f, "%s %s %llu\n", name, src,
				(unsigned long long)v[i]);
	}
	if (nrows >= MAX_ROWS)
		return;
	r = &rows[nrows++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->src, sizeof(r->src), "%s", src);
	r->p50 = pct(v, n, 50);
	r->p99 = pct(v, n, 99);
	r->mean = n ? sum / n : 0;
	r->count = n;
	snprintf(r->extra, sizeof(r->extra), "%s", extra && *extra ? extra : "-");
	snprintf(line, sizeof(line), "row: %s %s %s %llu %llu %u %llu %s\n",
		 r->name, mode, r->src, (unsigned long long)r->p50,
		 (unsigned long long)r->p99, r->count,
		 (unsigned long long)r->mean, r->extra);
	fputs(line, stdout);
	if (rows_f)
		fputs(line, rows_f);
	fflush(stdout);
}

/*
 * Wait for the instruction by spinning on STATUS: gru_wait() backs off into
 * sleeps, which would quantize the user-side figures.  Each STATUS read is
 * an MMIO exit, slow under TCG, so the pure spin is bounded in time, not in
 * reads; after it every poll yields, so a worker queued on this CPU runs.
 */
static uint64_t spin_ns = 20000;

static uint64_t spin_wait(struct gru_ctx *c)
{
	uint64_t st, t, t0 = now_ns();

	for (;;) {
		st = c->win[GRU_WIN_STATUS / 8];
		if (st == GRU_ST_CALLOS && (c->opt_flags & GRU_OPT_CALLOS)) {
			if (gru_call_os(c, NULL))
				return st;
			continue;
		}
		if (st != GRU_ST_BUSY)
			return st;
		t = now_ns() - t0;
		if (t < spin_ns)
			continue;
		if (t > WAIT_NS) {
			fprintf(stderr, "gru-bench: instruction still BUSY after 30 s\n");
			return st;
		}
		sched_yield();
	}
}

/* Issue with an explicit interrupt target, as libgru would with its hint. */
static int issue(struct gru_ctx *c, struct gru_insn *in, int hint_cpu)
{
	in->raw_op = GRU_OP_ENCODE(in->opcode, in->flags | GRU_IF_CPU_HINT,
				   hint_cpu);
	return gru_issue(c, in);
}

static void set_opts(struct gru_ctx *c, uint32_t flags, uint32_t fill,
		     uint32_t batch, int *ok)
{
	struct gru_ctx_opts o = { .flags = flags, .fill_mode = fill,
				  .batch = batch };
	int ret = gru_set_opts(c, &o);

	*ok = !ret;
	if (ret)
		fprintf(stderr, "gru-bench: GRU_IOC_SET_OPTS(flags %#x, fill %u, batch %u): %s\n",
			flags, fill, batch, strerror(-ret));
}

static void stats(struct gru_ctx *c, struct gru_ctx_stats *st)
{
	int ret = gru_stats(c, st);

	if (ret)
		die("GRU_IOC_STATS", -ret);
}

/*
 * An instruction that never finished leaves the window BUSY, and every later
 * issue would fail: start over with a fresh context, so that one broken row
 * does not take the rest of the report with it.
 */
static void recover(struct gru_ctx *c)
{
	int ret;

	gru_close(c);
	ret = gru_open(c, 0);
	if (ret)
		die("reopen /dev/gru", -ret);
}

/* path_off of a row that takes whichever driver path answered the miss */
#define ANY_FILL	((size_t)-1)

static uint64_t stat_at(const struct gru_ctx_stats *st, size_t off)
{
	if (off == ANY_FILL)
		return st->fill_irq + st->fill_worker;
	return *(const uint64_t *)((const char *)st + off);
}

static char *map_region(size_t len, size_t align, int thp)
{
	char *p, *a;

	p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap", errno);
	a = align ? (char *)(((uintptr_t)p + align - 1) & ~(align - 1)) : p;
	if (madvise(a, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) && thp)
		fprintf(stderr, "gru-bench: MADV_HUGEPAGE: %s\n", strerror(errno));
	return a;
}

enum prep { PREP_PRESENT, PREP_UNTOUCHED, PREP_COW };

struct miss_spec {
	const char *name;
	uint32_t flags;		/* GRU_OPT_* */
	uint32_t fill;		/* enum gru_fill_mode */
	uint8_t opc;		/* LOAD or STORE */
	enum prep prep;
	size_t path_off;	/* counter that must rise by one, or ANY_FILL */
	uint64_t want_st;	/* GRU_ST_DONE, or ERROR for the floor */
	int hint;		/* CPU the fault interrupt is aimed at */
};

/*
 * One latency row pair (dev, user): every sample is a single instruction on
 * a page the device TLB has never held, so it misses exactly once.  The
 * first WARMUP samples of a row are taken but not kept: the first trips
 * through a path translate guest code in TCG and touch cold host caches.
 */
#define WARMUP		16

struct miss_run {
	const struct miss_spec *s;
	uint64_t *dev, *usr, retries;
	/* over every measured sample: who answered, why the IRQ walk didn't */
	uint64_t fast, d_cpumask, d_walk, d_race;
	unsigned int n, dropped, taken;
	const char *na;		/* why the row can't be measured */
	char *buf;
	size_t len;
	pid_t child;
};

static void miss_prepare(struct gru_ctx *c, const struct miss_spec *s,
			 struct miss_run *m)
{
	unsigned int i, total = nsamples + WARMUP;
	int ok;

	memset(m, 0, sizeof(*m));
	m->s = s;
	m->child = -1;
	m->dev = calloc(nsamples, sizeof(*m->dev));
	m->usr = calloc(nsamples, sizeof(*m->usr));
	if (!m->dev || !m->usr)
		die("calloc", ENOMEM);
	if (s->hint < 0) {
		m->na = "n/a:needs_2_cpus";
		return;
	}
	set_opts(c, s->flags, s->fill, 0, &ok);
	if (!ok) {
		m->na = "n/a:fill_mode_refused_by_driver";
		return;
	}
	m->len = (size_t)total * PAGE;
	m->buf = map_region(m->len, 0, 0);
	if (s->prep != PREP_UNTOUCHED)
		for (i = 0; i < total; i++)
			m->buf[(size_t)i * PAGE] = 1;
	if (s->prep == PREP_COW) {
		/* a live child shares every page, so a write must copy */
		m->child = fork();
		if (m->child < 0)
			die("fork", errno);
		if (!m->child) {
			for (;;)
				pause();
		}
	}
}

/* Take the next sample of @m; false if the row had to stop. */
static bool miss_sample(struct gru_ctx *c, struct miss_run *m)
{
	const struct miss_spec *s = m->s;
	unsigned int i = m->taken++;
	struct gru_insn in = {
		.opcode = s->opc,
		.addr = (uintptr_t)(m->buf + (size_t)i * PAGE),
		.op0 = i,
	};
	struct gru_ctx_stats a, b;
	uint64_t t0, t1, st;
	int ret;

	stats(c, &a);
	t0 = now_ns();
	ret = issue(c, &in, s->hint);
	st = ret ? GRU_ST_IDLE : spin_wait(c);
	t1 = now_ns();
	stats(c, &b);
	if (ret || st == GRU_ST_BUSY || st == GRU_ST_CALLOS) {
		fprintf(stderr, "gru-bench: %s: sample %u: issue %d, status %s\n",
			s->name, i, ret, gru_status_name(st));
		hard_errors++;
		recover(c);
		return false;
	}
	if (i < WARMUP)
		return true;
	m->fast += b.fill_irq - a.fill_irq;
	m->d_cpumask += b.defer_cpumask - a.defer_cpumask;
	m->d_walk += b.defer_walk - a.defer_walk;
	m->d_race += b.defer_race - a.defer_race;
	if (st != s->want_st || b.faults - a.faults != 1 ||
	    stat_at(&b, s->path_off) - stat_at(&a, s->path_off) != 1) {
		m->dropped++;
		return true;
	}
	m->retries += b.retries - a.retries;
	m->dev[m->n] = b.last_service_ns;
	m->usr[m->n] = t1 - t0;
	m->n++;
	return true;
}

static void miss_finish(struct miss_run *m, const char *how)
{
	const struct miss_spec *s = m->s;
	char extra[192];

	if (m->child > 0) {
		kill(m->child, SIGKILL);
		waitpid(m->child, NULL, 0);
	}
	if (m->buf)
		munmap(m->buf, m->len);
	if (m->na)
		snprintf(extra, sizeof(extra), "%s", m->na);
	else
		snprintf(extra, sizeof(extra),
			 "dropped=%u,retries=%llu,irq_cpu=%d,fast=%llu,defer_cpumask=%llu,defer_walk=%llu,defer_race=%llu%s",
			 m->dropped, (unsigned long long)m->retries, s->hint,
			 (unsigned long long)m->fast,
			 (unsigned long long)m->d_cpumask,
			 (unsigned long long)m->d_walk,
			 (unsigned long long)m->d_race, how);
	if ((s->flags & GRU_OPT_CALLOS) && !m->na) {
		char callos[224];

		/*
		 * The device clock stops when the IRQ parks the instruction in
		 * CALLOS, so the dev figure is raise -> deferral only; the
		 * user's ioctl and the resume show on the user clock alone.
		 */
		snprintf(callos, sizeof(callos), "%s,dev=raise_to_callos", extra);
		emit(s->name, "dev", m->dev, m->n, callos);
	} else {
		emit(s->name, "dev", m->dev, m->n, extra);
	}
	emit(s->name, "user", m->usr, m->n, extra);
	free(m->dev);
	free(m->usr);
}

static void miss_row(struct gru_ctx *c, const struct miss_spec *s)
{
	struct miss_run m;
	unsigned int i;

	miss_prepare(c, s, &m);
	for (i = 0; !m.na && i < nsamples + WARMUP; i++)
		if (!miss_sample(c, &m))
			break;
	miss_finish(&m, "");
}

/*
 * Rows whose ratios matter most and whose figures are close (the floors and
 * the fast path, each with the interrupt here and elsewhere) are measured
 * round-robin, sample by sample, so that a change in host load during the
 * run hits them all alike instead of biasing one against another.
 */
static void miss_rows_interleaved(struct gru_ctx *c,
				  const struct miss_spec *s, unsigned int k)
{
	struct miss_run m[8];
	bool live[8];
	unsigned int i, j;
	int ok;

	for (j = 0; j < k && j < 8; j++) {
		miss_prepare(c, &s[j], &m[j]);
		live[j] = !m[j].na;
	}
	for (i = 0; i < nsamples + WARMUP; i++)
		for (j = 0; j < k && j < 8; j++) {
			if (!live[j])
				continue;
			set_opts(c, s[j].flags, s[j].fill, 0, &ok);
			live[j] = ok && miss_sample(c, &m[j]);
		}
	for (j = 0; j < k && j < 8; j++)
		miss_finish(&m[j], ",interleaved");
}

/* Latency of instructions that hit (and of a NOP): user side only. */
static void hit_rows(struct gru_ctx *c)
{
	uint64_t *v = calloc(nsamples, sizeof(*v));
	struct gru_ctx_stats a, b;
	unsigned int i, n = 0;
	char extra[64];
	uint64_t *w;
	int ok, pass;

	if (!v)
		die("calloc", ENOMEM);
	set_opts(c, 0, GRU_FILL_IRQ, 0, &ok);
	w = (uint64_t *)map_region(PAGE, 0, 0);
	w[0] = 42;
	for (pass = 0; pass < 2; pass++) {
		struct gru_insn in = {
			.opcode = pass ? GRU_OPC_LOAD : GRU_OPC_NOP,
			.addr = (uintptr_t)w,
		};

		n = 0;
		/* the first LOAD fills the entry: warm-up, not a sample */
		for (i = 0; i < WARMUP; i++)
			if (issue(c, &in, my_cpu) || spin_wait(c) != GRU_ST_DONE)
				hard_errors++;
		stats(c, &a);
		for (i = 0; i < nsamples; i++) {
			uint64_t t0, t1, st;

			t0 = now_ns();
			st = issue(c, &in, my_cpu) ? GRU_ST_IDLE : spin_wait(c);
			t1 = now_ns();
			if (st != GRU_ST_DONE) {
				hard_errors++;
				recover(c);
				break;
			}
			v[n++] = t1 - t0;
		}
		if (n < nsamples) {
			emit(pass ? "hit_load" : "nop", "user", v, 0,
			     "n/a:instruction_failed");
			continue;
		}
		stats(c, &b);
		/* a hit row with misses in it would be a lie: say so */
		snprintf(extra, sizeof(extra), "faults_during=%llu",
			 (unsigned long long)(b.faults - a.faults));
		emit(pass ? "hit_load" : "nop", "user", v, n, extra);
	}
	munmap(w, PAGE);
	free(v);
}

/*
 * Sequential LOADs over present 4 KiB pages from a cold TLB, one per page,
 * with batched drop-ins off and on: the mean per page and the miss count
 * show what the neighbours bought.
 */
static void batch_rows(struct gru_ctx *c)
{
	static const unsigned int batches[] = { 0, 16 };
	size_t len = (size_t)nsamples * PAGE;
	uint64_t *v = calloc(nsamples, sizeof(*v));
	struct gru_ctx_stats a, b;
	unsigned int i, k, n;
	char extra[96], name[32];
	int ok;

	if (!v)
		die("calloc", ENOMEM);
	for (k = 0; k < 2; k++) {
		char *buf = map_region(len, 0, 0);

		for (i = 0; i < nsamples; i++)
			buf[(size_t)i * PAGE] = 1;
		set_opts(c, 0, GRU_FILL_IRQ, batches[k], &ok);
		stats(c, &a);
		for (i = n = 0; ok && i < nsamples; i++) {
			struct gru_insn in = {
				.opcode = GRU_OPC_LOAD,
				.addr = (uintptr_t)(buf + (size_t)i * PAGE),
			};
			uint64_t t0, t1, st;

			t0 = now_ns();
			st = issue(c, &in, my_cpu) ? GRU_ST_IDLE : spin_wait(c);
			t1 = now_ns();
			if (st != GRU_ST_DONE) {
				hard_errors++;
				recover(c);
				break;
			}
			v[n++] = t1 - t0;
		}
		stats(c, &b);
		snprintf(name, sizeof(name), "seq_load_batch%u", batches[k] ? batches[k] : 1);
		snprintf(extra, sizeof(extra), "faults=%llu,fill_batch=%llu",
			 (unsigned long long)(b.faults - a.faults),
			 (unsigned long long)(b.fill_batch - a.fill_batch));
		if (!ok)
			emit(name, "user", v, 0, "n/a:batch_refused");
		else if (n < nsamples)
			emit(name, "user", v, 0, "n/a:instruction_failed");
		else
			emit(name, "user", v, n, extra);
		munmap(buf, len);
	}
	set_opts(c, 0, GRU_FILL_IRQ, 0, &ok);
	free(v);
}

/*
 * Streaming BCOPY of 64 MiB: cold (a context just opened, so nothing of this
 * process is in the device TLB; checked by a TLB probe) and warm (the same
 * copy again at once).  With 4 KiB pages 64 MiB is far beyond the TLB's
 * reach, with THP it fits: that is what the cold:warm ratio shows.
 */
static void bcopy_rows(struct gru_ctx *c, int thp, unsigned int batch)
{
	char *src = map_region(BCOPY_LEN, HPAGE, thp);
	char *dst = map_region(BCOPY_LEN, HPAGE, thp);
	uint64_t cold[16], warm[16], cfaults = 0, wfaults = 0, coldhits = 0;
	uint64_t cworker = 0, wworker = 0;
	struct gru_ctx_stats a, b;
	struct gru_tlb_probe pr = { 0 };
	unsigned int r, n = 0, shift = 0;
	char name[40], extra[96];
	const char *pg = thp ? "thp" : "4k";
	int ok, ret;

	memset(src, 0x5a, BCOPY_LEN);
	memset(dst, 0, BCOPY_LEN);
	for (r = 0; r < nreps && r < 16; r++) {
		struct gru_insn in = {
			.opcode = GRU_OPC_BCOPY,
			.addr = (uintptr_t)dst,
			.src = (uintptr_t)src,
			.len = BCOPY_LEN,
		};
		uint64_t t0, t1, st;
		int pass;

		gru_close(c);
		ret = gru_open(c, 0);
		if (ret)
			die("reopen /dev/gru", -ret);
		set_opts(c, 0, GRU_FILL_IRQ, batch, &ok);
		if (!gru_tlb_probe(c, (uintptr_t)src, &pr) && pr.hit)
			coldhits++;
		for (pass = 0; pass < 2; pass++) {
			stats(c, &a);
			t0 = now_ns();
			st = issue(c, &in, my_cpu) ? GRU_ST_IDLE : spin_wait(c);
			t1 = now_ns();
			stats(c, &b);
			if (st != GRU_ST_DONE) {
				fprintf(stderr, "gru-bench: BCOPY %s: status %s\n",
					pg, gru_status_name(st));
				hard_errors++;
				goto out;
			}
			if (pass) {
				warm[n] = t1 - t0;
				wfaults += b.faults - a.faults;
				wworker += b.fill_worker - a.fill_worker;
			} else {
				cold[n] = t1 - t0;
				cfaults += b.faults - a.faults;
				cworker += b.fill_worker - a.fill_worker;
			}
		}
		n++;
	}
	if (!gru_tlb_probe(c, (uintptr_t)src + BCOPY_LEN - PAGE, &pr) && pr.hit)
		shift = pr.size_shift;
out:
	snprintf(name, sizeof(name), "bcopy64m_%s_cold%s", pg, batch ? "_batch16" : "");
	snprintf(extra, sizeof(extra),
		 "faults=%llu,by_worker=%llu,entry_shift=%u,cold_probe_hits=%llu",
		 (unsigned long long)(n ? cfaults / n : 0),
		 (unsigned long long)(n ? cworker / n : 0), shift,
		 (unsigned long long)coldhits);
	emit(name, "user", cold, n, extra);
	if (!batch) {
		snprintf(name, sizeof(name), "bcopy64m_%s_warm", pg);
		snprintf(extra, sizeof(extra), "faults=%llu,by_worker=%llu,entry_shift=%u",
			 (unsigned long long)(n ? wfaults / n : 0),
			 (unsigned long long)(n ? wworker / n : 0), shift);
		emit(name, "user", warm, n, extra);
	}
	munmap(src, BCOPY_LEN);
	munmap(dst, BCOPY_LEN);
}

/*
 * munmap and mprotect of 1 GiB of populated 4 KiB pages, in a child of its
 * own: without a context its mm has no notifier of ours at all; with one, a
 * context is open and has translations in the range.  Results travel back
 * through a shared page.
 */
static void inval_child(int live, uint64_t *res)
{
	struct gru_ctx c;
	unsigned int r, i;
	int ret, ok;

	if (live) {
		ret = gru_open(&c, 0);
		if (ret)
			_exit(2);
		set_opts(&c, 0, GRU_FILL_IRQ, 0, &ok);
	}
	for (r = 0; r < nreps && r < 16; r++) {
		char *p = mmap(NULL, INV_LEN, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		uint64_t t0;

		if (p == MAP_FAILED)
			_exit(3);
		madvise(p, INV_LEN, MADV_NOHUGEPAGE);
		for (i = 0; i < INV_LEN / PAGE; i++)
			p[(size_t)i * PAGE] = 1;
		if (live) {
			/* translations spread over the whole range */
			for (i = 0; i < 64; i++) {
				struct gru_insn in = {
					.opcode = GRU_OPC_LOAD,
					.addr = (uintptr_t)(p + (size_t)i * (INV_LEN / 64)),
				};

				if (issue(&c, &in, my_cpu) || spin_wait(&c) != GRU_ST_DONE)
					_exit(4);
			}
		}
		t0 = now_ns();
		if (mprotect(p, INV_LEN, PROT_READ))
			_exit(5);
		res[r] = now_ns() - t0;
		mprotect(p, INV_LEN, PROT_READ | PROT_WRITE);
		t0 = now_ns();
		munmap(p, INV_LEN);
		res[16 + r] = now_ns() - t0;
	}
	if (live) {
		struct gru_ctx_stats st;

		gru_stats(&c, &st);
		res[32] = st.invalidations;
		gru_close(&c);
	}
	_exit(0);
}

static void inval_rows(void)
{
	uint64_t *res = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned int n = nreps < 16 ? nreps : 16;
	char extra[64];
	int live, status;
	pid_t pid;

	if (res == MAP_FAILED)
		die("mmap", errno);
	for (live = 0; live < 2; live++) {
		memset(res, 0, PAGE);
		fflush(NULL);
		pid = fork();
		if (pid < 0)
			die("fork", errno);
		if (!pid)
			inval_child(live, res);
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "gru-bench: invalidation child (%s) failed: status %#x\n",
				live ? "live context" : "no context", status);
			hard_errors++;
			continue;
		}
		snprintf(extra, sizeof(extra), live ? "device_invalidations=%llu" : "no_context",
			 (unsigned long long)res[32]);
		emit(live ? "mprotect_1g_ctx" : "mprotect_1g_noctx", "user", res, n, extra);
		emit(live ? "munmap_1g_ctx" : "munmap_1g_noctx", "user", res + 16, n, extra);
	}
	munmap(res, PAGE);
}

static void pick_mode(void)
{
	char line[4096], *p;
	FILE *f;

	if (*mode)
		return;
	f = fopen("/proc/cmdline", "r");
	if (f && fgets(line, sizeof(line), f)) {
		p = strstr(line, "gru.timing=");
		if (p) {
			p += strlen("gru.timing=");
			snprintf(mode, sizeof(mode), "%.*s",
				 (int)strcspn(p, " \n"), p);
		}
	}
	if (f)
		fclose(f);
	if (!*mode)
		snprintf(mode, sizeof(mode), "%s",
			 sysconf(_SC_NPROCESSORS_ONLN) > 1 ? "mttcg" : "tcg1");
}

static void table(void)
{
	unsigned int i;

	printf("\ngru-bench results, timing mode %s\n", mode);
	printf("(ns; dev = device clock, user = clock_gettime)\n");
	printf("%-26s %-4s %12s %12s %12s %6s  %s\n", "row", "src", "p50", "p99",
	       "mean", "count", "notes");
	for (i = 0; i < nrows; i++) {
		struct row *r = &rows[i];

		if (!strncmp(r->name, "bcopy", 5) && r->p50)
			printf("%-26s %-4s %12llu %12llu %12llu %6u  %s,MiB/s=%.1f\n",
			       r->name, r->src, (unsigned long long)r->p50,
			       (unsigned long long)r->p99,
			       (unsigned long long)r->mean, r->count, r->extra,
			       (double)BCOPY_LEN / (1 << 20) / ((double)r->p50 / 1e9));
		else
			printf("%-26s %-4s %12llu %12llu %12llu %6u  %s\n", r->name,
			       r->src, (unsigned long long)r->p50,
			       (unsigned long long)r->p99,
			       (unsigned long long)r->mean, r->count, r->extra);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: gru-bench [-n samples] [-r reps] [-o dir] [-m mode] [-s ns] [-q]\n"
		"  -n  samples per latency row (default %u)\n"
		"  -r  repetitions of the 64 MiB copies and 1 GiB invalidations (default %u)\n"
		"  -o  where bench-MODE.txt and bench-MODE-samples.txt go (default %s)\n"
		"  -m  timing-mode label (default: gru.timing= on the kernel command line,\n"
		"      else mttcg with more than one CPU)\n"
		"  -s  spin this long on STATUS before yielding between reads (default %llu)\n"
		"  -q  quick: skip the 64 MiB copies and the 1 GiB invalidations\n",
		nsamples, nreps, outdir, (unsigned long long)spin_ns);
	exit(2);
}

int main(int argc, char **argv)
{
	struct gru_ctx c;
	struct gru_info info;
	struct utsname uts;
	cpu_set_t set;
	char path[512], line[320];
	long ncpu;
	int opt, ret, cpu;

	while ((opt = getopt(argc, argv, "n:r:o:m:s:qh")) != -1) {
		switch (opt) {
		case 'n':
			nsamples = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			nreps = strtoul(optarg, NULL, 0);
			break;
		case 'o':
			outdir = optarg;
			break;
		case 'm':
			snprintf(mode, sizeof(mode), "%s", optarg);
			break;
		case 's':
			spin_ns = strtoull(optarg, NULL, 0);
			break;
		case 'q':
			quick = 1;
			break;
		default:
			usage();
		}
	}
	if (!nsamples || !nreps || nreps > 16)
		usage();
	pick_mode();
	if (uname(&uts))
		snprintf(uts.release, sizeof(uts.release), "unknown");

	/* stay on one CPU, so "this CPU" and "another CPU" stay what they say */
	cpu = sched_getcpu();
	my_cpu = cpu < 0 ? 0 : cpu;
	CPU_ZERO(&set);
	CPU_SET(my_cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity", errno);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu > 1)
		other_cpu = (my_cpu + 1) % ncpu;

	ret = gru_open(&c, 0);
	if (ret) {
		fprintf(stderr, "gru-bench: cannot open %s: %s (is gru_tlb loaded?)\n",
			GRU_DEV_PATH, strerror(-ret));
		return 1;
	}
	gru_info(&c, &info);

	mkdir(outdir, 0755);
	snprintf(path, sizeof(path), "%s/bench-%s.txt", outdir, mode);
	rows_f = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/bench-%s-samples.txt", outdir, mode);
	samples_f = fopen(path, "w");
	if (!rows_f || !samples_f)
		fprintf(stderr, "gru-bench: cannot write under %s: %s (printing only)\n",
			outdir, strerror(errno));

	snprintf(line, sizeof(line),
		 "meta: mode %s kernel %s cpus %ld issuing_cpu %d other_cpu %d samples %u reps %u tlb %ux%u vectors %u\n",
		 mode, uts.release, ncpu, my_cpu, other_cpu, nsamples, nreps, info.tlb_sets,
		 info.tlb_ways, info.vectors);
	fputs(line, stdout);
	if (rows_f)
		fputs(line, rows_f);
	printf("# row: name mode src p50_ns p99_ns count mean_ns notes\n");
	fflush(stdout);

	{
		const struct miss_spec specs[] = {
		{ "floor_same_cpu", GRU_OPT_NULL_FILL, GRU_FILL_IRQ, GRU_OPC_LOAD,
		  PREP_PRESENT, offsetof(struct gru_ctx_stats, fill_null),
		  GRU_ST_ERROR, my_cpu },
		{ "floor_other_cpu", GRU_OPT_NULL_FILL, GRU_FILL_IRQ, GRU_OPC_LOAD,
		  PREP_PRESENT, offsetof(struct gru_ctx_stats, fill_null),
		  GRU_ST_ERROR, other_cpu },
		{ "irq_fast_path", 0, GRU_FILL_IRQ, GRU_OPC_LOAD, PREP_PRESENT,
		  offsetof(struct gru_ctx_stats, fill_irq), GRU_ST_DONE, my_cpu },
		/*
		 * The fast path walks only on a CPU in the mm's cpumask; an
		 * interrupt elsewhere goes to the worker.  The notes say which
		 * path answered and why.
		 */
		{ "irq_other_cpu", 0, GRU_FILL_IRQ, GRU_OPC_LOAD,
		  PREP_PRESENT, ANY_FILL, GRU_ST_DONE, other_cpu },
		{ "worker_first_touch", 0, GRU_FILL_IRQ, GRU_OPC_STORE,
		  PREP_UNTOUCHED, offsetof(struct gru_ctx_stats, fill_worker),
		  GRU_ST_DONE, my_cpu },
		{ "worker_cow", 0, GRU_FILL_IRQ, GRU_OPC_STORE, PREP_COW,
		  offsetof(struct gru_ctx_stats, fill_worker), GRU_ST_DONE, my_cpu },
		{ "worker_present", 0, GRU_FILL_WORKER, GRU_OPC_LOAD, PREP_PRESENT,
		  offsetof(struct gru_ctx_stats, fill_worker), GRU_ST_DONE, my_cpu },
		{ "callos_first_touch", GRU_OPT_CALLOS, GRU_FILL_IRQ, GRU_OPC_STORE,
		  PREP_UNTOUCHED, offsetof(struct gru_ctx_stats, fill_callos),
		  GRU_ST_DONE, my_cpu },
		{ "pinned", 0, GRU_FILL_PINNED, GRU_OPC_LOAD, PREP_PRESENT,
		  offsetof(struct gru_ctx_stats, fill_pinned), GRU_ST_DONE, my_cpu },
		{ "hmm", 0, GRU_FILL_HMM, GRU_OPC_LOAD, PREP_PRESENT,
		  offsetof(struct gru_ctx_stats, fill_hmm), GRU_ST_DONE, my_cpu },
		};
		unsigned int i;

		fprintf(stderr, "gru-bench: floors and fast path, interleaved (%u samples each)\n",
			nsamples);
		miss_rows_interleaved(&c, specs, 4);
		for (i = 4; i < ARRAY_SIZE(specs); i++) {
			fprintf(stderr, "gru-bench: %s (%u samples)\n", specs[i].name, nsamples);
			miss_row(&c, &specs[i]);
		}
	}
	fprintf(stderr, "gru-bench: hits, NOP\n");
	hit_rows(&c);
	fprintf(stderr, "gru-bench: batched drop-ins off/on\n");
	batch_rows(&c);
	if (!quick) {
		fprintf(stderr, "gru-bench: BCOPY 64 MiB, 4 KiB pages\n");
		bcopy_rows(&c, 0, 0);
		bcopy_rows(&c, 0, 16);
		fprintf(stderr, "gru-bench: BCOPY 64 MiB, THP\n");
		bcopy_rows(&c, 1, 0);
		fprintf(stderr, "gru-bench: munmap/mprotect 1 GiB\n");
		inval_rows();
	}
	gru_close(&c);
	table();
	if (rows_f)
		fclose(rows_f);
	if (samples_f)
		fclose(samples_f);
	if (hard_errors)
		fprintf(stderr, "gru-bench: %d measurement(s) could not be taken (see above)\n",
			hard_errors);
	return hard_errors ? 1 : 0;
}
