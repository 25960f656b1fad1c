#!/bin/bash
# Boot the test guest with the gru-tlb device, run commands in it, collect
# KTAP from its output and exit with its verdict.
#
#   scripts/guest-run.sh [options] [--] 'command' ['command' ...]
#
# Options:
#   --kernel NAME       guest kernel: 6.1 (default) or 6.12 (Debian images),
#                       or debug (scripts/debug-kernel.sh, when present), all
#                       through scripts/guest-kernel.sh; or set KIMAGE,
#                       KMODROOT and KVER in the environment for another one
#   --smp N             vCPUs (default 4, multi-threaded TCG; 1 with --icount)
#   --icount N          -icount shift=N,sleep=off (deterministic timing;
#                       QEMU then runs all vCPUs on one thread).  Implies
#                       --smp 1: with more vCPUs the 6.1 guest hangs while
#                       bringing up its secondary CPUs (seen with shift 0 and 4)
#   --numa N            N NUMA nodes, memory and vCPUs split evenly
#   --mem SIZE          guest RAM (default 2G)
#   --devices N         number of -device gru-tlb (default 1; 0 for none),
#                       device N with id gruN behind its own PCIe root port
#                       rpN, so that QMP device_del gruN unplugs it
#   --device-opts OPTS  extra properties for every device, "k=v,k=v"
#   --hugepages         reserve 1 GiB and 2 MiB hugepages at boot
#   --iommu             an emulated Intel VT-d (-device intel-iommu,
#                       intremap=on, ahead of every PCI device so that their
#                       DMA goes through it) and intel_iommu=on
#                       iommu.passthrough=0 for the guest, whose Debian
#                       kernels have the driver built in but off by default:
#                       every device starts in a translated (DMA-FQ) domain.
#                       caching-mode is only needed for VFIO, and
#                       kernel-irqchip=split only under KVM; under TCG the
#                       interrupt remapping works as is (MSI-X included).
#                       make check's IOMMU boot uses it (docs/testing.md)
#   --module PATH|none  driver to load (default: the test-hook build of
#                       make module, build/kmod/<kernel>/debug/, else
#                       drivers/misc/gru/gru_tlb.ko, if built for the kernel)
#   --append ARGS       extra kernel command line, e.g. gru_tlb.max_asid=8
#                       (gru_tlb.* words become module parameters)
#   --timeout SECONDS   kill the guest after this long (default 600)
#   --results DIR       where logs go (default results/guest-<time>)
#   --script FILE       run FILE (sh) in the guest, after the commands before it
#   --no-tests-ok       a run without any KTAP result passes (make run's demo)
#   --quiet             don't stream the guest's output while it runs
#
# Environment: QEMU=path (else the last line of scripts/build-qemu.sh),
# GRU_CACHE (default /var/cache/gru-build).
#
# Each command runs as `sh -c` text inside the guest, in order, with /tmp as
# the working directory; files a command writes under /results in the guest
# are copied to DIR/guest-files/ on the host.
#
# Logs in DIR:  kernel.log (ttyS0: printk only), output.log (ttyS1: what the
# commands printed), qemu.log (QEMU's own stderr), cmdline, ktap.txt,
# qmp.log (the guest's QMP conversation).
#
# QMP from the guest: ttyS3 is connected to QEMU's QMP monitor through a
# relay on the host (one QMP session per boot, negotiated by whoever
# speaks first), so a command can hot-unplug and re-plug its device:
#   gru-qmp device_del gru0; gru-qmp device_add gru-tlb,id=gru0,bus=rp0
#
# Verdict: every KTAP result line ("ok N"/"not ok N", nested subtests counted
# once: a result that sums up indented children is not counted itself) is
# listed, then a final line "N passed, N failed".  Exit 0 only if every test
# passed, at least one ran (unless --no-tests-ok), every command exited 0,
# the guest powered off by itself within the timeout, and the kernel log
# shows no panic, Oops, BUG, WARNING, lockdep, KASAN or hung-task report.  Such
# a report kills the guest at once.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "guest-run: error: $*" >&2; exit 2; }
log() { echo "guest-run: $*" >&2; }

series=6.1 smp='' icount='' numa=0 mem=2G devices=1 devopts='' hugepages=0 iommu=0
module=auto append='' timeout=600 results='' notests_ok=0 quiet=0
cmds=()
labels=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) series=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--icount) icount=$2; shift 2 ;;
	--numa) numa=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--devices) devices=$2; shift 2 ;;
	--device-opts) devopts=$2; shift 2 ;;
	--hugepages) hugepages=1; shift ;;
	--iommu) iommu=1; shift ;;
	--module) module=$2; shift 2 ;;
	--append) append="$append $2"; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--results) results=$2; shift 2 ;;
	--script)
		[ -r "$2" ] || die "--script $2: not readable"
		cmds+=("$(cat "$2")"); labels[${#cmds[@]}]="script $(basename "$2")"; shift 2 ;;
	--no-tests-ok) notests_ok=1; shift ;;
	--quiet) quiet=1; shift ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;/^set -e/d'; exit 0 ;;
	--) shift; cmds+=("$@"); break ;;
	-*) die "unknown option '$1' (see --help)" ;;
	*) cmds+=("$1"); shift ;;
	esac
done
if [ -z "$smp" ]; then
	if [ -n "$icount" ]; then smp=1; else smp=4; fi
elif [ -n "$icount" ] && [ "$smp" != 1 ]; then
	log "warning: --icount with --smp $smp: the guest tends to hang bringing up secondary CPUs"
fi
for v in smp numa devices timeout; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "--$v needs a number, got '${!v}'"
done
[ -z "$icount" ] || [[ $icount =~ ^[0-9]+$ ]] || die "--icount needs a number (shift), got '$icount'"
[ "$smp" -ge 1 ] || die "--smp must be at least 1"
[ "${#cmds[@]}" -gt 0 ] || die "no guest command given (see --help)"

# --- inputs: QEMU, kernel, initramfs --------------------------------------
if [ -z "${QEMU:-}" ]; then
	[ -x "$repo/scripts/build-qemu.sh" ] ||
		die "scripts/build-qemu.sh missing; set QEMU=/path/to/qemu-system-x86_64"
	QEMU=$("$repo/scripts/build-qemu.sh" | tail -n1) ||
		die "scripts/build-qemu.sh failed (see above)"
fi
[ -x "$QEMU" ] || die "QEMU binary '$QEMU' is not executable"
if [ "$devices" -gt 0 ] && ! "$QEMU" -device help 2>/dev/null | grep -q '"gru-tlb"'; then
	die "$QEMU has no gru-tlb device: use the binary from scripts/build-qemu.sh (or --devices 0)"
fi

if [ -z "${KIMAGE:-}" ]; then
	eval "$("$repo/scripts/guest-kernel.sh" "$series")"
fi
export KVER KMODROOT
[ -r "$KIMAGE" ] || die "kernel image $KIMAGE not readable"
initrd=$("$repo/scripts/mkinitramfs.sh" --kernel "$series" --module "$module" | tail -n1)

results=${results:-$repo/results/guest-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$results"
results=$(cd "$results" && pwd)
rm -rf "$results/guest-files" "$results/run.cpio"
for f in kernel.log output.log export.log qemu.log qmp.log ktap.txt; do : >"$results/$f"; done

# The commands travel in a second cpio archive appended to the cached one.
runroot=$(mktemp -d)
# Unix socket paths must fit in 108 bytes: not under a long results dir.
sockdir=$(mktemp -d /tmp/gru-qmp.XXXXXX)
qpid=
rpid=
# An interrupted run must not leave a guest (or its QMP relay) behind.
cleanup() {
	if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; fi
	if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null || true; fi
	rm -rf "$runroot" "$sockdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$runroot/gru"
for i in "${!cmds[@]}"; do
	n=$((i + 1))
	printf '%s\n' "${cmds[$i]}" >"$runroot/gru/cmd.$n"
	printf '%s\n' "${labels[$n]:-$(head -n1 <<<"${cmds[$i]}")}" >"$runroot/gru/label.$n"
done
echo "${#cmds[@]}" >"$runroot/gru/ncmds"
(cd "$runroot" && find gru | cpio -o -H newc -R 0:0 --quiet) >"$results/run.cpio"
# The kernel only looks for a plain cpio header at a 4-byte boundary, and
# skips zero padding between archives.
{
	cat "$initrd"
	head -c $(((4 - $(stat -c %s "$initrd") % 4) % 4)) /dev/zero
	cat "$results/run.cpio"
} >"$runroot/initrd.img"

# --- QEMU command line ----------------------------------------------------
kargs="console=ttyS0,115200 panic=-1 loglevel=7 rdinit=/init"
# TCG on a shared 2-core host can starve a vCPU for seconds; keep the
# stall detectors on, but past the point where host load alone trips them.
kargs="$kargs rcupdate.rcu_cpu_stall_timeout=60 watchdog_thresh=30"
# The guest exports this as GRU_TIMING so a benchmark can label its figures.
if [ -n "$icount" ]; then
	kargs="$kargs gru.timing=icount$icount"
else
	kargs="$kargs gru.timing=mttcg"
fi
[ "$hugepages" = 0 ] || kargs="$kargs hugepagesz=1G hugepages=1 hugepagesz=2M hugepages=128"
# The KASAN debug kernel on -cpu max (LA57, 5-level paging) intermittently
# reports a wild-memory-access in early boot, in handle_edge_irq() before
# any PCI driver is bound: 4-level paging keeps that noise out of the run.
[ "$series" != debug ] || kargs="$kargs no5lvl"
[ "$iommu" = 0 ] || kargs="$kargs intel_iommu=on iommu.passthrough=0"
kargs="$kargs$append"

args=(-M q35 -cpu max -m "$mem" -nographic -nodefaults -nic none -no-reboot
      -monitor none -parallel none
      -kernel "$KIMAGE" -initrd "$runroot/initrd.img" -append "$kargs"
      -serial "file:$results/kernel.log"
      -serial "file:$results/output.log"
      -serial "file:$results/export.log"
      -chardev "socket,id=gq,path=$sockdir/gq.sock,server=on,wait=off"
      -serial chardev:gq
      -chardev "socket,id=qmp,path=$sockdir/qmp.sock,server=on,wait=off"
      -mon chardev=qmp,mode=control)
if [ -n "$icount" ]; then
	args+=(-accel tcg -icount "shift=$icount,sleep=off")
else
	args+=(-accel 'tcg,thread=multi')
fi
if [ "$numa" -gt 0 ]; then
	# One socket per node: a node boundary inside a socket's shared LLC
	# makes the guest kernel WARN in topology_sane().
	[ $((smp % numa)) = 0 ] || die "--smp $smp must be a multiple of --numa $numa"
	args+=(-smp "$smp,sockets=$numa,cores=$((smp / numa)),threads=1")
	mem_b=$(numfmt --from=iec "${mem}" 2>/dev/null) || die "--mem '$mem' is not a size like 2G"
	mem_mb=$((mem_b / 1048576))
	[ $((mem_mb % numa)) = 0 ] || die "--mem $mem does not split evenly over $numa nodes"
	for ((n = 0; n < numa; n++)); do
		args+=(-object "memory-backend-ram,id=mem$n,size=$((mem_mb / numa))M")
		args+=(-numa "node,nodeid=$n,cpus=$((n * smp / numa))-$(((n + 1) * smp / numa - 1)),memdev=mem$n")
	done
else
	args+=(-smp "$smp")
fi
# A PCI device takes its DMA address space from the IOMMU when it is
# realized, so the IOMMU comes before every -device that follows.
[ "$iommu" = 0 ] || args+=(-device "intel-iommu,intremap=on")
# Each device sits alone behind a PCIe root port: a device on the root
# bus cannot be unplugged.  q35 (7.2) hot-plugs at root ports through ACPI
# (acpi-pci-hotplug-with-bridge-support), which all guest kernels have
# built in (CONFIG_HOTPLUG_PCI_ACPI).
for ((d = 0; d < devices; d++)); do
	args+=(-device "pcie-root-port,id=rp$d,chassis=$((d + 1)),slot=$((d + 1))")
	args+=(-device "gru-tlb,id=gru$d,bus=rp$d${devopts:+,$devopts}")
done
# An empty port for a device plugged in at run time (device_add ...,bus=rphp).
[ "$devices" = 0 ] || args+=(-device "pcie-root-port,id=rphp,chassis=64,slot=64")
{ printf '%q ' "$QEMU" "${args[@]}"; echo; } >"$results/cmdline"

# --- run, watching the kernel log -----------------------------------------
# A report is a failure however the run ends, so check the whole log each
# time round; -a because a crashing guest can leave binary junk behind.
bad='Kernel panic|Oops|BUG:|WARNING:|possible circular locking|possible recursive locking|INFO: |KASAN|UBSAN|general protection fault|Call Trace:|kernel BUG at|Unable to handle'

log "booting $KVER: smp=$smp${icount:+ icount=$icount} numa=$numa mem=$mem devices=$devices${devopts:+ ($devopts)}$([ "$iommu" = 0 ] || echo ", intel-iommu"), ${#cmds[@]} command(s), timeout ${timeout}s, logs in $results"
start=$(date +%s)
"$QEMU" "${args[@]}" </dev/null >"$results/qemu.log" 2>&1 &
qpid=$!
# The QMP relay between the guest's ttyS3 and QEMU's monitor, which
# passes only the commands the tests need (scripts/qmp-relay.py).
command -v python3 >/dev/null ||
	log "warning: no python3 (scripts/setup-host.sh installs it): the guest gets no QMP"
python3 "$repo/scripts/qmp-relay.py" "$sockdir/gq.sock" "$sockdir/qmp.sock" "$qpid" \
	"$results/qmp.log" >>"$results/qemu.log" 2>&1 &
rpid=$!
tpid=
if [ "$quiet" = 0 ]; then
	# Stream the command output live; 'sed -u' drops the CRs of a tty.
	tail -n +1 -F --pid="$qpid" "$results/output.log" 2>/dev/null | sed -u 's/\r$//' &
	tpid=$!
fi

end_reason=
while kill -0 "$qpid" 2>/dev/null; do
	if grep -aqE "$bad" "$results/kernel.log"; then
		# Give the rest of the report a moment to reach the log.
		sleep 2
		end_reason="kernel log reports a problem"
		break
	fi
	if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
		end_reason="timeout after ${timeout}s"
		break
	fi
	sleep 1
done
if [ -n "$end_reason" ]; then
	kill "$qpid" 2>/dev/null || true
	sleep 1
	kill -9 "$qpid" 2>/dev/null || true
fi
qrc=0
wait "$qpid" || qrc=$?
qpid=
kill "$rpid" 2>/dev/null || true
wait "$rpid" 2>/dev/null || true
rpid=
[ -z "$tpid" ] || wait "$tpid" 2>/dev/null || true
elapsed=$(($(date +%s) - start))

# Files the guest left in /results.
if grep -q '^=== GRU-FILE ' "$results/export.log"; then
	mkdir -p "$results/guest-files"
	awk -v dir="$results/guest-files" '
		/^=== GRU-FILE / { name = $3; gsub(/\.\.\/?/, "", name); f = dir "/" name; sub(/\r$/, "", f);
		                   system("mkdir -p \"$(dirname \"" f "\")\""); out = "base64 -d >\"" f "\""; next }
		/^=== GRU-END/   { close(out); out = ""; next }
		out != ""        { sub(/\r$/, ""); print | out }
	' "$results/export.log"
fi

# --- verdict --------------------------------------------------------------
echo "--- guest-run: results ($KVER, ${elapsed}s) ---"
sed 's/\r$//' "$results/output.log" | awk '
	function flush_cmd(rc) {
		if (rc != 0 && cmd_fail == 0) {
			extra++
			printf "not ok - guest command %d exited %d: %s\n", cmdno, rc, cmdtxt
		}
	}
	/^# gru-cmd [0-9]+ start:/ { cmdno = $3; cmdtxt = $0; sub(/^# gru-cmd [0-9]+ start: /, "", cmdtxt); cmd_fail = 0; next }
	/^# gru-cmd [0-9]+ exit=/  { rc = $4; sub(/exit=/, "", rc); flush_cmd(rc + 0); next }
	/^[ \t]*(not )?ok( [0-9]+|$| )/ {
		line = $0
		match(line, /^[ \t]*/); ind = RLENGTH
		# A result preceded by a deeper one sums up its subtests, which
		# were counted already.
		parent = (nres > 0 && ind < lastind)
		nres++; lastind = ind
		if (parent) next
		sub(/^[ \t]*/, "", line)
		if (line ~ /#[ \t]*(SKIP|skip|Skip|TODO)/) { skip++; print line; next }
		if (line ~ /^not ok/) { fail++; cmd_fail++; print line; next }
		pass++; print line; next
	}
	/^[ \t]*Bail out!/ { fail++; cmd_fail++; print; next }
	/^GRU-GUEST-EXIT/ { finished = 1 }
	END {
		printf "%d %d %d %d %d\n", pass, fail, skip, extra, finished > "/dev/stderr"
	}
' >"$results/ktap.txt" 2>"$results/ktap.counts"
cat "$results/ktap.txt"
read -r pass fail skip extra finished <"$results/ktap.counts"
fail=$((fail + extra))

verdict_fail=()
if grep -aqE "$bad" "$results/kernel.log"; then
	verdict_fail+=("kernel log is not clean")
	echo "--- guest-run: kernel log report (first lines; full log in $results/kernel.log) ---"
	first=$(grep -anE "$bad" "$results/kernel.log" | head -n1 | cut -d: -f1)
	sed -n "$((first > 5 ? first - 5 : 1)),$((first + 60))p" "$results/kernel.log" | sed 's/\r$//'
fi
if [ "$finished" != 1 ]; then
	if [ -n "$end_reason" ]; then
		verdict_fail+=("guest did not finish: $end_reason")
	else
		verdict_fail+=("guest stopped before its commands finished (QEMU exit $qrc; see $results/qemu.log and kernel.log)")
		tail -n 5 "$results/qemu.log" | sed 's/^/qemu: /'
	fi
fi
if [ $((pass + fail + skip)) = 0 ] && [ "$notests_ok" = 0 ]; then
	verdict_fail+=("no KTAP result was printed")
fi
for r in "${verdict_fail[@]}"; do
	echo "not ok - $r"
done
fail=$((fail + ${#verdict_fail[@]}))
[ "$skip" = 0 ] || echo "# $skip skipped"
echo "# logs: $results"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
