/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Typed access to the BAR0 registers of the GRU TLB device.
 *
 * Call sites never use raw offsets: every register sequence of the device
 * (drop-in, invalidate + fence, aging, probe, per-context command) has one
 * helper here.  The multi-register sequences share one set of argument
 * registers per device, so they run under gru_dev.hw_lock.
 */
#ifndef _GRU_HW_H
#define _GRU_HW_H

#include <linux/io.h>
#include <linux/processor.h>
#include "gru_core.h"

/* The device completes an invalidation inside the MMIO write; this only
 * bounds a broken device.
 */
#define GRU_INV_POLL_LIMIT	1000000

static inline u64 gru_rd(struct gru_dev *g, u32 off)
{
	return readq(g->regs + off);
}

static inline void gru_wr(struct gru_dev *g, u32 off, u64 val)
{
	writeq(val, g->regs + off);
}

static inline u64 gru_ctx_rd(struct gru_dev *g, int slot, u32 off)
{
	return gru_rd(g, GRU_REG_CTX(slot) + off);
}

static inline void gru_ctx_wr(struct gru_dev *g, int slot, u32 off, u64 val)
{
	gru_wr(g, GRU_REG_CTX(slot) + off, val);
}

/* Any command also clears the slot's FAULT_PENDING bit. */
static inline void gru_ctx_cmd(struct gru_dev *g, int slot, u32 cmd, u32 arg)
{
	gru_ctx_wr(g, slot, GRU_CTX_CMD, GRU_CMD(cmd, arg));
}

static inline void gru_ctx_set_asid(struct gru_dev *g, int slot, u16 asid)
{
	gru_ctx_wr(g, slot, GRU_CTX_ASID,
		   asid ? (asid | GRU_CTX_ASID_VALID) : 0);
}

static inline u64 gru_fault_pending(struct gru_dev *g)
{
	return gru_rd(g, GRU_REG_FAULT_PENDING);
}

struct gru_fault_rec {
	u64 va;
	u64 info;
	u64 time;
};

static inline void gru_ctx_fault_rec(struct gru_dev *g, int slot,
				     struct gru_fault_rec *rec)
{
	rec->info = gru_ctx_rd(g, slot, GRU_CTX_FAULT_INFO);
	rec->va = gru_ctx_rd(g, slot, GRU_CTX_FAULT_VA);
	rec->time = gru_ctx_rd(g, slot, GRU_CTX_FAULT_TIME);
}

/* Kernel view of a slot's user window (instruction words live there). */
static inline void __iomem *gru_win(struct gru_dev *g, int slot)
{
	return g->win + (size_t)slot * GRU_WINDOW_SIZE;
}

/*
 * The generation a walk must carry: read it before the walk so that any
 * invalidation completing after this point is newer than the drop-in.
 * With it, the reset epoch: a generation read before a device reset means
 * nothing after it.  False if the device is gone or being reset, when
 * the BAR must not be read (process context may get here at any time).
 */
static inline bool gru_hw_inv_gen(struct gru_dev *g, u64 *gen, u64 *epoch)
{
	unsigned long flags;
	bool ok;

	spin_lock_irqsave(&g->hw_lock, flags);
	ok = !gru_hw_off(g);
	if (ok) {
		*gen = gru_rd(g, GRU_REG_INV_GEN);
		*epoch = g->hw_epoch;
	}
	spin_unlock_irqrestore(&g->hw_lock, flags);
	/* the walk's page-table loads must not pass the MMIO read */
	rmb();
	return ok;
}

/* hw_lock held. Returns GRU_DI_*. */
static inline u64 gru_hw_dropin_locked(struct gru_dev *g, u16 asid, u64 va,
				       u64 pa, u64 attr, u64 gen)
{
	lockdep_assert_held(&g->hw_lock);
	gru_wr(g, GRU_REG_DI_ASID, asid);
	gru_wr(g, GRU_REG_DI_VA, va);
	gru_wr(g, GRU_REG_DI_PA, pa);
	gru_wr(g, GRU_REG_DI_ATTR, attr);
	gru_wr(g, GRU_REG_DI_GEN, gen);
	gru_wr(g, GRU_REG_DI_CMD, GRU_DI_INSERT);
	return gru_rd(g, GRU_REG_DI_RESULT);
}

/*
 * hw_lock held, and the device known to be there (reset_done restarts it
 * before it lets anyone else at it).  Returns once the fence completed.
 */
static inline void __gru_hw_invalidate_locked(struct gru_dev *g, u32 kind,
					      u16 asid, u64 start, u64 end)
{
	unsigned int n = 0;

	lockdep_assert_held(&g->hw_lock);
	gru_wr(g, GRU_REG_INV_ASID, asid);
	gru_wr(g, GRU_REG_INV_START, start);
	gru_wr(g, GRU_REG_INV_END, end);
	gru_wr(g, GRU_REG_INV_CMD, kind);
	while (gru_rd(g, GRU_REG_INV_STATUS) & GRU_INV_STATUS_BUSY) {
		/* all ones: the device is gone, each read a bus timeout */
		if (++n == GRU_INV_POLL_LIMIT ||
		    gru_rd(g, GRU_REG_INV_STATUS) == ~0ULL) {
			dev_err_ratelimited(&g->pdev->dev,
					    "invalidate fence never completed\n");
			break;
		}
		cpu_relax();
	}
}

/* hw_lock held.  Does nothing while the device is gone or being reset. */
static inline void gru_hw_invalidate_locked(struct gru_dev *g, u32 kind,
					    u16 asid, u64 start, u64 end)
{
	if (!gru_hw_off(g))
		__gru_hw_invalidate_locked(g, kind, asid, start, end);
}

static inline void gru_hw_invalidate(struct gru_dev *g, u32 kind, u16 asid,
				     u64 start, u64 end)
{
	unsigned long flags;

	spin_lock_irqsave(&g->hw_lock, flags);
	gru_hw_invalidate_locked(g, kind, asid, start, end);
	spin_unlock_irqrestore(&g->hw_lock, flags);
}

/* Returns 1 if an entry of asid overlapping [start, end) was accessed. */
static inline int gru_hw_age(struct gru_dev *g, u32 cmd, u16 asid,
			     u64 start, u64 end)
{
	unsigned long flags;
	u64 res = 0;

	spin_lock_irqsave(&g->hw_lock, flags);
	if (!gru_hw_off(g)) {
		gru_wr(g, GRU_REG_AGE_ASID, asid);
		gru_wr(g, GRU_REG_AGE_START, start);
		gru_wr(g, GRU_REG_AGE_END, end);
		gru_wr(g, GRU_REG_AGE_CMD, cmd);
		res = gru_rd(g, GRU_REG_AGE_RESULT);
	}
	spin_unlock_irqrestore(&g->hw_lock, flags);
	return res ? 1 : 0;
}

static inline u64 gru_hw_probe(struct gru_dev *g, u16 asid, u64 va, u64 *pa)
{
	unsigned long flags;
	u64 res;

	*pa = 0;
	spin_lock_irqsave(&g->hw_lock, flags);
	if (gru_hw_off(g)) {
		spin_unlock_irqrestore(&g->hw_lock, flags);
		return 0;
	}
	gru_wr(g, GRU_REG_PROBE_ASID, asid);
	gru_wr(g, GRU_REG_PROBE_VA, va);
	gru_wr(g, GRU_REG_PROBE_CMD, 1);
	res = gru_rd(g, GRU_REG_PROBE_RESULT);
	*pa = gru_rd(g, GRU_REG_PROBE_PA);
	spin_unlock_irqrestore(&g->hw_lock, flags);
	return res;
}

#endif /* _GRU_HW_H */
