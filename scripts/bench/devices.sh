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
VMM, interleaved (odd rounds domboot first, even rounds QEMU first), with one raw disk and one tap, and an /init that measures in the guest
(its clock, /proc/uptime, 10 ms steps, for dd and nc; fio's own report for fio):

  write    busybox dd if=/dev/zero of=/dev/vda bs=1M count=MIB oflag=direct conv=fsync
  read     busybox dd if=/dev/vda of=/dev/null bs=1M count=MIB iflag=direct
           (O_DIRECT both ways: the inner guest's 512 MiB page cache serves nothing)
  rr QD1   fio --rw=randread --bs=4k --direct=1 --ioengine=psync --iodepth=1
           --filename=/dev/vda --size=MIB MiB --runtime=FIO_SECONDS --time_based: IOPS
  rr QD16  the same with --ioengine=libaio --iodepth=16: IOPS
  net      NET_MIB MiB of zeros to the outer guest over TCP (busybox nc) on the tap

  domboot run --accel kvm --memory 512M --disk IMG --net tap:dtap0 ...
  qemu-system-x86_64 -accel kvm -cpu host -M microvm -m 512 (ACPI on, so Debian's
      virtio_mmio finds the devices as it does domboot's)
      -drive file=IMG,if=none,format=raw -device virtio-blk-device (cache=writeback, the default:
      the outer /tmp is tmpfs, which takes no O_DIRECT)
      -netdev tap,ifname=qtap0 -device virtio-net-device

fio (Debian package `fio`, installed by scripts/setup.sh) is carried into the inner
initramfs with the libraries `ldd` lists and the ld.so; without it the bench stops and
says to run scripts/setup.sh --install-only (or apt-get install fio).

The disk is a file of MIB + 16 MiB in the outer guest's /tmp, which is its RAM (-m 8G),
written in full once before the first round: the bench checks the outer guest's
MemAvailable first and stops with the numbers when it would not fit.

Prints medians (MiB/s; IOPS for the random reads; MiB/s in brackets) and the ratios
domboot/QEMU (the issue's goal: >= 1.0x). Everything runs nested under TCG: absolute
numbers are far below a real host's, and a loaded host makes them noisy; the ratios of
interleaved medians are what carries over.

Each row also goes to the outer guest's console, kept in
${TMPDIR:-/tmp}/domboot-bench-devices-console.txt: when the outer guest dies before the
check reports (its kernel crashed once in a QEMU round), the table is made from there and
the crash lines are shown. A domboot round that has not ended after 900 s is a FAILED row.

Environment: MIB (default 1024, 1 to 4096) sizes the disk transfers and the span of the
random reads; NET_MIB (default 64, 1 to 400) the net transfer (busybox nc runs at about
1 MiB/s nested, so 1 GiB would take a quarter of an hour a round); FIO_SECONDS (default
10) each random-read run.
USAGE
}
PROFILE=release
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    --debug) PROFILE=debug; shift ;;
esac
ROUNDS=${1:-3}
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }
MIB=${MIB:-1024}
[[ $MIB =~ ^[0-9]+$ && $MIB -ge 1 && $MIB -le 4096 ]] || { echo "MIB must be 1 to 4096 (the disk lives in the outer guest's 8 GiB of RAM)" >&2; exit 2; }
NET_MIB=${NET_MIB:-64}
[[ $NET_MIB =~ ^[0-9]+$ && $NET_MIB -ge 1 && $NET_MIB -le 400 ]] || { echo "NET_MIB must be 1 to 400" >&2; exit 2; }
FIO_SECONDS=${FIO_SECONDS:-10}
[[ $FIO_SECONDS =~ ^[0-9]+$ && $FIO_SECONDS -ge 1 && $FIO_SECONDS -le 600 ]] || { echo "FIO_SECONDS must be 1 to 600" >&2; exit 2; }
FIO=$(command -v fio) || { echo "fio is not installed: run scripts/setup.sh --install-only (or apt-get install fio)" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# Where cargo puts what it builds (CARGO_TARGET_DIR, as cargo reads it).
TARGET=${CARGO_TARGET_DIR:-target}
CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
KERNEL=$(readlink -f "$CACHE/debian/cloud/vmlinuz")
MODS=$(readlink -f "$CACHE/debian/cloud/modules")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

FLAGS=()
[[ $PROFILE == release ]] && FLAGS=(--release)
cargo build -q "${FLAGS[@]}" -p domboot -p domboot-testkit --bin domboot --bin nested >&2
echo "domboot: $TARGET/$PROFILE/domboot; $ROUNDS rounds, interleaved; disk $MIB MiB, random reads ${FIO_SECONDS} s each, net $NET_MIB MiB" >&2

# The inner initramfs: busybox, the virtio drivers, and an /init that measures.
mkdir -p "$WORK/rd/bin" "$WORK/rd/proc" "$WORK/rd/sys" "$WORK/rd/dev" "$WORK/rd/m"
cp /bin/busybox "$WORK/rd/bin/busybox"
# fio with every library ldd lists, each at the path ldd gives (the loader's own search
# path, and RUNPATHs such as ceph's), and the loader.
cp "$FIO" "$WORK/rd/bin/fio"
ldd "$FIO" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    mkdir -p "$WORK/rd$(dirname "$lib")"
    cp -L "$lib" "$WORK/rd$lib"
done
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
t0=\$(now); \$B dd if=/dev/zero of=/dev/vda bs=1M count=$MIB oflag=direct conv=fsync 2>/dev/null; t1=\$(now)
echo 3 > /proc/sys/vm/drop_caches
t2=\$(now); \$B dd if=/dev/vda of=/dev/null bs=1M count=$MIB iflag=direct 2>/dev/null; t3=\$(now)
# fio --minimal: field 8 is the read IOPS. A failed run reports 0.
rr() { /bin/fio --name=rr --filename=/dev/vda --rw=randread --bs=4k --direct=1 --size=${MIB}m --runtime=$FIO_SECONDS --time_based --minimal "\$@" 2>/dev/console | \$B awk -F';' 'NR == 1 { v = \$8 + 0 } END { print v + 0 }'; }
q1=\$(rr --ioengine=psync --iodepth=1); q16=\$(rr --ioengine=libaio --iodepth=16)
\$B ip addr add 10.9.0.2/24 dev eth0; \$B ip link set eth0 up
i=0; until \$B ping -c 1 -W 1 10.9.0.1 >/dev/null 2>&1 || [ \$i -gt 30 ]; do i=\$((i+1)); done
t4=\$(now); \$B head -c \$(($NET_MIB << 20)) /dev/zero | \$B nc 10.9.0.1 7010; \$B sleep 0.5; t5=\$(now)
echo "BENCH \$((t1 - t0)) \$((t3 - t2)) \$q1 \$q16 \$((t5 - t4))"
\$B poweroff -f
INIT
chmod +x "$WORK/rd/init"
(cd "$WORK/rd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$WORK/rd.cpio.gz"
RD=$WORK/rd.cpio.gz

cat > "$WORK/inner.sh" <<INNER
C='console=ttyS0 panic=-1 quiet'
# The disk, in the outer guest's RAM (its /tmp), with two inner guests' worth of RAM and
# 512 MiB more free beside it. Written in full once here, so no round's write pass is the
# one that makes the outer guest allocate its pages.
need=\$(( $MIB + 16 + 2 * 512 + 512 ))
avail=\$(( \$(awk '/^MemAvailable:/ { print \$2 }' /proc/meminfo) / 1024 ))
if [ \$avail -lt \$need ]; then
    echo "FAILED setup: the outer guest has \$avail MiB available; a $MIB MiB disk in its /tmp needs \$need MiB (MIB + 16 + 1536 for the inner guests): lower MIB" >&2
    echo "FAILED setup: \$avail MiB available < \$need MiB needed" > /dev/console 2>/dev/null
    exit 1
fi
dd if=/dev/zero of=/tmp/disk.img bs=1M count=$((MIB + 16)) 2>/dev/null
ip tuntap add dev qtap0 mode tap 2>/dev/null || true
# The tap's far side: a listener per run, its input a FIFO held open (a busybox nc whose
# input ends closes its connection), what it receives counted in /tmp/got.
mkfifo /tmp/hold; exec 3<>/tmp/hold
serve() { rm -f /tmp/got; nc -l -p 7010 <&3 > /tmp/got & srv=\$!; }
# run NAME ROUND TAP CMD...: prints "ROW NAME ROUND write_ms read_ms rr1_iops rr16_iops net_ms"
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
    if [ \$# -eq 6 ]; then row="ROW \$name \$round \$2 \$3 \$4 \$5 \$6"; else row="FAILED \$name \$round: \$(tail -3 /tmp/vmm.out /tmp/vmm.err | tr '\n' ' ')"; fi
    echo "\$row"; echo "\$row" > /dev/console 2>/dev/null
}
run_domboot() { run domboot \$1 dtap0 domboot run --accel kvm --memory 512M --kernel $KERNEL --initrd $RD --cmdline "\$C" --timeout 900 --no-rng --disk /tmp/disk.img --net tap:dtap0; }
run_qemu() { run qemu-microvm \$1 qtap0 qemu-system-x86_64 -accel kvm -cpu host -M microvm,acpi=on -m 512 -nodefaults -no-user-config -display none -serial stdio -no-reboot -kernel $KERNEL -initrd $RD -append "\$C" -drive file=/tmp/disk.img,if=none,id=d0,format=raw -device virtio-blk-device,drive=d0 -netdev tap,id=n0,ifname=qtap0,script=no,downscript=no -device virtio-net-device,netdev=n0; }
# Odd rounds start with domboot, even ones with QEMU: neither always runs on a host the
# other has just warmed.
r=1
while [ \$r -le $ROUNDS ]; do
    if [ \$((r % 2)) -eq 1 ]; then run_domboot \$r; run_qemu \$r; else run_qemu \$r; run_domboot \$r; fi
    r=\$((r + 1))
done
INNER

CONSOLE=${TMPDIR:-/tmp}/domboot-bench-devices-console.txt
status=0
"$TARGET/$PROFILE/nested" --domboot "$TARGET/$PROFILE/domboot" --qemu --module kernel/drivers/net/tun.ko \
    --file "$KERNEL" --file "$RD" --file "$WORK/inner.sh" --timeout 6000 --console \
    -- sh "$WORK/inner.sh" > "$WORK/rows.txt" 2> "$CONSOLE" || status=$?
if ! grep -aq 'ROW ' "$WORK/rows.txt"; then
    # The outer guest died (or the check never reported): take the rows its console got.
    echo "nested exited with status $status before the check reported; rows from the outer console ($CONSOLE):" >&2
    grep -a 'ROW \|FAILED ' "$CONSOLE" > "$WORK/rows.txt" || true
    grep -a -A3 'BUG:\|Kernel panic\|reset-state' "$CONSOLE" | head -20 >&2 || true
fi
grep -a 'FAILED' "$WORK/rows.txt" >&2 || true

grep -a -o 'ROW [a-z-]* [0-9]* [0-9 ]*' "$WORK/rows.txt" | sed 's/^/  /' >&2 || true
awk -v mib="$MIB" -v netmib="$NET_MIB" '
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function rate(size, ms) { return ms > 0 ? size * 1000 / ms : 0 }
function ratio(x, y) { return y > 0 ? sprintf("%.2fx", x / y) : "-" }
# An inner guest console may share a line with a row: take the row wherever it starts.
# ROW NAME ROUND write_ms read_ms rr1_iops rr16_iops net_ms
match($0, /ROW [a-z-]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+/) {
    split(substr($0, RSTART, RLENGTH), f, " ")
    k = f[2]
    w[k] = w[k] " " rate(mib, f[4]); r[k] = r[k] " " rate(mib, f[5])
    q1[k] = q1[k] " " f[6]; q16[k] = q16[k] " " f[7]; n[k] = n[k] " " rate(netmib, f[8])
}
END {
    printf "%-14s %12s %12s %22s %22s %10s\n", "VMM", "write MiB/s", "read MiB/s", "4K randread QD1 IOPS", "4K randread QD16 IOPS", "net MiB/s"
    split("domboot qemu-microvm", names, " ")
    for (i = 1; i <= 2; i++) {
        k = names[i]; W[k] = median(w[k]); R[k] = median(r[k]); A[k] = median(q1[k]); B[k] = median(q16[k]); N[k] = median(n[k])
        printf "%-14s %12.1f %12.1f %13d (%5.1f MiB/s) %13d (%5.1f MiB/s) %10.1f\n", k, W[k], R[k], A[k], A[k] / 256, B[k], B[k] / 256, N[k]
    }
    d = "domboot"; q = "qemu-microvm"
    printf "\nratios domboot/QEMU (medians): write %s, read %s, randread QD1 %s, randread QD16 %s, net %s (goal >= 1.0x)\n", ratio(W[d], W[q]), ratio(R[d], R[q]), ratio(A[d], A[q]), ratio(B[d], B[q]), ratio(N[d], N[q])
}' "$WORK/rows.txt"
