// SPDX-License-Identifier: GPL-2.0
/*
 * /sys/kernel/debug/gru/<pci name>/
 *   stats     driver counters and the device's own (BAR0 stats block)
 *   hist      miss service time (device clock), log2(ns) buckets
 *   contexts  one line per open context with its counters
 * /sys/kernel/debug/gru/live
 *   objects alive in the whole module: devices, contexts (also those only
 *   a fault work item still holds), gru_mms, work items
 * /sys/kernel/debug/gru/fail_seq_check/, fail_post_inval/
 *   GRU_TLB_DEBUG with FAULT_INJECTION_DEBUG_FS: the standard fault
 *   attributes (Documentation/fault-injection/) of the two points that
 *   break the coherency protocol on purpose
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include "gru_core.h"
#include "gru_hw.h"
#include "gru_compat.h"

static struct dentry *gru_dbg_root;

#if IS_ENABLED(CONFIG_GRU_TLB_DEBUG) && IS_ENABLED(CONFIG_FAULT_INJECTION_DEBUG_FS)
/* Skip the invalidate sequence check of a fill (gru_fault.c). */
DECLARE_FAULT_ATTR(gru_fail_seq_check);
/* Skip the device invalidation after a PTE change (gru_notifier.c). */
DECLARE_FAULT_ATTR(gru_fail_post_inval);

static void gru_debugfs_faults(void)
{
	/*
	 * A report per failure would be a stack dump from hard IRQ, up to
	 * GRU_IRQ_BUDGET of them per interrupt: quiet unless asked for.
	 */
	gru_fail_seq_check.verbose = 0;
	gru_fail_post_inval.verbose = 0;
	fault_create_debugfs_attr("fail_seq_check", gru_dbg_root,
				  &gru_fail_seq_check);
	fault_create_debugfs_attr("fail_post_inval", gru_dbg_root,
				  &gru_fail_post_inval);
}

static void gru_debugfs_faults_exit(void)
{
	/* 6.1 keeps a reference to the directory in the attribute */
	gru_fault_attr_put(&gru_fail_seq_check);
	gru_fault_attr_put(&gru_fail_post_inval);
}
#else
static void gru_debugfs_faults(void)
{
}

static void gru_debugfs_faults_exit(void)
{
}
#endif

static const char * const gru_dstat_names[GRU_DS_NR] = {
	[GRU_DS_FAULTS]		= "faults",
	[GRU_DS_FILL_IRQ]	= "fill_irq",
	[GRU_DS_FILL_WORKER]	= "fill_worker",
	[GRU_DS_FILL_CALLOS]	= "fill_callos",
	[GRU_DS_FILL_NULL]	= "fill_null",
	[GRU_DS_FILL_BATCH]	= "fill_batch",
	[GRU_DS_DEFER_WORKER]	= "defer_worker",
	[GRU_DS_DEFER_CALLOS]	= "defer_callos",
	[GRU_DS_DEFER_CPUMASK]	= "defer_cpumask",
	[GRU_DS_DEFER_WALK]	= "defer_walk",
	[GRU_DS_DEFER_RACE]	= "defer_race",
	[GRU_DS_RETRIES]	= "retries",
	[GRU_DS_IGNORED]	= "ignored",
	[GRU_DS_ERRORS]		= "errors",
	[GRU_DS_INV_RANGE]	= "inv_range",
	[GRU_DS_INV_PAGE]	= "inv_page",
	[GRU_DS_INV_ASID]	= "inv_asid",
	[GRU_DS_INV_ALL]	= "inv_all",
	[GRU_DS_AGE]		= "age",
	[GRU_DS_STEALS]		= "steals",
	[GRU_DS_LOADS]		= "loads",
	[GRU_DS_ASID_WRAPS]	= "asid_wraps",
	[GRU_DS_SPURIOUS]	= "spurious",
	[GRU_DS_PINS_LIVE]	= "pins_live",
	[GRU_DS_PREEMPTS]	= "preempts",
	[GRU_DS_RESETS]		= "resets",
	[GRU_DS_IRQ_BUDGET]	= "irq_budget",
	[GRU_DS_USER_WORKS]	= "user_works_full",
};

static const char * const gru_cstat_names[GRU_CS_NR] = {
	[GRU_CS_FAULTS]		= "faults",
	[GRU_CS_FILL_IRQ]	= "fill_irq",
	[GRU_CS_FILL_WORKER]	= "fill_worker",
	[GRU_CS_FILL_CALLOS]	= "fill_callos",
	[GRU_CS_FILL_HMM]	= "fill_hmm",
	[GRU_CS_FILL_PINNED]	= "fill_pinned",
	[GRU_CS_FILL_NULL]	= "fill_null",
	[GRU_CS_FILL_BATCH]	= "fill_batch",
	[GRU_CS_RETRIES]	= "retries",
	[GRU_CS_IGNORED]	= "ignored",
	[GRU_CS_INVALIDATIONS]	= "invalidations",
	[GRU_CS_STEALS]		= "steals",
	[GRU_CS_LOADS]		= "loads",
	[GRU_CS_ERRORS]		= "errors",
	[GRU_CS_DEFER_CPUMASK]	= "defer_cpumask",
	[GRU_CS_DEFER_WALK]	= "defer_walk",
	[GRU_CS_DEFER_RACE]	= "defer_race",
	[GRU_CS_PREEMPTED]	= "preempted",
};

static const struct {
	const char *name;
	u32 reg;
} gru_hw_stats[] = {
	{ "hw_hits",		GRU_REG_STAT_HITS },
	{ "hw_misses",		GRU_REG_STAT_MISSES },
	{ "hw_faults",		GRU_REG_STAT_FAULTS },
	{ "hw_dropins",		GRU_REG_STAT_DROPINS },
	{ "hw_dropins_stale",	GRU_REG_STAT_DROPINS_STALE },
	{ "hw_dropins_bad",	GRU_REG_STAT_DROPINS_BAD },
	{ "hw_inv_range",	GRU_REG_STAT_INV_RANGE },
	{ "hw_inv_asid",	GRU_REG_STAT_INV_ASID },
	{ "hw_inv_all",		GRU_REG_STAT_INV_ALL },
	{ "hw_insn_done",	GRU_REG_STAT_INSN_DONE },
	{ "hw_insn_error",	GRU_REG_STAT_INSN_ERROR },
	{ "hw_evictions",	GRU_REG_STAT_EVICTIONS },
	{ "hw_miss_ns_total",	GRU_REG_STAT_MISS_NS_TOTAL },
	{ "hw_miss_ns_last",	GRU_REG_STAT_MISS_NS_LAST },
	{ "hw_miss_serviced",	GRU_REG_STAT_MISS_SERVICED },
	{ "hw_bytes",		GRU_REG_STAT_BYTES },
};

static int gru_stats_show(struct seq_file *m, void *v)
{
	struct gru_dev *gdev = m->private;
	int i;

	for (i = 0; i < GRU_DS_NR; i++)
		seq_printf(m, "%-20s %lld\n", gru_dstat_names[i],
			   (long long)atomic64_read(&gdev->stat[i]));
	seq_printf(m, "%-20s %llu\n", "asid_gen", READ_ONCE(gdev->asid_gen));
	seq_printf(m, "%-20s %u\n", "fast_path", gdev->fast_path);
	seq_printf(m, "%-20s %u\n", "walk_any_cpu", gdev->walk_any_cpu);
	mutex_lock(&gdev->ctx_mutex);
	if (!gru_hw_off(gdev)) {
		for (i = 0; i < ARRAY_SIZE(gru_hw_stats); i++)
			seq_printf(m, "%-20s %llu\n", gru_hw_stats[i].name,
				   gru_rd(gdev, gru_hw_stats[i].reg));
		seq_printf(m, "%-20s %llu\n", "hw_inv_gen",
			   gru_rd(gdev, GRU_REG_INV_GEN));
	}
	mutex_unlock(&gdev->ctx_mutex);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(gru_stats);

static int gru_hist_show(struct seq_file *m, void *v)
{
	struct gru_dev *gdev = m->private;
	int i;

	seq_puts(m, "# miss service time (device clock), ns >= 2^bucket\n");
	for (i = 0; i < GRU_HIST_BUCKETS; i++)
		seq_printf(m, "%2d %12llu %lld\n", i, 1ULL << i,
			   (long long)atomic64_read(&gdev->hist[i]));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(gru_hist);

static int gru_contexts_show(struct seq_file *m, void *v)
{
	struct gru_dev *gdev = m->private;
	struct gru_ctx *ctx;
	int i;

	mutex_lock(&gdev->ctx_mutex);
	list_for_each_entry(ctx, &gdev->ctxs, dev_node) {
		seq_printf(m, "ctx %u slot %d asid %u dead %d fill_mode %u flags %#x",
			   ctx->id, ctx->slot, ctx->gmm->asid, ctx->dead,
			   ctx->opts.fill_mode, ctx->opts.flags);
		for (i = 0; i < GRU_CS_NR; i++) {
			u64 val = i == GRU_CS_INVALIDATIONS ?
				atomic64_read(&ctx->gmm->invalidations) :
				atomic64_read(&ctx->stat[i]);

			seq_printf(m, " %s %llu", gru_cstat_names[i], val);
		}
		seq_printf(m, " last_service_ns %llu\n",
			   READ_ONCE(ctx->last_service_ns));
	}
	mutex_unlock(&gdev->ctx_mutex);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(gru_contexts);

/**
 * gru_debugfs_add_dev() - create the device's debugfs directory
 * @gdev: the device
 */
void gru_debugfs_add_dev(struct gru_dev *gdev)
{
	gdev->dbg = debugfs_create_dir(pci_name(gdev->pdev), gru_dbg_root);
	debugfs_create_file("stats", 0444, gdev->dbg, gdev, &gru_stats_fops);
	debugfs_create_file("hist", 0444, gdev->dbg, gdev, &gru_hist_fops);
	debugfs_create_file("contexts", 0444, gdev->dbg, gdev,
			    &gru_contexts_fops);
}

/**
 * gru_debugfs_remove_dev() - remove it (waits for readers)
 * @gdev: the device
 */
void gru_debugfs_remove_dev(struct gru_dev *gdev)
{
	debugfs_remove_recursive(gdev->dbg);
	gdev->dbg = NULL;
}

static int gru_live_show(struct seq_file *m, void *v)
{
	static const char * const names[GRU_LIVE_NR] = {
		[GRU_LIVE_DEVS] = "devices",
		[GRU_LIVE_CTXS] = "contexts",
		[GRU_LIVE_MMS] = "mms",
		[GRU_LIVE_WORKS] = "works",
	};
	int i;

	for (i = 0; i < GRU_LIVE_NR; i++)
		seq_printf(m, "%-10s %d\n", names[i], atomic_read(&gru_live[i]));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(gru_live);

/**
 * gru_debugfs_init() - create /sys/kernel/debug/gru
 */
void gru_debugfs_init(void)
{
	gru_dbg_root = debugfs_create_dir("gru", NULL);
	debugfs_create_file("live", 0444, gru_dbg_root, NULL, &gru_live_fops);
	gru_debugfs_faults();
}

/**
 * gru_debugfs_exit() - remove it
 */
void gru_debugfs_exit(void)
{
	debugfs_remove_recursive(gru_dbg_root);
	gru_debugfs_faults_exit();
}
