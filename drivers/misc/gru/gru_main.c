// SPDX-License-Identifier: GPL-2.0
/*
 * GRU-style external TLB: PCI probe/remove, MSI-X, the misc device, and
 * module init/exit.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/interrupt.h>
#include <linux/dma-mapping.h>
#include <linux/iommu.h>
#include <linux/idr.h>
#include <linux/slab.h>
#include <linux/cpumask.h>
#include <linux/mmu_notifier.h>
#include <linux/hashtable.h>
#include <linux/cred.h>
#include "gru_core.h"
#include "gru_hw.h"
#include "gru_compat.h"

#define CREATE_TRACE_POINTS
#include "gru_trace.h"

static unsigned int max_asid = GRU_ASID_MAX;

#ifdef CONFIG_GRU_TLB_DEBUG
/*
 * Test hooks exist only in a GRU_TLB_DEBUG build.  The two that break
 * coherency on purpose are fault-injection attributes (gru_debugfs.c);
 * these two only make rare events frequent.
 */
module_param(max_asid, uint, 0444);
MODULE_PARM_DESC(max_asid,
		 "highest ASID before a generation wrap (default 0xfffe)");

unsigned int gru_asid_wrap_delay_us;
module_param_named(asid_wrap_delay_us, gru_asid_wrap_delay_us, uint, 0644);
MODULE_PARM_DESC(asid_wrap_delay_us,
		 "widen an ASID wrap: busy-wait up to 2 ms in its flush section, sleep between its reassignments (100 ms in all)");
#endif

static DEFINE_IDA(gru_ida);

/*
 * The slow path of every device.  One queue for the module, not one per
 * device: its work items may outlive their device (see gru_ctx in
 * gru_core.h), and only module exit may wait for them.
 */
struct workqueue_struct *gru_wq;
atomic_t gru_live[GRU_LIVE_NR];

/*
 * Fault work items per user.  One may sleep in a fault for as long as the
 * user's own FUSE daemon wants (a request the daemon has read is waited
 * for uninterruptibly, so not even the SIGKILL of gru_ctx_end_stall()
 * ends it), and gru_wq runs a bounded number of items for all users: no
 * user may hold more than GRU_USER_WORKS of them, zombies of closed
 * contexts included.  Users are kuids, so user namespaces do not help.
 */
static DEFINE_HASHTABLE(gru_users, 6);
static DEFINE_SPINLOCK(gru_users_lock);

/**
 * gru_user_get() - the work accounting of the calling task's user
 *
 * Return: a reference, or NULL without memory.
 */
struct gru_user *gru_user_get(void)
{
	kuid_t uid = current_uid();
	struct gru_user *u, *new = NULL;

	for (;;) {
		spin_lock(&gru_users_lock);
		hash_for_each_possible(gru_users, u, node, __kuid_val(uid)) {
			if (uid_eq(u->uid, uid)) {
				refcount_inc(&u->ref);
				spin_unlock(&gru_users_lock);
				kfree(new);
				return u;
			}
		}
		if (new) {
			hash_add(gru_users, &new->node, __kuid_val(uid));
			spin_unlock(&gru_users_lock);
			return new;
		}
		spin_unlock(&gru_users_lock);
		new = kzalloc(sizeof(*new), GFP_KERNEL_ACCOUNT);
		if (!new)
			return NULL;
		new->uid = uid;
		refcount_set(&new->ref, 1);
	}
}

/**
 * gru_user_put() - drop a reference taken by gru_user_get()
 * @u: the user
 */
void gru_user_put(struct gru_user *u)
{
	if (refcount_dec_and_lock(&u->ref, &gru_users_lock)) {
		hash_del(&u->node);
		spin_unlock(&gru_users_lock);
		kfree(u);
	}
}

static void gru_dev_release(struct kref *ref)
{
	struct gru_dev *gdev = container_of(ref, struct gru_dev, ref);

	kfree(gdev);
	atomic_dec(&gru_live[GRU_LIVE_DEVS]);
}

/**
 * gru_dev_put() - drop a reference on a device
 * @gdev: the device; freed with the last reference
 */
void gru_dev_put(struct gru_dev *gdev)
{
	kref_put(&gdev->ref, gru_dev_release);
}

/**
 * gru_sync_fault_irqs() - wait for running fault handlers to finish
 * @gdev: the device
 *
 * After a slot was cleared, no handler can still be using its old owner.
 */
void gru_sync_fault_irqs(struct gru_dev *gdev)
{
	unsigned int i;

	for (i = GRU_VEC_FAULT0; i < gdev->nvec; i++)
		synchronize_irq(pci_irq_vector(gdev->pdev, i));
}

/*
 * Point each CPU's entry at the fault vector whose affinity is that CPU,
 * so an instruction with GRU_IF_CPU_HINT faults back to its issuer.  The
 * table is worked out once, when the vectors are allocated (their managed
 * affinity does not change after), because pci_irq_get_affinity() may
 * sleep and a reset reprograms the device under hw_lock.
 */
static void gru_compute_cpuvec(struct gru_dev *gdev)
{
	unsigned int nfault = gdev->nvec - GRU_VEC_FAULT0;
	const struct cpumask *mask;
	unsigned int cpu, i, vec;

	for (cpu = 0; cpu < GRU_CPUVEC_ENTRIES; cpu++) {
		vec = GRU_VEC_FAULT0 + cpu % nfault;
		for (i = GRU_VEC_FAULT0; i < gdev->nvec; i++) {
			mask = pci_irq_get_affinity(gdev->pdev, i);
			if (mask && cpu < nr_cpu_ids &&
			    cpumask_test_cpu(cpu, mask)) {
				vec = i;
				break;
			}
		}
		gdev->cpuvec[cpu] = vec;
	}
}

static void gru_program_cpuvec(struct gru_dev *gdev)
{
	unsigned int cpu;

	for (cpu = 0; cpu < GRU_CPUVEC_ENTRIES; cpu++)
		gru_wr(gdev, GRU_REG_CPUVEC(cpu), gdev->cpuvec[cpu]);
}

static void gru_free_irqs(struct gru_dev *gdev, unsigned int n)
{
	while (n--)
		free_irq(pci_irq_vector(gdev->pdev, n), gdev);
}

static int gru_setup_irqs(struct gru_dev *gdev)
{
	struct irq_affinity aff = { .pre_vectors = 1 };
	struct pci_dev *pdev = gdev->pdev;
	unsigned int want, i;
	int nvec, ret;

	/* vector 0 for completions, then one fault vector per CPU */
	want = min(gdev->hw_vectors, 1 + num_possible_cpus());
	nvec = pci_alloc_irq_vectors_affinity(pdev, 2, want,
					      PCI_IRQ_MSIX | PCI_IRQ_AFFINITY,
					      &aff);
	if (nvec < 0) {
		dev_err(&pdev->dev, "cannot allocate 2..%u MSI-X vectors: %d\n",
			want, nvec);
		return nvec;
	}
	for (i = 0; i < nvec; i++) {
		ret = request_irq(pci_irq_vector(pdev, i),
				  i == GRU_VEC_MISC ? gru_misc_irq :
						      gru_fault_irq,
				  0, gdev->name, gdev);
		if (ret) {
			dev_err(&pdev->dev, "request_irq vector %u: %d\n",
				i, ret);
			gru_free_irqs(gdev, i);
			pci_free_irq_vectors(pdev);
			return ret;
		}
	}
	gdev->nvec = nvec;
	gru_compute_cpuvec(gdev);
	return 0;
}

/*
 * Enable the device and program what its reset clears: the CPU -> vector
 * table, and an empty TLB (a previous driver instance or a failed reset
 * may have left entries of any ASID).
 */
static void gru_hw_start(struct gru_dev *gdev)
{
	gru_program_cpuvec(gdev);
	gru_wr(gdev, GRU_REG_CTRL, GRU_CTRL_ENABLE);
	gru_hw_invalidate(gdev, GRU_INV_ALL, 0, 0, 0);
}

/*
 * Function reset (sysfs reset, FLR, a bus reset by the parent bridge):
 * every instruction in flight fails with GRU_ERR_ABORTED, every context
 * loses its slot and keeps its window state, and nothing touches the
 * device until reset_done.  While resetting is set, a context cannot load
 * (its window fault retries), and everything that would touch the BAR
 * under ctx_mutex or hw_lock skips it.  No lock is held across to
 * reset_done: a bus or slot reset prepares every function before it
 * resets any, and a window fault holding mmap_lock must not wait for the
 * whole reset on ctx_mutex.
 */
static void gru_reset_prepare(struct pci_dev *pdev)
{
	struct gru_dev *gdev = pci_get_drvdata(pdev);
	struct gru_ctx *ctx;
	unsigned long flags;
	unsigned int i;

	mutex_lock(&gdev->ctx_mutex);
	list_for_each_entry(ctx, &gdev->ctxs, dev_node) {
		if (ctx->slot < 0)
			continue;
		/* no doorbell between the abort and the unload */
		gru_ctx_zap(ctx);
		gru_ctx_abort(ctx);
		gru_ctx_unload(ctx, true);
	}
	spin_lock_irqsave(&gdev->hw_lock, flags);
	WRITE_ONCE(gdev->resetting, true);
	spin_unlock_irqrestore(&gdev->hw_lock, flags);
	mutex_unlock(&gdev->ctx_mutex);
	/*
	 * The handlers read the BAR without a lock; they check resetting
	 * first, so once those running now are done (an MSI the abort raised
	 * may still be on its way) none reads it until reset_done.
	 */
	for (i = 0; i < gdev->nvec; i++)
		synchronize_irq(pci_irq_vector(pdev, i));
	cancel_work_sync(&gdev->rescan);
}

/*
 * The reset zeroed INV_GEN, the vector table and the slots' ASIDs, and
 * emptied the TLB (or, if it failed, left it as it was: flush it).  The
 * device is restarted before anyone else may touch it again, in the
 * hw_lock section that ends the reset.  A fill that sampled INV_GEN before
 * carries the old epoch and walks again; ASIDs stay valid, as no entry
 * survived.  The PCI core restored config space and MSI-X before this.
 */
static void gru_reset_done(struct pci_dev *pdev)
{
	struct gru_dev *gdev = pci_get_drvdata(pdev);
	unsigned long flags;

	spin_lock_irqsave(&gdev->hw_lock, flags);
	gru_program_cpuvec(gdev);
	gru_wr(gdev, GRU_REG_CTRL, GRU_CTRL_ENABLE);
	__gru_hw_invalidate_locked(gdev, GRU_INV_ALL, 0, 0, 0);
	gdev->hw_epoch++;
	WRITE_ONCE(gdev->resetting, false);
	spin_unlock_irqrestore(&gdev->hw_lock, flags);
	GRU_DSTAT(gdev, RESETS);
	/* GRU_IOC_WAIT sleepers: their instructions were aborted */
	wake_up_all(&gdev->done_wq);
}

static const struct pci_error_handlers gru_err_handlers = {
	.reset_prepare	= gru_reset_prepare,
	.reset_done	= gru_reset_done,
};

/*
 * The driver gives the device CPU physical addresses (the PFNs it finds in
 * the page tables), and the device DMAs to them as they are: that is right
 * only if nothing translates its DMA, i.e. no IOMMU, or its group in an
 * identity (passthrough) domain.  Anything else (DMA, DMA-FQ) would send
 * every access to an IOVA nobody mapped.  The answer holds for the whole
 * binding: the group's sysfs type changes only while no driver is bound
 * (6.1 refuses with -EBUSY, 6.12 with -EPERM; the one exception, DMA to
 * DMA-FQ, stays translated), and VFIO or iommufd cannot take over a group
 * whose device a kernel driver holds.  device_iommu_mapped() would not do:
 * it is true for any device in a group, identity domains included.
 */
static int gru_check_dma_untranslated(struct pci_dev *pdev)
{
	struct iommu_domain *dom = iommu_get_domain_for_dev(&pdev->dev);
	struct iommu_group *grp;
	int id;

	if (!dom || dom->type == IOMMU_DOMAIN_IDENTITY)
		return 0;
	grp = iommu_group_get(&pdev->dev);
	id = grp ? iommu_group_id(grp) : -1;
	iommu_group_put(grp);
	dev_err(&pdev->dev,
		"DMA is translated by an IOMMU (domain type %#x), but the device needs physical addresses: boot with iommu=pt (or intel_iommu=off, amd_iommu=off), or echo identity > /sys/kernel/iommu_groups/%d/type and echo %s > /sys/bus/pci/drivers/%s/bind (not possible for an untrusted, external-facing port)\n",
		dom->type, id, pci_name(pdev), GRU_DRV_NAME);
	/* a matched device in a setup the driver cannot run, not "not mine" */
	return -EOPNOTSUPP;
}

/*
 * No IOMMU does not yet mean that a physical address is a bus address.
 * Memory encryption (SME sets the C-bit in bus addresses; SEV and TDX
 * guests must bounce through shared memory) also makes the page-table PFN
 * the wrong thing to hand the device.  Ask the DMA API what it would hand
 * a device for one page: whatever it does differently, the driver cannot
 * follow.  (swiotlb=force on a plain host is refused too, though raw
 * PFNs would work there.)  Needs the 64-bit DMA mask, or a page above
 * 4 GiB would bounce.  The page is zeroed: a bounce copies it into memory
 * an encrypted guest shares with its host.
 */
static int gru_check_dma_is_phys(struct pci_dev *pdev)
{
	struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	dma_addr_t dma;
	int ret = 0;

	if (!page)
		return -ENOMEM;
	dma = dma_map_page(&pdev->dev, page, 0, PAGE_SIZE, DMA_TO_DEVICE);
	if (dma_mapping_error(&pdev->dev, dma)) {
		ret = -EIO;
	} else {
		if (dma != page_to_phys(page))
			ret = -EOPNOTSUPP;
		dma_unmap_page(&pdev->dev, dma, PAGE_SIZE, DMA_TO_DEVICE);
	}
	__free_page(page);
	if (ret == -EOPNOTSUPP)
		dev_err(&pdev->dev,
			"the DMA address of a page is not its physical address (memory encryption, or bounce buffers: swiotlb=force), and the device needs physical addresses: it cannot be used on this system\n");
	else if (ret)
		dev_err(&pdev->dev, "cannot map a test page for DMA (%d)\n", ret);
	return ret;
}

static int gru_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct gru_dev *gdev;
	resource_size_t wlen;
	u64 caps;
	int ret;

	ret = gru_check_dma_untranslated(pdev);
	if (ret)
		return ret;

	gdev = kzalloc(sizeof(*gdev), GFP_KERNEL);
	if (!gdev)
		return -ENOMEM;
	gdev->pdev = pdev;
	kref_init(&gdev->ref);
	atomic_inc(&gru_live[GRU_LIVE_DEVS]);
	spin_lock_init(&gdev->hw_lock);
	mutex_init(&gdev->ctx_mutex);
	INIT_LIST_HEAD(&gdev->ctxs);
	init_waitqueue_head(&gdev->done_wq);
	INIT_WORK(&gdev->rescan, gru_fault_rescan);
	gru_mm_init_ops(gdev);
	ret = ida_alloc(&gru_ida, GFP_KERNEL);
	if (ret < 0) {
		gru_dev_put(gdev);
		return ret;
	}
	gdev->index = ret;
	snprintf(gdev->name, sizeof(gdev->name), "gru_tlb:%s", pci_name(pdev));

	ret = pci_enable_device(pdev);
	if (ret)
		goto err_put;
	ret = pci_request_regions(pdev, GRU_DRV_NAME);
	if (ret)
		goto err_disable;
	gdev->regs = pci_iomap(pdev, GRU_BAR_REGS, GRU_BAR0_SIZE);
	if (!gdev->regs) {
		ret = -ENOMEM;
		goto err_regions;
	}
	if (gru_rd(gdev, GRU_REG_ID) != GRU_MAGIC) {
		dev_err(&pdev->dev, "bad ID register %#llx (want %#x)\n",
			gru_rd(gdev, GRU_REG_ID), GRU_MAGIC);
		ret = -ENODEV;
		goto err_unmap;
	}
	gdev->version = gru_rd(gdev, GRU_REG_VERSION);
	caps = gru_rd(gdev, GRU_REG_CAPS);
	gdev->nctx = min_t(unsigned int, GRU_CAPS_CONTEXTS(caps),
			   GRU_MAX_CONTEXTS);
	gdev->ways = GRU_CAPS_WAYS(caps);
	gdev->sets = GRU_CAPS_SETS(caps);
	gdev->hw_vectors = min_t(unsigned int, GRU_CAPS_VECTORS(caps),
				 GRU_MAX_VECTORS);
	if (!gdev->nctx || gdev->hw_vectors < 2) {
		dev_err(&pdev->dev, "unusable geometry: caps %#llx\n", caps);
		ret = -ENODEV;
		goto err_unmap;
	}
	wlen = pci_resource_len(pdev, GRU_BAR_WINDOWS);
	if (wlen < (resource_size_t)gdev->nctx * GRU_WINDOW_SIZE) {
		dev_err(&pdev->dev, "BAR%d too small for %u windows\n",
			GRU_BAR_WINDOWS, gdev->nctx);
		ret = -ENODEV;
		goto err_unmap;
	}
	gdev->win_phys = pci_resource_start(pdev, GRU_BAR_WINDOWS);
	gdev->win = pci_iomap(pdev, GRU_BAR_WINDOWS,
			      gdev->nctx * GRU_WINDOW_SIZE);
	if (!gdev->win) {
		ret = -ENOMEM;
		goto err_unmap;
	}
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		goto err_unmap_win;
	ret = gru_check_dma_is_phys(pdev);
	if (ret)
		goto err_unmap_win;

	/* ASIDs: 0 is invalid; the wrap needs room for every loaded slot */
	gdev->max_asid = clamp_t(u32, max_asid, gdev->nctx + 1, GRU_ASID_MAX);
	gdev->asid_gen = 1;
	gdev->next_asid = 1;
	gdev->fast_path = GRU_HAVE_IRQ_WALK;
	gdev->walk_any_cpu = gdev->fast_path && gru_tables_rcu_freed();

	pci_set_master(pdev);
	ret = gru_setup_irqs(gdev);
	if (ret)
		goto err_master;
	gru_hw_start(gdev);

	if (gdev->index)
		snprintf(gdev->misc_name, sizeof(gdev->misc_name), "gru%d",
			 gdev->index);
	else
		strscpy(gdev->misc_name, "gru", sizeof(gdev->misc_name));
	gdev->misc.minor = MISC_DYNAMIC_MINOR;
	gdev->misc.name = gdev->misc_name;
	gdev->misc.fops = &gru_fops;
	gdev->misc.parent = &pdev->dev;
	pci_set_drvdata(pdev, gdev);
	gru_debugfs_add_dev(gdev);
	ret = misc_register(&gdev->misc);
	if (ret)
		goto err_irqs;

	dev_info(&pdev->dev,
		 "GRU TLB v%x: %u contexts, %ux%u TLB, %u MSI-X vectors, /dev/%s, IRQ fast path %s\n",
		 gdev->version, gdev->nctx, gdev->sets, gdev->ways, gdev->nvec,
		 gdev->misc.name, !gdev->fast_path ?
		 "OFF (PREEMPT_RT: all misses use the worker)" :
		 gdev->walk_any_cpu ? "on (page tables RCU-freed: any CPU)" :
		 "on (page tables freed after the flush IPI: only on CPUs in the mm's cpumask)");
	return 0;

err_irqs:
	gru_debugfs_remove_dev(gdev);
	gru_wr(gdev, GRU_REG_CTRL, 0);
	gru_free_irqs(gdev, gdev->nvec);
	gdev->nvec = 0;
	pci_free_irq_vectors(pdev);
err_master:
	pci_clear_master(pdev);
err_unmap_win:
	pci_iounmap(pdev, gdev->win);
err_unmap:
	pci_iounmap(pdev, gdev->regs);
err_regions:
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_put:
	ida_free(&gru_ida, gdev->index);
	gru_dev_put(gdev);
	return ret;
}

/*
 * Files may still be open: their contexts are aborted and unloaded, every
 * later use sees gdev->gone, and the gru_dev lives on until the last file
 * and gru_mm let go of it.
 */
static void gru_remove(struct pci_dev *pdev)
{
	struct gru_dev *gdev = pci_get_drvdata(pdev);
	struct gru_ctx *ctx;
	unsigned long flags;

	misc_deregister(&gdev->misc);
	/* the name is free again although open files keep gdev alive */
	ida_free(&gru_ida, gdev->index);
	gru_debugfs_remove_dev(gdev);

	mutex_lock(&gdev->ctx_mutex);
	list_for_each_entry(ctx, &gdev->ctxs, dev_node) {
		spin_lock_irqsave(&ctx->gmm->lock, flags);
		ctx->dead = true;
		spin_unlock_irqrestore(&ctx->gmm->lock, flags);
		gru_ctx_abort(ctx);
		gru_ctx_unload(ctx, false);
	}
	gru_wr(gdev, GRU_REG_CTRL, 0);
	gru_free_irqs(gdev, gdev->nvec);
	gdev->nvec = 0;
	pci_free_irq_vectors(pdev);
	spin_lock_irqsave(&gdev->hw_lock, flags);
	WRITE_ONCE(gdev->gone, true);
	spin_unlock_irqrestore(&gdev->hw_lock, flags);
	mutex_unlock(&gdev->ctx_mutex);
	cancel_work_sync(&gdev->rescan);
	wake_up_all(&gdev->done_wq);

	/*
	 * Fault work items still queued or running (one may sleep in a
	 * fault for as long as a userfaultfd handler wants) are not waited
	 * for: they hold their context, which holds gdev, and under
	 * ctx_mutex or hw_lock they find it gone and touch no register.
	 */
	pci_clear_master(pdev);
	pci_iounmap(pdev, gdev->win);
	pci_iounmap(pdev, gdev->regs);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	gru_dev_put(gdev);
}

static const struct pci_device_id gru_pci_ids[] = {
	{ PCI_DEVICE(GRU_PCI_VENDOR_ID, GRU_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, gru_pci_ids);

static struct pci_driver gru_pci_driver = {
	.name		= GRU_DRV_NAME,
	.id_table	= gru_pci_ids,
	.probe		= gru_probe,
	.remove		= gru_remove,
	.err_handler	= &gru_err_handlers,
};

static int __init gru_init(void)
{
	int ret;

	gru_wq = alloc_workqueue("gru_fault", WQ_UNBOUND | WQ_HIGHPRI, 0);
	if (!gru_wq)
		return -ENOMEM;
	gru_debugfs_init();
	ret = pci_register_driver(&gru_pci_driver);
	if (ret) {
		gru_debugfs_exit();
		destroy_workqueue(gru_wq);
	}
	return ret;
}

static void __exit gru_exit(void)
{
	pci_unregister_driver(&gru_pci_driver);
	/*
	 * Every context is freed (each holds a module reference), but the
	 * work item that freed the last one may still be returning.
	 */
	destroy_workqueue(gru_wq);
	/* free_notifier callbacks still queued run module code */
	mmu_notifier_synchronize();
	gru_debugfs_exit();
}

module_init(gru_init);
module_exit(gru_exit);

MODULE_DESCRIPTION("GRU-style external TLB: IRQ-context TLB fill without pins");
MODULE_LICENSE("GPL");
#ifdef CONFIG_GRU_TLB_DEBUG
/* A build with test hooks taints the kernel it is loaded into. */
MODULE_INFO(test, "Y");
#endif
