// SPDX-License-Identifier: GPL-2.0
/*
 * The device goes away while in use, and comes back: PCI remove through
 * sysfs then a rescan, QEMU's device_del then device_add (through
 * gru-qmp, see scripts/guest-run.sh), and a second device added at run
 * time.  While it goes, contexts have a long copy in flight, a call-OS
 * stall, a worker asleep in a userfaultfd fault nobody answers, and an
 * idle mapped window.  Afterwards every old context fails cleanly (window
 * SIGBUS, ioctls -ENODEV, close returns), nothing leaks, and the device
 * that came back works.  Destructive: the runner runs it before the rest
 * of the suite, which must then pass on the device that came back.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../../../kselftest_harness.h"
#include "gru_test_util.h"

#define QMP		"/opt/gru/bin/gru-qmp"
#define BIG		(16UL << 20)

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, 1);
}

/* Read the window's status word; true if that raised SIGBUS. */
static bool window_sigbus(struct gru_ctx *g)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	volatile uint64_t v;
	bool bus = false;

	sigaction(SIGBUS, &sa, &old);
	if (!sigsetjmp(bus_jmp, 1))
		v = g->win[GRU_WIN_STATUS / 8];
	else
		bus = true;
	sigaction(SIGBUS, &old, NULL);
	(void)v;
	return bus;
}

static bool wait_path(const char *path, bool present, int ms)
{
	while (ms > 0) {
		if ((access(path, F_OK) == 0) == present)
			return true;
		usleep(50000);
		ms -= 50;
	}
	return (access(path, F_OK) == 0) == present;
}

/* The PCI device directory of /dev/gru, e.g. /sys/devices/.../0000:01:00.0 */
static bool pci_dir(char *buf)
{
	return realpath("/sys/class/misc/gru/device", buf) != NULL;
}

FIXTURE(unplug) {
	struct gru_ctx copy, stall, idle, sleeper;
	char *src, *dst, *uffd_page;
	int uffd;
	long live_base;
};

FIXTURE_SETUP(unplug)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct gru_insn cp = { .opcode = GRU_OPC_BCOPY };
	struct gru_insn ld = { .opcode = GRU_OPC_LOAD };
	struct pollfd p;
	void *fresh;

	if (!gru_present())
		SKIP(return, "no /dev/gru");
	self->live_base = gru_live("contexts");

	/* a long copy over untouched memory: the worker fills page by page */
	ASSERT_EQ(0, gru_open(&self->copy, 0));
	ASSERT_EQ(0, gru_set_mode(&self->copy, GRU_FILL_IRQ, false));
	self->src = mmap(NULL, BIG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	self->dst = mmap(NULL, BIG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->src);
	ASSERT_NE(MAP_FAILED, self->dst);
	memset(self->src, 0x11, BIG);
	cp.addr = (uintptr_t)self->dst;
	cp.src = (uintptr_t)self->src;
	cp.len = BIG;

	/* a call-OS stall nobody answers */
	ASSERT_EQ(0, gru_open(&self->stall, 0));
	ASSERT_EQ(0, gru_set_mode(&self->stall, GRU_FILL_IRQ, true));
	fresh = mmap(NULL, PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	ASSERT_NE(MAP_FAILED, fresh);
	ld.addr = (uintptr_t)fresh;
	ASSERT_EQ(0, gru_issue(&self->stall, &ld));
	ASSERT_EQ(GRU_ST_CALLOS, gru_wait_not_busy(&self->stall, 10000));

	/* a worker asleep in a userfaultfd fault nobody answers */
	ASSERT_EQ(0, gru_open(&self->sleeper, 0));
	ASSERT_EQ(0, gru_set_mode(&self->sleeper, GRU_FILL_IRQ, false));
	self->uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (self->uffd >= 0 && !ioctl(self->uffd, UFFDIO_API, &api)) {
		self->uffd_page = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, self->uffd_page);
		reg.range.start = (uintptr_t)self->uffd_page;
		reg.range.len = PAGE_SZ;
		ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_REGISTER, &reg));
		ld.addr = (uintptr_t)self->uffd_page;
		ASSERT_EQ(0, gru_issue(&self->sleeper, &ld));
		p.fd = self->uffd;
		p.events = POLLIN;
		ASSERT_EQ(1, poll(&p, 1, 20000));
	}

	/* an idle mapped window */
	ASSERT_EQ(0, gru_open(&self->idle, 0));
	ASSERT_EQ(0, gru_nop(&self->idle));

	ASSERT_EQ(0, gru_issue(&self->copy, &cp));
}

FIXTURE_TEARDOWN(unplug)
{
	gru_close(&self->copy);
	gru_close(&self->stall);
	gru_close(&self->idle);
	gru_close(&self->sleeper);
	if (self->uffd >= 0)
		close(self->uffd);
}

/* Every old context fails cleanly, and close never waits. */
static void check_gone(struct __test_metadata *_metadata,
		       FIXTURE_DATA(unplug) *self)
{
	struct gru_ctx *all[] = {
		&self->copy, &self->stall, &self->idle, &self->sleeper,
	};
	struct gru_info info;
	uint32_t st;
	unsigned int k;

	ASSERT_TRUE(wait_path("/dev/gru", false, 30000));
	for (k = 0; k < 4; k++) {
		EXPECT_TRUE(window_sigbus(all[k])) TH_LOG("context %u", k);
		EXPECT_EQ(-ENODEV, gru_info(all[k], &info));
		EXPECT_EQ(-ENODEV, gru_wait_ioctl(all[k], 10, &st));
		EXPECT_EQ(-ENODEV, gru_call_os(all[k], NULL));
	}
	/* the destination holds nothing but copied bytes or zeroes */
	for (k = 0; k < BIG; k += PAGE_SZ)
		if (self->dst[k] != 0x11 && self->dst[k] != 0)
			break;
	EXPECT_EQ(BIG, k);
	/* close never waits for the sleeping worker (else: harness timeout) */
	for (k = 0; k < 4; k++)
		gru_close(all[k]);
}

/* The device that came back works, and the old contexts are all freed. */
static void check_back(struct __test_metadata *_metadata,
		       FIXTURE_DATA(unplug) *self)
{
	struct gru_ctx g;
	uint64_t *mem, v;
	int k;

	ASSERT_TRUE(wait_path("/dev/gru", true, 30000));
	ASSERT_EQ(0, gru_open(&g, 0));
	mem = map_aligned(32 * PAGE_SZ, PAGE_SZ);
	ASSERT_NE(NULL, mem);
	for (k = 0; k < 32; k++) {
		ASSERT_EQ(0, gru_store(&g, mem + k * (PAGE_SZ / 8), 0x5150 + k));
		ASSERT_EQ(0, gru_load(&g, mem + k * (PAGE_SZ / 8), &v));
		EXPECT_EQ(0x5150 + k, v);
	}
	gru_close(&g);
	munmap(mem, 32 * PAGE_SZ);
	/* the sleeper's worker lets go once its userfaultfd is closed */
	if (self->uffd >= 0) {
		close(self->uffd);
		self->uffd = -1;
	}
	if (self->live_base >= 0) {
		for (k = 0; k < 500 && gru_live("contexts") > self->live_base; k++)
			usleep(20000);
		EXPECT_EQ(self->live_base, gru_live("contexts"));
		EXPECT_EQ(1, gru_live("devices"));
	}
}

TEST_F_TIMEOUT(unplug, sysfs_remove_then_rescan, 240)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];

	ASSERT_TRUE(pci_dir(dir));
	snprintf(path, sizeof(path), "%s/remove", dir);
	ASSERT_EQ(0, write_str(path, "1"));
	check_gone(_metadata, self);
	ASSERT_EQ(0, write_str("/sys/bus/pci/rescan", "1"));
	check_back(_metadata, self);
}

static int qmp(const char *args)
{
	char cmd[512];
	int rc;

	snprintf(cmd, sizeof(cmd), "%s -t 60 %s >/dev/null", QMP, args);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/*
 * Skip only where there is no channel at all: a channel that guest-run.sh
 * wired up but that does not answer is a failure, not a skip.
 */
static bool have_qmp(void)
{
	return access(QMP, X_OK) == 0 && access("/dev/ttyS3", R_OK) == 0;
}

TEST_F_TIMEOUT(unplug, qmp_device_del_then_device_add, 240)
{
	if (!have_qmp())
		SKIP(return, "no QMP channel (gru-qmp, ttyS3)");
	ASSERT_EQ(0, qmp("query-status"));
	ASSERT_EQ(0, qmp("device_del gru0"));
	check_gone(_metadata, self);
	ASSERT_EQ(0, qmp("device_add gru-tlb,id=gru0,bus=rp0"));
	check_back(_metadata, self);
}

/* A second device plugged in at run time works beside the first. */
TEST(device_add_second_device)
{
	struct gru_ctx a, b;
	uint64_t *mem, v;

	if (!gru_present())
		SKIP(return, "no /dev/gru");
	if (!have_qmp())
		SKIP(return, "no QMP channel (gru-qmp, ttyS3)");
	ASSERT_EQ(0, qmp("query-status"));
	ASSERT_EQ(0, qmp("device_add gru-tlb,id=gruhp,bus=rphp"));
	ASSERT_TRUE(wait_path("/dev/gru1", true, 30000));
	ASSERT_EQ(0, gru_open_path(&b, "/dev/gru1", 0));
	ASSERT_EQ(0, gru_open(&a, 0));
	mem = map_aligned(PAGE_SZ, PAGE_SZ);
	ASSERT_NE(NULL, mem);
	EXPECT_EQ(0, gru_store(&b, mem, 0xb1));
	EXPECT_EQ(0, gru_load(&a, mem, &v));
	EXPECT_EQ(0xb1, v);
	EXPECT_EQ(0, gru_store(&a, mem, 0xa1));
	EXPECT_EQ(0, gru_load(&b, mem, &v));
	EXPECT_EQ(0xa1, v);
	/* unplugged again while a context on it is open */
	ASSERT_EQ(0, qmp("device_del gruhp"));
	ASSERT_TRUE(wait_path("/dev/gru1", false, 30000));
	EXPECT_TRUE(window_sigbus(&b));
	gru_close(&b);
	EXPECT_EQ(0, gru_load(&a, mem, &v));
	EXPECT_EQ(0xa1, v);
	gru_close(&a);
}

TEST_HARNESS_MAIN
