#!/bin/bash
# libgru as a library, on the host (no device needed): the "userspace"
# stage of make check.  Installs with "make install DESTDIR=tmp
# PREFIX=/usr", then checks what a distribution package and its users
# see: the installed files, pkg-config, a program built against
# <misc/gru.h> and <gru/libgru.h> with the shared and the static library,
# the soname, that exactly the public API is exported, that the tools use
# the shared library, and that every man page renders without warnings.
# Prints KTAP and ends with "N passed, N failed".
#
#   scripts/check-userspace.sh [--keep]    (--keep: leave the install tree)
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
keep=0
[ "${1:-}" = --keep ] && keep=1
tmp=$(mktemp -d /tmp/gru-userspace.XXXXXX)
[ $keep = 1 ] || trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
n=0 pass=0 fail=0
result() {	# result <0|1> <name> [reason]
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n $2"
		pass=$((pass + 1))
	else
		echo "not ok $n $2${3:+ # $3}"
		fail=$((fail + 1))
	fi
}
finish() {
	echo "1..$n"
	echo "$pass passed, $fail failed"
	[ "$fail" = 0 ]
	exit
}
echo "TAP version 13"
echo "# userspace: install tree $root"

echo "# make install DESTDIR=$root PREFIX=/usr"
if make -C "$repo" --no-print-directory install DESTDIR="$root" PREFIX=/usr >"$tmp/install.log" 2>&1; then
	result 0 install_with_destdir_and_prefix
else
	sed 's/^/# /' "$tmp/install.log" | tail -n 30
	result 1 install_with_destdir_and_prefix "make install failed"
	finish
fi

u=$root/usr
missing=
for f in lib/libgru.a lib/libgru.so.1.0.0 lib/libgru.so.1 lib/libgru.so \
	 lib/pkgconfig/libgru.pc include/gru/libgru.h include/misc/gru.h \
	 share/man/man3/libgru.3 share/man/man1/gru-bench.1 share/man/man8/gru-info.8 \
	 bin/gru-bench bin/gru-demo bin/gru-mutex-soak bin/gru-qmp sbin/gru-info; do
	[ -e "$u/$f" ] || missing="$missing $f"
done
[ "$(readlink "$u/lib/libgru.so.1")" = libgru.so.1.0.0 ] &&
	[ "$(readlink "$u/lib/libgru.so")" = libgru.so.1 ] || missing="$missing (symlink chain)"
result "$([ -z "$missing" ]; echo $?)" installed_files_in_place "missing:$missing"
outside=$(cd "$root" && find . -mindepth 1 ! -path './usr' ! -path './usr/*' | head -n 5)
result "$([ -z "$outside" ]; echo $?)" nothing_installed_outside_prefix "$(echo $outside)"
cmp -s "$u/include/misc/gru.h" "$repo/include/uapi/misc/gru.h"
result $? uapi_header_installed_as_misc_gru_h

# pkg-config sees only the install tree, as a cross or package build would.
pc() { PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=$u/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root pkg-config "$@"; }
flags=$(pc --cflags --libs libgru 2>&1)
rc=$?
flags=$(echo $flags)	# pkg-config ends with a space
echo "# pkg-config --cflags --libs libgru: $flags"
[ $rc = 0 ] && [ "$flags" = "-I$u/include -L$u/lib -lgru" ]
result $? pkg_config_flags "got '$flags'"
[ "$(pc --modversion libgru 2>&1)" = 1.0.0 ]
result $? pkg_config_version_is_1_0_0

cat >"$tmp/use.c" <<'EOC'
#include <errno.h>
#include <stdio.h>
#include <misc/gru.h>
#include <gru/libgru.h>

int main(void)
{
	struct gru_ctx ctx;
	int ret = gru_open_path(&ctx, "/nonexistent/gru", 0);

	printf("%s %d %d\n", gru_err_name(GRU_ERR_PROT),
	       gru_err_to_errno(GRU_ERR_PROT) == -EACCES, ret == -ENOENT);
	return 0;
}
EOC
want="PROT 1 1"
# shellcheck disable=SC2086
if cc -Wall -Werror -o "$tmp/use" "$tmp/use.c" $flags >"$tmp/cc.log" 2>&1; then
	result 0 program_builds_against_installed_headers_and_shared_lib
else
	sed 's/^/# /' "$tmp/cc.log"
	result 1 program_builds_against_installed_headers_and_shared_lib
fi
readelf -d "$tmp/use" 2>/dev/null | grep -q 'NEEDED.*\[libgru\.so\.1\]'
result $? program_needs_libgru_so_1
got=$(LD_LIBRARY_PATH=$u/lib "$tmp/use" 2>&1)
[ "$got" = "$want" ]
result $? program_runs_with_installed_shared_lib "want '$want', got '$got'"
# shellcheck disable=SC2086
cc -Wall -Werror -static -o "$tmp/use-static" "$tmp/use.c" $(pc --cflags libgru) \
	"$u/lib/libgru.a" >"$tmp/cc-static.log" 2>&1 &&
	[ "$("$tmp/use-static" 2>&1)" = "$want" ]
result $? program_links_and_runs_with_static_lib

soname=$(readelf -d "$u/lib/libgru.so.1.0.0" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libgru.so.1 ]
result $? soname_is_libgru_so_1 "got '$soname'"

# Exported: the functions libgru.h declares, nothing else, nothing fewer.
# The version node itself shows up as an absolute symbol and is ignored.
nm -D --defined-only "$u/lib/libgru.so.1.0.0" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
	LC_ALL=C sort -u >"$tmp/exported"
sed 's@/\*.*\*/@@' "$u/include/gru/libgru.h" | tr '\n' ' ' | tr ';' '\n' |
	grep -oE '\bgru_[a-z0-9_]+[[:space:]]*\(' | tr -d '( ' | LC_ALL=C sort -u >"$tmp/public"
extra=$(LC_ALL=C comm -23 "$tmp/exported" "$tmp/public" | tr '\n' ' ')
absent=$(LC_ALL=C comm -13 "$tmp/exported" "$tmp/public" | tr '\n' ' ')
echo "# $(wc -l <"$tmp/public") public functions, $(wc -l <"$tmp/exported") exported symbols"
[ -s "$tmp/public" ] && [ -z "$extra" ]
result $? only_public_api_exported "not in libgru.h: $extra"
[ -s "$tmp/public" ] && [ -z "$absent" ]
result $? whole_public_api_exported "not exported: $absent"

for t in sbin/gru-info bin/gru-bench; do
	readelf -d "$u/$t" 2>/dev/null | grep -q 'NEEDED.*\[libgru\.so\.1\]'
	result $? "$(basename "$t")_uses_shared_libgru"
done

# Man pages: man-db renders them as a user would (preprocessors from the
# first line, groff warnings on); any diagnostic fails the page.  A page
# with a known mistake must warn, or this check could not fail.
lint() { LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=w,mac -l "$1" 2>&1 >/dev/null; }
printf '.TH X 1\n.SH NAME\nx \\- y\n.XX bogus macro\n' >"$tmp/bad.1"
[ -n "$(lint "$tmp/bad.1")" ]
result $? man_lint_catches_a_bad_page
for m in "$u"/share/man/man*/*; do
	out=$(lint "$m")
	[ -z "$out" ] && [ -n "$(MANWIDTH=80 man -l "$m" 2>/dev/null | grep -m1 NAME)" ]
	result $? "man_page_$(basename "$m")_renders_cleanly" "$(echo $out | cut -c1-200)"
done
finish
