#!/bin/bash
# Fetch Debian's prebuilt guest kernel and make its module tree usable.
#
#   scripts/guest-kernel.sh [6.1|6.12|6.1-rt|debug]      (default 6.1)
#
# 6.1-rt is Debian's PREEMPT_RT flavour of 6.1, where the driver has no
# hard-IRQ walk (docs/driver.md); it is not part of make check.
# "debug" hands over to scripts/debug-kernel.sh (a kernel built from source
# with lockdep and KASAN), which must print the same assignments.
#
# The exact ABI version (e.g. 6.1.0-56-amd64) is resolved from the
# linux-image-amd64 metapackage (linux-image-6.12-amd64 for 6.12), so a Debian point release that bumps the
# ABI does not break this script.  The image .deb is downloaded into
# $GRU_CACHE and unpacked there (never into the host's /boot); the matching
# linux-headers package is installed on the host so that the module builds
# with  make -C /lib/modules/$KVER/build M=.../drivers/misc/gru .
#
# Prints shell assignments on stdout (progress goes to stderr):
#   KVER=6.1.0-56-amd64
#   KIMAGE=/var/cache/gru-build/guest-kernel/6.1.0-56-amd64/root/boot/vmlinuz-...
#   KMODROOT=/var/cache/gru-build/guest-kernel/6.1.0-56-amd64/root
#   KBUILD=/lib/modules/6.1.0-56-amd64/build
# so callers can  eval "$(scripts/guest-kernel.sh 6.1)" .
# Idempotent: a warm cache answers without touching apt.
set -euo pipefail

series=${1:-6.1}
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GRU_CACHE:-/var/cache/gru-build}
log() { echo "guest-kernel: $*" >&2; }
die() { echo "guest-kernel: error: $*" >&2; exit 1; }

resolve() {
	local pkg
	case "$series" in
	6.1)
		# The bookworm metapackage points at the current 6.1 ABI.
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		      awk '/Depends: linux-image-6\.1\.0-[0-9]+-amd64$/ {print $2; exit}')
		;;
	6.12)
		# bookworm's 6.12 series has a metapackage of its own.
		pkg=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null |
		      awk '/Depends: linux-image-6\.12\.[0-9]+\+deb12-amd64$/ {print $2; exit}')
		;;
	6.1-rt)
		pkg=$(apt-cache depends linux-image-rt-amd64 2>/dev/null |
		      awk '/Depends: linux-image-6\.1\.0-[0-9]+-rt-amd64$/ {print $2; exit}')
		;;
	*)
		die "unknown kernel series '$series' (use 6.1, 6.12, 6.1-rt or debug)"
		;;
	esac
	[ -n "$pkg" ] || die "cannot resolve the $series image from apt; run scripts/setup-host.sh (apt-get update) first"
	echo "${pkg#linux-image-}"
}

if [ "$series" = debug ]; then
	# A locally built debug kernel (lockdep, KASAN): its script prints
	# the same four assignments.
	[ -x "$repo/scripts/debug-kernel.sh" ] ||
		die "no scripts/debug-kernel.sh in this tree: use 6.1 or 6.12"
	exec "$repo/scripts/debug-kernel.sh"
fi
kver=$(resolve)

dir=$cache/guest-kernel/$kver
root=$dir/root

if [ ! -e "$dir/.done" ]; then
	[ "$(id -u)" = 0 ] || die "must run as root (apt-get download/install)"
	log "fetching linux-image-$kver into $dir"
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	# apt drops privileges to _apt for downloads; let it write here.
	if id _apt >/dev/null 2>&1; then chown _apt "$dir.tmp"; fi
	(cd "$dir.tmp" && apt-get download -q "linux-image-$kver" >&2) ||
		die "apt-get download linux-image-$kver failed; check the apt mirror, run scripts/setup-host.sh"
	deb=$(ls "$dir.tmp/linux-image-${kver}"_*.deb)
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$dir.tmp/root"
	# Merged-/usr images ship /usr/lib/modules; give both spellings one tree.
	if [ ! -d "$dir.tmp/root/lib/modules" ] && [ -d "$dir.tmp/root/usr/lib/modules" ]; then
		ln -s usr/lib "$dir.tmp/root/lib"
	fi
	[ -f "$dir.tmp/root/boot/vmlinuz-$kver" ] || die "$deb has no boot/vmlinuz-$kver"
	[ -d "$dir.tmp/root/lib/modules/$kver" ] || die "$deb has no lib/modules/$kver"
	log "depmod for the extracted tree"
	depmod -b "$dir.tmp/root" "$kver"
	rm -f "$deb"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	touch "$dir/.done"
fi

if [ ! -e "/lib/modules/$kver/build/Makefile" ]; then
	[ "$(id -u)" = 0 ] || die "must run as root to install linux-headers-$kver"
	log "installing linux-headers-$kver on the host"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"linux-headers-$kver" >/dev/null ||
		die "apt-get install linux-headers-$kver failed; run apt-get update (scripts/setup-host.sh) and retry"
fi

echo "KVER=$kver"
echo "KIMAGE=$root/boot/vmlinuz-$kver"
echo "KMODROOT=$root"
echo "KBUILD=/lib/modules/$kver/build"
