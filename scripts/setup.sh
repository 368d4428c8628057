#!/usr/bin/env bash
# Install everything domboot's build and tests need, fetch real Debian kernels into
# the cache, then (unless --install-only) build the workspace and run the main job.
# Idempotent: a second run only checks what is there and prints that it is cached.
set -euo pipefail

usage() {
    cat <<EOF
Usage: scripts/setup.sh [--install-only] [--with-vng] [--help]

Installs (each only when missing):
  * Debian packages: ${APT_REQUIRED[*]}
    and ${QEMU_PKGS[*]} (from bookworm-backports on bookworm: the machine's qemu-utils is from there)
    and, when the archive has it, ${APT_OPTIONAL[*]} (linuxx64.efi.stub for UKI tests)
  * cargo-fuzz (cargo install --locked; fuzzing uses the nightly toolchain when present)
  * virtiofsd, the Rust one (cargo install virtiofsd --locked --root \$CACHE/virtiofsd):
    Debian bookworm packages none and its QEMU 7.2 dropped the C one; run --exec --rootfs host
    shares the host's / with the guest through it
  * a tiny test kernel with VIRTIO_MMIO_CMDLINE_DEVICES, built once from linux-source-6.1:
      \$CACHE/kernels/virtio-mmio-cmdline/  bzImage, config (its .config), recipe
    (rebuilt only when its recipe or linux-source-6.1's version changes; a few minutes)
  * real Debian kernels, unpacked into the cache:
      \$CACHE/debian/cloud/    from the package linux-image-cloud-amd64 depends on
      \$CACHE/debian/generic/  from the package linux-image-amd64 depends on
    each with vmlinuz, modules/, config, System.map, kernel-release, package, package-version.
  * with --with-vng only: virtme-ng $VNG_VERSION from PyPI in a venv at \$CACHE/vng-venv, and
    the Debian packages ${VNG_APT[*]}, for scripts/bench/exec.sh's vng column
    (not needed by the build or the tests; a failure there is a warning, not an error)

Then, without --install-only, builds the workspace in release mode and runs:
  ${MAIN_JOB_TEXT}

Options:
  --install-only   install and fetch only; build and run nothing
  --with-vng       also install virtme-ng (vng) for the benchmark (opt-in: PyPI, ~20 s)
  -h, --help       this text

Environment:
  DOMBOOT_CACHE    cache folder (default: \$HOME/.cache/domboot; now: $CACHE)
  DOMBOOT_KERNEL_JOBS
                   make -jN for the test kernel's build (default: the CPUs, now $(nproc 2>/dev/null || echo 2))
  DOMBOOT_APT_MAX_AGE_HOURS
                   refresh apt's package lists when older than this (default 24)
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${DOMBOOT_CACHE:-$HOME/.cache/domboot}
APT_MAX_AGE_HOURS=${DOMBOOT_APT_MAX_AGE_HOURS:-24}

# acpica-tools: iasl, acpiexec and acpixtract check the KVM backend's ACPI tables (crates/vmm/tests/acpi.rs).
# gdisk, parted, e2fsprogs, dosfstools, mtools, xorriso: the boot-disk tests build GPT/MBR, ext4, FAT and
# ISO9660 images with the real tools (crates/bootdisk/tests, crates/cli/tests/boot_entries*.rs);
# debian-installer-12-netboot-amd64: its netboot tree's grub.cfg and pxelinux menus are listed by boot-entries.
# libseccomp-dev, libcap-ng-dev: building virtiofsd (below), which `run --exec --rootfs host` needs.
# fio: scripts/bench/devices.sh carries it into the inner guest for its 4 KiB random reads.
# linux-source-6.1 make bc bison flex libelf-dev: the tiny test kernel built below (build_mmio_kernel).
APT_REQUIRED=(busybox-static cpio gcc libc6-dev lz4 lzop xz-utils zstd bzip2 gzip binutils file acpica-tools gdisk parted e2fsprogs dosfstools mtools xorriso debian-installer-12-netboot-amd64 passt libseccomp-dev libcap-ng-dev fio linux-source-6.1 make bc bison flex libelf-dev)
APT_OPTIONAL=(systemd-boot-efi)
# QEMU for `run` under TCG and the tests; qemu-system-x86 pulls in qemu-system-data, whose
# qboot.rom is the firmware `run` boots with.
QEMU_PKGS=(qemu-system-x86 qemu-utils)
# flavour name in the cache -> Debian metapackage that names the current kernel package
KERNEL_FLAVOURS=(cloud generic)
declare -A KERNEL_META=([cloud]=linux-image-cloud-amd64 [generic]=linux-image-amd64)

# --with-vng: virtme-ng, the tool scripts/bench/exec.sh compares `run --exec` with. Pinned so
# the bench's column means the same program on every machine. kmod: vng runs depmod on the
# kernel's modules tree; udev: vng's guest starts the host's systemd-udevd to find its
# virtio-serial ports (without it the command's output is lost and vng exits 255);
# python3-venv: the venv.
VNG_VERSION=1.42
VNG_APT=(python3-venv kmod udev)
VNG_VENV=$CACHE/vng-venv

# The main job: one command in a throwaway VM (the cached Debian cloud kernel, TCG here).
MAIN_JOB=(cargo run --release -p domboot -- run --exec 'uname -a')
MAIN_JOB_TEXT="cargo run --release -p domboot -- run --exec 'uname -a'"

INSTALL_ONLY=0
WITH_VNG=0
for arg in "$@"; do
    case "$arg" in
        --install-only) INSTALL_ONLY=1 ;;
        --with-vng) WITH_VNG=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

START=$SECONDS
log() { printf '[setup %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
warn() { printf '[setup %3ds] WARNING: %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf '[setup %3ds] ERROR: %s\n' "$((SECONDS - START))" "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install Debian packages"
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for a dpkg/apt lock held by someone else instead of failing at once.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)

# ---------------------------------------------------------------- apt ----------
APT_UPDATED=0
APT_STAMP=$CACHE/.apt-updated # touched after each apt-get update of ours
apt_lists_age_hours() {
    # Hours since the package lists were last refreshed: the newest list written (ctime:
    # apt sets a list's mtime to the server's Last-Modified) or our last update, whichever
    # is newer; a huge number when there are no lists.
    local newest stamp=0
    newest=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -printf '%C@\n' 2>/dev/null |
        sort -n | tail -1)
    if [[ -z $newest ]]; then echo 999999; return; fi
    [[ -f $APT_STAMP ]] && stamp=$(stat -c %Y "$APT_STAMP")
    newest=${newest%.*}
    ((stamp > newest)) && newest=$stamp
    echo $(((${EPOCHSECONDS:-$(date +%s)} - newest) / 3600))
}
apt_update_once() {
    # $1 = "fatal" to fail when the update fails (e.g. before an install), else warn.
    [[ $APT_UPDATED -eq 1 ]] && return 0
    APT_UPDATED=1
    log "apt-get update"
    if apt_get_logged update; then
        mkdir -p "$CACHE" && touch "$APT_STAMP"
    else
        [[ ${1:-} == fatal ]] && die "apt-get update failed"
        warn "apt-get update failed (offline?): using the package lists already here"
    fi
}
apt_update_if_stale() {
    local age
    age=$(apt_lists_age_hours)
    if ((age >= APT_MAX_AGE_HOURS)); then
        log "apt package lists are ${age}h old (limit ${APT_MAX_AGE_HOURS}h)"
        apt_update_once
    fi
}
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
pkg_candidate() {
    # Candidate version apt would install/download, or nothing.
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
    [[ -n $c && $c != "(none)" ]] && echo "$c"
    return 0
}
APT_LOG=$CACHE/logs/apt.log
apt_get_logged() {
    # apt-get with its chatter in $APT_LOG; the tail is shown when it fails.
    mkdir -p "${APT_LOG%/*}"
    echo "### $(date -u +%FT%TZ) apt-get $*" >>"$APT_LOG"
    if ! "${SUDO[@]}" apt-get "${APT_OPTS[@]}" "$@" >>"$APT_LOG" 2>&1; then
        tail -n 25 "$APT_LOG" | sed 's/^/    apt: /' >&2
        return 1
    fi
}
apt_install() {
    # apt_install [-t RELEASE] PKG...  (never removes a package to make room: --no-remove)
    local args=(-y --no-install-recommends --no-remove) from=""
    if [[ ${1:-} == -t ]]; then args+=(-t "$2"); from=" (from $2)"; shift 2; fi
    log "apt-get install $*$from"
    if ! apt_get_logged "${args[@]}" install "$@"; then
        [[ $APT_UPDATED -eq 1 ]] && return 1
        warn "install failed; refreshing package lists and trying again"
        apt_update_once fatal
        apt_get_logged "${args[@]}" install "$@"
    fi
}

# QEMU: this kind of machine ships qemu-utils (qemu-img) from bookworm-backports, and that
# qemu-utils Breaks the qemu-system-common of plain bookworm (7.2). Installing bookworm's
# qemu-system-x86 would silently remove qemu-img, so take QEMU from bookworm-backports
# (NotAutomatic: only the packages asked for come from it), keeping qemu-utils and
# qemu-system-x86 at one version.
BACKPORTS_LIST=/etc/apt/sources.list.d/domboot-bookworm-backports.sources
os_codename() { (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}"); }
have_backports_source() {
    grep -rqsE "^[^#]*\b$(os_codename)-backports\b" /etc/apt/sources.list /etc/apt/sources.list.d/
}
qemu_ok() {
    local p v vs=()
    for p in "${QEMU_PKGS[@]}"; do
        pkg_installed "$p" || return 1
        vs+=("$(dpkg-query -W -f='${Version}' "$p")")
    done
    [[ ${vs[0]} == "${vs[1]}" ]]
}
install_qemu() {
    if qemu_ok; then
        log "QEMU: ${QEMU_PKGS[*]} $(dpkg-query -W -f='${Version}' qemu-system-x86) - installed"
        return 0
    fi
    local codename
    codename=$(os_codename)
    if [[ $codename == bookworm ]]; then
        if ! have_backports_source; then
            log "adding the Debian source bookworm-backports ($BACKPORTS_LIST) for QEMU"
            printf '%s\n' "# Added by domboot's scripts/setup.sh: QEMU matching the machine's qemu-utils." \
                "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm-backports" \
                "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
                "${SUDO[@]}" tee "$BACKPORTS_LIST" >/dev/null
        fi
        if ! apt-cache policy qemu-system-x86 | grep -q bookworm-backports; then
            APT_UPDATED=0 # the new source has no lists yet: update even if we already did
            apt_update_once
        fi
        if apt-cache policy qemu-system-x86 | grep -q bookworm-backports &&
            apt_install -t bookworm-backports "${QEMU_PKGS[@]}"; then
            log "QEMU: $(dpkg-query -W -f='${Version}' qemu-system-x86) from bookworm-backports"
            return 0
        fi
        warn "QEMU from bookworm-backports failed; trying the default release"
    fi
    # Elsewhere (or without backports): one QEMU version from the default release; a newer
    # qemu-utils already installed is brought to the same version rather than removed.
    local v
    v=$(pkg_candidate qemu-system-x86)
    [[ -n $v ]] || die "no installable qemu-system-x86"
    pkg_installed qemu-utils && [[ $(dpkg-query -W -f='${Version}' qemu-utils) != "$v" ]] &&
        warn "bringing qemu-utils $(dpkg-query -W -f='${Version}' qemu-utils) to $v, the version of qemu-system-x86"
    apt_install --allow-downgrades "qemu-system-x86=$v" "qemu-utils=$v" ||
        die "could not install QEMU (${QEMU_PKGS[*]}); see $APT_LOG"
}

install_debian_packages() {
    local missing=() p
    for p in "${APT_REQUIRED[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    local optional=()
    for p in "${APT_OPTIONAL[@]}"; do pkg_installed "$p" || optional+=("$p"); done

    if [[ ${#missing[@]} -eq 0 && ${#optional[@]} -eq 0 ]]; then
        log "Debian packages: ${APT_REQUIRED[*]} ${APT_OPTIONAL[*]} - installed"
    else
        if [[ $(apt_lists_age_hours) -ge $APT_MAX_AGE_HOURS ]]; then apt_update_once fatal; fi
        if [[ ${#missing[@]} -gt 0 ]]; then
            apt_install "${missing[@]}" || die "could not install: ${missing[*]}; see $APT_LOG"
        fi
        for p in "${optional[@]}"; do
            if [[ -z $(pkg_candidate "$p") ]]; then
                warn "optional package $p is not in this archive: skipped"
            elif ! apt_install "$p"; then
                warn "optional package $p failed to install: skipped"
            fi
        done
    fi
    install_qemu
}

# ---------------------------------------------------------------- rust ---------
have_nightly() { rustup toolchain list 2>/dev/null | grep -q '^nightly'; }

install_rust_tools() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
    local comp
    for comp in rustfmt clippy; do
        if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
            log "rustup component add $comp"
            rustup component add "$comp" >&2 || warn "could not add $comp; test.sh will fail at that stage"
        fi
    done
    if cargo fuzz --version >/dev/null 2>&1; then
        log "cargo-fuzz: $(cargo fuzz --version 2>/dev/null) - cached"
    else
        log "cargo install cargo-fuzz --locked (a few minutes, once)"
        cargo install cargo-fuzz --locked >&2 || die "cargo install cargo-fuzz failed"
    fi
    if have_nightly; then
        log "nightly toolchain: $(rustc +nightly --version 2>/dev/null || echo present) - fuzzing uses it"
    else
        warn "no nightly toolchain (rustup toolchain list): fuzz.sh falls back to stable (RUSTC_BOOTSTRAP=1, --sanitizer none) or skips fuzzing"
    fi
}

# virtiofsd: bookworm has no package for it and QEMU 7.2 no longer ships its C virtiofsd,
# so build the Rust one once into the cache (outside the clone; domboot finds it there).
VIRTIOFSD_ROOT=$CACHE/virtiofsd
install_virtiofsd() {
    local bin=$VIRTIOFSD_ROOT/bin/virtiofsd
    if [[ -x $bin ]]; then
        log "virtiofsd: $("$bin" --version 2>/dev/null | head -1) - cached in $VIRTIOFSD_ROOT"
        return 0
    fi
    log "cargo install virtiofsd --locked --root $VIRTIOFSD_ROOT (a few minutes, once)"
    mkdir -p "$VIRTIOFSD_ROOT"
    cargo install virtiofsd --locked --root "$VIRTIOFSD_ROOT" >&2 ||
        die "cargo install virtiofsd failed (needs libseccomp-dev and libcap-ng-dev)"
}

# virtme-ng for the benchmark only: every failure is a warning (PyPI unreachable, no venv
# module), so setup goes on and the bench skips its vng column, saying why.
install_vng() {
    if [[ $WITH_VNG -eq 0 ]]; then
        log "virtme-ng: not installed (benchmark only; scripts/setup.sh --with-vng installs it)"
        return 0
    fi
    local missing=() p have
    for p in "${VNG_APT[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    if [[ ${#missing[@]} -gt 0 ]] && ! apt_install "${missing[@]}"; then
        warn "virtme-ng: could not install ${missing[*]}; skipped (see $APT_LOG)"
        return 0
    fi
    have=$("$VNG_VENV/bin/python3" -m pip show virtme-ng 2>/dev/null | awk '/^Version:/ {print $2}' || true)
    if [[ $have == "$VNG_VERSION" && -x $VNG_VENV/bin/vng ]]; then
        log "virtme-ng: $have - cached in $VNG_VENV"
        return 0
    fi
    log "virtme-ng: pip install virtme-ng==$VNG_VERSION into $VNG_VENV"
    if ! python3 -m venv "$VNG_VENV" >&2; then
        warn "virtme-ng: python3 -m venv $VNG_VENV failed; skipped"
        return 0
    fi
    if ! "$VNG_VENV/bin/python3" -m pip install -q --disable-pip-version-check --timeout 30 --retries 2 \
        "virtme-ng==$VNG_VERSION" >&2; then
        warn "virtme-ng: pip install virtme-ng==$VNG_VERSION failed (PyPI unreachable?); skipped"
    fi
}

fetch_crates() {
    # Fill cargo's download cache (~/.cargo/registry) so later builds work offline.
    # Not fatal: a manifest being edited must not stop the install; the build reports it.
    log "cargo fetch (workspace)"
    (cd "$ROOT" && cargo fetch --quiet >&2) ||
        warn "cargo fetch failed (see above); the build will report the same error"
    if [[ -f $ROOT/fuzz/Cargo.toml ]]; then
        log "cargo fetch (fuzz/)"
        (cd "$ROOT/fuzz" && cargo fetch --quiet >&2) ||
            warn "cargo fetch in fuzz/ failed (see above); fuzz.sh will report the same error"
    fi
}

# ---------------------------------------------------------------- kernels ------
# Resolve, for every flavour, the kernel package its metapackage depends on (or that
# package's -unsigned twin when only that is in the archive) and its candidate version.
# Two apt-cache calls in all: each costs about a second.
declare -A KPKG=() KVER=()
resolve_kernel_packages() {
    local metas=() f
    for f in "${KERNEL_FLAVOURS[@]}"; do metas+=("${KERNEL_META[$f]}"); done
    declare -A dep=()
    local meta d
    while read -r meta d; do dep[$meta]=$d; done < <(apt-cache depends "${metas[@]}" 2>/dev/null |
        awk '/^[^ ]/ {cur = $1} $1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !(cur in seen) {seen[cur] = 1; print cur, $2}')
    local cands=()
    for meta in "${metas[@]}"; do
        d=${dep[$meta]:-}
        [[ -n $d ]] && cands+=("$d" "${d%-unsigned}-unsigned" "${d%-unsigned}")
    done
    [[ ${#cands[@]} -gt 0 ]] || return 0
    declare -A cand=()
    local p v
    while read -r p v; do
        [[ $v != "(none)" ]] && cand[$p]=$v
    done < <(apt-cache policy "${cands[@]}" 2>/dev/null |
        awk '/^[^ ]/ {cur = $1; sub(/:$/, "", cur)} $1 == "Candidate:" {print cur, $2}')
    for f in "${KERNEL_FLAVOURS[@]}"; do
        d=${dep[${KERNEL_META[$f]}]:-}
        [[ -n $d ]] || continue
        for p in "$d" "${d%-unsigned}-unsigned" "${d%-unsigned}"; do
            if [[ -n ${cand[$p]:-} ]]; then
                KPKG[$f]=$p
                KVER[$f]=${cand[$p]}
                break
            fi
        done
    done
}

fetch_kernel() {
    local flavour=$1 meta=${KERNEL_META[$1]}
    local debian=$CACHE/debian
    local pub=$debian/$flavour
    local pkg ver have_pkg="" have_ver=""
    if [[ -f $pub/package && -f $pub/package-version && -e $pub/vmlinuz ]]; then
        have_pkg=$(<"$pub/package")
        have_ver=$(<"$pub/package-version")
    fi

    pkg=${KPKG[$flavour]:-}
    ver=${KVER[$flavour]:-}
    if [[ -z $pkg || -z $ver ]]; then
        if [[ -n $have_pkg ]]; then
            warn "$flavour kernel: cannot resolve $meta in apt's lists; keeping cached $have_pkg $have_ver"
            return 0
        fi
        die "$flavour kernel: cannot resolve the package $meta depends on (apt-cache depends $meta)"
    fi

    if [[ $pkg == "$have_pkg" && $ver == "$have_ver" ]]; then
        log "$flavour kernel: $pkg $ver ($(<"$pub/kernel-release")) - cached"
        return 0
    fi

    log "$flavour kernel: fetching $pkg $ver (metapackage $meta)"
    local dl
    dl=$(mktemp -d "$debian/.download.XXXXXX")
    # apt-get download runs as the invoking user; as root, tell apt not to drop to _apt
    # (which cannot write into root's cache folder).
    if ! (cd "$dl" && apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User="$(id -un)" -qq download "$pkg=$ver" >&2); then
        rm -rf "$dl"
        if [[ -n $have_pkg ]]; then
            warn "$flavour kernel: download of $pkg $ver failed (offline?); keeping cached $have_pkg $have_ver"
            return 0
        fi
        die "$flavour kernel: apt-get download $pkg=$ver failed"
    fi
    local deb
    deb=$(find "$dl" -maxdepth 1 -name '*.deb' | head -1)
    [[ -n $deb ]] || die "$flavour kernel: apt-get download left no .deb in $dl"

    log "$flavour kernel: unpacking $(basename "$deb") ($(du -h "$deb" | cut -f1))"
    local tree=$debian/$pkg
    rm -rf "$tree.partial"
    dpkg-deb -x "$deb" "$tree.partial"
    rm -rf "$dl" # the unpacked tree is the cache; the .deb is not kept

    local vmlinuz kver modules
    vmlinuz=$(find "$tree.partial/boot" -maxdepth 1 -name 'vmlinuz-*' | head -1)
    [[ -n $vmlinuz ]] || die "$flavour kernel: no boot/vmlinuz-* in $pkg"
    kver=${vmlinuz##*/vmlinuz-}
    if [[ -d $tree.partial/lib/modules/$kver ]]; then
        modules=lib/modules/$kver
    elif [[ -d $tree.partial/usr/lib/modules/$kver ]]; then
        modules=usr/lib/modules/$kver
    else
        die "$flavour kernel: no lib/modules/$kver in $pkg"
    fi
    rm -rf "$tree"
    mv "$tree.partial" "$tree"

    # Publish the stable paths: build them beside, then swap in.
    local new=$pub.new
    rm -rf "$new"
    mkdir -p "$new"
    ln -s "../$pkg/boot/vmlinuz-$kver" "$new/vmlinuz"
    ln -s "../$pkg/$modules" "$new/modules"
    [[ -e $tree/boot/config-$kver ]] && ln -s "../$pkg/boot/config-$kver" "$new/config"
    [[ -e $tree/boot/System.map-$kver ]] && ln -s "../$pkg/boot/System.map-$kver" "$new/System.map"
    echo "$kver" >"$new/kernel-release"
    echo "$pkg" >"$new/package"
    echo "$ver" >"$new/package-version"
    rm -rf "$pub.old"
    [[ -e $pub ]] && mv "$pub" "$pub.old"
    mv "$new" "$pub"
    rm -rf "$pub.old"
    log "$flavour kernel: $pkg $ver -> $pub (kernel-release $kver)"
}

# The i386 tiny kernel runs only 32-bit userland: its boot tests need Debian's i386
# busybox-static, unpacked into $CACHE/debian/busybox-i386 (needs the i386 architecture
# in dpkg to download; nothing i386 is installed).
fetch_busybox_i386() {
    local dest=$CACHE/debian/busybox-i386
    if [[ -x $dest/bin/busybox ]]; then
        log "i386 busybox-static: $dest - cached"
        return 0
    fi
    if ! dpkg --print-foreign-architectures | grep -qx i386; then
        log "dpkg --add-architecture i386 (to download the i386 busybox-static)"
        "${SUDO[@]}" dpkg --add-architecture i386
        APT_UPDATED=0
        apt_update_once fatal
    fi
    local dl deb
    dl=$(mktemp -d "$CACHE/debian/.download.XXXXXX")
    if ! (cd "$dl" && apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User="$(id -un)" -qq download busybox-static:i386 >&2); then
        rm -rf "$dl"
        die "apt-get download busybox-static:i386 failed"
    fi
    deb=$(find "$dl" -maxdepth 1 -name '*.deb' | head -1)
    rm -rf "$dest.partial"
    dpkg-deb -x "$deb" "$dest.partial"
    rm -rf "$dl" "$dest"
    mv "$dest.partial" "$dest"
    log "i386 busybox-static -> $dest"
}

remove_stale_kernels() {
    # Drop unpacked kernel packages no flavour points at any more.
    local debian=$CACHE/debian keep=() f dir name k
    for f in "${KERNEL_FLAVOURS[@]}"; do
        [[ -f $debian/$f/package ]] && keep+=("$(<"$debian/$f/package")")
    done
    for dir in "$debian"/linux-image-*; do
        [[ -d $dir ]] || continue
        name=${dir##*/}
        for k in "${keep[@]}"; do [[ $name == "$k" ]] && continue 2; done
        log "removing stale $dir"
        rm -rf "$dir"
    done
}

fetch_kernels() {
    mkdir -p "$CACHE/debian"
    # One setup at a time per cache (two shells, or CI next to a developer).
    exec 9>"$CACHE/.setup.lock"
    if ! flock -n 9; then
        log "another setup.sh holds $CACHE/.setup.lock; waiting"
        flock 9
    fi
    apt_update_if_stale
    resolve_kernel_packages
    local f
    for f in "${KERNEL_FLAVOURS[@]}"; do fetch_kernel "$f"; done
    fetch_busybox_i386
    build_mmio_kernel
    remove_stale_kernels
    rm -rf "$CACHE"/debian/.download.*
    exec 9>&-
}

# ---------------------------------------------------------------- test kernel --
# A tiny x86_64 kernel with VIRTIO_MMIO_CMDLINE_DEVICES, which neither Debian's kernels nor
# ../shared/kernels have: `run --virtio-mmio-cmdline`'s proof (crates/cli/tests/
# virtio_cmdline.rs) boots it without ACPI, where the command line is the only way it can
# find its virtio devices. Built like ../shared/kernels/build-kernels.sh (tinyconfig, a
# serial console, an initramfs, what busybox needs), from Debian's linux-source-6.1, with
# the virtio-mmio drivers built in. Rebuilt only when the recipe below or the source
# package's version changes; the extracted source tree is deleted after the build.
MMIO_KERNEL_DIR=$CACHE/kernels/virtio-mmio-cmdline
MMIO_KERNEL_JOBS=${DOMBOOT_KERNEL_JOBS:-$(nproc 2>/dev/null || echo 2)}
MMIO_KERNEL_SOURCE=/usr/src/linux-source-6.1.tar.xz
# Each must read =y in the .config after olddefconfig, or the step fails.
MMIO_KERNEL_YES=(PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP BINFMT_ELF
    BINFMT_SCRIPT PROC_FS SYSFS DEVTMPFS EARLY_PRINTK 64BIT KERNEL_GZIP
    VIRTIO_MENU VIRTIO VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES BLOCK BLK_DEV VIRTIO_BLK
    HVC_DRIVER VIRTIO_CONSOLE HW_RANDOM HW_RANDOM_VIRTIO)
# Each must be off: no ACPI (so only the command line announces the devices), no KASLR.
MMIO_KERNEL_NO=(ACPI RANDOMIZE_BASE MODULES)
mmio_kernel_recipe() {
    local s
    echo "source linux-source-6.1 $(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null)"
    echo "base tinyconfig"
    for s in "${MMIO_KERNEL_YES[@]}"; do echo "CONFIG_$s=y"; done
    for s in "${MMIO_KERNEL_NO[@]}"; do echo "CONFIG_$s=n"; done
}
build_mmio_kernel() {
    local dest=$MMIO_KERNEL_DIR recipe
    recipe=$(mmio_kernel_recipe)
    if [[ -f $dest/bzImage && -f $dest/recipe && $(<"$dest/recipe") == "$recipe" ]]; then
        log "virtio-mmio-cmdline test kernel: $dest/bzImage - cached"
        return 0
    fi
    [[ -f $MMIO_KERNEL_SOURCE ]] || die "test kernel: $MMIO_KERNEL_SOURCE missing (apt-get install linux-source-6.1)"
    local t0=$SECONDS work
    mkdir -p "$CACHE/kernels"
    rm -rf "$CACHE"/kernels/.build.*
    work=$(mktemp -d "$CACHE/kernels/.build.XXXXXX")
    log "virtio-mmio-cmdline test kernel: extracting $MMIO_KERNEL_SOURCE into $work"
    # The whole tree: Kconfig reads files of every architecture (crypto/Kconfig sources
    # arch/*/crypto/Kconfig).
    tar -xJf "$MMIO_KERNEL_SOURCE" -C "$work" ||
        { rm -rf "$work"; die "test kernel: extracting $MMIO_KERNEL_SOURCE failed"; }
    local src=$work/linux-source-6.1 out=$work/out
    local make_k=(make -C "$src" O="$out" ARCH=x86_64)
    # A failed step shows the end of its log and leaves no source tree behind.
    kernel_failed() {
        tail -n 30 "$work/$1" | sed 's/^/    kernel: /' >&2
        rm -rf "$work"
        die "test kernel: $2 failed"
    }
    log "virtio-mmio-cmdline test kernel: configuring (tinyconfig + virtio-mmio, $((SECONDS - t0))s so far)"
    "${make_k[@]}" tinyconfig >"$work/config.log" 2>&1 || kernel_failed config.log "make tinyconfig"
    {
        local s
        for s in "${MMIO_KERNEL_YES[@]}"; do echo "CONFIG_$s=y"; done
        for s in "${MMIO_KERNEL_NO[@]}"; do echo "# CONFIG_$s is not set"; done
    } >>"$out/.config"
    "${make_k[@]}" olddefconfig >>"$work/config.log" 2>&1 || kernel_failed config.log "make olddefconfig"
    local missing=() s
    for s in "${MMIO_KERNEL_YES[@]}"; do
        if ! grep -qx "CONFIG_$s=y" "$out/.config"; then missing+=("CONFIG_$s=y"); fi
    done
    for s in "${MMIO_KERNEL_NO[@]}"; do
        if grep -q "^CONFIG_$s=" "$out/.config"; then missing+=("CONFIG_$s off"); fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        rm -rf "$work"
        die "test kernel: after olddefconfig the .config lacks ${missing[*]} (a dependency is missing from MMIO_KERNEL_YES)"
    fi
    log "virtio-mmio-cmdline test kernel: make -j$MMIO_KERNEL_JOBS bzImage ($((SECONDS - t0))s so far)"
    "${make_k[@]}" -j"$MMIO_KERNEL_JOBS" bzImage >"$work/build.log" 2>&1 || kernel_failed build.log "make bzImage"
    rm -rf "$dest.new"
    mkdir -p "$dest.new"
    cp "$out/arch/x86/boot/bzImage" "$dest.new/bzImage"
    cp "$out/.config" "$dest.new/config"
    echo "$recipe" >"$dest.new/recipe"
    rm -rf "$dest" "$work"
    mv "$dest.new" "$dest"
    log "virtio-mmio-cmdline test kernel: $dest/bzImage ($(du -h "$dest/bzImage" | cut -f1)) built in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- main ---------
log "domboot setup: repo $ROOT, cache $CACHE"
install_debian_packages
install_rust_tools
install_virtiofsd
install_vng
fetch_crates
fetch_kernels
log "cache: $(du -sh "$CACHE" 2>/dev/null | cut -f1) in $CACHE"

if [[ $INSTALL_ONLY -eq 1 ]]; then
    log "install done in $((SECONDS - START))s (--install-only)"
    exit 0
fi

log "cargo build --release --workspace"
(cd "$ROOT" && cargo build --release --workspace) || die "release build failed"
log "main job: ${MAIN_JOB[*]}"
cd "$ROOT"
"${MAIN_JOB[@]}"
log "done in $((SECONDS - START))s"
