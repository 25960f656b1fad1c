// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/gru: each open() is a software context bound to the opener's mm.
 * mmap gives the context's window; its PTE exists only while the context
 * owns a hardware slot (see gru_context.c), so the .fault handler is where
 * stolen contexts come back.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include "gru_core.h"
#include "gru_hw.h"
#include "gru_compat.h"

/* Poll period of GRU_IOC_WAIT: a lost completion IRQ cannot hang it. */
#define GRU_WAIT_POLL		(HZ / 100 ? HZ / 100 : 1)

static vm_fault_t gru_vm_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct gru_ctx *ctx = vma->vm_private_data;
	struct gru_dev *gdev = ctx->gdev;
	vm_fault_t ret;
	int err;

	mutex_lock(&gdev->ctx_mutex);
	if (gdev->gone || READ_ONCE(ctx->dead)) {
		mutex_unlock(&gdev->ctx_mutex);
		return VM_FAULT_SIGBUS;
	}
	err = gru_ctx_load(ctx);
	if (err == -EBUSY) {
		/*
		 * Every slot runs an instruction, or has waited on the OS for
		 * less than GRU_STALL_PREEMPT_MS.  Slots free up without our
		 * help: retry the access later rather than fail it.  Going
		 * back to user space between tries keeps the wait killable.
		 */
		mutex_unlock(&gdev->ctx_mutex);
		schedule_timeout_killable(1);
		return VM_FAULT_NOPAGE;
	}
	if (err) {
		mutex_unlock(&gdev->ctx_mutex);
		return VM_FAULT_SIGBUS;
	}
	ret = vmf_insert_pfn(vma, vma->vm_start,
			     PHYS_PFN(gdev->win_phys) + ctx->slot);
	mutex_unlock(&gdev->ctx_mutex);
	return ret;
}

static void gru_vm_close(struct vm_area_struct *vma)
{
	struct gru_ctx *ctx = vma->vm_private_data;

	mutex_lock(&ctx->gdev->ctx_mutex);
	ctx->mapped = false;
	mutex_unlock(&ctx->gdev->ctx_mutex);
}

/* The window is one page at a fixed slot: moving or splitting it is wrong. */
static int gru_vm_mremap(struct vm_area_struct *vma)
{
	return -EINVAL;
}

static int gru_vm_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct gru_vm_ops = {
	.fault		= gru_vm_fault,
	.close		= gru_vm_close,
	.mremap		= gru_vm_mremap,
	.may_split	= gru_vm_may_split,
};

static int gru_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct gru_ctx *ctx = file->private_data;
	struct gru_dev *gdev = ctx->gdev;

	if (vma->vm_pgoff || vma->vm_end - vma->vm_start != GRU_WINDOW_SIZE)
		return -EINVAL;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	/* the window translates in the opener's mm, nobody else's */
	if (vma->vm_mm != ctx->mm)
		return -EPERM;

	mutex_lock(&gdev->ctx_mutex);
	if (gdev->gone) {
		mutex_unlock(&gdev->ctx_mutex);
		return -ENODEV;
	}
	if (ctx->mapped) {
		mutex_unlock(&gdev->ctx_mutex);
		return -EBUSY;
	}
	ctx->mapped = true;
	mutex_unlock(&gdev->ctx_mutex);

	gru_vm_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTCOPY |
			 VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_ops = &gru_vm_ops;
	vma->vm_private_data = ctx;
	return 0;
}

static int gru_open(struct inode *inode, struct file *file)
{
	struct miscdevice *misc = file->private_data;
	struct gru_dev *gdev = container_of(misc, struct gru_dev, misc);
	struct gru_mm *gmm;
	struct gru_ctx *ctx;
	int ret;

	if (!current->mm)
		return -EINVAL;
	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);
	if (!ctx)
		return -ENOMEM;
	ctx->gdev = gdev;
	ctx->slot = -1;
	ctx->mm = current->mm;
	ctx->user = gru_user_get();
	if (!ctx->user) {
		kfree(ctx);
		return -ENOMEM;
	}
	kref_init(&ctx->ref);
	mutex_init(&ctx->mni_lock);
	INIT_WORK(&ctx->work, gru_fault_work);
	address_space_init_once(&ctx->mapping);
	ctx->mapping.host = inode;

	gmm = gru_mm_get(gdev, current->mm);
	if (IS_ERR(gmm)) {
		ret = PTR_ERR(gmm);
		goto err_free;
	}
	ctx->gmm = gmm;

	mutex_lock(&gdev->ctx_mutex);
	if (gdev->gone) {
		mutex_unlock(&gdev->ctx_mutex);
		ret = -ENODEV;
		goto err_put;
	}
	kref_get(&gdev->ref);
	mmgrab(ctx->mm);
	/* a fault work item may outlive the file: it holds the module too */
	__module_get(THIS_MODULE);
	atomic_inc(&gru_live[GRU_LIVE_CTXS]);
	ctx->id = gdev->next_id++;
	list_add_tail(&ctx->mm_node, &gmm->ctxs);
	list_add_tail(&ctx->dev_node, &gdev->ctxs);
	mutex_unlock(&gdev->ctx_mutex);

	/* this context's VMAs link into its own mapping, for the steal zap */
	file->f_mapping = &ctx->mapping;
	file->private_data = ctx;
	return nonseekable_open(inode, file);

err_put:
	gru_mm_put(gmm);
err_free:
	gru_user_put(ctx->user);
	kfree(ctx);
	return ret;
}

static void gru_ctx_free(struct kref *ref)
{
	struct gru_ctx *ctx = container_of(ref, struct gru_ctx, ref);
	struct gru_dev *gdev = ctx->gdev;

	gru_hmm_disable(ctx);
	gru_mm_put(ctx->gmm);
	mmdrop(ctx->mm);
	gru_user_put(ctx->user);
	kfree(ctx);
	atomic_dec(&gru_live[GRU_LIVE_CTXS]);
	gru_dev_put(gdev);
	/* a work item returning after this is waited for by module exit */
	module_put(THIS_MODULE);
}

/**
 * gru_ctx_put() - drop a reference on a context
 * @ctx: the context; freed with the last reference (may sleep then)
 */
void gru_ctx_put(struct gru_ctx *ctx)
{
	kref_put(&ctx->ref, gru_ctx_free);
}

static int gru_release(struct inode *inode, struct file *file)
{
	struct gru_ctx *ctx = file->private_data;
	struct gru_dev *gdev = ctx->gdev;
	struct gru_mm *gmm = ctx->gmm;
	unsigned long flags;
	u16 asid = 0;

	mutex_lock(&gdev->ctx_mutex);
	spin_lock_irqsave(&gmm->lock, flags);
	ctx->dead = true;
	spin_unlock_irqrestore(&gmm->lock, flags);
	gru_ctx_abort(ctx);
	gru_ctx_unload(ctx, false);
	list_del(&ctx->mm_node);
	list_del(&ctx->dev_node);
	if (list_empty(&gmm->ctxs)) {
		/* nothing uses the ASID any more: leave no entry behind */
		spin_lock_irqsave(&gmm->lock, flags);
		if (gru_asid_current(gdev, gmm))
			asid = gmm->asid;
		spin_unlock_irqrestore(&gmm->lock, flags);
	}
	mutex_unlock(&gdev->ctx_mutex);

	if (asid) {
		gru_hw_invalidate(gdev, GRU_INV_ASID, asid, 0, 0);
		GRU_DSTAT(gdev, INV_ASID);
	}
	/*
	 * A queued work item is dropped with its reference.  A running one
	 * is not waited for: it may sleep in a fault that completes only
	 * when this process has closed its other files (a userfaultfd), so
	 * waiting here could hang exit.  It drops its reference when done.
	 */
	if (cancel_work(&ctx->work)) {
		atomic_dec(&gru_live[GRU_LIVE_WORKS]);
		atomic_dec(&ctx->user->works);
		gru_ctx_put(ctx);
	}
	gru_ctx_put(ctx);
	return 0;
}

static int gru_ioc_info(struct gru_ctx *ctx, void __user *arg)
{
	struct gru_dev *gdev = ctx->gdev;
	struct gru_info info = {
		.version	= gdev->version,
		.hw_contexts	= gdev->nctx,
		.tlb_sets	= gdev->sets,
		.tlb_ways	= gdev->ways,
		.vectors	= gdev->nvec,
		.window_size	= GRU_WINDOW_SIZE,
		.max_len	= GRU_INSN_MAX_LEN,
		.va_limit	= GRU_VA_LIMIT,
	};
	unsigned long flags;

	mutex_lock(&gdev->ctx_mutex);
	spin_lock_irqsave(&ctx->gmm->lock, flags);
	if (ctx->slot >= 0 && gru_asid_current(gdev, ctx->gmm))
		info.asid = ctx->gmm->asid;
	spin_unlock_irqrestore(&ctx->gmm->lock, flags);
	mutex_unlock(&gdev->ctx_mutex);
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static bool gru_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

static int gru_ioc_set_opts(struct gru_ctx *ctx, void __user *arg)
{
	struct gru_ctx_opts o;
	int ret;

	if (copy_from_user(&o, arg, sizeof(o)))
		return -EFAULT;
	if (!gru_zero(o.reserved, sizeof(o.reserved)) ||
	    (o.flags & ~GRU_OPT_VALID_MASK) || o.fill_mode > GRU_FILL_MAX ||
	    o.batch > GRU_BATCH_MAX)
		return -EINVAL;
	if (!gru_debug_opts_ok(o.flags, o.fill_mode))
		return -EOPNOTSUPP;
	if (o.fill_mode == GRU_FILL_HMM) {
		ret = gru_hmm_enable(ctx);
		if (ret)
			return ret;
	}

	mutex_lock(&ctx->gdev->ctx_mutex);
	WRITE_ONCE(ctx->opts.flags, o.flags);
	WRITE_ONCE(ctx->opts.fill_mode, o.fill_mode);
	WRITE_ONCE(ctx->opts.batch, o.batch);
	mutex_unlock(&ctx->gdev->ctx_mutex);
	return 0;
}

static int gru_ioc_get_opts(struct gru_ctx *ctx, void __user *arg)
{
	struct gru_ctx_opts o = {
		.flags		= READ_ONCE(ctx->opts.flags),
		.fill_mode	= READ_ONCE(ctx->opts.fill_mode),
		.batch		= READ_ONCE(ctx->opts.batch),
	};

	return copy_to_user(arg, &o, sizeof(o)) ? -EFAULT : 0;
}

/*
 * Resolve the miss of a context in GRU_ST_CALLOS from the caller's own
 * context.  A resolution failure fails the instruction (status ERROR with
 * the precise GRU_ERR_*) and the ioctl still succeeds: the window says
 * what happened.
 */
static int gru_ioc_call_os(struct gru_ctx *ctx, void __user *arg)
{
	struct gru_dev *gdev = ctx->gdev;
	struct gru_call_os out = {};
	unsigned long flags;
	bool write;
	u64 va, seq;
	u32 err;

	mutex_lock(&gdev->ctx_mutex);
	if (gdev->gone) {
		mutex_unlock(&gdev->ctx_mutex);
		return -ENODEV;
	}
	if (ctx->slot < 0 || !READ_ONCE(ctx->callos_pending) ||
	    gru_ctx_status(ctx) != GRU_ST_CALLOS) {
		mutex_unlock(&gdev->ctx_mutex);
		return -EINVAL;
	}
	spin_lock_irqsave(&ctx->gmm->lock, flags);
	va = ctx->pend_va;
	write = ctx->pend_info & GRU_FAULT_WRITE;
	seq = ctx->stall_seq;
	spin_unlock_irqrestore(&ctx->gmm->lock, flags);
	mutex_unlock(&gdev->ctx_mutex);

	err = gru_resolve(ctx, va, write, GRU_PATH_CALLOS);

	mutex_lock(&gdev->ctx_mutex);
	/*
	 * An abort, a preemption or another caller may have ended this stall
	 * meanwhile, and the instruction may stall again at another address:
	 * answer only the stall this result is for.
	 */
	if (gru_ctx_stall_current(ctx, seq)) {
		gru_ctx_end_stall(ctx);
		if (err == GRU_ERR_NONE) {
			gru_ctx_cmd(gdev, ctx->slot, GRU_CMD_RESUME, 0);
		} else {
			gru_ctx_cmd(gdev, ctx->slot, GRU_CMD_FAIL, err);
			GRU_CSTAT(ctx, ERRORS);
			GRU_DSTAT(gdev, ERRORS);
		}
	}
	mutex_unlock(&gdev->ctx_mutex);

	out.va = va;
	out.write = write;
	return copy_to_user(arg, &out, sizeof(out)) ? -EFAULT : 0;
}

static int gru_ioc_stats(struct gru_ctx *ctx, void __user *arg)
{
	struct gru_ctx_stats st = {};

#define GRU_GET(f, s)	(st.f = atomic64_read(&ctx->stat[GRU_CS_##s]))
	GRU_GET(faults, FAULTS);
	GRU_GET(fill_irq, FILL_IRQ);
	GRU_GET(fill_worker, FILL_WORKER);
	GRU_GET(fill_callos, FILL_CALLOS);
	GRU_GET(fill_hmm, FILL_HMM);
	GRU_GET(fill_pinned, FILL_PINNED);
	GRU_GET(fill_null, FILL_NULL);
	GRU_GET(fill_batch, FILL_BATCH);
	GRU_GET(retries, RETRIES);
	GRU_GET(ignored, IGNORED);
	GRU_GET(steals, STEALS);
	GRU_GET(loads, LOADS);
	GRU_GET(errors, ERRORS);
	GRU_GET(defer_cpumask, DEFER_CPUMASK);
	GRU_GET(defer_walk, DEFER_WALK);
	GRU_GET(defer_race, DEFER_RACE);
	GRU_GET(preempted, PREEMPTED);
#undef GRU_GET
	st.invalidations = atomic64_read(&ctx->gmm->invalidations);
	st.last_service_ns = READ_ONCE(ctx->last_service_ns);
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

static int gru_ioc_tlb_probe(struct gru_ctx *ctx, void __user *arg)
{
	static const u32 shift[] = {
		[GRU_ATTR_SIZE_4K] = 12, [GRU_ATTR_SIZE_2M] = 21,
		[GRU_ATTR_SIZE_1G] = 30, [3] = 0,
	};
	struct gru_dev *gdev = ctx->gdev;
	struct gru_tlb_probe p;
	unsigned long flags;
	u64 res, attr, pa;
	u16 asid = 0;

	if (copy_from_user(&p, arg, sizeof(p)))
		return -EFAULT;
	if (!gru_zero(p.reserved, sizeof(p.reserved)))
		return -EINVAL;
	p.hit = 0;
	p.size_shift = 0;
	p.writable = 0;
	p.accessed = 0;

	mutex_lock(&gdev->ctx_mutex);
	spin_lock_irqsave(&ctx->gmm->lock, flags);
	if (gru_asid_current(gdev, ctx->gmm))
		asid = ctx->gmm->asid;
	spin_unlock_irqrestore(&ctx->gmm->lock, flags);
	if (asid) {
		res = gru_hw_probe(gdev, asid, p.va, &pa);
		if (res & GRU_PROBE_HIT) {
			attr = res >> GRU_PROBE_ATTR_SHIFT;
			p.hit = 1;
			p.size_shift = shift[attr & GRU_ATTR_SIZE_MASK];
			p.writable = !!(attr & GRU_ATTR_WRITE);
			p.accessed = !!(res & GRU_PROBE_ACCESSED);
		}
	}
	mutex_unlock(&gdev->ctx_mutex);
	return copy_to_user(arg, &p, sizeof(p)) ? -EFAULT : 0;
}

/* The wake-up condition never touches the device: it may be gone. */
static bool gru_wait_woken(struct gru_dev *gdev, int seen)
{
	return atomic_read(&gdev->done_events) != seen || READ_ONCE(gdev->gone);
}

static int gru_ioc_wait(struct gru_ctx *ctx, void __user *arg)
{
	struct gru_dev *gdev = ctx->gdev;
	unsigned long deadline;
	struct gru_wait w;
	long left, rc;
	int seen;
	u64 st;

	if (copy_from_user(&w, arg, sizeof(w)))
		return -EFAULT;
	if (!gru_zero(w.reserved, sizeof(w.reserved)))
		return -EINVAL;
	deadline = jiffies + msecs_to_jiffies(w.timeout_ms);
	for (;;) {
		/*
		 * Sample the completion count before reading the status, so a
		 * completion in between ends the sleep below at once.
		 */
		seen = atomic_read(&gdev->done_events);
		mutex_lock(&gdev->ctx_mutex);
		if (gdev->gone) {
			mutex_unlock(&gdev->ctx_mutex);
			return -ENODEV;
		}
		st = gru_ctx_status(ctx);
		mutex_unlock(&gdev->ctx_mutex);
		if (st != GRU_ST_BUSY || !w.timeout_ms)
			break;
		left = (long)(deadline - jiffies);
		if (left <= 0)
			break;
		left = min_t(long, left, GRU_WAIT_POLL);
		rc = wait_event_interruptible_timeout(gdev->done_wq,
						      gru_wait_woken(gdev, seen),
						      left);
		if (rc < 0)
			return rc;
	}
	w.status = st;
	if (copy_to_user(arg, &w, sizeof(w)))
		return -EFAULT;
	return (st == GRU_ST_BUSY && w.timeout_ms) ? -ETIMEDOUT : 0;
}

static long gru_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct gru_ctx *ctx = file->private_data;
	void __user *uarg = (void __user *)arg;

	/*
	 * A context is its opener's: another process that holds the file
	 * (a child, or one it was passed to) may neither steer it nor learn
	 * its ASID, its state or which of the owner's addresses the device
	 * has touched.  It can only close it.
	 */
	if (current->mm != ctx->mm)
		return -EPERM;
	/* unplugged: the file stays usable for close() and nothing else */
	if (READ_ONCE(ctx->gdev->gone))
		return -ENODEV;

	switch (cmd) {
	case GRU_IOC_INFO:
		return gru_ioc_info(ctx, uarg);
	case GRU_IOC_SET_OPTS:
		return gru_ioc_set_opts(ctx, uarg);
	case GRU_IOC_GET_OPTS:
		return gru_ioc_get_opts(ctx, uarg);
	case GRU_IOC_CALL_OS:
		return gru_ioc_call_os(ctx, uarg);
	case GRU_IOC_STATS:
		return gru_ioc_stats(ctx, uarg);
	case GRU_IOC_TLB_PROBE:
		return gru_ioc_tlb_probe(ctx, uarg);
	case GRU_IOC_WAIT:
		return gru_ioc_wait(ctx, uarg);
	default:
		return -ENOTTY;
	}
}

const struct file_operations gru_fops = {
	.owner		= THIS_MODULE,
	.open		= gru_open,
	.release	= gru_release,
	.mmap		= gru_mmap,
	.unlocked_ioctl	= gru_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};
