#!/bin/bash
# Build the debug guest kernel (lockdep, KASAN, DEBUG_ATOMIC_SLEEP,
# DEBUG_VM, kmemleak, PCIe hot-plug, userfaultfd) from Debian's linux-source-6.12, once, outside the repo.
#
#   scripts/debug-kernel.sh        (or: scripts/guest-kernel.sh debug,
#                                   make check KERNEL=debug)
#
# The build is cached in $GRU_CACHE/debug-kernel/<key>, where the key hashes
# the config fragment (scripts/debug-kernel.config), this script and the
# source tarball.  A cold build takes about 15 minutes on 2 cores.
# Prints the same assignments as scripts/guest-kernel.sh (KVER, KIMAGE,
# KMODROOT, KBUILD); progress goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GRU_CACHE:-/var/cache/gru-build}
frag=$repo/scripts/debug-kernel.config
log() { echo "debug-kernel: $*" >&2; }

src=$("$repo/scripts/linux-src.sh" 6.12)
key=$( { cat "$frag" "$0"; stat -c '%s-%Y' /usr/src/linux-source-6.12.tar.xz; } |
       sha256sum | cut -c1-16)
d=$cache/debug-kernel/$key

if [ ! -e "$d/.built" ]; then
	for p in libelf-dev libssl-dev bc bison flex; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || {
			log "missing $p: run scripts/setup-host.sh"; exit 1; }
	done
	log "configuring in $d/build"
	mkdir -p "$d/build"
	make -s -C "$src" O="$d/build" defconfig >/dev/null
	make -s -C "$src" O="$d/build" kvm_guest.config >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$d/build" \
		"$d/build/.config" "$frag" >/dev/null
	make -s -C "$src" O="$d/build" olddefconfig >/dev/null
	for opt in PROVE_LOCKING KASAN DEBUG_ATOMIC_SLEEP MMU_GATHER_RCU_TABLE_FREE DEBUG_KMEMLEAK \
		   USERFAULTFD HOTPLUG_PCI_PCIE; do
		grep -q "^CONFIG_$opt=y" "$d/build/.config" || {
			log "CONFIG_$opt did not survive olddefconfig; check $frag"; exit 1; }
	done
	log "building bzImage and modules with -j$(nproc) (about 15 minutes; log in $d/build.log)"
	if ! make -C "$d/build" -j"$(nproc)" bzImage modules >"$d/build.log" 2>&1; then
		tail -n 20 "$d/build.log" >&2
		log "build failed; full log in $d/build.log"
		exit 1
	fi
	rm -rf "$d/root"
	make -s -C "$d/build" INSTALL_MOD_PATH="$d/root" modules_install >/dev/null
	touch "$d/.built"
	log "done"
fi

kver=$(make -s -C "$d/build" kernelrelease)
echo "KVER=$kver"
echo "KIMAGE=$d/build/arch/x86/boot/bzImage"
echo "KMODROOT=$d/root"
echo "KBUILD=$d/build"
