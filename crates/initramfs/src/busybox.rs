//! The host's static busybox (Debian's `busybox-static`) as an initramfs userland:
//! `/bin/busybox` plus one symlink per applet, as `busybox --list-full` names them.

use crate::builder::{Contents, Entry, Initramfs, Kind, Owner};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the archive gets busybox, and what the applet links point at.
pub const ARCHIVE_PATH: &str = "/bin/busybox";

/// Places looked at, in order, before the directories of `$PATH`.
pub const SEARCH_PATHS: &[&str] = &[
    "/bin/busybox",
    "/usr/bin/busybox",
    "/sbin/busybox",
    "/usr/sbin/busybox",
];

/// The first statically linked busybox among [`SEARCH_PATHS`] and `$PATH`. If only
/// dynamically linked ones exist, the error says so (and how to get a static one).
pub fn find() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = SEARCH_PATHS.iter().map(PathBuf::from).collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("busybox")));
    }
    let mut dynamic = None;
    for c in &candidates {
        if !c.is_file() {
            continue;
        }
        match check_static(c) {
            Ok(()) => return Ok(c.clone()),
            Err(e @ Error::BusyboxDynamic { .. }) => {
                dynamic.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    Err(dynamic.unwrap_or_else(|| Error::BusyboxMissing {
        searched: format!("{} and $PATH", SEARCH_PATHS.join(", ")),
    }))
}

/// Checks that `path` is an ELF executable without a program interpreter (PT_INTERP),
/// i.e. one that runs with nothing else in the initramfs.
pub fn check_static(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::BusyboxMissing {
            searched: path.display().to_string(),
        },
        _ => Error::io(path, "cannot read", e),
    })?;
    match interpreter(&bytes) {
        Ok(None) => Ok(()),
        Ok(Some(interpreter)) => Err(Error::BusyboxDynamic {
            path: path.to_path_buf(),
            interpreter,
        }),
        Err(reason) => Err(Error::BusyboxInvalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }),
    }
}

/// The PT_INTERP of an ELF executable, if it has one.
fn interpreter(elf: &[u8]) -> std::result::Result<Option<String>, &'static str> {
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file");
    }
    let is64 = match elf.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("unknown ELF class"),
    };
    let le = match elf.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err("unknown ELF byte order"),
    };
    let u16_at = |o: usize| -> Option<u64> {
        let b: [u8; 2] = elf.get(o..o.checked_add(2)?)?.try_into().ok()?;
        Some(u64::from(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = elf.get(o..o.checked_add(4)?)?.try_into().ok()?;
        Some(u64::from(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }))
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = elf.get(o..o.checked_add(8)?)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    const TRUNCATED: &str = "truncated ELF header";
    match u16_at(16).ok_or(TRUNCATED)? {
        2 | 3 => {} // ET_EXEC, ET_DYN (static-pie)
        _ => return Err("not an ELF executable"),
    }
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c), u16_at(0x2a), u16_at(0x2c))
    };
    let (phoff, phentsize, phnum) = (
        phoff.ok_or(TRUNCATED)?,
        phentsize.ok_or(TRUNCATED)?,
        phnum.ok_or(TRUNCATED)?,
    );
    const BAD_PH: &str = "program headers out of the file";
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o.checked_add(56).is_some())
            .ok_or(BAD_PH)?;
        if u32_at(at).ok_or(BAD_PH)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if is64 {
            (u64_at(at + 8), u64_at(at + 32))
        } else {
            (u32_at(at + 4), u32_at(at + 16))
        };
        let (off, size) = (off.ok_or(BAD_PH)?, size.ok_or(BAD_PH)?);
        let name = usize::try_from(off)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| elf.get(o..o.checked_add(s)?))
            .unwrap_or(b"?");
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(name).into_owned()));
    }
    Ok(None)
}

/// The applets of `busybox` as archive paths ("usr/bin/awk", ...), from `--list-full`.
pub fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::io(busybox, "cannot run --list-full", e))?;
    if !out.status.success() {
        return Err(Error::BusyboxInvalid {
            path: busybox.to_path_buf(),
            reason: format!(
                "`--list-full` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != ARCHIVE_PATH.trim_start_matches('/'))
        .collect();
    if list.is_empty() {
        return Err(Error::BusyboxInvalid {
            path: busybox.to_path_buf(),
            reason: "`--list-full` listed no applets".into(),
        });
    }
    Ok(list)
}

/// Adds busybox at [`ARCHIVE_PATH`] and a weak symlink to it for each applet.
pub(crate) fn add(fs: &mut Initramfs, busybox: &Path) -> Result<()> {
    check_static(busybox)?;
    let applets = applets(busybox)?;
    let meta = std::fs::metadata(busybox).map_err(|e| Error::io(busybox, "cannot read", e))?;
    let mut entry =
        crate::sources::host_entry(Kind::File(Contents::HostFile(busybox.to_path_buf())), &meta);
    entry.mode = 0o755;
    entry.owner = Owner::Root;
    fs.insert(ARCHIVE_PATH.as_bytes(), entry)?;
    for applet in applets {
        let link = Entry::new(Kind::Symlink(ARCHIVE_PATH.as_bytes().to_vec()), 0o777);
        // A name busybox made up that the archive cannot hold is skipped, not fatal.
        let _ = fs.insert_weak(applet.as_bytes(), link);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf64(interp: Option<&[u8]>) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56 * 2 + 32];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[16] = 2;
        e[0x20] = 64; // phoff
        e[0x36] = 56; // phentsize
        e[0x38] = 2; // phnum
        e[64] = 1; // PT_LOAD
        if let Some(i) = interp {
            let ph = 64 + 56;
            e[ph] = 3;
            let off = 64 + 112;
            e[ph + 8] = off as u8;
            e[ph + 32] = i.len() as u8;
            e[off..off + i.len()].copy_from_slice(i);
        }
        e
    }

    #[test]
    fn finds_the_interpreter() {
        assert_eq!(interpreter(&elf64(None)), Ok(None));
        assert_eq!(
            interpreter(&elf64(Some(b"/lib/ld.so\0"))),
            Ok(Some("/lib/ld.so".into()))
        );
        assert!(interpreter(b"#!/bin/sh").is_err());
        let mut truncated = elf64(Some(b"/lib/ld.so\0"));
        truncated.truncate(100);
        assert!(interpreter(&truncated).is_err());
        let mut huge = elf64(Some(b"x\0"));
        huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(interpreter(&huge).is_err());
        let mut bad_off = elf64(Some(b"x\0"));
        bad_off[0x20] = 0xff;
        bad_off[0x27] = 0xff;
        assert!(interpreter(&bad_off).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), class in 1u8..3, order in 1u8..3) {
            // Mostly valid-looking headers, so the program header walk is reached.
            if bytes.len() >= 6 {
                bytes[..4].copy_from_slice(b"\x7fELF");
                bytes[4] = class;
                bytes[5] = order;
            }
            let _ = interpreter(&bytes);
        }
    }
}
