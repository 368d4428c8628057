#!/usr/bin/env bash
# Startup of one tiny freestanding guest, side by side in one run: domboot on KVM beside
# QEMU (-M microvm and -M pc, -accel kvm, and -accel tcg for reference), the guest given to
# both as the same PVH ELF. Per command, over RUNS runs: process start -> first guest
# serial byte on stdout, process start -> exit, peak RSS; medians, ratios domboot/QEMU, and
# domboot's VMM memory overhead. Usage: scripts/bench/startup.sh [RUNS]   (see --help)
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench/startup.sh [RUNS]      (default RUNS: 10)

Builds release (`domboot`, and the domboot-vmm examples `bench_guest` and `startup_probe`)
and the lean release binary (scripts/build-release.sh: static, LTO, start-up functions
laid out together), which is the domboot measured; the plain build is a reference row.
writes the guest (crates/vmm/examples/bench_guest.rs: an ELF32 with a PVH note that writes
one byte to COM1 at once, then a short line, then 0 to the debug-exit port 0xF4) and
measures, for each command, one warm-up run plus RUNS runs:

  domboot run --kernel GUEST --accel kvm --serial stdio -m 16M
  qemu-system-x86_64 -M microvm,isa-serial=on -accel kvm  COMMON
  qemu-system-x86_64 -M pc -accel kvm                     COMMON
  qemu-system-x86_64 -M microvm,isa-serial=on -accel tcg  COMMON   (reference)
  qemu-system-x86_64 -M pc -accel tcg                     COMMON   (reference)
  COMMON = -m 16M -nodefaults -display none -serial stdio -no-reboot
           -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel GUEST

and, as references, `domboot plan` of the same guest (the binary without a VM) and
/bin/echo (the floor of the method). The stopwatch is startup_probe (see its header):
first byte = a blocking 1-byte read on the child's stdout pipe, exit = waitid, peak RSS =
the child's ru_maxrss from wait4. 16 MiB is the smallest guest RAM domboot allows.

VMM memory overhead (domboot) = peak RSS - guest memory actually touched. The peak RSS is
the VmHWM that `domboot run --verbose` reports at its end (median of RUNS more runs): the
probe's ru_maxrss cannot go below the probe's own RSS (see the /bin/echo row). The
touched guest memory is the RSS of the guest-RAM mapping in /proc/PID/smaps, read in an
extra run while domboot is blocked writing the guest's first byte into a full pipe (the
guest has been loaded and has started by then, and touches nothing new afterwards).

Prints a table of medians (min-max), the ratios, and each goal as met / NOT met:
first byte <= 5 ms, first byte <= 0.3x QEMU's, VMM memory overhead <= 2 MiB.
Exit status: 0 when everything that must run ran (missing goals do not fail it); 1 when
domboot or QEMU under TCG failed to run the guest (QEMU -accel kvm failing is reported, and
its rows are marked failed); 2 on bad usage. VERBOSE=1 also prints every run (with
VmHWM, RssAnon and RssFile read from /proc at the first byte).
EOF
}
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
esac
RUNS=${1:-10}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "startup.sh: RUNS must be a positive integer (try --help)" >&2; exit 2; }
(($# <= 1)) || { echo "startup.sh: too many arguments (try --help)" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || { echo "startup.sh: no $QEMU: run scripts/setup.sh --install-only" >&2; exit 1; }
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "startup.sh: /dev/kvm is not usable here" >&2; exit 1; }

echo "building (release)..." >&2
cargo build --release -q -p domboot
cargo build --release -q -p domboot-vmm --example bench_guest --example startup_probe
# The measured domboot is the lean release build (static, LTO, start-up code laid out
# together: scripts/build-release.sh); the plain `cargo build --release` one is a reference row.
DOMBOOT=$("$ROOT/scripts/build-release.sh")
PLAIN=$ROOT/target/release/domboot
PROBE=$ROOT/target/release/examples/startup_probe

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
GUEST=$WORK/guest-pvh.elf
LINE=$("$ROOT/target/release/examples/bench_guest" "$GUEST")
EXPECT=${LINE%$'\n'}
MEM=16M
MEM_KIB=$((16 * 1024))
RESULTS=$WORK/results.tsv
: >"$RESULTS"
LOG=$WORK/runs.log

# measure LABEL STATUS TIMEOUT EXPECT COMMAND... : appends the probe's summary line to
# RESULTS; returns non-zero (after showing why) if a run failed.
measure() {
    local label=$1 status=$2 timeout=$3 expect=$4
    shift 4
    echo "measuring: $label ($((RUNS + 1)) runs)..." >&2
    if "$PROBE" --runs "$RUNS" --warmup 1 --timeout "$timeout" --status "$status" \
        --expect "$expect" --label "$label" -- "$@" >"$WORK/probe.out" 2>"$WORK/probe.err"; then
        grep -v '^#' "$WORK/probe.out" >>"$RESULTS"
        grep '^#' "$WORK/probe.out" >>"$LOG"
        return 0
    fi
    sed 's/^/    /' "$WORK/probe.err" | head -20 >&2
    printf '%s\tFAILED\n' "$label" >>"$RESULTS"
    return 1
}

QEMU_COMMON=(-m "$MEM" -nodefaults -display none -serial stdio -no-reboot
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$GUEST")
# isa-debug-exit: QEMU exits with (value << 1) | 1, so the guest's 0 gives status 1.
failed=0
measure "domboot run --accel kvm" 0 30 "$EXPECT" \
    "$DOMBOOT" run --kernel "$GUEST" --accel kvm --serial stdio -m "$MEM" || failed=1
qemu_kvm=ran
for machine in microvm pc; do
    m=$machine
    [[ $machine == microvm ]] && m=microvm,isa-serial=on
    measure "qemu -M $machine -accel kvm" 1 60 "$EXPECT" "$QEMU" -M "$m" -accel kvm "${QEMU_COMMON[@]}" ||
        qemu_kvm=failed
done
for machine in microvm pc; do
    m=$machine
    [[ $machine == microvm ]] && m=microvm,isa-serial=on
    measure "qemu -M $machine -accel tcg" 1 60 "$EXPECT" "$QEMU" -M "$m" -accel tcg "${QEMU_COMMON[@]}" ||
        failed=1
done
measure "ref: domboot, plain build" 0 30 "$EXPECT" \
    "$PLAIN" run --kernel "$GUEST" --accel kvm --serial stdio -m "$MEM" || failed=1
measure "ref: domboot plan (no VM)" 0 30 protocol "$DOMBOOT" plan --kernel "$GUEST" -m "$MEM" ||
    failed=1
measure "ref: /bin/echo (probe floor)" 0 30 floor /bin/echo floor || failed=1

# Guest memory actually touched: one more domboot run whose stdout is a full pipe, so the
# vCPU thread blocks writing the guest's first byte; then /proc/PID/smaps.
echo "measuring: domboot memory map at the first guest byte..." >&2
SMAPS=$WORK/smaps
mkfifo "$WORK/fifo"
exec {pipe}<>"$WORK/fifo"
head -c 65536 /dev/zero >&"$pipe" # a pipe holds 64 KiB: full now
"$DOMBOOT" run --kernel "$GUEST" --accel kvm --serial stdio -m "$MEM" >&"$pipe" 2>/dev/null &
pid=$!
blocked=0
for ((i = 0; i < 100; i++)); do # up to 10 s for a task of it to sit in write(1, ...)
    if grep -qs '^1 0x1 ' /proc/"$pid"/task/*/syscall; then
        blocked=1
        break
    fi
    sleep 0.1
done
if ((blocked)); then cp /proc/"$pid"/smaps "$SMAPS"; fi
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
exec {pipe}>&-
if ((!blocked)); then
    echo "    domboot never blocked writing its first byte: no memory breakdown" >&2
    failed=1
    : >"$SMAPS"
fi
# total-rss guest-rss anon-rss file-rss, then "KiB name" per file mapping (largest first)
awk -v mem="$MEM_KIB" '
    /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : ""; next }
    /^Size:/ { size = $2; next }
    /^Rss:/ {
        total += $2
        if (name == "" && size == mem) guest += $2
        if (name ~ /^\//) { file += $2; per[name] += $2 }
        next
    }
    /^Anonymous:/ { anon += $2 }
    END {
        printf "%d %d %d %d\n", total, guest, anon, file
        for (n in per) printf "%d %s\n", per[n], n
    }' "$SMAPS" | { read -r line; echo "$line"; sort -rn | head -4; } >"$WORK/mem"

# domboot's own peak RSS: VmHWM as `domboot run --verbose` reports it at the end of the run.
# (The probe's ru_maxrss cannot show less than the probe's own RSS: Linux carries the
# spawning process's high-water mark into the child at exec; see the /bin/echo row.)
echo "measuring: domboot's own VmHWM ($RUNS runs with --verbose)..." >&2
hwms=()
for ((i = 0; i < RUNS; i++)); do
    h=$("$DOMBOOT" run --kernel "$GUEST" --accel kvm --serial none -m "$MEM" --verbose 2>&1 |
        sed -nE 's/.*peak RSS of this process: ([0-9]+) KiB.*/\1/p')
    [[ -n $h ]] && hwms+=("$h")
done
HWM=0
if ((${#hwms[@]} > 0)); then
    HWM=$(printf '%s\n' "${hwms[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
else
    echo "    domboot --verbose reported no peak RSS" >&2
    failed=1
fi

printf '\n'
pvm=no
[[ -d /sys/module/kvm_pvm ]] && pvm=yes
awk -F'\t' -v runs="$RUNS" -v qemu_kvm="$qemu_kvm" -v pvm="$pvm" -v memfile="$WORK/mem" -v hwm="$HWM" \
    -v qver="$("$QEMU" --version | head -1)" '
function row(label,   i) { for (i = 1; i <= n; i++) if (L[i] == label) return i; return 0 }
function ok(c) { return c ? "met" : "NOT met" }
{ n++; L[n] = $1; failed[n] = ($2 == "FAILED")
  for (i = 2; i <= NF; i++) v[n, i] = $i }
END {
    printf "Startup of one freestanding guest (PVH ELF32, 16 MiB RAM; 1 byte to COM1 at once, a line, debug-exit)\n"
    printf "%d runs per command after 1 warm-up; medians (min-max). KVM is PVM (kvm_pvm): %s. %s\n", runs, pvm, qver
    printf "QEMU -accel kvm on this host: %s%s\n\n", qemu_kvm,
        (qemu_kvm == "ran") ? "" : " (its rows say so; compare with the -accel tcg rows)"
    printf "%-30s %-26s %-26s %s\n", "command", "first byte, ms", "exit, ms", "peak RSS, MiB"
    for (i = 1; i <= n; i++) {
        if (failed[i]) { printf "%-30s %s\n", L[i], "FAILED to run (see above)"; continue }
        printf "%-30s %-26s %-26s %.2f (%.2f-%.2f)\n", L[i],
            sprintf("%.2f (%.2f-%.2f)", v[i, 3], v[i, 4], v[i, 5]),
            sprintf("%.2f (%.2f-%.2f)", v[i, 6], v[i, 7], v[i, 8]),
            v[i, 9] / 1024, v[i, 10] / 1024, v[i, 11] / 1024
    }
    d = row("domboot run --accel kvm")
    printf "\n%-30s %-14s %-14s %s\n", "domboot / QEMU (medians)", "first byte", "exit", "peak RSS"
    for (i = 1; i <= n; i++) {
        if (L[i] !~ /^qemu/) continue
        if (failed[i] || failed[d]) { printf "  %-28s %s\n", L[i], "-"; continue }
        printf "  %-28s %-14s %-14s %s\n", L[i], sprintf("%.4fx", v[d, 3] / v[i, 3]),
            sprintf("%.4fx", v[d, 6] / v[i, 6]), sprintf("%.3fx", v[d, 9] / v[i, 9])
    }

    getline memline < memfile
    split(memline, m, " ")
    total = m[1]; guest = m[2]; anon = m[3]; file = m[4]
    printf "\ndomboot memory (KiB), one extra run stopped at the first guest byte (/proc/PID/smaps):\n"
    if (total > 0) {
        printf "  RSS %d = anonymous %d + file-backed %d; guest RAM mapping (%d KiB) RSS: %d (the pages the plan wrote, MP table, guest)\n",
            total, anon, file, 16 * 1024, guest
        printf "  largest file-backed parts:"
        sep = " "
        while ((getline line < memfile) > 0) { split(line, f, " "); printf "%s%s %d", sep, f[2], f[1]; sep = ", " }
        printf "\n"
    } else printf "  not measured\n"
    if (!failed[d] && total > 0) {
        # The high-water mark (VmHWM) domboot reported, when it did; else the probe ru_maxrss,
        # which the probe RSS floors (see the /bin/echo row).
        peak = (hwm > 0) ? hwm : v[d, 9]
        over = peak - guest
        printf "  peak RSS: VmHWM reported by domboot --verbose, median of %d runs: %d KiB (the probe ru_maxrss, %d KiB, is floored by the probe RSS)\n", runs, hwm, v[d, 9]
        printf "  VMM memory overhead = peak RSS %d - guest touched %d = %d KiB (%.2f MiB);\n", peak, guest, over, over / 1024
        printf "  of it anonymous (heap, stacks, relocated data) about %d KiB, the rest file-backed text and libraries\n", anon - guest
        p = row("ref: domboot plan (no VM)")
        if (p && !failed[p])
            printf "  beside `domboot plan` (same binary, no VM, peak %d KiB): +%d KiB for the VM\n", v[p, 9], v[d, 9] - v[p, 9]
    }

    printf "\ngoals:\n"
    if (!failed[d]) {
        printf "  first byte <= 5 ms: %.2f ms -> %s\n", v[d, 3], ok(v[d, 3] <= 5)
        for (i = 1; i <= n; i++) {
            if (L[i] !~ /^qemu/ || failed[i]) continue
            r = v[d, 3] / v[i, 3]
            printf "  first byte <= 0.3x %s (%.2f ms): %.4fx -> %s\n", L[i], v[i, 3], r, ok(r <= 0.3)
        }
        if (total > 0)
            printf "  VMM memory overhead <= 2 MiB: %.2f MiB -> %s\n", over / 1024, ok(over <= 2048)
        else printf "  VMM memory overhead <= 2 MiB: not measured\n"
    } else printf "  domboot failed to run: no goal measured\n"
}' "$RESULTS"
if [[ ${VERBOSE:-0} != 0 ]]; then
    printf '\nper run:\n'
    cat "$LOG"
fi
exit "$failed"
