// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark baselines, built with CONFIG_GRU_TLB_DEBUG only, to show what
 * the no-pin IRQ fill buys:
 *
 *   GRU_FILL_PINNED: pin the page at drop-in, unpin it when an
 *	invalidation covers it (the pre-notifier KVM refcount approach);
 *   GRU_FILL_HMM: fault through hmm_range_fault() with an interval
 *	notifier, as a mirror driver does (lib/test_hmm.c).
 *
 * Both run in process context (the worker or GRU_IOC_CALL_OS); the IRQ path
 * hands every miss of such a context over.  The device side of coherency
 * (the range invalidation in invalidate_range_start) is the same as for the
 * main paths; only how a translation is obtained differs.
 */
#include <linux/mm.h>
#include <linux/hmm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/xarray.h>
#include "gru_core.h"
#include "gru_hw.h"
#include "gru_compat.h"
#include "gru_trace.h"

/* Drop in one 4 KiB entry under gmm->lock (held); returns GRU_DI_*. */
static u64 gru_baseline_dropin(struct gru_ctx *ctx, u64 va, u64 pa, u64 attr,
			       u64 gen, u64 epoch, int path)
{
	struct gru_dev *gdev = ctx->gdev;
	struct gru_mm *gmm = ctx->gmm;
	u64 res = GRU_DI_STALE;

	lockdep_assert_held(&gmm->lock);
	spin_lock(&gdev->hw_lock);
	if (!gru_hw_off(gdev) && gdev->hw_epoch == epoch &&
	    gru_asid_current(gdev, gmm)) {
		res = gru_hw_dropin_locked(gdev, gmm->asid, va, pa, attr, gen);
		trace_gru_dropin(gmm->asid, va, pa, attr, gen, res, path);
	}
	spin_unlock(&gdev->hw_lock);
	if (res == GRU_DI_STALE) {
		GRU_CSTAT(ctx, IGNORED);
		GRU_DSTAT(gdev, IGNORED);
	}
	return res;
}

static u32 gru_gup_error(long ret)
{
	if (ret == -ENOMEM)
		return GRU_ERR_FAULT;
	if (ret == -EFAULT || ret == -EPERM || ret == -EACCES)
		return GRU_ERR_PROT;
	return GRU_ERR_ABORTED;	/* -EINTR, -ERESTARTSYS: fatal signal */
}

/* Wait out an invalidation; false if the context is gone. */
static bool gru_baseline_wait(struct gru_ctx *ctx)
{
	struct gru_mm *gmm = ctx->gmm;

	GRU_CSTAT(ctx, RETRIES);
	GRU_DSTAT(ctx->gdev, RETRIES);
	wait_event_timeout(gmm->inv_wq, !READ_ONCE(gmm->inflight), HZ / 100);
	gru_asid_settle(ctx);
	return !READ_ONCE(ctx->dead);
}

/**
 * gru_pinned_fill() - GRU_FILL_PINNED: pin, record, drop in
 * @ctx: the context
 * @va: the missing address
 * @write: it is a write
 *
 * The pin is recorded in gru_mm.pins and dropped by
 * gru_pins_release_range() when an invalidation covers the page.
 *
 * Return: GRU_ERR_NONE or the error to fail the instruction with.
 */
u32 gru_pinned_fill(struct gru_ctx *ctx, u64 va, bool write)
{
	struct gru_mm *gmm = ctx->gmm;
	struct mm_struct *mm = ctx->mm;
	unsigned long idx = va >> PAGE_SHIFT;
	struct vm_area_struct *vma;
	struct page *page, *old;
	unsigned long flags, seq;
	int locked, tries;
	u64 gen, epoch, res;
	long n;
	u32 err = GRU_ERR_FAULT;

	if (!mmget_not_zero(mm))
		return GRU_ERR_ABORTED;
	if (xa_reserve_irq(&gmm->pins, idx, GFP_KERNEL))
		goto out;

	for (tries = 0; tries < GRU_SLOW_RETRIES; tries++) {
		/* the worker was told to give up (SIGKILL) */
		if (fatal_signal_pending(current)) {
			err = GRU_ERR_ABORTED;
			goto out;
		}
		spin_lock_irqsave(&gmm->lock, flags);
		if (gmm->released || ctx->dead) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			err = GRU_ERR_ABORTED;
			goto out;
		}
		seq = gmm->seq;
		if (gmm->inflight) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			if (!gru_baseline_wait(ctx))
				break;
			continue;
		}
		spin_unlock_irqrestore(&gmm->lock, flags);

		if (!gru_hw_inv_gen(ctx->gdev, &gen, &epoch)) {
			/* removed, or reset: what runs is aborted anyway */
			err = GRU_ERR_ABORTED;
			goto out;
		}
		if (mmap_read_lock_killable(mm)) {
			err = GRU_ERR_ABORTED;
			goto out;
		}
		locked = 1;
		vma = vma_lookup(mm, va);
		err = gru_vma_error(vma, write);
		if (err) {
			mmap_read_unlock(mm);
			goto out;
		}
		n = gru_pin_user_page_remote(mm, va & PAGE_MASK,
					     write ? FOLL_WRITE : 0, &page,
					     &locked);
		if (locked)
			mmap_read_unlock(mm);
		if (n != 1) {
			err = n < 0 ? gru_gup_error(n) : GRU_ERR_FAULT;
			goto out;
		}
		if (write)
			set_page_dirty_lock(page);

		spin_lock_irqsave(&gmm->lock, flags);
		/*
		 * Release flushes the ASID after marking the context dead
		 * under this lock: a worker that slept through it (in the
		 * fault above) must neither pin nor install anything.
		 */
		if (gmm->released || ctx->dead) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			unpin_user_page(page);
			err = GRU_ERR_ABORTED;
			goto out;
		}
		if (gmm->inflight || gmm->seq != seq) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			unpin_user_page(page);
			if (!gru_baseline_wait(ctx))
				break;
			continue;
		}
		/*
		 * Record the pin before the device can use it, so the next
		 * invalidation of the page finds it.  The slot was reserved,
		 * so this normally does not allocate.
		 */
		old = xa_store(&gmm->pins, idx, page, GFP_NOWAIT);
		if (xa_is_err(old)) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			unpin_user_page(page);
			continue;
		}
		atomic64_inc(&ctx->gdev->stat[GRU_DS_PINS_LIVE]);
		res = gru_baseline_dropin(ctx, va & PAGE_MASK, page_to_phys(page),
					  GRU_ATTR_SIZE_4K | GRU_ATTR_READ |
					  (write ? GRU_ATTR_WRITE : 0),
					  gen, epoch, GRU_PATH_WORKER);
		if (res != GRU_DI_INSTALLED &&
		    xa_cmpxchg(&gmm->pins, idx, page, NULL, 0) == page) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			unpin_user_page(page);
			atomic64_dec(&ctx->gdev->stat[GRU_DS_PINS_LIVE]);
		} else {
			spin_unlock_irqrestore(&gmm->lock, flags);
		}
		/* a read pin replaced by a write pin of the same page, say */
		if (old) {
			unpin_user_page(old);
			atomic64_dec(&ctx->gdev->stat[GRU_DS_PINS_LIVE]);
		}
		if (res == GRU_DI_INSTALLED) {
			GRU_CSTAT(ctx, FILL_PINNED);
			err = GRU_ERR_NONE;
			goto out;
		}
		if (res == GRU_DI_BAD)
			goto out;
		gru_asid_settle(ctx);
	}
	err = GRU_ERR_FAULT;
out:
	mmput_async(mm);
	return err;
}

/**
 * gru_pins_release_range() - unpin what an invalidation covers
 * @gmm: the mm state
 * @start: first byte
 * @end: last byte + 1; 0 means to the end of the address space
 *
 * Called after the device invalidation (the device can no longer reach
 * the pages).  Never sleeps.  gru_mm.pins is an irq-safe xarray because
 * its lock nests inside gru_mm.lock.
 */
void gru_pins_release_range(struct gru_mm *gmm, unsigned long start,
			    unsigned long end)
{
	unsigned long idx, last = end ? (end - 1) >> PAGE_SHIFT : ULONG_MAX;
	struct page *page, *cur;
	unsigned long flags;

	if (xa_empty(&gmm->pins))
		return;
	xa_for_each_range(&gmm->pins, idx, page, start >> PAGE_SHIFT, last) {
		xa_lock_irqsave(&gmm->pins, flags);
		cur = __xa_cmpxchg(&gmm->pins, idx, page, NULL, 0);
		xa_unlock_irqrestore(&gmm->pins, flags);
		if (cur == page) {
			unpin_user_page(page);
			atomic64_dec(&gru_mm_dev(gmm)->stat[GRU_DS_PINS_LIVE]);
		}
	}
}

#if IS_ENABLED(CONFIG_HMM_MIRROR)
/* The interval notifier only orders HMM fills; the device is invalidated
 * by the main notifier's invalidate_range_start.
 */
static bool gru_hmm_invalidate(struct mmu_interval_notifier *mni,
			       const struct mmu_notifier_range *range,
			       unsigned long cur_seq)
{
	struct gru_ctx *ctx = container_of(mni, struct gru_ctx, mni);
	unsigned long flags;

	spin_lock_irqsave(&ctx->gmm->lock, flags);
	mmu_interval_set_seq(mni, cur_seq);
	spin_unlock_irqrestore(&ctx->gmm->lock, flags);
	return true;
}

static const struct mmu_interval_notifier_ops gru_hmm_ops = {
	.invalidate = gru_hmm_invalidate,
};

/**
 * gru_hmm_enable() - insert the context's interval notifier (once)
 * @ctx: the context; called by its owner (current->mm == ctx->mm)
 *
 * Return: 0 or a negative errno.
 */
int gru_hmm_enable(struct gru_ctx *ctx)
{
	int ret = 0;

	/*
	 * The first insertion on an mm registers with it and waits for its
	 * mmap_lock, for as long as its threads hold it: a second caller
	 * must wait for that too, and learn its outcome, rather than switch
	 * the context to a notifier that is not there yet.
	 */
	mutex_lock(&ctx->mni_lock);
	if (!ctx->mni_ready) {
		ret = mmu_interval_notifier_insert(&ctx->mni, ctx->mm, 0,
						   TASK_SIZE_MAX, &gru_hmm_ops);
		if (!ret) {
			/* pairs with gru_hmm_fill(): the notifier is complete */
			smp_store_release(&ctx->mni_ready, true);
		}
	}
	mutex_unlock(&ctx->mni_lock);
	return ret;
}

/**
 * gru_hmm_disable() - remove it at release (may sleep)
 * @ctx: the context
 */
void gru_hmm_disable(struct gru_ctx *ctx)
{
	if (ctx->mni_ready)
		mmu_interval_notifier_remove(&ctx->mni);
}

/**
 * gru_hmm_fill() - GRU_FILL_HMM: hmm_range_fault, then drop in
 * @ctx: the context
 * @va: the missing address
 * @write: it is a write
 *
 * Return: GRU_ERR_NONE or the error to fail the instruction with.
 */
u32 gru_hmm_fill(struct gru_ctx *ctx, u64 va, bool write)
{
	struct gru_mm *gmm = ctx->gmm;
	struct mm_struct *mm = ctx->mm;
	unsigned long pfn, flags;
	struct hmm_range range = {
		.notifier	= &ctx->mni,
		.start		= va & PAGE_MASK,
		.end		= (va & PAGE_MASK) + PAGE_SIZE,
		.hmm_pfns	= &pfn,
		.default_flags	= 0,	/* look only: see below */
	};
	struct vm_area_struct *vma;
	int ret, tries;
	u64 gen, epoch, res, attr;
	u32 err = GRU_ERR_FAULT;
	bool unlocked;

	/* pairs with gru_hmm_enable(): use the notifier only once inserted */
	if (!smp_load_acquire(&ctx->mni_ready))
		return GRU_ERR_FAULT;
	if (!mmget_not_zero(mm))
		return GRU_ERR_ABORTED;
	for (tries = 0; tries < GRU_SLOW_RETRIES; tries++) {
		/* closing, or the worker was told to give up (SIGKILL) */
		if (READ_ONCE(ctx->dead) || fatal_signal_pending(current)) {
			err = GRU_ERR_ABORTED;
			break;
		}
		range.notifier_seq = mmu_interval_read_begin(&ctx->mni);
		if (!gru_hw_inv_gen(ctx->gdev, &gen, &epoch)) {
			err = GRU_ERR_ABORTED;
			break;
		}
		if (mmap_read_lock_killable(mm)) {
			err = GRU_ERR_ABORTED;
			break;
		}
		vma = vma_lookup(mm, va);
		err = gru_vma_error(vma, write);
		if (err) {
			mmap_read_unlock(mm);
			break;
		}
		/*
		 * hmm_range_fault() only looks.  Faulting through it would
		 * fault without FAULT_FLAG_ALLOW_RETRY or _KILLABLE: with the
		 * mmap lock held across a page lock or a FUSE read that may
		 * never end (so khugepaged, and every reader queued behind
		 * it, would wait too), and with handle_userfault() failing a
		 * userfaultfd range at once instead of waiting for its
		 * handler.  fixup_user_fault() faults the way the other
		 * modes do, dropping the lock to wait, and killably.
		 */
		ret = hmm_range_fault(&range);
		if (!ret && (pfn & HMM_PFN_ERROR)) {
			/* a mapping HMM will not mirror (no VM_READ, PFN map) */
			mmap_read_unlock(mm);
			err = GRU_ERR_PROT;
			break;
		}
		if (!ret && (!(pfn & HMM_PFN_VALID) ||
			     (write && !(pfn & HMM_PFN_WRITE))))
			ret = -EAGAIN;
		if (ret == -EAGAIN) {
			unlocked = false;
			ret = fixup_user_fault(mm, va, FAULT_FLAG_REMOTE |
					       (write ? FAULT_FLAG_WRITE : 0),
					       &unlocked);
			mmap_read_unlock(mm);
			if (!ret)
				continue;
			err = gru_gup_error(ret);
			break;
		}
		mmap_read_unlock(mm);
		if (ret == -EBUSY)
			continue;
		if (ret) {
			err = gru_gup_error(ret);
			break;
		}

		/* write permission only where the fault made the PTE dirty */
		attr = GRU_ATTR_SIZE_4K | GRU_ATTR_READ;
		if (write && (pfn & HMM_PFN_WRITE))
			attr |= GRU_ATTR_WRITE;
		spin_lock_irqsave(&gmm->lock, flags);
		/* closed while we faulted: release flushed the ASID already */
		if (gmm->released || ctx->dead) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			err = GRU_ERR_ABORTED;
			break;
		}
		if (mmu_interval_read_retry(&ctx->mni, range.notifier_seq)) {
			spin_unlock_irqrestore(&gmm->lock, flags);
			GRU_CSTAT(ctx, RETRIES);
			GRU_DSTAT(ctx->gdev, RETRIES);
			continue;
		}
		res = gru_baseline_dropin(ctx, va & PAGE_MASK,
					  page_to_phys(hmm_pfn_to_page(pfn)),
					  attr, gen, epoch, GRU_PATH_WORKER);
		spin_unlock_irqrestore(&gmm->lock, flags);
		if (res == GRU_DI_INSTALLED) {
			GRU_CSTAT(ctx, FILL_HMM);
			err = GRU_ERR_NONE;
			break;
		}
		err = GRU_ERR_FAULT;
		if (res == GRU_DI_BAD)
			break;
		gru_asid_settle(ctx);
	}
	/* every try ended in "again": nothing was installed */
	if (tries == GRU_SLOW_RETRIES)
		err = GRU_ERR_FAULT;
	mmput_async(mm);
	return err;
}
#else /* !CONFIG_HMM_MIRROR: an out-of-tree build against a kernel without HMM */
int gru_hmm_enable(struct gru_ctx *ctx)
{
	return -EOPNOTSUPP;
}

void gru_hmm_disable(struct gru_ctx *ctx)
{
}

u32 gru_hmm_fill(struct gru_ctx *ctx, u64 va, bool write)
{
	return GRU_ERR_FAULT;
}
#endif
