#!/bin/bash
# Install gru_tlb with DKMS on a cold Debian 12 root, for the 6.1 and the
# 6.12 kernel, the way a user of the packaged source would.
#
#   scripts/dkms-check.sh [--src DIR] [--kernels "KVER ..."] [--keep]
#
#   --src DIR        staged DKMS source (default: scripts/dkms-source.sh's)
#   --kernels LIST   kernel versions to build for (default: the current
#                    bookworm ABIs of 6.1 and 6.12, from the metapackages
#                    linux-headers-amd64 and linux-headers-6.12-amd64)
#   --keep           keep the chroot (how to enter it is printed)
#
# The root is debootstrapped (minbase) from the host's own Debian mirror,
# then gets dkms and the headers packages with apt; the result is cached as
# a tarball in $GRU_CACHE/dkms-root, keyed by suite, mirrors and package
# list, so a rerun only unpacks it.  Inside the chroot: apt-get install
# (a no-op on a cached root), dkms add (which copies the source to
# /usr/src/gru-tlb-<version>), then dkms build, dkms install, modinfo per
# kernel, and dkms remove --all.  Results are KTAP-style lines, then
# "N passed, N failed"; exit status 0 only if everything passed.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
GRU_CACHE=${GRU_CACHE:-/var/cache/gru-build}
SUITE=bookworm
PKG=gru-tlb
MOD=gru_tlb

src=
kernels=
keep=0
say() { echo "# dkms-check: [${SECONDS}s] $*"; }
die() {
	echo "dkms-check: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--src) src=${2-}; [ -n "$src" ] || die "--src needs a directory (make dkms-source stages one)"; shift 2 ;;
	--kernels) kernels=${2-}; [ -n "$kernels" ] || die "--kernels needs kernel versions, e.g. \"6.1.0-57-amd64\""; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mounts)"

# ---- host side: tools, mirror, packages ---------------------------------

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v zstd >/dev/null || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]} on the host"
	{ apt-get update -q >/dev/null &&
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
		die "apt-get install ${need[*]} failed: check the host's apt sources (/etc/apt/sources.list*)"
fi

# The host's own mirrors, from the active (*.list and *.sources) entries
# of type deb.
host_uris() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; break } }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && awk '
			/^[ \t]*$/ { if (deb && uris != "") print uris; deb = 0; uris = ""; next }
			/^Types:/ { deb = ($0 ~ /[ \t]deb([ \t]|$)/) }
			/^URIs:/ { uris = $2 }
			END { if (deb && uris != "") print uris }' "$f"
	done
}
uris=$(host_uris)
mirror=${DKMS_MIRROR:-$(echo "$uris" | grep -E '/debian/?$' | head -n1)}
security=${DKMS_SECURITY_MIRROR:-$(echo "$uris" | grep -E '/debian-security/?$' | head -n1)}
mirror=${mirror%/}
security=${security%/}
[ -n "$mirror" ] || die "no Debian mirror (a 'deb' entry ending in /debian) in /etc/apt/sources.list*: add one, or set DKMS_MIRROR=http://..."

# Kernel ABIs: the ones bookworm's metapackages point at now, which are
# what a user installing headers today gets (and what the guest uses).
meta_dep() {
	apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-headers-/ { print $2; exit }'
}
if [ -z "$kernels" ]; then
	h61=$(meta_dep linux-headers-amd64)
	h612=$(meta_dep linux-headers-6.12-amd64)
	if [ -z "$h61" ] || [ -z "$h612" ]; then
		say "apt-get update on the host (to resolve the headers packages)"
		apt-get update -q >/dev/null || die "apt-get update failed: check the host's apt sources"
		h61=$(meta_dep linux-headers-amd64)
		h612=$(meta_dep linux-headers-6.12-amd64)
	fi
	[ -n "$h61" ] && [ -n "$h612" ] ||
		die "cannot resolve linux-headers-amd64 / linux-headers-6.12-amd64 with apt-cache: pass --kernels \"KVER ...\""
	kernels="${h61#linux-headers-} ${h612#linux-headers-}"
fi
read -r -a kvers <<<"$kernels"
pkgs=(dkms)
for k in "${kvers[@]}"; do
	[[ $k =~ ^[0-9][0-9A-Za-z.+~_-]*$ ]] || die "'$k' is not a kernel version (e.g. 6.1.0-57-amd64)"
	pkgs+=("linux-headers-$k")
done
# ---- staged source --------------------------------------------------------

if [ -z "$src" ]; then
	src=$("$top/scripts/dkms-source.sh" 2>/dev/null | tail -n1) ||
		die "scripts/dkms-source.sh failed: run it by hand to see why"
fi
[ -f "$src/dkms.conf" ] || die "$src has no dkms.conf: stage it with make dkms-source"
version=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$src/dkms.conf")
[ -n "$version" ] || die "$src/dkms.conf has no PACKAGE_VERSION"

# ---- the root: cached tarball, or debootstrap ---------------------------

# Bump when the way the root is made changes, so old tarballs are not reused.
recipe=1
key=$(printf '%s\n' "$recipe" "$SUITE" "$mirror" "$security" "${pkgs[@]}" | sha256sum | cut -c1-16)
cache_dir=$GRU_CACHE/dkms-root
tarball=$cache_dir/$SUITE-$key.tar.zst

work=$(mktemp -d /var/tmp/gru-dkms-check.XXXXXX) || die "mktemp failed: is /var/tmp writable?"
root=$work/root
mounts=()

mount_root() {
	mount -t proc proc "$root/proc" && mounts+=("$root/proc") &&
	mount --bind /sys "$root/sys" && mounts+=("$root/sys") &&
	mount --bind /dev "$root/dev" && mounts+=("$root/dev") &&
	mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" && mounts+=("$root/dev/pts")
}

umount_root() {
	local i m
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		m=${mounts[i]}
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
			echo "dkms-check: could not unmount $m: unmount it by hand" >&2
	done
	mounts=()
}

cleanup() {
	umount_root
	# Never remove a tree that still has something mounted inside it (the
	# host's /dev, /sys).
	if [ -n "$(findmnt -rn -o TARGET | awk -v r="$work/" 'index($0, r) == 1')" ]; then
		echo "dkms-check: mounts remain under $work; left in place" >&2
	elif [ $keep = 1 ] && [ -d "$work/upper" ]; then
		echo "dkms-check: the run's changes are kept in $work/upper; to enter the root:" >&2
		echo "  mount -t overlay overlay -o lowerdir=$cache_dir/$SUITE-$key,upperdir=$work/upper,workdir=$work/ovl $root" >&2
		echo "  chroot $root   (umount $root and rm -rf $work when done)" >&2
	elif [ $keep = 1 ]; then
		echo "dkms-check: chroot kept in $root (rm -rf $work when done)" >&2
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

apt_install() {
	in_root apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}

# The tarball, unpacked once beside it, is the read-only lower layer of an
# overlay: a warm run neither unpacks nor deletes a whole root.  Where
# overlayfs cannot be mounted, the tarball is unpacked into the work dir.
use_cached_root() {
	local lower=$cache_dir/$SUITE-$key
	if [ ! -d "$lower" ]; then
		say "unpacking $tarball once, to $lower"
		rm -rf "$lower.tmp$$" && mkdir -p "$lower.tmp$$" &&
			tar -C "$lower.tmp$$" --zstd -xpf "$tarball" && mv -T "$lower.tmp$$" "$lower" ||
			{ rm -rf "$lower.tmp$$"; die "cannot unpack $tarball: remove it and rerun (the root is rebuilt)"; }
	fi
	mkdir -p "$root" "$work/upper" "$work/ovl"
	if mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/ovl" "$root" 2>/dev/null; then
		mounts+=("$root")
		say "root: overlay on the cached $lower"
	else
		say "overlayfs not available here: unpacking $tarball into $root"
		tar -C "$root" --zstd -xpf "$tarball" || die "cannot unpack $tarball: remove it and rerun"
	fi
}

if [ -f "$tarball" ]; then
	touch "$tarball"
	use_cached_root
	mount_root || die "cannot mount /proc, /sys, /dev in $root"
else
	say "no cached root for this suite, mirror and package list: building one (a few minutes)"
	say "debootstrap $SUITE from $mirror"
	debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
		tail -n 20 "$work/debootstrap.log" >&2
		die "debootstrap failed (log above): check that $mirror serves $SUITE"
	}
	{
		echo "deb $mirror $SUITE main"
		echo "deb $mirror $SUITE-updates main"
		[ -z "$security" ] || echo "deb $security $SUITE-security main"
	} >"$root/etc/apt/sources.list"
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	mount_root || die "cannot mount /proc, /sys, /dev in $root"
	say "apt-get update in the root"
	in_root apt-get update -q >"$work/apt.log" 2>&1 || {
		tail -n 20 "$work/apt.log" >&2
		die "apt-get update in the root failed (log above)"
	}
	say "apt-get install ${pkgs[*]} (downloads the packages, a few minutes)"
	apt_install >>"$work/apt.log" 2>&1 || {
		tail -n 20 "$work/apt.log" >&2
		die "apt-get install in the root failed (log above): are ${pkgs[*]} in $SUITE?"
	}
	in_root apt-get clean
	umount_root
	say "caching the root as $tarball"
	mkdir -p "$cache_dir"
	# Roots of other keys unused for a week (an older kernel ABI, another
	# mirror) go; a run touches its tarball.
	for old in "$cache_dir/$SUITE"-*.tar.zst; do
		[ -f "$old" ] && [ -n "$(find "$old" -mtime +7)" ] || continue
		say "removing $old, unused for a week"
		rm -rf --one-file-system "${old%.tar.zst}" "$old"
	done
	tar -C "$root" --zstd -cpf "$tarball.tmp$$" . && mv "$tarball.tmp$$" "$tarball" ||
		{ rm -f "$tarball.tmp$$"; say "could not write $tarball (the next run builds the root again)"; }
	# Unpacked, it becomes the lower layer for this run and the next.
	if [ -f "$tarball" ] && [ ! -d "$cache_dir/$SUITE-$key" ] &&
	   mv -T "$root" "$cache_dir/$SUITE-$key" 2>/dev/null; then
		use_cached_root
	fi
	mount_root || die "cannot mount /proc, /sys, /dev in $root"
fi

# ---- tests ----------------------------------------------------------------

n=0
pass=0
fail=0
result() { # result OK|FAIL name [diagnostic file]
	n=$((n + 1))
	if [ "$1" = OK ]; then
		pass=$((pass + 1))
		echo "ok $n $2"
	else
		fail=$((fail + 1))
		echo "not ok $n $2"
		[ -z "${3:-}" ] || [ ! -s "$3" ] || tail -n 25 "$3" | sed 's/^/#   /'
	fi
}
log=$work/step.log

echo "KTAP version 1"
echo "1..$((4 + 3 * ${#kvers[@]}))"
say "kernels: ${kvers[*]}; source $src (gru-tlb $version)"

# Packages as a user would install them: the cached root has them already,
# so this proves it is the root the key describes.
if apt_install >"$log" 2>&1 &&
   st=$(in_root dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>>"$log") &&
   [ "$(grep -c ' install ok installed$' <<<"$st")" = ${#pkgs[@]} ]; then
	result OK apt_install_dkms_and_headers
else
	echo "${st:-}" >>"$log"
	result FAIL apt_install_dkms_and_headers "$log"
fi

# dkms add copies the staged source to /usr/src/<name>-<version>; the copy
# must hold the source and nothing of the repository around it.
mkdir -p "$root/root/src"
cp -a "$src" "$root/root/src/"
stage=/root/src/$(basename "$src")
usr_src=/usr/src/$PKG-$version
if in_root dkms add "$stage" >"$log" 2>&1 &&
   [ -f "$root$usr_src/dkms.conf" ] && [ -f "$root$usr_src/include/uapi/misc/gru.h" ] &&
   [ -f "$root$usr_src/gru_regs.h" ] && [ -f "$root$usr_src/Kbuild" ]; then
	result OK dkms_add
else
	{ echo "$usr_src after dkms add:"; ls -la "$root$usr_src" 2>&1; } >>"$log"
	result FAIL dkms_add "$log"
fi
extra=$(cd "$root$usr_src" 2>/dev/null && find . -mindepth 1 \
	! -name '*.c' ! -name '*.h' ! -name Kbuild ! -name Makefile ! -name dkms.conf \
	! -path ./include ! -path ./include/uapi ! -path ./include/uapi/misc | head -n 5)
if [ -d "$root$usr_src" ] && [ -z "$extra" ]; then
	result OK source_is_clean
else
	echo "unexpected in $usr_src (stage with make dkms-source): ${extra:-the directory is missing}" >"$log"
	result FAIL source_is_clean "$log"
fi

for k in "${kvers[@]}"; do
	say "dkms build and install for $k "
	mlog=/var/lib/dkms/$PKG/$version/build/make.log
	if in_root dkms build "$PKG/$version" -k "$k" >"$log" 2>&1; then
		result OK "build_$k"
	else
		[ -f "$root$mlog" ] && { echo "== $mlog"; cat "$root$mlog"; } >>"$log"
		result FAIL "build_$k" "$log"
	fi

	if in_root dkms install "$PKG/$version" -k "$k" >"$log" 2>&1 &&
	   in_root dkms status "$PKG/$version" -k "$k" 2>>"$log" | grep -q ': installed'; then
		result OK "install_$k"
	else
		in_root dkms status >>"$log" 2>&1
		result FAIL "install_$k" "$log"
	fi

	# modinfo -k finds the module by name through depmod's index, so this
	# also proves depmod ran; the file must be where dkms.conf sends it,
	# built for this very kernel.  DKMS compresses it the way the kernel's
	# own modules are (6.12: .ko.xz).
	want=/lib/modules/$k/updates/dkms/$MOD.ko
	fname=$(in_root modinfo -k "$k" -F filename "$MOD" 2>"$log")
	vermagic=$(in_root modinfo -k "$k" -F vermagic "$MOD" 2>>"$log")
	{ echo "filename: $fname (want ${want}[.xz|.zst|.gz])"; echo "vermagic: $vermagic (want $k ...)"; } >>"$log"
	case $fname in "$want" | "$want".xz | "$want".zst | "$want".gz) placed=1 ;; *) placed=0 ;; esac
	if [ $placed = 1 ] && [ -f "$root$fname" ] && [ "${vermagic%% *}" = "$k" ]; then
		result OK "modinfo_$k"
	else
		result FAIL "modinfo_$k" "$log"
	fi
done
say "dkms remove --all"
left=()
if in_root dkms remove "$PKG/$version" --all >"$log" 2>&1; then
	for k in "${kvers[@]}"; do
		for f in "$root/lib/modules/$k/updates/dkms/$MOD".ko*; do
			[ ! -e "$f" ] || left+=("${f#"$root"}")
		done
		! in_root modinfo -k "$k" "$MOD" >/dev/null 2>&1 || left+=("modinfo -k $k still finds $MOD")
	done
	[ ! -e "$root/var/lib/dkms/$PKG/$version" ] || left+=("/var/lib/dkms/$PKG/$version")
	if [ ${#left[@]} = 0 ]; then
		result OK dkms_remove_all
	else
		printf 'left after dkms remove --all: %s\n' "${left[@]}" >>"$log"
		result FAIL dkms_remove_all "$log"
	fi
else
	result FAIL dkms_remove_all "$log"
fi

[ $fail = 0 ] || say "a failure's log is above; rerun with --keep to look inside the root"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
