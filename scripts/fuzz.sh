#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time; fail if any target crashes.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/fuzz.sh [TARGET...] [--help]

Runs each fuzz target of fuzz/ (all of `cargo fuzz list`, or the ones named) for
FUZZ_SECONDS seconds with libFuzzer, and prints one summary line per target.
Exits non-zero when a target fails to build, crashes, times out or leaks.

Toolchain: `cargo +nightly fuzz` (AddressSanitizer) when rustup has a nightly
toolchain; otherwise stable with RUSTC_BOOTSTRAP=1 and --sanitizer none, after a
one-time probe that this works; if it does not, fuzzing is skipped with a warning.

Corpus (kept between runs, outside the clone): $CACHE/fuzz/corpus/TARGET
Seeds (rebuilt each run):                     $CACHE/fuzz/seeds/TARGET
  = fuzz/seeds/TARGET/* from the repository, if present, plus (for every target
    whose name does not look like a configuration parser) the test kernels of
    $DOMBOOT_SHARED/kernels and the head of the cached Debian cloud kernel.
Crash inputs: fuzz/artifacts/TARGET/ (as cargo fuzz prints), copied to
$CACHE/fuzz/artifacts/TARGET/.

Environment:
  FUZZ_SECONDS     seconds per target (default 20; 0 skips fuzzing)
  FUZZ_TIMEOUT     libFuzzer -timeout, seconds for one input (default 25)
  FUZZ_RSS_MB      libFuzzer -rss_limit_mb (default 4096)
  FUZZ_TARGET_DIR  cargo target dir for fuzz builds (default $CACHE/fuzz/target)
  FUZZ_TOOLCHAIN   auto (default: nightly if rustup has one, else stable), nightly or stable
  FUZZ_CMIN_AT     minimise a target's corpus (cargo fuzz cmin) above this many inputs (2000)
  DOMBOOT_CACHE    cache folder (default $HOME/.cache/domboot)
  DOMBOOT_SHARED   the shared folder (default: ../shared beside the repository)
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
SHARED=${DOMBOOT_SHARED:-$ROOT/../shared}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-25}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-4096}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$CACHE/fuzz/target}
FUZZ_CMIN_AT=${FUZZ_CMIN_AT:-2000}
FUZZ_DIR=$ROOT/fuzz

WANTED=()
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        -*) echo "fuzz.sh: unknown option: $arg (try --help)" >&2; exit 2 ;;
        *) WANTED+=("$arg") ;;
    esac
done

log() { printf '[fuzz] %s\n' "$*" >&2; }
loud() {
    printf '[fuzz] %s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
    printf '[fuzz] WARNING: %s\n' "$@" >&2
    printf '[fuzz] %s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
}

[[ $FUZZ_SECONDS =~ ^[0-9]+$ ]] || { echo "fuzz.sh: FUZZ_SECONDS must be a number" >&2; exit 2; }
if [[ $FUZZ_SECONDS -eq 0 ]]; then
    log "FUZZ_SECONDS=0: fuzzing skipped"
    exit 0
fi
if [[ ! -f $FUZZ_DIR/Cargo.toml ]]; then
    if compgen -G "$FUZZ_DIR/fuzz_targets/*.rs" >/dev/null; then
        loud "fuzz/fuzz_targets/ has targets but fuzz/Cargo.toml is missing (not committed?):" \
            "nothing can be fuzzed"
    fi
    log "no fuzz/Cargo.toml: 0 fuzz targets"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[fuzz] ERROR: cargo-fuzz is not installed: run scripts/setup.sh --install-only" >&2
    exit 1
fi

# ---------------------------------------------------------------- toolchain ----
LOGS=$CACHE/fuzz/logs
mkdir -p "$LOGS"
FUZZ=() # the cargo fuzz command, with the toolchain/sanitizer choice
MODE=""
FUZZ_TOOLCHAIN=${FUZZ_TOOLCHAIN:-auto}
case "$FUZZ_TOOLCHAIN" in
    auto) rustup toolchain list 2>/dev/null | grep -q '^nightly' && FUZZ_TOOLCHAIN=nightly || FUZZ_TOOLCHAIN=stable ;;
    nightly | stable) ;;
    *) echo "fuzz.sh: FUZZ_TOOLCHAIN must be auto, nightly or stable" >&2; exit 2 ;;
esac
if [[ $FUZZ_TOOLCHAIN == nightly ]]; then
    FUZZ=(cargo +nightly fuzz)
    FUZZ_OPTS=()
    MODE="nightly ($(rustc +nightly --version 2>/dev/null), AddressSanitizer)"
else
    # Stable fallback: probe once per rustc version that a fuzz target builds and runs.
    stamp=$CACHE/fuzz/stable-probe.ok
    rustc_v=$(rustc --version)
    if [[ ! -f $stamp || $(<"$stamp") != "$rustc_v" ]]; then
        log "no nightly toolchain: probing RUSTC_BOOTSTRAP=1 cargo fuzz --sanitizer none on stable"
        probe=$CACHE/fuzz/stable-probe
        rm -rf "$probe"
        mkdir -p "$probe/fuzz/fuzz_targets" "$probe/src"
        printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n' >"$probe/Cargo.toml"
        echo 'pub fn f(d: &[u8]) -> bool { d.first() == Some(&7) }' >"$probe/src/lib.rs"
        printf '%s\n' '[package]' 'name = "probe-fuzz"' 'version = "0.0.0"' 'edition = "2021"' \
            '[package.metadata]' 'cargo-fuzz = true' '[dependencies]' 'libfuzzer-sys = "0.4"' \
            'probe = { path = ".." }' '[workspace]' '[[bin]]' 'name = "probe"' \
            'path = "fuzz_targets/probe.rs"' >"$probe/fuzz/Cargo.toml"
        printf '#![no_main]\nlibfuzzer_sys::fuzz_target!(|d: &[u8]| { let _ = probe::f(d); });\n' \
            >"$probe/fuzz/fuzz_targets/probe.rs"
        if (cd "$probe/fuzz" && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none probe -- -runs=1000) \
            >"$LOGS/stable-probe.log" 2>&1; then
            echo "$rustc_v" >"$stamp"
        else
            tail -n 20 "$LOGS/stable-probe.log" | sed 's/^/[fuzz]   /' >&2
            loud "no nightly toolchain, and cargo fuzz does not work on stable here" \
                "(RUSTC_BOOTSTRAP=1 --sanitizer none failed; log: $LOGS/stable-probe.log)." \
                "FUZZING SKIPPED. Install a nightly toolchain (rustup toolchain install nightly)."
            exit 0
        fi
    fi
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
    FUZZ_OPTS=(--sanitizer none)
    MODE="stable fallback ($rustc_v, RUSTC_BOOTSTRAP=1, no sanitizer)"
fi

# ---------------------------------------------------------------- targets ------
cd "$FUZZ_DIR"
if ! all_targets=$("${FUZZ[@]}" list 2>"$LOGS/list.log"); then
    cat "$LOGS/list.log" >&2
    echo "[fuzz] ERROR: cargo fuzz list failed" >&2
    exit 1
fi
mapfile -t TARGETS < <(printf '%s\n' "$all_targets" | sed '/^[[:space:]]*$/d')
if [[ ${#WANTED[@]} -gt 0 ]]; then
    for t in "${WANTED[@]}"; do
        printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$t" || { echo "[fuzz] ERROR: no fuzz target $t" >&2; exit 1; }
    done
    TARGETS=("${WANTED[@]}")
fi
if [[ ${#TARGETS[@]} -eq 0 ]]; then
    log "0 fuzz targets in fuzz/Cargo.toml: nothing to run"
    exit 0
fi
log "${#TARGETS[@]} target(s): ${TARGETS[*]}; ${FUZZ_SECONDS}s each; toolchain: $MODE"

log "building fuzz targets (target dir $FUZZ_TARGET_DIR)"
build_only=()
[[ ${#WANTED[@]} -eq 1 ]] && build_only=("${WANTED[0]}")
if ! "${FUZZ[@]}" build "${FUZZ_OPTS[@]}" --target-dir "$FUZZ_TARGET_DIR" "${build_only[@]}" >&2; then
    echo "[fuzz] ERROR: building the fuzz targets failed" >&2
    exit 1
fi

# ---------------------------------------------------------------- seeds --------
kernel_seeds() {
    # Real inputs for the kernel-image targets: every test bzImage, one vmlinux per
    # arch/relocation kind (the x64-pvh ones only differ in their bzImage), and the first
    # MiB of the Debian cloud kernel (libFuzzer truncates inputs to 1 MiB anyway).
    local dest=$1 f
    local kernels=$SHARED/kernels
    if [[ -d $kernels ]]; then
        for f in "$kernels"/bzImage-* "$kernels"/vmlinux-i386-norelo-xz \
            "$kernels"/vmlinux-x64-norelo-gzip "$kernels"/vmlinux-x64-pvh-gzip; do
            [[ -f $f ]] && cp -u "$f" "$dest/"
        done
    fi
    local debian=$CACHE/debian/cloud/vmlinuz
    if [[ -e $debian && ! -f $dest/debian-cloud-vmlinuz.head ]]; then
        head -c 1048576 "$debian" >"$dest/debian-cloud-vmlinuz.head"
    fi
    chmod -R u+w "$dest"
}
looks_like_config_target() {
    case "$1" in
        *config* | *libvirt* | *xml* | *toml* | *sexp* | *cfg* | *cmdline* | xl | xl_* | *_xl | xm | xm_* | *_xm) return 0 ;;
        *) return 1 ;;
    esac
}

# ---------------------------------------------------------------- run ----------
FAILED=()
SUMMARY=()
for t in "${TARGETS[@]}"; do
    corpus=$CACHE/fuzz/corpus/$t
    seeds=$CACHE/fuzz/seeds/$t
    mkdir -p "$corpus" "$seeds"
    if [[ -d $FUZZ_DIR/seeds/$t ]]; then cp -u "$FUZZ_DIR/seeds/$t"/* "$seeds/" 2>/dev/null || true; fi
    looks_like_config_target "$t" || kernel_seeds "$seeds"
    nseeds=$(find "$seeds" -type f | wc -l)
    ncorpus=$(find "$corpus" -type f | wc -l)
    if ((ncorpus > FUZZ_CMIN_AT)); then
        # The corpus only grows between runs; minimise it now and then (keeps coverage).
        log "$t: corpus has $ncorpus inputs (> FUZZ_CMIN_AT=$FUZZ_CMIN_AT): cargo fuzz cmin"
        if "${FUZZ[@]}" cmin "${FUZZ_OPTS[@]}" --target-dir "$FUZZ_TARGET_DIR" "$t" "$corpus" -- \
            -rss_limit_mb="$FUZZ_RSS_MB" -timeout="$FUZZ_TIMEOUT" >"$LOGS/$t.cmin.log" 2>&1; then
            ncorpus=$(find "$corpus" -type f | wc -l)
        else
            log "$t: cmin failed (log $LOGS/$t.cmin.log); corpus left as it was"
        fi
    fi
    log "running $t for ${FUZZ_SECONDS}s (corpus $ncorpus inputs, $nseeds seeds)"
    tlog=$LOGS/$t.log
    rc=0
    # The outer timeout only guards against a wedged run: libFuzzer stops itself.
    timeout --kill-after=30 $((FUZZ_SECONDS * 2 + FUZZ_TIMEOUT + 120)) \
        "${FUZZ[@]}" run "${FUZZ_OPTS[@]}" --target-dir "$FUZZ_TARGET_DIR" "$t" "$corpus" "$seeds" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" \
        -print_final_stats=1 >"$tlog" 2>&1 || rc=$?
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$tlog" | tail -1 || true)
    stats=$(grep -E '#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$tlog" | tail -1 |
        grep -oE 'cov: [0-9]+|corp: [0-9]+/[0-9]+[a-zA-Z]*' | paste -sd' ' || true)
    ncorpus_after=$(find "$corpus" -type f | wc -l)
    if [[ $rc -eq 0 ]]; then
        runs=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) .*/\1/' <<<"$done_line")
        secs=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) .*/\2/' <<<"$done_line")
        line="$t: ok, ${runs:-?} runs in ${secs:-?}s, ${stats:-no stats}, corpus $ncorpus -> $ncorpus_after"
        SUMMARY+=("$line")
    else
        artifact=$(grep -oE 'Test unit written to [^ ]+' "$tlog" | tail -1 | sed 's/^Test unit written to //' || true)
        kind=$(grep -oE 'ERROR: libFuzzer: [a-z -]+|ERROR: AddressSanitizer: [a-zA-Z-]+' "$tlog" | head -1 || true)
        grep -q 'failed to build fuzz script' "$tlog" && kind="the target did not build"
        [[ $rc -eq 124 || $rc -eq 137 ]] && kind="wedged: killed by the outer timeout"
        line="$t: FAILED (exit $rc${kind:+, $kind})${artifact:+, input $artifact}"
        SUMMARY+=("$line")
        FAILED+=("$t")
        echo "[fuzz] ---- $t: last lines of $tlog" >&2
        grep -vE '^#[0-9]+' "$tlog" | tail -n 40 | sed 's/^/[fuzz]   /' >&2
        if [[ -n $artifact && -f $artifact ]]; then
            mkdir -p "$CACHE/fuzz/artifacts/$t"
            cp "$artifact" "$CACHE/fuzz/artifacts/$t/"
            echo "[fuzz] crash input ($(stat -c %s "$artifact") bytes, first 256 shown; also in $CACHE/fuzz/artifacts/$t/):" >&2
            head -c 256 "$artifact" | od -A x -t x1z | sed 's/^/[fuzz]   /' >&2
            echo "[fuzz] reproduce: (cd fuzz && ${FUZZ[*]} run ${FUZZ_OPTS[*]} --target-dir $FUZZ_TARGET_DIR $t $artifact)" >&2
        fi
    fi
    log "$line"
done

echo "fuzz summary ($MODE, ${FUZZ_SECONDS}s per target):"
printf '  %s\n' "${SUMMARY[@]}"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "fuzz: ${#FAILED[@]} of ${#TARGETS[@]} target(s) FAILED: ${FAILED[*]}"
    exit 1
fi
echo "fuzz: all ${#TARGETS[@]} target(s) ran without a crash"
