/* SPDX-License-Identifier: GPL-2.0 */
/*
 * GRU-style external TLB driver: objects, lifetimes and locking.
 *
 * Lock ordering (outermost first):
 *
 *   mmap_lock of the opener's mm        (page fault on the window, munmap)
 *     gru_dev.ctx_mutex                 (slots, load/unload/steal, ASIDs,
 *                                        gru_mm.ctxs lists)
 *       i_mmap_rwsem of gru_ctx.mapping (zapping a victim's window)
 *         gru_mm.lock      irq-safe     (seq, inflight, asid, dead flags)
 *           gru_dev.hw_lock irq-safe    (multi-register BAR0 sequences)
 *
 * The mmu_notifier callbacks take only gru_mm.lock and gru_dev.hw_lock,
 * except release, which may sleep and takes ctx_mutex first.  The fault
 * worker and GRU_IOC_CALL_OS take mmap_read_lock of the context's mm and
 * must not hold ctx_mutex while doing so (the window fault handler nests
 * ctx_mutex inside mmap_lock).
 *
 * BAR access: under ctx_mutex, or under hw_lock, and only if the device is
 * neither gone (removed) nor resetting.  Both are set under ctx_mutex and
 * hw_lock; resetting is cleared under hw_lock alone, by reset_done, once
 * the device works again.  While it is set no context is loaded (loads
 * fail with -EBUSY), so under ctx_mutex only unloaded contexts are seen.
 * The interrupt handlers read the BAR without a lock: remove frees the
 * vectors, and reset_prepare syncs them after setting resetting, which
 * they check first.
 *
 * Who may touch what in hard-IRQ context (gru_fault_irq, gru_misc_irq):
 *   - gru_dev.slots[] read with READ_ONCE; a slot's context cannot be freed
 *     or reassigned while its handler runs because every unload clears the
 *     slot and then calls gru_sync_fault_irqs() under ctx_mutex;
 *   - gru_dev.claimed bits: one handler at a time services a context;
 *   - gru_mm.lock and gru_dev.hw_lock (irqsave);
 *   - the page tables of gru_ctx.mm, read locklessly and only on a CPU in
 *     mm_cpumask(gru_ctx.mm) unless gru_dev.walk_any_cpu (GUP-fast rules,
 *     see gru_fault.c and docs/driver.md), never written, no page
 *     references;
 *   - atomic counters, the fault worker queue, the WAIT wait queue.
 *   Nothing that sleeps, no ctx_mutex, no mmap_lock.
 *
 * Lifetimes:
 *   gru_dev: kref; the PCI device, each open file and each gru_mm hold one.
 *   gru_mm:  one per (device, mm), from mmu_notifier_get(); each context
 *            holds a reference, dropped by mmu_notifier_put(); freed by
 *            free_notifier after an SRCU grace period.
 *   gru_mm_tlb: 6.6+ only, the secondary-TLB subscription of a gru_mm;
 *            each context takes and drops a reference on it together with
 *            its gru_mm reference, dropping this one first.
 *   gru_ctx: one per open() of /dev/gru; kref: the file holds one, and a
 *            queued or running fault work item holds one.  Release does
 *            not wait for the worker, which may be stuck in a fault that
 *            never completes (a userfaultfd nobody answers); the last put
 *            frees it, and with it its gru_mm, mm, gru_dev and module
 *            references.  Module exit flushes gru_wq, so a work item that
 *            dropped the last module reference still returns safely.
 */
#ifndef _GRU_CORE_H
#define _GRU_CORE_H

#include <linux/types.h>
#include <linux/pci.h>
#include <linux/miscdevice.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/kref.h>
#include <linux/fault-inject.h>
#include <linux/fs.h>
#include <linux/atomic.h>
#include <linux/xarray.h>
#include <linux/uidgid.h>
#include <linux/refcount.h>
#include <uapi/misc/gru.h>
#include "gru_regs.h"

#define GRU_DRV_NAME		"gru_tlb"
#define GRU_HIST_BUCKETS	32	/* log2(ns) buckets of miss service */
#define GRU_IRQ_RETRIES		4	/* fast-path walks before deferring */
#define GRU_IRQ_REPEAT		8	/* repeats of one miss served per IRQ */
#define GRU_IRQ_MAX_ROUNDS	256	/* misses of one slot served per IRQ */
#define GRU_IRQ_BUDGET		64	/* walks per interrupt, all slots */
#define GRU_SLOW_RETRIES	1000	/* worker/call-OS fault-ins before FAULT */
#define GRU_BATCH_MAX		16	/* upper bound of gru_ctx_opts.batch */
#define GRU_SAVED_WORDS		6	/* GRU_WIN_OP .. GRU_WIN_OPERAND1 */
#define GRU_MUTATION_DELAY_US	1000	/* fail_seq_check: walk -> drop-in */
#define GRU_WRAP_DELAY_MAX_US	100000	/* asid_wrap_delay_us: sleeps per wrap */
#define GRU_WRAP_SPIN_MAX_US	2000	/* ... and its busy-wait under hw_lock */
/*
 * A context stalled on the OS (call-OS, or a miss the worker has not
 * answered) that has spent this long stalled since it was loaded may lose
 * its slot to a context that needs one: its instruction fails with
 * GRU_ERR_PREEMPTED.
 */
#define GRU_STALL_PREEMPT_MS	100
#define GRU_USER_WORKS		32	/* fault work items per user */
/*
 * An ASID never handed to an mm: loaded slots hold it between an ASID
 * wrap's flush and their reassignment.  It has no entries, so a slot
 * translating with it misses (and waits in the fault path), where ASID 0
 * would make the device refuse a new instruction with NO_CONTEXT.
 */
#define GRU_ASID_QUARANTINE	0xffff
#define GRU_ASID_MAX		(GRU_ASID_QUARANTINE - 1)

/* Per-context counters (GRU_IOC_STATS and debugfs). */
enum gru_cstat {
	GRU_CS_FAULTS,
	GRU_CS_FILL_IRQ,
	GRU_CS_FILL_WORKER,
	GRU_CS_FILL_CALLOS,
	GRU_CS_FILL_HMM,
	GRU_CS_FILL_PINNED,
	GRU_CS_FILL_NULL,
	GRU_CS_FILL_BATCH,
	GRU_CS_RETRIES,
	GRU_CS_IGNORED,
	GRU_CS_INVALIDATIONS,
	GRU_CS_STEALS,
	GRU_CS_LOADS,
	GRU_CS_ERRORS,
	GRU_CS_DEFER_CPUMASK,
	GRU_CS_DEFER_WALK,
	GRU_CS_DEFER_RACE,
	GRU_CS_PREEMPTED,
	GRU_CS_NR,
};

/* Per-device driver counters (the device's own are in BAR0). */
enum gru_dstat {
	GRU_DS_FAULTS,
	GRU_DS_FILL_IRQ,
	GRU_DS_FILL_WORKER,
	GRU_DS_FILL_CALLOS,
	GRU_DS_FILL_NULL,
	GRU_DS_FILL_BATCH,
	GRU_DS_DEFER_WORKER,	/* misses the IRQ path handed to the worker */
	GRU_DS_DEFER_CALLOS,	/* misses the IRQ path handed to user space */
	GRU_DS_DEFER_CPUMASK,	/* IRQ CPU not in mm_cpumask: no walk there */
	GRU_DS_DEFER_WALK,	/* the IRQ walk found no usable leaf */
	GRU_DS_DEFER_RACE,	/* invalidations kept racing the IRQ walk */
	GRU_DS_RETRIES,
	GRU_DS_IGNORED,
	GRU_DS_ERRORS,
	GRU_DS_INV_RANGE,	/* invalidate_range_start */
	GRU_DS_INV_PAGE,	/* invalidate_range / secondary TLBs */
	GRU_DS_INV_ASID,	/* release, context reset */
	GRU_DS_INV_ALL,		/* ASID wrap */
	GRU_DS_AGE,
	GRU_DS_STEALS,
	GRU_DS_LOADS,
	GRU_DS_ASID_WRAPS,
	GRU_DS_SPURIOUS,
	GRU_DS_PINS_LIVE,	/* GRU_FILL_PINNED pages pinned now */
	GRU_DS_PREEMPTS,	/* stalled contexts failed to free a slot */
	GRU_DS_RESETS,		/* function resets survived */
	GRU_DS_IRQ_BUDGET,	/* interrupts that used up GRU_IRQ_BUDGET */
	GRU_DS_USER_WORKS,	/* misses failed: the user's works all busy */
	GRU_DS_NR,
};

struct gru_ctx;

/* Per-user accounting of fault work items (gru_main.c). */
struct gru_user {
	struct hlist_node node;
	kuid_t uid;
	refcount_t ref;
	atomic_t works;		/* queued or running, zombies included */
};

/*
 * struct gru_dev - one PCI function.  mn_ops is a per-device copy of the
 * notifier ops, so that mmu_notifier_get() yields one gru_mm per
 * (device, mm).
 */
struct gru_dev {
	struct pci_dev *pdev;
	void __iomem *regs;		/* BAR0 */
	void __iomem *win;		/* BAR2, kernel view for save/restore */
	resource_size_t win_phys;
	unsigned int nctx, sets, ways, hw_vectors;
	unsigned int nvec;		/* allocated MSI-X vectors */
	u8 cpuvec[GRU_CPUVEC_ENTRIES];	/* CPU -> fault vector */
	u32 version;
	bool fast_path;			/* IRQ walk on (never on PREEMPT_RT) */
	bool walk_any_cpu;		/* page tables are RCU-freed */
	bool gone;			/* PCI remove ran */
	bool resetting;			/* between reset_prepare and reset_done */
	u64 hw_epoch;			/* device resets; hw_lock */

	struct kref ref;
	struct mmu_notifier_ops mn_ops;
	struct mmu_notifier_ops tlb_ops;	/* GRU_SEPARATE_TLB_SUB */
	struct miscdevice misc;
	char name[32];			/* IRQ name */
	char misc_name[16];		/* /dev/gru, /dev/gru1, ... */

	spinlock_t hw_lock;		/* BAR0 argument registers */
	struct mutex ctx_mutex;		/* slots, ASIDs, context lists */
	struct gru_ctx *slots[GRU_MAX_CONTEXTS];
	unsigned long claimed;		/* bit n: a handler services slot n */
	unsigned int steal_hand;
	u64 asid_gen;			/* written under hw_lock + ctx_mutex */
	u32 next_asid;
	u32 max_asid;
	unsigned int next_id;		/* context ids, for traces */
	int index;			/* minor name: gru, gru1, ... */
	struct list_head ctxs;		/* all open contexts, ctx_mutex */

	struct work_struct rescan;	/* misses a bounded IRQ left over */
	wait_queue_head_t done_wq;	/* GRU_IOC_WAIT sleepers */
	atomic_t done_events;		/* completion IRQs, for their wake-up */
	struct dentry *dbg;

	atomic64_t stat[GRU_DS_NR];
	atomic64_t hist[GRU_HIST_BUCKETS];
};

struct gru_mm;

/*
 * struct gru_mm_tlb - the secondary-TLB subscription of a gru_mm on kernels
 * where arch_invalidate_secondary_tlbs cannot share a subscription with
 * invalidate_range_start/end (6.6+).  Every context holds one reference on
 * it and one on its gru_mm, taken together and dropped together.
 */
struct gru_mm_tlb {
	struct mmu_notifier mn;
	struct gru_dev *gdev;		/* holds a kref once set */
	struct gru_mm *gmm;		/* NULL until gru_mm_get() sets it */
};

/*
 * struct gru_mm - per (device, mm) state: the race protocol lives here.
 */
struct gru_mm {
	struct mmu_notifier mn;
	struct gru_mm_tlb *tlb;		/* GRU_SEPARATE_TLB_SUB only */
	struct gru_dev *gdev;		/* holds a kref once set */
	spinlock_t lock;		/* irq-safe: seq .. released */
	unsigned long seq;		/* bumped by invalidations, ASID changes */
	int inflight;			/* invalidations between start and end */
	u16 asid;
	u64 asid_gen;		/* 64 bits: never wraps back to a live one */
	bool released;
	struct list_head ctxs;		/* this mm's contexts (ctx_mutex) */
	wait_queue_head_t inv_wq;	/* woken when inflight drops to 0 */
	atomic64_t invalidations;
	struct xarray pins;		/* GRU_FILL_PINNED: va >> PAGE_SHIFT */
};

/* Window state kept while a context has no hardware slot. */
struct gru_saved {
	u64 words[GRU_SAVED_WORDS];
	u64 status, error, result, exc_va, exc_info;
};

/*
 * struct gru_ctx - one open() of /dev/gru.  It has its own address_space
 * so that a steal can zap exactly this context's window with
 * unmap_mapping_range().
 */
struct gru_ctx {
	struct gru_dev *gdev;
	struct gru_mm *gmm;
	struct mm_struct *mm;		/* mmgrab()bed opener's mm */
	struct address_space mapping;
	struct list_head mm_node;	/* gru_mm.ctxs */
	struct list_head dev_node;	/* gru_dev.ctxs */
	int slot;			/* -1 unloaded; ctx_mutex, READ_ONCE */
	bool dead;			/* mm gone or closing (gru_mm.lock) */
	bool mapped;
	unsigned int id;
	struct gru_ctx_opts opts;
	struct gru_saved saved;
	struct kref ref;
	struct gru_user *user;		/* the opener's, for GRU_USER_WORKS */
	struct work_struct work;
	/*
	 * The miss handed to the worker or to call-OS (gru_mm.lock).  A stall
	 * ends with RESUME or FAIL; stall_seq moves on with every new stall
	 * and every abort, so a late answer never lands on a newer stall.
	 */
	u64 pend_va;
	u64 pend_info;
	u64 stall_seq;
	unsigned long stall_start;	/* jiffies */
	struct task_struct *worker_task;	/* a worker faulting for it */
	unsigned long stall_total;	/* jiffies stalled since the load */
	bool stalled;
	bool callos_pending;
	u64 last_service_ns;
	struct mmu_interval_notifier mni;	/* GRU_FILL_HMM */
	struct mutex mni_lock;		/* serialises the insertion */
	bool mni_ready;			/* mni inserted (release/acquire) */
	atomic64_t stat[GRU_CS_NR];
};

/* The device of a gru_mm: mn.ops is that device's private copy. */
static inline struct gru_dev *gru_mm_dev(struct gru_mm *gmm)
{
	return container_of(gmm->mn.ops, struct gru_dev, mn_ops);
}

/* The BAR must not be touched: hw_lock or ctx_mutex held. */
static inline bool gru_hw_off(struct gru_dev *gdev)
{
	return READ_ONCE(gdev->gone) || READ_ONCE(gdev->resetting);
}

#define GRU_DSTAT(g, s)		atomic64_inc(&(g)->stat[GRU_DS_##s])
#define GRU_CSTAT(c, s)		atomic64_inc(&(c)->stat[GRU_CS_##s])

extern struct workqueue_struct *gru_wq;
/* Objects alive module-wide, for the leak checks of the tests (debugfs). */
enum gru_live {
	GRU_LIVE_DEVS,
	GRU_LIVE_CTXS,
	GRU_LIVE_MMS,
	GRU_LIVE_WORKS,		/* fault work items queued or running */
	GRU_LIVE_NR,
};

extern atomic_t gru_live[GRU_LIVE_NR];
#ifdef CONFIG_GRU_TLB_DEBUG
extern unsigned int gru_asid_wrap_delay_us;

static inline unsigned int gru_wrap_delay_us(void)
{
	return READ_ONCE(gru_asid_wrap_delay_us);
}

/* Benchmark baselines and test modes a production build refuses */
static inline bool gru_debug_opts_ok(u32 flags, u32 fill_mode)
{
	return true;
}
#else
static inline unsigned int gru_wrap_delay_us(void)
{
	return 0;
}

static inline bool gru_debug_opts_ok(u32 flags, u32 fill_mode)
{
	return !(flags & GRU_OPT_NULL_FILL) && fill_mode != GRU_FILL_HMM &&
	       fill_mode != GRU_FILL_PINNED;
}
#endif

#if IS_ENABLED(CONFIG_GRU_TLB_DEBUG) && IS_ENABLED(CONFIG_FAULT_INJECTION_DEBUG_FS)
/*
 * Fault points that break the coherency protocol, so that the race
 * detector can show it notices (docs/testing.md, the mutation run).
 *
 * should_fail() honours a task's /proc/<pid>/fail-nth before it looks at
 * the attribute, and any task may write its own fail-nth.  These points
 * open a use-after-free, so they fire only while root has them armed
 * through debugfs (probability and times not 0); while armed, any task
 * can still fire them through fail-nth.
 */
extern struct fault_attr gru_fail_seq_check;
extern struct fault_attr gru_fail_post_inval;

static inline bool gru_fault_armed(struct fault_attr *attr)
{
	return READ_ONCE(attr->probability) && atomic_read(&attr->times);
}

static inline bool gru_skip_seq_check(void)
{
	return gru_fault_armed(&gru_fail_seq_check) &&
	       should_fail(&gru_fail_seq_check, 1);
}

static inline bool gru_skip_post_inval(void)
{
	return gru_fault_armed(&gru_fail_post_inval) &&
	       should_fail(&gru_fail_post_inval, 1);
}
#else
static inline bool gru_skip_seq_check(void)
{
	return false;
}

static inline bool gru_skip_post_inval(void)
{
	return false;
}
#endif

/* gru_main.c */
void gru_dev_put(struct gru_dev *gdev);
struct gru_user *gru_user_get(void);
void gru_user_put(struct gru_user *u);
void gru_sync_fault_irqs(struct gru_dev *gdev);

/* gru_file.c */
extern const struct file_operations gru_fops;
void gru_ctx_put(struct gru_ctx *ctx);

/* gru_fault.c */
irqreturn_t gru_fault_irq(int irq, void *data);
irqreturn_t gru_misc_irq(int irq, void *data);
void gru_fault_rescan(struct work_struct *work);
void gru_fault_work(struct work_struct *work);
int gru_resolve_fault(struct gru_ctx *ctx, u64 va, bool write, int path);
u32 gru_resolve(struct gru_ctx *ctx, u64 va, bool write, int path);
u32 gru_vma_error(struct vm_area_struct *vma, bool write);
void gru_account_service(struct gru_ctx *ctx, int slot);

/* Fill paths, for counters and tracing */
enum gru_path {
	GRU_PATH_IRQ,
	GRU_PATH_WORKER,
	GRU_PATH_CALLOS,
};

/* gru_notifier.c */
struct gru_mm *gru_mm_get(struct gru_dev *gdev, struct mm_struct *mm);
void gru_mm_put(struct gru_mm *gmm);
void gru_mm_init_ops(struct gru_dev *gdev);

/* gru_context.c */
int gru_ctx_load(struct gru_ctx *ctx);
void gru_ctx_unload(struct gru_ctx *ctx, bool save);
void gru_ctx_abort(struct gru_ctx *ctx);
void gru_ctx_zap(struct gru_ctx *ctx);
u64 gru_ctx_status(struct gru_ctx *ctx);
void gru_ctx_end_stall(struct gru_ctx *ctx);
bool gru_ctx_stall_current(struct gru_ctx *ctx, u64 seq);
bool gru_asid_current(struct gru_dev *gdev, struct gru_mm *gmm);
void gru_asid_settle(struct gru_ctx *ctx);

/* gru_baseline.c */
#ifdef CONFIG_GRU_TLB_DEBUG
u32 gru_pinned_fill(struct gru_ctx *ctx, u64 va, bool write);
void gru_pins_release_range(struct gru_mm *gmm, unsigned long start,
			    unsigned long end);
int gru_hmm_enable(struct gru_ctx *ctx);
void gru_hmm_disable(struct gru_ctx *ctx);
u32 gru_hmm_fill(struct gru_ctx *ctx, u64 va, bool write);
#else
/* No baselines in a production build: SET_OPTS refuses their modes. */
static inline u32 gru_pinned_fill(struct gru_ctx *ctx, u64 va, bool write)
{
	return GRU_ERR_FAULT;
}

static inline void gru_pins_release_range(struct gru_mm *gmm,
					  unsigned long start,
					  unsigned long end)
{
}

static inline int gru_hmm_enable(struct gru_ctx *ctx)
{
	return -EOPNOTSUPP;
}

static inline void gru_hmm_disable(struct gru_ctx *ctx)
{
}

static inline u32 gru_hmm_fill(struct gru_ctx *ctx, u64 va, bool write)
{
	return GRU_ERR_FAULT;
}
#endif

/* gru_debugfs.c */
void gru_debugfs_init(void);
void gru_debugfs_exit(void);
void gru_debugfs_add_dev(struct gru_dev *gdev);
void gru_debugfs_remove_dev(struct gru_dev *gdev);

#endif /* _GRU_CORE_H */
