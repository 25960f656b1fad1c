// SPDX-License-Identifier: GPL-2.0
/*
 * ASID generation wraps never let one mm use another mm's translations.
 *
 * With max_asid small (run-guest-tests.sh reloads gru_tlb with max_asid=8,
 * which the driver raises to hw_contexts + 1), more worker processes than
 * ASIDs and than hardware slots keep the device busy at the SAME virtual
 * address, each with its own page and its own data there, while a helper
 * opens and closes contexts from fresh mms, each of which takes a new
 * ASID.  Wraps come with steals and reloads, and the helper's closes leave
 * holes that other contexts fill, so which mm sits in which slot keeps
 * changing.  A wrap flushes the TLB and hands the numbers out again from 1
 * to the loaded slots, in slot order, so an mm can get a number that a
 * later slot still has programmed: until the loop reaches that slot, two
 * live mms share a number, and the first one's fills at the common VA
 * serve the second one's instructions.  A LOAD then returns the other
 * process's pattern, a FADD counts in the other process's page.  Every
 * result and, at the end, every process's memory is checked against what
 * that process alone did.  No instruction may fail either: a wrap is the
 * driver's business, not the process's.
 *
 * Workers pause after each round, so that a wrap often finds one idle:
 * a stalled miss cannot be filled until its own mm is renumbered, but a
 * new instruction issued inside the window translates at once.
 *
 * The "delayed" variant sets the test-only module parameter
 * asid_wrap_delay_us, which sleeps between the per-slot reassignments of
 * a wrap, so that the window between "number handed out again" and "slot
 * reprogrammed" is milliseconds wide instead of microseconds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#define WRAP_PAGES		1	/* common pages: one, so that all collide */
#define WRAP_ITERS_DEFAULT	300	/* rounds of 4 device ops per worker */
#define WRAP_PAUSE_US		3000	/* pause after each round: 0 to this */
#define WRAP_MIN_WRAPS		4	/* wraps a run must have caused */
#define WRAP_DELAY_US		2000	/* asid_wrap_delay_us of "delayed" */
#define CHURN_MAX_CYCLES	20000	/* bound of the helper's open/close loop */
#define DELAY_PARAM	"/sys/module/gru_tlb/parameters/asid_wrap_delay_us"

/*
 * Word layout of each common page, and the values: every value names its
 * process (p + 1 in bits 55:32), so a value seen by the wrong process says
 * whose data it was.
 */
#define W_PATTERN	0	/* constant, LOADed */
#define W_COUNTER	1	/* FADDed by 1 */
#define W_STORE		2	/* STOREd, then LOADed back */

#define TAG_PATTERN	0xa5ULL
#define TAG_STORE	0x5aULL

static uint64_t pattern_of(int p, int k)
{
	return TAG_PATTERN << 56 | (uint64_t)(p + 1) << 32 | (uint64_t)k;
}

static uint64_t store_of(int p, unsigned int i)
{
	return TAG_STORE << 56 | (uint64_t)(p + 1) << 32 | i;
}

static uint64_t counter_base(int p, int k)
{
	return (uint64_t)(p + 1) << 40 | (uint64_t)k << 32;
}

/* The process a value belongs to, or -1 if it carries no owner. */
static int owner_of(uint64_t v)
{
	uint64_t tag = v >> 56;

	if (tag == TAG_PATTERN || tag == TAG_STORE)
		return (int)((v >> 32) & 0xffffff) - 1;
	/* counters: (p + 1) << 40, below 2^56 */
	if (v >> 40 && !(v >> 56))
		return (int)(v >> 40) - 1;
	return -1;
}

/* What one process reports back through the pipe. */
struct wrap_report {
	int proc;
	int setup_err;		/* non-zero: could not start (errno-like) */
	unsigned int ops;
	unsigned int foreign;	/* results owned by another process */
	unsigned int wrong;	/* other wrong results */
	unsigned int err_enxio;	/* NO_CONTEXT: refused as not loaded */
	unsigned int err_enomem;	/* FAULT: no stable translation */
	unsigned int err_other;
	unsigned int preempted;	/* reissued after -EAGAIN (GRU_ERR_PREEMPTED) */
	int first_err;
	unsigned int final_bad;	/* words wrong in its memory at the end */
	int first_opc;		/* first wrong result: opcode and values */
	uint64_t first_got, first_want;
	uint64_t steals, loads;
};

struct wrap_ctl {
	volatile int go;
	volatile int stop;
};

FIXTURE(wrap)
{
	uint64_t *common;	/* WRAP_PAGES pages at the common VA */
	struct wrap_ctl *ctl;	/* shared with every child */
	long long old_delay;	/* -1: parameter absent or untouched */
	unsigned int hw_contexts;
	long long max_asid;
};

FIXTURE_VARIANT(wrap)
{
	unsigned int delay_us;	/* asid_wrap_delay_us for the run */
};

FIXTURE_VARIANT_ADD(wrap, plain)
{
	.delay_us = 0,
};

FIXTURE_VARIANT_ADD(wrap, delayed)
{
	.delay_us = WRAP_DELAY_US,
};

FIXTURE_SETUP(wrap)
{
	struct gru_ctx c;
	struct gru_info info;
	char buf[32];
	long long cur;

	self->old_delay = -1;
	if (!gru_present())
		SKIP(return, "no %s (gru_tlb not loaded)", GRU_DEV_PATH);
	self->max_asid = gru_param("max_asid");
	if (self->max_asid < 1 || self->max_asid > 64)
		SKIP(return, "max_asid is %lld: load gru_tlb with max_asid=8 to force wraps",
		     self->max_asid);
	ASSERT_EQ(0, gru_open(&c, 0));
	ASSERT_EQ(0, gru_info(&c, &info));
	gru_close(&c);
	self->hw_contexts = info.hw_contexts;
	/* the driver keeps room for every slot in one generation */
	if (self->max_asid < info.hw_contexts + 1)
		self->max_asid = info.hw_contexts + 1;

	cur = gru_param("asid_wrap_delay_us");
	if (cur < 0 && variant->delay_us)
		SKIP(return, "no asid_wrap_delay_us parameter: the widened wrap window needs the test-only knob");
	if (cur >= 0) {
		snprintf(buf, sizeof(buf), "%u", variant->delay_us);
		ASSERT_EQ(0, write_str(DELAY_PARAM, buf));
		/* restore only what we changed, and only once it is changed */
		self->old_delay = cur;
	}

	self->common = mmap(NULL, WRAP_PAGES * PAGE_SZ, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->common);
	self->ctl = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->ctl);
}

/* In the parent: a test that died still gets the parameter back. */
FIXTURE_TEARDOWN_PARENT(wrap)
{
	char buf[32];

	if (self->old_delay >= 0) {
		snprintf(buf, sizeof(buf), "%lld", self->old_delay);
		if (write_str(DELAY_PARAM, buf))
			TH_LOG("could not restore asid_wrap_delay_us=%s", buf);
	}
}

/*
 * A device-wide counter from debugfs (gru/<pci name>/stats), summed over
 * the devices, or -1 if there is none to read.
 */
static long long dbg_stat(const char *name)
{
	static const char *const roots[] = {
		"/sys/kernel/debug/gru", "/sys/kernel/debug/gru_tlb",
	};
	char path[512], key[64];
	long long val, sum = -1;
	struct dirent *de;
	unsigned int r;
	FILE *f;
	DIR *d;

	if (access("/sys/kernel/debug/gru", F_OK) &&
	    access("/sys/kernel/debug/gru_tlb", F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (r = 0; r < sizeof(roots) / sizeof(roots[0]) && sum < 0; r++) {
		d = opendir(roots[r]);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/stats", roots[r],
				 de->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			while (fscanf(f, "%63s %lld", key, &val) == 2) {
				if (strcmp(key, name))
					continue;
				sum = (sum < 0 ? 0 : sum) + val;
				break;
			}
			fclose(f);
		}
		closedir(d);
	}
	return sum;
}

static unsigned int env_uint(const char *name, unsigned int def)
{
	const char *s = getenv(name);
	long v = s ? strtol(s, NULL, 0) : 0;

	return v > 0 ? (unsigned int)v : def;
}

/* A pause of 0..max_us, so that a process is sometimes idle at a wrap. */
static void pause_us(unsigned int *seed, unsigned int max_us)
{
	struct timespec ts = { 0, 0 };

	ts.tv_nsec = (long)(rand_r(seed) % (max_us + 1)) * 1000;
	nanosleep(&ts, NULL);
}

/* A wrong result, counted by whose data it was; the first one is kept. */
static void note_wrong(struct wrap_report *rep, int p, int opc,
		       uint64_t got, uint64_t want)
{
	int o = owner_of(got);

	if (o >= 0 && o != p)
		rep->foreign++;
	else
		rep->wrong++;
	if (rep->foreign + rep->wrong == 1) {
		rep->first_opc = opc;
		rep->first_got = got;
		rep->first_want = want;
	}
}

/*
 * A stall the driver preempted (another context needed the slot while this
 * one waited too long, here mostly on a delayed wrap) fails with -EAGAIN
 * before the instruction did anything: issue it again, as documented.
 */
#define REISSUE(rep, call) ({					\
	int __r, __n = 0;					\
	while ((__r = (call)) == -EAGAIN && ++__n < 100)	\
		(rep)->preempted++;				\
	__r;							\
})

/* A failed instruction, by errno (see libgru.h for the mapping). */
static void note_err(struct wrap_report *rep, int err)
{
	if (err == -ENXIO)
		rep->err_enxio++;
	else if (err == -ENOMEM)
		rep->err_enomem++;
	else
		rep->err_other++;
	if (!rep->first_err)
		rep->first_err = err;
}

/*
 * One worker process: its own pages at the common VA and a context loaded
 * at once (one byte on @readyfd says so), then @iters rounds of LOAD
 * pattern, FADD counter, STORE + LOAD back, each followed by a pause, so
 * that a wrap finds it sometimes running and sometimes asleep.
 */
static void wrap_worker(int p, uint64_t *common, struct wrap_ctl *ctl,
			unsigned int iters, int wfd, int readyfd)
{
	struct wrap_report rep = { .proc = p };
	unsigned int count[WRAP_PAGES] = { 0 };
	uint64_t last_store[WRAP_PAGES];
	unsigned int seed = 0x9e3779b9u * (p + 1);
	struct gru_ctx_stats st;
	struct gru_ctx c;
	uint64_t *pg, v;
	unsigned int i;
	int k, ret;

	if (mmap(common, WRAP_PAGES * PAGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != common) {
		rep.setup_err = errno;
		goto out;
	}
	for (k = 0; k < WRAP_PAGES; k++) {
		pg = common + k * (PAGE_SZ / 8);
		pg[W_PATTERN] = pattern_of(p, k);
		pg[W_COUNTER] = counter_base(p, k);
		last_store[k] = store_of(p, 0);
		pg[W_STORE] = last_store[k];
	}
	ret = gru_open(&c, 0);
	if (!ret)
		ret = gru_nop(&c);
	if (ret) {
		rep.setup_err = -ret;
		goto out;
	}
	if (write(readyfd, "r", 1) != 1)
		_exit(3);
	while (!ctl->go)
		usleep(1000);

	for (i = 1; i <= iters && !ctl->stop; i++) {
		k = i % WRAP_PAGES;
		pg = common + k * (PAGE_SZ / 8);

		ret = REISSUE(&rep, gru_load(&c, &pg[W_PATTERN], &v));
		rep.ops++;
		if (ret)
			note_err(&rep, ret);
		else if (v != pattern_of(p, k))
			note_wrong(&rep, p, GRU_OPC_LOAD, v, pattern_of(p, k));

		ret = REISSUE(&rep, gru_fadd(&c, &pg[W_COUNTER], 1, &v));
		rep.ops++;
		if (ret) {
			note_err(&rep, ret);
		} else {
			/* only we add here: the old value is our own count */
			if (v != counter_base(p, k) + count[k])
				note_wrong(&rep, p, GRU_OPC_FADD, v,
					   counter_base(p, k) + count[k]);
			count[k]++;
		}

		ret = REISSUE(&rep, gru_store(&c, &pg[W_STORE], store_of(p, i)));
		rep.ops++;
		if (ret) {
			note_err(&rep, ret);
		} else {
			last_store[k] = store_of(p, i);
			ret = REISSUE(&rep, gru_load(&c, &pg[W_STORE], &v));
			rep.ops++;
			if (ret)
				note_err(&rep, ret);
			else if (v != store_of(p, i))
				note_wrong(&rep, p, GRU_OPC_STORE, v,
					   store_of(p, i));
		}

		pause_us(&seed, WRAP_PAUSE_US);
	}

	/* what the device did to our memory must be exactly what we asked */
	for (k = 0; k < WRAP_PAGES; k++) {
		pg = common + k * (PAGE_SZ / 8);
		if (pg[W_PATTERN] != pattern_of(p, k))
			rep.final_bad++;
		if (pg[W_COUNTER] != counter_base(p, k) + count[k])
			rep.final_bad++;
		if (pg[W_STORE] != last_store[k])
			rep.final_bad++;
	}
	if (!gru_stats(&c, &st)) {
		rep.steals = st.steals;
		rep.loads = st.loads;
	}
	gru_close(&c);
out:
	if (rep.setup_err && write(readyfd, "e", 1) != 1)
		_exit(3);
	if (write(wfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(2);
	_exit(0);
}

/*
 * A helper: each round opens a context from this mm, LOADs its own
 * pattern at the common VA, and closes it.  The last close frees the mm's
 * ASID state, so every round takes a fresh ASID, and its first device
 * access comes right after a load that may itself have wrapped.
 */
static void wrap_churn(int p, uint64_t *common, struct wrap_ctl *ctl, int wfd)
{
	struct wrap_report rep = { .proc = p };
	unsigned int seed = 0x85ebca6bu * (p + 1);
	struct gru_ctx c;
	uint64_t v;
	int ret;

	if (mmap(common, PAGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != common) {
		rep.setup_err = errno;
		goto out;
	}
	common[W_PATTERN] = pattern_of(p, 0);
	while (!ctl->go)
		usleep(1000);
	while (!ctl->stop && rep.ops < CHURN_MAX_CYCLES) {
		ret = gru_open(&c, 0);
		if (ret) {
			note_err(&rep, ret);
			break;
		}
		ret = gru_load(&c, &common[W_PATTERN], &v);
		rep.ops++;
		if (ret)
			note_err(&rep, ret);
		else if (v != pattern_of(p, 0))
			note_wrong(&rep, p, GRU_OPC_LOAD, v, pattern_of(p, 0));
		gru_close(&c);
		/* loaded at some wraps, not at others */
		pause_us(&seed, WRAP_PAUSE_US / 2);
	}
out:
	if (write(wfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(2);
	_exit(0);
}

TEST_F_TIMEOUT(wrap, no_alias_across_wraps, 900)
{
	unsigned int iters = env_uint("GRU_WRAP_ITERS", WRAP_ITERS_DEFAULT);
	int nworkers = (int)self->max_asid + 4;
	unsigned int foreign = 0, wrong = 0, enxio = 0, enomem = 0, other = 0;
	unsigned int final_bad = 0, churn_ops = 0, preempted = 0;
	unsigned long long steals = 0;
	int fds[2], ready[2], status, n, done = 0;
	long long wraps0, wraps1;
	pid_t churn;
	char c;

	/* more processes than ASIDs and than slots: wraps and steals */
	ASSERT_GT(nworkers, (int)self->hw_contexts);
	wraps0 = dbg_stat("asid_wraps");
	ASSERT_GE(wraps0, 0) TH_LOG("no asid_wraps in debugfs gru/*/stats");
	ASSERT_EQ(0, pipe(fds));
	ASSERT_EQ(0, pipe(ready));

	for (n = 0; n < nworkers; n++) {
		pid_t pid = fork();

		ASSERT_GE(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			close(ready[0]);
			wrap_worker(n, self->common, self->ctl, iters, fds[1],
				    ready[1]);
		}
		/* loaded one by one: the later ones steal the earlier */
		ASSERT_EQ(1, read(ready[0], &c, 1));
	}
	churn = fork();
	ASSERT_GE(churn, 0);
	if (churn == 0) {
		close(fds[0]);
		wrap_churn(nworkers, self->common, self->ctl, fds[1]);
	}
	close(fds[1]);
	self->ctl->go = 1;

	for (n = 0; n < nworkers + 1; n++) {
		struct wrap_report rep;

		ASSERT_EQ(sizeof(rep), read(fds[0], &rep, sizeof(rep)));
		if (rep.proc == nworkers)
			churn_ops = rep.ops;
		else if (++done == nworkers)
			self->ctl->stop = 1;	/* the helper's turn to report */
		EXPECT_EQ(0, rep.setup_err) TH_LOG("process %d could not start: errno %d",
						   rep.proc, rep.setup_err);
		foreign += rep.foreign;
		wrong += rep.wrong;
		enxio += rep.err_enxio;
		enomem += rep.err_enomem;
		other += rep.err_other;
		preempted += rep.preempted;
		final_bad += rep.final_bad;
		steals += rep.steals;
		if (rep.foreign || rep.wrong)
			TH_LOG("process %d: %u results from another process, %u other wrong; first: %s got %#llx (process %d's) want %#llx",
			       rep.proc, rep.foreign, rep.wrong,
			       gru_opcode_name(rep.first_opc),
			       (unsigned long long)rep.first_got,
			       owner_of(rep.first_got),
			       (unsigned long long)rep.first_want);
		if (rep.err_enxio || rep.err_enomem || rep.err_other)
			TH_LOG("process %d: failed instructions: %u NO_CONTEXT (-ENXIO), %u FAULT (-ENOMEM), %u other (first %d)",
			       rep.proc, rep.err_enxio, rep.err_enomem,
			       rep.err_other, rep.first_err);
		if (rep.final_bad)
			TH_LOG("process %d: %u words of its memory differ from what it did",
			       rep.proc, rep.final_bad);
	}
	self->ctl->stop = 1;
	for (n = 0; n < nworkers + 1; n++) {
		ASSERT_GT(waitpid(-1, &status, 0), 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	wraps1 = dbg_stat("asid_wraps");

	TH_LOG("%d workers x %u rounds, helper %u open/close, max_asid %lld, delay %u us: %lld wraps, %llu steals",
	       nworkers, iters, churn_ops, self->max_asid, variant->delay_us,
	       wraps1 - wraps0, steals);
	TH_LOG("isolation: %u results of another process, %u other wrong results, %u wrong words at the end; failed instructions: %u NO_CONTEXT, %u FAULT, %u other; %u reissued after a preemption",
	       foreign, wrong, final_bad, enxio, enomem, other, preempted);
	/* isolation: no result and no word of memory from another process */
	EXPECT_EQ(0, foreign);
	EXPECT_EQ(0, wrong);
	EXPECT_EQ(0, final_bad);
	/* a wrap is the driver's business: no instruction may fail for it */
	EXPECT_EQ(0, enxio);
	EXPECT_EQ(0, enomem);
	EXPECT_EQ(0, other);
	/* the claim needs wraps under load, with contexts moving slots */
	EXPECT_GE(wraps1 - wraps0, WRAP_MIN_WRAPS);
	EXPECT_GT(steals, 0);
}

TEST_HARNESS_MAIN
