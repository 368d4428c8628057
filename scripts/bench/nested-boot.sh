#!/usr/bin/env bash
# Real Linux to its /init on a real (nested SVM) KVM: domboot beside QEMU -M microvm and
# -M pc, same kernel, initramfs and command line, interleaved in one outer boot of the
# nested bench. Usage: scripts/bench/nested-boot.sh [ROUNDS]   (see --help)
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/bench/nested-boot.sh [--debug] [--no-scrub] [ROUNDS]     (default ROUNDS: 5)

Measures the lean release binary (scripts/build-release.sh: static, fat LTO, the run
path's functions laid out together from crates/cli/startup-order.txt), with the plain
`cargo build --release` binary as a reference row (domboot-plain). --debug measures the
debug build instead of the lean one (quicker to build; the table says which was used).

Inside the nested bench's outer guest (Debian's cloud kernel under QEMU TCG -cpu max, with
kvm-amd: see README, "The nested bench"), boots Debian's cloud kernel with a busybox
initramfs whose /init prints a marker and powers off, ROUNDS times each, interleaved:

  domboot run --accel kvm --memory 512M --kernel K --initrd RD --cmdline C
  domboot-plain run ... (the same, with the plain release binary)
  qemu-system-x86_64 -accel kvm -cpu host -M microvm -m 512 COMMON
  qemu-system-x86_64 -accel kvm -cpu host -M pc      -m 512 COMMON
  COMMON = -nodefaults -no-user-config -display none -serial stdio -no-reboot
           -kernel K -initrd RD -append C;   C = console=ttyS0 panic=-1 quiet

Measures, by the outer guest's clock (/proc/uptime, 10 ms steps; the outer guest's clock
runs at the host's pace): process start -> the marker line on stdout, process start ->
exit, and, sampling /proc/PID/smaps every 0.2 s, the VMM's own peak resident memory (all
of it but the guest-RAM mapping) and the guest RAM resident (Debian's kernel zeroes what
it allocates, so it differs little between VMMs). The inner /init also prints the
kernel's own clock (/proc/uptime), so the time to marker splits into "kernel clock"
(Linux from its clock's start to /init) and "before clock" (everything earlier: the
VMM's start-up, firmware, the bzImage's decompressor and Linux's earliest set-up).
Before each run the outer guest rewrites 512 MiB of its free memory (a file on a tmpfs,
then removed): --no-scrub leaves that out. Why: QEMU TCG keeps the code it translated for
the previous run's guest, and the first write to each outer page that held such code pays
for invalidating it; without the scrub, a run whose guest reuses the pages where the
previous guest's kernel ran (the inner kernel's KASLR places it anywhere) spends up to
1.6 s more in its kernel, by the luck of page reuse, not by anything the VMM does
(measured: Debian's kernel took 1.8-3.0 s from its clock's start to /init in back-to-back
domboot runs, 1.39-1.46 s after a scrub; QEMU pc 1.52-1.61 s either way; the first run
in a fresh outer guest is always fast). The scrub moves that cost out of the measured
runs, for every VMM alike; real hosts have no such cost.

busybox's `time -v` is not used: it reports ru_maxrss four times too large. Prints
medians, ratios domboot/QEMU and the issue's goals (time <= 0.5x microvm's, VMM memory
<= 0.1x QEMU's). Everything runs nested under TCG, so absolute times are ~10-50x a real
host's; the ratios are what carries over.
USAGE
}
PROFILE=lean
SCRUB_MIB=512
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --debug) PROFILE=debug; shift ;;
        --no-scrub) SCRUB_MIB=0; shift ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done
ROUNDS=${1:-5}
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# Where cargo puts what it builds (CARGO_TARGET_DIR, as cargo reads it).
TARGET=${CARGO_TARGET_DIR:-target}
CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
KERNEL=$(readlink -f "$CACHE/debian/cloud/vmlinuz")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build -q --release -p domboot -p domboot-testkit --bin domboot --bin nested >&2
PLAIN=$TARGET/release/domboot
if [[ $PROFILE == lean ]]; then
    BIN=$(scripts/build-release.sh)
    # How much of the layout list this binary still has (a stale list only costs memory).
    listed=$(wc -l <crates/cli/startup-order.txt)
    found=$(nm --defined-only "$BIN" | awk '{print $NF}' | sort -u |
        comm -12 - <(sort -u crates/cli/startup-order.txt) | wc -l)
    echo "lean binary: $found of the $listed functions in crates/cli/startup-order.txt found" >&2
else
    cargo build -q -p domboot --bin domboot >&2
    BIN=$TARGET/debug/domboot
fi
echo "domboot: $BIN ($PROFILE); domboot-plain: $PLAIN; $ROUNDS rounds, interleaved; $SCRUB_MIB MiB of free memory rewritten before each run" >&2

# The inner initramfs: busybox and an /init that prints the marker and powers off.
mkdir -p "$WORK/rd/bin" "$WORK/rd/proc"
cp /bin/busybox "$WORK/rd/bin/busybox"
cat > "$WORK/rd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
read up rest < /proc/uptime
echo "BENCH-MARKER $up"
/bin/busybox poweroff -f
INIT
chmod +x "$WORK/rd/init"
(cd "$WORK/rd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$WORK/rd.cpio.gz"
RD=$WORK/rd.cpio.gz

cat > "$WORK/inner.sh" <<INNER
C='console=ttyS0 panic=-1 quiet'
COMMON="-nodefaults -no-user-config -display none -serial stdio -no-reboot -kernel $KERNEL -initrd $RD"
GUEST_KB=$((512 * 1024))
now() { read up rest < /proc/uptime; echo \$(( \${up%.*} * 1000 + 1\${up#*.}0 - 1000 )); }
# VMM memory = resident memory outside guest RAM; guest = resident memory inside it.
# Guest RAM is a run of address-contiguous mappings adding up to the guest's size or more
# (domboot maps the kernel and initrd files copy-on-write over parts of it, which splits
# its one mapping into several).
sample() {
    awk -v g=\$GUEST_KB '
        function flush() { if (size >= g) guest += rss; else vmm += rss; size = 0; rss = 0 }
        /^[0-9a-f]+-[0-9a-f]+ / {
            split(\$1, r, "-")
            if (r[1] != last) flush()
            last = r[2]
            next
        }
        /^Size:/ { size += \$2 }
        /^Rss:/ { rss += \$2 }
        END { flush(); print vmm + 0, guest + 0 }' /proc/\$1/smaps 2>/dev/null
}
# Rewrites SCRUB_MIB of free memory, so that no run pays QEMU TCG's invalidation of the code
# it translated for the previous run's guest (see --help).
mkdir -p /scrub && mount -t tmpfs -o size=${SCRUB_MIB}m tmpfs /scrub
scrub() {
    [ $SCRUB_MIB -gt 0 ] || return 0
    dd if=/dev/zero of=/scrub/z bs=1M count=$SCRUB_MIB 2> /dev/null
    rm -f /scrub/z
}
# measure NAME ROUND PROCESS CMD...: prints
# "ROW NAME ROUND marker_ms exit_ms vmm_kb guest_kb guest_clock_ms_at_marker"
measure() {
    name=\$1 round=\$2 proc=\$3; shift 3
    rm -f /tmp/mark /tmp/uptime
    scrub
    t0=\$(now)
    "\$@" 2> /tmp/err | while IFS= read -r line; do
        case "\$line" in *BENCH-MARKER*) now > /tmp/mark; echo "\${line##* }" | tr -dc '0-9.' > /tmp/uptime ;; esac
    done &
    pipe=\$!
    vmm=0 guest=0
    while kill -0 \$pipe 2> /dev/null; do
        pid=\$(pidof \$proc)
        if [ -n "\$pid" ]; then
            set -- \$(sample \$pid)
            [ "\${1:-0}" -gt \$vmm ] && vmm=\$1
            [ "\${2:-0}" -gt \$guest ] && guest=\$2
        fi
        sleep 0.2
    done
    t1=\$(now)
    [ -f /tmp/mark ] || echo "NO MARKER: \$name round \$round; its stderr ended with: \$(tail -5 /tmp/err | tr '\\n' '|')" >&2
    mark=\$(cat /tmp/mark 2> /dev/null || echo \$t1)
    up=\$(cat /tmp/uptime 2> /dev/null || echo 0.00)
    up=\$(( \${up%.*} * 1000 + 1\${up#*.}0 - 1000 ))
    echo "ROW \$name \$round \$((mark - t0)) \$((t1 - t0)) \$vmm \$guest \$up"
}
r=1
while [ \$r -le $ROUNDS ]; do
    measure domboot \$r domboot domboot run --accel kvm --memory 512M --kernel $KERNEL --initrd $RD --cmdline "\$C"
    measure domboot-plain \$r domboot-plain domboot-plain run --accel kvm --memory 512M --kernel $KERNEL --initrd $RD --cmdline "\$C"
    measure qemu-microvm \$r qemu-system-x86_64 qemu-system-x86_64 -accel kvm -cpu host -M microvm -m 512 \$COMMON -append "\$C"
    measure qemu-pc \$r qemu-system-x86_64 qemu-system-x86_64 -accel kvm -cpu host -M pc -m 512 \$COMMON -append "\$C"
    r=\$((r + 1))
done
INNER

"$TARGET/release/nested" --domboot "$BIN" --program "$PLAIN:/bin/domboot-plain" --qemu --file "$KERNEL" --file "$RD" \
    --file "$WORK/inner.sh" --timeout 3000 -- sh "$WORK/inner.sh" > "$WORK/rows.txt"
# Every run, for a reader who wants more than the medians (ROW name round marker_ms
# exit_ms vmm_kb guest_kb kernel_clock_ms).
grep '^ROW ' "$WORK/rows.txt" >&2 || true

awk '
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^ROW / { m[$2] = m[$2] " " $4; e[$2] = e[$2] " " $5; v[$2] = v[$2] " " $6; g[$2] = g[$2] " " $7; k[$2] = k[$2] " " $8; b[$2] = b[$2] " " ($4 - $8); if ($4 == $5) miss[$2]++ }
END {
    printf "%-14s %10s %12s %13s %9s %14s %15s\n", "command", "marker ms", "kernel clock", "before clock", "exit ms", "VMM peak MiB", "guest RSS MiB"
    n = split("domboot domboot-plain qemu-microvm qemu-pc", names, " ")
    for (i = 1; i <= n; i++) {
        n_ = names[i]; M[n_] = median(m[n_]); E[n_] = median(e[n_]); V[n_] = median(v[n_]) / 1024; G[n_] = median(g[n_]) / 1024
        printf "%-14s %10d %12d %13d %9d %14.1f %15.1f%s\n", n_, M[n_], median(k[n_]), median(b[n_]), E[n_], V[n_], G[n_], miss[n_] ? "  (no marker in " miss[n_] " run(s))" : ""
    }
    printf "\nratios domboot/QEMU: time to marker %.2fx microvm, %.2fx pc; VMM memory %.3fx microvm, %.3fx pc\n",
        M["domboot"] / M["qemu-microvm"], M["domboot"] / M["qemu-pc"], V["domboot"] / V["qemu-microvm"], V["domboot"] / V["qemu-pc"]
    printf "the plain release binary (domboot-plain): time to marker %.2fx microvm; VMM memory %.3fx microvm, %.3fx pc\n",
        M["domboot-plain"] / M["qemu-microvm"], V["domboot-plain"] / V["qemu-microvm"], V["domboot-plain"] / V["qemu-pc"]
    printf "goal time <= 0.5x microvm: %s;  goal VMM memory <= 0.1x QEMU: %s\n",
        (M["domboot"] <= 0.5 * M["qemu-microvm"]) ? "met" : "NOT met",
        (V["domboot"] <= 0.1 * V["qemu-microvm"] && V["domboot"] <= 0.1 * V["qemu-pc"]) ? "met" : "NOT met"
}' "$WORK/rows.txt"
