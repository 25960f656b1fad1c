// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gru_test_util.h"

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE		(1 << 1)
#define MPOL_MF_MOVE_ALL	(1 << 2)
#endif

bool gru_present(void)
{
	return access(GRU_DEV_PATH, R_OK | W_OK) == 0;
}

static uint64_t read_u64_at(const char *path, off_t off)
{
	uint64_t v = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &v, sizeof(v), off) != sizeof(v))
		v = 0;
	close(fd);
	return v;
}

uint64_t pagemap_entry(const void *va)
{
	return read_u64_at("/proc/self/pagemap",
			   (off_t)((uintptr_t)va / PAGE_SZ * 8));
}

uint64_t va_to_pfn(const void *va)
{
	uint64_t e = pagemap_entry(va);

	return (e & PM_PRESENT) ? (e & PM_PFN_MASK) : 0;
}

int64_t kpagecount(uint64_t pfn)
{
	int64_t v = -1;
	int fd = open("/proc/kpagecount", O_RDONLY);

	if (fd < 0)
		return -1;
	if (pread(fd, &v, sizeof(v), (off_t)(pfn * 8)) != sizeof(v))
		v = -1;
	close(fd);
	return v;
}

uint64_t kpageflags(uint64_t pfn)
{
	return read_u64_at("/proc/kpageflags", (off_t)(pfn * 8));
}

void *map_aligned(size_t len, size_t align)
{
	return map_aligned_flags(len, align, 0);
}

void *map_aligned_flags(size_t len, size_t align, int flags)
{
	size_t full = len + align;
	uintptr_t p, a;
	void *m = mmap(NULL, full, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	p = (uintptr_t)m;
	a = (p + align - 1) & ~(uintptr_t)(align - 1);
	if (a > p)
		munmap(m, a - p);
	if (a + len < p + full)
		munmap((void *)(a + len), p + full - a - len);
	return (void *)a;
}

long long read_num(const char *path)
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	if (buf[0] == 'Y')
		return 1;
	if (buf[0] == 'N')
		return 0;
	return strtoll(buf, NULL, 0);
}

int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

int numa_nodes(void)
{
	char p[64];
	int n = 0;

	for (;;) {
		snprintf(p, sizeof(p), "/sys/devices/system/node/node%d", n);
		if (access(p, F_OK))
			return n ? n : 1;
		n++;
	}
}

int page_node(void *va)
{
	void *pages[1] = { va };
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, pages, NULL, &status, 0))
		return -errno;
	return status;
}

int move_page_to(void *va, int node)
{
	void *pages[1] = { va };
	int nodes[1] = { node };
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, pages, nodes, &status,
		    MPOL_MF_MOVE_ALL))
		return -errno;
	return status < 0 ? status : 0;
}

const char *find_real_fs(char *buf, size_t len)
{
	static const char *const types[] = {
		"ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", NULL,
	};
	char dev[256], mnt[256], type[64], opts[256];
	const char *env = getenv("GRU_REALFS");
	FILE *f;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	f = fopen("/proc/mounts", "r");
	if (!f)
		return NULL;
	while (fscanf(f, "%255s %255s %63s %255s %*d %*d", dev, mnt, type, opts) == 4) {
		for (int i = 0; types[i]; i++) {
			if (strcmp(type, types[i]) || strncmp(opts, "rw", 2))
				continue;
			snprintf(buf, len, "%s", mnt);
			fclose(f);
			return buf;
		}
	}
	fclose(f);
	return NULL;
}

long long gru_param(const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "/sys/module/gru_tlb/parameters/%s", name);
	return read_num(p);
}

uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long gru_live(const char *name)
{
	char key[32];
	long val;
	FILE *f = fopen("/sys/kernel/debug/gru/live", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%31s %ld", key, &val) == 2) {
		if (!strcmp(key, name)) {
			fclose(f);
			return val;
		}
	}
	fclose(f);
	return -1;
}

long gru_live_wait(const char *name, long want, int ms)
{
	long v = gru_live(name);

	while (v > want && ms > 0) {
		usleep(20000);
		ms -= 20;
		v = gru_live(name);
	}
	return v;
}

int gru_set_mode(struct gru_ctx *g, uint32_t mode, bool callos)
{
	struct gru_ctx_opts o;
	int ret = gru_get_opts(g, &o);

	if (ret)
		return ret;
	o.fill_mode = mode;
	o.batch = 1;
	if (callos)
		o.flags |= GRU_OPT_CALLOS;
	else
		o.flags &= ~GRU_OPT_CALLOS;
	return gru_set_opts(g, &o);
}

uint64_t gru_wait_not_busy(struct gru_ctx *g, int ms)
{
	uint64_t end = mono_ms() + ms, st;

	do {
		st = g->win[GRU_WIN_STATUS / 8];
		if (st != GRU_ST_BUSY)
			return st;
		usleep(1000);
	} while (mono_ms() < end);
	return GRU_ST_BUSY;
}
