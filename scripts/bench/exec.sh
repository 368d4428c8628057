#!/usr/bin/env bash
# Wall time of `domboot run --exec true` in its two userlands (--rootfs busybox, and
# --rootfs host: the host's / over virtio-fs) beside plain QEMU booting the same kernel with
# an equivalent busybox initramfs (-kernel K -initrd I), all under TCG on this machine, in
# interleaved rounds: medians, bests and ratios.
# Usage: scripts/bench/exec.sh [ROUNDS]   (kernel: $CACHE/debian/cloud/vmlinuz)
set -euo pipefail
RUNS=${1:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
KERNEL=$CACHE/debian/cloud/vmlinuz
[[ -e $KERNEL ]] || { echo "no $KERNEL: run scripts/setup.sh --install-only" >&2; exit 2; }
cd "$ROOT"
cargo build --release -q -p domboot
DOMBOOT=$ROOT/target/release/domboot

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The equivalent initramfs for plain QEMU: busybox, an /init that runs `true` and reboots.
mkdir -p "$WORK/root/bin" "$WORK/root/proc" "$WORK/root/sys" "$WORK/root/dev"
cp /bin/busybox "$WORK/root/bin/"
cat >"$WORK/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
true
echo "status $?"
/bin/busybox reboot -f
INIT
chmod +x "$WORK/root/init"
(cd "$WORK/root" && find . | cpio -o -H newc --quiet | gzip -1 >"$WORK/initrd.cpio.gz")

now() { date +%s.%N; }
# One round runs each mode once, in turn, so load from the machine's other users lands on
# all of them alike; each mode's medians and bests are over the rounds.
MODES=(busybox host qemu)
run_mode() {
    case $1 in
        busybox) "$DOMBOOT" run --kernel "$KERNEL" --accel tcg --rootfs busybox --exec true ;;
        host) "$DOMBOOT" run --kernel "$KERNEL" --accel tcg --rootfs host --exec true ;;
        qemu) qemu-system-x86_64 -accel tcg -M pc -m 512 -no-reboot -display none -nodefaults \
            -serial stdio -kernel "$KERNEL" -initrd "$WORK/initrd.cpio.gz" \
            -append 'console=ttyS0 quiet loglevel=0 panic=-1' ;;
    esac
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# Warm the initramfs cache (busybox) and the host's page cache (host rootfs); not timed.
run_mode busybox >/dev/null 2>&1 || { echo "domboot --rootfs busybox failed" >&2; exit 1; }
run_mode host >/dev/null 2>&1 || {
    echo "domboot --rootfs host failed (virtiofsd missing? scripts/setup.sh installs it):" >&2
    run_mode host >/dev/null
    exit 1
}
for ((r = 1; r <= RUNS; r++)); do
    for m in "${MODES[@]}"; do
        t0=$(now)
        run_mode "$m" >/dev/null 2>&1 || { echo "round $r: $m failed" >&2; exit 1; }
        t1=$(now)
        echo "$(echo "$t1 - $t0" | bc -l)" >>"$WORK/times.$m"
    done
    echo "round $r of $RUNS done" >&2
done
declare -A MED BEST
for m in "${MODES[@]}"; do
    MED[$m]=$(median <"$WORK/times.$m")
    BEST[$m]=$(sort -g "$WORK/times.$m" | head -1)
done

printf '\n`run --exec true` under TCG, %d interleaved rounds (seconds):\n' "$RUNS"
printf '  %-28s %12s %12s %12s\n' "" "busybox" "host rootfs" "plain QEMU"
printf '  %-28s %12.3f %12.3f %12.3f\n' median "${MED[busybox]}" "${MED[host]}" "${MED[qemu]}"
printf '  %-28s %12.3f %12.3f %12.3f\n' best "${BEST[busybox]}" "${BEST[host]}" "${BEST[qemu]}"
printf '  %-28s %12.2f %12.2f %12s\n' "ratio to plain QEMU (median)" \
    "$(echo "${MED[busybox]} / ${MED[qemu]}" | bc -l)" "$(echo "${MED[host]} / ${MED[qemu]}" | bc -l)" "1.00"
printf '  %-28s %12s %12.2f\n' "host rootfs / busybox" "" "$(echo "${MED[host]} / ${MED[busybox]}" | bc -l)"
