//! Checks made before booting, for inputs the kernel would only reject late and obscurely.
//!
//! An initrd that is neither an initramfs nor a ramdisk image makes Linux print
//! "Initramfs unpacking failed: invalid magic at start of compressed archive" and panic
//! much later with "No working init found" (or "VFS: Unable to mount root fs"), seconds into
//! a TCG boot: so domboot looks at the first bytes of each one first.

use std::path::PathBuf;

/// An initrd the kernel could not unpack; `run` exits with [`super::EXIT_BAD_INITRD`].
#[derive(Debug)]
pub struct BadInitrd {
    pub path: PathBuf,
    /// What it starts with instead.
    pub why: String,
}

impl std::fmt::Display for BadInitrd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: not an initramfs: {}; the kernel unpacks cpio archives (newc), plain or \
             compressed with gzip, bzip2, lzma, xz, lzo, lz4 or zstd, and loads ext2, \
             squashfs, cramfs or romfs ramdisk images (make one with `domboot initrd`)",
            self.path.display(),
            self.why
        )
    }
}

impl std::error::Error for BadInitrd {}

/// Starts of what the kernel's initramfs unpacker accepts (`init/initramfs.c`,
/// `lib/decompress.c`), with names for the message.
const ARCHIVES: &[(&[u8], &str)] = &[
    (b"070701", "cpio (newc)"),
    (b"070702", "cpio (crc)"),
    (b"070707", "cpio (odc)"),
    (b"\x1f\x8b", "gzip"),
    (b"\x1f\x9e", "gzip"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x89LZO", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    // Ramdisk images the kernel loads as /dev/ram0 (init/do_mounts_rd.c).
    (b"hsqs", "squashfs"),
    (b"\x45\x3d\xcd\x28", "cramfs"),
    (b"-rom1fs-", "romfs"),
];

/// Fails on an initrd the kernel could not unpack, naming the file and what it starts with.
pub fn check_initrds(image: &domboot_builder::DomainImage) -> Result<(), BadInitrd> {
    for initrd in &image.initrds {
        check(&initrd.data).map_err(|why| BadInitrd {
            path: initrd.path.clone(),
            why,
        })?;
    }
    Ok(())
}

fn check(data: &[u8]) -> Result<(), String> {
    // The unpacker skips zero padding between archives, in 4-byte steps.
    let start = data.iter().position(|&b| b != 0).unwrap_or(data.len()) & !3;
    let rest = &data[start..];
    if rest.is_empty() || ARCHIVES.iter().any(|(magic, _)| rest.starts_with(magic)) {
        return Ok(());
    }
    // ext2/3/4: the superblock magic 0xEF53 at offset 1024 + 56.
    if data.get(1080..1082) == Some(&[0x53, 0xef]) {
        return Ok(());
    }
    let head: Vec<String> = rest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let known = [
        (&b"\x89PNG"[..], "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"\x7fELF", "an ELF executable"),
        (b"PK\x03\x04", "a zip archive"),
        (b"MZ", "a PE/EFI executable"),
        (b"#!", "a script"),
    ];
    let what = known
        .iter()
        .find(|(m, _)| rest.starts_with(m))
        .map(|(_, n)| format!(" ({n})"))
        .unwrap_or_default();
    Err(format!(
        "at byte {start} it starts with {}{what}",
        head.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn archives_pass_and_pictures_fail() {
        assert!(check(b"070701000000").is_ok());
        assert!(check(b"\0\0\0\0\0\0\0\0\x1f\x8b\x08").is_ok());
        assert!(check(b"\x28\xb5\x2f\xfd....").is_ok());
        assert!(check(b"").is_ok());
        let mut ext = vec![0u8; 2048];
        ext[0] = 1;
        ext[1080..1082].copy_from_slice(&[0x53, 0xef]);
        assert!(check(&ext).is_ok());
        let e = check(b"\x89PNG\r\n\x1a\n\0\0").unwrap_err();
        assert_eq!(
            e,
            "at byte 0 it starts with 89 50 4e 47 0d 0a 1a 0a (a PNG image)"
        );
    }
}
