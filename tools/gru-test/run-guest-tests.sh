#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest test runner (busybox sh), installed as /opt/gru/bin/run-guest-tests.sh.
#
# Prepares what the tests need (swap on zram, a real filesystem, KSM,
# hugepages), runs every test binary (each prints its own KTAP stream to
# stdout), and adds a stream of its own, "gru-runner", whose tests check the
# preconditions and that the kernel log stayed free of warnings, BUGs,
# oopses and lockdep reports after each binary.  Exits non-zero if anything
# failed.
#
#   run-guest-tests.sh [-m|--mutation] [-t TEST]... [--race-args "ARGS"]
#
# --mutation: only the race detector runs, three times.  First with the
# device's generation check off (its x-no-gen-check property, set over
# QMP) and the driver's post-change invalidation off (fault point
# fail_post_inval), where the driver's sequence check alone must let no
# violation through; then with the sequence check off too (fail_seq_check)
# and --expect-violations, where it passes only if it saw violations; then
# with the device's check back on and only the sequence check off, where
# the device's check (with the invalidation) must hold alone.  The fault
# points are in /sys/kernel/debug/gru/ in a GRU_TLB_DEBUG module on a
# kernel with FAULT_INJECTION_DEBUG_FS.

BIN=$(dirname "$0")
# The tests are the kselftest directory drivers/misc/gru_tlb, which the
# initramfs installs as /opt/gru/kselftest/drivers/misc/gru_tlb.
TESTS=${GRU_KSFT_DIR:-$BIN/../kselftest/drivers/misc/gru_tlb}
MUTATION=
ONLY=
RACE_ARGS=
while [ $# -gt 0 ]; do
	case "$1" in
	-m|--mutation) MUTATION=1 ;;
	-t) shift; ONLY="$ONLY $1" ;;
	--race-args) shift; RACE_ARGS="$1" ;;
	-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "run-guest-tests: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

P=/sys/module/gru_tlb/parameters
FAULTS=/sys/kernel/debug/gru

FAILED=0
N=0
LINES=""

# Results of the runner's own checks are printed at the end as one stream.
result() {	# result ok|fail|skip name [reason]
	N=$((N + 1))
	case "$1" in
	ok) LINES="$LINES
ok $N $2" ;;
	skip) LINES="$LINES
ok $N $2 # SKIP $3" ;;
	*) LINES="$LINES
not ok $N $2${3:+ # $3}"; FAILED=1 ;;
	esac
}

log() { echo "# run-guest-tests: $*"; }

# Kernel-log patterns that fail the run (issue 4, item 6).
BAD='WARNING:|BUG:|Oops|general protection|kernel BUG|possible circular locking|possible recursive locking|inconsistent lock state|INFO: task .* blocked|KASAN|UBSAN|Call Trace:'

dmesg_mark() { dmesg 2>/dev/null | wc -l; }
dmesg_check() {	# dmesg_check MARK NAME
	if ! dmesg >/dev/null 2>&1; then
		result fail "kernel_log_clean_after_$2" "dmesg unavailable: cannot read the kernel log"
		return
	fi
	new=$(dmesg 2>/dev/null | tail -n +$(( $1 + 1 )) | grep -E "$BAD")
	if [ -n "$new" ]; then
		echo "$new" | sed 's/^/# kernel: /'
		result fail "kernel_log_clean_after_$2"
	else
		result ok "kernel_log_clean_after_$2"
	fi
}

setup_env() {
	mount | grep -q ' /sys/kernel/debug ' || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	# Swap on zram, for the MADV_PAGEOUT test.
	if ! grep -q '^/' /proc/swaps 2>/dev/null; then
		[ -e /sys/block/zram0 ] || modprobe zram num_devices=2 2>/dev/null ||
			insmod /lib/modules/*/zram.ko num_devices=2 2>/dev/null
		if [ -e /sys/block/zram0/disksize ] &&
		   echo 256M > /sys/block/zram0/disksize 2>/dev/null &&
		   mkswap /dev/zram0 >/dev/null 2>&1 && swapon /dev/zram0 2>/dev/null; then
			log "swap on zram0"
		else
			log "no swap (zram unavailable): the pageout test will skip"
		fi
	fi
	# A real (block-backed) filesystem for the file-backed test.
	if [ -z "$GRU_REALFS" ] && ! grep -qE ' (ext2|ext3|ext4|xfs|btrfs|vfat) ' /proc/mounts; then
		mkdir -p /mnt/gru-ext2
		dev=
		if [ -e /sys/block/zram1/disksize ] &&
		   echo 64M > /sys/block/zram1/disksize 2>/dev/null; then
			dev=/dev/zram1
		elif command -v losetup >/dev/null; then
			dd if=/dev/zero of=/tmp/gru-ext2.img bs=1M count=32 2>/dev/null
			dev=$(losetup -f 2>/dev/null) && losetup "$dev" /tmp/gru-ext2.img 2>/dev/null || dev=
		fi
		if [ -n "$dev" ] && mke2fs -q "$dev" >/dev/null 2>&1 &&
		   mount -t ext2 "$dev" /mnt/gru-ext2 2>/dev/null; then
			log "ext2 on $dev at /mnt/gru-ext2"
		else
			log "no block-backed filesystem: the real-fs test will skip"
		fi
	fi
	# KSM scans fast, so the merge test converges in a bounded loop.
	if [ -e /sys/kernel/mm/ksm/run ]; then
		echo 10000 > /sys/kernel/mm/ksm/pages_to_scan 2>/dev/null
		echo 0 > /sys/kernel/mm/ksm/sleep_millisecs 2>/dev/null
		echo 1 > /sys/kernel/mm/ksm/run 2>/dev/null
	fi
	# 2 MiB hugetlb pages for the hugetlbfs test.
	if [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null)" = 0 ]; then
		echo 8 > /proc/sys/vm/nr_hugepages 2>/dev/null
	fi
}

run_bin() {	# run_bin NAME [ARGS]
	name=$1
	shift
	if [ ! -x "$TESTS/$name" ]; then
		result fail "$name" "binary missing from $TESTS"
		return
	fi
	if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $name "; then
		return
	fi
	mark=$(dmesg_mark)
	log "running $name $*"
	"$TESTS/$name" "$@"
	rc=$?
	if [ $rc -ne 0 ]; then
		FAILED=1
		log "$name exited with $rc"
	fi
	dmesg_check "$mark" "$name"
}

module_params() {
	for f in $P/*; do
		[ -r "$f" ] && printf ' %s=%s' "$(basename "$f")" "$(cat "$f")"
	done
}

# reload_module [PARAM=VALUE...]: reload gru_tlb with its current
# parameters overridden by the given ones (no user may hold /dev/gru).
reload_module() {
	ko=$(find / -xdev -name gru_tlb.ko 2>/dev/null | head -n 1)
	params="$(module_params) $*"
	[ -n "$ko" ] || return 1
	rmmod gru_tlb 2>/dev/null || return 1
	# shellcheck disable=SC2086
	insmod "$ko" $params && sleep 1
}

setup_env

if [ -c /dev/gru ]; then
	result ok gru_device_node_present
else
	result fail gru_device_node_present "no /dev/gru: gru_tlb.ko not loaded (check dmesg)"
fi

# set_param NAME Y|N: flip a test-only parameter of the loaded module.
# gru-info behaves like lspci: its filters, its region sizes, its exit
# codes (no device is not an error, a bad filter is).
gru_info_checks() {
	gi=$BIN/gru-info
	conf=/etc/gru-pci.conf
	if [ ! -x "$gi" ] || [ ! -r "$conf" ]; then
		result fail gru_info_like_lspci "gru-info or $conf missing"
		return
	fi
	. "$conf"
	ids=$(printf '%04x:%04x' "$GRU_PCI_VENDOR_ID" "$GRU_PCI_DEVICE_ID")
	s=$(lspci -n -d "$ids" | awk 'NR == 1 { print $1 }')
	class=$(lspci -n -s "$s" | awk '{ sub(":", "", $2); print $2 }')
	sizes() { grep -o 'Region [0-9]*: .*\[size=[^]]*\]' | sed 's/: .*\[size=/ /; s/\]//'; }
	want=$(lspci -vv -s "$s" | sizes)
	got=$("$gi" -s "$s" | sizes)
	if [ -n "$want" ] && [ "$want" = "$got" ]; then
		result ok gru_info_region_sizes_as_lspci
	else
		result fail gru_info_region_sizes_as_lspci \
			"lspci: $(echo $want) / gru-info: $(echo $got)"
	fi
	if "$gi" -s "$s" | grep -q "^0000:$s " && "$gi" -d "$ids" | grep -q "^0000:$s "; then
		result ok gru_info_selects_with_s_and_d
	else
		result fail gru_info_selects_with_s_and_d
	fi
	if "$gi" -n -s "$s" | grep -q "^0000:$s $class: "; then
		result ok gru_info_numeric
	else
		result fail gru_info_numeric "want class $class"
	fi
	out=$("$gi" -d ffff:ffff)
	rc=$?
	if [ "$rc" = 0 ] && echo "$out" | grep -q '^gru-info: no ' &&
	   ! echo "$out" | grep -q '^0000:'; then
		result ok gru_info_no_match_is_not_an_error
	else
		result fail gru_info_no_match_is_not_an_error "exit $rc: $out"
	fi
	"$gi" -s 'zz:zz.zz' >/dev/null 2>&1
	rc1=$?
	"$gi" --bogus >/dev/null 2>&1
	rc2=$?
	"$gi" --help >/dev/null 2>&1
	rc3=$?
	if [ "$rc1" = 2 ] && [ "$rc2" = 2 ] && [ "$rc3" = 0 ]; then
		result ok gru_info_exit_codes
	else
		result fail gru_info_exit_codes "bad -s $rc1, bad option $rc2, --help $rc3"
	fi
}

# device_gen_check on|off: the device's stale drop-in check, switched
# while it runs through QEMU's monitor (the guest's QMP port).
device_gen_check() {
	v=false
	[ "$1" = off ] && v=true
	if $BIN/gru-qmp raw '{"execute": "qom-set", "arguments": {"path": "/machine/peripheral/gru0", "property": "x-no-gen-check", "value": '$v'}}' >/dev/null; then
		result ok "device_gen_check_$1"
	else
		result fail "device_gen_check_$1" "qom-set x-no-gen-check=$v over gru-qmp failed"
	fi
}

# fault_point NAME on|off: make a fault point of the module fail every
# time, quietly, or never.
fault_point() {
	d=$FAULTS/$1
	if [ "$2" = on ]; then
		echo 0 > "$d/verbose" && echo 1 > "$d/interval" &&
			echo -1 > "$d/times" && echo 100 > "$d/probability"
	else
		echo 0 > "$d/probability"
	fi 2>/dev/null || log "cannot turn $1 $2"
}

[ -n "$MUTATION" ] || [ -n "$ONLY" ] || gru_info_checks

if [ -n "$MUTATION" ]; then
	# The device's generation check is off for this whole boot.  First the
	# driver's sequence check alone must keep every stale translation out.
	if [ ! -d $FAULTS/fail_seq_check ]; then
		result fail mutation_fault_points_present \
			"no $FAULTS/fail_seq_check: needs a GRU_TLB_DEBUG module on a kernel with FAULT_INJECTION_DEBUG_FS (make mutation-check)"
	else
		result ok mutation_fault_points_present
		# Before anything arms them: a task's fail-nth must not reach them.
		run_bin gru_isolation_test -t fail_nth_cannot_fire_unarmed_fault_points
		log "device generation check off: the driver's sequence check alone must hold"
		device_gen_check off
		fault_point fail_seq_check off
		fault_point fail_post_inval on
		# shellcheck disable=SC2086
		run_bin gru-race $RACE_ARGS
		log "mutation run: every barrier off, the race detector must see violations"
		fault_point fail_seq_check on
		# shellcheck disable=SC2086
		run_bin gru-race --expect-violations $RACE_ARGS
		log "driver sequence check off: the device generation check alone must hold"
		device_gen_check on
		fault_point fail_post_inval off
		# shellcheck disable=SC2086
		run_bin gru-race $RACE_ARGS
		fault_point fail_seq_check off
	fi
else
	# First the device goes away and comes back: the rest of the suite
	# then runs on the device that came back.
	for t in gru_unplug_test gru_basic_test gru_badinput_test gru_mem_test \
		 gru_safety_test gru_walk_stress_test gru_lifecycle_test; do
		run_bin "$t"
	done
	# ASID reuse needs a small ASID space: reload the module for it.
	asid=$(cat $P/max_asid 2>/dev/null)
	if [ -n "$asid" ] && [ "$asid" -gt 64 ] && reload_module max_asid=8; then
		log "gru_tlb reloaded with max_asid=8 for the isolation tests"
		run_bin gru_isolation_test
		run_bin gru_wrap_test
		reload_module max_asid="$asid" || log "could not restore max_asid=$asid"
	else
		run_bin gru_isolation_test
		run_bin gru_wrap_test
	fi
	# shellcheck disable=SC2086
	run_bin gru-race $RACE_ARGS
	# The device's generation check (with the driver's invalidate after the
	# PTE change) must hold on its own too: switch the sequence check off.
	if [ -d $FAULTS/fail_seq_check ]; then
		log "driver sequence check off: the device generation check alone must hold"
		fault_point fail_seq_check on
		# shellcheck disable=SC2086
		run_bin gru-race $RACE_ARGS
		fault_point fail_seq_check off
	else
		log "no fault points (a kernel without FAULT_INJECTION_DEBUG_FS): the device generation check alone is tested by the debug kernel's runs"
	fi
fi

# kmemleak (the debug kernel): nothing the module allocated may leak.
# Scanned while the module is loaded: its frames print as symbols only then.
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan > /sys/kernel/debug/kmemleak
	sleep 5
	echo scan > /sys/kernel/debug/kmemleak
	leaks=$(grep -c '^unreferenced object' /sys/kernel/debug/kmemleak)
	if grep -A 30 '^unreferenced object' /sys/kernel/debug/kmemleak | grep -q 'gru_'; then
		grep -B 5 -A 30 'gru_' /sys/kernel/debug/kmemleak | sed 's/^/# kmemleak: /' | head -n 80
		result fail kmemleak_no_module_leaks "kmemleak reports objects allocated by gru_tlb"
	else
		result ok kmemleak_no_module_leaks
		log "kmemleak: $leaks unreferenced object(s), none from gru_tlb"
	fi
fi

# Unloading after every user has gone must work.
if [ -z "$ONLY" ] && grep -q '^gru_tlb ' /proc/modules; then
	mark=$(dmesg_mark)
	params=$(module_params)
	if rmmod gru_tlb 2>/dev/null; then
		result ok module_unloads_after_all_users_exit
	else
		result fail module_unloads_after_all_users_exit "rmmod gru_tlb failed"
	fi
	dmesg_check "$mark" rmmod
	# Later commands (demo, benchmark) still want the driver.
	ko=$(find / -xdev -name gru_tlb.ko 2>/dev/null | head -n 1)
	# shellcheck disable=SC2086
	[ -n "$ko" ] && ! grep -q '^gru_tlb ' /proc/modules && insmod "$ko" $params
fi

echo "TAP version 13"
echo "# gru-runner"
echo "1..$N"
echo "$LINES" | sed '/^$/d'
[ $FAILED -eq 0 ] && log "PASS" || log "FAIL"
exit $FAILED
