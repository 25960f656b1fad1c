#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The benchmark report of `make run` (docs/benchmark.md).
#
#   tools/gru-test/host-report.sh RUNDIR [RUNDIR ...]
#
# Each RUNDIR is a scripts/guest-run.sh results folder; gru-bench left
# guest-files/bench-MODE.txt ("row:" lines) and bench-MODE-samples.txt
# (every sample) there, one pair per timing mode (mttcg, icount0, ...).
# Prints, per mode, the table and the ratios; writes the latency
# distributions as a PNG (gnuplot) and the text report next to it, under
# the first RUNDIR, and prints their paths.  Nothing here passes or fails on
# a figure: the exit status is non-zero only when there was nothing to
# report or the plot could not be drawn.
set -euo pipefail

die() { echo "host-report: error: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 RUNDIR [RUNDIR ...] (results folders of scripts/guest-run.sh)"

out=$1
rowfiles=()
for d in "$@"; do
	[ -d "$d" ] || { echo "host-report: $d: no such folder, skipped" >&2; continue; }
	for f in "$d"/guest-files/bench-*.txt; do
		[ -e "$f" ] || continue
		case "$f" in *-samples.txt) continue ;; esac
		rowfiles+=("$f")
	done
done
if [ "${#rowfiles[@]}" = 0 ]; then
	echo "host-report: no gru-bench results under $* (guest-files/bench-*.txt);" \
		"did gru-bench run? see output.log there" >&2
	exit 1
fi

report=$out/bench-report.txt
plot=$out/bench-latency.png

# --- the table and the ratios, per mode -------------------------------------
table() {	# table ROWFILE
	awk '
	function fmt(ns) {
		if (ns == "" || ns == 0) return "-"
		if (ns >= 1e9) return sprintf("%.2f s", ns / 1e9)
		if (ns >= 1e6) return sprintf("%.2f ms", ns / 1e6)
		if (ns >= 1e3) return sprintf("%.2f us", ns / 1e3)
		return sprintf("%d ns", ns)
	}
	# ratio A B [field]: field 4 = p50, 8 = mean
	function ratio(label, a, as, b, bs, f,   x, y) {
		x = val[a, as, f]; y = val[b, bs, f]
		if (x == "" || y == "" || x == 0 || y == 0) {
			printf "  %-44s %10s   (%s %s / %s %s: not measured)\n", label, "n/a", a, as, b, bs
			return
		}
		printf "  %-44s %9.2fx   (%s / %s, %s)\n", label, x / y, fmt(x), fmt(y), as == bs ? as : as "/" bs
	}
	/^meta:/ { meta = $0; sub(/^meta: /, "", meta); next }
	/^row:/ {
		name = $2; mode = $3; src = $4
		val[name, src, 4] = $5; val[name, src, 5] = $6; val[name, src, 8] = $8
		n++; line[n] = sprintf("  %-26s %-4s %11s %11s %11s %6s  %s", name, src, fmt($5), fmt($6), fmt($8), $7, $9)
		if (name ~ /^bcopy/ && $5 > 0)
			line[n] = line[n] sprintf(",MiB/s=%.0f", 64 / ($5 / 1e9))
	}
	END {
		printf "== gru-bench, timing mode %s ==\n", mode
		printf "  (%s)\n", meta
		printf "  %-26s %-4s %11s %11s %11s %6s  %s\n", "row", "src", "p50", "p99", "mean", "count", "notes"
		for (i = 1; i <= n; i++) print line[i]
		printf "\n  ratios (p50 unless noted; dev = device clock, user = clock_gettime):\n"
		ratio("fast path : floor (irq on issuing CPU)", "irq_fast_path", "dev", "floor_same_cpu", "dev", 4)
		ratio("floor other CPU : floor issuing CPU", "floor_other_cpu", "dev", "floor_same_cpu", "dev", 4)
		ratio("IRQ on other CPU : fast path", "irq_other_cpu", "dev", "irq_fast_path", "dev", 4)
		ratio("worker first touch : fast path", "worker_first_touch", "dev", "irq_fast_path", "dev", 4)
		ratio("worker COW : fast path", "worker_cow", "dev", "irq_fast_path", "dev", 4)
		ratio("worker, PTE present : fast path", "worker_present", "dev", "irq_fast_path", "dev", 4)
		ratio("call-OS first touch : fast path (user)", "callos_first_touch", "user", "irq_fast_path", "user", 4)
		ratio("pinned : fast path", "pinned", "dev", "irq_fast_path", "dev", 4)
		ratio("hmm : fast path", "hmm", "dev", "irq_fast_path", "dev", 4)
		ratio("fast path miss : hit (user)", "irq_fast_path", "user", "hit_load", "user", 4)
		ratio("streaming 4K cold : warm", "bcopy64m_4k_cold", "user", "bcopy64m_4k_warm", "user", 4)
		ratio("streaming THP cold : warm", "bcopy64m_thp_cold", "user", "bcopy64m_thp_warm", "user", 4)
		ratio("streaming 4K cold : THP cold", "bcopy64m_4k_cold", "user", "bcopy64m_thp_cold", "user", 4)
		ratio("batch on : off, seq. loads (mean)", "seq_load_batch16", "user", "seq_load_batch1", "user", 8)
		ratio("batch on : off, 64 MiB 4K cold copy", "bcopy64m_4k_cold_batch16", "user", "bcopy64m_4k_cold", "user", 4)
		ratio("munmap 1 GiB, context : none", "munmap_1g_ctx", "user", "munmap_1g_noctx", "user", 4)
		ratio("mprotect 1 GiB, context : none", "mprotect_1g_ctx", "user", "mprotect_1g_noctx", "user", 4)
		print ""
	}' "$1"
}

{
	for f in "${rowfiles[@]}"; do
		table "$f"
	done
	echo "Every figure is from the timing mode named in its heading: icountN ="
	echo "-icount shift=N,sleep=off, one vCPU (deterministic); mttcg = multi-threaded"
	echo "TCG, 4 vCPUs (realistic, noisy on a shared host).  See docs/benchmark.md."
} >"$report"
cat "$report"

# --- the plot: latency CDFs per mode, device clock and user side ----------
command -v gnuplot >/dev/null || die "gnuplot missing: run scripts/setup-host.sh as root (installs gnuplot-nox)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
modes=()
for f in "${rowfiles[@]}"; do
	m=$(basename "$f" .txt); m=${m#bench-}
	s=${f%.txt}-samples.txt
	[ -s "$s" ] || { echo "host-report: $s missing or empty; no curves for $m" >&2; continue; }
	modes+=("$m")
	# one file per series: sorted ns and the cumulative fraction
	awk -v dir="$tmp" -v m="$m" '
		$1 ~ /^(bcopy|munmap|mprotect|seq_load)/ { next }
		{ k = $1 "." $2; v[k, ++n[k]] = $3 }
		END {
			for (k in n) {
				f = dir "/" m "." k ".dat"
				cmd = "sort -n > \"" f ".raw\""
				for (i = 1; i <= n[k]; i++) print v[k, i] | cmd
				close(cmd)
			}
		}' "$s"
	for r in "$tmp/$m".*.raw; do
		[ -e "$r" ] || continue
		awk 'NR == FNR { t++; next } { print $1, FNR / t }' "$r" "$r" >"${r%.raw}"
	done
done
[ "${#modes[@]}" -gt 0 ] || die "no samples to plot"

# The same series gets the same line in every panel.
colour() {
	case "$1" in
	floor_same_cpu) echo '#000000' ;; floor_other_cpu) echo '#777777' ;;
	irq_fast_path) echo '#d62728' ;; irq_other_cpu) echo '#ff9896' ;;
	worker_first_touch) echo '#1f77b4' ;; worker_cow) echo '#17becf' ;;
	worker_present) echo '#9467bd' ;; callos_first_touch) echo '#8c564b' ;;
	pinned) echo '#ff7f0e' ;; hmm) echo '#2ca02c' ;;
	hit_load) echo '#e377c2' ;; nop) echo '#bcbd22' ;; *) echo '#333333' ;;
	esac
}
dashes() {
	case "$1" in
	floor_*|nop|hit_load) echo 2 ;; *) echo 1 ;;
	esac
}

{
	echo "set terminal pngcairo size 1400,$((520 * ${#modes[@]})) font 'sans,10'"
	echo "set output '$plot'"
	echo "set multiplot layout ${#modes[@]},2"
	echo "set logscale x"
	echo "set grid"
	echo "set key outside right top font ',9'"
	echo "set ylabel 'fraction of samples'"
	echo "set yrange [0:1]"
	for m in "${modes[@]}"; do
		for src in dev user; do
			echo "set title 'gru-bench $m: miss latency CDF, $([ $src = dev ] && echo 'device clock (raise -> answer)' || echo 'user side (issue + wait)')'"
			echo "set xlabel 'ns (log)'"
			parts=()
			for d in "$tmp/$m".*."$src".dat; do
				[ -s "$d" ] || continue
				name=$(basename "$d" ".$src.dat"); name=${name#"$m".}
				parts+=("'$d' using 1:2 with lines lw 2 lc rgb '$(colour "$name")' dt $(dashes "$name") title '${name//_/ }'")
			done
			if [ "${#parts[@]}" = 0 ]; then
				echo "set label 1 'no samples' at graph 0.4,0.5"
				echo "plot [1:10] 0 notitle"
				echo "unset label 1"
			else
				(IFS=,; echo "plot ${parts[*]}")
			fi
		done
	done
	echo "unset multiplot"
} >"$tmp/plot.gp"
gnuplot "$tmp/plot.gp" || die "gnuplot failed on $tmp/plot.gp"
echo "host-report: report $report"
echo "host-report: plot $plot"
