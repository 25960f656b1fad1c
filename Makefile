# GRU-style external TLB: the emulated device (QEMU), its Linux driver, the
# user library and tests.  Two commands matter (README.md):
#
#   make run     build everything, boot the guest with the device, run the demo
#                and the latency report
#   make check   device qtests, then the guest tests; ends "N passed, N failed"
#
# Every target does its own host setup (Debian 12, root).  Slow inputs (QEMU
# source and build, guest kernel, initramfs) are cached in $(GRU_CACHE).
# Other targets: setup qemu kernel module tools initramfs qtests
# guest-check clean help.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
export GRU_CACHE ?= /var/cache/gru-build

# Guest kernel for run/check: 6.1 (default), 6.12, or debug (scripts/guest-kernel.sh).
KERNEL ?= 6.1
RESULTS ?= $(CURDIR)/results
B := $(CURDIR)/build
GRU_DRV := $(CURDIR)/drivers/misc/gru
GRU_TOOLS := $(CURDIR)/tools/gru-test

# Extra scripts/guest-run.sh options per job.
RUN_GUEST_ARGS ?=
CHECK_GUEST_ARGS ?= --numa 2 --mem 4G --hugepages
CHECK_TIMEOUT ?= 1500
# The race detector's mutation run: both race closures off (device and driver).
MUTATION_ARGS ?= --device-opts no-gen-check=on \
	--append "gru_tlb.no_seq_check=1 gru_tlb.no_post_inval=1"

# The QEMU binary and the guest kernel, as resolved by the qemu/kernel targets.
QEMU_BIN = $$(cat $(B)/qemu.path)
KENV = . $(B)/guest-kernel.env

.PHONY: all help setup qemu kernel module tools initramfs run check qtests guest-check clean
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
	scripts/guest-kernel.sh $(KERNEL) >$(B)/guest-kernel.env.tmp
	@mv $(B)/guest-kernel.env.tmp $(B)/guest-kernel.env
	@cat $(B)/guest-kernel.env

module: kernel
	@if [ -f $(GRU_DRV)/Makefile ] || [ -f $(GRU_DRV)/Kbuild ]; then \
		$(KENV); echo "module: building gru_tlb.ko for $$KVER"; \
		$(MAKE) -j2 -C $$KBUILD M=$(GRU_DRV) W=1 modules; \
	else \
		echo "module: $(GRU_DRV) has no Makefile yet; the guest runs without the driver"; \
	fi

tools: setup
	@if [ -f $(GRU_TOOLS)/Makefile ]; then \
		$(MAKE) -j2 -C $(GRU_TOOLS); \
	else \
		echo "tools: $(GRU_TOOLS) has no Makefile yet"; \
	fi

initramfs: kernel module tools
	@$(KENV); export KVER KMODROOT; scripts/mkinitramfs.sh --kernel $(KERNEL) >$(B)/initramfs.path
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
		--no-tests-ok $(RUN_GUEST_ARGS) --script scripts/guest/run-demo.sh
	@dirs=$(RESULTS)/run; rm -rf $(RESULTS)/run-icount; \
	if [ -x $(GRU_TOOLS)/build/gru-bench ]; then \
		$(KENV); export KVER KIMAGE KMODROOT; \
		QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/run-icount \
			--no-tests-ok $(RUN_ICOUNT_ARGS) 'gru-bench'; \
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

# Guest tests: the device as lspci sees it, then the project's suite, then
# (when the race detector is built) the mutation run that must catch races.
guest-check: qemu initramfs
	@mkdir -p $(RESULTS); rc=0; \
	$(KENV); export KVER KIMAGE KMODROOT; \
	QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/guest \
		--timeout $(CHECK_TIMEOUT) $(CHECK_GUEST_ARGS) \
		'gru-lspci-check 1' \
		'if [ -x /opt/gru/bin/run-guest-tests.sh ]; then run-guest-tests.sh; else echo "# run-guest-tests.sh not built yet"; fi' \
		2>&1 | tee $(RESULTS)/guest.log || rc=1; \
	if [ -x $(GRU_TOOLS)/build/gru-race ]; then \
		QEMU=$(QEMU_BIN) scripts/guest-run.sh --kernel $(KERNEL) --results $(RESULTS)/mutation \
			--timeout $(CHECK_TIMEOUT) $(CHECK_GUEST_ARGS) $(MUTATION_ARGS) \
			'run-guest-tests.sh --mutation' 2>&1 | tee $(RESULTS)/mutation.log || rc=1; \
	else \
		rm -f $(RESULTS)/mutation.log; \
	fi; \
	exit $$rc

# Runs every stage even when one fails, then sums the stages' closing
# "N passed, N failed" lines; a stage that died before printing one
# counts as one failure.
check: qemu initramfs
	@mkdir -p $(RESULTS); rm -f $(RESULTS)/{qtests,guest,mutation}.log; rc=0; \
	$(MAKE) --no-print-directory qtests || rc=1; \
	$(MAKE) --no-print-directory guest-check || rc=1; \
	p=0; f=0; \
	for s in qtests guest mutation; do \
		log=$(RESULTS)/$$s.log; \
		[ -e $$log ] || { [ $$s = mutation ] && continue; echo "check: $$s: did not run"; f=$$((f + 1)); continue; }; \
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
	@if [ -f $(GRU_DRV)/Makefile ] && [ -f $(B)/guest-kernel.env ]; then \
		$(KENV); $(MAKE) -C $$KBUILD M=$(GRU_DRV) clean; fi
	@if [ -f $(GRU_TOOLS)/Makefile ]; then $(MAKE) -C $(GRU_TOOLS) clean; fi
	rm -rf $(B) $(RESULTS)
