#!/bin/bash
# Build the guest's initramfs (gzip'd cpio) and print its path.
#
#   scripts/mkinitramfs.sh [--kernel 6.1] [--module PATH|none] [--modules "zram loop ext4"]
#
# Contents:
#   /init                      scripts/guest/init (mounts, module loading, runs
#                              the host's commands, powers off with a verdict)
#   /bin/busybox               from busybox-static, applets linked at boot
#   /lib/modules/*.ko          image modules (default: zram, loop, ext4 and
#                              their dependencies), decompressed here because
#                              busybox insmod cannot read .ko.xz/.ko.zst
#   /lib/modules/gru_tlb.ko    the project's driver, if built for this kernel
#   /opt/gru/bin/              tools/gru-test/build/* and run-guest-tests.sh
#   /opt/gru/kselftest/        the kselftest install tree of the guest tests
#                              (scripts/build-selftests.sh): run_kselftest.sh,
#                              kselftest/ktap_helpers.sh, drivers/misc/gru_tlb/
#   /usr/lib/libgru.so.1       the shared libgru, and every library a tool's
#                              build/NAME.libs lists, for gru-info and gru-bench
#   /usr/bin/lspci             the real one, with its shared libraries and
#                              /usr/share/misc/pci.ids, so lspci -nn -vv works
#   /sbin/gru-lspci-check      KTAP check of the device's BARs and MSI-X (a
#                              link to the kselftest's copy)
#   /sbin/gru-iommu-check      KTAP check of the driver under a translating
#                              IOMMU (guest-run.sh --iommu)
#   /etc/gru-pci.conf          PCI IDs and BAR numbers from drivers/misc/gru/gru_regs.h
#
# The commands to run are not in here: guest-run.sh appends a small second
# archive per run, so this one is cached in $GRU_CACHE/initramfs/ under a
# hash of every input and rebuilt only when one changes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GRU_CACHE:-/var/cache/gru-build}
series=6.1
module=auto
modules=${GRU_GUEST_MODULES:-zram loop ext4}
log() { echo "mkinitramfs: $*" >&2; }
die() { echo "mkinitramfs: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) series=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	--modules) modules=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;/^set -e/d'; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

if [ -z "${KVER:-}" ] || [ -z "${KMODROOT:-}" ]; then
	eval "$("$repo/scripts/guest-kernel.sh" "$series")"
fi

busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	die "$busybox is not the static busybox; run scripts/setup-host.sh (busybox-static)"
command -v lspci >/dev/null || die "lspci missing; run scripts/setup-host.sh (pciutils)"
pciids=/usr/share/misc/pci.ids
[ -r "$pciids" ] || die "$pciids missing; run scripts/setup-host.sh (pci.ids)"

# The driver goes in only if it was built for this guest kernel: a module
# left over from a 6.12 build must not silently fail to load in 6.1.
# `make module` builds into build/kmod/<kernel>/{debug,prod}/; a module
# built by hand in drivers/misc/gru comes second.
if [ "$module" = auto ]; then
	module=none
	for m in "$repo/build/kmod/$series/debug/drivers/misc/gru/gru_tlb.ko" \
		 "$repo/drivers/misc/gru/gru_tlb.ko"; do
		[ -f "$m" ] || continue
		vm=$(modinfo -F vermagic "$m" 2>/dev/null | awk '{print $1}')
		if [ "$vm" = "$KVER" ]; then
			module=$m
			break
		fi
		log "skipping $m: built for '$vm', guest runs $KVER (make module)"
	done
fi
[ "$module" = none ] || [ -f "$module" ] || die "module $module not found"

# Image modules and their dependencies, in load order.
modlist=()
for m in $modules; do
	# Built-in ones print "builtin NAME" and need nothing here.
	if ! deps=$(modprobe -S "$KVER" -d "$KMODROOT" --show-depends "$m" 2>/dev/null); then
		log "warning: module $m is not in $KVER's image; the guest goes without it"
		continue
	fi
	while read -r kind path _; do
		[ "$kind" = insmod ] || continue
		case " ${modlist[*]} " in *" $path "*) ;; *) modlist+=("$path") ;; esac
	done <<<"$deps"
done

tools=()
if [ -d "$repo/tools/gru-test/build" ]; then
	while IFS= read -r f; do tools+=("$f"); done < <(
		find "$repo/tools/gru-test/build" -maxdepth 1 -type f -perm -u+x | sort)
fi
runner=$repo/tools/gru-test/run-guest-tests.sh
[ -f "$runner" ] || runner=
ksft=${GRU_KSFT_INSTALL:-$repo/build/ksft/tools/testing/selftests/kselftest_install}
ksft_files=()
if [ -d "$ksft/drivers/misc/gru_tlb" ]; then
	while IFS= read -r f; do ksft_files+=("$f"); done < <(find "$ksft" -type f | LC_ALL=C sort)
else
	log "no guest tests in $ksft (scripts/build-selftests.sh): the guest runs without them"
	ksft=
fi
# Shared libraries of the dynamically linked tools, as their build listed
# them (libgru comes from the source tree, which ldd alone would not find).
tool_libs=()
for t in "${tools[@]}"; do
	[ -f "$t.libs" ] || continue
	while IFS= read -r lib; do
		[ -e "$lib" ] || die "$lib (listed in $t.libs) missing: make tools"
		case " ${tool_libs[*]} " in *" $lib "*) ;; *) tool_libs+=("$lib") ;; esac
	done <"$t.libs"
done

lspci_bin=$(command -v lspci)
inputs=("$0" "$repo/scripts/guest/init" "$KMODROOT/lib/modules/$KVER/modules.dep.bin" "$repo/scripts/guest/gru-iommu-check"
	"$repo/drivers/misc/gru/gru_regs.h" "$busybox" "$lspci_bin" "$pciids"
	"${modlist[@]}" "${tools[@]}" "${tool_libs[@]}" "${ksft_files[@]}")
[ "$module" = none ] || inputs+=("$module")
[ -z "$runner" ] || inputs+=("$runner")
# Contents and names only, not where the repo lives (CI clones elsewhere).
key=$({
	echo "$KVER $modules"
	for f in "${inputs[@]}"; do echo "$(basename "$f") $(sha256sum <"$f")"; done
} | sha256sum | cut -c1-16)
out=$cache/initramfs/$KVER-$key.cpio.gz
if [ -s "$out" ]; then
	touch "$out"
	echo "$out"
	exit 0
fi

log "building $(basename "$out") (${#modlist[@]} image modules, module: $(basename "$module"), ${#tools[@]} tools)"
mkdir -p "$cache/initramfs"
stage=$(mktemp -d "$cache/initramfs/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,etc,proc,sys,tmp,run,root,results,gru,lib/modules,opt/gru/bin,usr/bin,usr/share/misc}
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3
install -m 755 "$repo/scripts/guest/init" "$stage/init"
install -m 755 "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
install -m 755 "$repo/scripts/guest/gru-iommu-check" "$stage/sbin/gru-iommu-check"

# The contract header is the one source of the IDs and BAR numbers.
hdr=$repo/drivers/misc/gru/gru_regs.h
for name in GRU_PCI_VENDOR_ID GRU_PCI_DEVICE_ID GRU_BAR_REGS GRU_BAR_WINDOWS GRU_BAR_MSIX; do
	val=$(awk -v n="$name" '$1 == "#define" && $2 == n {print $3; exit}' "$hdr")
	[ -n "$val" ] || die "$name not found in $hdr"
	echo "$name=$val"
done >"$stage/etc/gru-pci.conf"

: >"$stage/lib/modules/load.list"
for path in "${modlist[@]}"; do
	base=$(basename "$path")
	case "$base" in
	*.ko.xz)  xz -dc "$path" >"$stage/lib/modules/${base%.xz}"; base=${base%.xz} ;;
	*.ko.zst) zstd -qdc "$path" >"$stage/lib/modules/${base%.zst}"; base=${base%.zst} ;;
	*.ko.gz)  gzip -dc "$path" >"$stage/lib/modules/${base%.gz}"; base=${base%.gz} ;;
	*)        cp "$path" "$stage/lib/modules/$base" ;;
	esac
	echo "$base" >>"$stage/lib/modules/load.list"
done
[ "$module" = none ] || cp "$module" "$stage/lib/modules/gru_tlb.ko"
# lspci -k/-vv asks libkmod for the kernel's module indexes; without
# them it complains on every run.
mkdir -p "$stage/lib/modules/$KVER"
for idx in modules.dep.bin modules.alias.bin modules.symbols.bin modules.builtin.bin modules.builtin.alias.bin; do
	[ ! -f "$KMODROOT/lib/modules/$KVER/$idx" ] || cp "$KMODROOT/lib/modules/$KVER/$idx" "$stage/lib/modules/$KVER/"
done

for t in "${tools[@]}"; do install -m 755 "$t" "$stage/opt/gru/bin/"; done
[ -z "$runner" ] || install -m 755 "$runner" "$stage/opt/gru/bin/run-guest-tests.sh"
if [ -n "$ksft" ]; then
	cp -a "$ksft" "$stage/opt/gru/kselftest"
	ln -s /opt/gru/kselftest/drivers/misc/gru_tlb/gru-lspci-check "$stage/sbin/gru-lspci-check"
fi

# lspci and any dynamically linked tool get their libraries and loader.
copy_libs() {
	local lib
	for lib in $(ldd "$1" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*'); do
		mkdir -p "$stage$(dirname "$lib")"
		[ -e "$stage$lib" ] || cp -L "$lib" "$stage$lib"
	done
}
install -m 755 "$lspci_bin" "$stage/usr/bin/lspci"
copy_libs "$lspci_bin"
for t in "${tools[@]}"; do
	if [ -f "$t.libs" ]; then
		continue
	elif file -L "$t" | grep -q 'dynamically linked'; then
		copy_libs "$t"
	fi
done
for lib in "${tool_libs[@]}"; do
	case "$lib" in
	"$repo"/*) dst=/usr/lib/$(basename "$lib") ;;	# the project's own: libgru
	*) dst=$lib ;;
	esac
	mkdir -p "$stage$(dirname "$dst")"
	[ -e "$stage$dst" ] || cp -L "$lib" "$stage$dst"
done
cp "$pciids" "$stage/usr/share/misc/pci.ids"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
# Keep the few newest images; each is a few MiB.
ls -t "$cache/initramfs/"*.cpio.gz 2>/dev/null | tail -n +6 | xargs -r rm -f
log "$(du -h "$out" | cut -f1) $out"
echo "$out"
