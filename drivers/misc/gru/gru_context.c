// SPDX-License-Identifier: GPL-2.0
/*
 * Hardware context slots: load, unload, steal; ASIDs with generations.
 *
 * Everything here runs under gru_dev.ctx_mutex.  More files may be open
 * than the device has contexts: a context without a slot has its window
 * state in gru_ctx.saved and no window PTE, so its next access to the
 * window faults (gru_file.c) and loads it, stealing an idle slot if needed.
 */
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/delay.h>
#include <linux/sched/signal.h>
#include "gru_core.h"
#include "gru_hw.h"

/**
 * gru_asid_current() - whether the mm's ASID belongs to this generation
 * @gdev: the device
 * @gmm: the mm state, lock held
 *
 * An ASID of an older generation may have been handed to another mm; all
 * its entries were removed by the wrap's GRU_INV_ALL.
 *
 * Return: true if @gmm has an ASID of the current generation.
 */
bool gru_asid_current(struct gru_dev *gdev, struct gru_mm *gmm)
{
	return gmm->asid && gmm->asid_gen == READ_ONCE(gdev->asid_gen);
}

/**
 * gru_asid_settle() - wait for an ASID wrap in progress to finish
 * @ctx: a loaded context whose fill may have found its mm's ASID not current
 *
 * A wrap retires every loaded slot's ASID at once and then hands out new
 * ones under ctx_mutex, one mm at a time.  A fill of a loaded context
 * that lands in between can only wait for the wrap; spinning on it would
 * use up the retries of the slow path and fail the instruction.  Takes
 * ctx_mutex: the caller holds no mmap_lock and no spinlock.
 */
void gru_asid_settle(struct gru_ctx *ctx)
{
	struct gru_mm *gmm = ctx->gmm;
	unsigned long flags;
	bool current_asid;

	spin_lock_irqsave(&gmm->lock, flags);
	current_asid = gru_asid_current(ctx->gdev, gmm);
	spin_unlock_irqrestore(&gmm->lock, flags);
	/* the device-wide mutex only when there is a wrap to wait for */
	if (current_asid)
		return;
	mutex_lock(&ctx->gdev->ctx_mutex);
	mutex_unlock(&ctx->gdev->ctx_mutex);
}

/* Give @gmm a fresh ASID; ctx_mutex held, hw_lock not held. */
static void gru_asid_assign(struct gru_dev *gdev, struct gru_mm *gmm)
{
	unsigned long flags;
	u16 asid = gdev->next_asid++;
	int i;

	/*
	 * Slots first: until the ASID is published below, fills of this mm
	 * wait (GRU_FILL_NOASID) rather than install entries that a slot
	 * still on the quarantine ASID would miss again.
	 */
	for (i = 0; i < gdev->nctx; i++) {
		struct gru_ctx *c = gdev->slots[i];

		if (c && c->gmm == gmm)
			gru_ctx_set_asid(gdev, i, asid);
	}

	spin_lock_irqsave(&gmm->lock, flags);
	gmm->asid = asid;
	gmm->asid_gen = gdev->asid_gen;
	/* a fill that sampled the old ASID must redo its walk */
	gmm->seq++;
	spin_unlock_irqrestore(&gmm->lock, flags);
}

/*
 * Out of ASIDs: start a new generation.  In one hw_lock section, every
 * old-generation entry is flushed, every loaded slot loses its ASID, and
 * only then does the generation move on.  The notifiers decide whether an
 * mm has entries to invalidate from the generation alone, under
 * gru_mm.lock: once they see the new one, the flush has completed (the
 * MMIO read that ends the fence precedes the store, and x86 keeps that
 * order), so none of their invalidations can be skipped while an old entry
 * is still in the device.  From then on no slot translates with an old
 * number, so handing the numbers out again below (or to the next mm
 * loaded) cannot make one mm's slot use another mm's entries.  A slot
 * whose instruction is running misses on GRU_ASID_QUARANTINE, and its
 * fill waits for the new ASID, here for every loaded mm, or when it is
 * next loaded.
 */
static void gru_asid_wrap(struct gru_dev *gdev)
{
	unsigned int delay = min_t(unsigned int, gru_wrap_delay_us(),
				   GRU_WRAP_DELAY_MAX_US);
	unsigned int slept = 0;
	unsigned long flags;
	int i;

	spin_lock_irqsave(&gdev->hw_lock, flags);
	/* test only: hold the section as a preempted vCPU would */
	if (unlikely(delay))
		udelay(min_t(unsigned int, delay, GRU_WRAP_SPIN_MAX_US));
	gru_hw_invalidate_locked(gdev, GRU_INV_ALL, 0, 0, 0);
	if (!gru_hw_off(gdev))
		for (i = 0; i < gdev->nctx; i++)
			if (gdev->slots[i])
				gru_ctx_set_asid(gdev, i, GRU_ASID_QUARANTINE);
	gdev->next_asid = 1;
	WRITE_ONCE(gdev->asid_gen, gdev->asid_gen + 1);
	spin_unlock_irqrestore(&gdev->hw_lock, flags);
	GRU_DSTAT(gdev, INV_ALL);
	GRU_DSTAT(gdev, ASID_WRAPS);

	for (i = 0; i < gdev->nctx; i++) {
		struct gru_ctx *c = gdev->slots[i];

		if (!c || gru_asid_current(gdev, c->gmm))
			continue;
		gru_asid_assign(gdev, c->gmm);
		/* test only: widen the window between reassignments */
		if (unlikely(delay) && slept < GRU_WRAP_DELAY_MAX_US) {
			usleep_range(delay, delay + delay / 4 + 1);
			slept += delay;
		}
	}
}

static u16 gru_asid_get(struct gru_dev *gdev, struct gru_mm *gmm)
{
	lockdep_assert_held(&gdev->ctx_mutex);
	if (gru_asid_current(gdev, gmm))
		return gmm->asid;
	if (gdev->next_asid > gdev->max_asid)
		gru_asid_wrap(gdev);
	/* the wrap may already have given gmm one, if it was loaded */
	if (!gru_asid_current(gdev, gmm))
		gru_asid_assign(gdev, gmm);
	return gmm->asid;
}

/**
 * gru_ctx_end_stall() - the context's stall is answered or abandoned
 * @ctx: the context; ctx_mutex held
 *
 * Any answer still being computed for it (a worker, a GRU_IOC_CALL_OS)
 * will find the stall number moved on and drop its result.
 */
void gru_ctx_end_stall(struct gru_ctx *ctx)
{
	struct gru_mm *gmm = ctx->gmm;
	unsigned long flags;

	lockdep_assert_held(&ctx->gdev->ctx_mutex);
	spin_lock_irqsave(&gmm->lock, flags);
	if (ctx->stalled)
		ctx->stall_total += jiffies - ctx->stall_start;
	ctx->stall_seq++;
	ctx->stalled = false;
	WRITE_ONCE(ctx->callos_pending, false);
	/*
	 * A worker still faulting for the stall may sleep for as long as a
	 * userfaultfd handler or a FUSE daemon wants: nobody needs its
	 * answer now, so wake it with SIGKILL (it allows only that signal,
	 * and only while it sits between the two updates of worker_task,
	 * which are made under this lock).
	 */
	if (ctx->worker_task)
		send_sig(SIGKILL, ctx->worker_task, 1);
	spin_unlock_irqrestore(&gmm->lock, flags);
}

/**
 * gru_ctx_stall_current() - may an answer computed for stall @seq land?
 * @ctx: the context; ctx_mutex held
 * @seq: gru_ctx.stall_seq when the answer started
 *
 * Only the fault interrupt opens a stall, and only on a stalled slot's
 * answer, a steal, an abort or an unload (all under ctx_mutex) can the
 * next one open, so under ctx_mutex a matching number means the slot
 * still waits for exactly this answer.
 *
 * Return: true if the context is loaded and still in stall @seq.
 */
bool gru_ctx_stall_current(struct gru_ctx *ctx, u64 seq)
{
	struct gru_mm *gmm = ctx->gmm;
	unsigned long flags;
	bool cur;

	lockdep_assert_held(&ctx->gdev->ctx_mutex);
	if (ctx->slot < 0 || gru_hw_off(ctx->gdev))
		return false;
	spin_lock_irqsave(&gmm->lock, flags);
	cur = ctx->stalled && ctx->stall_seq == seq;
	spin_unlock_irqrestore(&gmm->lock, flags);
	return cur;
}

/**
 * gru_ctx_zap() - stop user space from touching the window
 * @ctx: the context; its next window access faults (and waits for
 *	ctx_mutex, if the caller holds it)
 */
void gru_ctx_zap(struct gru_ctx *ctx)
{
	unmap_mapping_range(&ctx->mapping, 0, GRU_WINDOW_SIZE, 1);
}

/**
 * gru_ctx_status() - the window status of a context, loaded or not
 * @ctx: the context; ctx_mutex held
 *
 * Return: GRU_ST_*.
 */
u64 gru_ctx_status(struct gru_ctx *ctx)
{
	if (ctx->slot < 0)
		return ctx->saved.status;
	return gru_ctx_rd(ctx->gdev, ctx->slot, GRU_CTX_STATUS);
}

/**
 * gru_ctx_unload() - take a context off its hardware slot
 * @ctx: the context; ctx_mutex held
 * @save: keep the window state for a later reload (steal); false when
 *	the context is going away
 *
 * The caller has made sure no instruction runs (a steal picks only idle
 * contexts; release aborts first).
 */
void gru_ctx_unload(struct gru_ctx *ctx, bool save)
{
	struct gru_dev *gdev = ctx->gdev;
	void __iomem *win;
	int slot = ctx->slot;
	int i;

	lockdep_assert_held(&gdev->ctx_mutex);
	if (slot < 0)
		return;
	gru_ctx_zap(ctx);
	if (save && !gru_hw_off(gdev)) {
		win = gru_win(gdev, slot);
		for (i = 0; i < GRU_SAVED_WORDS; i++)
			ctx->saved.words[i] = readq(win + 8 * i);
		ctx->saved.status = gru_ctx_rd(gdev, slot, GRU_CTX_STATUS);
		ctx->saved.error = gru_ctx_rd(gdev, slot, GRU_CTX_ERROR);
		ctx->saved.result = gru_ctx_rd(gdev, slot, GRU_CTX_RESULT);
		ctx->saved.exc_va = gru_ctx_rd(gdev, slot, GRU_CTX_EXC_VA);
		ctx->saved.exc_info = gru_ctx_rd(gdev, slot, GRU_CTX_EXC_INFO);
	}
	if (!gru_hw_off(gdev)) {
		gru_ctx_cmd(gdev, slot, GRU_CMD_RESET, 0);
		gru_ctx_set_asid(gdev, slot, 0);
	}
	WRITE_ONCE(gdev->slots[slot], NULL);
	/* no fault handler may still look at this slot's old owner */
	gru_sync_fault_irqs(gdev);
	WRITE_ONCE(ctx->slot, -1);
	/*
	 * A context never waits unloaded: one that stalled (or was started
	 * by a doorbell) after its caller's abort comes back failed, and
	 * nothing answers the stall.
	 */
	if (ctx->saved.status == GRU_ST_BUSY ||
	    ctx->saved.status == GRU_ST_CALLOS) {
		ctx->saved.status = GRU_ST_ERROR;
		ctx->saved.error = GRU_ERR_ABORTED;
	}
	gru_ctx_end_stall(ctx);
}

/* An idle context is one with no instruction running or stalled. */
static bool gru_slot_idle(struct gru_dev *gdev, int slot)
{
	u64 st = gru_ctx_rd(gdev, slot, GRU_CTX_STATUS);

	if (st == GRU_ST_BUSY || st == GRU_ST_CALLOS)
		return false;
	if (gru_fault_pending(gdev) & BIT_ULL(slot))
		return false;
	return !test_bit(slot, &gdev->claimed);
}

/*
 * A context whose instruction has waited on the OS for longer than
 * GRU_STALL_PREEMPT_MS: its user does not call GRU_IOC_CALL_OS, or the
 * worker sleeps in a fault nobody completes.  No fault handler holds the
 * slot (the stall began after its claim), and the device does nothing for
 * a stalled slot until it is answered.
 */
static bool gru_slot_stalled_long(struct gru_dev *gdev, int slot)
{
	struct gru_ctx *c = gdev->slots[slot];
	unsigned long flags;
	bool stalled;

	if (test_bit(slot, &gdev->claimed))
		return false;
	/*
	 * All the time stalled since the load counts, not the age of the
	 * current stall: a user answering each stall of a long instruction
	 * just before a limit would otherwise keep its slot for as long as
	 * the instruction runs.  Not the time loaded either: a context whose
	 * misses the worker answers in microseconds (they round to no
	 * jiffy) would then lose its instruction at its next miss.
	 */
	spin_lock_irqsave(&c->gmm->lock, flags);
	stalled = c->stalled &&
		  c->stall_total + (jiffies - c->stall_start) >
		  msecs_to_jiffies(GRU_STALL_PREEMPT_MS);
	spin_unlock_irqrestore(&c->gmm->lock, flags);
	return stalled;
}

static int gru_find_slot(struct gru_dev *gdev)
{
	struct gru_ctx *victim;
	int i, n;

	for (i = 0; i < gdev->nctx; i++)
		if (!gdev->slots[i])
			return i;

	for (n = 0; n < gdev->nctx; n++) {
		i = gdev->steal_hand;
		gdev->steal_hand = (gdev->steal_hand + 1) % gdev->nctx;
		victim = gdev->slots[i];
		/*
		 * Zap, then check: once the window PTE is gone the owner
		 * cannot ring the doorbell, so an idle slot stays idle.  A
		 * slot busy already is left alone, window and all: waiters
		 * poll, and zapping every busy owner at each poll would make
		 * them all refault for nothing.
		 */
		if (!gru_slot_idle(gdev, i))
			continue;
		gru_ctx_zap(victim);
		if (!gru_slot_idle(gdev, i))
			continue;
		gru_ctx_unload(victim, true);
		GRU_CSTAT(victim, STEALS);
		GRU_DSTAT(gdev, STEALS);
		return i;
	}

	/*
	 * Every slot runs or waits.  Running instructions end by themselves
	 * (the device bounds their length), but a stall lasts as long as its
	 * user or a fault wants: past GRU_STALL_PREEMPT_MS it gives way, and
	 * its instruction fails with GRU_ERR_PREEMPTED, which the user can
	 * reissue.  A stalled slot drops doorbells (BUSY or CALLOS), so the
	 * FAIL below cannot race a new instruction; the unload zaps the
	 * window before anything else could be issued.
	 */
	for (n = 0; n < gdev->nctx; n++) {
		i = gdev->steal_hand;
		gdev->steal_hand = (gdev->steal_hand + 1) % gdev->nctx;
		victim = gdev->slots[i];
		if (!gru_slot_stalled_long(gdev, i))
			continue;
		gru_ctx_end_stall(victim);
		gru_ctx_cmd(gdev, i, GRU_CMD_FAIL, GRU_ERR_PREEMPTED);
		gru_ctx_unload(victim, true);
		/* whatever error code this device model knows */
		victim->saved.status = GRU_ST_ERROR;
		victim->saved.error = GRU_ERR_PREEMPTED;
		GRU_CSTAT(victim, PREEMPTED);
		GRU_CSTAT(victim, STEALS);
		GRU_DSTAT(gdev, PREEMPTS);
		GRU_DSTAT(gdev, STEALS);
		return i;
	}
	return -EBUSY;
}

/**
 * gru_ctx_load() - give a context a hardware slot
 * @ctx: the context; ctx_mutex held
 *
 * Return: 0, -EBUSY if every slot runs an instruction, -ENODEV.
 */
int gru_ctx_load(struct gru_ctx *ctx)
{
	struct gru_dev *gdev = ctx->gdev;
	void __iomem *win;
	u16 asid;
	int slot, i;

	lockdep_assert_held(&gdev->ctx_mutex);
	if (gdev->gone)
		return -ENODEV;
	/* a function reset: retry once it is done */
	if (gdev->resetting)
		return -EBUSY;
	if (ctx->slot >= 0)
		return 0;
	slot = gru_find_slot(gdev);
	if (slot < 0)
		return slot;

	gru_ctx_cmd(gdev, slot, GRU_CMD_RESET, 0);
	win = gru_win(gdev, slot);
	for (i = 0; i < GRU_SAVED_WORDS; i++)
		writeq(ctx->saved.words[i], win + 8 * i);
	gru_ctx_wr(gdev, slot, GRU_CTX_STATUS, ctx->saved.status);
	gru_ctx_wr(gdev, slot, GRU_CTX_ERROR, ctx->saved.error);
	gru_ctx_wr(gdev, slot, GRU_CTX_RESULT, ctx->saved.result);
	gru_ctx_wr(gdev, slot, GRU_CTX_EXC_VA, ctx->saved.exc_va);
	gru_ctx_wr(gdev, slot, GRU_CTX_EXC_INFO, ctx->saved.exc_info);
	gru_ctx_wr(gdev, slot, GRU_CTX_VECTOR,
		   GRU_VEC_FAULT0 + slot % (gdev->nvec - GRU_VEC_FAULT0));

	/*
	 * An unloaded context has no stall: its saved status is never
	 * CALLOS, and nothing answers an old one after this.
	 */
	gru_ctx_end_stall(ctx);
	ctx->stall_total = 0;
	WRITE_ONCE(gdev->slots[slot], ctx);
	WRITE_ONCE(ctx->slot, slot);
	asid = gru_asid_get(gdev, ctx->gmm);
	gru_ctx_set_asid(gdev, slot, asid);
	GRU_CSTAT(ctx, LOADS);
	GRU_DSTAT(gdev, LOADS);
	return 0;
}

/**
 * gru_ctx_abort() - fail whatever the context runs (status ERROR/ABORTED)
 * @ctx: the context; ctx_mutex held
 */
void gru_ctx_abort(struct gru_ctx *ctx)
{
	struct gru_dev *gdev = ctx->gdev;

	lockdep_assert_held(&gdev->ctx_mutex);
	if (ctx->slot >= 0 && !gru_hw_off(gdev)) {
		gru_ctx_cmd(gdev, ctx->slot, GRU_CMD_ABORT, 0);
		/*
		 * A handler that read the slot's miss before the abort may
		 * still be handing it over, which opens a stall: let it
		 * finish, so that the stall ended last is the last one.
		 */
		gru_sync_fault_irqs(gdev);
	} else if (ctx->saved.status == GRU_ST_BUSY ||
		   ctx->saved.status == GRU_ST_CALLOS) {
		ctx->saved.status = GRU_ST_ERROR;
		ctx->saved.error = GRU_ERR_ABORTED;
	}
	gru_ctx_end_stall(ctx);
}
