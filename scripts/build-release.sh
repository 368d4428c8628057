#!/usr/bin/env bash
# Builds the lean release binary of domboot: target/lean/release/domboot.
#
# Why a separate build: what a VMM process costs while a guest runs is mostly the pages of
# code it has touched. `cargo build --release` gives a dynamically linked binary whose
# start-up touches ~2.5 MiB of its own text and ~2 MiB of libc/libm/ld.so pages. This build
#   * links statically (-C target-feature=+crt-static; only the libc functions used are
#     in the binary, and there is no dynamic loader work at start),
#   * uses fat LTO with one codegen unit (smaller, faster code), and
#   * lays out the functions a `domboot run` on KVM executes next to each other, in the
#     order of crates/cli/startup-order.txt (lld --symbol-ordering-file), so the kernel
#     maps a few contiguous pages instead of pages all over the binary.
# crates/cli/startup-order.txt is made by scripts/bench/startup-order.sh (valgrind
# callgrind over real runs). A stale list only costs memory, never correctness: lld
# ignores names it does not find.
#
# Usage: scripts/build-release.sh [--no-order]     (prints the binary's path)
# It has its own target directory (target/lean), so it never invalidates the normal build.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORDER=$ROOT/crates/cli/startup-order.txt
case "${1:-}" in
    --no-order) ORDER= ;;
    "") ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-release.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
FLAGS=(-C target-feature=+crt-static)
if [[ -n $ORDER ]]; then
    [[ -r $ORDER ]] || { echo "build-release.sh: $ORDER is missing (scripts/bench/startup-order.sh makes it)" >&2; exit 1; }
    FLAGS+=(-C "link-arg=-Wl,--symbol-ordering-file=$ORDER" -C link-arg=-Wl,--no-warn-symbol-ordering)
fi
cd "$ROOT"
export CARGO_TARGET_DIR=$ROOT/target/lean
export CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
echo "build-release.sh: cargo rustc --release -p domboot (static, LTO${ORDER:+, start-up order}) in target/lean" >&2
# Cargo does not fingerprint `cargo rustc` arguments nor the order file's contents: make
# it recompile and relink the binary (only the domboot crate; its dependencies stay built).
touch crates/cli/src/main.rs
cargo rustc --release -q -p domboot --bin domboot -- "${FLAGS[@]}"
echo "$CARGO_TARGET_DIR/release/domboot"
