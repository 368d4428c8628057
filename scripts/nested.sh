#!/usr/bin/env bash
# Run one command on a real (nested SVM) KVM: inside Debian's cloud kernel booted under
# QEMU TCG with -cpu max, where kvm-amd gives a real /dev/kvm. See README, "The nested bench".
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/nested.sh [--release] [--file PATH]... [--program PATH[:GUEST]]... [--timeout SECONDS] [--console] [--qemu] -- COMMAND [ARG]...

Builds domboot (debug, or --release), boots the nested bench's outer guest once and runs
COMMAND there (busybox sh; domboot is /bin/domboot). Arguments that name host files are
copied in at the same absolute path. Exits with COMMAND's status. --qemu also carries
qemu-system-x86_64 in (to compare with QEMU on the same KVM); --console prints the outer
guest's log.

Example:
  scripts/nested.sh -- domboot run --accel kvm --kernel ~/.cache/domboot/debian/cloud/vmlinuz \
      --initrd rd.cpio.gz --cmdline 'console=ttyS0' --memory 512M --timeout 60

Needs scripts/setup.sh --install-only (QEMU, busybox, the cached Debian cloud kernel).
USAGE
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=debug
ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --release) PROFILE=release; shift ;;
        --) ARGS+=("$@"); break ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
[[ " ${ARGS[*]-} " == *" -- "* ]] || { usage >&2; exit 2; }

cd "$ROOT"
FLAGS=()
[[ $PROFILE == release ]] && FLAGS=(--release)
cargo build -q "${FLAGS[@]}" -p domboot -p domboot-testkit --bin domboot --bin nested >&2
exec "$ROOT/target/$PROFILE/nested" --domboot "$ROOT/target/$PROFILE/domboot" "${ARGS[@]}"
