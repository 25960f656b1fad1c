#!/bin/bash
# Build and install the guest tests (tools/testing/selftests/drivers/misc/
# gru_tlb) with the kernel's own kselftest machinery, and print the install
# directory (a kselftest_install tree: run_kselftest.sh, kselftest/, and
# drivers/misc/gru_tlb/).
#
#   scripts/build-selftests.sh [--clean] [make args...]
#
# This repo has no tools/testing/selftests/lib.mk, and the unpacked
# linux-source-6.12 in $GRU_CACHE is shared and must stay untouched.  So
# the build runs in a scratch kernel layout under build/ksft/: copies of
# the kernel's selftests Makefile, lib.mk, kselftest headers and helpers
# (and scripts/subarch.include, which that Makefile reads), our test
# directory as per-file symlinks (a symlinked directory would make
# "../../../kselftest_harness.h" resolve in this repo), and tools/lib/gru
# as a symlink.  The build is then exactly what a kernel tree does with
# the directory dropped in: make -C tools/testing/selftests
# TARGETS=drivers/misc/gru_tlb install.  <misc/gru.h> comes from this
# repo's include/uapi through KHDR_INCLUDES (a kernel tree would take it
# from "make headers").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$repo/build/ksft
target=drivers/misc/gru_tlb
die() { echo "build-selftests: error: $*" >&2; exit 1; }

if [ "${1:-}" = --clean ]; then
	rm -rf "$scratch"
	exit 0
fi

src=$("$repo/scripts/linux-src.sh" 6.12) || die "no unpacked linux-source-6.12: run scripts/setup-host.sh as root"
ksrc=$src/tools/testing/selftests
[ -f "$ksrc/lib.mk" ] && [ -f "$ksrc/kselftest/ktap_helpers.sh" ] ||
	die "$ksrc lacks lib.mk or kselftest/ktap_helpers.sh"

st=$scratch/tools/testing/selftests
mkdir -p "$st/$target" "$scratch/tools/lib" "$scratch/scripts"
# The kernel's files are copied only when they changed, so make's
# timestamps stay meaningful.
for f in Makefile lib.mk kselftest.h kselftest_harness.h run_kselftest.sh; do
	cp -pu "$ksrc/$f" "$st/$f"
done
cp -pRu "$ksrc/kselftest" "$st/"
cp -pu "$src/scripts/subarch.include" "$scratch/scripts/"
ln -sfn "$repo/tools/lib/gru" "$scratch/tools/lib/gru"
# Per-file links: files added or removed in the source show up here.
find "$st/$target" -maxdepth 1 -type l -delete
# Sources only: binaries left by a build in the source directory would
# look up to date here.
for f in "$repo/tools/testing/selftests/$target"/*; do
	[ -f "$f" ] || continue
	case "$f" in *.o) continue ;; esac
	[ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" != 177ELF ] || continue
	ln -sfn "$f" "$st/$target/$(basename "$f")"
done

make -C "$st" TARGETS="$target" KHDR_INCLUDES="-isystem $repo/include/uapi" \
	--no-print-directory "${@:-install}" >&2
echo "$st/kselftest_install"
