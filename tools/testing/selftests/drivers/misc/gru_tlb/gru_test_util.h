/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the GRU guest tests: page-frame introspection through
 * /proc (the no-pin proof and THP/KSM/migration checks) and small utilities.
 */
#ifndef GRU_TEST_UTIL_H
#define GRU_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gru/libgru.h>

#define PAGE_SZ		4096UL
#define HPAGE_SZ	(2UL << 20)

/* /proc/self/pagemap entry bits */
#define PM_PFN_MASK	((1ULL << 55) - 1)
#define PM_SWAP		(1ULL << 62)
#define PM_PRESENT	(1ULL << 63)

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h) */
#define KPF_THP_BIT	22
#define KPF_HUGE_BIT	17
#define KPF_KSM_BIT	21

/* true when /dev/gru exists (driver loaded); tests SKIP otherwise */
bool gru_present(void);
/* raw pagemap entry for @va, or 0 on error */
uint64_t pagemap_entry(const void *va);
/* PFN backing @va, 0 if not present or unreadable */
uint64_t va_to_pfn(const void *va);
/* /proc/kpagecount for @pfn, or -1 */
int64_t kpagecount(uint64_t pfn);
/* /proc/kpageflags for @pfn, or 0 */
uint64_t kpageflags(uint64_t pfn);
/* anonymous RW private mapping of @len aligned to @align (power of 2) */
void *map_aligned(size_t len, size_t align);
/* the same with extra mmap flags (MAP_NORESERVE for 1 GiB regions, ...) */
void *map_aligned_flags(size_t len, size_t align, int flags);
/* read a small sysfs/proc file as an unsigned number; -1 on error */
long long read_num(const char *path);
/* write a string to a sysfs/proc file; 0 or -errno */
int write_str(const char *path, const char *s);
/* number of NUMA nodes online */
int numa_nodes(void);
/* the NUMA node of the page at @va (move_pages query), or -errno */
int page_node(void *va);
/* move the page at @va to @node; 0 or -errno (or the per-page status) */
int move_page_to(void *va, int node);
/* mount point of a writable block-backed filesystem, or NULL */
const char *find_real_fs(char *buf, size_t len);
/* a gru module parameter, or -1 */
long long gru_param(const char *name);
/* CLOCK_MONOTONIC in ms */
uint64_t mono_ms(void);
/* a count of /sys/kernel/debug/gru/live (contexts, works, ...), or -1 */
long gru_live(const char *name);
/* wait up to @ms for gru_live(@name) to drop to @want; its last value */
long gru_live_wait(const char *name, long want, int ms);
/* fill mode, batch 1, call-OS on or off (other flags kept); 0 or -errno */
int gru_set_mode(struct gru_ctx *g, uint32_t mode, bool callos);
/* poll the window until it leaves BUSY or @ms pass; the status */
uint64_t gru_wait_not_busy(struct gru_ctx *g, int ms);

#endif
