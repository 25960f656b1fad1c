# make run's guest script (sh, run by scripts/guest/init): show the device
# as the guest's PCI core sees it, then run whichever of the project's demo
# tools are built.  Tools write data for the host under /results.  The last
# line, "## summary: ...", is what make run reports.
. /etc/gru-pci.conf
ids=$(printf '%04x:%04x' "$GRU_PCI_VENDOR_ID" "$GRU_PCI_DEVICE_ID")
echo "## lspci -nn -vv -d $ids"
lspci -nn -vv -d "$ids" 2>&1
n=$(lspci -n -d "$ids" | wc -l)
msix=$(lspci -vv -d "$ids" | grep -o 'MSI-X: Enable[+-] Count=[0-9]*' | head -n1)
bars=$(lspci -vv -d "$ids" | sed -n 's/^[[:space:]]*Region \([0-9]\): Memory at [0-9a-f]* .*\[size=\([0-9A-Za-z]*\)\].*/BAR\1 \2/p' |
	head -n 3 | tr '\n' ',' | sed 's/,$//; s/,/, /g')
summary="$n gru-tlb device(s) [$ids]; ${bars:-no BARs}; ${msix:-no MSI-X}"
rc=0
if grep -q '^gru_tlb ' /proc/modules; then
	drv="gru_tlb loaded"
	[ -c /dev/gru ] || { drv="$drv but no /dev/gru"; rc=1; }
elif [ -f /lib/modules/gru_tlb.ko ]; then
	drv="gru_tlb.ko present but not loaded (see the kernel log)"
	rc=1
else
	drv="no driver built yet"
fi
echo "## driver: $drv"
summary="$summary; driver: $drv"
ran=""
for t in gru-info gru-demo gru-bench; do
	[ -x "/opt/gru/bin/$t" ] || continue
	if [ "$t" != gru-info ] && [ ! -c /dev/gru ]; then
		echo "## $t skipped: no /dev/gru"
		continue
	fi
	echo "## $t"
	"/opt/gru/bin/$t"
	r=$?
	if [ "$r" = 0 ]; then
		ran="$ran $t"
	else
		echo "## $t exited $r"
		ran="$ran $t(failed:$r)"
		rc=1
	fi
done
[ "$n" -gt 0 ] || rc=1
echo "## summary: $summary; ran:${ran:- nothing else}"
exit $rc
