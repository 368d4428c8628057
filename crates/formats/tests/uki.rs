//! A UKI built from a real kernel, initrd and command line the way systemd's documentation
//! builds one with objcopy, unwraps into exactly those three.

use domboot_testkit as support;

use domboot_formats::{Format, FormatError, Loader, open, pe::PeLoader};
use std::path::Path;
use std::process::Command;

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

fn build_uki(dir: &Path, kernel: &Path, initrd: &[u8], cmdline: &str) -> std::path::PathBuf {
    assert!(
        Path::new(STUB).exists(),
        "{STUB} missing: run scripts/setup.sh --install-only (package systemd-boot-efi)"
    );
    std::fs::write(dir.join("initrd"), initrd).unwrap();
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    std::fs::write(
        dir.join("os-release"),
        "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("uname"), "6.1.0-test\n").unwrap();
    let out = dir.join("uki.efi");
    let status = Command::new("objcopy")
        .current_dir(dir)
        .args([
            "--add-section",
            ".osrel=os-release",
            "--change-section-vma",
            ".osrel=0x20000",
            "--add-section",
            ".cmdline=cmdline",
            "--change-section-vma",
            ".cmdline=0x30000",
            "--add-section",
            ".uname=uname",
            "--change-section-vma",
            ".uname=0x40000",
            "--add-section",
        ])
        .arg(format!(".linux={}", kernel.display()))
        .args([
            "--change-section-vma",
            ".linux=0x2000000",
            "--add-section",
            ".initrd=initrd",
            "--change-section-vma",
            ".initrd=0x3000000",
            STUB,
        ])
        .arg(&out)
        .status()
        .expect("objcopy (binutils) runs");
    assert!(status.success(), "objcopy failed");
    out
}

#[test]
fn uki_of_the_debian_kernel_unwraps_into_kernel_initrd_and_cmdline() {
    let k = support::debian_kernel("cloud");
    let dir = tempfile::tempdir().unwrap();
    // A real initramfs-sized blob with no structure the parser could lean on.
    let initrd: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let cmdline = "console=ttyS0 root=/dev/vda1 ro quiet";
    let uki = build_uki(dir.path(), &k.vmlinuz, &initrd, cmdline);

    let chain = open(&uki, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let formats: Vec<Format> = chain.layers.iter().map(|l| l.format).collect();
    assert_eq!(
        formats,
        [Format::Uki, Format::BzImage, Format::Lz4, Format::Elf64]
    );
    let u = chain.uki().unwrap();
    assert_eq!(u.cmdline.as_deref(), Some(cmdline));
    assert_eq!(u.uname.as_deref(), Some("6.1.0-test"));
    assert_eq!(u.os_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    assert_eq!(u.initrd.as_deref(), Some(&initrd[..]));
    assert_eq!(u.initrd_size, Some(initrd.len() as u64));
    assert_eq!(u.pe.machine_name, "x86_64");
    let kernel = std::fs::read(&k.vmlinuz).unwrap();
    assert_eq!(
        &chain.layers[1].data[..],
        &kernel[..],
        ".linux is the kernel byte for byte"
    );
}

#[test]
fn the_bare_stub_is_a_plain_pe() {
    let data = bytes::Bytes::from(std::fs::read(STUB).unwrap());
    assert_eq!(PeLoader.probe(&data), Some(Format::Pe));
    let loaded = PeLoader.load(&data, &Default::default()).unwrap();
    assert!(loaded.inner.is_none());
}

#[test]
fn sections_past_the_end_of_the_file_are_rejected() {
    let k = support::debian_kernel("cloud");
    let dir = tempfile::tempdir().unwrap();
    let uki = build_uki(dir.path(), &k.vmlinuz, b"initrd", "x");
    let full = std::fs::read(&uki).unwrap();
    // Cut the file inside the .linux section.
    let cut = bytes::Bytes::from(full[..full.len() / 2].to_vec());
    let err = PeLoader.load(&cut, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Field {
                field: "section PointerToRawData + size",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("past the end of the file"),
        "{err}"
    );
}
