// SPDX-License-Identifier: GPL-2.0
/*
 * gru-info: find every GRU device (GRU_PCI_VENDOR_ID:GRU_PCI_DEVICE_ID)
 * with libpci and print what `lspci -v` would (IDs, BARs with lspci's
 * sizes, MSI-X, the bound driver), then the geometry the driver reports
 * (GRU_IOC_INFO) and the counters in debugfs, if mounted.
 *
 *   gru-info [-n] [-v] [-s [[domain:]bus:][slot][.func]] [-d [vendor]:[device]]
 *
 * -s and -d select devices as lspci's do (libpci's filters), among the GRU
 * devices.  No device is not an error: a short message and exit 0.  A bad
 * option or filter exits 2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pci/pci.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "gru_regs.h"
#include <gru/libgru.h>

#define DEBUGFS_GRU	"/sys/kernel/debug/gru"

static int verbose, numeric;

/* As lspci prints a region size: the largest unit that divides it. */
static void print_size(unsigned long long sz)
{
	static const char * const unit[] = { "", "K", "M", "G", "T" };
	unsigned int u = 0;

	while (u < 4 && sz && !(sz % 1024)) {
		sz /= 1024;
		u++;
	}
	printf(" [size=%llu%s]", sz, unit[u]);
}

static void print_bars(struct pci_dev *d)
{
	for (int i = 0; i < 6; i++) {
		pciaddr_t a = d->base_addr[i], sz = d->size[i];
		const char *what = "";

		if (!a && !sz)
			continue;
		if (i == GRU_BAR_REGS)
			what = " (control registers)";
		else if (i == GRU_BAR_WINDOWS)
			what = " (context windows)";
		else if (i == GRU_BAR_MSIX)
			what = " (MSI-X table and PBA)";
		if (a & PCI_BASE_ADDRESS_SPACE_IO) {
			printf("\tRegion %d: I/O ports at %llx", i,
			       (unsigned long long)(a & PCI_BASE_ADDRESS_IO_MASK));
			print_size(sz);
			printf("%s\n", what);
			continue;
		}
		printf("\tRegion %d: Memory at %llx (%s, %sprefetchable)",
		       i, (unsigned long long)(a & PCI_BASE_ADDRESS_MEM_MASK),
		       (a & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64 ?
		       "64-bit" : "32-bit",
		       (a & PCI_BASE_ADDRESS_MEM_PREFETCH) ? "" : "non-");
		print_size(sz);
		printf("%s\n", what);
	}
}

static void print_msix(struct pci_dev *d)
{
	struct pci_cap *cap = pci_find_cap(d, PCI_CAP_ID_MSIX, PCI_CAP_NORMAL);
	unsigned int ctrl, table, pba;

	if (!cap) {
		printf("\tCapabilities: no MSI-X capability\n");
		return;
	}
	ctrl = pci_read_word(d, cap->addr + PCI_MSI_FLAGS);
	table = pci_read_long(d, cap->addr + PCI_MSIX_TABLE);
	pba = pci_read_long(d, cap->addr + PCI_MSIX_PBA);
	printf("\tCapabilities: [%02x] MSI-X: Enable%c Count=%u Masked%c\n",
	       cap->addr, ctrl & PCI_MSIX_ENABLE ? '+' : '-',
	       (ctrl & PCI_MSIX_TABSIZE) + 1, ctrl & PCI_MSIX_MASK ? '+' : '-');
	printf("\t\tVector table: BAR=%u offset=%08x\n", table & PCI_MSIX_BIR,
	       table & ~PCI_MSIX_BIR);
	printf("\t\tPBA: BAR=%u offset=%08x\n", pba & PCI_MSIX_BIR, pba & ~PCI_MSIX_BIR);
}

static void print_driver(const char *slot)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *name;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/driver", slot);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0) {
		printf("\tKernel driver in use: none (gru_tlb not loaded?)\n");
		return;
	}
	target[n] = 0;
	name = strrchr(target, '/');
	printf("\tKernel driver in use: %s\n", name ? name + 1 : target);
}

/* a histogram row with a zero count: "bucket bound count" */
static int empty_row(const char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
		n--;
	return line[0] != '#' && n >= 2 && line[n - 1] == '0' && line[n - 2] == ' ';
}

static void print_file(const char *path, const char *indent, int hist)
{
	char line[512];
	int lines = 0, hidden = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && (verbose || lines < 60)) {
		if (hist && !verbose && empty_row(line)) {
			hidden++;
			continue;
		}
		printf("%s%s", indent, line);
		lines++;
	}
	if (hidden)
		printf("%s(%d empty buckets not shown)\n", indent, hidden);
	if (!verbose && fgets(line, sizeof(line), f))
		printf("%s... (gru-info -v for all of it)\n", indent);
	fclose(f);
}

/* debugfs: /sys/kernel/debug/gru/<slot>/ holds the device's counters */
static void print_debugfs(const char *slot)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/%s", DEBUGFS_GRU, slot);
	dp = opendir(dir);
	if (!dp) {
		printf("\tCounters: %s not found (debugfs not mounted or driver not bound)\n",
		       dir);
		return;
	}
	printf("\tCounters (%s):\n", dir);
	while ((e = readdir(dp))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR) {
			if (verbose)
				printf("\t  %s/ (per-context)\n", e->d_name);
			continue;
		}
		printf("\t  %s:\n", e->d_name);
		print_file(path, "\t    ", !strncmp(e->d_name, "hist", 4));
	}
	closedir(dp);
}

static void print_geometry(void)
{
	struct gru_info info;
	struct gru_ctx ctx;
	int ret = gru_open(&ctx, 0);

	if (ret) {
		printf("Geometry: %s: %s\n", GRU_DEV_PATH, strerror(-ret));
		return;
	}
	memset(&info, 0, sizeof(info));
	ret = gru_info(&ctx, &info);
	if (ret) {
		printf("Geometry: GRU_IOC_INFO: %s\n", strerror(-ret));
	} else {
		printf("Geometry (%s, GRU_IOC_INFO): version %u.%u, %u hardware contexts, TLB %u sets x %u ways (%u entries), %u MSI-X vectors, window %u bytes, max BCOPY/BSET %llu MiB\n",
		       GRU_DEV_PATH, info.version >> 16, info.version & 0xffff,
		       info.hw_contexts, info.tlb_sets, info.tlb_ways,
		       info.tlb_sets * info.tlb_ways, info.vectors, info.window_size,
		       (unsigned long long)info.max_len >> 20);
	}
	gru_close(&ctx);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gru-info [-n] [-v] [-s [[domain:]bus:][slot][.func]] [-d [vendor]:[device]]\n"
		"  Show the GRU TLB devices as lspci -v would, then the driver's view.\n"
		"  -s, -d  select devices, as lspci's options do\n"
		"  -n      numeric class, no name lookup\n"
		"  -v      every debugfs file in full\n"
		"  -h, --help\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct pci_filter slot_f, id_f;
	struct pci_access *pacc;
	struct pci_dev *d;
	char name[256], *err;
	int found = 0, c;

	pacc = pci_alloc();
	pci_filter_init(pacc, &slot_f);
	pci_filter_init(pacc, &id_f);
	while ((c = getopt_long(argc, argv, "nvs:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			numeric = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 's':
			err = pci_filter_parse_slot(&slot_f, optarg);
			if (err) {
				fprintf(stderr, "gru-info: -s %s: %s\n", optarg, err);
				return 2;
			}
			break;
		case 'd':
			err = pci_filter_parse_id(&id_f, optarg);
			if (err) {
				fprintf(stderr, "gru-info: -d %s: %s\n", optarg, err);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	pci_init(pacc);
	pci_scan_bus(pacc);
	for (d = pacc->devices; d; d = d->next) {
		char slot[32];

		pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_BASES | PCI_FILL_SIZES |
			      PCI_FILL_CLASS | PCI_FILL_CAPS | PCI_FILL_IRQ);
		if (d->vendor_id != GRU_PCI_VENDOR_ID || d->device_id != GRU_PCI_DEVICE_ID)
			continue;
		if (!pci_filter_match(&slot_f, d) || !pci_filter_match(&id_f, d))
			continue;
		found++;
		snprintf(slot, sizeof(slot), "%04x:%02x:%02x.%d", d->domain, d->bus,
			 d->dev, d->func);
		if (numeric)
			printf("%s %04x: ", slot, d->device_class);
		else
			printf("%s %s [%04x]: ", slot,
			       pci_lookup_name(pacc, name, sizeof(name),
					       PCI_LOOKUP_CLASS, d->device_class),
			       d->device_class);
		printf("GRU external TLB [%04x:%04x] (rev %02x)\n", d->vendor_id,
		       d->device_id, pci_read_byte(d, PCI_REVISION_ID));
		printf("\tSubsystem: [%04x:%04x]\n",
		       pci_read_word(d, PCI_SUBSYSTEM_VENDOR_ID),
		       pci_read_word(d, PCI_SUBSYSTEM_ID));
		printf("\tControl: Mem%c BusMaster%c\n",
		       pci_read_word(d, PCI_COMMAND) & PCI_COMMAND_MEMORY ? '+' : '-',
		       pci_read_word(d, PCI_COMMAND) & PCI_COMMAND_MASTER ? '+' : '-');
		print_bars(d);
		print_msix(d);
		print_driver(slot);
		print_debugfs(slot);
		printf("\n");
	}
	pci_cleanup(pacc);
	if (!found) {
		printf("gru-info: no %04x:%04x device%s (QEMU needs -device gru-tlb)\n",
		       GRU_PCI_VENDOR_ID, GRU_PCI_DEVICE_ID,
		       argc > 1 ? " matches" : " found");
		return 0;
	}
	print_geometry();
	return 0;
}
