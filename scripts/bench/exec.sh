#!/usr/bin/env bash
# Wall time of `domboot run --exec true` in its two userlands (--rootfs busybox, and
# --rootfs host: the host's / over virtio-fs) beside plain QEMU booting the same kernel with
# an equivalent busybox initramfs (-kernel K -initrd I) and virtme-ng (`vng --disable-kvm
# --exec`, the host's userland over virtio-fs too), all under TCG on this machine, in
# interleaved rounds: medians, bests and the ratios issue 16's goals name (busybox <= 0.75x
# plain QEMU, host rootfs <= 0.3x vng).
# Usage: scripts/bench/exec.sh [ROUNDS]   (kernel: $CACHE/debian/cloud/vmlinuz)
# vng comes from `scripts/setup.sh --install-only --with-vng` ($CACHE/vng-venv); without it
# the vng column is skipped with a message.
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

# virtme-ng finds a kernel's modules (it loads virtiofs and overlay from them) at
# ROOT/lib/modules/RELEASE when given ROOT/boot/vmlinuz-RELEASE, and runs depmod there; the
# cached kernel is not installed, so give it such a tree here: the kernel and a copy of its
# modules tree made of symlinks (depmod's output lands here, not in the shared cache).
# virtiofsd goes on its PATH, so vng shares the host's / through virtio-fs as domboot does
# (without it vng falls back to 9p).
VNG_VENV=$CACHE/vng-venv
VIRTIOFSD_BIN=$CACHE/virtiofsd/bin
MODES=(busybox host qemu)
vng_missing() {
    [[ -x $VNG_VENV/bin/vng ]] || { echo "no $VNG_VENV/bin/vng"; return; }
    PATH=$PATH:/usr/sbin:/sbin command -v depmod >/dev/null || { echo "no depmod (Debian package kmod)"; return; }
    # Without udev the guest finds no virtio-serial ports: vng runs the command on the
    # console, loses its output and exits 255.
    [[ -x /lib/systemd/systemd-udevd || -x /usr/lib/systemd/systemd-udevd ]] ||
        { echo "no systemd-udevd (Debian package udev)"; return; }
    [[ -x $VIRTIOFSD_BIN/virtiofsd ]] || echo "no $VIRTIOFSD_BIN/virtiofsd"
}
why=$(vng_missing)
if [[ -z $why ]]; then
    RELEASE=$(cat "$CACHE/debian/cloud/kernel-release")
    mkdir -p "$WORK/vng/boot" "$WORK/vng/lib/modules"
    ln -s "$(readlink -f "$KERNEL")" "$WORK/vng/boot/vmlinuz-$RELEASE"
    cp -as "$(readlink -f "$CACHE/debian/cloud/modules")" "$WORK/vng/lib/modules/$RELEASE"
    MODES+=(vng)
else
    echo "vng column skipped: $why (scripts/setup.sh --install-only --with-vng installs virtme-ng)" >&2
fi

now() { date +%s.%N; }
# One round runs each mode once, in turn, so load from the machine's other users lands on
# all of them alike; each mode's medians and bests are over the rounds.
run_mode() {
    case $1 in
        busybox) "$DOMBOOT" run --kernel "$KERNEL" --accel tcg --rootfs busybox --exec true ;;
        host) "$DOMBOOT" run --kernel "$KERNEL" --accel tcg --rootfs host --exec true ;;
        qemu) qemu-system-x86_64 -accel tcg -M pc -m 512 -no-reboot -display none -nodefaults \
            -serial stdio -kernel "$KERNEL" -initrd "$WORK/initrd.cpio.gz" \
            -append 'console=ttyS0 quiet loglevel=0 panic=-1' ;;
        vng) PATH=$VNG_VENV/bin:$VIRTIOFSD_BIN:$PATH:/usr/sbin:/sbin "$VNG_VENV/bin/vng" \
            --disable-kvm --run "$WORK/vng/boot/vmlinuz-$RELEASE" --exec true ;;
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
# vng's first run also runs depmod on the modules tree above.
if [[ " ${MODES[*]} " == *" vng "* ]]; then
    rc=0
    run_mode vng >"$WORK/vng.out" 2>"$WORK/vng.err" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "vng --disable-kvm --exec true failed with status $rc:" >&2
        tail -n 20 "$WORK/vng.out" "$WORK/vng.err" >&2
        exit 1
    fi
fi
for ((r = 1; r <= RUNS; r++)); do
    for m in "${MODES[@]}"; do
        t0=$(now)
        rc=0
        run_mode "$m" >"$WORK/out" 2>&1 || rc=$?
        if [[ $rc -ne 0 ]]; then
            echo "round $r: $m failed with status $rc:" >&2
            tail -n 20 "$WORK/out" >&2
            exit 1
        fi
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

ratio() { echo "$1 / $2" | bc -l; }
printf '\n`run --exec true` under TCG, %d interleaved rounds (seconds):\n' "$RUNS"
declare -A TITLE=([busybox]="busybox" [host]="host rootfs" [qemu]="plain QEMU" [vng]="vng")
row() { # row LABEL FORMAT VALUES-BY-MODE...
    local label=$1 fmt=$2 m
    shift 2
    printf '  %-30s' "$label"
    for m in "${MODES[@]}"; do printf " %12$fmt" "$1"; shift; done
    printf '\n'
}
printf '  %-30s' ""
for m in "${MODES[@]}"; do printf ' %12s' "${TITLE[$m]}"; done
printf '\n'
meds=() bests=() toq=()
for m in "${MODES[@]}"; do
    meds+=("${MED[$m]}") bests+=("${BEST[$m]}") toq+=("$(ratio "${MED[$m]}" "${MED[qemu]}")")
done
row median .3f "${meds[@]}"
row best .3f "${bests[@]}"
row "ratio to plain QEMU (median)" .2f "${toq[@]}"
printf '\nratios of medians:\n'
printf '  %-44s %6.2f  (goal <= 0.75)\n' "domboot busybox / plain QEMU" "$(ratio "${MED[busybox]}" "${MED[qemu]}")"
printf '  %-44s %6.2f\n' "domboot host rootfs / domboot busybox" "$(ratio "${MED[host]}" "${MED[busybox]}")"
if [[ -n ${MED[vng]:-} ]]; then
    printf '  %-44s %6.2f  (goal <= 0.30)\n' "domboot host rootfs / vng" "$(ratio "${MED[host]}" "${MED[vng]}")"
else
    printf '  %-44s %6s  (vng column skipped: %s)\n' "domboot host rootfs / vng" "-" "$why"
fi
