#!/usr/bin/env bash
# virtio-blk and virtio-net throughput on domboot's KVM backend beside QEMU -M microvm with
# the same devices, same files and taps, interleaved in one outer boot of the nested bench.
# Usage: scripts/bench/devices.sh [--debug] [ROUNDS]   (see --help)
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/bench/devices.sh [--debug] [ROUNDS]     (default ROUNDS: 3)

Inside the nested bench's outer guest (Debian's cloud kernel under QEMU TCG -cpu max, with
kvm-amd: see README, "The nested bench"), boots Debian's cloud kernel ROUNDS times on each
VMM, interleaved, with one raw disk and one tap, and an /init that measures in the guest
(its clock, /proc/uptime, 10 ms steps):

  write   dd if=/dev/zero of=/dev/vda bs=1M count=MIB conv=fsync
  read    dd if=/dev/vda of=/dev/null bs=1M count=MIB     (page cache dropped first)
  net     MIB MiB of zeros to the outer guest over TCP (busybox nc) on the tap

  domboot run --accel kvm --memory 512M --disk IMG --net tap:dtap0 ...
  qemu-system-x86_64 -accel kvm -cpu host -M microvm -m 512 (ACPI on, so Debian's
      virtio_mmio finds the devices as it does domboot's)
      -drive file=IMG,if=none,format=raw,cache=none -device virtio-blk-device
      -netdev tap,ifname=qtap0 -device virtio-net-device

Prints medians in MiB/s and the ratios domboot/QEMU (the issue's goal: >= 1.0x). Random
4 KiB reads are not measured: the guest has only busybox (no fio), and a dd per read
measures process start-up, not the disk. Everything runs nested under TCG: absolute
numbers are far below a real host's; the ratios are what carries over.

Each row also goes to the outer guest's console, kept in
${TMPDIR:-/tmp}/domboot-bench-devices-console.txt: when the outer guest dies before the
check reports (its kernel crashed once in a QEMU round), the table is made from there and
the crash lines are shown. A domboot round that has not ended after 300 s is a FAILED row.

Environment: MIB (default 64) sizes each transfer.
USAGE
}
PROFILE=release
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    --debug) PROFILE=debug; shift ;;
esac
ROUNDS=${1:-3}
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }
MIB=${MIB:-64}
[[ $MIB =~ ^[0-9]+$ && $MIB -ge 1 && $MIB -le 400 ]] || { echo "MIB must be 1 to 400" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
KERNEL=$(readlink -f "$CACHE/debian/cloud/vmlinuz")
MODS=$(readlink -f "$CACHE/debian/cloud/modules")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

FLAGS=()
[[ $PROFILE == release ]] && FLAGS=(--release)
cargo build -q "${FLAGS[@]}" -p domboot -p domboot-testkit --bin domboot --bin nested >&2
echo "domboot: target/$PROFILE/domboot; $ROUNDS rounds, interleaved, $MIB MiB each" >&2

# The inner initramfs: busybox, the virtio drivers, and an /init that measures.
mkdir -p "$WORK/rd/bin" "$WORK/rd/proc" "$WORK/rd/sys" "$WORK/rd/dev" "$WORK/rd/m"
cp /bin/busybox "$WORK/rd/bin/busybox"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio \
    drivers/block/virtio_blk net/core/failover drivers/net/net_failover drivers/net/virtio_net; do
    cp "$MODS/kernel/$m.ko" "$WORK/rd/m/"
    echo "$(basename "$m")" >> "$WORK/rd/m/list"
done
cat > "$WORK/rd/init" <<INIT
#!/bin/busybox sh
B=/bin/busybox
\$B mount -t proc proc /proc; \$B mount -t sysfs sys /sys; \$B mount -t devtmpfs dev /dev
for m in \$(\$B cat /m/list); do \$B insmod /m/\$m.ko; done
i=0; while [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; do \$B sleep 0.1; i=\$((i+1)); [ \$i -gt 100 ] && break; done
now() { read up rest < /proc/uptime; echo \$(( \${up%.*} * 1000 + 1\${up#*.}0 - 1000 )); }
t0=\$(now); \$B dd if=/dev/zero of=/dev/vda bs=1M count=$MIB conv=fsync 2>/dev/null; t1=\$(now)
echo 3 > /proc/sys/vm/drop_caches
t2=\$(now); \$B dd if=/dev/vda of=/dev/null bs=1M count=$MIB 2>/dev/null; t3=\$(now)
\$B ip addr add 10.9.0.2/24 dev eth0; \$B ip link set eth0 up
i=0; until \$B ping -c 1 -W 1 10.9.0.1 >/dev/null 2>&1 || [ \$i -gt 30 ]; do i=\$((i+1)); done
t4=\$(now); \$B head -c \$(($MIB << 20)) /dev/zero | \$B nc 10.9.0.1 7010; \$B sleep 0.5; t5=\$(now)
echo "BENCH \$((t1 - t0)) \$((t3 - t2)) \$((t5 - t4))"
\$B poweroff -f
INIT
chmod +x "$WORK/rd/init"
(cd "$WORK/rd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$WORK/rd.cpio.gz"
RD=$WORK/rd.cpio.gz

cat > "$WORK/inner.sh" <<INNER
C='console=ttyS0 panic=-1 quiet'
dd if=/dev/zero of=/tmp/disk.img bs=1M count=$((MIB + 16)) 2>/dev/null
ip tuntap add dev qtap0 mode tap 2>/dev/null || true
# The tap's far side: a listener per run, its input a FIFO held open (a busybox nc whose
# input ends closes its connection), what it receives counted in /tmp/got.
mkfifo /tmp/hold; exec 3<>/tmp/hold
serve() { rm -f /tmp/got; nc -l -p 7010 <&3 > /tmp/got & srv=\$!; }
# run NAME ROUND TAP CMD...: prints "ROW NAME ROUND write_ms read_ms net_ms"
run() {
    name=\$1 round=\$2 tap=\$3; shift 3
    serve
    "\$@" > /tmp/vmm.out 2> /tmp/vmm.err &
    vmm=\$!
    i=0; while [ ! -e /sys/class/net/\$tap ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done
    ip addr add 10.9.0.1/24 dev \$tap 2>/dev/null; ip link set \$tap up
    wait \$vmm
    ip addr del 10.9.0.1/24 dev \$tap 2>/dev/null
    kill \$srv 2>/dev/null; wait \$srv 2>/dev/null
    set -- \$(grep -a '^BENCH' /tmp/vmm.out | tr -d '\r')
    # Each row also goes to the outer console, which survives an outer guest that dies
    # before the check reports (nested --console).
    if [ \$# -eq 4 ]; then row="ROW \$name \$round \$2 \$3 \$4"; else row="FAILED \$name \$round: \$(tail -3 /tmp/vmm.out /tmp/vmm.err | tr '\n' ' ')"; fi
    echo "\$row"; echo "\$row" > /dev/console 2>/dev/null
}
r=1
while [ \$r -le $ROUNDS ]; do
    run domboot \$r dtap0 domboot run --accel kvm --memory 512M --kernel $KERNEL --initrd $RD --cmdline "\$C" --timeout 300 --no-rng --disk /tmp/disk.img --net tap:dtap0
    run qemu-microvm \$r qtap0 qemu-system-x86_64 -accel kvm -cpu host -M microvm,acpi=on -m 512 -nodefaults -no-user-config -display none -serial stdio -no-reboot -kernel $KERNEL -initrd $RD -append "\$C" -drive file=/tmp/disk.img,if=none,id=d0,format=raw -device virtio-blk-device,drive=d0 -netdev tap,id=n0,ifname=qtap0,script=no,downscript=no -device virtio-net-device,netdev=n0
    r=\$((r + 1))
done
INNER

CONSOLE=${TMPDIR:-/tmp}/domboot-bench-devices-console.txt
status=0
"target/$PROFILE/nested" --domboot "target/$PROFILE/domboot" --qemu --module kernel/drivers/net/tun.ko \
    --file "$KERNEL" --file "$RD" --file "$WORK/inner.sh" --timeout 6000 --console \
    -- sh "$WORK/inner.sh" > "$WORK/rows.txt" 2> "$CONSOLE" || status=$?
if ! grep -aq 'ROW ' "$WORK/rows.txt"; then
    # The outer guest died (or the check never reported): take the rows its console got.
    echo "nested exited with status $status before the check reported; rows from the outer console ($CONSOLE):" >&2
    grep -a 'ROW \|FAILED ' "$CONSOLE" > "$WORK/rows.txt" || true
    grep -a -A3 'BUG:\|Kernel panic\|reset-state' "$CONSOLE" | head -20 >&2 || true
fi
grep -a 'FAILED' "$WORK/rows.txt" >&2 || true

awk -v mib="$MIB" '
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function rate(ms) { return ms > 0 ? mib * 1000 / ms : 0 }
# An inner guest console may share a line with a row: take the row wherever it starts.
match($0, /ROW [a-z-]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+/) {
    split(substr($0, RSTART, RLENGTH), f, " ")
    w[f[2]] = w[f[2]] " " rate(f[4]); r[f[2]] = r[f[2]] " " rate(f[5]); n[f[2]] = n[f[2]] " " rate(f[6])
}
END {
    printf "%-14s %14s %14s %14s\n", "VMM", "write MiB/s", "read MiB/s", "net MiB/s"
    split("domboot qemu-microvm", names, " ")
    for (i = 1; i <= 2; i++) {
        k = names[i]; W[k] = median(w[k]); R[k] = median(r[k]); N[k] = median(n[k])
        printf "%-14s %14.1f %14.1f %14.1f\n", k, W[k], R[k], N[k]
    }
    d = "domboot"; q = "qemu-microvm"
    if (W[q] > 0 && R[q] > 0 && N[q] > 0)
        printf "\nratios domboot/QEMU: write %.2fx, read %.2fx, net %.2fx (goal >= 1.0x)\n", W[d] / W[q], R[d] / R[q], N[d] / N[q]
}' "$WORK/rows.txt"
