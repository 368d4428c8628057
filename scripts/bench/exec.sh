#!/usr/bin/env bash
# Wall time of `domboot run --exec true` beside plain QEMU booting the same kernel with an
# equivalent busybox initramfs (-kernel K -initrd I), both under TCG on this machine, and
# the ratio. Usage: scripts/bench/exec.sh [RUNS]   (kernel: $CACHE/debian/cloud/vmlinuz)
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
time_runs() { # label, command...
    local label=$1 t0 t1 best=999999 total=0 i d
    shift
    for ((i = 0; i < RUNS; i++)); do
        t0=$(now)
        "$@" >/dev/null 2>&1 || { echo "$label failed: $*" >&2; exit 1; }
        t1=$(now)
        d=$(echo "$t1 - $t0" | bc -l)
        total=$(echo "$total + $d" | bc -l)
        (($(echo "$d < $best" | bc -l))) && best=$d
    done
    printf '%s %.3f %.3f\n' "$label" "$(echo "$total / $RUNS" | bc -l)" "$best"
}

"$DOMBOOT" run --kernel "$KERNEL" --exec true >/dev/null 2>&1 # warm the initramfs cache
read -r _ d_mean d_best < <(time_runs domboot "$DOMBOOT" run --kernel "$KERNEL" --exec true)
read -r _ q_mean q_best < <(time_runs qemu qemu-system-x86_64 -accel tcg -M pc -m 512 -no-reboot \
    -display none -nodefaults -serial stdio -kernel "$KERNEL" -initrd "$WORK/initrd.cpio.gz" \
    -append 'console=ttyS0 quiet loglevel=0 panic=-1')

printf '\n`run --exec true` under TCG, %d runs each (seconds):\n' "$RUNS"
printf '  %-44s mean %6.3f  best %6.3f\n' "domboot run --exec true" "$d_mean" "$d_best"
printf '  %-44s mean %6.3f  best %6.3f\n' "qemu-system-x86_64 -kernel -initrd (TCG)" "$q_mean" "$q_best"
printf '  ratio domboot/qemu (mean): %.2f\n' "$(echo "$d_mean / $q_mean" | bc -l)"
