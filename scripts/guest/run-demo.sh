# make run's guest script (sh, run by scripts/guest/init): show the device
# as the guest's PCI core sees it, then run whichever of the project's demo
# tools are built.  Tools write data for the host under /results.
. /etc/gru-pci.conf
ids=$(printf '%04x:%04x' "$GRU_PCI_VENDOR_ID" "$GRU_PCI_DEVICE_ID")
echo "## lspci -nn -vv -d $ids"
lspci -nn -vv -d "$ids" 2>&1
n=$(lspci -n -d "$ids" | wc -l)
echo "## the guest sees $n gru-tlb device(s)"
if grep -q '^gru_tlb ' /proc/modules; then
	echo "## driver: gru_tlb loaded, $(ls /dev/gru 2>/dev/null || echo 'no /dev/gru')"
else
	echo "## driver: gru_tlb not loaded (not built yet?)"
fi
rc=0
for t in gru-info gru-demo gru-bench; do
	[ -x "/opt/gru/bin/$t" ] || continue
	echo "## $t"
	"/opt/gru/bin/$t"
	r=$?
	[ "$r" = 0 ] || { echo "## $t exited $r"; rc=1; }
done
if [ -d /sys/kernel/debug/gru ]; then
	for f in /sys/kernel/debug/gru/*; do
		[ -f "$f" ] || continue
		echo "## $f"
		head -n 40 "$f"
	done
fi
[ "$n" -gt 0 ] || { echo "## no gru-tlb device in the guest"; rc=1; }
exit $rc
