/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every difference between the kernels this driver builds for (Debian's
 * 6.1 and 6.12) lives here, as small wrappers.  The GRU_HAVE_* switches
 * come from the Makefile, which looks for the API in the kernel's headers
 * (a version number would miss distribution backports).
 */
#ifndef _GRU_COMPAT_H
#define _GRU_COMPAT_H

#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/mmu_notifier.h>
#include <linux/kallsyms.h>
#include <linux/string.h>
#include <linux/dcache.h>
#include <linux/fault-inject.h>
#include <asm/paravirt.h>

/*
 * The walk reads page tables that another CPU may be unhooking.  Tables
 * unhooked without the mmap lock (hugetlb PMD unsharing, 6.12's PTE-table
 * retraction) are freed only after tlb_remove_table_sync_one() or an RCU
 * grace period, both held off by IRQs off; without
 * MMU_GATHER_RCU_TABLE_FREE the former is a no-op and even the walk under
 * the mmap lock would not be safe.
 */
#ifndef CONFIG_MMU_GATHER_RCU_TABLE_FREE
#error "gru_tlb needs CONFIG_MMU_GATHER_RCU_TABLE_FREE (x86: CONFIG_PARAVIRT)"
#endif

/*
 * The hard-IRQ walk also needs the fault handler to run with IRQs off:
 * PREEMPT_RT force-threads it and its spinlocks leave IRQs on, so neither
 * a flush IPI nor a grace period would wait for it.  There every miss goes
 * to process context.  gru_fault.c decides per walk whether the CPU is in
 * a position to walk.
 */
#ifdef CONFIG_PREEMPT_RT
#define GRU_HAVE_IRQ_WALK	0
#else
#define GRU_HAVE_IRQ_WALK	1
#endif

/**
 * gru_tables_rcu_freed() - whether every user page-table free waits for RCU
 *
 * On x86 up to at least 6.12 the mmu_gather frees page tables through
 * pv_ops.mmu.tlb_remove_table.  Its native default frees the table right
 * after the flush IPI, which only CPUs in mm_cpumask() receive; only a
 * hypervisor guest (KVM with PV TLB flush, Xen, Hyper-V) installs the
 * RCU-deferred tlb_remove_table().  So ask the running kernel which one it
 * uses instead of trusting the Kconfig symbol.  Anything we cannot identify
 * (no kallsyms, a kernel without the hook whose rules we have not read)
 * counts as an immediate free.
 *
 * Return: true if an IRQs-off walk on any CPU holds off every table free.
 */
static inline bool gru_tables_rcu_freed(void)
{
#if defined(CONFIG_PARAVIRT) && defined(GRU_HAVE_PV_TLB_REMOVE_TABLE)
	char name[KSYM_SYMBOL_LEN];

	sprint_symbol_no_offset(name,
				(unsigned long)pv_ops.mmu.tlb_remove_table);
	return !strcmp(name, "tlb_remove_table");
#else
	return false;
#endif
}

/*
 * Leaf predicates of the walk, from the x86 bits themselves.  The generic
 * pte_access_permitted() also applies the protection key rights (PKRU) of
 * whatever task the CPU happens to run, which says nothing about the
 * device; and from 6.6 pte_write() is true for shadow-stack PTEs, which
 * are not writable by ordinary stores.  _PAGE_PRESENT (not pte_present(),
 * which accepts PROT_NONE and NUMA-hinting entries) and _PAGE_USER make a
 * leaf the process may access; _PAGE_RW makes it writable.
 */
static inline bool gru_leaf_user(unsigned long flags)
{
	return (flags & (_PAGE_PRESENT | _PAGE_USER)) ==
	       (_PAGE_PRESENT | _PAGE_USER);
}

static inline bool gru_leaf_rw(unsigned long flags)
{
	return flags & _PAGE_RW;
}

/* Shadow-stack VMAs (6.6+) carry VM_WRITE but take no ordinary store. */
static inline bool gru_vma_shadow_stack(struct vm_area_struct *vma)
{
#ifdef VM_SHADOW_STACK
	return vma->vm_flags & VM_SHADOW_STACK;
#else
	return false;
#endif
}

/* vm_flags became read-only behind accessors in 6.3. */
static inline void gru_vm_flags_set(struct vm_area_struct *vma,
				    unsigned long flags)
{
#ifdef GRU_HAVE_VM_FLAGS_SET
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/* A PMD read once, consistently, without the page-table lock. */
static inline pmd_t gru_pmdp_get_lockless(pmd_t *pmdp)
{
#ifdef GRU_HAVE_PMDP_GET_LOCKLESS
	return pmdp_get_lockless(pmdp);
#else
	/* x86-64 PMDs are one word: a single READ_ONCE is a snapshot. */
	return READ_ONCE(*pmdp);
#endif
}

static inline pte_t gru_ptep_get_lockless(pte_t *ptep)
{
	return ptep_get_lockless(ptep);
}

/*
 * The PTE table under a PMD snapshot.  x86-64 has no HIGHPTE, so the table
 * is in the direct map and needs no kmap; this avoids 6.5+'s
 * __pte_offset_map(), which is not exported.
 */
static inline pte_t *gru_pte_offset_lockless(pmd_t *pmd, unsigned long addr)
{
	return pte_offset_kernel(pmd, addr);
}

/* PFN-mapped huge leaves have a special bit only since 6.11. */
static inline bool gru_pmd_special(pmd_t pmd)
{
#ifdef CONFIG_ARCH_SUPPORTS_PMD_PFNMAP
	return pmd_special(pmd);
#else
	return false;
#endif
}

static inline bool gru_pud_special(pud_t pud)
{
#ifdef CONFIG_ARCH_SUPPORTS_PUD_PFNMAP
	return pud_special(pud);
#else
	return false;
#endif
}

/*
 * The page-level invalidate after the PTE change: invalidate_range up to
 * 6.5, arch_invalidate_secondary_tlbs from 6.6.  The latter may not share a
 * subscription with invalidate_range_start/end (the core WARNs and refuses
 * the registration), so there it gets a subscription of its own
 * (GRU_SEPARATE_TLB_SUB, struct gru_mm_tlb).  Same arguments either way.
 */
typedef void (*gru_secondary_tlb_fn)(struct mmu_notifier *sub,
				     struct mm_struct *mm,
				     unsigned long start, unsigned long end);

#ifdef GRU_HAVE_SECONDARY_TLBS
#define GRU_SEPARATE_TLB_SUB	1

static inline void gru_mn_set_secondary_tlb(struct mmu_notifier_ops *ops,
					    gru_secondary_tlb_fn fn)
{
	ops->arch_invalidate_secondary_tlbs = fn;
}
#else
#define GRU_SEPARATE_TLB_SUB	0

static inline void gru_mn_set_secondary_tlb(struct mmu_notifier_ops *ops,
					    gru_secondary_tlb_fn fn)
{
	ops->invalidate_range = fn;
}
#endif

/* 6.5 dropped the vmas argument of the GUP family. */
static inline long gru_pin_user_page_remote(struct mm_struct *mm,
					    unsigned long addr,
					    unsigned int gup_flags,
					    struct page **page, int *locked)
{
#ifdef GRU_PIN_HAS_VMAS
	return pin_user_pages_remote(mm, addr, 1, gup_flags, page, NULL,
				     locked);
#else
	return pin_user_pages_remote(mm, addr, 1, gup_flags, page, locked);
#endif
}

#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
/*
 * fault_create_debugfs_attr() used to keep a reference to the directory
 * (attr->dname, a dentry) that its user must drop; the stable fix that
 * makes it keep only the name reached Debian's 6.12.117 but not 6.1.
 * So decide by the type, not by the version.
 */
static inline void gru_fault_attr_put(struct fault_attr *attr)
{
	if (__same_type(attr->dname, struct dentry *)) {
		struct dentry **d = (void *)&attr->dname;

		dput(*d);
		*d = NULL;
	}
}
#endif

#endif /* _GRU_COMPAT_H */
