#!/bin/bash
# Build QEMU with the gru-tlb device (cached) and run the device qtests
# (qemu-hw/tests/gru-test.c) against it.  No guest kernel is involved.
#
# stdout: the qtest TAP, then exactly one summary line `N passed, N failed`.
# Exit status: 0 only if at least one test ran and none failed.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

echo "run-qtests: building QEMU with the device (scripts/build-qemu.sh)" >&2
QEMU=$("$REPO/scripts/build-qemu.sh" | tail -n1)
if [ -z "$QEMU" ] || [ ! -x "$QEMU" ]; then
	echo "run-qtests: ERROR: scripts/build-qemu.sh did not produce a binary; see its output above" >&2
	echo "0 passed, 0 failed"
	exit 1
fi
TEST=$(dirname "$QEMU")/gru-test
if [ ! -x "$TEST" ]; then
	echo "run-qtests: ERROR: $TEST is missing; rerun scripts/build-qemu.sh" >&2
	echo "0 passed, 0 failed"
	exit 1
fi

echo "run-qtests: running $TEST" >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# A hung QEMU must not hang CI: the whole suite runs in well under a minute.
QTEST_QEMU_BINARY=$QEMU timeout -k 10 300 "$TEST" --tap -k 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

passed=$(grep -cE '^ok ' "$out")
failed=$(grep -cE '^not ok ' "$out")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# Crashed or timed out between tests: count that as a failure.
	echo "not ok - gru-test exited with status $rc"
	failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
