# GRU-style external TLB: the emulated device (QEMU), its Linux driver, the
# user library and tests.  Two commands matter (README.md):
#
#   make run     build everything, boot the guest with the device, run the demo
#                and the latency report
#   make check   device qtests (also under ASan+UBSan, with the fuzzer),
#                the guest tests (test-hook module), a boot
#                with the production module, one with an IOMMU, the
#                mutation run on the debug kernel, the QMP relay check and
#                a DKMS install in a fresh root; ends "N passed, N failed"
#
# Every target does its own host setup (Debian 12, root).  Slow inputs (QEMU
# source and build, guest kernel, initramfs) are cached in $(GRU_CACHE).
# Other targets: setup qemu kernel module tools initramfs qtests qtests-san
# guest-check mutation-check relay-check dkms-source dkms-check userspace
# install clean help.  "make install DESTDIR=... PREFIX=/usr" installs
# libgru (library, headers, pkg-config file), the tools and their man pages.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
export GRU_CACHE ?= /var/cache/gru-build

# Guest kernel for run/check: 6.1 (default), 6.12, or debug (scripts/guest-kernel.sh).
KERNEL ?= 6.1
RESULTS ?= $(CURDIR)/results
B := $(CURDIR)/build
GRU_DRV := $(CURDIR)/drivers/misc/gru
GRU_TOOLS := $(CURDIR)/tools/gru-test
GRU_LIB := $(CURDIR)/tools/lib/gru
DESTDIR ?=
PREFIX ?= /usr/local

# Extra scripts/guest-run.sh options per job.
RUN_GUEST_ARGS ?=
CHECK_GUEST_ARGS ?= --numa 2 --mem 4G --hugepages
CHECK_TIMEOUT ?= 1500
# The race detector's mutation run: both race closures off, the device's
# by its test property, the driver's by fault injection, which needs a
# kernel with FAULT_INJECTION_DEBUG_FS (Debian's have none): the debug one.
MUTATION_KERNEL ?= debug
MUTATION_ARGS ?=

# The QEMU binary and the guest kernel, as resolved by the qemu/kernel targets.
QEMU_BIN = $$(cat $(B)/qemu.path)
KENV = . $(B)/guest-kernel-$(KERNEL).env

# The module for the guest kernel, in a tree of its own per kernel and per
# kind: "debug" has the test hooks (CONFIG_GRU_TLB_DEBUG) the suite needs,
# "prod" is what a user would install.
KMOD_KO = $(B)/kmod/$(KERNEL)/$(1)/drivers/misc/gru/gru_tlb.ko

.PHONY: all help setup qemu kernel module tools initramfs run check qtests qtests-san guest-check \
	mutation-check relay-check dkms-source dkms-check userspace install clean
all: run

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@scripts/setup-host.sh

qemu: setup
	@mkdir -p $(B)
	scripts/build-qemu.sh >$(B)/qemu.out
	@tail -n1 $(B)/qemu.out >$(B)/qemu.path
	@test -x "$(QEMU_BIN)" || { echo "make: scripts/build-qemu.sh printed no binary path" >&2; exit 1; }
	@echo "qemu: $(QEMU_BIN)"

kernel: setup
	@mkdir -p $(B)
	scripts/guest-kernel.sh $(KERNEL) >$(B)/guest-kernel-$(KERNEL).env.tmp
	@mv $(B)/guest-kernel-$(KERNEL).env.tmp $(B)/guest-kernel-$(KERNEL).env
	@cat $(B)/guest-kernel-$(KERNEL).env

module: kernel
	@$(KENV); for kind in debug prod; do \
		t=$(B)/kmod/$(KERNEL)/$$kind; \
		mkdir -p $$t/drivers/misc/gru $$t/include; \
		rsync -a --include='*.[ch]' --include=Makefile --include=Kconfig \
			--exclude='*' $(GRU_DRV)/ $$t/drivers/misc/gru/; \
		rsync -a $(CURDIR)/include/ $$t/include/; \
		echo "module: building the $$kind gru_tlb.ko for $$KVER"; \
		$(MAKE) -j2 -C $$KBUILD M=$$t/drivers/misc/gru W=1 \
			CONFIG_GRU_TLB_DEBUG=$$([ $$kind = debug ] && echo y || echo n) \
			modules; \
	done

# libgru, the tools, then the guest tests: the kselftest directory built
# with the kernel's lib.mk (scripts/build-selftests.sh), -Werror as the rest.
tools: setup
	@mkdir -p $(B)
	$(MAKE) -C $(GRU_LIB)
	$(MAKE) -j2 -C $(GRU_TOOLS)
	@echo "tools: building the guest tests (scripts/build-selftests.sh)"
	@scripts/build-selftests.sh USERCFLAGS=-Werror -j2 install >$(B)/ksft.path 2>$(B)/ksft.log || \
		{ cat $(B)/ksft.log >&2; echo "tools: the guest tests did not build (log above)" >&2; exit 1; }
	@echo "tools: guest tests in $$(cat $(B)/ksft.path)"

install: tools
	$(MAKE) -C $(GRU_LIB) install DESTDIR=$(DESTDIR) PREFIX=$(PREFIX)
	$(MAKE) -C $(GRU_TOOLS) install DESTDIR=$(DESTDIR) PREFIX=$(PREFIX)

initramfs: kernel module tools
	@$(KENV); export KVER KMODROOT; scripts/mkinitramfs.sh --kernel $(KERNEL) \
		--module $(call KMOD_KO,debug) >$(B)/initramfs.path
	@echo "initramfs: $$(cat $(B)/initramfs.path)"

# The main job: show the device in the guest, then the demo and the
# benchmark when they are built (MTTCG, GRU_TIMING=mttcg).  When gru-bench
# exists, a second boot runs it alone under -icount (one vCPU,
# GRU_TIMING=icount0) for deterministic ratios.  Tools leave data in the
# guest's /results; it lands in $(RESULTS)/run*/guest-files, and
# tools/gru-test/host-report.sh (if present) is called with those run
# directories to print the report and write the plot.
RUN_ICOUNT_ARGS ?= --icount 0 --smp 1
run: qemu initramfs
	@$(KENV); export KVER KIMAGE KMODROOT; \
	QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/run \
		--module $(call KMOD_KO,debug) --no-tests-ok $(RUN_GUEST_ARGS) --script scripts/guest/run-demo.sh
	@dirs=$(RESULTS)/run; rm -rf $(RESULTS)/run-icount; \
	if [ -x $(GRU_TOOLS)/build/gru-bench ]; then \
		$(KENV); export KVER KIMAGE KMODROOT; \
		QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/run-icount \
			--module $(call KMOD_KO,debug) --no-tests-ok $(RUN_ICOUNT_ARGS) 'gru-bench'; \
		dirs="$$dirs $(RESULTS)/run-icount"; \
	fi; \
	if [ -x $(GRU_TOOLS)/host-report.sh ]; then \
		$(GRU_TOOLS)/host-report.sh $$dirs; \
	fi
	@echo "run: the guest saw: $$(sed -n 's/\r$$//; s/^## summary: //p' $(RESULTS)/run/output.log | tail -n1)"
	@echo "run: logs and guest files in $(RESULTS)/run"

qtests: qemu
	@mkdir -p $(RESULTS)
	scripts/run-qtests.sh 2>&1 | tee $(RESULTS)/qtests.log

# The qtests and the seeded fuzzer on the ASan+UBSan build (GRU_FUZZ_SEED,
# GRU_FUZZ_SEEDS, GRU_FUZZ_OPS pass through; docs/testing.md).
qtests-san: setup
	@mkdir -p $(RESULTS)
	scripts/run-qtests.sh --sanitize 2>&1 | tee $(RESULTS)/qtests-san.log

# The guest's QMP relay refuses what the tests do not need (real QEMU, no guest).
relay-check: qemu
	@mkdir -p $(RESULTS)
	scripts/qmp-relay-test.py $(QEMU_BIN) 2>&1 | tee $(RESULTS)/relay.log

# Guest tests: the device as lspci sees it, then the project's suite with
# the test hooks built in, then a boot with the production module (the
# hooks must be absent), then one with an IOMMU that translates DMA
# (gru-iommu-check, production module), then the mutation run that must
# catch races (on MUTATION_KERNEL, which has fault injection).
guest-check: qemu initramfs
	@mkdir -p $(RESULTS); rc=0; \
	$(KENV); export KVER KIMAGE KMODROOT; \
	QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/guest \
		--module $(call KMOD_KO,debug) --timeout $(CHECK_TIMEOUT) $(CHECK_GUEST_ARGS) \
		'gru-lspci-check 1' 'GRU_EXPECT_BUILD=debug run-guest-tests.sh' \
		2>&1 | tee $(RESULTS)/guest.log || rc=1; \
	QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/prod \
		--module $(call KMOD_KO,prod) --timeout $(CHECK_TIMEOUT) \
		'GRU_EXPECT_BUILD=production run-guest-tests.sh -t gru_basic_test -t gru_badinput_test' \
		2>&1 | tee $(RESULTS)/prod.log || rc=1; \
	QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/iommu \
		--module $(call KMOD_KO,prod) --timeout $(CHECK_TIMEOUT) --iommu \
		'gru-iommu-check' 2>&1 | tee $(RESULTS)/iommu.log || rc=1; \
	exit $$rc

mutation-check: qemu
	@mkdir -p $(RESULTS); \
	$(MAKE) --no-print-directory KERNEL=$(MUTATION_KERNEL) module tools; \
	. $(B)/guest-kernel-$(MUTATION_KERNEL).env; export KVER KIMAGE KMODROOT; \
	QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(MUTATION_KERNEL) --results $(RESULTS)/mutation \
		--module $(B)/kmod/$(MUTATION_KERNEL)/debug/drivers/misc/gru/gru_tlb.ko \
		--timeout $(CHECK_TIMEOUT) $(CHECK_GUEST_ARGS) $(MUTATION_ARGS) \
		'run-guest-tests.sh --mutation' 2>&1 | tee $(RESULTS)/mutation.log

# The driver as DKMS source (dkms.conf, Kbuild, sources, the uapi header),
# staged in $(B)/dkms/gru-tlb-<VERSION> for `dkms add`.
dkms-source:
	@scripts/dkms-source.sh $(B)/dkms

# Stages that source, then dkms add/build/install/remove for the 6.1 and
# 6.12 headers in a cold Debian 12 chroot (cached in $(GRU_CACHE)/dkms-root).
dkms-check: setup
	@mkdir -p $(RESULTS)
	scripts/dkms-check.sh --src "$$(scripts/dkms-source.sh $(B)/dkms | tail -n1)" 2>&1 | tee $(RESULTS)/dkms.log

# libgru as a library (install, pkg-config, soname, exports, man pages);
# on the host, no device needed.
userspace: tools
	@mkdir -p $(RESULTS)
	scripts/check-userspace.sh 2>&1 | tee $(RESULTS)/userspace.log

# Runs every stage even when one fails, then sums the stages' closing
# "N passed, N failed" lines; a stage that died before printing one
# counts as one failure.
check: qemu initramfs
	@mkdir -p $(RESULTS); rm -f $(RESULTS)/{qtests,qtests-san,relay,guest,prod,iommu,mutation,dkms,userspace}.log; rc=0; \
	$(MAKE) --no-print-directory qtests || rc=1; \
	$(MAKE) --no-print-directory qtests-san || rc=1; \
	$(MAKE) --no-print-directory relay-check || rc=1; \
	$(MAKE) --no-print-directory userspace || rc=1; \
	$(MAKE) --no-print-directory guest-check || rc=1; \
	$(MAKE) --no-print-directory mutation-check || rc=1; \
	$(MAKE) --no-print-directory dkms-check || rc=1; \
	p=0; f=0; \
	for s in qtests qtests-san relay guest prod iommu mutation dkms userspace; do \
		log=$(RESULTS)/$$s.log; \
		[ -e $$log ] || { echo "check: $$s: did not run"; f=$$((f + 1)); continue; }; \
		line=$$(sed 's/\r$$//' $$log | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n1); \
		if [ -z "$$line" ]; then echo "check: $$s: no result line (see $$log)"; f=$$((f + 1)); continue; fi; \
		echo "check: $$s: $$line"; \
		p=$$((p + $$(echo "$$line" | awk '{print $$1}'))); \
		f=$$((f + $$(echo "$$line" | awk '{print $$3}'))); \
	done; \
	[ $$f -gt 0 ] || [ $$rc = 0 ] || { echo "check: a stage failed without a failed test"; f=1; }; \
	[ $$((p + f)) -gt 0 ] || { echo "check: no test ran"; f=1; }; \
	echo "check: total"; \
	echo "$$p passed, $$f failed"; \
	[ $$f = 0 ]

clean:
	@if [ -f $(GRU_DRV)/gru_tlb.ko ] && [ -d /lib/modules/$$(uname -r)/build ]; then \
		$(MAKE) -C /lib/modules/$$(uname -r)/build M=$(GRU_DRV) clean; fi
	$(MAKE) -C $(GRU_TOOLS) clean
	$(MAKE) -C $(GRU_LIB) clean
	rm -rf $(B) $(RESULTS)
