#!/usr/bin/env bash
# The whole test suite: formatting, clippy, cargo test, then bounded fuzzing.
# Every stage runs even when an earlier one fails; the exit status is non-zero if any failed.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/test.sh [--help]

Stages (all run; the script fails if any fails):
  1. cargo fmt --all -- --check
  2. cargo clippy --workspace --all-targets -- -D warnings
  3. cargo test --workspace --no-fail-fast
  4. scripts/fuzz.sh   (every fuzz target for FUZZ_SECONDS, default 20; 0 skips)

Run scripts/setup.sh --install-only first (tools, QEMU, Debian kernels in the cache).

Environment (exported to the tests):
  DOMBOOT_CACHE    cache with the Debian kernels (default $HOME/.cache/domboot)
  DOMBOOT_SHARED   absolute path of the shared folder (default: ../shared beside the repo)
  FUZZ_SECONDS     seconds per fuzz target (default 20)
EOF
}
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) echo "test.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export DOMBOOT_CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
if [[ -z ${DOMBOOT_SHARED:-} ]]; then
    top=$(git rev-parse --show-toplevel 2>/dev/null || echo "$ROOT")
    DOMBOOT_SHARED=$top/../shared
fi
if [[ -d $DOMBOOT_SHARED ]]; then
    DOMBOOT_SHARED=$(cd "$DOMBOOT_SHARED" && pwd -P)
else
    echo "[test] WARNING: shared folder $DOMBOOT_SHARED not found: tests that need its kernels skip or fail" >&2
fi
export DOMBOOT_SHARED
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

START=$SECONDS
log() { printf '[test %4ds] %s\n' "$((SECONDS - START))" "$*" >&2; }

log "repo $ROOT"
log "DOMBOOT_SHARED=$DOMBOOT_SHARED"
log "DOMBOOT_CACHE=$DOMBOOT_CACHE"
for flavour in cloud generic; do
    if [[ -e $DOMBOOT_CACHE/debian/$flavour/vmlinuz ]]; then
        log "Debian $flavour kernel: $(<"$DOMBOOT_CACHE/debian/$flavour/package") $(<"$DOMBOOT_CACHE/debian/$flavour/package-version")"
    else
        log "WARNING: no Debian $flavour kernel in the cache (run scripts/setup.sh --install-only)"
    fi
done

RESULTS=()
FAILED=0
TEST_OUT=$(mktemp)
trap 'rm -f "$TEST_OUT"' EXIT

stage() {
    # stage NAME COMMAND...: run, time and record one stage; never exits the script.
    local name=$1 t0=$SECONDS rc=0
    shift
    echo
    log "==> $name: $*"
    "$@" || rc=$?
    local took=$((SECONDS - t0))
    if [[ $rc -eq 0 ]]; then
        RESULTS+=("$(printf '%-8s ok      %4ds' "$name" "$took")")
    else
        RESULTS+=("$(printf '%-8s FAILED  %4ds  (exit %d)' "$name" "$took" "$rc")")
        FAILED=$((FAILED + 1))
    fi
    log "<== $name: $([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)") in ${took}s"
}

cargo_test() {
    # cargo test, keeping its "test result:" lines in $TEST_OUT for the totals below.
    cargo test --workspace --no-fail-fast 2>&1 | tee "$TEST_OUT"
}

stage fmt cargo fmt --all -- --check
stage clippy cargo clippy --workspace --all-targets -- -D warnings
stage test cargo_test
stage fuzz "$ROOT/scripts/fuzz.sh"

echo
echo "test.sh summary ($((SECONDS - START))s):"
printf '  %s\n' "${RESULTS[@]}"
# Totals over every "test result:" line of cargo test (none when it did not get that far).
if grep -q '^test result:' "$TEST_OUT"; then
    read -r passed failed ignored < <(awk '/^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i
            }
        } END { print p + 0, f + 0, s + 0 }' "$TEST_OUT")
    echo "tests: $passed passed, $failed failed, $ignored skipped"
else
    echo "cargo test printed no test results (it did not build or run)"
fi
if [[ $FAILED -gt 0 ]]; then
    echo "test.sh: $FAILED stage(s) FAILED"
    exit 1
fi
echo "test.sh: all stages passed"
