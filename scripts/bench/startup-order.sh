#!/usr/bin/env bash
# Regenerates crates/cli/startup-order.txt: the symbols of every function that a
# `domboot run --accel kvm` of the start-up bench guest executes (1 and 2 vCPUs), in the
# order valgrind's callgrind first sees them (scripts/bench/callgrind_symbols.py). scripts/build-release.sh links these
# functions next to each other. Run it after changes that move the run path (new crates,
# a new Rust version, big refactors); scripts/bench/startup.sh shows the effect.
# Needs /dev/kvm and valgrind (every machine here has it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { echo "startup-order.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
BIN=$(scripts/build-release.sh --no-order)
cargo build --release -q -p domboot-vmm --example bench_guest
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
target/release/examples/bench_guest "$WORK/guest.elf" >/dev/null
# Quiet with 1 vCPU, --verbose with 2 (the bench reads the peak RSS from --verbose).
for cpus in 1 2; do
    verbose=()
    ((cpus == 2)) && verbose=(--verbose)
    valgrind -q --tool=callgrind --demangle=no --dump-instr=yes --callgrind-out-file="$WORK/cg.$cpus" \
        "$BIN" run --kernel "$WORK/guest.elf" --accel kvm --serial stdio -m 16M --cpus "$cpus" \
        "${verbose[@]}" >/dev/null 2>&1
done
OUT=crates/cli/startup-order.txt
python3 scripts/bench/callgrind_symbols.py "$BIN" "$WORK"/cg.1 "$WORK"/cg.2 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "startup-order.sh: $(wc -l <"$OUT") functions in $OUT" >&2
