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
export QTEST_QEMU_BINARY=$QEMU
mapfile -t paths < <("$TEST" -l | grep '^/')
if [ ${#paths[@]} -eq 0 ]; then
	echo "run-qtests: ERROR: $TEST lists no tests" >&2
	echo "0 passed, 0 failed"
	exit 1
fi

# One process per test: a failed g_assert aborts its process, and must not
# hide the results of the tests after it.
echo "1..${#paths[@]}"
passed=0
failed=0
i=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for p in "${paths[@]}"; do
	i=$((i + 1))
	# A hung QEMU must not hang CI; each test takes well under a second.
	if timeout -k 5 120 "$TEST" --tap -p "$p" >"$log" 2>&1 &&
	   grep -q "^ok 1 $p\$" "$log"; then
		echo "ok $i $p"
		passed=$((passed + 1))
	else
		echo "not ok $i $p"
		grep -v '^# starting QEMU' "$log" | sed 's/^/# /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
