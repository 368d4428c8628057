//! What makes a plain `domboot run --kernel K` work the first time: a serial console and
//! `panic=-1` on the command line unless it says otherwise, a busybox shell when no initrd
//! is given, the host terminal's size, and a banner saying how to leave.

use super::exec;
use anyhow::Context;
use domboot_builder::{DomainImage, Initrd};
use std::hash::{Hash, Hasher};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Completes a Linux kernel's command line and initrds for `run`. `interactive`: stdio
/// is the guest's console; `console`: the guest's console device (`ttyS0`, `hvc0`).
pub fn apply_defaults(
    image: &mut DomainImage,
    interactive: bool,
    console: &str,
) -> anyhow::Result<()> {
    let mut extra = Vec::new();
    // The console domboot shows; without console= Linux prints nothing there.
    if !has_param(&image.cmdline, "console") {
        extra.push(format!("console={console}"));
    }
    // Without panic=, a panicked kernel spins until --timeout; -1 reboots at once, which
    // ends the run, and domboot reports the panic from the console.
    if !has_param(&image.cmdline, "panic") {
        extra.push("panic=-1".to_string());
    }
    if interactive && let Some((rows, cols)) = window_size() {
        extra.push(format!("domboot.winsize={rows}x{cols}"));
    }
    if image.initrds.is_empty() {
        // A missing busybox is no reason to refuse the boot the user asked for.
        match shell_initramfs(&image.kernel_path).and_then(|path| {
            let data =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok((path, data))
        }) {
            Ok((path, data)) => image.initrds.push(Initrd {
                path,
                data: bytes::Bytes::from(data),
            }),
            Err(e) => eprintln!(
                "domboot: warning: no initrd given, and no busybox shell to offer instead: {e:#}"
            ),
        }
    }
    for e in extra {
        if !image.cmdline.is_empty() {
            image.cmdline.push(' ');
        }
        image.cmdline.push_str(&e);
    }
    Ok(())
}

/// Whether the command line has `name=...` (or a bare `name`) as a parameter of its own.
fn has_param(cmdline: &str, name: &str) -> bool {
    cmdline
        .split_whitespace()
        .any(|p| p == name || p.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// busybox with the bootable /init of `domboot initrd --busybox`, for the kernel's word
/// size, built once and cached.
fn shell_initramfs(kernel: &std::path::Path) -> anyhow::Result<PathBuf> {
    let busybox = exec::busybox_for(kernel)?;
    let bb =
        std::fs::read(&busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bb.hash(&mut h);
    domboot_initramfs::bootable::INIT.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    let path = exec::cache_dir().join(format!("initramfs/shell-{:016x}.cpio.gz", h.finish()));
    if path.exists() {
        return Ok(path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let bytes = domboot_initramfs::Initramfs::new()
        .reproducible(true)
        .busybox(&busybox)?
        .bootable_shell()
        .to_bytes(domboot_initramfs::Compression::Gzip)?;
    crate::atomic::write_file(&path, &bytes)?;
    Ok(path)
}

/// The terminal's rows and columns, when stdout is one.
fn window_size() -> Option<(u16, u16)> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: winsize is plain old data, filled by the ioctl, whose result is checked.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: fd 1 is stdout, open for the life of the process; `ws` is a valid pointer
    // to a winsize, which is what TIOCGWINSZ writes.
    if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_row == 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

/// The one line shown before an interactive console starts (on stderr, only on a terminal).
pub fn banner(kernel: &std::path::Path, accel: super::Accel) {
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprintln!(
            "domboot: booting {} ({}); Ctrl-A x to quit",
            kernel.display(),
            match accel {
                super::Accel::Kvm => "KVM",
                _ => "QEMU TCG",
            }
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn params_are_whole_words() {
        assert!(super::has_param("root=/dev/sda console=hvc0", "console"));
        assert!(super::has_param("quiet panic=10", "panic"));
        assert!(!super::has_param(
            "earlyconsole=x panic_on_oops=1",
            "console"
        ));
        assert!(!super::has_param("panic_on_oops=1", "panic"));
    }
}
