#!/bin/bash
# Unpack Debian's linux-source-<ver> tarball once, outside the repo, and
# print the path.  Used for checkpatch.pl and kselftest_harness.h.
#   scripts/linux-src.sh [6.12|6.1]
set -euo pipefail
ver=${1:-6.12}
cache=${GRU_CACHE:-/var/cache/gru-build}
tarball=/usr/src/linux-source-$ver.tar.xz
if [ ! -f "$tarball" ]; then
	echo "linux-src: $tarball missing; run scripts/setup-host.sh (apt-get install linux-source-$ver)" >&2
	exit 1
fi
key=$(stat -c '%s-%Y' "$tarball")
dst=$cache/linux-source-$ver-$key
if [ ! -e "$dst/.unpacked" ]; then
	echo "linux-src: unpacking $tarball (about a minute)" >&2
	rm -rf "$dst.tmp"
	mkdir -p "$dst.tmp"
	tar -xJf "$tarball" -C "$dst.tmp" --strip-components=1
	rm -rf "$dst"
	mv "$dst.tmp" "$dst"
	touch "$dst/.unpacked"
fi
echo "$dst"
