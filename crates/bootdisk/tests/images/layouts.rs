//! The disk layouts the tests boot from: each a real image built with the real tools, and
//! what a correct reader must list for it.
#![allow(dead_code)]

use super::{Tree, ext4, fat, gpt_disk, iso, kernel, mbr_disk, uki};
use std::path::{Path, PathBuf};

/// What the listing must show for one entry.
pub struct Want {
    pub title: &'static str,
    pub partition: u32,
    pub kernel: &'static str,
    pub initrds: &'static [&'static str],
    pub cmdline: &'static str,
}

pub struct Layout {
    pub disk: PathBuf,
    pub entries: Vec<Want>,
    pub default: usize,
}

const fn want(
    title: &'static str,
    partition: u32,
    kernel: &'static str,
    initrds: &'static [&'static str],
    cmdline: &'static str,
) -> Want {
    Want {
        title,
        partition,
        kernel,
        initrds,
        cmdline,
    }
}

/// Distinct initrd contents, so a test can tell which one was loaded.
pub fn initrd_bytes(name: &str) -> Vec<u8> {
    format!("initrd {name}\n").repeat(64).into_bytes()
}

/// The command line inside the UKI of `gpt_bls`.
pub const UKI_CMDLINE: &str = "console=ttyS0 panic=-1 from-the-uki";

/// GPT with an EFI system partition (FAT32) holding Boot Loader Spec entries, a loader.conf
/// default, a UKI and an .efi file that is not one.
pub fn gpt_bls(dir: &Path) -> Layout {
    let k = kernel();
    let tree = Tree::new()
        .text("/loader/loader.conf", "timeout 3\n# the older kernel is pinned\ndefault debian-6.1.0-9*\n")
        .text(
            "/loader/entries/debian-6.1.0-10-amd64.conf",
            "title Debian GNU/Linux 12 (6.1.0-10)\nversion 6.1.0-10-amd64\nmachine-id 0123456789abcdef0123456789abcdef\n\
             linux /debian/vmlinuz-10\ninitrd /debian/initrd-10.img\noptions root=/dev/vda2 ro quiet\n",
        )
        .text(
            "/loader/entries/debian-6.1.0-9-amd64.conf",
            "# BLS entry\ntitle Debian GNU/Linux 12 (6.1.0-9)\nversion 6.1.0-9-amd64\nlinux /debian/vmlinuz-9\n\
             initrd /debian/ucode.img\ninitrd /debian/initrd-9.img\noptions root=/dev/vda2 ro\noptions console=ttyS0 panic=-1\n",
        )
        .text(
            "/loader/entries/zz-recovery.conf",
            "title Recovery\nsort-key a-recovery\nlinux /debian/vmlinuz-9\ninitrd /debian/initrd-9.img\noptions single\n",
        )
        .copy("/debian/vmlinuz-10", &k)
        .copy("/debian/vmlinuz-9", &k)
        .bytes("/debian/initrd-10.img", &initrd_bytes("10"))
        .bytes("/debian/initrd-9.img", &initrd_bytes("9"))
        .bytes("/debian/ucode.img", &initrd_bytes("ucode"))
        .copy(
            "/EFI/Linux/debian-6.1.0-57.efi",
            &uki(dir, "uki57", &k, &initrd_bytes("uki"), UKI_CMDLINE),
        )
        .bytes("/EFI/Linux/debian-6.1.0-8.efi", b"MZ not a UKI: systemd-boot skips it");
    let esp = fat(dir, "esp", &tree, 64, 32);
    let disk = gpt_disk(dir, "gpt-bls", &[(Some(&esp), "ef00", "EFI system")]);
    Layout {
        disk,
        entries: vec![
            want(
                "Recovery",
                1,
                "/debian/vmlinuz-9",
                &["/debian/initrd-9.img"],
                "single",
            ),
            want(
                "Debian GNU/Linux 12 (6.1.0-10)",
                1,
                "/debian/vmlinuz-10",
                &["/debian/initrd-10.img"],
                "root=/dev/vda2 ro quiet",
            ),
            want(
                "Debian GNU/Linux 12 (6.1.0-9)",
                1,
                "/debian/vmlinuz-9",
                &["/debian/ucode.img", "/debian/initrd-9.img"],
                "root=/dev/vda2 ro console=ttyS0 panic=-1",
            ),
            want(
                "Debian GNU/Linux 12 (bookworm) (6.1.0-57-cloud-amd64)",
                1,
                "/EFI/Linux/debian-6.1.0-57.efi",
                &[],
                UKI_CMDLINE,
            ),
        ],
        default: 2,
    }
}

pub const GRUB_CFG: &str = include_str!("grub.cfg");

/// GPT with a BIOS boot partition and an ext4 root holding a Debian-style grub.cfg
/// (variables, a submenu, a default inside it), the kernel under /boot and symlinks to it.
pub fn gpt_grub(dir: &Path) -> Layout {
    let tree = Tree::new()
        .text("/boot/grub/grub.cfg", GRUB_CFG)
        .copy("/boot/vmlinuz-6.1.0-57-cloud-amd64", &kernel())
        .bytes("/boot/initrd.img-6.1.0-57-cloud-amd64", &initrd_bytes("57"))
        .symlink("/vmlinuz", "boot/vmlinuz-6.1.0-57-cloud-amd64")
        .symlink("/initrd.img", "boot/initrd.img-6.1.0-57-cloud-amd64")
        .symlink("/loop1", "loop2")
        .symlink("/loop2", "/loop1");
    let root = ext4(dir, "root", &tree, 32);
    let disk = gpt_disk(
        dir,
        "gpt-grub",
        &[(None, "ef02", "BIOS boot"), (Some(&root), "8300", "root")],
    );
    const K: &str = "/boot/vmlinuz-6.1.0-57-cloud-amd64";
    const I: &[&str] = &["/boot/initrd.img-6.1.0-57-cloud-amd64"];
    Layout {
        disk,
        entries: vec![
            want(
                "Debian GNU/Linux",
                2,
                K,
                I,
                "root=UUID=1234 ro console=ttyS0 panic=-1 quiet",
            ),
            want(
                "Debian GNU/Linux, with Linux 6.1.0-57-cloud-amd64",
                2,
                "/vmlinuz",
                &["/initrd.img"],
                "root=UUID=1234 ro console=ttyS0 panic=-1",
            ),
            want(
                "Debian GNU/Linux, with Linux 6.1.0-57-cloud-amd64 (recovery mode)",
                2,
                K,
                I,
                "root=UUID=1234 ro single console=ttyS0 panic=-1",
            ),
            want("Symlink loop", 2, "/loop1", &[], "loop"),
        ],
        default: 2,
    }
}

/// MBR (parted) with a FAT16 primary partition holding GRUB legacy's menu.lst and an ext4
/// logical partition (5) holding the kernel and extlinux.conf.
pub fn mbr_extlinux_menulst(dir: &Path) -> Layout {
    let fat_tree = Tree::new().text("/boot/grub/menu.lst", include_str!("menu.lst"));
    let p1 = fat(dir, "p1", &fat_tree, 16, 16);
    let tree = Tree::new()
        .text(
            "/boot/extlinux/extlinux.conf",
            include_str!("extlinux.conf"),
        )
        .copy("/boot/vmlinuz", &kernel())
        .bytes("/boot/initrd.img", &initrd_bytes("mbr"));
    let p5 = ext4(dir, "logical", &tree, 24);
    let disk = mbr_disk(dir, "mbr", &[&p1], &[&p5]);
    const K: &str = "/boot/vmlinuz";
    const I: &[&str] = &["/boot/initrd.img"];
    Layout {
        disk,
        entries: vec![
            want(
                "Debian (extlinux)",
                5,
                K,
                I,
                "root=/dev/sda5 ro console=ttyS0 panic=-1",
            ),
            want(
                "Debian rescue",
                5,
                K,
                I,
                "root=/dev/sda5 ro single console=ttyS0 panic=-1",
            ),
            want(
                "Debian GNU/Linux, kernel 6.1.0-57-cloud-amd64",
                5,
                K,
                I,
                "root=/dev/sda5 ro console=ttyS0 panic=-1",
            ),
            want(
                "Debian GNU/Linux, kernel 6.1.0-57-cloud-amd64 (single-user mode)",
                5,
                K,
                I,
                "root=/dev/sda5 ro single console=ttyS0 panic=-1",
            ),
        ],
        default: 1,
    }
}

/// An ISO9660 (Rock Ridge + Joliet) laid out like Debian's installer: grub.cfg and an
/// isolinux.cfg that includes its menus.
pub fn iso_installer(dir: &Path) -> Layout {
    let tree = Tree::new()
        .text("/boot/grub/grub.cfg", include_str!("iso-grub.cfg"))
        .text(
            "/isolinux/isolinux.cfg",
            "path\ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n",
        )
        .text(
            "/isolinux/menu.cfg",
            "menu hshift 4\nmenu width 70\ninclude stdmenu.cfg\ninclude txt.cfg\n",
        )
        .text("/isolinux/stdmenu.cfg", "menu background splash.png\n")
        .text("/isolinux/txt.cfg", include_str!("txt.cfg"))
        .copy("/install.amd/vmlinuz", &kernel())
        .bytes("/install.amd/initrd.gz", &initrd_bytes("installer"))
        .symlink("/loop", "loop");
    let disk = iso(dir, "installer", &tree);
    const K: &str = "/install.amd/vmlinuz";
    const I: &[&str] = &["/install.amd/initrd.gz"];
    Layout {
        disk,
        entries: vec![
            want(
                "Install",
                0,
                K,
                I,
                "vga=788 --- quiet console=ttyS0 panic=-1",
            ),
            want(
                "Expert install",
                0,
                K,
                I,
                "priority=low vga=788 --- console=ttyS0 panic=-1",
            ),
            want(
                "Install",
                0,
                K,
                I,
                "vga=788 --- quiet console=ttyS0 panic=-1",
            ),
            want(
                "Expert install",
                0,
                K,
                I,
                "priority=low vga=788 --- console=ttyS0 panic=-1",
            ),
        ],
        default: 0,
    }
}

/// A FAT12 filesystem on the whole disk (no partition table) with syslinux.cfg.
pub fn whole_disk_fat12(dir: &Path) -> Layout {
    let tree = Tree::new()
        .text(
            "/syslinux.cfg",
            "DEFAULT second\nLABEL first\n  KERNEL vmlinuz\n  APPEND console=ttyS0\nLABEL second\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND console=ttyS0 quiet\n",
        )
        .bytes("/VMLINUZ", b"not a kernel, just listed")
        .bytes("/initrd.img", &initrd_bytes("fat12"));
    let disk = fat(dir, "fat12", &tree, 2, 12);
    Layout {
        disk,
        entries: vec![
            want("first", 0, "/vmlinuz", &[], "console=ttyS0"),
            want(
                "second",
                0,
                "/vmlinuz",
                &["/initrd.img"],
                "console=ttyS0 quiet",
            ),
        ],
        default: 1,
    }
}
