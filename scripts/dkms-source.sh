#!/bin/bash
# Stage the DKMS source of gru_tlb: a clean directory that `dkms add` can
# take as it is, with nothing from the rest of the repository.
#
#   scripts/dkms-source.sh [OUTDIR]      (default build/dkms)
#
# Writes OUTDIR/gru-tlb-<VERSION>/ and prints its path on the last line:
#   dkms.conf            packaging/dkms/dkms.conf.in, version from VERSION
#   Kbuild               drivers/misc/gru/Makefile
#   Makefile             packaging/dkms/Makefile (build by hand: make KVER=...)
#   *.c *.h              drivers/misc/gru
#   include/uapi/misc/gru.h
# Then, as root:  dkms add OUTDIR/gru-tlb-<VERSION>   (copies it to /usr/src)
#                 dkms install gru-tlb/<VERSION> -k <kernel version>
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/dkms}
drv=$top/drivers/misc/gru

die() { echo "dkms-source: $*" >&2; exit 1; }

[ -s "$top/VERSION" ] || die "no $top/VERSION: it holds the package version (e.g. 0.1.0)"
version=$(tr -d ' \t\n' <"$top/VERSION")
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] ||
	die "VERSION holds '$version': use a Debian-style version such as 0.1.0"
for f in "$drv/Makefile" "$top/include/uapi/misc/gru.h" \
	 "$top/packaging/dkms/dkms.conf.in" "$top/packaging/dkms/Makefile"; do
	[ -f "$f" ] || die "missing $f: is this a complete checkout?"
done

dst=$out/gru-tlb-$version
rm -rf "$dst"
mkdir -p "$dst/include/uapi/misc"

# Only sources: a directory that was built in by hand also holds objects
# and *.mod.c files, which must not reach DKMS.
shopt -s nullglob
srcs=()
for f in "$drv"/*.c "$drv"/*.h; do
	case $f in *.mod.c) continue ;; esac
	srcs+=("$f")
done
[ ${#srcs[@]} -gt 0 ] || die "no .c/.h files in $drv"
cp -p "${srcs[@]}" "$dst/"
cp -p "$drv/Makefile" "$dst/Kbuild"
cp -p "$top/packaging/dkms/Makefile" "$dst/Makefile"
cp -p "$top/include/uapi/misc/gru.h" "$dst/include/uapi/misc/gru.h"
sed "s/@VERSION@/$version/" "$top/packaging/dkms/dkms.conf.in" >"$dst/dkms.conf"

echo "dkms-source: staged gru-tlb $version (${#srcs[@]} source files)" >&2
echo "$dst"
