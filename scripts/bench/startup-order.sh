#!/usr/bin/env bash
# Regenerates crates/cli/startup-order.txt: the symbols of every function the lean binary
# executes in the runs the benches measure, in the order valgrind's callgrind first sees
# them (scripts/bench/callgrind_symbols.py). scripts/build-release.sh links these functions
# next to each other. The runs, all `domboot run --accel kvm` on a real (nested SVM) KVM
# inside the nested bench, since this machine's own /dev/kvm is PVM:
#   1, 2. the start-up bench's freestanding guest with 1 and 2 vCPUs (scripts/bench/startup.sh;
#         --verbose with 2, as that bench reads the peak RSS from it),
#   3.    Debian's cloud kernel to its /init and power-off, as scripts/bench/nested-boot.sh
#         boots it (serial console, ACPI),
#   4.    the same kernel with 2 vCPUs, a virtio disk, virtio-rng and --verbose.
# Run it after changes that move the run path (new crates, a new Rust version, big
# refactors); scripts/bench/nested-boot.sh and scripts/bench/startup.sh show the effect.
# Needs valgrind (apt-get install valgrind: only this maintenance script uses it, so
# scripts/setup.sh leaves it out) and what the nested bench needs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
case "${1:-}" in
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "startup-order.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
VALGRIND_LIB=${VALGRIND_LIB:-/usr/libexec/valgrind}
for f in /usr/bin/valgrind.bin "$VALGRIND_LIB/callgrind-amd64-linux" "$VALGRIND_LIB/vgpreload_core-amd64-linux.so"; do
    [[ -e $f ]] || { echo "startup-order.sh: $f is missing (apt-get install valgrind)" >&2; exit 1; }
done
CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
KERNEL=$(readlink -f "$CACHE/debian/cloud/vmlinuz")
[[ -r $KERNEL ]] || { echo "startup-order.sh: no cached Debian cloud kernel (scripts/setup.sh --install-only)" >&2; exit 1; }
BIN=$(scripts/build-release.sh --no-order)
cargo build --release -q -p domboot-vmm --example bench_guest
cargo build -q -p domboot-testkit --bin nested
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
target/release/examples/bench_guest "$WORK/guest.elf" >/dev/null

# The inner initramfs of runs 3 and 4: busybox and an /init that prints a marker and powers off.
mkdir -p "$WORK/rd/bin" "$WORK/rd/proc"
cp /bin/busybox "$WORK/rd/bin/busybox"
printf '#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\necho ORDER-MARKER\n/bin/busybox poweroff -f\n' >"$WORK/rd/init"
chmod +x "$WORK/rd/init"
(cd "$WORK/rd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$WORK/rd.cpio.gz"
truncate -s 64M "$WORK/disk.img"

# Each run's callgrind output comes back on the results stream, gzip'd and base64'd
# between "@@CG N" and "@@END" lines.
cat >"$WORK/inner.sh" <<INNER
export VALGRIND_LIB=$VALGRIND_LIB
n=0
profile() {
    n=\$((n + 1))
    /usr/bin/valgrind.bin -q --tool=callgrind --demangle=no --dump-instr=yes --callgrind-out-file=/tmp/cg.\$n "\$@" > /tmp/out.\$n 2>&1
    rc=\$?
    echo "startup-order: run \$n ended with status \$rc" >&2
    [ \$rc -eq 0 ] || { tail -20 /tmp/out.\$n >&2; exit 1; }
    echo "@@CG \$n"
    gzip -c /tmp/cg.\$n | base64
    echo "@@END"
}
profile /bin/domboot run --kernel $WORK/guest.elf --accel kvm --serial stdio -m 16M --cpus 1
profile /bin/domboot run --kernel $WORK/guest.elf --accel kvm --serial stdio -m 16M --cpus 2 --verbose
profile /bin/domboot run --accel kvm --memory 512M --kernel $KERNEL --initrd $WORK/rd.cpio.gz --cmdline 'console=ttyS0 panic=-1 quiet' --timeout 900
profile /bin/domboot run --accel kvm --cpus 2 --memory 256M --kernel $KERNEL --initrd $WORK/rd.cpio.gz --disk $WORK/disk.img --rng --verbose --cmdline 'console=ttyS0 panic=-1' --timeout 900
INNER

target/debug/nested --domboot "$BIN" --program /usr/bin/valgrind.bin \
    --file "$VALGRIND_LIB/callgrind-amd64-linux" --file "$VALGRIND_LIB/vgpreload_core-amd64-linux.so" \
    --file "$VALGRIND_LIB/default.supp" --file "$KERNEL" --file "$WORK/rd.cpio.gz" \
    --file "$WORK/disk.img" --file "$WORK/guest.elf" --file "$WORK/inner.sh" \
    --timeout 2400 -- sh "$WORK/inner.sh" >"$WORK/results.txt"

awk -v dir="$WORK" '
    /^@@CG [0-9]+$/ { out = dir "/cg." $2 ".b64"; next }
    /^@@END$/ { close(out); out = ""; next }
    out != "" { print > out }' "$WORK/results.txt"
files=()
for n in 1 2 3 4; do
    [[ -s $WORK/cg.$n.b64 ]] || { echo "startup-order.sh: run $n sent no profile back" >&2; exit 1; }
    base64 -d "$WORK/cg.$n.b64" | gunzip >"$WORK/cg.$n"
    files+=("$WORK/cg.$n")
done
OUT=crates/cli/startup-order.txt
# The profiles name the binary by its path in the outer guest (/bin/domboot); the symbols
# come from the same binary here.
python3 scripts/bench/callgrind_symbols.py "$BIN" "${files[@]}" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "startup-order.sh: $(wc -l <"$OUT") functions in $OUT" >&2
