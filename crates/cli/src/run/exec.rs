//! `run --exec CMD`: the throwaway VM's initramfs. Its /init runs CMD and reports its exit
//! status on serial ports of their own (see [`super::channels`]), on both backends. Also:
//! the default kernel and modules tree, and the busybox that runs on the kernel (i386 for
//! a 32-bit one).

use super::modules;
use anyhow::{Context, bail};
use domboot_initramfs::{Compression, Initramfs};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// The /init of every exec initramfs; the command comes in a second, per-run initramfs, so
/// one cached base image serves every command.
const INIT: &str = r#"#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mkdir -p /tmp /root /dev/pts
/bin/busybox mount -t tmpfs tmpfs /tmp
if [ -f /domboot/modules ]; then
    while read -r m; do
        /bin/busybox insmod "/domboot/modules.d/$m.ko" || echo "domboot: cannot load module $m" >&2
    done < /domboot/modules
fi
cd /root
# The command; /domboot/rootfs.sh (run --exec --rootfs host) replaces this with one that
# runs it in the host's /.
run_cmd() { /bin/sh /domboot/cmd; }
[ -f /domboot/rootfs.sh ] && . /domboot/rootfs.sh
# ttyS1: control, ttyS2: stdin and stdout, ttyS3: stderr (see run/channels.rs), on both
# backends (QEMU's serial ports, the KVM backend's COM2-COM4).
for t in 1 2 3; do /bin/busybox stty -F /dev/ttyS$t raw -echo -iexten; done
/bin/busybox mkfifo /domboot/stdin
# Opening a port clears its receive FIFO, so the host sends stdin only once the
# reader holds ttyS2 open and says so. Stdin comes in blocks of "LENGTH\n" and that
# many bytes; "0\n" is its end.
(exec < /dev/ttyS2; echo stdin > /dev/ttyS1
 while read -r n && [ "$n" -gt 0 ]; do
     /bin/busybox dd bs="$n" count=1 iflag=fullblock 2>/dev/null
 done) > /domboot/stdin &
r=$!
echo start > /dev/ttyS1
run_cmd < /domboot/stdin > /dev/ttyS2 2> /dev/ttyS3
s=$?
# The decoder holds ttyS2 open: once it is gone the port's last close has waited for
# the command's output to leave the UART.
kill $r 2>/dev/null; wait $r 2>/dev/null
echo "end $s" > /dev/ttyS1
/bin/busybox reboot -f
"#;

/// Folders of the base initramfs besides busybox's: (path, mode).
const DIRS: &[(&str, u32)] = &[
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/tmp", 0o1777),
    ("/root", 0o700),
];

/// Kernel to use when none is given: the running kernel's, then the one setup cached.
pub fn default_kernel() -> anyhow::Result<PathBuf> {
    let mut tried = Vec::new();
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        let p = PathBuf::from(format!("/boot/vmlinuz-{}", release.trim()));
        if std::fs::File::open(&p).is_ok() {
            return Ok(p);
        }
        tried.push(p);
    }
    let cached = cache_dir().join("debian/cloud/vmlinuz");
    if cached.exists() {
        return Ok(cached);
    }
    tried.push(cached);
    bail!(
        "no kernel given and none found (tried {}); pass --kernel FILE, or run scripts/setup.sh to fetch Debian's cloud kernel into the cache",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DOMBOOT_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/domboot"),
    }
}

/// The modules tree matching `kernel`: /lib/modules/RELEASE, or the cache's copy.
pub fn default_modules(kernel: &Path) -> Option<PathBuf> {
    let chain = domboot_formats::open(
        kernel,
        &domboot_formats::ChainOptions {
            stop_at: vec![domboot_formats::Format::BzImage],
            ..Default::default()
        },
    )
    .ok()?;
    let version = chain.bzimage()?.bzimage()?.kernel_version.clone()?;
    let release = version.split_whitespace().next()?.to_string();
    let system = PathBuf::from(format!("/lib/modules/{release}"));
    if system.is_dir() {
        return Some(system);
    }
    let debian = cache_dir().join("debian");
    for flavour in std::fs::read_dir(&debian).ok()?.flatten() {
        let rel =
            std::fs::read_to_string(flavour.path().join("kernel-release")).unwrap_or_default();
        if rel.trim() == release {
            return Some(flavour.path().join("modules"));
        }
    }
    None
}

/// The initrds of an exec run: the cached base (busybox + /init), the command, modules.
pub struct ExecInitrds {
    pub files: Vec<PathBuf>,
    /// Keeps the per-run files alive until the run ends.
    _dir: tempfile::TempDir,
}

/// `rootfs_script` is /domboot/rootfs.sh for a host-rootfs run.
pub fn prepare(
    cmd: &str,
    modules: &[(String, PathBuf)],
    kernel: &Path,
    rootfs_script: Option<Vec<u8>>,
) -> anyhow::Result<ExecInitrds> {
    let base = base_initramfs(&busybox_for(kernel)?)?;
    let dir = tempfile::Builder::new().prefix("domboot-exec-").tempdir()?;
    let mut extra =
        Initramfs::new()
            .reproducible(true)
            .file("/domboot/cmd", 0o644, cmd.as_bytes().to_vec());
    if let Some(script) = rootfs_script {
        extra = extra.file("/domboot/rootfs.sh", 0o644, script);
    }
    if !modules.is_empty() {
        let list: String = modules.iter().map(|(n, _)| format!("{n}\n")).collect();
        extra = extra.file("/domboot/modules", 0o644, list.into_bytes());
        for (name, path) in modules {
            let bytes = modules::read_module(path)?;
            extra = extra.file(&format!("/domboot/modules.d/{name}.ko"), 0o644, bytes);
        }
    }
    let per_run = dir.path().join("command.cpio");
    let bytes = extra.to_bytes(Compression::None)?;
    std::fs::write(&per_run, bytes)
        .with_context(|| format!("cannot write {}", per_run.display()))?;
    Ok(ExecInitrds {
        files: vec![base, per_run],
        _dir: dir,
    })
}

/// A static busybox that runs on `kernel`: the host's for a 64-bit kernel, the i386 one
/// scripts/setup.sh caches for a 32-bit kernel (which cannot run x86_64 programs).
pub fn busybox_for(kernel: &Path) -> anyhow::Result<PathBuf> {
    if !is_32bit(kernel) {
        return Ok(domboot_initramfs::busybox::find()?);
    }
    let i386 = cache_dir().join("debian/busybox-i386/bin/busybox");
    if !i386.is_file() {
        bail!(
            "{} is a 32-bit kernel, which needs an i386 busybox; none at {} (scripts/setup.sh \
             fetches Debian's busybox-static for i386 there)",
            kernel.display(),
            i386.display()
        );
    }
    domboot_initramfs::busybox::check_static(&i386)?;
    Ok(i386)
}

/// A bzImage without a 64-bit entry point (XLF_KERNEL_64), or a 32-bit ELF kernel.
pub fn is_32bit(kernel: &Path) -> bool {
    let options = domboot_formats::ChainOptions {
        stop_at: vec![domboot_formats::Format::BzImage],
        ..Default::default()
    };
    let Ok(chain) = domboot_formats::open(kernel, &options) else {
        return false;
    };
    if let Some(bz) = chain.bzimage().and_then(|l| l.bzimage()) {
        return bz.entry_points.entry64_offset.is_none();
    }
    chain
        .kernel_elf()
        .is_some_and(|elf| elf.data.get(4) == Some(&1))
}

/// busybox + /init, built once per busybox binary and /init version, cached. Uncompressed:
/// the guest's gunzip of ~1 MB costs more emulated time under TCG than the copy of the
/// extra megabyte does (issue 16), and on KVM either is cheap.
fn base_initramfs(busybox: &Path) -> anyhow::Result<PathBuf> {
    let bb =
        std::fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bb.hash(&mut h);
    INIT.hash(&mut h);
    DIRS.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    let path = cache_dir().join(format!("initramfs/exec-{:016x}.cpio", h.finish()));
    if path.exists() {
        return Ok(path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut image = Initramfs::new()
        .reproducible(true)
        .busybox(busybox)?
        .essential_dev()
        .file("/init", 0o755, INIT.as_bytes().to_vec());
    for (dir, mode) in DIRS {
        image = image.dir(dir, *mode);
    }
    let bytes = image.to_bytes(Compression::None)?;
    crate::atomic::write_file(&path, &bytes)?;
    Ok(path)
}
