#!/bin/bash
# Install everything the build and the testbed need on a Debian 12 host.
# Idempotent: a warm machine skips straight through.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
	echo "setup-host: must run as root (apt-get, deb-src entry)" >&2
	exit 1
fi

STAMP_DIR=${GRU_CACHE:-/var/cache/gru-build}
mkdir -p "$STAMP_DIR"

PKGS=(
	build-essential dpkg-dev git python3 perl bc bison flex kmod cpio
	xz-utils zstd rsync file
	ninja-build meson pkg-config libglib2.0-dev libpixman-1-dev libfdt-dev
	qemu-system-data seabios ipxe-qemu
	busybox-static pciutils libpci-dev
	linux-source-6.1 linux-source-6.12
	linux-headers-amd64
	gnuplot-nox
	groff-base man-db	# make check's userspace stage renders the man pages
	libelf-dev libssl-dev	# debug kernel build (objtool, certs)
	libasan8 libubsan1	# build-qemu.sh --sanitize (gcc pulls them in too)
)

# deb-src: QEMU comes from Debian's source package.
add_deb_src() {
	local f=/etc/apt/sources.list.d/gru-deb-src.sources
	if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null ||
	   grep -qs '^deb-src' /etc/apt/sources.list 2>/dev/null; then
		return 0
	fi
	echo "setup-host: adding deb-src entry $f"
	local uri
	uri=$(grep -rhoE '^(URIs:|deb) +[^ ]*debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
	      awk '{print $2}' | grep -v security | head -n1 || true)
	uri=${uri:-http://deb.debian.org/debian}
	cat >"$f" <<EOS
Types: deb-src
URIs: $uri
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
	rm -f "$STAMP_DIR/apt-updated"
}

add_deb_src

want=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || want+=("$p")
done

if [ ${#want[@]} -gt 0 ] || [ ! -e "$STAMP_DIR/apt-updated" ]; then
	echo "setup-host: apt-get update"
	apt-get update -q >/dev/null
	touch "$STAMP_DIR/apt-updated"
fi
if [ ${#want[@]} -gt 0 ]; then
	echo "setup-host: installing ${#want[@]} packages: ${want[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
fi
echo "setup-host: host packages ready"
