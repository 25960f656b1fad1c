// SPDX-License-Identifier: GPL-2.0
/*
 * mmu_notifier side of the race protocol.
 *
 * The fill side (gru_fault.c, gru_fill_walk/commit) samples gru_mm.seq with
 * inflight == 0, walks, and installs only if, under gru_mm.lock, inflight
 * is still 0 and seq is unchanged.  This side raises inflight and bumps seq
 * before it removes the device's translations, and lowers inflight only
 * after the primary MMU has changed the page tables.  docs/driver.md walks
 * through why no stale translation survives.
 */
#include <linux/slab.h>
#include <linux/sched/mm.h>
#include "gru_core.h"
#include "gru_hw.h"
#include "gru_compat.h"
#include "gru_trace.h"

static struct gru_mm *to_gmm(struct mmu_notifier *mn)
{
	return container_of(mn, struct gru_mm, mn);
}

/*
 * The ASID to invalidate, or 0 if the mm has no translation in the device:
 * an ASID of an old generation was flushed by the wrap's GRU_INV_ALL.
 */
static u16 gru_mm_live_asid(struct gru_mm *gmm)
{
	lockdep_assert_held(&gmm->lock);
	if (!gmm->asid || !gru_asid_current(gru_mm_dev(gmm), gmm))
		return 0;
	return gmm->asid;
}

/* @stat: the gru_dstat counter of this kind of invalidation */
static void gru_mm_invalidate(struct gru_mm *gmm, u16 asid, u32 kind,
			      unsigned long start, unsigned long end, int stat)
{
	struct gru_dev *gdev = gru_mm_dev(gmm);

	if (!asid)
		return;
	gru_hw_invalidate(gdev, kind, asid, start, end);
	atomic64_inc(&gmm->invalidations);
	atomic64_inc(&gdev->stat[stat]);
	trace_gru_invalidate(asid, start, end, kind);
}

/*
 * Never sleeps and never fails, so it is correct for non-blockable
 * callers (the OOM reaper) as well.
 */
static int gru_mn_invalidate_range_start(struct mmu_notifier *mn,
					 const struct mmu_notifier_range *range)
{
	struct gru_mm *gmm = to_gmm(mn);
	unsigned long flags;
	u16 asid;

	spin_lock_irqsave(&gmm->lock, flags);
	gmm->inflight++;
	gmm->seq++;
	asid = gru_mm_live_asid(gmm);
	spin_unlock_irqrestore(&gmm->lock, flags);

	/*
	 * The fence completes before we return: from here until the matching
	 * end, a fill can neither find an old translation in the device nor
	 * install a new one (inflight != 0).
	 */
	gru_mm_invalidate(gmm, asid, GRU_INV_RANGE, range->start, range->end,
			  GRU_DS_INV_RANGE);
	/* GRU_FILL_PINNED: the device cannot reach these pages any more */
	gru_pins_release_range(gmm, range->start, range->end);
	return 0;
}

static void gru_mn_invalidate_range_end(struct mmu_notifier *mn,
					const struct mmu_notifier_range *range)
{
	struct gru_mm *gmm = to_gmm(mn);
	unsigned long flags;
	bool wake;

	spin_lock_irqsave(&gmm->lock, flags);
	if (!WARN_ON_ONCE(gmm->inflight <= 0))
		gmm->inflight--;
	wake = gmm->inflight == 0;
	spin_unlock_irqrestore(&gmm->lock, flags);
	if (wake)
		wake_up_all(&gmm->inv_wq);
}

/*
 * Called after the PTE changed, from the primary MMU's TLB flush:
 * invalidate_range in 6.1 (from the PTE clear-and-flush and from
 * invalidate_range_end), arch_invalidate_secondary_tlbs from 6.6 (through
 * the separate gru_mm_tlb subscription).  Never sleeps.  It makes the
 * device's generation check a complete barrier on its own: a walk that saw
 * the old PTE read INV_GEN before this invalidation, so its drop-in either
 * lands before it (and is removed) or is refused as stale.
 */
static void gru_mm_post_inval(struct gru_mm *gmm, unsigned long start,
			      unsigned long end)
{
	unsigned long flags;
	u16 asid;

	/*
	 * Test only: with the device's generation check also off, this is the
	 * last barrier left, and the race detector must be able to see the
	 * protocol break without it.
	 */
	if (unlikely(gru_skip_post_inval()))
		return;
	spin_lock_irqsave(&gmm->lock, flags);
	asid = gru_mm_live_asid(gmm);
	spin_unlock_irqrestore(&gmm->lock, flags);
	gru_mm_invalidate(gmm, asid, GRU_INV_RANGE, start, end, GRU_DS_INV_PAGE);
}

static void gru_mn_secondary_tlb(struct mmu_notifier *mn, struct mm_struct *mm,
				 unsigned long start, unsigned long end)
{
	gru_mm_post_inval(to_gmm(mn), start, end);
}

static void gru_tlb_secondary_tlb(struct mmu_notifier *mn,
				  struct mm_struct *mm,
				  unsigned long start, unsigned long end)
{
	struct gru_mm_tlb *tlb = container_of(mn, struct gru_mm_tlb, mn);
	/* NULL only between registration and gru_mm_get(): nothing mapped */
	struct gru_mm *gmm = READ_ONCE(tlb->gmm);

	if (gmm)
		gru_mm_post_inval(gmm, start, end);
}

static struct mmu_notifier *gru_tlb_alloc(struct mm_struct *mm)
{
	struct gru_mm_tlb *tlb = kzalloc(sizeof(*tlb), GFP_KERNEL);

	return tlb ? &tlb->mn : ERR_PTR(-ENOMEM);
}

static void gru_tlb_free(struct mmu_notifier *mn)
{
	struct gru_mm_tlb *tlb = container_of(mn, struct gru_mm_tlb, mn);

	/* the kref keeps gdev->tlb_ops, our ops, alive until here */
	if (tlb->gdev)
		gru_dev_put(tlb->gdev);
	kfree(tlb);
}

static int gru_mn_age(struct gru_mm *gmm, u32 cmd, unsigned long start,
		      unsigned long end)
{
	unsigned long flags;
	u16 asid;

	spin_lock_irqsave(&gmm->lock, flags);
	asid = gru_mm_live_asid(gmm);
	spin_unlock_irqrestore(&gmm->lock, flags);
	if (!asid)
		return 0;
	GRU_DSTAT(gru_mm_dev(gmm), AGE);
	return gru_hw_age(gru_mm_dev(gmm), cmd, asid, start, end);
}

/*
 * Clearing the device's accessed bit is enough for the "flush" too: the
 * next device access sets it again, which is what reclaim needs to see.
 */
static int gru_mn_clear_flush_young(struct mmu_notifier *mn,
				    struct mm_struct *mm,
				    unsigned long start, unsigned long end)
{
	return gru_mn_age(to_gmm(mn), GRU_AGE_CLEAR, start, end);
}

static int gru_mn_clear_young(struct mmu_notifier *mn, struct mm_struct *mm,
			      unsigned long start, unsigned long end)
{
	return gru_mn_age(to_gmm(mn), GRU_AGE_CLEAR, start, end);
}

static int gru_mn_test_young(struct mmu_notifier *mn, struct mm_struct *mm,
			     unsigned long address)
{
	return gru_mn_age(to_gmm(mn), GRU_AGE_TEST, address & PAGE_MASK,
			  (address & PAGE_MASK) + PAGE_SIZE);
}

/*
 * The mm is being torn down (exit_mmap) or the last notifier reference is
 * going.  Fail whatever runs on it, flush its ASID; later misses of its
 * contexts fail with GRU_ERR_ABORTED.  May sleep.
 */
static void gru_mn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct gru_mm *gmm = to_gmm(mn);
	struct gru_dev *gdev = gru_mm_dev(gmm);
	struct gru_ctx *ctx;
	unsigned long flags;
	u16 asid;

	mutex_lock(&gdev->ctx_mutex);
	spin_lock_irqsave(&gmm->lock, flags);
	gmm->released = true;
	/* a fill racing with us must not install anything any more */
	gmm->seq++;
	list_for_each_entry(ctx, &gmm->ctxs, mm_node)
		ctx->dead = true;
	asid = gru_mm_live_asid(gmm);
	spin_unlock_irqrestore(&gmm->lock, flags);

	list_for_each_entry(ctx, &gmm->ctxs, mm_node)
		gru_ctx_abort(ctx);
	mutex_unlock(&gdev->ctx_mutex);

	gru_mm_invalidate(gmm, asid, GRU_INV_ASID, 0, 0, GRU_DS_INV_ASID);
	gru_pins_release_range(gmm, 0, 0);
}

static struct mmu_notifier *gru_mn_alloc(struct mm_struct *mm)
{
	/*
	 * Callbacks find the device through mn.ops (gru_mm_dev()), set by
	 * mmu_notifier_get_locked() before registration, so a callback that
	 * races with gru_mm_get() never sees a half-built gru_mm.
	 */
	struct gru_mm *gmm = kzalloc(sizeof(*gmm), GFP_KERNEL_ACCOUNT);

	if (!gmm)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&gmm->lock);
	INIT_LIST_HEAD(&gmm->ctxs);
	init_waitqueue_head(&gmm->inv_wq);
	xa_init_flags(&gmm->pins, XA_FLAGS_LOCK_IRQ);
	atomic_inc(&gru_live[GRU_LIVE_MMS]);
	return &gmm->mn;
}

static void gru_mn_free(struct mmu_notifier *mn)
{
	struct gru_mm *gmm = to_gmm(mn);
	struct gru_dev *gdev = gmm->gdev;

	/*
	 * Without release (the last context closed before the mm exited) the
	 * ASID flush at file release already removed every entry.
	 */
	gru_pins_release_range(gmm, 0, 0);
	xa_destroy(&gmm->pins);
	if (gdev)
		gru_dev_put(gdev);
	kfree(gmm);
	atomic_dec(&gru_live[GRU_LIVE_MMS]);
}

static const struct mmu_notifier_ops gru_mn_ops_template = {
	.release		= gru_mn_release,
	.clear_flush_young	= gru_mn_clear_flush_young,
	.clear_young		= gru_mn_clear_young,
	.test_young		= gru_mn_test_young,
	.invalidate_range_start	= gru_mn_invalidate_range_start,
	.invalidate_range_end	= gru_mn_invalidate_range_end,
	.alloc_notifier		= gru_mn_alloc,
	.free_notifier		= gru_mn_free,
};

/**
 * gru_mm_init_ops() - give a device its own notifier ops
 * @gdev: the device
 *
 * mmu_notifier_get() keys on the ops pointer, so a per-device copy yields
 * one gru_mm (one ASID, one race protocol) per (device, mm).
 */
void gru_mm_init_ops(struct gru_dev *gdev)
{
	gdev->mn_ops = gru_mn_ops_template;
	gdev->tlb_ops = (struct mmu_notifier_ops) {
		.alloc_notifier	= gru_tlb_alloc,
		.free_notifier	= gru_tlb_free,
	};
	if (GRU_SEPARATE_TLB_SUB)
		gru_mn_set_secondary_tlb(&gdev->tlb_ops, gru_tlb_secondary_tlb);
	else
		gru_mn_set_secondary_tlb(&gdev->mn_ops, gru_mn_secondary_tlb);
}

/* Take the gru_mm_tlb reference that goes with a gru_mm reference. */
static int gru_mm_get_tlb(struct gru_dev *gdev, struct gru_mm *gmm,
			  struct mm_struct *mm)
{
	struct mmu_notifier *mn;
	struct gru_mm_tlb *tlb;

	mmap_assert_write_locked(mm);
	mn = mmu_notifier_get_locked(&gdev->tlb_ops, mm);
	if (IS_ERR(mn))
		return PTR_ERR(mn);
	tlb = container_of(mn, struct gru_mm_tlb, mn);
	if (!tlb->gdev) {
		kref_get(&gdev->ref);
		tlb->gdev = gdev;
	}
	/* both live exactly as long as this mm has contexts on gdev */
	WARN_ON_ONCE(tlb->gmm && tlb->gmm != gmm);
	WRITE_ONCE(tlb->gmm, gmm);
	gmm->tlb = tlb;
	return 0;
}

/**
 * gru_mm_get() - the per (device, mm) state of @mm, taking a reference
 * @gdev: the device
 * @mm: current->mm of the opener
 *
 * Return: the state or an ERR_PTR.
 */
struct gru_mm *gru_mm_get(struct gru_dev *gdev, struct mm_struct *mm)
{
	struct mmu_notifier *mn;
	struct gru_mm *gmm;

	mmap_write_lock(mm);
	mn = mmu_notifier_get_locked(&gdev->mn_ops, mm);
	if (IS_ERR(mn)) {
		mmap_write_unlock(mm);
		return ERR_CAST(mn);
	}
	gmm = to_gmm(mn);
	if (!gmm->gdev) {
		kref_get(&gdev->ref);
		gmm->gdev = gdev;
	}
	if (GRU_SEPARATE_TLB_SUB) {
		int ret = gru_mm_get_tlb(gdev, gmm, mm);

		if (ret) {
			mmap_write_unlock(mm);
			mmu_notifier_put(&gmm->mn);
			return ERR_PTR(ret);
		}
	}
	mmap_write_unlock(mm);
	return gmm;
}

/**
 * gru_mm_put() - drop a context's reference on its gru_mm
 * @gmm: the state; freed by gru_mn_free() after an SRCU grace period
 */
void gru_mm_put(struct gru_mm *gmm)
{
	/*
	 * The secondary-TLB subscription goes first: a callback of it that
	 * still runs holds SRCU, so the gru_mm it uses outlives it.
	 */
	if (GRU_SEPARATE_TLB_SUB)
		mmu_notifier_put(&gmm->tlb->mn);
	mmu_notifier_put(&gmm->mn);
}
