//! Checks made before booting, for inputs the kernel would only reject late and obscurely.
//!
//! An initrd that is neither an initramfs nor a ramdisk image makes Linux print
//! "Initramfs unpacking failed: invalid magic at start of compressed archive" and panic
//! much later with "No working init found" (or "VFS: Unable to mount root fs"), seconds into
//! a TCG boot: so domboot looks at the first bytes of each one first.
//!
//! Kernel options that turn off the IOAPIC or the local APIC leave a guest of domboot's
//! ACPI platform without interrupts (see [`interrupt_options_warning`]): the run goes on,
//! with a warning that says why its console falls silent and what to do instead.

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

/// Kernel options (kernel-parameters.txt) after which Linux takes no interrupt through the
/// IOAPIC, and whether they also take the local APIC (its timer) away.
const APIC_OFF: &[(&str, bool)] = &[
    ("noapic", false),
    // "Tells an SMP kernel to act as a UP kernel, and disable the IO APIC".
    ("nosmp", false),
    ("maxcpus=0", false),
    ("nolapic", true),
    ("disableapic", true),
];

/// Prints [`interrupt_options_warning`]'s warning for a Linux run on KVM with ACPI tables.
pub fn warn_interrupt_options(cmdline: &str, accel: super::Accel, acpi: bool) {
    if matches!(accel, super::Accel::Kvm)
        && acpi
        && let Some(w) = interrupt_options_warning(cmdline)
    {
        eprintln!("domboot: warning: {w}");
    }
}

/// The warning for a KVM run with ACPI whose kernel command line turns the IOAPIC off.
///
/// Why: domboot's ACPI tables describe a hardware-reduced platform (as QEMU's microvm
/// does), on which Linux uses no 8259 PIC; its ISA interrupts go through the IOAPIC only.
/// Without it COM1's interrupt reaches nothing: the kernel's own messages still appear
/// (printk polls the UART), but everything user space prints is never sent, and the
/// guest looks stuck after "Run /init". Without the local APIC it has no timer either
/// and hangs. Measured in the nested bench with Debian's cloud kernel: `noapic` and
/// `nosmp` lost /init's output, `nolapic` hung; all three ran fine with `--no-acpi`,
/// whose MP table gives Linux the 8259s. Under TCG QEMU's firmware tables describe a PC.
pub fn interrupt_options_warning(cmdline: &str) -> Option<String> {
    // Words after "--" are init's, not the kernel's.
    let words = cmdline.split_whitespace().take_while(|w| *w != "--");
    let mut off = Vec::new();
    let mut no_timer = false;
    for w in words {
        if let Some(&(name, lapic)) = APIC_OFF.iter().find(|(name, _)| *name == w) {
            if !off.contains(&name) {
                off.push(name);
            }
            no_timer |= lapic;
        }
    }
    if off.is_empty() {
        return None;
    }
    Some(format!(
        "`{}` on the kernel command line: domboot's ACPI platform is hardware-reduced (no \
         8259 PIC, as on QEMU's microvm), so without the IOAPIC the serial port's interrupt \
         goes nowhere and everything the guest's user space prints is lost{}; add --no-acpi \
         (an MP table and the 8259s; the guest then halts instead of powering off) or drop \
         the option",
        off.join(" "),
        if no_timer {
            ", and without the local APIC it has no timer and hangs"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::{check, interrupt_options_warning};

    #[test]
    fn apic_options_warn_once_each_and_only_as_kernel_words() {
        assert_eq!(interrupt_options_warning("console=ttyS0 quiet"), None);
        // Init's arguments and look-alikes are not the kernel's options.
        assert_eq!(interrupt_options_warning("quiet -- noapic"), None);
        assert_eq!(interrupt_options_warning("noapic=1 xnosmp maxcpus=2"), None);
        let w = interrupt_options_warning("noapic console=ttyS0 noapic nosmp").unwrap();
        assert!(
            w.starts_with("`noapic nosmp` on the kernel command line"),
            "{w}"
        );
        assert!(w.contains("--no-acpi") && !w.contains("timer"), "{w}");
        let w = interrupt_options_warning("maxcpus=0 nolapic").unwrap();
        assert!(w.starts_with("`maxcpus=0 nolapic`"), "{w}");
        assert!(w.contains("no timer and hangs"), "{w}");
    }

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
