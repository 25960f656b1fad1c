// SPDX-License-Identifier: GPL-2.0
/*
 * TLB-miss service: the hard-IRQ fast path, the worker, call-OS.
 *
 * Fast path: the fault interrupt handler walks the context's mm without
 * locks or page references, like GUP-fast, and drops the translation in
 * under the race protocol of gru_notifier.c.  What it cannot fill (not
 * present, COW, clean PTE for a write, an invalidation in flight) goes to
 * the worker, which faults the page in with fixup_user_fault() and runs
 * the same walk + protocol, or, in call-OS mode, to user space.
 */
#include <linux/interrupt.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/log2.h>
#include <linux/delay.h>
#include "gru_core.h"
#include "gru_hw.h"
#include "gru_compat.h"
#include "gru_trace.h"

/* One translation found by the walk. */
struct gru_xlate {
	u64 va;		/* aligned to the entry size */
	u64 pa;
	u64 attr;	/* GRU_ATTR_* */
};

enum gru_fill_result {
	GRU_FILL_OK,		/* installed */
	GRU_FILL_MISS,		/* the walk can't fill it: fault it in */
	GRU_FILL_RACE,		/* an invalidation raced: walk again */
	GRU_FILL_DEAD,		/* the mm is gone */
	GRU_FILL_BAD,		/* the device refused the entry */
	GRU_FILL_FOREIGN,	/* no lockless walk on this CPU */
	GRU_FILL_NOASID,	/* an ASID wrap is reassigning the mm's ASID */
	GRU_FILL_REFUSED,	/* a present leaf the device may never map */
};

/*
 * Size class and permissions of a leaf from its x86 flags (gru_compat.h);
 * false if it cannot be dropped in.  Protection keys are not applied: the
 * device is a remote agent, like get_user_pages_remote().
 */
static bool gru_leaf_attr(unsigned long flags, bool dirty, bool write,
			  u64 size, u64 *attr)
{
	bool rw = gru_leaf_rw(flags);

	if (!gru_leaf_user(flags))
		return false;
	/*
	 * A device write must leave the page dirty in the primary MMU's
	 * eyes: only a writable PTE that is already dirty may carry write
	 * permission.  A clean one goes to the slow path, which dirties it.
	 */
	if (write && !(rw && dirty))
		return false;
	*attr = size | GRU_ATTR_READ;
	if (rw && dirty)
		*attr |= GRU_ATTR_WRITE;
	return true;
}

/*
 * Lockless walk of @mm for @va.  The caller makes it memory-safe (see
 * gru_walk_safe() and docs/driver.md): IRQs are off for the whole walk,
 * and either this CPU is in mm_cpumask(@mm), so no page table can be
 * freed before the flush IPI reaches us, or the caller holds the mmap
 * lock and @end is the end of the VMA covering @va, so no table on the
 * path to it is freed by munmap or khugepaged's collapse, and the tables
 * unhooked without that lock are freed only after an RCU grace period or
 * an IPI to every CPU, which wait for us.  Each level is read once into a
 * local and never re-read through the table pointer except to check that
 * the PMD did not change under the PTE read (khugepaged retraction).  No
 * reference is taken on any page.
 *
 * Fills @x[0] for @va and up to @nmax - 1 following present 4 KiB
 * neighbours, all below @end and in the same PTE table.  Returns the
 * number filled.  Sets *@refused if the leaf of @va is present but can
 * never be dropped in (a PFN map, devmap, no struct page): faulting it in
 * again would not help.
 */
static int gru_walk(struct mm_struct *mm, u64 va, bool write,
		    struct gru_xlate *x, int nmax, unsigned long end,
		    bool *refused)
{
	pgd_t *pgdp, pgd;
	p4d_t *p4dp, p4d;
	pud_t *pudp, pud;
	pmd_t *pmdp, pmd;
	pte_t *ptep, pte;
	unsigned long pfn, addr;
	int n;

	lockdep_assert_irqs_disabled();

	pgdp = pgd_offset(mm, va);
	pgd = READ_ONCE(*pgdp);
	if (pgd_none(pgd) || !pgd_present(pgd))
		return 0;
	p4dp = p4d_offset(&pgd, va);
	p4d = READ_ONCE(*p4dp);
	if (p4d_none(p4d) || !p4d_present(p4d))
		return 0;
	pudp = pud_offset(&p4d, va);
	pud = READ_ONCE(*pudp);
	if (pud_none(pud) || !pud_present(pud))
		return 0;
	if (pud_leaf(pud)) {
		pfn = pud_pfn(pud);
		if (pud_devmap(pud) || gru_pud_special(pud) || !pfn_valid(pfn)) {
			*refused = gru_leaf_user(pud_flags(pud));
			return 0;
		}
		if (!gru_leaf_attr(pud_flags(pud), pud_dirty(pud), write,
				   GRU_ATTR_SIZE_1G, &x->attr))
			return 0;
		x->va = va & PUD_MASK;
		x->pa = (u64)pfn << PAGE_SHIFT;
		return 1;
	}

	pmdp = pmd_offset(&pud, va);
	pmd = gru_pmdp_get_lockless(pmdp);
	if (pmd_none(pmd) || !pmd_present(pmd))
		return 0;
	if (pmd_leaf(pmd)) {
		/* THP and hugetlb 2M alike; split/migration: not permitted */
		pfn = pmd_pfn(pmd);
		if (pmd_devmap(pmd) || gru_pmd_special(pmd) || !pfn_valid(pfn)) {
			*refused = gru_leaf_user(pmd_flags(pmd));
			return 0;
		}
		if (!gru_leaf_attr(pmd_flags(pmd), pmd_dirty(pmd), write,
				   GRU_ATTR_SIZE_2M, &x->attr))
			return 0;
		x->va = va & PMD_MASK;
		x->pa = (u64)pfn << PAGE_SHIFT;
		return 1;
	}

	/*
	 * The batch stays inside the PTE table that @pmd points to: bound it
	 * by the page-aligned address, never by @va itself, whose page
	 * offset would hide the table boundary.
	 */
	addr = va & PAGE_MASK;
	end = pmd_addr_end(addr, end);
	nmax = min_t(unsigned long, nmax, (end - addr) >> PAGE_SHIFT);
	ptep = gru_pte_offset_lockless(&pmd, addr);
	for (n = 0; n < nmax; n++, ptep++, addr += PAGE_SIZE) {
		pte = gru_ptep_get_lockless(ptep);
		pfn = pte_pfn(pte);
		/*
		 * Special PTEs are PFN maps (no struct page to speak of) with
		 * one exception: the shared zero page of a read fault on
		 * untouched anonymous memory, which is fine to read from.
		 */
		if (pte_devmap(pte) || !pfn_valid(pfn) ||
		    (pte_special(pte) && !is_zero_pfn(pfn))) {
			*refused = !n && gru_leaf_user(pte_flags(pte));
			break;
		}
		if (!gru_leaf_attr(pte_flags(pte), pte_dirty(pte),
				   n ? false : write, GRU_ATTR_SIZE_4K,
				   &x[n].attr))
			break;
		x[n].va = addr;
		x[n].pa = (u64)pfn << PAGE_SHIFT;
	}
	/* the table we read may have been retracted meanwhile */
	if (n && pmd_val(pmd) != pmd_val(gru_pmdp_get_lockless(pmdp)))
		return 0;
	return n;
}

/*
 * Hard IRQ: may this CPU walk @mm without locks?  Only where the GUP-fast
 * argument holds for it: with IRQs off on a CPU in mm_cpumask(@mm), a
 * page table unhooked elsewhere is freed only after a flush IPI that we
 * hold off (x86 sends it to lazy CPUs too when tables are freed).  Only
 * this CPU clears its bit, in switch_mm_irqs_off(), so it stays set for
 * the whole walk.  Where every free waits for RCU, any CPU will do.
 */
static bool gru_walk_safe(struct gru_dev *gdev, struct mm_struct *mm)
{
	lockdep_assert_irqs_disabled();
	return gdev->walk_any_cpu ||
	       cpumask_test_cpu(smp_processor_id(), mm_cpumask(mm));
}

/* One attempt of the race protocol, between its walk and its drop-in. */
struct gru_fill {
	unsigned long seq;	/* gru_mm.seq before the walk */
	u64 gen;		/* INV_GEN before the walk */
	u64 epoch;		/* gru_dev.hw_epoch with it */
	int n;			/* translations found */
	bool no_seq;		/* fault injection: skip the sequence check */
	struct gru_xlate x[GRU_BATCH_MAX];
};

/*
 * First half of an attempt: sample the sequence and the device generation,
 * then walk.  In hard IRQ (@vma NULL) IRQs are off already, and the walk
 * runs only where gru_walk_safe() allows it.  From process context the
 * caller holds the mmap lock and @vma covers @va; IRQs are off around the
 * walk only, which holds off the RCU-deferred or IPI-synchronised free of
 * a PTE table unhooked without the mmap lock (6.12 retract_page_tables(),
 * collapse_pte_mapped_thp(), hugetlb PMD unsharing).
 *
 * Return: GRU_FILL_OK with @f filled in, or why nothing was found.
 */
static enum gru_fill_result gru_fill_walk(struct gru_ctx *ctx, u64 va,
					  bool write,
					  struct vm_area_struct *vma,
					  struct gru_fill *f)
{
	struct gru_dev *gdev = ctx->gdev;
	struct gru_mm *gmm = ctx->gmm;
	unsigned long flags, end;
	bool refused = false;
	int nmax;

	if (vma)
		mmap_assert_locked(ctx->mm);
	else if (!gru_walk_safe(gdev, ctx->mm))
		return GRU_FILL_FOREIGN;
	nmax = clamp_t(u32, READ_ONCE(ctx->opts.batch), 1, GRU_BATCH_MAX);
	end = vma ? vma->vm_end : TASK_SIZE_MAX;

	f->no_seq = gru_skip_seq_check();
	spin_lock_irqsave(&gmm->lock, flags);
	if (gmm->released || ctx->dead) {
		spin_unlock_irqrestore(&gmm->lock, flags);
		return GRU_FILL_DEAD;
	}
	if (gmm->inflight && !f->no_seq) {
		spin_unlock_irqrestore(&gmm->lock, flags);
		return GRU_FILL_RACE;
	}
	f->seq = gmm->seq;
	spin_unlock_irqrestore(&gmm->lock, flags);

	/* generation first: anything invalidated after this is newer */
	if (!gru_hw_inv_gen(gdev, &f->gen, &f->epoch))
		return GRU_FILL_DEAD;	/* removed, or reset (which aborts) */
	if (vma)
		local_irq_save(flags);
	f->n = gru_walk(ctx->mm, va, write, f->x, nmax, end, &refused);
	if (vma)
		local_irq_restore(flags);
	if (!f->n)
		return refused ? GRU_FILL_REFUSED : GRU_FILL_MISS;
	return GRU_FILL_OK;
}

/*
 * Second half: install what gru_fill_walk() found if no invalidation
 * started or ran since it sampled the sequence.  Needs no mmap lock: the
 * translations are numbers now, and the check is what keeps them honest.
 */
static enum gru_fill_result gru_fill_commit(struct gru_ctx *ctx, int path,
					    struct gru_fill *f, int *extra)
{
	struct gru_dev *gdev = ctx->gdev;
	struct gru_mm *gmm = ctx->gmm;
	enum gru_fill_result ret;
	u64 res = GRU_DI_INSTALLED;
	unsigned long flags;
	int i;

	spin_lock_irqsave(&gmm->lock, flags);
	/*
	 * Release marks the context dead under this lock before it flushes
	 * the ASID: nothing may be installed after that flush.
	 */
	if (gmm->released || ctx->dead) {
		spin_unlock_irqrestore(&gmm->lock, flags);
		return GRU_FILL_DEAD;
	}
	if (!f->no_seq && (gmm->inflight || gmm->seq != f->seq)) {
		spin_unlock_irqrestore(&gmm->lock, flags);
		return GRU_FILL_RACE;
	}
	spin_lock(&gdev->hw_lock);
	if (gru_hw_off(gdev)) {
		ret = GRU_FILL_DEAD;
		goto out;
	}
	/* INV_GEN restarts at a reset: the sample is meaningless now */
	if (gdev->hw_epoch != f->epoch) {
		ret = GRU_FILL_RACE;
		goto out;
	}
	/* an ASID wrap (under hw_lock) may have retired gmm->asid */
	if (!gru_asid_current(gdev, gmm)) {
		ret = GRU_FILL_NOASID;
		goto out;
	}
	for (i = 0; i < f->n; i++) {
		res = gru_hw_dropin_locked(gdev, gmm->asid, f->x[i].va,
					   f->x[i].pa, f->x[i].attr, f->gen);
		trace_gru_dropin(gmm->asid, f->x[i].va, f->x[i].pa,
				 f->x[i].attr, f->gen, res, path);
		if (res != GRU_DI_INSTALLED)
			break;
	}
	if (res == GRU_DI_STALE) {
		GRU_CSTAT(ctx, IGNORED);
		GRU_DSTAT(gdev, IGNORED);
	}
	if (i == 0)
		ret = res == GRU_DI_STALE ? GRU_FILL_RACE : GRU_FILL_BAD;
	else
		ret = GRU_FILL_OK;
	*extra = i ? i - 1 : 0;
out:
	spin_unlock(&gdev->hw_lock);
	spin_unlock_irqrestore(&gmm->lock, flags);
	return ret;
}

/* Hard IRQ: one whole attempt, IRQs off throughout. */
static enum gru_fill_result gru_try_fill_irq(struct gru_ctx *ctx, u64 va,
					     bool write, int *extra)
{
	struct gru_fill f;
	enum gru_fill_result r;

	r = gru_fill_walk(ctx, va, write, NULL, &f);
	if (r != GRU_FILL_OK)
		return r;
	return gru_fill_commit(ctx, GRU_PATH_IRQ, &f, extra);
}

static void gru_count_retry(struct gru_ctx *ctx)
{
	GRU_CSTAT(ctx, RETRIES);
	GRU_DSTAT(ctx->gdev, RETRIES);
}

static void gru_count_fill(struct gru_ctx *ctx, int path, int extra)
{
	struct gru_dev *gdev = ctx->gdev;

	switch (path) {
	case GRU_PATH_IRQ:
		GRU_CSTAT(ctx, FILL_IRQ);
		GRU_DSTAT(gdev, FILL_IRQ);
		break;
	case GRU_PATH_WORKER:
		GRU_CSTAT(ctx, FILL_WORKER);
		GRU_DSTAT(gdev, FILL_WORKER);
		break;
	default:
		GRU_CSTAT(ctx, FILL_CALLOS);
		GRU_DSTAT(gdev, FILL_CALLOS);
		break;
	}
	if (extra) {
		atomic64_add(extra, &ctx->stat[GRU_CS_FILL_BATCH]);
		atomic64_add(extra, &gdev->stat[GRU_DS_FILL_BATCH]);
	}
}

/* Why the IRQ path left a miss to process context, for GRU_IOC_STATS. */
static void gru_count_defer(struct gru_ctx *ctx, enum gru_fill_result r)
{
	struct gru_dev *gdev = ctx->gdev;

	switch (r) {
	case GRU_FILL_FOREIGN:
		GRU_CSTAT(ctx, DEFER_CPUMASK);
		GRU_DSTAT(gdev, DEFER_CPUMASK);
		break;
	case GRU_FILL_RACE:
	case GRU_FILL_NOASID:
		GRU_CSTAT(ctx, DEFER_RACE);
		GRU_DSTAT(gdev, DEFER_RACE);
		break;
	default:
		GRU_CSTAT(ctx, DEFER_WALK);
		GRU_DSTAT(gdev, DEFER_WALK);
		break;
	}
}

/**
 * gru_account_service() - record the device's miss service time
 * @ctx: the context whose miss was just answered
 * @slot: its slot, which the command was written to
 */
void gru_account_service(struct gru_ctx *ctx, int slot)
{
	u64 ns = gru_ctx_rd(ctx->gdev, slot, GRU_CTX_SERVICE_NS);
	unsigned int b = ns ? min_t(unsigned int, ilog2(ns),
				    GRU_HIST_BUCKETS - 1) : 0;

	WRITE_ONCE(ctx->last_service_ns, ns);
	atomic64_inc(&ctx->gdev->hist[b]);
}

static void gru_fail(struct gru_ctx *ctx, int slot, u32 err)
{
	gru_ctx_cmd(ctx->gdev, slot, GRU_CMD_FAIL, err);
	GRU_CSTAT(ctx, ERRORS);
	GRU_DSTAT(ctx->gdev, ERRORS);
	gru_account_service(ctx, slot);
}

/*
 * Hard IRQ: a miss goes to process context.  The record is taken under
 * gru_mm.lock so that the worker and GRU_IOC_CALL_OS read one stall's
 * address, kind and number together.
 */
/* The file's reference is held across the handler: this cannot be last. */
static void gru_ctx_never_freed_here(struct kref *ref)
{
	WARN_ONCE(1, "gru_tlb: context freed in its fault handler\n");
}

static void gru_ctx_begin_stall(struct gru_ctx *ctx,
				const struct gru_fault_rec *rec)
{
	struct gru_mm *gmm = ctx->gmm;
	unsigned long flags;

	spin_lock_irqsave(&gmm->lock, flags);
	ctx->pend_va = rec->va;
	ctx->pend_info = rec->info;
	ctx->stall_seq++;
	ctx->stall_start = jiffies;
	ctx->stalled = true;
	spin_unlock_irqrestore(&gmm->lock, flags);
}

/*
 * Hard IRQ: answer the miss of one slot.  @defer skips the fast path (the
 * slot keeps missing, or the interrupt used up its budget: let process
 * context sort it out).
 */
static u64 gru_service_slot(struct gru_dev *gdev, int slot, bool defer)
{
	struct gru_fault_rec rec;
	struct gru_ctx *ctx;
	enum gru_fill_result r = GRU_FILL_MISS;
	bool write;
	u32 flags, mode;
	int i, extra = 0;

	gru_ctx_fault_rec(gdev, slot, &rec);
	if (!(rec.info & GRU_FAULT_VALID)) {
		GRU_DSTAT(gdev, SPURIOUS);
		return ~0ULL;
	}
	ctx = READ_ONCE(gdev->slots[slot]);
	if (!ctx) {
		/* a slot being torn down: nobody to resume for */
		gru_ctx_cmd(gdev, slot, GRU_CMD_FAIL, GRU_ERR_NO_CONTEXT);
		return rec.va;
	}
	write = rec.info & GRU_FAULT_WRITE;
	trace_gru_fault(slot, ctx->id, rec.va, rec.info);
	GRU_CSTAT(ctx, FAULTS);
	GRU_DSTAT(gdev, FAULTS);
	flags = READ_ONCE(ctx->opts.flags);
	mode = READ_ONCE(ctx->opts.fill_mode);

	if (flags & GRU_OPT_NULL_FILL) {
		/* benchmark floor: the interrupt round trip, no walk */
		gru_ctx_cmd(gdev, slot, GRU_CMD_FAIL, GRU_ERR_FAULT);
		GRU_CSTAT(ctx, FILL_NULL);
		GRU_DSTAT(gdev, FILL_NULL);
		gru_account_service(ctx, slot);
		return rec.va;
	}
	if (rec.va >= TASK_SIZE_MAX) {
		gru_fail(ctx, slot, GRU_ERR_KERNEL_ADDR);
		return rec.va;
	}
	if (READ_ONCE(ctx->dead)) {
		gru_fail(ctx, slot, GRU_ERR_ABORTED);
		return rec.va;
	}
	/*
	 * Deferred, a miss is only handed over, without a walk: the slot
	 * then stays stalled and cannot raise another one before process
	 * context answers, which is what bounds the handler.
	 */
	if (defer)
		goto hand_over;

	if (GRU_HAVE_IRQ_WALK && gdev->fast_path && mode == GRU_FILL_IRQ) {
		for (i = 0; i < GRU_IRQ_RETRIES; i++) {
			r = gru_try_fill_irq(ctx, rec.va, write, &extra);
			switch (r) {
			case GRU_FILL_OK:
				gru_ctx_cmd(gdev, slot, GRU_CMD_RESUME, 0);
				gru_count_fill(ctx, GRU_PATH_IRQ, extra);
				gru_account_service(ctx, slot);
				return rec.va;
			case GRU_FILL_DEAD:
				gru_fail(ctx, slot, GRU_ERR_ABORTED);
				return rec.va;
			case GRU_FILL_RACE:
				gru_count_retry(ctx);
				continue;
			default:
				break;
			}
			break;
		}
		gru_count_defer(ctx, r);
	}

hand_over:
	if (!(flags & GRU_OPT_CALLOS) &&
	    atomic_inc_return(&ctx->user->works) > GRU_USER_WORKS) {
		/* this user's misses already fill their share of gru_wq */
		atomic_dec(&ctx->user->works);
		gru_fail(ctx, slot, GRU_ERR_FAULT);
		GRU_DSTAT(gdev, USER_WORKS);
		return rec.va;
	}
	gru_ctx_begin_stall(ctx, &rec);
	if (flags & GRU_OPT_CALLOS) {
		WRITE_ONCE(ctx->callos_pending, true);
		gru_ctx_cmd(gdev, slot, GRU_CMD_CALLOS, GRU_ERR_NONE);
		gru_account_service(ctx, slot);
		GRU_DSTAT(gdev, DEFER_CALLOS);
	} else {
		/* stays stalled; the worker resumes it */
		gru_ctx_cmd(gdev, slot, GRU_CMD_ACK, 0);
		/*
		 * The file's reference outlives us (unload syncs this IRQ),
		 * so dropping ours here is never the last, which would sleep.
		 */
		kref_get(&ctx->ref);
		atomic_inc(&gru_live[GRU_LIVE_WORKS]);
		if (!queue_work(gru_wq, &ctx->work)) {
			atomic_dec(&gru_live[GRU_LIVE_WORKS]);
			atomic_dec(&ctx->user->works);
			kref_put(&ctx->ref, gru_ctx_never_freed_here);
		}
		GRU_DSTAT(gdev, DEFER_WORKER);
	}
	return rec.va;
}

/*
 * One bounded pass over FAULT_PENDING: at most @budget walks, then
 * hand-overs only, and at most GRU_IRQ_BUDGET + 4 claim passes per slot
 * in all.  Returns true if it stopped at that bound, when misses may be
 * left that no interrupt will announce again: the caller then schedules
 * gru_fault_rescan().
 */
static bool gru_fault_scan(struct gru_dev *gdev, unsigned long pending,
			   int budget)
{
	unsigned int passes = 0, limit = GRU_IRQ_BUDGET + 4 * gdev->nctx;
	int slot;

	for_each_set_bit(slot, &pending, gdev->nctx) {
		int round = 0, stuck = 0;
		u64 va, last_va = ~0ULL;
		bool defer;

		while (!test_and_set_bit_lock(slot, &gdev->claimed)) {
			/*
			 * A handed-over slot stays stalled until answered, but
			 * answers from other CPUs let it miss again while we
			 * are here: stop, and let a work item go on.
			 */
			if (unlikely(++passes > limit)) {
				clear_bit_unlock(slot, &gdev->claimed);
				return true;
			}
			defer = stuck >= GRU_IRQ_REPEAT ||
				++round >= GRU_IRQ_MAX_ROUNDS || budget <= 0;
			if (!defer && --budget == 0)
				GRU_DSTAT(gdev, IRQ_BUDGET);

			/*
			 * Whatever made us try may predate another handler's
			 * answer: an ACKed or CALLOS-deferred miss keeps its
			 * VALID record, and serving it again would hand one
			 * miss to process context twice.  So serve only what
			 * is pending now that we hold the claim.
			 */
			if (gru_fault_pending(gdev) & BIT_ULL(slot)) {
				va = gru_service_slot(gdev, slot, defer);
				stuck = va == last_va ? stuck + 1 : 0;
				last_va = va;
			}
			clear_bit_unlock(slot, &gdev->claimed);
			/* order the unlock before the re-read of the bit */
			smp_mb__after_atomic();
			if (!(gru_fault_pending(gdev) & BIT_ULL(slot)))
				break;
		}
	}
	return false;
}

/**
 * gru_fault_irq() - fault vector handler (hard IRQ, not threaded)
 * @irq: the vector's IRQ
 * @data: the gru_dev
 *
 * Every fault vector may see every pending bit; the claim bit makes one
 * handler serve a slot.  A handler that finds a slot claimed skips it, so
 * the claimer rechecks the slot's pending bit after letting go of the claim:
 * a miss raised on another CPU's vector while we held the claim is then
 * served by one of the two, never by neither.  A slot that keeps missing is
 * handed to process context once the same miss comes back GRU_IRQ_REPEAT
 * times in a row (no progress), or after GRU_IRQ_MAX_ROUNDS misses of any
 * kind.  A copy that keeps moving on to new pages is progress and stays on
 * the fast path.  The whole interrupt walks at most GRU_IRQ_BUDGET times and
 * makes a bounded number of claim passes (gru_fault_scan()); what is left
 * then goes on in gru_fault_rescan(), in process context.
 *
 * Return: IRQ_HANDLED, or IRQ_NONE for a device that reads all ones.
 */
irqreturn_t gru_fault_irq(int irq, void *data)
{
	struct gru_dev *gdev = data;
	unsigned long pending;

	/* a reset is under way: nothing is loaded, the BAR is off limits */
	if (READ_ONCE(gdev->resetting))
		return IRQ_HANDLED;
	/*
	 * Nothing pending is normal: the recheck below may already have
	 * served the miss this interrupt announces.  The vector is exclusive
	 * (MSI-X), so this is not a shared-line "not mine".
	 */
	pending = gru_fault_pending(gdev);
	if (!pending) {
		GRU_DSTAT(gdev, SPURIOUS);
		return IRQ_HANDLED;
	}
	/* all ones is 64 real misses, or a device that fell off the bus */
	if (unlikely(pending == ~0UL) && gru_rd(gdev, GRU_REG_ID) != GRU_MAGIC)
		return IRQ_NONE;
	if (gru_fault_scan(gdev, pending, GRU_IRQ_BUDGET))
		queue_work(system_highpri_wq, &gdev->rescan);
	return IRQ_HANDLED;
}

/**
 * gru_fault_rescan() - go on where a fault interrupt stopped at its bound
 * @work: gru_dev.rescan
 *
 * Hand-overs only (no walk), with IRQs off like the handler it continues.
 * Remove and reset cancel it after the vectors are quiet.
 */
void gru_fault_rescan(struct work_struct *work)
{
	struct gru_dev *gdev = container_of(work, struct gru_dev, rescan);
	unsigned long pending;
	bool again = false;

	local_irq_disable();
	if (!READ_ONCE(gdev->resetting) && !READ_ONCE(gdev->gone)) {
		pending = gru_fault_pending(gdev);
		/* as in the handler: all ones may be 64 real misses */
		if (pending && (pending != ~0UL ||
				gru_rd(gdev, GRU_REG_ID) == GRU_MAGIC))
			again = gru_fault_scan(gdev, pending, 0);
	}
	local_irq_enable();
	if (again)
		queue_work(system_highpri_wq, &gdev->rescan);
}

/**
 * gru_misc_irq() - vector 0: completions and errors; wakes GRU_IOC_WAIT
 * @irq: the IRQ
 * @data: the gru_dev
 *
 * Return: IRQ_HANDLED, or IRQ_NONE if nothing was pending.
 */
irqreturn_t gru_misc_irq(int irq, void *data)
{
	struct gru_dev *gdev = data;
	u64 cause, done;

	if (READ_ONCE(gdev->resetting))
		return IRQ_HANDLED;
	cause = gru_rd(gdev, GRU_REG_IRQ_CAUSE);
	done = gru_rd(gdev, GRU_REG_DONE_PENDING);
	if (!cause && !done)
		return IRQ_NONE;
	if (unlikely(cause == ~0ULL && done == ~0ULL))
		return IRQ_NONE;	/* fell off the bus */
	gru_wr(gdev, GRU_REG_DONE_PENDING, done);
	gru_wr(gdev, GRU_REG_IRQ_CAUSE, cause);
	atomic_inc(&gdev->done_events);
	wake_up_all(&gdev->done_wq);
	return IRQ_HANDLED;
}

/**
 * gru_vma_error() - the error a failed fault-in means
 * @vma: the VMA covering the address, or NULL
 * @write: the access is a write
 *
 * Return: GRU_ERR_NONE if the VMA allows the access, else the error.
 */
u32 gru_vma_error(struct vm_area_struct *vma, bool write)
{
	if (!vma)
		return GRU_ERR_UNMAPPED;
	if (vma->vm_flags & (VM_IO | VM_PFNMAP))
		return GRU_ERR_PROT;
	/*
	 * What fixup_user_fault() grants: a read needs VM_READ.  (The IRQ
	 * walk may still read a present page of a write- or exec-only
	 * mapping, which x86 page tables cannot make unreadable.)
	 */
	if (!(vma->vm_flags & (write ? VM_WRITE : VM_READ)))
		return GRU_ERR_PROT;
	if (write && gru_vma_shadow_stack(vma))
		return GRU_ERR_PROT;
	return GRU_ERR_NONE;
}

/**
 * gru_resolve_fault() - process-context fill: fault in, then drop in
 * @ctx: the context
 * @va: the missing address
 * @write: it is a write
 * @path: GRU_PATH_WORKER or GRU_PATH_CALLOS, for the counters
 *
 * Runs in the context's mm or any other (kthread worker); takes mmap_lock,
 * and ctx_mutex only to wait out an ASID wrap, never both at once.  No
 * page reference is held when it returns.
 *
 * Return: GRU_ERR_NONE once the translation is in the device, else the
 * GRU_ERR_* to fail the instruction with.
 */
int gru_resolve_fault(struct gru_ctx *ctx, u64 va, bool write, int path)
{
	struct mm_struct *mm = ctx->mm;
	struct gru_mm *gmm = ctx->gmm;
	struct vm_area_struct *vma;
	enum gru_fill_result r;
	struct gru_fill f;
	bool unlocked;
	int tries, ret, extra = 0;
	u32 err;

	if (va >= TASK_SIZE_MAX)
		return GRU_ERR_KERNEL_ADDR;
	if (!mmget_not_zero(mm))
		return GRU_ERR_ABORTED;

	for (tries = 0; tries < GRU_SLOW_RETRIES; tries++) {
		/*
		 * The caller of GRU_IOC_CALL_OS is dying, or the worker was
		 * told that nobody waits for its answer (SIGKILL, see
		 * gru_ctx_end_stall()), or the context is closing.
		 */
		if (fatal_signal_pending(current) || READ_ONCE(ctx->dead)) {
			err = GRU_ERR_ABORTED;
			goto out;
		}
		if (mmap_read_lock_killable(mm)) {
			err = GRU_ERR_ABORTED;
			goto out;
		}
		vma = vma_lookup(mm, va);
		err = gru_vma_error(vma, write);
		if (err) {
			mmap_read_unlock(mm);
			goto out;
		}
		/*
		 * FAULT_FLAG_REMOTE: the device is not the calling thread, so
		 * its protection keys (or a kworker's) do not apply.
		 */
		unlocked = false;
		ret = fixup_user_fault(mm, va, FAULT_FLAG_REMOTE |
				       (write ? FAULT_FLAG_WRITE : 0),
				       &unlocked);
		if (ret == -EFAULT) {
			mmap_read_unlock(mm);
			/* the VMA may have changed if the lock was dropped */
			if (unlocked)
				continue;
			err = GRU_ERR_PROT;
			goto out;
		}
		if (ret) {
			mmap_read_unlock(mm);
			/* -ENOMEM; -EINTR/-EAGAIN: fatal signal */
			err = ret == -ENOMEM ? GRU_ERR_FAULT : GRU_ERR_ABORTED;
			goto out;
		}
		/*
		 * Walk under the same mmap lock, in a VMA that still covers
		 * @va: no page table on the way to it can be freed meanwhile
		 * (see gru_fill_walk()).
		 */
		if (unlocked) {
			vma = vma_lookup(mm, va);
			if (gru_vma_error(vma, write)) {
				mmap_read_unlock(mm);
				continue;
			}
		}
		r = gru_fill_walk(ctx, va, write, vma, &f);
		mmap_read_unlock(mm);
		if (r == GRU_FILL_OK) {
			/*
			 * Fault injection only: with the sequence check off,
			 * widen the walk-to-drop-in window (as a preempted
			 * thread would), outside the mmap lock so that munmap
			 * and mprotect can land in it, and the race detector
			 * sees the broken protocol within a bounded run.
			 */
			if (unlikely(f.no_seq))
				usleep_range(GRU_MUTATION_DELAY_US,
					     2 * GRU_MUTATION_DELAY_US);
			r = gru_fill_commit(ctx, path, &f, &extra);
		}
		if (r == GRU_FILL_OK) {
			gru_count_fill(ctx, path, extra);
			err = GRU_ERR_NONE;
			goto out;
		}
		if (r == GRU_FILL_DEAD) {
			err = GRU_ERR_ABORTED;
			goto out;
		}
		if (r == GRU_FILL_BAD) {
			err = GRU_ERR_FAULT;
			goto out;
		}
		if (r == GRU_FILL_REFUSED) {
			err = GRU_ERR_PROT;
			goto out;
		}
		if (r == GRU_FILL_NOASID)
			gru_asid_settle(ctx);
		if (r == GRU_FILL_RACE) {
			gru_count_retry(ctx);
			/* let the invalidation finish before walking again */
			wait_event_timeout(gmm->inv_wq,
					   !READ_ONCE(gmm->inflight), HZ / 100);
		}
		/*
		 * GRU_FILL_MISS after a successful fault-in: reclaim or
		 * another thread changed the PTE meanwhile; fault it in again.
		 */
		cond_resched();
	}
	/* by name: the pci_dev may be gone (remove does not wait for us) */
	pr_warn_ratelimited("%s: va %llx: no stable translation after %d tries\n",
			    ctx->gdev->name, va, tries);
	err = GRU_ERR_FAULT;
out:
	/* a kworker may hold the last user: leave the teardown to others */
	mmput_async(mm);
	return err;
}

/**
 * gru_resolve() - process-context fill by the context's fill mode
 * @ctx: the context
 * @va: the missing address
 * @write: it is a write
 * @path: GRU_PATH_WORKER or GRU_PATH_CALLOS
 *
 * Return: GRU_ERR_NONE once the translation is in the device, else the
 * GRU_ERR_* to fail the instruction with.
 */
u32 gru_resolve(struct gru_ctx *ctx, u64 va, bool write, int path)
{
	if (va >= TASK_SIZE_MAX)
		return GRU_ERR_KERNEL_ADDR;
	switch (READ_ONCE(ctx->opts.fill_mode)) {
	case GRU_FILL_PINNED:
		return gru_pinned_fill(ctx, va, write);
	case GRU_FILL_HMM:
		return gru_hmm_fill(ctx, va, write);
	default:
		return gru_resolve_fault(ctx, va, write, path);
	}
}

/**
 * gru_fault_work() - the slow path for misses the IRQ walk handed over
 * @work: gru_ctx.work
 */
void gru_fault_work(struct work_struct *work)
{
	struct gru_ctx *ctx = container_of(work, struct gru_ctx, work);
	struct gru_dev *gdev = ctx->gdev;
	unsigned long flags;
	bool write, live;
	u64 va, seq;
	u32 err;

	/*
	 * The fault may sleep for as long as a userfaultfd handler or a FUSE
	 * daemon wants, and those waits are killable.  Whoever ends the
	 * stall (release, remove, reset, a preemption) does not wait for us
	 * but sends SIGKILL, which this kworker accepts (from the kernel only)
	 * while worker_task names it; the signal is gone again before the
	 * next work item.
	 */
	allow_kernel_signal(SIGKILL);
	spin_lock_irqsave(&ctx->gmm->lock, flags);
	va = ctx->pend_va;
	write = ctx->pend_info & GRU_FAULT_WRITE;
	seq = ctx->stall_seq;
	live = ctx->stalled && !ctx->dead;
	if (live)
		ctx->worker_task = current;
	spin_unlock_irqrestore(&ctx->gmm->lock, flags);

	err = live ? gru_resolve(ctx, va, write, GRU_PATH_WORKER) :
		     GRU_ERR_ABORTED;

	spin_lock_irqsave(&ctx->gmm->lock, flags);
	ctx->worker_task = NULL;
	spin_unlock_irqrestore(&ctx->gmm->lock, flags);
	/* SIG_IGN again, and with it any SIGKILL still pending dropped */
	disallow_signal(SIGKILL);

	mutex_lock(&gdev->ctx_mutex);
	if (gru_ctx_stall_current(ctx, seq)) {
		gru_ctx_end_stall(ctx);
		if (err == GRU_ERR_NONE) {
			gru_ctx_cmd(gdev, ctx->slot, GRU_CMD_RESUME, 0);
			gru_account_service(ctx, ctx->slot);
		} else {
			gru_fail(ctx, ctx->slot, err);
		}
	}
	mutex_unlock(&gdev->ctx_mutex);
	atomic_dec(&gru_live[GRU_LIVE_WORKS]);
	atomic_dec(&ctx->user->works);
	gru_ctx_put(ctx);
}
