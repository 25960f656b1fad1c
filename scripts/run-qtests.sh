#!/bin/bash
# Build QEMU with the gru-tlb device (cached) and run the device qtests
# (qemu-hw/tests/gru-test.c) against it.  No guest kernel is involved.
#
# --sanitize: use the ASan+UBSan build (scripts/build-qemu.sh --sanitize)
# and also run the seeded fuzzer (qemu-hw/tests/gru-fuzz-test.c; its
# GRU_FUZZ_* variables pass through).  A sanitizer report in a test's
# output fails that test even if the process somehow exited 0.
#
# stdout: the qtest TAP, then exactly one summary line `N passed, N failed`.
# Exit status: 0 only if at least one test ran and none failed.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SANITIZE=
case ${1:-} in
--sanitize) SANITIZE=--sanitize ;;
'') ;;
*)
	echo "usage: $0 [--sanitize]" >&2
	exit 2
	;;
esac

echo "run-qtests: building QEMU with the device (scripts/build-qemu.sh $SANITIZE)" >&2
QEMU=$("$REPO/scripts/build-qemu.sh" $SANITIZE | tail -n1)
if [ -z "$QEMU" ] || [ ! -x "$QEMU" ]; then
	echo "run-qtests: ERROR: scripts/build-qemu.sh did not produce a binary; see its output above" >&2
	echo "0 passed, 0 failed"
	exit 1
fi
TEST=$(dirname "$QEMU")/gru-test
FUZZ=$(dirname "$QEMU")/gru-fuzz-test
for t in "$TEST" ${SANITIZE:+"$FUZZ"}; do
	if [ ! -x "$t" ]; then
		echo "run-qtests: ERROR: $t is missing; rerun scripts/build-qemu.sh $SANITIZE" >&2
		echo "0 passed, 0 failed"
		exit 1
	fi
done

if [ -n "$SANITIZE" ]; then
	# Both QEMU and the test binaries are instrumented, and QEMU inherits
	# these.  Any report kills the process (abort_on_error: a signal,
	# which libqtest reports as QEMU's death).  The caller's options come
	# first so that ours, which the stage depends on, win.
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}abort_on_error=1:halt_on_error=1:detect_leaks=1:print_summary=1
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}abort_on_error=1:halt_on_error=1:print_stacktrace=1:print_summary=1
fi
SAN_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer'

echo "run-qtests: running $TEST${SANITIZE:+ and $FUZZ}" >&2
export QTEST_QEMU_BINARY=$QEMU
# binary, test path, timeout in seconds
tests=()
while read -r p; do
	tests+=("$TEST $p 120")
done < <("$TEST" -l | grep '^/')
if [ -n "$SANITIZE" ]; then
	while read -r p; do
		tests+=("$FUZZ $p ${GRU_FUZZ_TIMEOUT:-900}")
	done < <("$FUZZ" -l | grep '^/')
fi
if [ ${#tests[@]} -eq 0 ]; then
	echo "run-qtests: ERROR: $TEST lists no tests" >&2
	echo "0 passed, 0 failed"
	exit 1
fi

# One process per test: a failed g_assert aborts its process, and must not
# hide the results of the tests after it.
echo "1..${#tests[@]}"
passed=0
failed=0
i=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for entry in "${tests[@]}"; do
	read -r bin p limit <<<"$entry"
	i=$((i + 1))
	# A hung QEMU must not hang CI; each qtest takes well under a second
	# (several under the sanitizers), the fuzzer a few minutes at most.
	if timeout -k 5 "$limit" "$bin" --tap -p "$p" >"$log" 2>&1 &&
	   grep -q "^ok 1 $p\$" "$log" && ! grep -qE "$SAN_RE" "$log"; then
		echo "ok $i $p"
		passed=$((passed + 1))
		# The fuzzer's seeds and counts, so that the log tells them.
		grep '^gru-fuzz: ' "$log" | sed 's/^/# /'
	else
		echo "not ok $i $p"
		grep -v '^# starting QEMU' "$log" | sed 's/^/# /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
