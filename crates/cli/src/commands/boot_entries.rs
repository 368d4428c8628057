//! `domboot boot-entries IMAGE`: the boot entries a disk image's boot loaders define, in
//! their order, with the default marked; and the `--disk … --bootloader` path of `plan`
//! and `build`, which boots one of them.

use super::boot_args::BootArgs;
use crate::table::Table;
use anyhow::Context;
use domboot_bootdisk::{BootEntry, DiskImage, EntryKind, Selector};
use domboot_builder::DomainImage;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// List the boot entries on a disk image: BLS entries, UKIs, grub.cfg, extlinux,
/// syslinux, isolinux and menu.lst, on MBR or GPT partitions or a whole-disk ext2/3/4,
/// FAT or ISO9660.
#[derive(clap::Args)]
pub struct Args {
    /// The disk image (read only, never mounted).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A `--disk FILE[,ro]` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskArg {
    pub path: PathBuf,
    pub read_only: bool,
}

pub fn parse_disk(text: &str) -> Result<DiskArg, String> {
    let (path, flags) = match text.rsplit_once(',') {
        Some((p, f)) if f == "ro" || f == "rw" => (p, Some(f)),
        Some((_, f)) => return Err(format!("unknown disk flag {f:?} (FILE or FILE,ro)")),
        None => (text, None),
    };
    if path.is_empty() {
        return Err("the disk needs a file name".into());
    }
    Ok(DiskArg {
        path: PathBuf::from(path),
        read_only: flags == Some("ro"),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut image = DiskImage::open(&args.image)?;
    let (entries, default) = image.entries()?;
    if args.json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| entry_json(&image, i, e, default == Some(i)))
            .collect();
        let out = serde_json::json!({
            "image": args.image,
            "default": default,
            "entries": list,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&image, &entries, default));
    }
    Ok(ExitCode::SUCCESS)
}

fn partition_label(image: &DiskImage, e: &BootEntry) -> String {
    let n = e.partition.unwrap_or(0);
    image
        .partitions()
        .find(|p| p.number == n)
        .map_or_else(|| format!("partition {n}"), |p| p.label())
}

fn entry_json(image: &DiskImage, index: usize, e: &BootEntry, default: bool) -> serde_json::Value {
    serde_json::json!({
        "index": index,
        "default": default,
        "title": e.title,
        "id": e.id,
        "kind": e.kind.name(),
        "partition": e.partition.unwrap_or(0),
        "partition_label": partition_label(image, e),
        "kernel": e.kernel,
        "initrds": e.initrds,
        "cmdline": e.cmdline,
        "source": e.source,
    })
}

fn render(image: &DiskImage, entries: &[BootEntry], default: Option<usize>) -> String {
    let mut t = Table::new(&[
        "",
        "#",
        "title",
        "from",
        "partition",
        "kernel",
        "initrds",
        "cmdline",
    ]);
    for (i, e) in entries.iter().enumerate() {
        t.row(vec![
            if default == Some(i) { "*" } else { "" }.to_string(),
            i.to_string(),
            e.title.clone(),
            e.kind.name().to_string(),
            partition_label(image, e),
            e.kernel.clone(),
            if e.initrds.is_empty() {
                "-".into()
            } else {
                e.initrds.join(",")
            },
            e.cmdline.clone(),
        ]);
    }
    t.render(0)
}

/// Booting what a disk's boot loader would: which disk, which entry, and what to add to
/// the entry's command line.
pub struct DiskBoot<'a> {
    pub disk: &'a Path,
    /// An index, title or id; `menu` asks on the terminal (only where `menu_allowed`).
    pub entry: Option<&'a str>,
    /// Replaces the entry's command line (--cmdline).
    pub cmdline: Option<&'a str>,
    /// Added after the entry's command line (a configuration's `root`/`extra` with
    /// pygrub, which passes them on the same way).
    pub append: Option<&'a str>,
    pub menu_allowed: bool,
}

/// The domain for the chosen entry of the first --disk: its kernel and initrds are
/// extracted to a temporary directory (mapped by the builder, so they may go once it has
/// them), then any --initrd; --cmdline overrides the entry's command line.
pub fn image_from_disk(args: &BootArgs, menu_allowed: bool) -> anyhow::Result<DomainImage> {
    let disk = args
        .disk
        .first()
        .context("--bootloader needs --disk IMAGE (the first --disk is the boot disk)")?;
    image_from_boot_disk(
        args,
        &DiskBoot {
            disk: &disk.path,
            entry: args.boot_entry.as_deref(),
            cmdline: args.cmdline.as_deref(),
            append: None,
            menu_allowed,
        },
    )
}

/// The domain for `boot`'s entry; --initrd and the builder options come from `args`.
pub fn image_from_boot_disk(args: &BootArgs, boot: &DiskBoot<'_>) -> anyhow::Result<DomainImage> {
    let mut image = DiskImage::open(boot.disk)?;
    let selector = match boot.entry {
        None => Selector::Default,
        Some("menu") if boot.menu_allowed => menu(&mut image, boot.disk)?,
        Some("menu") => anyhow::bail!(
            "--boot-entry menu asks on a terminal, which only `domboot run` does; \
             for plan and build name the entry by its index or title (see `domboot boot-entries IMAGE`)"
        ),
        Some(name) => Selector::Named(name.to_string()),
    };
    let entry = image.select(&selector)?;
    let (kernel, initrds) = image.load(&entry)?;
    let dir = tempfile::Builder::new().prefix("domboot-disk-").tempdir()?;
    let kernel_file = write(dir.path(), &entry.kernel, &kernel)?;
    let mut initrd_files = Vec::with_capacity(initrds.len() + args.initrd.len());
    for (path, bytes) in entry.initrds.iter().zip(&initrds) {
        initrd_files.push(write(dir.path(), path, bytes)?);
    }
    initrd_files.extend(args.initrd.iter().cloned());
    // A UKI carries its own command line: keep it unless --cmdline replaces it.
    let mut cmdline = match (boot.cmdline, entry.kind) {
        (Some(c), _) => Some(c.to_string()),
        (None, EntryKind::Uki) if entry.cmdline.is_empty() => None,
        (None, _) => Some(entry.cmdline.clone()),
    };
    if let Some(extra) = boot.append.filter(|a| !a.is_empty()) {
        cmdline = Some(match cmdline {
            Some(c) if !c.is_empty() => format!("{c} {extra}"),
            _ => extra.to_string(),
        });
    }
    let named = || {
        format!(
            "boot entry {:?} of {} ({}, {})",
            entry.title,
            boot.disk.display(),
            partition_label(&image, &entry),
            entry.kernel
        )
    };
    let mut domain = args
        .image_from(&kernel_file, &initrd_files, cmdline.as_deref(), None, false)
        .with_context(named)?;
    domain.kernel_path = PathBuf::from(format!(
        "{}, {}, {}",
        boot.disk.display(),
        partition_label(&image, &entry),
        entry.kernel
    ));
    Ok(domain)
}

/// Lists the entries on the terminal and asks which to boot (Enter: the default).
fn menu(image: &mut DiskImage, disk: &Path) -> anyhow::Result<Selector> {
    use std::io::{BufRead, IsTerminal, Write};
    let (entries, default) = image.entries()?;
    if entries.is_empty() {
        anyhow::bail!("{}: no boot entries to choose from", disk.display());
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let (mut input, mut output): (Box<dyn BufRead>, Box<dyn Write>) = match tty {
        Ok(t) => (
            Box::new(std::io::BufReader::new(t.try_clone()?)),
            Box::new(t),
        ),
        Err(_) if std::io::stdin().is_terminal() => (
            Box::new(std::io::stdin().lock()),
            Box::new(std::io::stderr()),
        ),
        Err(e) => anyhow::bail!(
            "--boot-entry menu needs a terminal to ask on (/dev/tty: {e}); name the entry \
             by its index or title instead"
        ),
    };
    writeln!(output, "Boot entries of {}:", disk.display())?;
    for (i, e) in entries.iter().enumerate() {
        let mark = if Some(i) == default { '*' } else { ' ' };
        writeln!(output, " {mark}{i:>3}  {}  ({})", e.title, e.kernel)?;
    }
    loop {
        match default {
            Some(d) => write!(output, "Entry to boot [{d}]: ")?,
            None => write!(output, "Entry to boot: ")?,
        }
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            anyhow::bail!("--boot-entry menu: no answer (end of input)");
        }
        let answer = line.trim();
        if answer.is_empty() {
            if default.is_some() {
                return Ok(Selector::Default);
            }
            continue;
        }
        match answer.parse::<usize>() {
            Ok(n) if n < entries.len() => return Ok(Selector::Named(n.to_string())),
            _ => writeln!(
                output,
                "{answer:?}: give a number from 0 to {}",
                entries.len() - 1
            )?,
        }
    }
}

/// Writes `bytes` under `dir` with the file name of `path` inside the image (numbered so
/// two initrds of the same name stay apart).
fn write(dir: &Path, path: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("file");
    let count = std::fs::read_dir(dir)?.count();
    let file = dir.join(format!("{count}-{name}"));
    std::fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::parse_disk;

    #[test]
    fn disk_options() {
        let d = parse_disk("a.img,ro").unwrap();
        assert!(d.read_only && d.path.to_str() == Some("a.img"));
        assert!(!parse_disk("b.img").unwrap().read_only);
        assert!(
            parse_disk("c.img,xyz")
                .unwrap_err()
                .contains("unknown disk flag")
        );
        assert!(parse_disk(",ro").is_err());
    }
}
