//! `domboot initrd --kboot`: the seed's mini kboot (seeds/004) — an initramfs with busybox
//! and this domboot whose /init finds the system's kernels and kexecs into one.

use anyhow::Context;
use domboot_initramfs::Initramfs;
use std::path::{Path, PathBuf};

/// Where extra kernel modules go: /init loads every `*.ko` here, in name order, before it
/// looks for the root device (e.g. virtio_blk for a virtio disk; add them with
/// `--dir mods=/lib/kboot/modules`).
pub const MODULES_DIR: &str = "/lib/kboot/modules";

/// The kboot /init. Reads root=, boot=, kernel=, ramdisk= and entry= from the command line.
pub const INIT: &str = r#"#!/bin/busybox sh
# domboot kboot: mount the root (and /boot) read-only, pick a kernel, kexec into it.
B=/bin/busybox
export PATH=/bin:/sbin
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev 2>/dev/null
$B mkdir -p /tmp /mnt/root /mnt/boot
say() { echo "kboot: $*"; }
rescue() { say "$*"; say "starting a shell (exit reboots)"; $B setsid $B cttyhack $B sh -l; $B reboot -f; }
for m in /lib/kboot/modules/*.ko; do
    [ -e "$m" ] && { $B insmod "$m" || say "insmod $m failed"; }
done
ROOT= BOOTDEV= KERNEL= RAMDISK= ENTRY= PASS=
for w in $($B cat /proc/cmdline); do
    case "$w" in
        root=*) ROOT=${w#root=}; PASS="$PASS $w" ;;
        boot=*) BOOTDEV=${w#boot=} ;;
        kernel=*) KERNEL=${w#kernel=} ;;
        ramdisk=*) RAMDISK=${w#ramdisk=} ;;
        entry=*) ENTRY=${w#entry=} ;;
        rdinit=*|initrd=*|BOOT_IMAGE=*) ;;
        *) PASS="$PASS $w" ;;
    esac
done
PASS=${PASS# }
# A device named by path, UUID= or LABEL=; waits up to 10 s for it to appear.
device() {
    i=0
    while [ $i -lt 20 ]; do
        case "$1" in
            UUID=*|LABEL=*) d=$($B findfs "$1" 2>/dev/null) && { echo "$d"; return 0; } ;;
            *) [ -b "$1" ] && { echo "$1"; return 0; } ;;
        esac
        $B sleep 0.5; i=$((i + 1))
    done
    return 1
}
[ -n "$ROOT" ] || rescue "no root= on the command line"
RDEV=$(device "$ROOT") || rescue "root device $ROOT not found"
$B mount -o ro "$RDEV" /mnt/root || rescue "cannot mount $RDEV read-only"
BOOTDIR=/mnt/root/boot
if [ -n "$BOOTDEV" ]; then
    BDEV=$(device "$BOOTDEV") || rescue "boot device $BOOTDEV not found"
    $B mount -o ro "$BDEV" /mnt/boot || rescue "cannot mount $BDEV read-only"
    BOOTDIR=/mnt/boot
fi
# A path given on the command line: relative to /boot, or from the root with a leading /.
resolve() {
    for p in "$BOOTDIR/$1" "/mnt/root/${1#/}"; do [ -f "$p" ] && { echo "$p"; return 0; }; done
    return 1
}
# The initrd matching a kernel file's name, as distributions name them.
ramdisk_for() {
    n=${1##*/}; v=${n#vmlinuz-}; v=${v#vmlinux-}; v=${v#bzImage-}; v=${v#kernel-}
    for r in "initrd.img-$v" "initrd-$v.img" "initramfs-$v.img" "initrd-$v"; do
        [ -f "$BOOTDIR/$r" ] && { echo "$BOOTDIR/$r"; return 0; }
    done
    return 1
}
boot_kernel() {
    k=$1
    r=
    if [ -n "$RAMDISK" ]; then
        r=$(resolve "$RAMDISK") || rescue "ramdisk $RAMDISK not found in $BOOTDIR"
    else
        r=$(ramdisk_for "$k")
    fi
    say "booting $k${r:+ with $r}"
    if [ -n "$r" ]; then
        /bin/domboot kexec load --kernel "$k" --initrd "$r" --cmdline "$PASS" || rescue "kexec load failed"
    else
        /bin/domboot kexec load --kernel "$k" --cmdline "$PASS" || rescue "kexec load failed"
    fi
    $B umount /mnt/boot 2>/dev/null; $B umount /mnt/root
    /bin/domboot kexec exec
    rescue "kexec exec failed"
}
boot_entry() {
    say "booting boot entry $1 of $RDEV"
    /bin/domboot kexec load --disk "$RDEV" --bootloader --boot-entry "$1" || rescue "kexec load failed"
    $B umount /mnt/boot 2>/dev/null; $B umount /mnt/root
    /bin/domboot kexec exec
    rescue "kexec exec failed"
}
[ -n "$ENTRY" ] && boot_entry "$ENTRY"
if [ -n "$KERNEL" ]; then
    k=$(resolve "$KERNEL") || rescue "kernel $KERNEL not found in $BOOTDIR"
    boot_kernel "$k"
fi
# The menu: the boot loader's entries (when domboot finds any), then the kernels in /boot.
: > /tmp/menu
if /bin/domboot boot-entries --json "$RDEV" > /tmp/entries.json 2>/dev/null; then
    $B sed -n 's/^      "title": "\(.*\)",$/\1/p' /tmp/entries.json > /tmp/titles
    i=0
    while read -r t; do echo "entry $i $t" >> /tmp/menu; i=$((i + 1)); done < /tmp/titles
fi
for k in "$BOOTDIR"/vmlinuz-* "$BOOTDIR"/vmlinux-* "$BOOTDIR"/bzImage* "$BOOTDIR"/kernel-*; do
    [ -f "$k" ] && echo "kernel $k" >> /tmp/menu
done
n=$($B wc -l < /tmp/menu)
[ "$n" -gt 0 ] || rescue "no kernels in $BOOTDIR and no boot entries on $RDEV"
if [ "$n" -eq 1 ]; then
    choice=1
else
    echo
    say "choose what to boot:"
    i=1
    while read -r kind a b; do
        case "$kind" in
            entry) echo "  $i) $b (boot entry $a)" ;;
            kernel) echo "  $i) ${a#$BOOTDIR/}" ;;
        esac
        i=$((i + 1))
    done < /tmp/menu
    while :; do
        printf "kboot: press 1-%s: " "$n"
        read -r -n 1 choice
        echo
        case "$choice" in
            [1-9]) [ "$choice" -le "$n" ] && break ;;
        esac
    done
fi
set -- $($B sed -n "${choice}p" /tmp/menu)
case "$1" in
    entry) boot_entry "$2" ;;
    kernel) boot_kernel "$2" ;;
esac
rescue "nothing to boot"
"#;

/// Adds kboot to `fs` (which already holds busybox and the bootable basics): /init, this
/// domboot binary (without debug info when binutils' `strip` is there) as /bin/domboot,
/// with the shared libraries `ldd` lists at their paths, and the modules folder.
pub fn add(fs: Initramfs) -> anyhow::Result<Initramfs> {
    let exe = std::env::current_exe().context("cannot find this domboot's own binary")?;
    let dir = tempfile::Builder::new()
        .prefix("domboot-kboot-")
        .tempdir()?;
    let stripped = dir.path().join("domboot");
    let ok = std::process::Command::new("strip")
        .args(["--strip-debug", "-o"])
        .arg(&stripped)
        .arg(&exe)
        .status()
        .is_ok_and(|s| s.success());
    let binary: PathBuf = if ok { stripped } else { exe.clone() };
    // Read now: the stripped copy goes with its temporary folder.
    let bytes = std::fs::read(&binary).with_context(|| format!("{}", binary.display()))?;
    let mut fs = fs
        .dir(MODULES_DIR, 0o755)
        .dir("/mnt", 0o755)
        .file("/bin/domboot", 0o755, bytes)
        .file("/init", 0o755, INIT.as_bytes().to_vec());
    for lib in libraries(&exe)? {
        let dest = lib.to_string_lossy().into_owned();
        let real = std::fs::canonicalize(&lib).with_context(|| format!("{}", lib.display()))?;
        fs = fs.host_file(&dest, &real)?;
    }
    Ok(fs)
}

/// The shared libraries `ldd` lists for `exe` (none for a static binary).
fn libraries(exe: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = match std::process::Command::new("ldd").arg(exe).output() {
        Ok(o) => o,
        // No ldd: fine for a static domboot; a dynamic one would not run in the image.
        Err(_) => return Ok(Vec::new()),
    };
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = match line.split("=>").nth(1) {
            Some(rest) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(lib) = lib.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(lib));
        }
    }
    Ok(libs)
}
