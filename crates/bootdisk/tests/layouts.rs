//! Disk images built with the real tools (sgdisk, parted, mkfs.ext4, mkfs.vfat + mcopy,
//! xorriso) list the boot entries their configurations define: titles, order, default,
//! partitions, paths and command lines; and the chosen entry's kernel and initrds read
//! back byte for byte.

mod images;

use domboot_bootdisk::{BootEntry, DiskImage, Selector};
use images::layouts::{self, Layout};

fn check(layout: &Layout) -> Vec<BootEntry> {
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let (entries, default) = image.entries().unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{:?} p{:?} {} {:?} {:?}",
                e.title, e.partition, e.kernel, e.initrds, e.cmdline
            )
        })
        .collect();
    let want: Vec<String> = layout
        .entries
        .iter()
        .map(|w| {
            format!(
                "{:?} p{:?} {} {:?} {:?}",
                w.title,
                Some(w.partition),
                w.kernel,
                w.initrds,
                w.cmdline
            )
        })
        .collect();
    assert_eq!(got, want, "{}", layout.disk.display());
    assert_eq!(
        default,
        Some(layout.default),
        "default of {}",
        layout.disk.display()
    );
    entries
}

/// The default entry's files are the ones the layout put there.
fn loads_default(layout: &Layout, kernel: &[u8], initrds: &[Vec<u8>]) {
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let entry = image.select(&Selector::Default).unwrap();
    let (k, i) = image.load(&entry).unwrap();
    assert!(k == kernel, "kernel of {:?} differs", entry.title);
    assert_eq!(&i, initrds, "initrds of {:?}", entry.title);
}

#[test]
fn gpt_fat32_bls_entries_and_ukis() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::gpt_bls(dir.path());
    let entries = check(&layout);
    assert_eq!(entries[1].id.as_deref(), Some("debian-6.1.0-10-amd64"));
    assert_eq!(entries[3].kind.name(), "uki");
    let kernel = std::fs::read(images::kernel()).unwrap();
    loads_default(
        &layout,
        &kernel,
        &[layouts::initrd_bytes("ucode"), layouts::initrd_bytes("9")],
    );
}

#[test]
fn gpt_ext4_grub_cfg_with_variables_submenu_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::gpt_grub(dir.path());
    let entries = check(&layout);
    assert_eq!(entries[0].id.as_deref(), Some("gnulinux-simple-1234"));
    let kernel = std::fs::read(images::kernel()).unwrap();
    loads_default(&layout, &kernel, &[layouts::initrd_bytes("57")]);
    // The entry through the /vmlinuz symlink reads the same kernel.
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let (k, i) = image.load(&entries[1]).unwrap();
    assert!(k == kernel);
    assert_eq!(i, vec![layouts::initrd_bytes("57")]);
}

#[test]
fn mbr_logical_ext4_extlinux_and_fat16_menu_lst() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::mbr_extlinux_menulst(dir.path());
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let numbers: Vec<u32> = image.partitions().map(|p| p.number).collect();
    assert_eq!(numbers, [0, 1, 5], "whole disk, primary 1, logical 5");
    check(&layout);
    let kernel = std::fs::read(images::kernel()).unwrap();
    loads_default(&layout, &kernel, &[layouts::initrd_bytes("mbr")]);
    let named = image
        .select(&Selector::Named(
            "Debian GNU/Linux, kernel 6.1.0-57-cloud-amd64".into(),
        ))
        .unwrap();
    assert_eq!(named.kind.name(), "menu.lst");
    assert_eq!(named.source, "partition 1 (mbr): /boot/grub/menu.lst");
}

#[test]
fn iso9660_installer_grub_and_isolinux_with_includes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::iso_installer(dir.path());
    check(&layout);
    let kernel = std::fs::read(images::kernel()).unwrap();
    loads_default(&layout, &kernel, &[layouts::initrd_bytes("installer")]);
}

#[test]
fn whole_disk_fat12_syslinux() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::whole_disk_fat12(dir.path());
    check(&layout);
    loads_default(
        &layout,
        b"not a kernel, just listed",
        &[layouts::initrd_bytes("fat12")],
    );
}

#[test]
fn entries_are_chosen_by_index_title_or_id() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::gpt_bls(dir.path());
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let title =
        |image: &mut DiskImage, s: &str| image.select(&Selector::Named(s.into())).map(|e| e.title);
    assert_eq!(title(&mut image, "0").unwrap(), "Recovery");
    assert_eq!(
        title(&mut image, "Debian GNU/Linux 12 (6.1.0-10)").unwrap(),
        "Debian GNU/Linux 12 (6.1.0-10)"
    );
    assert_eq!(
        title(&mut image, "debian-6.1.0-9-amd64").unwrap(),
        "Debian GNU/Linux 12 (6.1.0-9)"
    );
    assert_eq!(title(&mut image, "recovery").unwrap(), "Recovery");
    let err = title(&mut image, "Windows").unwrap_err().to_string();
    assert!(
        err.contains("no boot entry \"Windows\"")
            && err.contains("Recovery")
            && err.contains("gpt-bls.img"),
        "{err}"
    );
    let err = title(&mut image, "17").unwrap_err().to_string();
    assert!(err.contains("there are 4"), "{err}");
}

/// A GPT with 4096-byte sectors (as on 4Kn disks), written by gptman's writer since sgdisk
/// and parted take the sector size from the device; the filesystem is mkfs.vfat's.
#[test]
fn gpt_with_4096_byte_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let tree = images::Tree::new()
        .text(
            "/syslinux/syslinux.cfg",
            "LABEL only\n  MENU LABEL Only entry\n  LINUX /vmlinuz\n  APPEND console=ttyS0\n",
        )
        .bytes("/vmlinuz", b"kernel bytes");
    let fs = images::fat(dir.path(), "fat16", &tree, 16, 16);
    let disk = dir.path().join("4kn.img");
    const SECTOR: u64 = 4096;
    let mut f = std::fs::File::create(&disk).unwrap();
    f.set_len(24 << 20).unwrap();
    let mut gpt = gptman::GPT::new_from(&mut f, SECTOR, [7; 16]).unwrap();
    let start = (1 << 20) / SECTOR;
    gpt[1] = gptman::GPTPartitionEntry {
        partition_type_guid: [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ],
        unique_partition_guid: [9; 16],
        starting_lba: start,
        ending_lba: start + (16 << 20) / SECTOR - 1,
        attribute_bits: 0,
        partition_name: "ESP".into(),
    };
    gpt.write_into(&mut f).unwrap();
    gptman::GPT::write_protective_mbr_into(&mut f, SECTOR).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(&std::fs::read(&fs).unwrap()).unwrap();
    drop(f);
    let mut image = DiskImage::open(&disk).unwrap();
    let p: Vec<(u32, u64, String)> = image
        .partitions()
        .map(|p| (p.number, p.start, p.name.clone()))
        .collect();
    assert_eq!(p, [(0, 0, String::new()), (1, 1 << 20, "ESP".to_string())]);
    let (entries, default) = image.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (
            entries[0].title.as_str(),
            entries[0].partition,
            entries[0].cmdline.as_str()
        ),
        ("Only entry", Some(1), "console=ttyS0")
    );
    assert_eq!(default, Some(0));
    assert_eq!(image.load(&entries[0]).unwrap().0, b"kernel bytes");
}

/// ext2 and ext3 (no extents, indirect blocks) on the whole disk, with a relative symlink
/// chain to the kernel.
#[test]
fn whole_disk_ext2_and_ext3() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = std::fs::read(images::kernel()).unwrap();
    for kind in ["ext2", "ext3"] {
        let tree = images::Tree::new()
            .text(
                "/boot/grub/menu.lst",
                "title Old\nkernel /vmlinuz ro\ninitrd /boot/initrd\n",
            )
            .copy("/boot/vmlinuz-real", &images::kernel())
            .symlink("/boot/vmlinuz-link", "vmlinuz-real")
            .symlink("/vmlinuz", "boot/vmlinuz-link")
            .bytes("/boot/initrd", &layouts::initrd_bytes(kind));
        let disk = images::ext(dir.path(), kind, &tree, 24, kind);
        let mut image = DiskImage::open(&disk).unwrap();
        let entry = image.select(&Selector::Default).unwrap();
        assert_eq!(
            (entry.title.as_str(), entry.partition, entry.kernel.as_str()),
            ("Old", Some(0), "/vmlinuz")
        );
        let (k, i) = image.load(&entry).unwrap();
        assert!(k == kernel, "{kind}: kernel through two symlinks");
        assert_eq!(i, vec![layouts::initrd_bytes(kind)]);
    }
}

/// A hybrid image as xorriso writes for installers: ISO9660 on the whole disk, an MBR whose
/// partition 1 covers the ISO and whose partition 2 is an appended EFI system partition.
#[test]
fn hybrid_iso_with_an_appended_esp() {
    let dir = tempfile::tempdir().unwrap();
    let esp = images::fat(
        dir.path(),
        "esp",
        &images::Tree::new()
            .text(
                "/loader/entries/esp.conf",
                "title From the ESP\nlinux /vmlinuz\noptions esp\n",
            )
            .bytes("/vmlinuz", b"esp kernel"),
        2,
        12,
    );
    let stage = dir.path().join("iso-tree");
    std::fs::create_dir_all(stage.join("isolinux")).unwrap();
    std::fs::write(
        stage.join("isolinux/isolinux.cfg"),
        "LABEL live\n  MENU LABEL Live\n  KERNEL /live/vmlinuz\n  APPEND boot=live\n",
    )
    .unwrap();
    std::fs::create_dir_all(stage.join("live")).unwrap();
    std::fs::write(stage.join("live/vmlinuz"), b"iso kernel").unwrap();
    let iso = dir.path().join("hybrid.iso");
    let esp_arg = esp.to_str().unwrap();
    images::run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-R",
            "-J",
            "-append_partition",
            "2",
            "0xef",
            esp_arg,
            "-o",
            iso.to_str().unwrap(),
            stage.to_str().unwrap(),
        ],
        "xorriso",
    );
    let mut image = DiskImage::open(&iso).unwrap();
    let numbers: Vec<u32> = image.partitions().map(|p| p.number).collect();
    assert!(numbers.contains(&0) && numbers.contains(&2), "{numbers:?}");
    let (entries, default) = image.entries().unwrap();
    let got: Vec<(&str, Option<u32>, &str)> = entries
        .iter()
        .map(|e| (e.title.as_str(), e.partition, e.cmdline.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("From the ESP", Some(2), "esp"),
            ("Live", Some(0), "boot=live")
        ]
    );
    assert_eq!(default, Some(0));
    assert_eq!(image.load(&entries[0]).unwrap().0, b"esp kernel");
    assert_eq!(image.load(&entries[1]).unwrap().0, b"iso kernel");
}

/// RHEL 8 / Fedora 30-33: BLS entries say `options $kernelopts`, grubenv holds the value.
#[test]
fn bls_kernelopts_from_grubenv() {
    let dir = tempfile::tempdir().unwrap();
    let tree = images::Tree::new()
        .text(
            "/loader/entries/rhel-4.18.0.conf",
            "title Red Hat Enterprise Linux (4.18.0)\nversion 4.18.0\nlinux /vmlinuz-4.18.0\ninitrd /initramfs-4.18.0.img $tuned_initrd\noptions $kernelopts $tuned_params\n",
        )
        .text("/grub2/grubenv", "# GRUB Environment Block\nkernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto\n")
        .bytes("/vmlinuz-4.18.0", b"k");
    let boot = images::ext4(dir.path(), "boot", &tree, 8);
    let disk = images::gpt_disk(dir.path(), "rhel", &[(Some(&boot), "8300", "boot")]);
    let (entries, _) = DiskImage::open(&disk).unwrap().entries().unwrap();
    assert_eq!(
        entries[0].cmdline,
        "root=/dev/mapper/rhel-root ro crashkernel=auto $tuned_params"
    );
}
