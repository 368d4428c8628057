//! Finds the boot entries on every partition, in the order a distribution's boot loader
//! would offer them: BLS type #1 entries and UKIs (systemd-boot, and GRUB's `blscfg`),
//! then grub.cfg, extlinux/syslinux/isolinux, and GRUB legacy's menu.lst. The default is
//! the first configuration's (loader.conf's `default` for BLS).

use crate::entries::{self, BootEntry, EntryKind, Menu, bls, version};
use crate::error::{Error, Result};
use crate::image::DiskImage;

const BLS_DIRS: &[&str] = &["/loader/entries", "/boot/loader/entries"];
const LOADER_CONFS: &[&str] = &["/loader/loader.conf", "/boot/loader/loader.conf"];
const UKI_DIRS: &[&str] = &["/EFI/Linux", "/boot/EFI/Linux"];
const GRUB: &[&str] = &[
    "/boot/grub/grub.cfg",
    "/grub/grub.cfg",
    "/boot/grub2/grub.cfg",
    "/grub2/grub.cfg",
    "/EFI/debian/grub.cfg",
    "/EFI/BOOT/grub.cfg",
    // Debian's netboot tree (a TFTP root, or an image made of one).
    "/debian-installer/amd64/grub/grub.cfg",
];
const EXTLINUX: &[&str] = &[
    "/boot/extlinux/extlinux.conf",
    "/extlinux/extlinux.conf",
    "/extlinux.conf",
    "/boot/syslinux/syslinux.cfg",
    "/syslinux/syslinux.cfg",
    "/syslinux.cfg",
    "/isolinux/isolinux.cfg",
    "/boot/isolinux/isolinux.cfg",
    "/isolinux.cfg",
    // PXELINUX reads the same syntax; netboot trees ship it.
    "/pxelinux.cfg/default",
];
const MENU_LST: &[&str] = &[
    "/boot/grub/menu.lst",
    "/grub/menu.lst",
    "/boot/grub/grub.conf",
    "/grub/grub.conf",
];

pub fn entries(image: &mut DiskImage) -> Result<(Vec<BootEntry>, Option<usize>)> {
    let numbers = searched(image)?;
    let mut menus: Vec<Menu> = Vec::new();
    menus.push(bls_and_uki(image, &numbers)?);
    for (kind, paths) in [
        (EntryKind::Grub, GRUB),
        (EntryKind::Extlinux, EXTLINUX),
        (EntryKind::MenuLst, MENU_LST),
    ] {
        for &n in &numbers {
            if let Some(menu) = first_config(image, n, kind, paths)? {
                menus.push(menu);
            }
        }
    }
    let mut all = Vec::new();
    let mut default = None;
    for menu in menus {
        if default.is_none() {
            default = menu.default.map(|d| d + all.len());
        }
        all.extend(menu.entries);
    }
    if all.is_empty() {
        let labels: Vec<String> = numbers
            .iter()
            .filter_map(|n| image.partitions().find(|p| p.number == *n))
            .map(|p| p.label())
            .collect();
        // Partitions skipped because no supported filesystem is on them (LVM, LUKS,
        // btrfs, XFS, ...): say so, the boot files may be there.
        let skipped: Vec<String> = image
            .partitions()
            .filter(|p| p.number != 0 && !numbers.contains(&p.number))
            .map(|p| p.label())
            .collect();
        let mut searched = if labels.is_empty() {
            "no readable filesystem".to_string()
        } else {
            labels.join(", ")
        };
        if !skipped.is_empty() {
            searched.push_str(&format!(
                "; no ext2/3/4, FAT or ISO9660 filesystem on {}",
                skipped.join(", ")
            ));
        }
        return Err(Error::NoEntries {
            image: image.path().to_path_buf(),
            looked: "loader/entries, EFI/Linux, grub.cfg, extlinux.conf, syslinux.cfg, isolinux.cfg, menu.lst".into(),
            searched,
        });
    }
    Ok((all, default))
}

/// Partitions that hold a filesystem: the whole disk when it has one (then a partition
/// starting at 0, the same filesystem seen through an isohybrid MBR, is left out), and
/// every partition. An unreadable filesystem is an error: an image the user wants to boot
/// from should not be half-read silently.
fn searched(image: &mut DiskImage) -> Result<Vec<u32>> {
    let parts: Vec<(u32, u64)> = image.partitions().map(|p| (p.number, p.start)).collect();
    let whole = image.filesystem(0)?.is_some();
    let mut out = Vec::new();
    for (n, start) in parts {
        if (n == 0 && !whole) || (n != 0 && whole && start == 0) {
            continue;
        }
        if image.filesystem(n)?.is_some() {
            out.push(n);
        }
    }
    Ok(out)
}

fn config(image: &mut DiskImage, n: u32, path: &str) -> Result<Option<String>> {
    let limit = image.limits.config;
    Ok(image
        .read_if_present(n, path, limit, "a configuration file")?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

fn bls_and_uki(image: &mut DiskImage, numbers: &[u32]) -> Result<Menu> {
    let (mut entries, pattern) = bls_entries(image, numbers)?;
    entries.extend(ukis(image, numbers)?);
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e.id.as_deref().unwrap_or(""))
        .collect();
    let default = bls::default_index(&ids, pattern.as_deref());
    Ok(Menu { entries, default })
}

/// The type #1 entries of every partition in the specification's order, and the first
/// loader.conf `default` pattern.
fn bls_entries(image: &mut DiskImage, numbers: &[u32]) -> Result<(Vec<BootEntry>, Option<String>)> {
    let mut found = Vec::new();
    let mut pattern = None;
    for &n in numbers {
        for conf in LOADER_CONFS {
            if let Some(text) = config(image, n, conf)? {
                pattern = pattern.or(bls::loader_default(&text));
            }
        }
        for dir in BLS_DIRS {
            for name in image.list(n, dir)? {
                let Some(id) = name.strip_suffix(".conf") else {
                    continue;
                };
                let path = format!("{dir}/{name}");
                let Some(text) = config(image, n, &path)? else {
                    continue;
                };
                if let Some(mut e) = bls::parse_entry(id, &text) {
                    e.entry.source = format!("{}: {path}", label(image, n));
                    e.entry.partition = Some(n);
                    found.push(e);
                }
            }
        }
    }
    bls::sort(&mut found);
    let mut entries: Vec<BootEntry> = found.into_iter().map(|e| e.entry).collect();
    let variables =
        |e: &BootEntry| e.cmdline.contains('$') || e.initrds.iter().any(|i| i.starts_with('$'));
    if entries.iter().any(variables) {
        let env = grubenv(image, numbers)?.unwrap_or_default();
        for e in &mut entries {
            e.cmdline = bls::expand_grubenv(&e.cmdline, &env);
            // An initrd variable names initrds (often none); one without a value goes.
            e.initrds = e
                .initrds
                .iter()
                .flat_map(|i| {
                    let expanded = if i.starts_with('$') {
                        bls::expand_grubenv(i, &env)
                    } else {
                        i.clone()
                    };
                    expanded
                        .split_whitespace()
                        .filter(|w| !w.starts_with('$'))
                        .map(entries::absolute)
                        .collect::<Vec<_>>()
                })
                .collect();
        }
    }
    Ok((entries, pattern))
}

/// The first GRUB environment block found (where `$kernelopts` lives).
fn grubenv(image: &mut DiskImage, numbers: &[u32]) -> Result<Option<String>> {
    for &n in numbers {
        for path in [
            "/grub2/grubenv",
            "/boot/grub2/grubenv",
            "/grub/grubenv",
            "/boot/grub/grubenv",
        ] {
            if let Some(text) = config(image, n, path)? {
                return Ok(Some(text));
            }
        }
    }
    Ok(None)
}

/// The UKIs (type #2 entries) of every partition, newest file name first.
fn ukis(image: &mut DiskImage, numbers: &[u32]) -> Result<Vec<BootEntry>> {
    let mut ukis = Vec::new();
    for &n in numbers {
        for dir in UKI_DIRS {
            for name in image.list(n, dir)? {
                if !name.to_ascii_lowercase().ends_with(".efi") {
                    continue;
                }
                let path = format!("{dir}/{name}");
                let limit = image.limits.file;
                let bytes = image.read(n, &path, limit, "a UKI")?;
                // systemd-boot lists only PE files with a .linux section here.
                let Some((title, cmdline)) = uki_details(bytes) else {
                    continue;
                };
                let mut e = BootEntry::new(EntryKind::Uki, &title);
                e.kernel = path;
                e.cmdline = cmdline;
                e.id = Some(name.clone());
                e.partition = Some(n);
                e.source = format!("{}: {dir}", label(image, n));
                ukis.push(e);
            }
        }
    }
    ukis.sort_by(|a, b| {
        version::compare(b.id.as_deref().unwrap_or(""), a.id.as_deref().unwrap_or(""))
    });
    Ok(ukis)
}

/// A UKI's title ("PRETTY_NAME (uname)", as systemd-boot shows it) and embedded command
/// line; None when the file is not a UKI.
fn uki_details(bytes: Vec<u8>) -> Option<(String, String)> {
    use domboot_formats::{Details, LoadContext, Loader, pe::PeLoader};
    let loaded = PeLoader
        .load(&bytes::Bytes::from(bytes), &LoadContext::default())
        .ok()?;
    let Details::Uki(uki) = loaded.details else {
        return None;
    };
    let title = match (&uki.os_name, &uki.uname) {
        (Some(os), Some(v)) => format!("{os} ({v})"),
        (Some(os), None) => os.clone(),
        (None, Some(v)) => v.clone(),
        (None, None) => "Linux".to_string(),
    };
    Some((title, uki.cmdline.clone().unwrap_or_default()))
}

fn label(image: &DiskImage, n: u32) -> String {
    image
        .partitions()
        .find(|p| p.number == n)
        .map_or_else(|| format!("partition {n}"), |p| p.label())
}

/// The menu of the first of `paths` present on partition `n`, its entries' files located.
fn first_config(
    image: &mut DiskImage,
    n: u32,
    kind: EntryKind,
    paths: &[&str],
) -> Result<Option<Menu>> {
    for path in paths {
        let Some(text) = config(image, n, path)? else {
            continue;
        };
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let mut include_error = None;
        // Relative includes: from the configuration's directory, else from the root
        // (PXELINUX's working directory is the TFTP root, not pxelinux.cfg/).
        let mut include = |p: &str| -> Option<String> {
            let tries = if p.starts_with('/') {
                vec![p.to_string()]
            } else {
                vec![format!("{dir}/{p}"), format!("/{p}")]
            };
            for p in tries {
                match config(image, n, &entries::normalize(&p)) {
                    Ok(Some(t)) => return Some(t),
                    Ok(None) => {}
                    Err(e) => {
                        include_error.get_or_insert(e);
                        return None;
                    }
                }
            }
            None
        };
        let parsed = match kind {
            EntryKind::Grub => entries::grub::parse(&text, &mut include),
            EntryKind::Extlinux => entries::extlinux::parse(&text, &mut include),
            _ => entries::menulst::parse(&text),
        };
        if let Some(e) = include_error {
            return Err(e);
        }
        let mut menu = parsed.map_err(|e| Error::Filesystem {
            at: image.location(n, Some(path)),
            reason: e.0,
        })?;
        for e in &mut menu.entries {
            e.source = format!("{}: {path}", label(image, n));
            locate(image, e, n, &dir);
        }
        return Ok(Some(menu));
    }
    Ok(None)
}

/// Chooses the partition and the paths an entry's files are read from: the device the
/// configuration named, else the configuration's own partition, else (a separate /boot
/// found by UUID) the partition that has the kernel. Relative paths (syslinux) are taken
/// from the configuration's directory first, then from the root.
fn locate(image: &mut DiskImage, e: &mut BootEntry, config_partition: u32, dir: &str) {
    let relative = !e.kernel.starts_with('/');
    let resolve = |p: &str, base: &str| {
        entries::normalize(&if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{base}/{p}")
        })
    };
    let mut candidates: Vec<u32> = e.partition.into_iter().chain([config_partition]).collect();
    let others: Vec<u32> = image
        .partitions()
        .map(|p| p.number)
        .filter(|n| !candidates.contains(n))
        .collect();
    candidates.extend(others);
    let bases: &[&str] = if relative { &[dir, ""] } else { &[""] };
    for &n in &candidates {
        for base in bases {
            let kernel = resolve(&e.kernel, base);
            if image.exists(n, &kernel) {
                e.kernel = kernel;
                e.initrds = e.initrds.iter().map(|i| resolve(i, base)).collect();
                e.partition = Some(n);
                return;
            }
        }
    }
    // Not found anywhere: keep the configuration's view, loading it will say what is missing.
    e.kernel = resolve(&e.kernel, if relative { dir } else { "" });
    e.initrds = e
        .initrds
        .iter()
        .map(|i| resolve(i, if relative { dir } else { "" }))
        .collect();
    e.partition = Some(e.partition.unwrap_or(config_partition));
}
