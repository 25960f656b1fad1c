#!/bin/bash
# Build qemu-system-x86_64 (Debian's QEMU 7.2 source package) with the gru-tlb
# device from qemu-hw/ linked in, plus the device qtest binary.
#
# The result is cached outside the repo, keyed by a hash of everything that
# goes into it, so a warm rerun only hashes and prints the path.
#
# stdout: the path of qemu-system-x86_64, as the LAST line.  The qtest
#         binaries gru-test and gru-fuzz-test sit next to it.
# stderr: progress.
#
# --sanitize (or GRU_SANITIZE=1): a second, separate build with ASan and
# UBSan (every UBSan report fatal), in its own build directory and cache
# ($GRU_CACHE/qemu-build-san, $GRU_CACHE/qemu-bin-san/<key>).  It shares
# the source tree and the lock with the default build, which it leaves
# untouched.
#
# Environment: GRU_CACHE (default /var/cache/gru-build), GRU_JOBS (default 2),
# GRU_SANITIZE.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${GRU_CACHE:-/var/cache/gru-build}
JOBS=${GRU_JOBS:-2}
SANITIZE=${GRU_SANITIZE:-0}
case ${1:-} in
--sanitize) SANITIZE=1 ;;
'') ;;
*)
	echo "usage: $0 [--sanitize]" >&2
	exit 2
	;;
esac
[ "$SANITIZE" = 0 ] || SANITIZE=1
SRC_ROOT=$CACHE/qemu-src
if [ "$SANITIZE" = 1 ]; then
	BUILD=$CACHE/qemu-build-san
	BIN_ROOT=$CACHE/qemu-bin-san
else
	BUILD=$CACHE/qemu-build
	BIN_ROOT=$CACHE/qemu-bin
fi

CONFIGURE_ARGS=(
	--target-list=x86_64-softmmu
	--without-default-features
	--enable-fdt=system
	--disable-docs
	--disable-install-blobs
	--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)
if [ "$SANITIZE" = 1 ]; then
	# --enable-sanitizers should give -fsanitize=address and
	# -fsanitize=undefined (the runtimes come with gcc: libasan8,
	# libubsan1), but QEMU 7.2's UBSan probe fails to compile under
	# GCC 12 (-Werror=maybe-uninitialized in the probe itself), and
	# configure then drops UBSan without a word.  So UBSan is asked for
	# explicitly, and the result is checked after the build.  UBSan only
	# prints and goes on by default; a report must stop QEMU so that the
	# test that provoked it fails.  Frame pointers make the stacks
	# complete.
	CONFIGURE_ARGS+=(
		--enable-sanitizers
		"--extra-cflags=-fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
		--extra-ldflags=-fsanitize=undefined
	)
fi

log() { echo "build-qemu: $*" >&2; }
die() { echo "build-qemu: ERROR: $*" >&2; exit 1; }

mkdir -p "$CACHE" || die "cannot create $CACHE (run as root or set GRU_CACHE)"

# One build at a time: several helpers and CI jobs share the cache.
exec 9>"$CACHE/qemu.lock"
if ! flock -n 9; then
	log "waiting for another build-qemu.sh (lock $CACHE/qemu.lock)"
	flock 9
fi

find_src() {
	local d
	for d in "$SRC_ROOT"/qemu-*/; do
		[ -f "$d/debian/changelog" ] && [ -f "$d/meson.build" ] && {
			echo "${d%/}"
			return 0
		}
	done
	return 1
}

fetch_src() {
	command -v dpkg-source >/dev/null ||
		die "dpkg-dev is missing: run scripts/setup-host.sh"
	# Not a pipe into grep -q: with pipefail, apt-cache's SIGPIPE would fail it.
	local srcinfo
	srcinfo=$(apt-cache showsrc qemu 2>/dev/null || true)
	grep -q '^Package: qemu' <<<"$srcinfo" ||
		die "no deb-src entry for qemu: run scripts/setup-host.sh"
	log "fetching Debian's qemu source package into $SRC_ROOT (apt-get source)"
	rm -rf "$SRC_ROOT.tmp"
	mkdir -p "$SRC_ROOT.tmp"
	(cd "$SRC_ROOT.tmp" && apt-get source -q qemu >&2) ||
		die "apt-get source qemu failed: check network and run scripts/setup-host.sh"
	rm -rf "$SRC_ROOT"
	mv "$SRC_ROOT.tmp" "$SRC_ROOT"
}

setup_done=
host_setup() {
	[ -n "$setup_done" ] && return 0
	setup_done=1
	if [ "$(id -u)" = 0 ]; then
		log "checking host packages (scripts/setup-host.sh)"
		"$REPO/scripts/setup-host.sh" >&2 ||
			die "scripts/setup-host.sh failed; fix apt and rerun"
	fi
}

SRC=$(find_src || true)
if [ -z "$SRC" ]; then
	host_setup
	fetch_src
	SRC=$(find_src) || die "apt-get source qemu left no source tree in $SRC_ROOT"
fi
QEMU_VER=$(head -n1 "$SRC/debian/changelog")

# Cache key: device sources, contract headers, this script, QEMU version.
KEY=$(
	cd "$REPO"
	{
		find qemu-hw include drivers/misc/gru/gru_regs.h scripts/build-qemu.sh \
			-type f -print0 |
			LC_ALL=C sort -z | xargs -0 sha256sum
		echo "$QEMU_VER"
		echo "${CONFIGURE_ARGS[*]}"
	} | sha256sum | cut -c1-16
)
OUT=$BIN_ROOT/$KEY
TESTS=(gru-test gru-fuzz-test)
if [ -x "$OUT/qemu-system-x86_64" ] && [ -x "$OUT/gru-test" ] &&
   [ -x "$OUT/gru-fuzz-test" ]; then
	log "cached build $KEY"
	echo "$OUT/qemu-system-x86_64"
	exit 0
fi

host_setup
for t in ninja meson pkg-config python3 cc; do
	command -v $t >/dev/null || die "$t is missing: run scripts/setup-host.sh"
done

# Link the device and its qtest into the QEMU tree.  The symlinks are
# re-pointed on every run because the repo may have moved (CI clones).
log "linking $REPO/qemu-hw into $SRC"
ln -sfn "$REPO/qemu-hw" "$SRC/hw/gru"
rm -f "$SRC/include/gru-contract"
# The contract headers go where QEMU keeps such headers: the register map
# as a device header, the uapi header converted to QEMU's
# standard-headers form as scripts/update-linux-headers.sh would.
install_if_changed() {	# source (or - for stdin), destination
	local tmp
	tmp=$(mktemp)
	cat "$1" >"$tmp"
	if cmp -s "$tmp" "$2"; then
		rm -f "$tmp"
	else
		mkdir -p "$(dirname "$2")"
		mv "$tmp" "$2"
		chmod 644 "$2"
	fi
}
install_if_changed "$REPO/drivers/misc/gru/gru_regs.h" "$SRC/include/hw/misc/gru_regs.h"
sed -e 's/__u\([0-9][0-9]*\)/uint\1_t/g' \
	-e 's/__s\([0-9][0-9]*\)/int\1_t/g' \
	-e 's@#include <linux/types.h>@#include "standard-headers/linux/types.h"@' \
	-e '/#include <linux\/ioctl.h>/d' \
	"$REPO/include/uapi/misc/gru.h" |
	install_if_changed - "$SRC/include/standard-headers/misc/gru.h"
for t in "${TESTS[@]}"; do
	ln -sfn "$REPO/qemu-hw/tests/$t.c" "$SRC/tests/qtest/$t.c"
done

add_line_after() {	# file, anchor regex (first match), line to add
	local f=$1 anchor=$2 line=$3
	grep -qxF "$line" "$f" && return 0
	grep -qE "$anchor" "$f" || die "cannot find '$anchor' in $f (unexpected QEMU tree)"
	local tmp
	tmp=$(mktemp)
	# ENVIRON, not -v: awk would eat the backslashes
	A=$anchor L=$line awk \
		'{ print } !done && $0 ~ ENVIRON["A"] { print ENVIRON["L"]; done = 1 }' \
		"$f" >"$tmp"
	cat "$tmp" >"$f"
	rm -f "$tmp"
}
add_line_after "$SRC/hw/meson.build" "^subdir\\('misc'\\)" "subdir('gru')"
add_line_after "$SRC/hw/Kconfig" "^source misc/Kconfig" "source gru/Kconfig"
add_line_after "$SRC/meson.build" "^    'hw/misc',\$" "    'hw/gru',"
add_line_after "$SRC/tests/qtest/meson.build" "^qtests_i386 = \\\\?" \
	"  (config_all_devices.has_key('CONFIG_GRU_TLB') ? ['gru-test'] : []) + \\"
# The source tree is shared by every clone, and an older clone's script
# does not link the fuzzer in: a dangling link must not break its meson.
add_line_after "$SRC/tests/qtest/meson.build" "^qtests_i386 = \\\\?" \
	"  (config_all_devices.has_key('CONFIG_GRU_TLB') and fs.exists(meson.current_source_dir() / 'gru-fuzz-test.c') ? ['gru-fuzz-test'] : []) + \\"

cfg_stamp=$(printf '%s\n' "${CONFIGURE_ARGS[@]}" "$SRC" | sha256sum | cut -c1-16)
if [ ! -f "$BUILD/build.ninja" ] || [ "$(cat "$BUILD/.gru-configured" 2>/dev/null)" != "$cfg_stamp" ]; then
	log "configuring QEMU in $BUILD"
	rm -rf "$BUILD"
	mkdir -p "$BUILD"
	(cd "$BUILD" && "$SRC/configure" "${CONFIGURE_ARGS[@]}" >&2) ||
		die "configure failed; see the output above (missing -dev packages? run scripts/setup-host.sh)"
	echo "$cfg_stamp" >"$BUILD/.gru-configured"
fi

# ninja decides by mtime, and the symlinks may now point into another clone
# whose files are older than our objects.  The cache missed, so the inputs
# did change: drop everything built from them.
rm -f "$BUILD"/trace/trace-hw_gru.[ch] \
	"$BUILD"/libqemuutil.a.p/meson-generated_.._trace_trace-hw_gru.c.o \
	"$BUILD"/libcommon.fa.p/hw_gru_*.o \
	"$BUILD"/tests/qtest/gru-test.p/*.o \
	"$BUILD"/tests/qtest/gru-fuzz-test.p/*.o
meson_key=$(cat "$REPO/qemu-hw/meson.build" "$REPO/qemu-hw/Kconfig" | sha256sum | cut -c1-16)
if [ "$(cat "$BUILD/.gru-meson" 2>/dev/null)" != "$meson_key" ]; then
	touch "$SRC/meson.build"	# makes ninja re-run meson and Kconfig
	echo "$meson_key" >"$BUILD/.gru-meson"
fi

log "building $BUILD with ninja -j$JOBS (cold: several minutes)"
ninja -C "$BUILD" -j"$JOBS" qemu-system-x86_64 \
	"${TESTS[@]/#/tests/qtest/}" >&2 ||
	die "ninja failed; see the compiler output above"

if [ "$SANITIZE" = 1 ]; then
	libs=$(ldd "$BUILD/qemu-system-x86_64")
	for lib in libasan libubsan; do
		grep -q "$lib" <<<"$libs" ||
			die "the sanitizer build is not linked with $lib; see the configure output above"
	done
fi

mkdir -p "$OUT.tmp"
cp "$BUILD/qemu-system-x86_64" "${TESTS[@]/#/$BUILD/tests/qtest/}" "$OUT.tmp/"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "built $KEY"
echo "$OUT/qemu-system-x86_64"
