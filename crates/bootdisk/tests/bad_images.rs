//! Truncated, looping, oversized and corrupt images give an error naming the image, the
//! partition, the path and what is wrong; never a panic or a hang.

mod images;

use domboot_bootdisk::{DiskImage, Selector};
use images::layouts;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

fn entries_error(path: &Path) -> String {
    match DiskImage::open(path).and_then(|mut i| i.entries()) {
        Ok(e) => panic!("{} gave {} entries", path.display(), e.0.len()),
        Err(e) => e.to_string(),
    }
}

fn assert_has(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "{err:?} lacks {p:?}");
    }
}

#[test]
fn truncated_gpt_disk_names_the_partition_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let disk = layouts::gpt_grub(dir.path()).disk;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(5 << 20)
        .unwrap();
    let err = entries_error(&disk);
    assert_has(
        &err,
        &["gpt-grub.img", "GPT", "partition 2", "past the image's end"],
    );
}

#[test]
fn gpt_with_a_bad_primary_header_crc_uses_the_backup_and_with_both_bad_fails() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::gpt_grub(dir.path());
    // The disk GUID lies inside the CRC'd header (LBA 1, offset 56).
    poke(&layout.disk, 512 + 56, b"XXXX");
    let (entries, _) = DiskImage::open(&layout.disk).unwrap().entries().unwrap();
    assert_eq!(
        entries.len(),
        layout.entries.len(),
        "the backup header still describes the disk"
    );
    let len = std::fs::metadata(&layout.disk).unwrap().len();
    poke(&layout.disk, len - 512 + 56, b"XXXX");
    let err = entries_error(&layout.disk);
    assert_has(
        &err,
        &["gpt-grub.img", "corrupt GPT partition table", "hecksum"],
    );
}

#[test]
fn gpt_header_with_a_huge_entry_count_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let disk = layouts::gpt_grub(dir.path()).disk;
    poke(&disk, 512 + 80, &u32::MAX.to_le_bytes());
    let err = entries_error(&disk);
    assert_has(&err, &["gpt-grub.img", "4294967295 partition entries"]);
}

#[test]
fn corrupt_ext4_superblock_names_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let disk = layouts::gpt_grub(dir.path()).disk;
    // Partition 2 starts at 2 MiB; its superblock at +1024. Spoil the inode count (the
    // superblock checksum no longer matches).
    poke(&disk, (2 << 20) + 1024, &[0xff, 0xff, 0xff, 0x7f]);
    let err = entries_error(&disk);
    assert_has(&err, &["gpt-grub.img", "partition 2 (gpt)", "ext2/3/4"]);
}

#[test]
fn symlink_loops_end_with_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::gpt_grub(dir.path());
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let entry = image
        .select(&Selector::Named("Symlink loop".into()))
        .unwrap();
    let err = image.load(&entry).unwrap_err().to_string();
    assert_has(
        &err,
        &[
            "gpt-grub.img",
            "partition 2 (gpt)",
            "/loop1",
            "more than 40 symlinks",
        ],
    );

    let layout = layouts::iso_installer(dir.path());
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let err = image
        .read(0, "/loop", 1 << 20, "a kernel")
        .unwrap_err()
        .to_string();
    assert_has(
        &err,
        &[
            "installer.iso",
            "whole disk",
            "/loop",
            "more than 40 symlinks",
        ],
    );
}

#[test]
fn ext4_symlink_claiming_a_huge_target_is_refused_before_reading() {
    // ext4-view 1.0 allocates a symlink's claimed size before reading its target: fuzz
    // target fs_ext4 found an image claiming 459 GB, whose allocation aborted the process.
    let dir = tempfile::tempdir().unwrap();
    // Longer than 59 bytes: the target is stored in a block, not in the inode.
    let target = format!("/{}", "t".repeat(100));
    let tree = images::Tree::new()
        .text("/vmlinuz", "kernel")
        .symlink("/link", &target)
        .symlink("/via", "/link/x");
    let img = images::ext4(dir.path(), "hugelink", &tree, 8);
    let out = std::process::Command::new("debugfs")
        .args(["-w", "-R", "sif /link size 0x6b00000200"])
        .arg(&img)
        .output()
        .expect("debugfs runs");
    assert!(out.status.success(), "debugfs: {out:?}");
    let mut image = DiskImage::open(&img).unwrap();
    // Read directly, and met on the way through another symlink.
    for path in ["/link", "/via"] {
        let err = image
            .read(0, path, 1 << 20, "a kernel")
            .unwrap_err()
            .to_string();
        assert_has(
            &err,
            &[
                "hugelink.ext4",
                "/link: a symlink whose target claims 459561501184 bytes (at most 4096)",
            ],
        );
    }
    // The rest of the filesystem still reads.
    assert_eq!(
        image.read(0, "/vmlinuz", 1 << 20, "a kernel").unwrap(),
        b"kernel"
    );
}

#[test]
fn files_larger_than_the_limit_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::mbr_extlinux_menulst(dir.path());
    let mut image = DiskImage::open(&layout.disk).unwrap();
    image.limits.file = 1 << 20;
    let entry = image.select(&Selector::Default).unwrap();
    let err = image.load(&entry).unwrap_err().to_string();
    assert_has(
        &err,
        &[
            "mbr.img",
            "partition 5 (mbr)",
            "/boot/vmlinuz",
            "1048576-byte limit for a kernel",
        ],
    );
}

#[test]
fn missing_kernel_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::gpt_grub(dir.path());
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let mut entry = image.select(&Selector::Default).unwrap();
    entry.kernel = "/boot/vmlinuz-nowhere".into();
    let err = image.load(&entry).unwrap_err().to_string();
    assert_has(
        &err,
        &["gpt-grub.img, partition 2 (gpt), /boot/vmlinuz-nowhere: no such file"],
    );
}

#[test]
fn garbage_empty_and_missing_images() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.img");
    let bytes: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, bytes).unwrap();
    assert_has(
        &entries_error(&garbage),
        &[
            "garbage.img",
            "no boot entries found",
            "no readable filesystem",
        ],
    );
    let empty = dir.path().join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    assert_has(
        &entries_error(&empty),
        &["empty.img", "no boot entries found"],
    );
    let err = DiskImage::open(&dir.path().join("absent.img"))
        .err()
        .unwrap()
        .to_string();
    assert_has(&err, &["absent.img", "cannot read the image"]);
}

#[test]
fn iso_truncated_mid_file() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::iso_installer(dir.path());
    let len = std::fs::metadata(&layout.disk).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&layout.disk)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut image = DiskImage::open(&layout.disk).unwrap();
    let outcome = image.entries().and_then(|_| {
        let e = image.select(&Selector::Default)?;
        image.load(&e)
    });
    let err = outcome
        .map(|_| ())
        .expect_err("half an ISO cannot give the whole kernel")
        .to_string();
    assert_has(&err, &["installer.iso", "whole disk"]);
}

/// An MBR whose extended partition chains 300 EBRs, each pointing one sector further.
#[test]
fn long_ebr_chains_are_refused() {
    const LINKS: usize = 300;
    let mut disk = vec![0u8; (LINKS + 2) * 512];
    let mut entry = |sector: usize, slot: usize, sys: u8, start: u32, count: u32| {
        let e = sector * 512 + 446 + 16 * slot;
        disk[e + 4] = sys;
        disk[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
        disk[e + 12..e + 16].copy_from_slice(&count.to_le_bytes());
        disk[sector * 512 + 510..sector * 512 + 512].copy_from_slice(&[0x55, 0xAA]);
    };
    entry(0, 0, 0x05, 1, LINKS as u32);
    for k in 0..LINKS {
        entry(1 + k, 0, 0x83, 0, 1);
        entry(1 + k, 1, 0x05, k as u32 + 1, 1);
    }
    let err = DiskImage::from_bytes(Path::new("chain.img"), disk)
        .err()
        .expect("refused")
        .to_string();
    assert_has(&err, &["chain.img", "MBR", "more than 128 links"]);
}

/// A FAT directory entry pointing at cluster 1 (reserved) made fatfs 0.3.6 panic
/// (found by fuzz/fs_fat): now it is an error naming the image and the partition.
#[test]
fn fat_directory_at_a_reserved_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let tree = images::Tree::new().text("/boot/syslinux.cfg", "LABEL a\n KERNEL /vmlinuz\n");
    let img = images::fat(dir.path(), "fat16", &tree, 16, 16);
    let mut bytes = std::fs::read(&img).unwrap();
    let u16_at = |b: &[u8], o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let root =
        (u16_at(&bytes, 14) + usize::from(bytes[16]) * u16_at(&bytes, 22)) * u16_at(&bytes, 11);
    let entry = (root..root + 16 * 32)
        .step_by(32)
        .find(|&e| &bytes[e..e + 11] == b"BOOT       " && bytes[e + 11] & 0x10 != 0)
        .expect("mcopy wrote a BOOT directory entry");
    bytes[entry + 26..entry + 28].copy_from_slice(&1u16.to_le_bytes());
    std::fs::write(&img, bytes).unwrap();
    let err = entries_error(&img);
    assert_has(&err, &["fat16.fat", "whole disk", "corrupt FAT filesystem"]);
}

/// A FAT directory whose cluster chain loops back on itself through deleted entries:
/// fatfs would iterate forever; the image's read budget stops it with an error.
#[test]
fn fat_directory_cluster_loop_ends() {
    let dir = tempfile::tempdir().unwrap();
    let tree = images::Tree::new().text("/boot/syslinux.cfg", "LABEL a\n KERNEL /vmlinuz\n");
    let img = images::fat(dir.path(), "loop16", &tree, 16, 16);
    let mut b = std::fs::read(&img).unwrap();
    let u16_at = |b: &[u8], o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let (sector, reserved, fats, fat_size) = (
        u16_at(&b, 11),
        u16_at(&b, 14),
        usize::from(b[16]),
        u16_at(&b, 22),
    );
    let root = (reserved + fats * fat_size) * sector;
    let root_size = u16_at(&b, 17) * 32;
    let cluster_size = sector * usize::from(b[13]);
    let entry = (root..root + root_size)
        .step_by(32)
        .find(|&e| &b[e..e + 11] == b"BOOT       " && b[e + 11] & 0x10 != 0)
        .unwrap();
    let cluster = u16_at(&b, entry + 26);
    let data = root + root_size + (cluster - 2) * cluster_size;
    for e in (data..data + cluster_size).step_by(32) {
        b[e] = 0xE5; // deleted
        b[e + 11] = 0x20;
    }
    for f in 0..fats {
        let at = reserved * sector + f * fat_size * sector + cluster * 2;
        b[at..at + 2].copy_from_slice(&(cluster as u16).to_le_bytes()); // points to itself
    }
    std::fs::write(&img, b).unwrap();
    let started = std::time::Instant::now();
    let err = entries_error(&img);
    assert_has(
        &err,
        &["loop16.fat", "whole disk", "metadata probably loops"],
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn gpt_partition_array_crc_is_checked_on_both_copies() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layouts::gpt_grub(dir.path());
    // The first entry's name (offset 56) in the primary array at LBA 2.
    poke(&layout.disk, 1024 + 56, b"Z\0");
    let (entries, _) = DiskImage::open(&layout.disk).unwrap().entries().unwrap();
    assert_eq!(
        entries.len(),
        layout.entries.len(),
        "the backup array still describes the disk"
    );
    // sgdisk puts the backup array (128 entries of 128 bytes) just before the last LBA.
    let len = std::fs::metadata(&layout.disk).unwrap().len();
    poke(&layout.disk, len - 512 - 128 * 128 + 56, b"Z\0");
    let err = entries_error(&layout.disk);
    assert_has(
        &err,
        &[
            "gpt-grub.img",
            "corrupt GPT partition table",
            "partition entry array CRC32",
        ],
    );
}

/// A disk whose only partition holds no filesystem we read: the error says so.
#[test]
fn partitions_without_a_known_filesystem_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank");
    std::fs::write(&blank, vec![0u8; 2 << 20]).unwrap();
    let disk = images::gpt_disk(dir.path(), "lvm", &[(Some(&blank), "8e00", "lvm")]);
    let err = entries_error(&disk);
    assert_has(
        &err,
        &[
            "lvm.img",
            "no boot entries found",
            "no ext2/3/4, FAT or ISO9660 filesystem on partition 1 (gpt)",
        ],
    );
}

/// An MBR whose only partition starts at LBA 0 (isohybrid-style) made mbrman 0.6.1 panic
/// (found by fuzz/disk_table); the table reads, and the partition covers the disk's start.
#[test]
fn mbr_with_its_only_partition_at_lba_0() {
    let mut disk = vec![0u8; 1 << 20];
    disk[446 + 4] = 0x17;
    disk[446 + 12..446 + 16].copy_from_slice(&2048u32.to_le_bytes());
    disk[510..512].copy_from_slice(&[0x55, 0xAA]);
    let image = DiskImage::from_bytes(Path::new("zero.img"), disk.clone()).unwrap();
    let p: Vec<(u32, u64, u64)> = image
        .partitions()
        .map(|p| (p.number, p.start, p.size))
        .collect();
    assert_eq!(p, [(0, 0, 1 << 20), (1, 0, 1 << 20)]);
    // The fuzzer's input: the same, plus a logical partition chain that also starts at 0.
    let crash = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/seeds/disk_table/mbrman-alignment-panic.img"
    ))
    .unwrap();
    let _ = DiskImage::from_bytes(Path::new("crash.img"), crash);
}
